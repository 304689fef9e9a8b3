//! Who calls a function: [`Identity`] (anonymous, or a [`VerifiedUser`] whose token the backend
//! verified) and the keys derived from it.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

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
    /// Results of queries that read this identity are shared only with the same identity.
    pub(crate) cache_key: IdentityKey,
}

impl VerifiedUser {
    /// A verified identity (results are cached per identity).
    pub(crate) fn new(identity: Arc<UserIdentity>) -> VerifiedUser {
        let cache_key = IdentityKey::new(serde_json::Value::Object(identity.to_json()).to_string());
        VerifiedUser {
            identity,
            cache_key,
        }
    }
}

/// The key of one identity's own query results: the identity as functions see it (its JSON:
/// two tokens of the same user with the same claims are the same key), hashed once, when the
/// token is verified, with keys drawn for this process (no caller can aim at collisions).
#[derive(Clone, Debug)]
pub(crate) struct IdentityKey {
    hash: u64,
    text: Arc<str>,
}

impl IdentityKey {
    fn new(text: String) -> IdentityKey {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let hash = KEYS.get_or_init(RandomState::new).hash_one(&text);
        IdentityKey {
            hash,
            text: text.into(),
        }
    }
}

impl PartialEq for IdentityKey {
    fn eq(&self, other: &IdentityKey) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for IdentityKey {}

/// Only the hash computed once: a map keyed by it need not hash the text again.
impl Hash for IdentityKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Identity {
    /// An operator acting as `user` (`keel run --identity`, the dashboard): no token was
    /// verified; the admin key was.
    pub fn acting_as(user: UserIdentity) -> Identity {
        Identity::User(Arc::new(VerifiedUser::new(Arc::new(user))))
    }

    /// The key of this identity's own query results; `None` when anonymous (every anonymous
    /// caller is the same to a query).
    pub(crate) fn cache_key(&self) -> Option<&IdentityKey> {
        match self {
            Identity::Anonymous => None,
            Identity::User(user) => Some(&user.cache_key),
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
