//! Managing users and their sessions on [`Idp`]: updating (names, password, metadata),
//! merging metadata, deleting, listing and counting with Clerk's filters, listing a user's
//! sessions and signing a user out everywhere.

use serde_json::Value;

use crate::error::ApiError;
use crate::idp::Idp;
use crate::metadata;
use crate::passwords;
use crate::store::{Session, SessionStatus, User, UserChanges, UserOrder, UserQuery};
use crate::webhooks::EventType;

/// Longest first name, last name or username accepted.
const MAX_NAME_CHARS: usize = 256;
/// Most ids or addresses one list query may name.
const MAX_FILTER_VALUES: usize = 100;
/// Longest `query` text.
const MAX_QUERY_CHARS: usize = 256;
/// Largest `limit` (Clerk's).
const MAX_LIMIT: u32 = 500;
/// `limit` when none is given (Clerk's).
const DEFAULT_LIMIT: u32 = 10;

/// Changes to a user (`PATCH /v1/users/{id}`). `None` leaves a field as it is; an empty
/// name clears it; metadata given here replaces the stored object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserUpdate {
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// A new password (the rules of [`NewUser::password`](crate::NewUser::password) apply,
    /// unless `skip_password_checks`).
    pub password: Option<String>,
    /// Skip the strength rules (length still applies), as for migrating users.
    pub skip_password_checks: bool,
    /// With a new password: revoke every active session of the user.
    pub sign_out_of_other_sessions: bool,
    /// Replaces `public_metadata`.
    pub public_metadata: Option<Value>,
    /// Replaces `private_metadata`.
    pub private_metadata: Option<Value>,
    /// Replaces `unsafe_metadata`.
    pub unsafe_metadata: Option<Value>,
}

/// Which users to list or count (`GET /v1/users`, `GET /v1/users/count`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserListQuery {
    /// Users owning any of these addresses.
    pub email_addresses: Vec<String>,
    /// Users with any of these ids.
    pub user_ids: Vec<String>,
    /// Users with any of these usernames.
    pub usernames: Vec<String>,
    /// A filter the idp cannot match (phone numbers, wallets, external ids): no user matches.
    pub matches_nothing: bool,
    /// Text found in the id, an address, a name or the username.
    pub query: Option<String>,
    /// `created_at`, `updated_at`, `email_address`, `first_name`, `last_name`, `username`,
    /// `last_sign_in_at` or `last_active_at`, with an optional `+` / `-` prefix (default
    /// `-created_at`: newest first).
    pub order_by: Option<String>,
    /// At most this many users (1–500, default 10).
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: Option<u32>,
}

impl UserListQuery {
    fn filters(&self) -> Result<UserQuery, ApiError> {
        let too_many = |param: &'static str| {
            ApiError::unprocessable(
                "form_param_value_invalid",
                "is invalid",
                format!("At most {MAX_FILTER_VALUES} values of `{param}` may be given."),
            )
            .param(param)
        };
        if self.email_addresses.len() > MAX_FILTER_VALUES {
            return Err(too_many("email_address"));
        }
        if self.user_ids.len() > MAX_FILTER_VALUES {
            return Err(too_many("user_id"));
        }
        if self.usernames.len() > MAX_FILTER_VALUES {
            return Err(too_many("username"));
        }
        let query = self
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty());
        if query.is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
            return Err(ApiError::unprocessable(
                "form_param_value_invalid",
                "is invalid",
                format!("`query` may be at most {MAX_QUERY_CHARS} characters."),
            )
            .param("query"));
        }
        Ok(UserQuery {
            email_addresses: self
                .email_addresses
                .iter()
                .map(|e| e.trim().to_lowercase())
                .collect(),
            user_ids: self.user_ids.clone(),
            usernames: self.usernames.clone(),
            query: query.map(str::to_owned),
        })
    }

    fn order(&self) -> Result<UserOrder, ApiError> {
        let Some(raw) = self
            .order_by
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Ok(UserOrder::default());
        };
        let (descending, name) = match raw.as_bytes().first() {
            Some(b'-') => (true, &raw[1..]),
            Some(b'+') => (false, &raw[1..]),
            _ => (false, raw),
        };
        let column = match name {
            "created_at" => "created_at",
            "updated_at" => "updated_at",
            "email_address" => "email_address",
            "first_name" => "first_name",
            "last_name" => "last_name",
            "username" => "username",
            "last_sign_in_at" | "last_active_at" => "last_sign_in_at",
            _ => {
                return Err(ApiError::unprocessable(
                    "form_param_value_invalid",
                    "is invalid",
                    format!(
                        "`order_by` must be one of created_at, updated_at, email_address, first_name, \
                         last_name, username, last_sign_in_at, last_active_at (with an optional + or - prefix); got `{}`.",
                        raw.chars().take(64).collect::<String>().escape_debug()
                    ),
                )
                .param("order_by"));
            }
        };
        Ok(UserOrder { column, descending })
    }
}

