//! `keel export / import / data / logs / run`: the command line against a running deployment,
//! like `npx convex export / import / data / logs / run`. Each request goes to the backend's admin routes
//! (`/api/admin/…`) with `Authorization: Convex <admin key>`; the URL defaults to the
//! local backend (`http://<KEEL_BACKEND_ADDR>`) and the key to `<data dir>/admin_key`, so in a
//! project directory with a running `keel` no flag is needed. Results go to stdout (JSON for
//! `data` and `run`), errors to stderr with a non-zero exit code.

use std::path::{Path, PathBuf};

use keel_db::snapshot::ImportMode;
use serde_json::Value as Json;
use tokio::io::AsyncWriteExt;

use crate::config::{AdminTarget, BackendFlags};

/// The admin key's file in the data directory.
pub(crate) const ADMIN_KEY_FILE: &str = "admin_key";

/// One `keel export / import / data / run` invocation.
#[derive(Debug, Clone)]
pub struct AdminCommand {
    /// What to ask.
    pub request: AdminRequest,
    /// Whom to ask, with which key.
    pub target: AdminTarget,
}

/// What an [`AdminCommand`] asks the deployment.
#[derive(Debug, Clone)]
pub enum AdminRequest {
    /// `keel export <file> [--include-file-storage]`.
    Export {
        /// The ZIP to write.
        file: PathBuf,
        /// Include stored files.
        include_file_storage: bool,
    },
    /// `keel import <file> [--replace | --append]`.
    Import {
        /// The ZIP to upload.
        file: PathBuf,
        /// What to do with tables that hold documents.
        mode: ImportMode,
    },
    /// `keel data [<table>] [--limit N]`.
    Data {
        /// The table to list, or `None` for the tables.
        table: Option<String>,
        /// Most documents to print.
        limit: usize,
    },
    /// `keel logs [--history N] [--once] [--json]`.
    Logs {
        /// How many already-logged executions to print first.
        history: usize,
        /// Keep following new executions (no `--once`).
        follow: bool,
        /// One JSON object per execution instead of text lines.
        json: bool,
    },
    /// `keel run <function> '<json args>' [--identity '<json>']`.
    Run {
        /// `module:name`.
        function: String,
        /// A JSON object.
        args: String,
        /// `UserIdentity` fields as JSON.
        identity: Option<String>,
    },
}

