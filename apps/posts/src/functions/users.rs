//! `users:me` and `users:store`, and `users:upsertFromClerk` / `users:deleteFromClerk`, which
//! the identity provider's webhooks run (through the `/clerk-users-webhook` HTTP action).

use keel::Table;
use keel_backend::{FunctionError, MutationCtx, QueryCtx};
use serde::{Deserialize, Serialize};

use super::require_user;

/// A document of `users`: a user as `users:store` (their sign-in) or the identity provider's
/// webhooks last saw them.
#[derive(Clone, Debug, Serialize, Deserialize, Table)]
#[serde(rename_all = "camelCase")]
#[keel(
    table = "users",
    index(by_token = [token_identifier]),
    index(by_external_id = [external_id])
)]
pub(crate) struct User {
    /// The identity's `tokenIdentifier` (issuer and subject): one document per user. `None`
    /// for a user only the webhooks have told of so far.
    pub(crate) token_identifier: Option<String>,
    /// The identity provider's user id (the token's `sub`, Clerk's `user_…`), as Convex's
    /// Clerk guide keys its users; `None` in documents written before webhooks.
    #[serde(default)]
    pub(crate) external_id: Option<String>,
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
        token_identifier: Some(token.to_owned()),
        external_id: Some(user.subject.clone()),
        name: user
            .attributes
            .name
            .clone()
            .unwrap_or_else(|| "Anonymous".to_owned()),
        email: user.attributes.email.clone(),
        picture_url: user.attributes.picture_url.clone(),
    };
    let users = ctx.db().table::<User>();
    let mut existing = users
        .query()
        .with_index(User::by_token, |q| q.eq(Some(token.to_owned())))
        .unique()
        .await?;
    if existing.is_none() {
        // A user a webhook announced before their first sign-in.
        existing = users
            .query()
            .with_index(User::by_external_id, |q| q.eq(Some(user.subject.clone())))
            .first()
            .await?
            .filter(|doc| doc.token_identifier.is_none());
    }
    match existing {
        Some(doc) => {
            users.replace(doc.id, &fields).await?;
            Ok(doc.id.to_string())
        }
        None => Ok(users.insert(&fields).await?.to_string()),
    }
}

/// A user as the identity provider's `user.created` / `user.updated` webhook describes them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClerkUser {
    /// Clerk's user id (`user_…`).
    pub external_id: String,
    /// The name to show (given and family names; "Anonymous" without either).
    pub name: String,
    /// The primary email address, if any.
    pub email: Option<String>,
    /// The picture's URL, if any.
    pub picture_url: Option<String>,
}

impl ClerkUser {
    /// From the `data` of a Clerk `user.*` event (a Backend API user object); `None` when it
    /// has no `id`.
    pub fn from_event_data(data: &serde_json::Value) -> Option<ClerkUser> {
        let text = |key: &str| {
            data.get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let external_id = text("id")?;
        let name = [text("first_name"), text("last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let primary = text("primary_email_address_id");
        let email = data
            .get("email_addresses")
            .and_then(serde_json::Value::as_array)
            .and_then(|list| {
                list.iter()
                    .find(|e| e.get("id").and_then(serde_json::Value::as_str) == primary.as_deref())
            })
            .and_then(|e| e.get("email_address"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Some(ClerkUser {
            external_id,
            name: if name.is_empty() {
                "Anonymous".to_owned()
            } else {
                name
            },
            email,
            picture_url: text("image_url"),
        })
    }
}

/// `users:deleteFromClerk`'s argument.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClerkUserId {
    /// Clerk's user id (`user_…`).
    pub external_id: String,
}

/// Inserts or updates the user a webhook describes (by their external id); returns the
/// document id.
pub(super) async fn upsert_from_clerk(
    ctx: MutationCtx,
    user: ClerkUser,
) -> Result<String, FunctionError> {
    let users = ctx.db().table::<User>();
    let existing = users
        .query()
        .with_index(User::by_external_id, |q| {
            q.eq(Some(user.external_id.clone()))
        })
        .first()
        .await?;
    match existing {
        Some(doc) => {
            let fields = User {
                name: user.name,
                email: user.email,
                picture_url: user.picture_url,
                ..doc.fields.clone()
            };
            users.replace(doc.id, &fields).await?;
            Ok(doc.id.to_string())
        }
        None => {
            let fields = User {
                token_identifier: None,
                external_id: Some(user.external_id),
                name: user.name,
                email: user.email,
                picture_url: user.picture_url,
            };
            Ok(users.insert(&fields).await?.to_string())
        }
    }
}

/// Deletes the documents of the user a `user.deleted` webhook names; returns how many.
pub(super) async fn delete_from_clerk(
    ctx: MutationCtx,
    user: ClerkUserId,
) -> Result<u32, FunctionError> {
    let users = ctx.db().table::<User>();
    let docs = users
        .query()
        .with_index(User::by_external_id, |q| {
            q.eq(Some(user.external_id.clone()))
        })
        .collect()
        .await?;
    let mut deleted = 0;
    for doc in docs {
        users.delete(doc.id).await?;
        deleted += 1;
    }
    Ok(deleted)
}