/// A name field: trimmed, empty clears it, at most [`MAX_NAME_CHARS`] without control
/// characters.
fn name_field(
    param: &'static str,
    value: Option<String>,
) -> Result<Option<Option<String>>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value.trim().to_owned();
    check_name(param, Some(&value))?;
    Ok(Some((!value.is_empty()).then_some(value)))
}

/// Refuses a name longer than [`MAX_NAME_CHARS`] or with control characters.
pub(crate) fn check_name(param: &'static str, value: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::unprocessable(
            "form_param_max_length_exceeded",
            "is too long",
            format!("`{param}` may be at most {MAX_NAME_CHARS} characters."),
        )
        .param(param));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "form_param_format_invalid",
            "is invalid",
            format!("`{param}` may not contain control characters."),
        )
        .param(param));
    }
    Ok(())
}

impl Idp {
    /// Updates a user (`PATCH /v1/users/{id}`); returns the updated user.
    pub async fn update_user(&self, user_id: &str, update: UserUpdate) -> Result<User, ApiError> {
        let user = self.user(user_id)?;
        let mut changes = UserChanges {
            first_name: name_field("first_name", update.first_name)?,
            last_name: name_field("last_name", update.last_name)?,
            username: name_field("username", update.username)?,
            ..UserChanges::default()
        };
        for (field, value, slot) in [
            (
                "public_metadata",
                update.public_metadata,
                &mut changes.public_metadata,
            ),
            (
                "private_metadata",
                update.private_metadata,
                &mut changes.private_metadata,
            ),
            (
                "unsafe_metadata",
                update.unsafe_metadata,
                &mut changes.unsafe_metadata,
            ),
        ] {
            if let Some(value) = value {
                *slot = Some(metadata::checked(field, value)?);
            }
        }
        let new_password = update.password.is_some();
        if let Some(password) = update.password {
            changes.password_hash = Some(
                self.hash_password_for(&user, &changes, password, update.skip_password_checks)
                    .await?,
            );
        }
        if !self
            .inner
            .store
            .update_user(user_id, &changes, crate::ids::now_ms())?
        {
            return Err(ApiError::not_found("user", user_id));
        }
        if new_password {
            tracing::info!(user_id, "password changed");
            if update.sign_out_of_other_sessions {
                self.sign_out_everywhere(user_id)?;
            }
        }
        self.emit_user_updated(user_id);
        self.user(user_id)
    }

    /// Hashes a new password for `user` after the rules (strength against the user's own
    /// names and addresses unless `skip_checks`).
    pub(crate) async fn hash_password_for(
        &self,
        user: &User,
        changes: &UserChanges,
        password: String,
        skip_checks: bool,
    ) -> Result<String, ApiError> {
        passwords::check_length(&password)?;
        let emails: Vec<String> = user
            .email_addresses
            .iter()
            .map(|e| e.email_address.clone())
            .collect();
        let name = |changed: &Option<Option<String>>, old: &Option<String>| {
            changed.clone().unwrap_or_else(|| old.clone())
        };
        let inputs = if skip_checks {
            None
        } else {
            Some(passwords::user_inputs(
                &emails,
                &[
                    name(&changes.first_name, &user.first_name).as_deref(),
                    name(&changes.last_name, &user.last_name).as_deref(),
                    name(&changes.username, &user.username).as_deref(),
                ],
            ))
        };
        Ok(self.inner.hashing.hash_new(password, inputs).await??)
    }

    /// Deep-merges metadata into a user's (`PATCH /v1/users/{id}/metadata`): nested objects
    /// merge, `null` removes a key. `None` leaves a field alone.
    pub fn merge_user_metadata(
        &self,
        user_id: &str,
        public: Option<Value>,
        private: Option<Value>,
        unsafe_: Option<Value>,
    ) -> Result<User, ApiError> {
        self.set_user_metadata(user_id, [public, private, unsafe_], true)
    }

    /// Replaces metadata fields of a user (`PUT /v1/users/{id}/metadata`); `None` leaves a
    /// field alone.
    pub fn replace_user_metadata(
        &self,
        user_id: &str,
        public: Option<Value>,
        private: Option<Value>,
        unsafe_: Option<Value>,
    ) -> Result<User, ApiError> {
        self.set_user_metadata(user_id, [public, private, unsafe_], false)
    }

