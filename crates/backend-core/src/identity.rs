//! Who calls a function: [`Identity`] (anonymous, or a [`VerifiedUser`] whose token the backend
//! verified) and the keys derived from it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use keel_auth::UserIdentity;
use parking_lot::Mutex;

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

/// The [`VerifiedUser`] of each identity the token verifier holds, made once per identity
/// rather than once per request: the verifier hands out the same `Arc<UserIdentity>` for a
/// token while it remembers it, and making a `VerifiedUser` writes and hashes the identity's
/// JSON (its cache key). Keyed by the identity's address; an entry holds its identity, so no
/// other identity can take that address while the entry lives, and a hit is exact. Entries whose
/// identity nobody else holds any more (the verifier forgot the token) are swept as the map
/// grows.
pub(crate) struct VerifiedUsers {
    state: Mutex<(HashMap<usize, Arc<VerifiedUser>>, usize)>,
}

/// Entries kept before the first sweep.
const MIN_SWEEP_AT: usize = 1024;

impl Default for VerifiedUsers {
    fn default() -> Self {
        VerifiedUsers {
            state: Mutex::new((HashMap::new(), MIN_SWEEP_AT)),
        }
    }
}

impl VerifiedUsers {
    /// The verified user of `identity`.
    pub(crate) fn of(&self, identity: Arc<UserIdentity>) -> Arc<VerifiedUser> {
        let address = Arc::as_ptr(&identity) as usize;
        if let Some(user) = self.state.lock().0.get(&address)
            && Arc::ptr_eq(&user.identity, &identity)
        {
            return user.clone();
        }
        let user = Arc::new(VerifiedUser::new(identity));
        let mut state = self.state.lock();
        let (users, sweep_at) = &mut *state;
        if users.len() >= *sweep_at {
            users.retain(|_, user| Arc::strong_count(&user.identity) > 1);
            *sweep_at = (users.len() * 2).max(MIN_SWEEP_AT);
        }
        users.insert(address, user.clone());
        user
    }

    /// How many are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str) -> Arc<UserIdentity> {
        let fields = serde_json::json!({ "subject": subject });
        Arc::new(UserIdentity::acting_as(fields.as_object().unwrap()).unwrap())
    }

    #[test]
    fn one_verified_user_per_identity_and_forgotten_ones_are_swept() {
        let users = VerifiedUsers::default();
        let ann = identity("ann");
        let first = users.of(ann.clone());
        assert!(Arc::ptr_eq(&first, &users.of(ann.clone())));
        // Another identity (even with the same claims) is its own.
        let again = identity("ann");
        assert!(!Arc::ptr_eq(&first, &users.of(again)));
        for n in 0..2 * MIN_SWEEP_AT {
            let forgotten = identity(&format!("user {n}"));
            let user = users.of(forgotten.clone());
            assert_eq!(
                user.identity.token_identifier(),
                format!("keel-admin|user {n}")
            );
        }
        // Identities nobody holds were swept; the one still held stays.
        assert!(users.len() <= MIN_SWEEP_AT + 1);
        assert!(Arc::ptr_eq(&first, &users.of(ann)));
    }
}
