//! `TokenVerifier`: the backend's check of an identity token against its configured providers.

use std::sync::Arc;

use crate::config::{
    AuthConfig, ProviderConfig, SigningAlgorithm, VerifierOptions, normalize_issuer,
};
use crate::error::{AuthError, TokenRejection};
use crate::expiring::ExpiringCache;
use crate::identity::{ClaimMapping, UserIdentity};
use crate::jwks::{CachedKeys, KeyLookupError, KeySource};
use crate::jwt::{UnverifiedToken, check_times, now_secs};

/// Verifies identity tokens for the backend. Cheap to clone (an `Arc` inside); share one.
///
/// A token that verified once is remembered until it expires, so the steady-state cost of a
/// request is one hash lookup.
///
/// ```no_run
/// # async fn run() -> Result<(), keel_auth::AuthError> {
/// use keel_auth::{AuthConfig, ProviderConfig, TokenVerifier};
/// let verifier = TokenVerifier::new(AuthConfig {
///     providers: vec![ProviderConfig::Oidc {
///         domain: "http://127.0.0.1:3100".into(),
///         application_id: "convex".into(),
///     }],
/// });
/// let identity = verifier.verify("eyJ…").await?;
/// println!("{}", identity.token_identifier());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    providers: Vec<Provider>,
    options: VerifierOptions,
    /// Verified tokens, served until they expire (plus the leeway).
    verified: ExpiringCache<Box<str>, Arc<UserIdentity>>,
}

struct Provider {
    issuer: String,
    application_id: Option<String>,
    algorithms: Vec<SigningAlgorithm>,
    mapping: ClaimMapping,
    keys: CachedKeys,
}

impl Provider {
    fn reject(&self, rejection: TokenRejection) -> AuthError {
        match self.mapping {
            ClaimMapping::Oidc => AuthError::Oidc(rejection),
            ClaimMapping::CustomJwt => AuthError::CustomJwt(rejection),
        }
    }
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self
            .inner
            .providers
            .iter()
            .map(|p| p.issuer.as_str())
            .collect();
        f.debug_struct("TokenVerifier")
            .field("providers", &issuers)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for `config` with default [`VerifierOptions`] (5 s leeway, 16 KiB cap).
    pub fn new(config: AuthConfig) -> Self {
        Self::with_options(config, VerifierOptions::default())
    }

    /// A verifier with explicit options.
    pub fn with_options(config: AuthConfig, options: VerifierOptions) -> Self {
        let http = crate::http_client(options.http_timeout);
        let providers = config
            .providers
            .into_iter()
            .map(|p| {
                let issuer = p.issuer();
                let application_id = p.application_id().map(str::to_owned);
                let (source, algorithms, mapping) = match p {
                    ProviderConfig::Oidc { .. } => (
                        KeySource::Discovery {
                            issuer: issuer.clone(),
                        },
                        vec![
                            SigningAlgorithm::RS256,
                            SigningAlgorithm::ES256,
                            SigningAlgorithm::EdDSA,
                        ],
                        ClaimMapping::Oidc,
                    ),
                    ProviderConfig::CustomJwt {
                        jwks, algorithm, ..
                    } => (
                        KeySource::Url(jwks),
                        vec![algorithm],
                        ClaimMapping::CustomJwt,
                    ),
                };
                let keys = CachedKeys::new(
                    source,
                    http.clone(),
                    options.default_key_cache_ttl,
                    options.unknown_kid_refetch_interval,
                );
                Provider {
                    issuer,
                    application_id,
                    algorithms,
                    mapping,
                    keys,
                }
            })
            .collect();
        TokenVerifier {
            inner: Arc::new(Inner {
                providers,
                verified: ExpiringCache::new(options.token_cache_capacity),
                options,
            }),
        }
    }

    /// Verifies `token` and returns the identity it proves.
    pub async fn verify(&self, token: &str) -> Result<UserIdentity, AuthError> {
        self.verify_shared(token)
            .await
            .map(|identity| (*identity).clone())
    }

