//! Keel identity: verifying identity tokens for the backend, and authenticating browser
//! requests for the web tier.
//!
//! * The backend builds one [`TokenVerifier`] from an [`AuthConfig`] (Convex-style OIDC
//!   providers `{ domain, application_id }` and `customJwt` providers) and calls
//!   [`TokenVerifier::verify`] for each token; it gets a [`UserIdentity`] with Convex's field
//!   names, or an [`AuthError`] with a short code and a clear message.
//! * The web tier uses an [`Authenticator`]: [`LocalIdpAuthenticator`] (Keel's development
//!   identity provider, `crates/idp`) or [`ClerkAuthenticator`] (real Clerk). Both turn a
//!   request's cookies / `Authorization` header into an [`AuthState`] and mint template tokens
//!   (`get_token(Some("convex"))`) through the Clerk Backend API.
//!
//! Only RS256, ES256 and EdDSA are accepted; `none`, HS* and keys of the wrong type are rejected;
//! tokens over 16 KiB are rejected before parsing; `exp`/`nbf`/`iat` allow 5 s of clock skew.
//!
//! # Layout
//! * `config` — [`AuthConfig`], [`ProviderConfig`], [`SigningAlgorithm`], [`VerifierOptions`].
//! * `error` — [`AuthError`] and [`TokenRejection`] (one variant per cause, with codes),
//!   including the identity service's outcomes callers act on: session ended, wrong
//!   credentials, throttled, input refused.
//! * `jwt` — splitting and decoding a compact JWT before anything is trusted; time checks.
//! * `jwks` — JWKS parsing, fetching (HTTP, `data:`, discovery, BAPI), Cache-Control caching,
//!   rate-limited refetch on unknown `kid`.
//! * `identity` — [`UserIdentity`] built from claims, Convex JSON form.
//! * `acting` — [`UserIdentity::acting_as`]: an identity an operator acts as, from Convex's
//!   `UserIdentity` fields (no token).
//! * `expiring` — the one cache of tokens that stop being served at a known time (verified
//!   session and identity tokens, minted template tokens).
//! * `verifier` — [`TokenVerifier`]: provider matching, verification, verified-token cache.
//! * `session` — Clerk-style session-token verification shared by both authenticators.
//! * `backend_api` — [`BackendApiClient`]: the Clerk Backend API subset (users, sessions,
//!   tokens), the visitor's address forwarded on sign-in and sign-up, and the one place a
//!   failed answer's status and code are read into an [`AuthError`].
//! * `in_process` — [`InProcessIdp`]: the Backend API answered in this process (the idp beside
//!   the web tier), which [`BackendApiClient::in_process`] sends its requests to.
//! * `cookies` — reading request cookies and building `Set-Cookie` values.
//! * `authenticator` — the [`Authenticator`] trait, [`AuthState`], [`Authentication`],
//!   [`PageAuthentication`].
//! * `local_idp` — [`LocalIdpAuthenticator`]: `__session` + long-lived `__client` cookies,
//!   sign-up / sign-in / sign-out against the local idp.
//! * `account` — the rest of a visitor's account on [`LocalIdpAuthenticator`]: email
//!   verification, password reset, names, password change, sessions, sign out everywhere,
//!   deleting the account ([`AccountView`]).
//! * `second_factor` — the sign-in step after the password ([`PendingSignIn`]) and turning an
//!   authenticator app on and off ([`ApiTotp`]), with their Backend-API calls.
//! * `clerk` — [`ClerkAuthenticator`] and [`PublishableKey`] for real Clerk.
//! * `handshake` — Clerk's handshake on page requests ([`PageAuthentication`]): the redirect
//!   to the Frontend API, its loop guard, and checking and applying the signed payload.
//! * [`webhooks`] — [`webhooks::WebhookVerifier`]: verifying Clerk's (and the idp's) signed
//!   webhooks in a receiver.

mod account;
mod acting;
mod authenticator;
mod backend_api;
mod clerk;
mod config;
mod cookies;
mod error;
mod expiring;
mod handshake;
mod identity;
mod in_process;
mod jwks;
mod jwt;
mod local_idp;
mod second_factor;
mod session;
mod verifier;
pub mod webhooks;

pub use account::AccountView;
pub use authenticator::{
    AuthFuture, AuthState, Authentication, Authenticator, PageAuthentication, TokenCache,
};
pub use backend_api::{ApiSession, ApiUser, BackendApiClient};
pub use clerk::{ClerkAuthenticator, ClerkConfig, InstanceType, PublishableKey};
pub use handshake::{HANDSHAKE_PARAM, MAX_HANDSHAKE_REDIRECTS, REDIRECT_COUNT_COOKIE};
pub use in_process::{IdpFuture, InProcessIdp};
pub use local_idp::{CLIENT_COOKIE, LocalIdpAuthenticator, LocalIdpConfig, SESSION_COOKIE, SignUp};
pub use second_factor::{ApiTotp, PENDING_SIGN_IN_COOKIE, PENDING_SIGN_IN_LIFETIME, PendingSignIn};

pub use acting::ACTING_ISSUER;
pub use config::{AuthConfig, ProviderConfig, SigningAlgorithm, VerifierOptions};
pub use error::{AuthError, NO_AUTH_PROVIDER_MESSAGE, OIDC_FAILURE_MESSAGE, TokenRejection};
pub use identity::UserIdentity;
pub use verifier::TokenVerifier;

/// The HTTP client used for discovery, JWKS and Backend API calls.
pub(crate) fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
