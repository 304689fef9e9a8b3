//! `users:me` and `users:store`.

use keel_backend::{FunctionError, MutationCtx, QueryCtx};
use keel_values::{Object, Value, obj};
use serde::Deserialize;

use super::require_user;

/// No arguments.
#[derive(Deserialize)]
pub(super) struct NoArgs {}

/// The caller as the app sees them, or `null` when signed out.
pub(super) async fn me(ctx: QueryCtx, _args: NoArgs) -> Result<Value, FunctionError> {
    let Some(user) = ctx.auth().user_identity() else {
        return Ok(Value::Null);
    };
    let text = |v: Option<&str>| v.map_or(Value::Null, Value::from);
    Ok(obj! {
        "tokenIdentifier" => user.token_identifier(),
        "subject" => user.subject.as_str(),
        "issuer" => user.issuer.as_str(),
        "name" => text(user.attributes.name.as_deref()),
        "email" => text(user.attributes.email.as_deref()),
        "pictureUrl" => text(user.attributes.picture_url.as_deref()),
    })
}

/// Inserts or updates the caller in `users`; returns the document id.
pub(super) async fn store(ctx: MutationCtx, _args: NoArgs) -> Result<String, FunctionError> {
    let user = require_user(ctx.auth())?;
    let token = user.token_identifier();
    let mut fields = Object::new();
    fields.insert("tokenIdentifier".into(), Value::from(token));
    fields.insert(
        "name".into(),
        user.attributes
            .name
            .as_deref()
            .unwrap_or("Anonymous")
            .into(),
    );
    fields.insert(
        "email".into(),
        user.attributes
            .email
            .as_deref()
            .map_or(Value::Null, Value::from),
    );
    fields.insert(
        "pictureUrl".into(),
        user.attributes
            .picture_url
            .as_deref()
            .map_or(Value::Null, Value::from),
    );
    let existing = ctx
        .db()
        .query("users")
        .with_index("by_token", |r| r.eq("tokenIdentifier", token))
        .unique()
        .await?;
    match existing {
        Some(doc) => {
            ctx.db().replace(doc.id, fields).await?;
            Ok(doc.id.to_string())
        }
        None => Ok(ctx.db().insert("users", fields).await?.to_string()),
    }
}
