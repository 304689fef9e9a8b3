//! Signing keys: JWKS parsing, fetching (HTTP, `data:` URIs, OIDC discovery, Clerk's
//! `GET /v1/jwks`), caching by `Cache-Control`, and rate-limited refetch on an unknown `kid`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use crate::config::SigningAlgorithm;
use crate::error::{AuthError, TokenRejection};
use crate::jwt::UnverifiedToken;

/// What kind of public key a JWK holds; decides which `alg` it may verify.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyType {
    Rsa,
    EcP256,
    Ed25519,
}

impl KeyType {
    fn name(&self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::Ed25519 => "OKP Ed25519",
        }
    }

    fn verifies(&self, alg: SigningAlgorithm) -> bool {
        matches!(
            (self, alg),
            (KeyType::Rsa, SigningAlgorithm::RS256)
                | (KeyType::EcP256, SigningAlgorithm::ES256)
                | (KeyType::Ed25519, SigningAlgorithm::EdDSA)
        )
    }
}

/// One public key, ready to verify.
pub(crate) struct VerifyingKey {
    kid: Option<String>,
    key_type: KeyType,
    /// The JWK's own `alg`, when it declares one: the token's `alg` must then be equal.
    declared_alg: Option<String>,
    key: DecodingKey,
}

impl VerifyingKey {
    /// Builds a key from an SPKI PEM (Clerk's `CLERK_JWT_KEY`): RSA only.
    pub(crate) fn from_rsa_pem(pem: &str) -> Result<Self, AuthError> {
        let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            AuthError::Config(format!("CLERK_JWT_KEY is not an RSA public key PEM: {e}"))
        })?;
        Ok(VerifyingKey {
            kid: None,
            key_type: KeyType::Rsa,
            declared_alg: None,
            key,
        })
    }

    /// Checks that this key may verify `token` and that the signature is valid.
    pub(crate) fn verify(&self, token: &UnverifiedToken<'_>) -> Result<(), TokenRejection> {
        let kid = || self.kid.clone().unwrap_or_else(|| "(none)".to_owned());
        if !self.key_type.verifies(token.alg)
            || self
                .declared_alg
                .as_deref()
                .is_some_and(|a| a != token.alg.as_jose())
        {
            return Err(TokenRejection::KeyAlgorithmMismatch {
                kid: kid(),
                key_type: match &self.declared_alg {
                    Some(a) => format!("{} ({a})", self.key_type.name()),
                    None => self.key_type.name().to_owned(),
                },
                alg: token.alg.as_jose().to_owned(),
            });
        }
        match jsonwebtoken::crypto::verify(
            token.signature,
            token.signing_input.as_bytes(),
            &self.key,
            token.alg.to_jsonwebtoken(),
        ) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(TokenRejection::InvalidSignature),
        }
    }
}

/// A parsed JWKS: the keys Keel can use (symmetric and unknown key types are skipped).
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    /// A set holding one key.
    pub(crate) fn single(key: VerifyingKey) -> Self {
        KeySet {
            keys: vec![Arc::new(key)],
        }
    }

    /// Parses `{ "keys": [ … ] }`.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| format!("JWKS is not valid JSON: {e}"))?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err("JWKS has no `keys` array".to_owned());
        };
        let mut keys = Vec::with_capacity(list.len());
        for jwk in list {
            match parse_jwk(jwk) {
                Ok(Some(key)) => keys.push(Arc::new(key)),
                Ok(None) => {}
                Err(reason) => tracing::debug!(%reason, "skipping unusable JWK"),
            }
        }
        Ok(KeySet { keys })
    }

    /// The key named `kid`. A token without `kid`, or a set holding one key without `kid`
    /// (e.g. `CLERK_JWT_KEY`), uses the only key.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        if let Some(kid) = kid
            && let Some(key) = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
        {
            return Some(key.clone());
        }
        match self.keys.as_slice() {
            [only] if kid.is_none() || only.kid.is_none() => Some(only.clone()),
            _ => None,
        }
    }
}

fn parse_jwk(jwk: &Value) -> Result<Option<VerifyingKey>, String> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let (key_type, key) = match field("kty") {
        Some("RSA") => {
            let (Some(n), Some(e)) = (field("n"), field("e")) else {
                return Err("RSA JWK without n/e".to_owned());
            };
            let key = DecodingKey::from_rsa_components(n, e).map_err(|e| e.to_string())?;
            (KeyType::Rsa, key)
        }
        Some("EC") if field("crv") == Some("P-256") => {
            let (Some(x), Some(y)) = (field("x"), field("y")) else {
                return Err("EC JWK without x/y".to_owned());
            };
            let key = DecodingKey::from_ec_components(x, y).map_err(|e| e.to_string())?;
            (KeyType::EcP256, key)
        }
        Some("OKP") if field("crv") == Some("Ed25519") => {
            let Some(x) = field("x") else {
                return Err("OKP JWK without x".to_owned());
            };
            let key = DecodingKey::from_ed_components(x).map_err(|e| e.to_string())?;
            (KeyType::Ed25519, key)
        }
        _ => return Ok(None),
    };
    Ok(Some(VerifyingKey {
        kid: field("kid").map(str::to_owned),
        key_type,
        declared_alg: field("alg").map(str::to_owned),
        key,
    }))
}

