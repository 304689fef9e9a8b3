//! `files:generateUploadUrl`: where a signed-in user uploads a post's image.

use keel_backend::{FunctionError, MutationCtx};

use super::require_user;
use super::users::NoArgs;

/// A short-lived, single-use upload URL (POST the image's bytes to it; the answer's
/// `storageId` goes into `posts:create`'s `imageId`); signed-in users only.
pub(super) async fn generate_upload_url(
    ctx: MutationCtx,
    _args: NoArgs,
) -> Result<String, FunctionError> {
    require_user(ctx.auth())?;
    ctx.storage().generate_upload_url().await
}
