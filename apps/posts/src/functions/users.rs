//! `users:me` and `users:store`.

use keel::Table;
use keel_backend::{FunctionError, MutationCtx, QueryCtx};
use keel_values::{Value, obj};
use serde::{Deserialize, Serialize};

use super::require_user;

/// A document of `users`: a signed-in user as `users:store` last saw them.
#[derive(Clone, Debug, Serialize, Deserialize, Table)]
#[serde(rename_all = "camelCase")]
#[keel(table = "users", index(by_token = [token_identifier]))]
pub(crate) struct User {
    /// The identity's `tokenIdentifier` (issuer and subject): one document per user.
    pub(crate) token_identifier: String,
    /// The name to show ("Anonymous" when the identity has none).
    pub(crate) name: String,
    /// The email address, if the identity has one.
    pub(crate) email: Option<String>,
    /// The picture's URL, if the identity has one.
    pub(crate) picture_url: Option<String>,
}

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
    let fields = User {
        token_identifier: token.to_owned(),
        name: user
            .attributes
            .name
            .clone()
            .unwrap_or_else(|| "Anonymous".to_owned()),
        email: user.attributes.email.clone(),
        picture_url: user.attributes.picture_url.clone(),
    };
    let users = ctx.db().table::<User>();
    let existing = users
        .query()
        .with_index(User::by_token, |q| q.eq(token))
        .unique()
        .await?;
    match existing {
        Some(doc) => {
            users.replace(doc.id, &fields).await?;
            Ok(doc.id.to_string())
        }
        None => Ok(users.insert(&fields).await?.to_string()),
    }
}
