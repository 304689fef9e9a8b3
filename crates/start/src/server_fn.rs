//! Server functions: named handlers that run only on the server, called by forms (`POST
//! /_keel/fn/<name>`, `application/x-www-form-urlencoded`, works without JavaScript) or by
//! `GET /_keel/fn/<name>?…`. POSTs pass the same-origin check of [`crate::csrf`].

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use keel_client::HttpClient;

use crate::context::RouteContext;
use crate::error::RouteError;

/// Where server functions are mounted.
pub const SERVER_FN_PREFIX: &str = "/_keel/fn/";

/// The path of server function `name` (for a form's `action`).
pub fn server_fn_path(name: &str) -> String {
    format!("{SERVER_FN_PREFIX}{name}")
}

/// One call of a server function: the request's router context and its fields.
#[derive(Debug)]
pub struct ServerFnRequest {
    context: RouteContext,
    fields: Vec<(String, String)>,
}

impl ServerFnRequest {
    pub(crate) fn new(context: RouteContext, fields: Vec<(String, String)>) -> ServerFnRequest {
        ServerFnRequest { context, fields }
    }

    /// The router context (auth, server HTTP client, query client).
    pub fn context(&self) -> &RouteContext {
        &self.context
    }

    /// Form (or query-string) field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A server HTTP client carrying the visitor's backend token (the seed's
    /// `fetchClerkAuth` + `setAuth`); [`RouteError::Public`] 401 when signed out. Auth is
    /// enforced here and by the backend, never only by a page's `before_load`.
    pub async fn authenticated_client(&self) -> Result<HttpClient, RouteError> {
        let fetched = self.context.fetch_auth().await?;
        let Some(token) = fetched.token else {
            return Err(RouteError::public(
                http::StatusCode::UNAUTHORIZED,
                "Sign in first.",
            ));
        };
        self.context.set_server_auth(&token);
        Ok(self.context.server_http_client())
    }
}

/// What a server function answers.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerFnResponse {
    /// `303 See Other` to a local path (the usual answer to a form).
    Redirect(String),
    /// A JSON body.
    Json(serde_json::Value),
}

pub(crate) type ServerFnHandler = Arc<
    dyn Fn(ServerFnRequest) -> BoxFuture<'static, Result<ServerFnResponse, RouteError>>
        + Send
        + Sync,
>;

pub(crate) fn handler<F, Fut>(f: F) -> ServerFnHandler
where
    F: Fn(ServerFnRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ServerFnResponse, RouteError>> + Send + 'static,
{
    Arc::new(move |request| Box::pin(f(request)))
}

/// Whether `to` is a same-site path (`/x`, not `//host` or a URL): redirect targets taken
/// from forms must be, or an attacker could bounce visitors elsewhere.
pub fn is_local_path(to: &str) -> bool {
    to.starts_with('/') && !to.starts_with("//") && !to.starts_with("/\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        for ok in ["/", "/posts", "/posts?x=1"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "posts",
            "",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
        assert_eq!(server_fn_path("posts/create"), "/_keel/fn/posts/create");
    }
}
