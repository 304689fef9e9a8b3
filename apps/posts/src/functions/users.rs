//! `users:me` and `users:store`.

use keel::Table;
use keel_backend::{FunctionError, MutationCtx, QueryCtx};
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
