//! `stats:record`, the internal mutation the app's hourly cron runs: it records how many posts
//! there are (up to [`MAX_COUNTED`]) in the `stats` table.

use keel_backend::{FunctionError, MutationCtx};
use keel_values::{Object, Value};

use super::users::NoArgs;

/// Most posts one count reads (a mutation reads at most 32,000 documents).
const MAX_COUNTED: usize = 10_000;

/// Records the number of posts now (capped at [`MAX_COUNTED`]).
pub(super) async fn record(ctx: MutationCtx, _: NoArgs) -> Result<f64, FunctionError> {
    let posts = ctx.db().query("posts").take(MAX_COUNTED).await?.len() as f64;
    let mut fields = Object::new();
    fields.insert("posts".into(), Value::from(posts));
    ctx.db().insert("stats", fields).await?;
    Ok(posts)
}
