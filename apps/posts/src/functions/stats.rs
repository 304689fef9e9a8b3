//! `stats:record`, the internal mutation the app's hourly cron runs: it records how many posts
//! there are (up to [`MAX_COUNTED`]) in the `stats` table.

use keel::Table;
use keel_backend::{FunctionError, MutationCtx};
use serde::{Deserialize, Serialize};

use super::posts::Post;

/// A document of `stats`: the number of posts at one time (its `_creationTime`).
#[derive(Clone, Debug, Serialize, Deserialize, Table)]
#[keel(table = "stats")]
pub(crate) struct Stat {
    /// How many posts there were (at most [`MAX_COUNTED`]).
    pub(crate) posts: f64,
}

use super::users::NoArgs;

/// Most posts one count reads (a mutation reads at most 32,000 documents).
const MAX_COUNTED: usize = 10_000;

/// Records the number of posts now (capped at [`MAX_COUNTED`]).
pub(super) async fn record(ctx: MutationCtx, _: NoArgs) -> Result<f64, FunctionError> {
    let posts = ctx
        .db()
        .table::<Post>()
        .query()
        .take(MAX_COUNTED)
        .await?
        .len() as f64;
    ctx.db().table::<Stat>().insert(&Stat { posts }).await?;
    Ok(posts)
}