    /// Sets the given metadata objects (public, private, unsafe) of a user: merged into what is
    /// stored (Clerk's deep merge) or replacing it.
    pub(crate) fn set_user_metadata(
        &self,
        user_id: &str,
        given: [Option<Value>; 3],
        merge: bool,
    ) -> Result<User, ApiError> {
        let user = self.user(user_id)?;
        let mut changes = UserChanges::default();
        let current = [
            &user.public_metadata,
            &user.private_metadata,
            &user.unsafe_metadata,
        ];
        let mut results = [None, None, None];
        for (i, value) in given.into_iter().enumerate() {
            let field = metadata::FIELDS[i];
            let Some(value) = value else { continue };
            let value = metadata::checked(field, value)?;
            results[i] = Some(if merge {
                let mut merged = current[i].clone();
                metadata::deep_merge(&mut merged, value);
                metadata::within_size(field, merged)?
            } else {
                value
            });
        }
        let [public, private, unsafe_] = results;
        changes.public_metadata = public;
        changes.private_metadata = private;
        changes.unsafe_metadata = unsafe_;
        if !self
            .inner
            .store
            .update_user(user_id, &changes, crate::ids::now_ms())?
        {
            return Err(ApiError::not_found("user", user_id));
        }
        self.emit_user_updated(user_id);
        self.user(user_id)
    }

    /// Deletes a user (`DELETE /v1/users/{id}`): their addresses, codes and sessions go too,
    /// so no token can be minted for them again.
    pub fn delete_user(&self, user_id: &str) -> Result<(), ApiError> {
        // Read before they go: their `session.ended` events carry them.
        let active = self.user_sessions(user_id, Some("active"))?;
        match self
            .inner
            .store
            .delete_user(user_id, crate::ids::now_ms())?
        {
            Some(ended) => {
                tracing::info!(user_id, ended_sessions = ended.len(), "user deleted");
                for mut session in active.into_iter().filter(|s| ended.contains(&s.id)) {
                    session.status = SessionStatus::Ended;
                    session.updated_at = crate::ids::now_ms();
                    self.emit_session(EventType::SessionEnded, &session);
                }
                self.emit_user_deleted(user_id);
                Ok(())
            }
            None => Err(ApiError::not_found("user", user_id)),
        }
    }

    /// Users matching `query`, ordered and paged (`GET /v1/users`).
    pub fn list_users(&self, query: &UserListQuery) -> Result<Vec<User>, ApiError> {
        let filters = query.filters()?;
        let order = query.order()?;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::unprocessable(
                "form_param_value_invalid",
                "is invalid",
                format!("`limit` must be between 1 and {MAX_LIMIT}, got {limit}."),
            )
            .param("limit"));
        }
        if query.matches_nothing {
            return Ok(Vec::new());
        }
        Ok(self
            .inner
            .store
            .list_users(&filters, order, limit, query.offset.unwrap_or(0))?)
    }

    /// How many users match `query` (`GET /v1/users/count`; ordering and paging ignored).
    pub fn count_users(&self, query: &UserListQuery) -> Result<u64, ApiError> {
        let filters = query.filters()?;
        if query.matches_nothing {
            return Ok(0);
        }
        Ok(self.inner.store.count_users(&filters)?)
    }

    /// A user's sessions, newest first, optionally only those with Clerk's `status`
    /// (`active`, `revoked`, `ended`, `expired`) (`GET /v1/sessions?user_id=&status=`).
    pub fn user_sessions(
        &self,
        user_id: &str,
        status: Option<&str>,
    ) -> Result<Vec<Session>, ApiError> {
        let status = match status {
            None | Some("") => None,
            Some("active") => Some(SessionStatus::Active),
            Some("revoked") => Some(SessionStatus::Revoked),
            Some("ended") => Some(SessionStatus::Ended),
            Some("expired") => Some(SessionStatus::Expired),
            // Clerk's other states never occur here: nothing has them.
            Some("abandoned" | "removed" | "replaced" | "pending") => return Ok(Vec::new()),
            Some(other) => {
                return Err(ApiError::unprocessable(
                    "form_param_value_invalid",
                    "is invalid",
                    format!(
                        "`status` must be one of active, revoked, ended, expired, abandoned, removed, replaced, pending; got `{}`.",
                        other.chars().take(64).collect::<String>().escape_debug()
                    ),
                )
                .param("status"));
            }
        };
        Ok(self
            .inner
            .store
            .sessions_of(user_id, status, crate::ids::now_ms())?)
    }

    /// Revokes every active session of a user ("sign out everywhere"); returns their ids.
    pub fn sign_out_everywhere(&self, user_id: &str) -> Result<Vec<String>, ApiError> {
        self.user(user_id)?;
        let revoked = self
            .inner
            .store
            .revoke_sessions_of(user_id, None, crate::ids::now_ms())?;
        tracing::info!(user_id, revoked = revoked.len(), "signed out everywhere");
        for id in &revoked {
            if let Ok(session) = self.session(id) {
                self.emit_session(EventType::SessionRevoked, &session);
            }
        }
        Ok(revoked)
    }
}
