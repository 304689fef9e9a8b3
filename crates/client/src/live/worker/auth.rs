//! Authentication on the live connection, as the JS `AuthenticationManager` does it: fetch,
//! authenticate, confirm, schedule the refresh, retry on `AuthError`, sign out.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Worker;
use crate::jwt::TokenTimes;
use crate::live::{AuthMode, AuthTokenFetcher};

/// `AuthError`s in a row (each followed by a forced refetch) after which the client signs out:
/// the first rejection plus two retries.
const MAX_AUTH_RETRIES: u32 = 2;

/// Where authentication stands, as the owner of a [`LiveClient`](super::LiveClient) sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthState {
    /// No auth configured (or cleared): calls run anonymously.
    Unauthenticated,
    /// Fetching the first token or waiting for the backend to confirm it.
    Authenticating,
    /// The backend confirmed the current token.
    Authenticated,
    /// Replacing the token (scheduled refresh, or retry after an `AuthError`); the old identity
    /// stays in force on the socket meanwhile.
    Refreshing,
    /// The fetcher returned no token, or the backend rejected fresh tokens repeatedly: the
    /// session is gone. Calls now run anonymously.
    SignedOut,
}

/// The auth half of the worker's state.
pub(super) struct Auth {
    mode: AuthMode,
    /// The token in use (sent, or to send on the next socket).
    token: Option<String>,
    /// Bumped by every fetch started and every `set_auth`, so stale fetch results are ignored.
    fetch_seq: u64,
    fetching: bool,
    /// Hold back queries and requests until a token is fetched.
    pub(super) paused: bool,
    /// The identity version whose confirmation is awaited.
    awaiting: Option<u32>,
    /// `AuthError`s since the last confirmation.
    failures: u32,
    /// When to fetch the next token, and for which token it was scheduled.
    pub(super) refresh_at: Option<Instant>,
    scheduled_for: Option<String>,
    leeway: Duration,
    state: watch::Sender<AuthState>,
}

/// A finished token fetch.
pub(super) struct Fetched {
    seq: u64,
    force: bool,
    token: Option<String>,
}

impl Auth {
    pub(super) fn new(leeway: Duration, state: watch::Sender<AuthState>) -> Auth {
        Auth {
            mode: AuthMode::None,
            token: None,
            fetch_seq: 0,
            fetching: false,
            paused: false,
            awaiting: None,
            failures: 0,
            refresh_at: None,
            scheduled_for: None,
            leeway,
            state,
        }
    }

    fn set_state(&self, state: AuthState) {
        self.state
            .send_if_modified(|s| std::mem::replace(s, state) != state);
    }

    fn fetcher(&self) -> Option<AuthTokenFetcher> {
        match &self.mode {
            AuthMode::Fetcher(f) => Some(f.clone()),
            AuthMode::None | AuthMode::Static(_) => None,
        }
    }
}

impl Worker {
    /// `set_auth_fetcher` / `set_auth` / `clear_auth`.
    pub(super) async fn on_set_auth(&mut self, mode: AuthMode) {
        let auth = &mut self.auth;
        auth.fetch_seq += 1;
        auth.fetching = false;
        auth.paused = false;
        auth.awaiting = None;
        auth.failures = 0;
        auth.refresh_at = None;
        auth.scheduled_for = None;
        auth.token = None;
        match mode {
            AuthMode::None => {
                auth.mode = AuthMode::None;
                auth.set_state(AuthState::Unauthenticated);
                self.send_logout().await;
            }
            AuthMode::Static(token) => {
                auth.mode = AuthMode::Static(token.clone());
                auth.token = Some(token);
                auth.set_state(AuthState::Authenticating);
                self.send_authenticate().await;
            }
            AuthMode::Fetcher(fetcher) => {
                auth.mode = AuthMode::Fetcher(fetcher);
                auth.paused = true;
                auth.set_state(AuthState::Authenticating);
                self.start_fetch(false);
            }
        }
        self.flush().await;
    }

    /// Calls the fetcher in the background; the result comes back through `fetched`.
    fn start_fetch(&mut self, force: bool) {
        let Some(fetcher) = self.auth.fetcher() else {
            return;
        };
        self.auth.fetch_seq += 1;
        self.auth.fetching = true;
        let seq = self.auth.fetch_seq;
        let tx = self.fetched_tx.clone();
        let tasks = self.tasks.clone();
        self.tasks.spawn("token fetch", async move {
            tokio::select! {
                token = fetcher(force) => {
                    let _ = tx.send(Fetched { seq, force, token });
                }
                () = tasks.stopping() => {}
            }
        });
    }