/// Why a command against a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCliError {
    /// No key given and none in the data directory.
    #[error(
        "NoAdminKey: no admin key: pass --admin-key or KEEL_ADMIN_KEY, or run in the project \
         whose data directory holds it ({0})"
    )]
    NoAdminKey(String),
    /// The backend could not be reached.
    #[error(
        "BackendUnreachable: cannot reach the backend at {url} (is `keel` running? --url): {message}"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        message: String,
    },
    /// The backend refused the admin key (401).
    #[error("Unauthorized: {0} (--admin-key / KEEL_ADMIN_KEY)")]
    Unauthorized(String),
    /// The backend refused the request.
    #[error("{}", refusal(code, message))]
    Refused {
        /// The backend's short code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The function ran and failed.
    #[error("FunctionFailed: {0}")]
    FunctionFailed(String),
    /// Bad JSON on the command line.
    #[error("BadArgument: {0}")]
    BadArgument(String),
    /// A local file could not be read or written.
    #[error("FileError: {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// `<code>: <message>`, once: the backend's messages often start with their code already.
fn refusal(code: &str, message: &str) -> String {
    if message.starts_with(&format!("{code}:")) {
        message.to_owned()
    } else {
        format!("{code}: {message}")
    }
}

impl AdminCommand {
    /// Runs the command against the deployment; prints its result on stdout.
    pub async fn run(&self, backend: &BackendFlags) -> Result<(), AdminCliError> {
        let client = Client::new(&self.target, backend)?;
        match &self.request {
            AdminRequest::Export {
                file,
                include_file_storage,
            } => client.export(file, *include_file_storage).await,
            AdminRequest::Import { file, mode } => client.import(file, *mode).await,
            AdminRequest::Data { table, limit } => client.data(table.as_deref(), *limit).await,
            AdminRequest::Logs {
                history,
                follow,
                json,
            } => client.logs(*history, *follow, *json).await,
            AdminRequest::Run {
                function,
                args,
                identity,
            } => client.run(function, args, identity.as_deref()).await,
        }
    }
}

/// The backend's URL and key, and an HTTP client.
struct Client {
    url: String,
    key: String,
    http: reqwest::Client,
}

#[allow(clippy::print_stdout)]
fn print_json(json: &Json) {
    println!(
        "{}",
        serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
    );
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> AdminCliError {
    AdminCliError::File {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

impl Client {
    fn new(target: &AdminTarget, backend: &BackendFlags) -> Result<Client, AdminCliError> {
        let url = target.url.clone().unwrap_or_else(|| {
            let host = match backend.addr.host() {
                "0.0.0.0" | "" => "127.0.0.1",
                "::" => "[::1]",
                host if host.contains(':') => {
                    return format!("http://[{host}]:{}", backend.addr.port());
                }
                host => host,
            };
            format!("http://{host}:{}", backend.addr.port())
        });
        let key = match &target.admin_key {
            Some(key) => key.clone(),
            None => {
                let path = target.data_dir.join(ADMIN_KEY_FILE);
                std::fs::read_to_string(&path)
                    .map(|k| k.trim().to_owned())
                    .map_err(|e| AdminCliError::NoAdminKey(format!("{}: {e}", path.display())))?
            }
        };
        Ok(Client {
            url: url.trim_end_matches('/').to_owned(),
            key,
            http: reqwest::Client::new(),
        })
    }

    fn request(&self, method: reqwest::Method, route: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/admin/{route}", self.url))
            .header("Authorization", format!("Convex {}", self.key))
    }

    /// Sends the request; a 2xx answer, or the backend's refusal as an error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AdminCliError> {
        let response = request
            .send()
            .await
            .map_err(|e| AdminCliError::Unreachable {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Json = response.json().await.unwrap_or(Json::Null);
        let message = body["message"]
            .as_str()
            .map_or_else(|| format!("the backend answered {status}"), str::to_owned);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(AdminCliError::Unauthorized(message));
        }
        Err(AdminCliError::Refused {
            code: body["code"].as_str().unwrap_or("HttpError").to_owned(),
            message,
        })
    }

    async fn export(&self, file: &Path, include_storage: bool) -> Result<(), AdminCliError> {
        let mut response = self
            .send(self.request(
                reqwest::Method::GET,
                &format!("export?includeStorage={include_storage}"),
            ))
            .await?;
        // Written beside the target and renamed once complete: a failed export leaves no
        // partial file under the name asked for.
        let partial = file.with_extension("zip.partial");
        let mut out = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| file_error(&partial, e))?;
        let mut written = 0u64;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| file_error(&partial, e))?;
                    written += chunk.len() as u64;
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(AdminCliError::Unreachable {
                        url: self.url.clone(),
                        message: format!("the export broke off: {e}"),
                    });
                }
            }
        }
        out.flush().await.map_err(|e| file_error(&partial, e))?;
        drop(out);
        // A ZIP ends with its central directory; without it the export broke off server-side.
        if zip_is_complete(&partial).is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(AdminCliError::Refused {
                code: "ExportFailed".into(),
                message: "the backend stopped the export half-way (see its log)".into(),
            });
        }
        tokio::fs::rename(&partial, file)
            .await
            .map_err(|e| file_error(file, e))?;
        tracing::info!(file = %file.display(), bytes = written, "exported snapshot");
        print_json(&serde_json::json!({ "file": file.display().to_string(), "bytes": written }));
        Ok(())
    }

    async fn import(&self, file: &Path, mode: ImportMode) -> Result<(), AdminCliError> {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| file_error(file, e))?;
        let mode = match mode {
            ImportMode::RequireEmpty => "requireEmpty",
            ImportMode::Replace => "replace",
            ImportMode::Append => "append",
        };
        let response = self
            .send(
                self.request(reqwest::Method::POST, &format!("import?mode={mode}"))
                    .header("Content-Type", "application/zip")
                    .body(bytes),
            )
            .await?;
        print_json(&response.json::<Json>().await.unwrap_or(Json::Null));
        Ok(())
    }

    async fn data(&self, table: Option<&str>, limit: usize) -> Result<(), AdminCliError> {
        let Some(table) = table else {
            let response = self
                .send(self.request(reqwest::Method::GET, "tables"))
                .await?;
            print_json(&response.json::<Json>().await.unwrap_or(Json::Null));
            return Ok(());
        };
        let mut documents = Vec::new();
        let mut after: Option<String> = None;
        while documents.len() < limit {
            let mut route = format!(
                "tables/{}?limit={}",
                percent_encode(table),
                (limit - documents.len()).min(1000)
            );
            if let Some(after) = &after {
                route.push_str(&format!("&after={}", percent_encode(after)));
            }
            let page: Json = self
                .send(self.request(reqwest::Method::GET, &route))
                .await?
                .json()
                .await
                .unwrap_or(Json::Null);
            if let Some(page_documents) = page["documents"].as_array() {
                documents.extend(page_documents.iter().cloned());
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        print_json(&Json::Array(documents));
        Ok(())
    }

    async fn logs(&self, history: usize, follow: bool, json: bool) -> Result<(), AdminCliError> {
        // The cursor to start from: the `history` newest entries still kept.
        let newest: Json = self
            .send(self.request(
                reqwest::Method::GET,
                "logs?limit=1&after=18446744073709551615",
            ))
            .await?
            .json()
            .await
            .unwrap_or(Json::Null);
        let end = newest["cursor"].as_u64().unwrap_or(0);
        let mut cursor = end.saturating_sub(history as u64);
        loop {
            let wait = if follow { LOGS_WAIT_MS } else { 0 };
            let page: Json = self
                .send(self.request(
                    reqwest::Method::GET,
                    &format!("logs?after={cursor}&limit=1000&wait={wait}"),
                ))
                .await?
                .json()
                .await
                .unwrap_or(Json::Null);
            if let Some(missed) = page["missed"].as_u64().filter(|m| *m > 0) {
                tracing::warn!(
                    missed,
                    "executions left the log before they could be printed"
                );
            }
            let entries = page["entries"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for entry in entries {
                print_execution(entry, json);
            }
            cursor = page["cursor"].as_u64().unwrap_or(cursor);
            if !follow && entries.is_empty() {
                return Ok(());
            }
        }
    }

    async fn run(
        &self,
        function: &str,
        args: &str,
        identity: Option<&str>,
    ) -> Result<(), AdminCliError> {
        let args: Json = serde_json::from_str(args)
            .map_err(|e| AdminCliError::BadArgument(format!("the arguments are not JSON: {e}")))?;
        let identity: Option<Json> = identity
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| AdminCliError::BadArgument(format!("--identity is not JSON: {e}")))?;
        let mut body = serde_json::json!({ "path": function, "args": args });
        if let Some(identity) = identity {
            body["identity"] = identity;
        }
        let outcome: Json = self
            .send(self.request(reqwest::Method::POST, "run").json(&body))
            .await?
            .json()
            .await
            .unwrap_or(Json::Null);
        match outcome["status"].as_str() {
            Some("success") => {
                let value = keel_values::from_json(&outcome["value"]).map_err(|e| {
                    AdminCliError::FunctionFailed(format!("unreadable result: {e}"))
                })?;
                print_json(&keel_db::snapshot::value_to_export_json(&value));
                Ok(())
            }
            _ => Err(AdminCliError::FunctionFailed(
                outcome["errorMessage"]
                    .as_str()
                    .unwrap_or("the function failed")
                    .to_owned(),
            )),
        }
    }
}

/// How long one `keel logs` request waits for a new execution, in milliseconds.
const LOGS_WAIT_MS: u64 = 25_000;

/// Prints one execution-log entry: a JSON line, or a header line (time, kind and path,
/// outcome, duration, caller) followed by its log lines and error, indented.
#[allow(clippy::print_stdout)]
fn print_execution(entry: &Json, json: bool) {
    if json {
        println!("{entry}");
        return;
    }
    let kind = match entry["kind"].as_str() {
        Some("query") => "Q",
        Some("mutation") => "M",
        Some("action") => "A",
        Some("httpAction") => "H",
        _ => "?",
    };
    let started = entry["startedAtMs"]
        .as_i64()
        .map(|ms| keel_values::utc::UtcTime::from_unix_ms(ms).rfc3339_ms())
        .unwrap_or_default();
    println!(
        "{started} {kind}({path}) {outcome} {duration:.1} ms caller={caller}",
        path = entry["path"].as_str().unwrap_or(""),
        outcome = entry["outcome"].as_str().unwrap_or(""),
        duration = entry["durationMs"].as_f64().unwrap_or(0.0),
        caller = entry["caller"].as_str().unwrap_or(""),
    );
    for line in entry["logLines"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        println!(
            "    [{}] {}",
            line["level"].as_str().unwrap_or("log").to_uppercase(),
            line["message"].as_str().unwrap_or("")
        );
    }
    if let Some(error) = entry["error"].as_str() {
        // A multi-line error (Convex's validation messages) stays indented under its entry.
        println!("    error: {}", error.replace('\n', "\n           "));
    }
}

/// Whether the file ends with a ZIP's end-of-central-directory record (the last thing an
/// export writes).
fn zip_is_complete(path: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let tail = &bytes[bytes.len().saturating_sub(66_000)..];
    if tail.windows(4).any(|w| w == b"PK\x05\x06") {
        Ok(())
    } else {
        Err(std::io::Error::other("no end of central directory"))
    }
}

/// A table name in a URL path (names are identifiers, so only a hostile one needs this).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
