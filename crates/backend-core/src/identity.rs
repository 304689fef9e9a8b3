//! Who calls a function: [`Identity`] (anonymous, or a [`VerifiedUser`] whose token the backend
//! verified) and the keys derived from it.

use std::sync::Arc;

use keel_auth::UserIdentity;

/// Who is calling a function.
#[derive(Clone, Debug)]
pub enum Identity {
    /// No token (signed out).
    Anonymous,
    /// A verified user.
    User(Arc<VerifiedUser>),
}

/// A verified identity with the key under which its query results are cached.
#[derive(Debug)]
pub struct VerifiedUser {
    /// The identity as functions see it.
    pub identity: Arc<UserIdentity>,
    /// Results of queries run as this user are shared only with the same identity.
    pub(crate) cache_key: String,
}

impl VerifiedUser {
    /// A verified identity (results are cached per identity).
    pub(crate) fn new(identity: Arc<UserIdentity>) -> VerifiedUser {
        let cache_key = serde_json::Value::Object(identity.to_json()).to_string();
        VerifiedUser {
            identity,
            cache_key,
        }
    }
}

impl Identity {
    /// An operator acting as `user` (`keel run --identity`, the dashboard): no token was
    /// verified; the admin key was.
    pub fn acting_as(user: UserIdentity) -> Identity {
        Identity::User(Arc::new(VerifiedUser::new(Arc::new(user))))
    }

    pub(crate) fn cache_key(&self) -> &str {
        match self {
            Identity::Anonymous => "",
            Identity::User(user) => &user.cache_key,
        }
    }

    /// Who is calling, for telling one caller's requests from another's: the token identifier
    /// (`"<issuer>|<subject>"`, the same across a user's refreshed tokens), `""` when anonymous.
    pub(crate) fn caller_key(&self) -> &str {
        match self {
            Identity::Anonymous => "",
            Identity::User(user) => user.identity.token_identifier(),
        }
    }
}
