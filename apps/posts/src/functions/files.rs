//! `files:generateUploadUrl`: where a signed-in user uploads a post's image; `files:sweep`
//! (internal, run daily by a cron): files that no post shows are deleted once they are a day old.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_backend::{FunctionError, MutationCtx};
use serde::{Deserialize, Serialize};

use super::posts::Post;
use super::users::NoArgs;

/// A short-lived, single-use upload URL (POST the image's bytes to it; the answer's
/// `storageId` goes into `posts:create`'s `imageId`); signed-in users only.
pub(super) async fn generate_upload_url(
    ctx: MutationCtx,
    _args: NoArgs,
) -> Result<String, FunctionError> {
    ctx.auth().require_signed_in()?;
    ctx.storage().generate_upload_url().await
}

/// How old an unshown file must be before `files:sweep` deletes it: an upload waits this long for
/// the `posts:create` that shows it.
pub const UNSHOWN_FILE_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// Arguments of `files:sweep`.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepArgs {
    /// Only files older than this many milliseconds are deleted.
    pub older_than_ms: f64,
}

/// Deletes the stored files that no post shows and that are older than `older_than_ms` (uploads
/// never attached to a post, or left behind); returns how many. The daily cron passes
/// [`UNSHOWN_FILE_GRACE`].
pub async fn sweep(ctx: MutationCtx, args: SweepArgs) -> Result<u32, FunctionError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let cutoff = now_ms - args.older_than_ms.max(0.0);
    let mut deleted = 0;
    for file in ctx.storage().list().await? {
        if file.creation_time > cutoff {
            continue;
        }
        let shown = ctx
            .db()
            .table::<Post>()
            .query()
            .with_index(Post::by_image, |q| q.eq(Some(file.id.clone())))
            .first()
            .await?
            .is_some();
        if !shown {
            ctx.storage().delete(&file.id).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