    /// Like [`TokenVerifier::verify`] but shares the cached identity instead of cloning it.
    pub async fn verify_shared(&self, token: &str) -> Result<Arc<UserIdentity>, AuthError> {
        let inner = &self.inner;
        let max = inner.options.max_token_bytes;
        if token.len() > max {
            return Err(AuthError::TokenTooLarge {
                size: token.len(),
                max,
            });
        }
        let leeway = i64::try_from(inner.options.leeway.as_secs()).unwrap_or(5);
        let now = now_secs();
        if let Some(hit) = inner.verified.get(token, now) {
            return Ok(hit);
        }
        let identity = Arc::new(self.verify_uncached(token, now, leeway).await?);
        let valid_until = identity.expires_at_unix().saturating_add(leeway);
        inner
            .verified
            .insert(token.into(), identity.clone(), valid_until, now);
        Ok(identity)
    }

    /// Forgets every remembered token (the next verification of each is a full one).
    pub fn forget_cached_tokens(&self) {
        self.inner.verified.clear();
    }

    /// How many verified tokens are currently remembered.
    pub fn cached_token_count(&self) -> usize {
        self.inner.verified.len()
    }

    async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
    ) -> Result<UserIdentity, AuthError> {
        let parsed = UnverifiedToken::parse(token, self.inner.options.max_token_bytes)?;
        let provider = self.provider_for(&parsed)?;
        if !provider.algorithms.contains(&parsed.alg) {
            let expected: Vec<&str> = provider.algorithms.iter().map(|a| a.as_jose()).collect();
            return Err(provider.reject(TokenRejection::AlgorithmNotAllowed {
                alg: parsed.alg.as_jose().to_owned(),
                expected: expected.join("/"),
            }));
        }
        let key = match provider.keys.key_for(&parsed).await {
            Ok(key) => key,
            Err(KeyLookupError::Unknown(rejection)) => return Err(provider.reject(rejection)),
            Err(KeyLookupError::Source(error)) => return Err(error),
        };
        key.verify(&parsed).map_err(|r| provider.reject(r))?;
        let exp = check_times(&parsed.claims, now, leeway).map_err(|r| provider.reject(r))?;
        UserIdentity::from_claims(&parsed.claims, exp, provider.mapping)
            .map_err(|r| provider.reject(r))
    }

    fn provider_for(&self, token: &UnverifiedToken<'_>) -> Result<&Provider, AuthError> {
        let providers = &self.inner.providers;
        let configured = || {
            if providers.is_empty() {
                "(no providers configured). Check the backend's auth configuration.".to_owned()
            } else {
                let list: Vec<String> = providers
                    .iter()
                    .map(|p| match &p.application_id {
                        Some(app) => format!("{} (application id `{app}`)", p.issuer),
                        None => p.issuer.clone(),
                    })
                    .collect();
                format!("configured providers: {}", list.join(", "))
            }
        };
        let Some(iss) = token.issuer() else {
            return Err(AuthError::NoAuthProvider {
                detail: format!("the token has no string `iss` claim; {}", configured()),
            });
        };
        let iss_normalized = normalize_issuer(iss);
        let audiences = token.audiences();
        let mut issuer_matched = false;
        for provider in providers {
            if provider.issuer != iss_normalized {
                continue;
            }
            issuer_matched = true;
            match &provider.application_id {
                Some(app) if !audiences.contains(&app.as_str()) => continue,
                Some(_) | None => return Ok(provider),
            }
        }
        let detail = if issuer_matched {
            format!(
                "the token's audience {audiences:?} does not contain the application id of any provider with issuer `{iss}`; {}",
                configured()
            )
        } else {
            format!("no provider has issuer `{iss}`; {}", configured())
        };
        Err(AuthError::NoAuthProvider { detail })
    }
}
