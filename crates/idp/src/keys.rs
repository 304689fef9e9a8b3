//! Signing keys: RSA-2048 (e = 65537), RS256, `kid` = `ins_…`, persisted; rotation keeps the
//! previous key published until the last token it signed has expired.
//!
//! On a shared (PostgreSQL) store several processes use one key set: the first to start
//! creates the key (the store makes sure only one does), any of them may rotate (the store
//! serialises rotations, so one key stays active), and each reloads the keys from the store
//! when they are older than [`KEY_REFRESH`] — so every process's JWKS lists every key still
//! valid, and all sign with the newest within that time.
//!
//! Tokens are signed with aws-lc-rs directly: the key pair stays parsed in memory, and the
//! compact JWS is just `b64(header).b64(claims).b64(signature)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::RwLock;
use serde_json::{Value, json};

use crate::error::IdpError;
use crate::store::{Store, StoredKey};

struct SigningKey {
    kid: String,
    pair: KeyPair,
    /// Unix seconds until which a retired key stays published; `ACTIVE` for the active key.
    publish_until: AtomicI64,
}

const ACTIVE: i64 = i64::MAX;

/// How old the keys of a shared store may get before they are read again (a key another
/// process added is published and used here within this time; retired keys stay published
/// a few seconds longer than their last token lives, which covers it).
pub(crate) const KEY_REFRESH: Duration = Duration::from_secs(2);

impl SigningKey {
    fn new(kid: String, pair: KeyPair, publish_until: Option<i64>) -> Arc<Self> {
        Arc::new(SigningKey {
            kid,
            pair,
            publish_until: AtomicI64::new(publish_until.unwrap_or(ACTIVE)),
        })
    }

    fn is_active(&self) -> bool {
        self.publish_until.load(Ordering::Relaxed) == ACTIVE
    }

    fn published_at(&self, now: i64) -> bool {
        self.publish_until.load(Ordering::Relaxed) >= now
    }
}

/// The active key plus retired keys still published.
pub(crate) struct KeyRing {
    keys: RwLock<Vec<Arc<SigningKey>>>,
    /// Latest `exp` of any token signed by the active key (for rotation).
    signed_until: parking_lot::Mutex<i64>,
    /// When the keys were last read from a shared store; `None` when the store is this
    /// process's alone (the ring then knows every change).
    read_at: Option<parking_lot::Mutex<Instant>>,
}

/// Parses stored keys, reusing the already parsed ones of `known` (by `kid`).
fn parse(
    stored: Vec<StoredKey>,
    known: &[Arc<SigningKey>],
) -> Result<Vec<Arc<SigningKey>>, IdpError> {
    stored
        .into_iter()
        .map(|k| {
            if let Some(old) = known.iter().find(|old| old.kid == k.kid) {
                old.publish_until
                    .store(k.publish_until.unwrap_or(ACTIVE), Ordering::Relaxed);
                return Ok(old.clone());
            }
            let pair = KeyPair::from_pkcs8(&k.pkcs8)
                .map_err(|e| IdpError::Key(format!("stored key {}: {e}", k.kid)))?;
            Ok(SigningKey::new(k.kid, pair, k.publish_until))
        })
        .collect()
}

impl KeyRing {
    /// Loads the keys, creating the first one on first start (on a shared store, unless
    /// another process just did).
    pub(crate) fn load(store: &Store, now: i64) -> Result<Self, IdpError> {
        let mut stored = store.keys()?;
        if stored.iter().all(|k| k.publish_until.is_some()) {
            let fresh = generate()?;
            store.add_first_key(&fresh, now)?;
            stored = store.keys()?;
        }
        Ok(KeyRing {
            keys: RwLock::new(parse(stored, &[])?),
            signed_until: parking_lot::Mutex::new(now),
            read_at: store
                .is_shared()
                .then(|| parking_lot::Mutex::new(Instant::now())),
        })
    }

