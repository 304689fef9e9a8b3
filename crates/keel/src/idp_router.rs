//! [`IdpRouter`]: the idp's routes answering the web tier beside it in one process, as a
//! [`keel_auth::InProcessIdp`] — the same handlers as over HTTP, without a listener.

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::ConnectInfo;
use keel_auth::{IdpFuture, InProcessIdp};
use tower::ServiceExt as _;

/// The largest Backend-API answer read (users and session lists are far smaller).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The idp's router, called in process.
pub(crate) struct IdpRouter(pub(crate) axum::Router);

impl InProcessIdp for IdpRouter {
    fn serve(&self, request: http::Request<Vec<u8>>) -> IdpFuture<'_> {
        let router = self.0.clone();
        Box::pin(async move {
            let mut request = request.map(axum::body::Body::from);
            // The peer of a call from this process, as the loopback connection would have been.
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))));
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
                Ok(bytes) => bytes.to_vec(),
                Err(error) => {
                    tracing::error!(%error, "cannot read the idp's in-process answer");
                    let mut failed = http::Response::new(Vec::new());
                    *failed.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    return failed;
                }
            };
            http::Response::from_parts(parts, bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keel_auth::{AuthError, BackendApiClient};
    use keel_testing::TestIdp;

    use super::IdpRouter;

    /// The served idp over HTTP, and the same idp's routes in process.
    fn both(idp: &TestIdp) -> (BackendApiClient, BackendApiClient) {
        let http = BackendApiClient::new(idp.idp.issuer(), idp.idp.secret_key());
        let direct = http
            .clone()
            .in_process(Arc::new(IdpRouter(idp.idp.router())));
        assert!(direct.is_in_process() && !http.is_in_process());
        (http, direct)
    }

    #[tokio::test]
    async fn answers_as_the_served_idp() {
        let idp = TestIdp::start().await;
        let (http, direct) = both(&idp);
        for (n, client) in [&http, &direct].into_iter().enumerate() {
            let email = format!("user{n}@example.com");
            let user = client
                .create_user(&email, "correct horse battery", Some("Ada"), None, None)
                .await
                .unwrap();
            assert_eq!(
                client.users_by_email(&email).await.unwrap(),
                std::slice::from_ref(&user)
            );
            assert!(
                client
                    .verify_password(&user.id, "correct horse battery", None)
                    .await
                    .unwrap()
            );
            assert!(
                !client
                    .verify_password(&user.id, "wrong one", None)
                    .await
                    .unwrap()
            );
            let session = client.create_session(&user.id).await.unwrap();
            assert!(client.session(&session.id).await.unwrap().is_active());
            let token = client.template_token(&session.id, "convex").await.unwrap();
            assert_eq!(token.split('.').count(), 3, "a JWT");
            client.session_token(&session.id).await.unwrap();
            client.revoke_session(&session.id).await.unwrap();
        }
    }

    #[tokio::test]
    async fn refusals_read_the_same() {
        let idp = TestIdp::start().await;
        let (http, direct) = both(&idp);
        let (_, session) = idp.user_session("ada@example.com").await;
        // An unknown session, an unknown template, refused input, a used email.
        let unknown_session = http.session("sess_nope").await.unwrap_err();
        assert!(matches!(unknown_session, AuthError::SessionEnded { .. }));
        assert_eq!(
            direct.session("sess_nope").await.unwrap_err(),
            unknown_session
        );
        let no_template = http.template_token(&session, "nope").await.unwrap_err();
        assert!(
            matches!(no_template, AuthError::Config(_)),
            "{no_template:?}"
        );
        assert_eq!(
            direct.template_token(&session, "nope").await.unwrap_err(),
            no_template
        );
        for (email, password) in [
            ("not an email", "correct horse battery"),
            ("b@example.com", "x"),
        ] {
            let over_http = http.create_user(email, password, None, None, None).await;
            assert!(
                matches!(over_http, Err(AuthError::InputRefused { .. })),
                "{over_http:?}"
            );
            let in_process = direct.create_user(email, password, None, None, None).await;
            assert_eq!(in_process, over_http);
        }
        // A wrong secret key is refused in process as over HTTP.
        let wrong = BackendApiClient::new(idp.idp.issuer(), "sk_test_wrong");
        let wrong_direct = wrong
            .clone()
            .in_process(Arc::new(IdpRouter(idp.idp.router())));
        let over_http = wrong.session(&session).await.unwrap_err();
        assert!(
            matches!(over_http, AuthError::BackendApi { status: 401, .. }),
            "{over_http:?}"
        );
        assert_eq!(wrong_direct.session(&session).await.unwrap_err(), over_http);
        // A revoked session's tokens end alike.
        direct.revoke_session(&session).await.unwrap();
        let ended = http.template_token(&session, "convex").await.unwrap_err();
        assert!(matches!(ended, AuthError::SessionEnded { .. }), "{ended:?}");
        assert_eq!(
            direct.template_token(&session, "convex").await.unwrap_err(),
            ended
        );
    }
}
