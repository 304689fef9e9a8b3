//! [`HttpClient`]: the Convex HTTP API (`ConvexHttpClient`), with one-snapshot reads for SSR —
//! over HTTP between processes, or through an [`InProcessBackend`] in the backend's process.

use std::sync::Arc;

use keel_protocol::http::{FunctionResponse, HttpErrorBody, QueryAtTsRequest, QueryTsResponse};
use keel_protocol::{
    CallKind, FunctionName, InProcessBackend, InProcessCall, InProcessError, Public, decode_ts,
    encode_ts, kind,
};
use keel_values::{Object, Value, from_json, to_json};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::ClientError;
use crate::convert::{args_object, decode_result};

/// The `Convex-Client` header this crate sends.
const CLIENT_HEADER: &str = concat!("keel-rust-", env!("CARGO_PKG_VERSION"));

/// A client of the Convex HTTP API (`/api/query`, `/api/mutation`, `/api/action`,
/// `/api/query_ts`, `/api/query_at_ts`).
///
/// Cheap to copy: all copies share one connection pool, so a per-request client for SSR is
/// [`HttpClient::with_auth`] (or `clone()` + [`HttpClient::set_auth`]) — no new TCP or TLS setup.
///
/// **Snapshots.** [`HttpClient::consistent_query_value`] reads at one timestamp, fetched by the
/// first consistent read and reused by every later one on this client *and its clones*, so all
/// loaders of one page see one snapshot. [`HttpClient::with_auth`] and
/// [`HttpClient::new_snapshot`] start a new snapshot.
///
/// **Transports.** [`HttpClient::new`] calls the backend over HTTP. In the backend's own process,
/// [`HttpClient::in_process`] calls it directly ([`InProcessBackend`]): no socket, no JSON text,
/// the same token verification, identity and errors — a caller cannot tell the two apart but by
/// speed. File uploads ([`HttpClient::upload_file`]) go over HTTP either way.
///
/// ```no_run
/// # async fn run() -> Result<(), keel_client::ClientError> {
/// let shared = keel_client::HttpClient::new("http://127.0.0.1:3210")?;
/// let per_request = shared.with_auth("eyJ…");
/// let n: f64 = per_request.query("counter:get", serde_json::json!({})).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    base: Arc<str>,
    /// The backend in this process, when function calls go to it directly.
    direct: Option<Arc<dyn InProcessBackend>>,
    auth: Option<Arc<str>>,
    snapshot: Arc<OnceCell<u64>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("url", &self.base)
            .field("in_process", &self.direct.is_some())
            .field("auth", &self.auth.is_some())
            .field("snapshot", &self.snapshot.get())
            .finish()
    }
}