/// Where a provider's keys come from.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// OIDC discovery at `<issuer>/.well-known/openid-configuration`, then `jwks_uri`.
    Discovery { issuer: String },
    /// A JWKS URL or `data:` URI.
    Url(String),
    /// Clerk's Backend API `GET {api_url}/v1/jwks` with a secret key.
    BackendApi { url: String, secret_key: String },
    /// A fixed key set (e.g. from `CLERK_JWT_KEY`).
    Static(Arc<KeySet>),
}

struct Loaded {
    keys: Arc<KeySet>,
    expires: Instant,
}

/// A provider's keys with their cache state.
pub(crate) struct CachedKeys {
    source: KeySource,
    http: reqwest::Client,
    default_ttl: Duration,
    refetch_interval: Duration,
    loaded: parking_lot::RwLock<Option<Loaded>>,
    /// Serialises fetches so a burst of requests triggers one download; holds the time of the
    /// last refetch forced by an unknown `kid`.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    /// OIDC only: the discovered `jwks_uri` and until when it may be reused.
    jwks_uri: parking_lot::Mutex<Option<(String, Instant)>>,
}

impl CachedKeys {
    pub(crate) fn new(
        source: KeySource,
        http: reqwest::Client,
        default_ttl: Duration,
        refetch_interval: Duration,
    ) -> Self {
        CachedKeys {
            source,
            http,
            default_ttl,
            refetch_interval,
            loaded: parking_lot::RwLock::new(None),
            jwks_uri: parking_lot::Mutex::new(None),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    /// The key for `token`: from the cache when fresh, else refetched; an unknown `kid`
    /// triggers one refetch at most every `refetch_interval`.
    pub(crate) async fn key_for(
        &self,
        token: &UnverifiedToken<'_>,
    ) -> Result<Arc<VerifyingKey>, KeyLookupError> {
        let kid = token.kid.as_deref();
        if let KeySource::Static(set) = &self.source {
            return set.find(kid).ok_or_else(|| unknown(kid));
        }
        let fresh = {
            let loaded = self.loaded.read();
            loaded
                .as_ref()
                .filter(|l| l.expires > Instant::now())
                .map(|l| l.keys.clone())
        };
        let keys = match fresh {
            Some(keys) => keys,
            None => self.refresh(false).await?,
        };
        if let Some(key) = keys.find(kid) {
            return Ok(key);
        }
        let keys = self.refresh(true).await?;
        keys.find(kid).ok_or_else(|| unknown(kid))
    }

    /// Fetches the key set. `forced` (unknown kid) is rate-limited: within the interval the
    /// cached set is returned as is.
    async fn refresh(&self, forced: bool) -> Result<Arc<KeySet>, KeyLookupError> {
        let mut last_forced = self.fetching.lock().await;
        let now = Instant::now();
        {
            let loaded = self.loaded.read();
            if let Some(l) = loaded.as_ref() {
                let recently =
                    last_forced.is_some_and(|t| now.duration_since(t) < self.refetch_interval);
                if forced && recently {
                    return Ok(l.keys.clone());
                }
                if !forced && l.expires > now {
                    // Someone else refreshed while we waited for the lock.
                    return Ok(l.keys.clone());
                }
            }
        }
        if forced {
            *last_forced = Some(now);
        }
        match self.fetch().await {
            Ok((keys, ttl)) => {
                let keys = Arc::new(keys);
                *self.loaded.write() = Some(Loaded {
                    keys: keys.clone(),
                    expires: now + ttl,
                });
                Ok(keys)
            }
            Err(e) => {
                let stale = self.loaded.read().as_ref().map(|l| l.keys.clone());
                match stale {
                    Some(keys) => {
                        tracing::warn!(error = %e, "key refresh failed; using the cached keys");
                        Ok(keys)
                    }
                    None => Err(KeyLookupError::Source(e)),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Duration), AuthError> {
        let (url, bearer) = match &self.source {
            KeySource::Static(set) => {
                return Ok((
                    KeySet {
                        keys: set.keys.clone(),
                    },
                    Duration::MAX / 4,
                ));
            }
            KeySource::Url(url) => (url.clone(), None),
            KeySource::BackendApi { url, secret_key } => (url.clone(), Some(secret_key.as_str())),
            KeySource::Discovery { issuer } => (self.discover(issuer).await?, None),
        };
        let fetched = fetch_document(&self.http, &url, bearer, self.default_ttl).await?;
        let keys = KeySet::parse(&fetched.body).map_err(|reason| AuthError::KeySource {
            url: short(&url),
            reason,
        })?;
        Ok((keys, fetched.ttl))
    }

    async fn discover(&self, issuer: &str) -> Result<String, AuthError> {
        if let Some((uri, until)) = self.jwks_uri.lock().as_ref()
            && *until > Instant::now()
        {
            return Ok(uri.clone());
        }
        let url = format!("{issuer}/.well-known/openid-configuration");
        let fetched = fetch_document(&self.http, &url, None, self.default_ttl).await?;
        let bad = |reason: String| AuthError::KeySource {
            url: url.clone(),
            reason,
        };
        let doc: Value = serde_json::from_slice(&fetched.body)
            .map_err(|e| bad(format!("discovery document is not JSON: {e}")))?;
        let published = doc
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if published.trim_end_matches('/') != issuer {
            return Err(bad(format!(
                "discovery document names issuer `{published}`, expected `{issuer}`"
            )));
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad("discovery document has no `jwks_uri`".to_owned()))?;
        *self.jwks_uri.lock() = Some((uri.clone(), Instant::now() + fetched.ttl));
        Ok(uri)
    }
}

/// Why no key could be found.
pub(crate) enum KeyLookupError {
    Unknown(TokenRejection),
    Source(AuthError),
}

fn unknown(kid: Option<&str>) -> KeyLookupError {
    KeyLookupError::Unknown(TokenRejection::UnknownKey {
        kid: kid.unwrap_or("(none)").to_owned(),
    })
}

struct Fetched {
    body: Vec<u8>,
    ttl: Duration,
}

const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

async fn fetch_document(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    default_ttl: Duration,
) -> Result<Fetched, AuthError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let body = decode_data_uri(rest).map_err(|reason| AuthError::KeySource {
            url: short(url),
            reason,
        })?;
        return Ok(Fetched {
            body,
            ttl: Duration::from_secs(365 * 24 * 3600),
        });
    }
    let fail = |reason: String| AuthError::KeySource {
        url: url.to_owned(),
        reason,
    };
    let mut request = http.get(url).header("accept", "application/json");
    if let Some(secret) = bearer {
        request = request.bearer_auth(secret);
    }
    let response = request
        .send()
        .await
        .map_err(|e| fail(format!("request failed: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP status {status}")));
    }
    let ttl = response
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map_or(default_ttl, |v| cache_lifetime(v, default_ttl));
    let body = response
        .bytes()
        .await
        .map_err(|e| fail(format!("reading body failed: {e}")))?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(fail(format!(
            "document is larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    Ok(Fetched {
        body: body.to_vec(),
        ttl,
    })
}

/// How long a response may be reused according to its `Cache-Control` header.
pub(crate) fn cache_lifetime(header: &str, default_ttl: Duration) -> Duration {
    let mut max_age = None;
    for directive in header.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            max_age = value
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age.unwrap_or(default_ttl)
}

/// Decodes the part of a `data:` URI after `data:` (`[mediatype][;base64],payload`).
fn decode_data_uri(rest: &str) -> Result<Vec<u8>, String> {
    let (meta, payload) = rest
        .split_once(',')
        .ok_or_else(|| "data: URI has no ',' before its payload".to_owned())?;
    if meta.ends_with(";base64") {
        let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
        let compact = percent_decode(&compact)?;
        base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&compact))
            .map_err(|e| format!("data: URI payload is not base64: {e}"))
    } else {
        percent_decode(payload)
    }
}

fn percent_decode(input: &str) -> Result<Vec<u8>, String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or("truncated %-escape in data: URI")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "bad %-escape in data: URI")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape in data: URI")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A URL safe to show in a message (`data:` URIs are cut short).
fn short(url: &str) -> String {
    if url.starts_with("data:") {
        format!("{}…", url.chars().take(40).collect::<String>())
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_lifetimes() {
        let d = Duration::from_secs(300);
        assert_eq!(
            cache_lifetime("public, max-age=60", d),
            Duration::from_secs(60)
        );
        assert_eq!(cache_lifetime("no-store", d), Duration::ZERO);
        assert_eq!(cache_lifetime("max-age=10, no-cache", d), Duration::ZERO);
        assert_eq!(cache_lifetime("public", d), d);
    }

    #[test]
    fn data_uris() {
        assert_eq!(decode_data_uri("application/json,%7B%7D").unwrap(), b"{}");
        assert_eq!(
            decode_data_uri("text/plain;charset=utf-8;base64,e30=").unwrap(),
            b"{}"
        );
        assert!(decode_data_uri("nocomma").is_err());
    }

    #[test]
    fn jwks_skips_symmetric_keys() {
        let set = KeySet::parse(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#).unwrap();
        assert!(set.find(Some("h")).is_none());
    }
}
