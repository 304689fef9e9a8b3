//! Server functions: named handlers that run only on the server (TanStack Start's
//! `createServerFn`), called by forms (`POST /_keel/fn/<name>`,
//! `application/x-www-form-urlencoded`, or `multipart/form-data` for a form with a file input;
//! works without JavaScript).
//!
//! A server function answers `POST` only, behind the same-origin check of [`crate::csrf`],
//! unless it is declared [`ServerFnMethod::Get`] (TanStack's `method: 'GET'`): then it answers
//! `GET` with its fields in the query string — a link may call it — and may only read: its
//! [`ServerFnRequest::authenticated_client`] is refused, [`ServerFnRequest::query`] works. A
//! `GET` to a `POST` function (a link from another site riding on the visitor's cookies) is
//! `405 Method Not Allowed` and runs nothing.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use keel_client::HttpClient;
use keel_protocol::{FunctionName, Public, kind};

use crate::context::RouteContext;
use crate::error::RouteError;
use crate::multipart::UploadedFile;

/// Where server functions are mounted.
pub const SERVER_FN_PREFIX: &str = "/_keel/fn/";

/// The path of server function `name` (for a form's `action`).
pub fn server_fn_path(name: &str) -> String {
    format!("{SERVER_FN_PREFIX}{name}")
}

/// How a server function is called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerFnMethod {
    /// `POST` from a form or `fetch`: may change data (the default, as in TanStack Start).
    #[default]
    Post,
    /// `GET` (and `HEAD`), fields in the query string: reads only.
    Get,
}

impl ServerFnMethod {
    /// Whether a request with `method` may call a function declared with `self`.
    pub(crate) fn answers(self, method: &http::Method) -> bool {
        match self {
            ServerFnMethod::Post => method == http::Method::POST,
            ServerFnMethod::Get => method == http::Method::GET || method == http::Method::HEAD,
        }
    }

    /// The `Allow` header of a `405` for a function declared with `self`.
    pub(crate) fn allow(self) -> &'static str {
        match self {
            ServerFnMethod::Post => "POST",
            ServerFnMethod::Get => "GET, HEAD",
        }
    }
}

/// One call of a server function: the request's router context and its fields.
#[derive(Debug)]
pub struct ServerFnRequest {
    context: RouteContext,
    method: ServerFnMethod,
    fields: Vec<(String, String)>,
    files: Vec<(String, UploadedFile)>,
}

impl ServerFnRequest {
    pub(crate) fn new(
        context: RouteContext,
        method: ServerFnMethod,
        fields: Vec<(String, String)>,
        files: Vec<(String, UploadedFile)>,
    ) -> ServerFnRequest {
        ServerFnRequest {
            context,
            method,
            fields,
            files,
        }
    }

    /// The file sent as form field `name` (a `multipart/form-data` form's
    /// `<input type="file" name="…">`), if one was chosen: a file input left empty sends no
    /// bytes and no file name, and is `None` here.
    pub fn file(&self, name: &str) -> Option<&UploadedFile> {
        self.files
            .iter()
            .find(|(k, f)| k == name && !(f.file_name.is_empty() && f.bytes.is_empty()))
            .map(|(_, f)| f)
    }

    /// How the function was declared (and so called).
    pub fn method(&self) -> ServerFnMethod {
        self.method
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

    /// A server HTTP client carrying the visitor's backend token (minted once per request
    /// by the framework), for mutations and actions; [`RouteError::Public`] 401 "Sign in
    /// first." when signed out or the session has ended ([`RouteContext::authenticated_client`]
    /// gives the typed [`RequestAuthError`](crate::RequestAuthError)). Auth is enforced here and
    /// by the backend, never only by a page's `before_load`. A [`ServerFnMethod::Get`] function
    /// may not change data and gets an internal error: it reads with [`ServerFnRequest::query`].
    pub async fn authenticated_client(&self) -> Result<HttpClient, RouteError> {
        if self.method == ServerFnMethod::Get {
            return Err(RouteError::internal(
                "a GET server function asked for a client that can change data; \
                 declare it ServerFnMethod::Post, or read with ServerFnRequest::query",
            ));
        }
        Ok(self.context.authenticated_client().await?)
    }
}

impl ServerFnRequest {
    /// Runs query `function` (a path or a typed [`QueryRef`](keel_protocol::QueryRef)) as the
    /// visitor (signed in or not) and decodes its result: how any server function, and a
    /// [`ServerFnMethod::Get`] one only, reads.
    pub async fn query<R: serde::de::DeserializeOwned, A: serde::Serialize>(
        &self,
        function: impl FunctionName<kind::Query, Public, A, R>,
        args: A,
    ) -> Result<R, RouteError> {
        self.context.query(function, args).await
    }
}

/// What a server function answers.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerFnResponse {
    /// `303 See Other` to a path on this site (the usual answer to a form); a target that
    /// leaves the site ([`crate::local_path`] refuses it) is an internal error.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods() {
        assert_eq!(server_fn_path("posts/create"), "/_keel/fn/posts/create");
        assert!(ServerFnMethod::default().answers(&http::Method::POST));
        assert!(!ServerFnMethod::Post.answers(&http::Method::GET));
        assert!(ServerFnMethod::Get.answers(&http::Method::GET));
        assert!(ServerFnMethod::Get.answers(&http::Method::HEAD));
        assert!(!ServerFnMethod::Get.answers(&http::Method::POST));
    }
}