impl HttpClient {
    /// A client of the deployment at `url` (`http://host:port`, no path) with its own
    /// connection pool.
    pub fn new(url: &str) -> Result<HttpClient, ClientError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ClientError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Self::with_http_client(url, http)
    }

    /// A client over an existing `reqwest::Client` (sharing its pool).
    pub fn with_http_client(url: &str, http: reqwest::Client) -> Result<HttpClient, ClientError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ClientError::Transport(format!("invalid deployment URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::Transport(format!(
                "deployment URL {url:?} must be http or https"
            )));
        }
        Ok(HttpClient {
            http,
            base: url.trim_end_matches('/').into(),
            direct: None,
            auth: None,
            snapshot: Arc::new(OnceCell::new()),
        })
    }

    /// A client of `backend`, running in this process: queries, mutations, actions and
    /// snapshot reads call it directly. `url` is still where it listens, for file uploads
    /// (and for the caller's other clients, such as a [`LiveClient`](crate::LiveClient)).
    ///
    /// ```no_run
    /// # fn demo(backend: keel_backend::Backend) -> Result<(), keel_client::ClientError> {
    /// let direct = keel_backend::InProcess::shared(backend);
    /// let client = keel_client::HttpClient::in_process("http://127.0.0.1:3210", direct)?;
    /// assert!(client.is_in_process());
    /// # Ok(()) }
    /// ```
    pub fn in_process(
        url: &str,
        backend: Arc<dyn InProcessBackend>,
    ) -> Result<HttpClient, ClientError> {
        Ok(HttpClient {
            direct: Some(backend),
            ..HttpClient::new(url)?
        })
    }

    /// Whether function calls go to a backend in this process ([`HttpClient::in_process`]).
    pub fn is_in_process(&self) -> bool {
        self.direct.is_some()
    }

    /// The deployment URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// A copy sending `Authorization: Bearer <token>`, sharing the pool, with a new snapshot.
    pub fn with_auth(&self, token: impl Into<String>) -> HttpClient {
        HttpClient {
            auth: Some(token.into().into()),
            snapshot: Arc::new(OnceCell::new()),
            ..self.clone()
        }
    }

    /// Sends `Authorization: Bearer <token>` from now on.
    pub fn set_auth(&mut self, token: impl Into<String>) {
        self.auth = Some(token.into().into());
    }

    /// Sends no `Authorization` header from now on.
    pub fn clear_auth(&mut self) {
        self.auth = None;
    }

    /// The token set with [`HttpClient::set_auth`], if any.
    pub fn auth(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    /// Forgets the snapshot of consistent reads (on this client only; clones keep theirs).
    pub fn new_snapshot(&mut self) {
        self.snapshot = Arc::new(OnceCell::new());
    }

    /// The snapshot timestamp of consistent reads, once one has been read.
    pub fn snapshot_ts(&self) -> Option<u64> {
        self.snapshot.get().copied()
    }

    /// Runs a query; the result as a [`Value`].
    pub async fn query_value(&self, path: &str, args: Object) -> Result<Value, ClientError> {
        self.query_shared(path, args)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// [`HttpClient::query_value`] as the value is held: in process, the backend's own (shared
    /// with its query cache), without a copy.
    pub(crate) async fn query_shared(
        &self,
        path: &str,
        args: Object,
    ) -> Result<Arc<Value>, ClientError> {
        self.call(CallKind::Query { ts: None }, path, args).await
    }

    /// Runs a query with typed arguments and result.
    pub async fn query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Query, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        decode_result(
            &*self
                .query_shared(function.path(), args_object(args)?)
                .await?,
        )
    }

    /// Runs a mutation; the result as a [`Value`].
    pub async fn mutation_value(&self, path: &str, args: Object) -> Result<Value, ClientError> {
        let value = self.call(CallKind::Mutation, path, args).await?;
        Ok(Arc::unwrap_or_clone(value))
    }

    /// Runs a mutation with typed arguments and result.
    pub async fn mutation<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Mutation, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        decode_result(
            &self
                .mutation_value(function.path(), args_object(args)?)
                .await?,
        )
    }

    /// Runs an action; the result as a [`Value`].
    pub async fn action_value(&self, path: &str, args: Object) -> Result<Value, ClientError> {
        let value = self.call(CallKind::Action, path, args).await?;
        Ok(Arc::unwrap_or_clone(value))
    }

    /// Runs an action with typed arguments and result.
    pub async fn action<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Action, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        decode_result(
            &self
                .action_value(function.path(), args_object(args)?)
                .await?,
        )
    }

    /// The deployment's latest snapshot timestamp (`POST /api/query_ts`).
    pub async fn query_ts(&self) -> Result<u64, ClientError> {
        if let Some(direct) = &self.direct {
            return Ok(direct.latest_ts());
        }
        let response = self.post("query_ts", None).await?;
        let body: QueryTsResponse = parse_body(&response)?;
        decode_ts(&body.ts).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Runs a query at snapshot `ts` (`POST /api/query_at_ts`).
    pub async fn query_at_ts_value(
        &self,
        path: &str,
        args: Object,
        ts: u64,
    ) -> Result<Value, ClientError> {
        let value = self.query_at_ts_shared(path, args, ts).await?;
        Ok(Arc::unwrap_or_clone(value))
    }

    /// [`HttpClient::query_at_ts_value`] as the value is held (see
    /// [`HttpClient::query_shared`]).
    async fn query_at_ts_shared(
        &self,
        path: &str,
        args: Object,
        ts: u64,
    ) -> Result<Arc<Value>, ClientError> {
        if self.direct.is_some() {
            return self
                .call_in_process(CallKind::Query { ts: Some(ts) }, path, args)
                .await;
        }
        let body = QueryAtTsRequest {
            path: path.to_owned(),
            args: serde_json::Value::Array(vec![to_json(&Value::Object(args))]),
            ts: encode_ts(ts),
            format: Some("convex_encoded_json".to_owned()),
        };
        let body = serde_json::to_vec(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
        function_result(&self.post("query_at_ts", Some(body)).await?).map(Arc::new)
    }

    /// Runs a query at this client's snapshot (fetched by the first consistent read), like
    /// `ConvexHttpClient.consistentQuery`.
    pub async fn consistent_query_value(
        &self,
        path: &str,
        args: Object,
    ) -> Result<Value, ClientError> {
        let value = self.consistent_query_shared(path, args).await?;
        Ok(Arc::unwrap_or_clone(value))
    }

    /// [`HttpClient::consistent_query_value`] as the value is held (see
    /// [`HttpClient::query_shared`]).
    pub(crate) async fn consistent_query_shared(
        &self,
        path: &str,
        args: Object,
    ) -> Result<Arc<Value>, ClientError> {
        let ts = *self.snapshot.get_or_try_init(|| self.query_ts()).await?;
        self.query_at_ts_shared(path, args, ts).await
    }

    /// [`HttpClient::consistent_query_value`] with typed arguments and result.
    pub async fn consistent_query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Query, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        let value = self
            .consistent_query_shared(function.path(), args_object(args)?)
            .await?;
        decode_result(&value)
    }

    /// Uploads a file's `bytes` to `upload_url`, an upload URL of this deployment (what a
    /// mutation's `ctx.storage().generate_upload_url()` returned), with `content_type`; returns
    /// the new file's storage id. A URL on another origin, or not an upload URL, is refused
    /// before anything is sent: a web tier must not be made to post a visitor's file elsewhere.
    ///
    /// ```no_run
    /// # async fn run(client: keel_client::HttpClient) -> Result<(), keel_client::ClientError> {
    /// let url: String = client.mutation("files:generateUploadUrl", serde_json::json!({})).await?;
    /// let id = client.upload_file(&url, Some("image/png"), b"\x89PNG...".to_vec()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn upload_file(
        &self,
        upload_url: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<String, ClientError> {
        let expected = format!("{}/api/storage/upload?", self.base);
        if !upload_url.starts_with(&expected) {
            return Err(ClientError::Transport(format!(
                "{upload_url:?} is not an upload URL of {}",
                self.base
            )));
        }
        let mut request = self.http.post(upload_url).body(bytes);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport(format!("POST /api/storage/upload: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(format!("POST /api/storage/upload: {e}")))?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<HttpErrorBody>(&bytes) {
                Ok(body) => (body.code, body.message),
                Err(_) => (
                    "Unknown".to_owned(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ),
            };
            return Err(ClientError::Http {
                status: status.as_u16(),
                code,
                message,
            });
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Uploaded {
            storage_id: String,
        }
        Ok(parse_body::<Uploaded>(&bytes)?.storage_id)
    }

    async fn call(
        &self,
        kind: CallKind,
        path: &str,
        args: Object,
    ) -> Result<Arc<Value>, ClientError> {
        if self.direct.is_some() {
            return self.call_in_process(kind, path, args).await;
        }
        let endpoint = match kind {
            CallKind::Query { .. } => "query",
            CallKind::Mutation => "mutation",
            CallKind::Action => "action",
        };
        let body = serde_json::json!({
            "path": path,
            "args": [to_json(&Value::Object(args))],
            "format": "convex_encoded_json",
        });
        function_result(
            &self
                .post(endpoint, Some(body.to_string().into_bytes()))
                .await?,
        )
        .map(Arc::new)
    }

    /// POSTs to `/api/<endpoint>`; non-200 answers become errors.
    async fn post(&self, endpoint: &str, body: Option<Vec<u8>>) -> Result<Vec<u8>, ClientError> {
        let mut request = self
            .http
            .post(format!("{}/api/{endpoint}", self.base))
            .header("Convex-Client", CLIENT_HEADER)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.auth {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport(format!("POST /api/{endpoint}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(format!("POST /api/{endpoint}: {e}")))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let (code, message) = match serde_json::from_slice::<HttpErrorBody>(&bytes) {
            Ok(body) => (body.code, body.message),
            Err(_) => (
                "Unknown".to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        Err(refusal(status.as_u16(), code, message))
    }

    /// Calls the backend in this process; its answers become errors exactly as the HTTP API's.
    async fn call_in_process(
        &self,
        kind: CallKind,
        path: &str,
        args: Object,
    ) -> Result<Arc<Value>, ClientError> {
        let Some(direct) = &self.direct else {
            unreachable!("callers check that the client is in process");
        };
        let call = InProcessCall {
            kind,
            path: path.to_owned(),
            args,
            token: self.auth.clone(),
        };
        direct.call(call).await.map_err(|error| match error {
            InProcessError::Refused {
                status,
                code,
                message,
            } => refusal(status, code, message),
            InProcessError::Failed { message, data } => ClientError::from_function(message, data),
        })
    }
}

/// A request the backend refused before any function ran: [`ClientError::Auth`] for 401,
/// [`ClientError::Http`] for any other status.
fn refusal(status: u16, code: String, message: String) -> ClientError {
    if status == 401 {
        ClientError::Auth { code, message }
    } else {
        ClientError::Http {
            status,
            code,
            message,
        }
    }
}

fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ClientError::Decode(format!("unexpected response body: {e}")))
}

/// Decodes a `{"status": …}` envelope in Convex JSON.
fn function_result(bytes: &[u8]) -> Result<Value, ClientError> {
    let decode =
        |j: &serde_json::Value| from_json(j).map_err(|e| ClientError::Decode(e.to_string()));
    match parse_body::<FunctionResponse>(bytes)? {
        FunctionResponse::Success { value, .. } => decode(&value),
        FunctionResponse::Error {
            error_message,
            error_data,
            ..
        } => Err(ClientError::from_function(
            error_message,
            error_data.as_ref().map(decode).transpose()?,
        )),
    }
}
