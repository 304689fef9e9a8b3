//! `users:me` and `users:store`.

use keel_backend::{FunctionError, MutationCtx, QueryCtx};
use keel_values::{Object, Value};
use serde::{Deserialize, Serialize};

use super::require_user;

/// No arguments.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct NoArgs {}

/// The caller as `users:me` returns it (the fields of their token the app uses; `null` where
/// the token has none).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The caller's stable identifier (`issuer|subject`).
    pub token_identifier: String,
    /// The token's `sub`.
    pub subject: String,
    /// The token's `iss`.
    pub issuer: String,
    /// The caller's name, if the token has one.
    pub name: Option<String>,
    /// The caller's email address, if the token has one.
    pub email: Option<String>,
    /// The caller's picture, if the token has one.
    pub picture_url: Option<String>,
}

/// The caller as the app sees them, or `null` when signed out.
pub(super) async fn me(ctx: QueryCtx, _args: NoArgs) -> Result<Option<Me>, FunctionError> {
    let Some(user) = ctx.auth().user_identity() else {
        return Ok(None);
    };
    Ok(Some(Me {
        token_identifier: user.token_identifier().to_owned(),
        subject: user.subject.clone(),
        issuer: user.issuer.clone(),
        name: user.attributes.name.clone(),
        email: user.attributes.email.clone(),
        picture_url: user.attributes.picture_url.clone(),
    }))
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