    /// On a shared store, reads the keys again when they are older than [`KEY_REFRESH`]. A
    /// failed read keeps the keys in memory (logged) and is retried after the interval.
    pub(crate) fn refresh_if_due(&self, store: &Store) {
        let Some(read_at) = &self.read_at else {
            return;
        };
        {
            let mut read_at = read_at.lock();
            if read_at.elapsed() < KEY_REFRESH {
                return;
            }
            *read_at = Instant::now();
        }
        let known = self.keys.read().clone();
        match store.keys().and_then(|stored| parse(stored, &known)) {
            Ok(keys) if keys.iter().any(|k| k.is_active()) => *self.keys.write() = keys,
            Ok(_) => tracing::warn!(
                "the shared store holds no active signing key; keeping the keys in memory"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the signing keys from the shared store; keeping the keys in memory");
            }
        }
    }

    /// Generates a new active key; the old one stays in the JWKS until `max(exp of its
    /// tokens, now + max_ttl)` has passed. Returns the new `kid`.
    pub(crate) fn rotate(
        &self,
        store: &Store,
        now: i64,
        max_ttl_secs: i64,
    ) -> Result<String, IdpError> {
        let fresh = generate()?;
        let retire_until = (*self.signed_until.lock()).max(now + max_ttl_secs) + 5;
        store.add_active_key(&fresh, now, retire_until)?;
        let kid = fresh.kid.clone();
        let pair = KeyPair::from_pkcs8(&fresh.pkcs8).map_err(|e| IdpError::Key(e.to_string()))?;
        let mut keys = self.keys.write();
        keys.retain(|k| k.published_at(now));
        for k in keys.iter() {
            if k.is_active() {
                k.publish_until.store(retire_until, Ordering::Relaxed);
            }
        }
        keys.push(SigningKey::new(kid.clone(), pair, None));
        *self.signed_until.lock() = now;
        Ok(kid)
    }

    /// The active key's id.
    pub(crate) fn active_kid(&self) -> String {
        self.active().map(|k| k.kid.clone()).unwrap_or_default()
    }

    fn active(&self) -> Option<Arc<SigningKey>> {
        self.keys
            .read()
            .iter()
            .rev()
            .find(|k| k.is_active())
            .cloned()
    }

    /// Signs `claims` with the active key (`typ: JWT`, `cat` = token category).
    pub(crate) fn sign(&self, claims: &Value, category: &str) -> Result<String, IdpError> {
        let key = self
            .active()
            .ok_or_else(|| IdpError::Key("no active signing key".to_owned()))?;
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": key.kid, "cat": category });
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; key.pair.public_modulus_len()];
        key.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|e| IdpError::Key(format!("signing failed: {e}")))?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            let mut until = self.signed_until.lock();
            *until = (*until).max(exp);
        }
        Ok(token)
    }

    /// The JWKS: the active key and the retired keys still within their publication window.
    pub(crate) fn jwks(&self, now: i64) -> Value {
        let keys: Vec<Value> = self
            .keys
            .read()
            .iter()
            .filter(|k| k.published_at(now))
            .map(|k| {
                let public = k.pair.public_key();
                json!({
                    "use": "sig",
                    "kty": "RSA",
                    "kid": k.kid,
                    "alg": "RS256",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// The active public key as an SPKI PEM (what Clerk calls the JWT public key, `CLERK_JWT_KEY`).
    pub(crate) fn active_public_pem(&self) -> Result<String, IdpError> {
        let key = self
            .active()
            .ok_or_else(|| IdpError::Key("no active signing key".to_owned()))?;
        let der = key
            .pair
            .public_key()
            .as_der()
            .map_err(|e| IdpError::Key(e.to_string()))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(pem)
    }
}

fn generate() -> Result<StoredKey, IdpError> {
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|e| IdpError::Key(format!("RSA key generation failed: {e}")))?;
    let der = pair
        .as_der()
        .map_err(|e| IdpError::Key(format!("PKCS#8 encoding failed: {e}")))?;
    Ok(StoredKey {
        kid: crate::ids::random_id("ins"),
        pkcs8: der.as_ref().to_vec(),
        publish_until: None,
    })
}