    pub(super) async fn on_fetched(&mut self, fetched: Fetched) {
        if fetched.seq != self.auth.fetch_seq || !self.auth.fetching {
            return;
        }
        self.auth.fetching = false;
        match fetched.token {
            Some(token) => {
                tracing::debug!(force = fetched.force, "fetched an auth token");
                self.auth.token = Some(token);
                self.auth.paused = false;
                self.send_authenticate().await;
                self.flush().await;
            }
            None if !fetched.force => self.start_fetch(true),
            None => self.sign_out("the token fetcher returned no token").await,
        }
    }

    /// The scheduled refresh is due: fetch a fresh token, keep the socket and its identity.
    pub(super) fn on_refresh_due(&mut self) {
        self.auth.refresh_at = None;
        if !self.auth.fetching && self.auth.fetcher().is_some() {
            self.auth.set_state(AuthState::Refreshing);
            self.start_fetch(true);
        }
    }

    /// A new socket is open: authenticate on it before anything else is sent.
    pub(super) async fn auth_on_open(&mut self) {
        if self.auth.paused {
            return; // a fetch is in flight; its result authenticates this socket
        }
        let expired = self
            .auth
            .token
            .as_deref()
            .and_then(TokenTimes::of)
            .is_some_and(|t| t.expires_within(Duration::from_secs(1)));
        if expired && self.auth.fetcher().is_some() {
            self.auth.paused = true;
            self.auth.set_state(AuthState::Refreshing);
            self.start_fetch(true);
            return;
        }
        self.send_authenticate().await;
    }

    /// Sends `Authenticate` with the current token on the open socket, if any.
    async fn send_authenticate(&mut self) {
        let Some(token) = self.auth.token.clone() else {
            return;
        };
        if self.socket.is_none() {
            return;
        }
        let base = self.identity_version;
        let message = serde_json::json!({
            "type": "Authenticate",
            "tokenType": "User",
            "value": token,
            "baseVersion": base,
        });
        if self.send_json(message).await {
            self.identity_version = base + 1;
            self.auth.awaiting = Some(base + 1);
            self.stats.authenticates.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends `Authenticate{None}` if this socket carries an identity.
    async fn send_logout(&mut self) {
        if self.socket.is_none() || self.identity_version == 0 {
            return;
        }
        let base = self.identity_version;
        let message =
            serde_json::json!({"type": "Authenticate", "tokenType": "None", "baseVersion": base});
        if self.send_json(message).await {
            self.identity_version = base + 1;
        }
    }

    /// A transition reached identity version `identity`.
    pub(super) fn auth_on_transition(&mut self, identity: u32) {
        let Some(awaiting) = self.auth.awaiting else {
            return;
        };
        if identity < awaiting {
            return;
        }
        self.auth.awaiting = None;
        self.auth.failures = 0;
        self.auth.set_state(AuthState::Authenticated);
        if self.auth.fetcher().is_none() || self.auth.scheduled_for == self.auth.token {
            return; // static token, or the same token confirmed again after a reconnect
        }
        self.auth.scheduled_for = self.auth.token.clone();
        let delay = self
            .auth
            .token
            .as_deref()
            .and_then(TokenTimes::of)
            .and_then(|t| t.refresh_delay(self.auth.leeway));
        self.auth.refresh_at = delay.map(|d| Instant::now() + d);
        tracing::debug!(?delay, "token confirmed; next refresh scheduled");
    }

    /// The backend rejected the identity (the socket is closing).
    pub(super) async fn on_auth_error(&mut self, message: &str) {
        self.stats.auth_errors.fetch_add(1, Ordering::Relaxed);
        self.auth.awaiting = None;
        if self.auth.fetcher().is_none() {
            if matches!(self.auth.mode, AuthMode::Static(_)) {
                self.sign_out(message).await;
            }
            return;
        }
        self.auth.failures += 1;
        if self.auth.failures > MAX_AUTH_RETRIES {
            self.sign_out(message).await;
            return;
        }
        tracing::info!(%message, failures = self.auth.failures, "auth error; fetching a fresh token");
        self.auth.paused = true;
        self.auth.refresh_at = None;
        self.auth.set_state(AuthState::Refreshing);
        self.start_fetch(true);
    }

    /// Gives up on authentication: report signed out and continue anonymously.
    async fn sign_out(&mut self, reason: &str) {
        tracing::info!(%reason, "signed out");
        let auth = &mut self.auth;
        auth.mode = AuthMode::None;
        auth.token = None;
        auth.fetch_seq += 1;
        auth.fetching = false;
        auth.paused = false;
        auth.awaiting = None;
        auth.refresh_at = None;
        auth.scheduled_for = None;
        auth.set_state(AuthState::SignedOut);
        self.send_logout().await;
        self.flush().await;
    }
}
