//! [`TestIdp`]: the development identity provider, in-process.

use std::time::Duration;

use keel_auth::{AuthConfig, ProviderConfig};
use keel_backend::BackendConfig;
use keel_idp::{Idp, IdpConfig, NewUser};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// The development identity provider served on `127.0.0.1:<free port>` from a temporary
/// directory.
pub struct TestIdp {
    /// The provider, for in-process calls.
    pub idp: Idp,
    _dir: TempDir,
}

impl TestIdp {
    /// An idp whose template tokens last its default lifetime.
    pub async fn start() -> TestIdp {
        Self::start_with(|_| ()).await
    }

    /// An idp whose template tokens last `ttl`.
    pub async fn with_template_ttl(ttl: Duration) -> TestIdp {
        Self::start_with(|config| config.template_token_ttl = ttl).await
    }

    async fn start_with(adjust: impl FnOnce(&mut IdpConfig)) -> TestIdp {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = IdpConfig::new(dir.path());
        adjust(&mut config);
        let idp = Idp::open(config, addr).expect("idp opens");
        tokio::spawn(idp.clone().serve(listener));
        TestIdp { idp, _dir: dir }
    }

    /// The backend configuration trusting this idp (`applicationID: "convex"`).
    pub fn backend_config(&self) -> BackendConfig {
        BackendConfig {
            auth: AuthConfig {
                providers: vec![ProviderConfig::Oidc {
                    domain: self.idp.issuer().to_owned(),
                    application_id: "convex".to_owned(),
                }],
            },
            ..BackendConfig::default()
        }
    }

    /// A new user with a session; returns (user id, session id).
    pub async fn user_session(&self, email: &str) -> (String, String) {
        let user = self
            .idp
            .create_user(NewUser {
                email_addresses: vec![email.to_owned()],
                ..NewUser::default()
            })
            .await
            .expect("user created");
        let session = self.idp.create_session(&user.id).expect("session");
        (user.id, session.id)
    }

    /// A `convex` template token for the session, `None` once the session is revoked.
    pub fn token(&self, session_id: &str) -> Option<String> {
        self.idp.template_token(session_id, "convex", None).ok()
    }

    /// A new user and a `convex` template token for them; returns (user id, token).
    pub async fn user_token(&self, email: &str) -> (String, String) {
        self.user_token_expiring(email, None).await
    }

    /// Like [`TestIdp::user_token`], with a token lasting `expires_in` (default: the idp's
    /// template lifetime).
    pub async fn user_token_expiring(
        &self,
        email: &str,
        expires_in: Option<Duration>,
    ) -> (String, String) {
        let (user, session) = self.user_session(email).await;
        let token = self
            .idp
            .template_token(&session, "convex", expires_in)
            .expect("token");
        (user, token)
    }
}
