//! [`RequestAuth`]: who one request (or one pushed re-render) is for, fixed when it starts —
//! signed in with a session, or signed out — and its backend token, minted on first need and
//! reused for the rest of the request. Loaders' queries and server functions' clients get the
//! token from here; apps do not wire it themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keel_auth::{AuthError, AuthState, Authenticator};
use tokio::sync::OnceCell;

use crate::error::RouteError;

/// Why a request has no backend token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    /// The visitor is not signed in.
    #[error("the visitor is not signed in")]
    SignedOut,
    /// The session of the request's cookies is over (signed out elsewhere, revoked, expired).
    #[error("the session has ended: {reason}")]
    SessionEnded {
        /// What the identity service said.
        reason: String,
    },
    /// The identity service could not mint a token (unreachable, misconfigured).
    #[error("cannot mint a backend token: {0}")]
    Unavailable(String),
}

impl RequestAuthError {
    /// A short code naming the variant (`SignedOut`, `SessionEnded`, `Unavailable`).
    pub fn code(&self) -> &'static str {
        match self {
            RequestAuthError::SignedOut => "SignedOut",
            RequestAuthError::SessionEnded { .. } => "SessionEnded",
            RequestAuthError::Unavailable(_) => "Unavailable",
        }
    }
}

impl From<RequestAuthError> for RouteError {
    /// Signed out or ended: `401 Sign in first.`; an identity service failure is internal.
    fn from(error: RequestAuthError) -> RouteError {
        match error {
            RequestAuthError::SignedOut | RequestAuthError::SessionEnded { .. } => {
                RouteError::public(http::StatusCode::UNAUTHORIZED, "Sign in first.")
            }
            RequestAuthError::Unavailable(detail) => RouteError::internal(detail),
        }
    }
}

/// Who a request is for, and its backend token (the seed's `getAuth()` +
/// `getToken({ template: "convex" })`, done once per request by the framework).
///
/// Immutable: the state is what the request's cookies said when it started. A session found to
/// have ended when the token is minted makes [`RequestAuth::backend_token`] answer
/// [`RequestAuthError::SessionEnded`]; the page handler then renders the page again, signed out.
pub struct RequestAuth {
    state: AuthState,
    authenticator: Option<Arc<dyn Authenticator>>,
    template: Option<String>,
    token: OnceCell<Result<String, RequestAuthError>>,
    ended: AtomicBool,
}

impl std::fmt::Debug for RequestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestAuth")
            .field("user_id", &self.state.user_id)
            .field("minted", &self.token.initialized())
            .finish_non_exhaustive()
    }
}

impl RequestAuth {
    /// The request of `state`, minting tokens of `template` with `authenticator` when asked.
    pub(crate) fn new(
        state: AuthState,
        authenticator: Option<Arc<dyn Authenticator>>,
        template: Option<String>,
    ) -> RequestAuth {
        // Without an authenticator nobody is signed in.
        let state = if authenticator.is_some() {
            state
        } else {
            AuthState::signed_out()
        };
        RequestAuth {
            state,
            authenticator,
            template,
            token: OnceCell::new(),
            ended: AtomicBool::new(false),
        }
    }

    /// The session state from the request's cookies.
    pub fn state(&self) -> &AuthState {
        &self.state
    }

    /// Whether the request is signed in.
    pub fn is_signed_in(&self) -> bool {
        self.state.is_signed_in()
    }

    /// The backend token of the request, minted on the first call (reused from the
    /// authenticator's cache when it has a fresh one) and the same for every later call.
    pub async fn backend_token(&self) -> Result<String, RequestAuthError> {
        let Some(authenticator) = &self.authenticator else {
            return Err(RequestAuthError::SignedOut);
        };
        if !self.state.is_signed_in() {
            return Err(RequestAuthError::SignedOut);
        }
        self.token
            .get_or_init(|| async {
                match authenticator
                    .get_token(&self.state, self.template.as_deref())
                    .await
                {
                    Ok(Some(token)) => Ok(token),
                    Ok(None) => Err(RequestAuthError::SignedOut),
                    Err(AuthError::SessionEnded { reason }) => {
                        tracing::debug!(%reason, "the session has ended");
                        self.ended.store(true, Ordering::SeqCst);
                        Err(RequestAuthError::SessionEnded { reason })
                    }
                    Err(error) => Err(RequestAuthError::Unavailable(error.to_string())),
                }
            })
            .await
            .clone()
    }

    /// Whether minting found the session over (the page is then rendered again, signed out).
    pub(crate) fn session_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signed_out_requests_have_no_token_and_say_why() {
        let auth = RequestAuth::new(AuthState::signed_out(), None, None);
        assert!(!auth.is_signed_in());
        let error = auth.backend_token().await.unwrap_err();
        assert_eq!(error.code(), "SignedOut");
        assert_eq!(
            RouteError::from(error).status(),
            http::StatusCode::UNAUTHORIZED
        );
        // A signed-in state without an authenticator cannot be trusted: signed out.
        let claimed = AuthState {
            user_id: Some("user_1".to_owned()),
            ..AuthState::default()
        };
        assert!(!RequestAuth::new(claimed, None, None).is_signed_in());
        assert_eq!(
            RouteError::from(RequestAuthError::Unavailable("down".into())).code(),
            "Internal"
        );
    }
}
