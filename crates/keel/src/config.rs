//! The `keel` command line: one flag per setting, each with an environment fallback.
//!
//! The flags come in groups, one per service ([`WebFlags`], [`BackendFlags`], [`IdpFlags`])
//! plus the process's own ([`ProcessFlags`]). `keel` alone runs every service and takes every
//! group; `keel web`, `keel backend` and `keel idp` take their service's group and the
//! process's, so each subcommand's `--help` lists only what applies to it. Environment
//! variables apply everywhere; a flag given before a subcommand (`keel --data-dir x backend`)
//! is refused with a message saying so, since it belongs after it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::admin_cli::{AdminCommand, AdminRequest};
use crate::listen::ListenAddr;
use crate::new::NewProject;

/// Keel: server-rendered apps on a reactive backend with one identity token.
///
/// Without a subcommand, the identity provider, the backend and the web tier run in one
/// process.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<CliCommand>,
    #[command(flatten)]
    web: WebFlags,
    #[command(flatten)]
    backend: BackendFlags,
    #[command(flatten)]
    idp: IdpFlags,
    #[command(flatten)]
    process: ProcessFlags,
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// The web tier alone (needs a running backend and idp).
    Web {
        #[command(flatten)]
        web: WebFlags,
        #[command(flatten)]
        process: ProcessFlags,
    },
    /// The backend alone.
    Backend {
        #[command(flatten)]
        backend: BackendFlags,
        #[command(flatten)]
        process: ProcessFlags,
    },
    /// The development identity provider alone.
    Idp {
        #[command(flatten)]
        idp: IdpFlags,
        #[command(flatten)]
        store: IdpStoreFlags,
        #[command(flatten)]
        process: ProcessFlags,
    },
    /// Exports a snapshot of a running deployment's tables (Convex's snapshot ZIP) to FILE.
    Export {
        /// The ZIP to write.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Include the stored files (`_storage`).
        #[arg(long = "include-file-storage")]
        include_file_storage: bool,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Imports a snapshot ZIP into a running deployment, in one commit (its tables must be
    /// empty unless --replace or --append).
    Import {
        /// The ZIP to read.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Delete the documents of the tables the snapshot names first.
        #[arg(long = "replace", conflicts_with = "append")]
        replace: bool,
        /// Add the snapshot's documents to the tables.
        #[arg(long = "append")]
        append: bool,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Lists the tables with their document counts, or a table's documents.
    Data {
        /// The table to list (default: list the tables).
        #[arg(value_name = "TABLE")]
        table: Option<String>,
        /// Most documents to print.
        #[arg(long = "limit", default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Prints the deployment's function executions (path, kind, caller, duration, outcome,
    /// error, log lines), then follows new ones until interrupted (`npx convex logs`).
    Logs {
        /// Print at most this many of the executions already logged first (default: none).
        #[arg(long = "history", value_name = "N", default_value_t = 0)]
        history: usize,
        /// Print what is logged and exit instead of following.
        #[arg(long = "once")]
        once: bool,
        /// Print each execution as one JSON object per line.
        #[arg(long = "json")]
        json: bool,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Runs a public function and prints its result as JSON.
    Run {
        /// The function, `module:name` (`posts:list`).
        #[arg(value_name = "FUNCTION")]
        function: String,
        /// Its arguments, a JSON object.
        #[arg(value_name = "ARGS", default_value = "{}")]
        args: String,
        /// Run as this user: Convex `UserIdentity` fields as JSON (`{"subject": "user_1"}`).
        #[arg(long = "identity", value_name = "JSON")]
        identity: Option<String>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Writes a new project on Keel into DIR (a new or empty directory; its name is the
    /// package's): a schema, a query and a mutation with a test, a page, a README.
    New {
        /// The project's directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The Keel checkout the project depends on by path (default: the one this binary was
        /// built from).
        #[arg(long = "keel-path", value_name = "PATH")]
        keel_path: Option<PathBuf>,
    },
}

/// The `keel` command line, parsed: which services to run and every setting.
///
/// ```
/// let config = keel::Config::try_parse_from(["keel", "web", "--web-addr", "localhost:5000"])?;
/// assert_eq!(config.command, Some(keel::Command::Web));
/// assert_eq!(config.web.addr.to_string(), "localhost:5000");
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Which service to run; all of them in one process when `None`.
    pub command: Option<Command>,
    /// The web tier's settings.
    pub web: WebFlags,
    /// The backend's settings (for `keel web`, their environment values and defaults, which
    /// give the default backend URL).
    pub backend: BackendFlags,
    /// The identity provider's settings (for `keel web`, as for the backend).
    pub idp: IdpFlags,
    /// The process's own settings.
    pub process: ProcessFlags,
    /// For `keel new`: the project to write.
    pub new_project: Option<NewProject>,
    /// For `keel export / import / data / run`: what to ask the running deployment.
    pub admin: Option<AdminCommand>,
}

/// The services `keel` can run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `keel web`: the web tier alone.
    Web,
    /// `keel backend`: the backend alone.
    Backend,
    /// `keel idp`: the development identity provider alone.
    Idp,
    /// `keel new <dir>`: write a new project ([`Config::new_project`]) and exit.
    New,
    /// `keel export / import / data / run`: ask a running deployment ([`Config::admin`]) and
    /// exit.
    Admin,
}

/// The web tier's flags.
#[derive(Debug, Clone, Args)]
#[group(skip)]
#[command(next_help_heading = "Web tier")]
pub struct WebFlags {
    /// Where the web tier listens (pages, forms, live streams): `host:port`, the host an IP
    /// address or a name.
    #[arg(
        id = "web_addr",
        value_name = "HOST:PORT",
        long = "web-addr",
        env = "KEEL_WEB_ADDR",
        default_value = "127.0.0.1:3000"
    )]
    pub addr: ListenAddr,
    /// The backend URL the web tier calls (default: the backend of this process, or
    /// `http://<KEEL_BACKEND_ADDR>` for `keel web`).
    #[arg(long = "backend-url", env = "CONVEX_URL")]
    pub backend_url: Option<String>,
    /// The identity provider the web tier uses (default: the idp of this process, or
    /// `http://<KEEL_IDP_ADDR>` for `keel web`).
    #[arg(long = "idp-url", env = "KEEL_IDP_URL")]
    pub idp_url: Option<String>,
    /// The idp's secret key for the web tier (default: read from `<data dir>/idp/secret_key`).
    #[arg(
        long = "idp-secret-key",
        env = "KEEL_IDP_SECRET_KEY",
        hide_env_values = true
    )]
    pub idp_secret_key: Option<String>,
    /// Show the devtools panel on every page: `true` by default in development (debug) builds,
    /// `false` in release builds.
    #[arg(
        long = "devtools",
        env = "KEEL_DEVTOOLS",
        num_args = 0..=1,
        default_value_t = cfg!(debug_assertions),
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub devtools: bool,
    /// Proxies in front of the web tier (addresses or CIDR ranges, comma separated) whose
    /// `X-Forwarded-For` / `Forwarded` headers name the visitor; sign-ins and sign-ups are
    /// throttled by that address. Default: none, the visitor is the socket's peer.
    #[arg(
        id = "trusted_proxies",
        value_name = "ADDRESSES",
        long = "trusted-proxy",
        env = "KEEL_TRUSTED_PROXIES"
    )]
    pub trusted_proxies: Vec<keel_start::TrustedProxies>,
    /// The site is served over HTTPS by a TLS-terminating proxy in front of the web tier: pages
    /// send `Strict-Transport-Security` and the session cookies are `Secure`.
    #[arg(
        id = "served_over_https",
        value_name = "SERVED_OVER_HTTPS",
        long = "served-over-https",
        env = "KEEL_SERVED_OVER_HTTPS",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub served_over_https: bool,
}

/// The backend's flags.
#[derive(Debug, Clone, Args)]
#[group(skip)]
#[command(next_help_heading = "Backend")]
pub struct BackendFlags {
    /// Where the backend listens (Convex HTTP API and WebSocket sync): `host:port`.
    #[arg(
        id = "backend_addr",
        value_name = "HOST:PORT",
        long = "backend-addr",
        env = "KEEL_BACKEND_ADDR",
        default_value = "127.0.0.1:3210"
    )]
    pub addr: ListenAddr,
    /// Where the app's HTTP actions are served (the site, like Convex's `.convex.site`
    /// origin): `host:port`.
    #[arg(
        id = "site_addr",
        value_name = "HOST:PORT",
        long = "site-addr",
        env = "KEEL_SITE_ADDR",
        default_value = "127.0.0.1:3211"
    )]
    pub site_addr: ListenAddr,
    /// How a backend on PostgreSQL takes part with other backends on the same database: `node`
    /// commits if no other backend does and otherwise follows the committer (serving queries
    /// and subscriptions, forwarding mutations) and takes over when it stops; `committer`
    /// refuses to start unless it becomes the committer. Ignored on SQLite.
    #[arg(
        id = "backend_role",
        value_name = "ROLE",
        long = "backend-role",
        env = "KEEL_BACKEND_ROLE",
        value_enum,
        default_value_t = BackendRole::Node
    )]
    pub role: BackendRole,
    /// The URL other backend nodes reach this backend at, to forward mutations while it is the
    /// committer (default: `http://<backend addr>`, with the host name for a wildcard address).
    #[arg(
        id = "backend_node_url",
        value_name = "URL",
        long = "backend-node-url",
        env = "KEEL_BACKEND_NODE_URL"
    )]
    pub node_url: Option<String>,
    /// The backend's database: `sqlite://<path>` (default: `<data dir>/keel.sqlite3`) or
    /// `postgres://user[:password]@host[:port]/database`.
    #[arg(long = "database-url", env = "KEEL_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Token issuers the backend accepts (OIDC discovery at `<issuer>/.well-known/…`); comma
    /// separated. Default when the idp runs in the same process: the idp's issuer.
    #[arg(long = "auth-issuer", env = "KEEL_AUTH_ISSUERS", value_delimiter = ',')]
    pub auth_issuers: Vec<String>,
    /// The audience (`aud`) tokens must carry, like Convex's `applicationID`.
    #[arg(
        long = "auth-application-id",
        env = "KEEL_AUTH_APPLICATION_ID",
        default_value = "convex"
    )]
    pub auth_application_id: String,
    /// The largest snapshot ZIP `keel import` may upload, in bytes (it is read whole before it
    /// is committed).
    #[arg(
        long = "max-import-bytes",
        env = "KEEL_MAX_IMPORT_BYTES",
        default_value_t = 512 << 20
    )]
    pub max_import_bytes: usize,
    /// Send clients the lines their calls logged (`logLines`, which the official clients print
    /// to the console): on by default, as in Convex's development; `--client-logs=false` in
    /// production. The execution log (`GET /api/admin/logs`) keeps the lines either way.
    #[arg(
        long = "client-logs",
        env = "KEEL_CLIENT_LOGS",
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub client_logs: bool,
}

/// Where `keel idp` keeps its state (the all-in-one `keel` takes it from the backend's
/// `--database-url`).
#[derive(Debug, Clone, Args)]
#[group(skip)]
#[command(next_help_heading = "Identity provider")]
pub(crate) struct IdpStoreFlags {
    /// A PostgreSQL database for the idp's users, sessions, signing keys and templates
    /// (`postgres://user[:password]@host[:port]/database`; tables in schema `keel_idp`), so
    /// several `keel idp` processes serve one user base. Default (or a `sqlite://` URL): the
    /// file `<data dir>/idp/idp.sqlite3`, which is copied into an empty PostgreSQL store once.
    #[arg(
        id = "idp_database_url",
        value_name = "URL",
        long = "database-url",
        env = "KEEL_DATABASE_URL"
    )]
    pub(crate) database_url: Option<String>,
}

/// The development identity provider's flags.
#[derive(Debug, Clone, Args)]
#[group(skip)]
#[command(next_help_heading = "Identity provider")]
pub struct IdpFlags {
    /// Where the development identity provider listens (`host:port`); its issuer is
    /// `http://<addr>` unless `--idp-issuer` says otherwise.
    #[arg(
        id = "idp_addr",
        value_name = "HOST:PORT",
        long = "idp-addr",
        env = "KEEL_IDP_ADDR",
        default_value = "127.0.0.1:3100"
    )]
    pub addr: ListenAddr,
    /// The idp's public URL, its tokens' `iss` (default `http://<idp addr>`): the balancer's
    /// URL when several `keel idp` processes share one PostgreSQL `--database-url`.
    #[arg(value_name = "URL", long = "idp-issuer", env = "KEEL_IDP_ISSUER")]
    pub issuer: Option<String>,
    /// Lifetime of idp session tokens (`60`, `90s`, `5m`).
    #[arg(
        long = "session-token-ttl",
        env = "KEEL_SESSION_TOKEN_TTL",
        default_value = "60s",
        value_parser = parse_ttl
    )]
    pub session_token_ttl: Duration,
    /// Lifetime of idp template tokens such as `convex`.
    #[arg(
        long = "template-token-ttl",
        env = "KEEL_TEMPLATE_TOKEN_TTL",
        default_value = "60s",
        value_parser = parse_ttl
    )]
    pub template_token_ttl: Duration,
    /// Refuse sign-in until the user's primary email address is verified by a code.
    #[arg(long = "require-verified-email", env = "KEEL_REQUIRE_VERIFIED_EMAIL")]
    pub require_verified_email: bool,
    /// SMTP server for verification and password-reset codes
    /// (`smtp[s]://[user[:password]@]host[:port]`; `smtp://` requires STARTTLS except on
    /// loopback). Unset: codes go to the development mailbox (logged, and listed at
    /// `<idp>/dev/mailbox`).
    #[arg(long = "smtp-url", env = "KEEL_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// Sender of the idp's emails.
    #[arg(
        long = "mail-from",
        env = "KEEL_MAIL_FROM",
        default_value = "Keel <no-reply@localhost>"
    )]
    pub mail_from: String,
    /// Endpoints that receive Clerk's webhook events (`user.*`, `session.*`), signed with the
    /// secret in `<data dir>/idp/webhook_secret`; repeat the flag or separate with commas.
    #[arg(
        long = "idp-webhook-url",
        env = "KEEL_IDP_WEBHOOK_URLS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub webhook_urls: Vec<String>,
}

/// The flags of the process, whichever services it runs.
#[derive(Debug, Clone, Args)]
#[group(skip)]
#[command(next_help_heading = "Process")]
pub struct ProcessFlags {
    /// Directory for the SQLite database, stored files (`storage/`), the idp's keys, users and
    /// secret key. The backend and the idp each lock what they own in it, so a second process
    /// cannot open them too.
    #[arg(long = "data-dir", env = "KEEL_DATA_DIR", default_value = "./.keel")]
    pub data_dir: PathBuf,
    /// The admin key operators' tools send (`Authorization: Convex <key>`). Default: the key
    /// in `<data dir>/admin_key`, generated at the backend's first start. Give every node of a
    /// cluster the same key.
    #[arg(
        long = "admin-key",
        env = "KEEL_ADMIN_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub admin_key: Option<String>,
    /// Require the admin key for `/metrics` on every service (default: open to whoever reaches
    /// the service, which listens on 127.0.0.1 unless told otherwise).
    #[arg(
        long = "metrics-require-admin-key",
        env = "KEEL_METRICS_REQUIRE_ADMIN_KEY",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub metrics_require_admin_key: bool,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish (`5s`, `500ms`,
    /// `0` to stop at once) before the process stops anyway.
    #[arg(
        long = "shutdown-timeout",
        env = "KEEL_SHUTDOWN_TIMEOUT",
        default_value = "10s",
        value_parser = parse_shutdown_timeout
    )]
    pub shutdown_timeout: Duration,
    /// Export spans (one per HTTP request, one per function execution) over OTLP, as
    /// HTTP/protobuf, to this collector: `http://127.0.0.1:4318` sends them to
    /// `http://127.0.0.1:4318/v1/traces`. Default: no export.
    #[arg(
        long = "otlp-endpoint",
        env = "KEEL_OTLP_ENDPOINT",
        value_name = "URL",
        value_parser = parse_otlp_endpoint
    )]
    pub otlp_endpoint: Option<url::Url>,
}

/// Which running deployment `keel export / import / data / run` talk to, and with which key.
#[derive(Debug, Clone, Args)]
#[group(skip)]
#[command(next_help_heading = "Deployment")]
pub struct AdminTarget {
    /// The backend's URL (default: `http://<KEEL_BACKEND_ADDR>`, the local backend).
    #[arg(long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// The deployment's admin key (default: read from `<data dir>/admin_key`).
    #[arg(
        long = "admin-key",
        env = "KEEL_ADMIN_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub admin_key: Option<String>,
    /// The data directory holding the admin key.
    #[arg(long = "data-dir", env = "KEEL_DATA_DIR", default_value = "./.keel")]
    pub data_dir: PathBuf,
}

/// See [`BackendFlags::role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendRole {
    /// Join the database's backend nodes: commit, or follow and take over.
    Node,
    /// Be the committer or exit.
    Committer,
}

fn parse_ttl(value: &str) -> Result<Duration, String> {
    keel_idp::parse_ttl(value).map_err(|e| e.to_string())
}

/// An `http://` or `https://` URL.
fn parse_otlp_endpoint(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value.trim()).map_err(|e| {
        format!("not a URL ({e}); give the collector's, e.g. http://127.0.0.1:4318")
    })?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("an OTLP endpoint is an http:// or https:// URL with a host".into()),
    }
}

/// `10`, `10s`, `500ms`, `1m`: at most ten minutes, `0` allowed.
fn parse_shutdown_timeout(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let (digits, unit) = if let Some(ms) = v.strip_suffix("ms") {
        (ms, Duration::from_millis(1))
    } else if let Some(s) = v.strip_suffix('s') {
        (s, Duration::from_secs(1))
    } else if let Some(m) = v.strip_suffix('m') {
        (m, Duration::from_secs(60))
    } else {
        (v, Duration::from_secs(1))
    };
    let n: u32 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a duration (use e.g. 10, 5s, 500ms, 1m)"))?;
    let timeout = unit * n;
    if timeout > Duration::from_secs(600) {
        return Err(format!("`{value}` is longer than 10 minutes"));
    }
    Ok(timeout)
}

/// Where the backend keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database: the `postgres://` URL (tables in its `keel` schema).
    Postgres(String),
}

/// A `--database-url` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Not a URL this build understands.
    #[error(
        "--database-url / KEEL_DATABASE_URL: `{0}` is not a database URL (expected sqlite://<path> or postgres://user@host:port/database)"
    )]
    Malformed(String),
}

impl Config {
    /// Parses the process's command line and environment; prints help, the version or a
    /// usage error and exits as clap does.
    pub fn parse() -> Config {
        Config::from_cli(Cli::parse())
    }

    /// Parses `args` (the first being the program name) and the environment.
    pub fn try_parse_from<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(Config::from_cli)
    }

    /// The subcommand's groups replace the top-level ones (which then hold environment values
    /// and defaults only).
    fn from_cli(cli: Cli) -> Config {
        let mut config = Config {
            command: None,
            web: cli.web,
            backend: cli.backend,
            idp: cli.idp,
            process: cli.process,
            new_project: None,
            admin: None,
        };
        match cli.command {
            None => {}
            Some(CliCommand::Web { web, process }) => {
                config.command = Some(Command::Web);
                config.web = web;
                config.process = process;
            }
            Some(CliCommand::Backend { backend, process }) => {
                config.command = Some(Command::Backend);
                config.backend = backend;
                config.process = process;
            }
            Some(CliCommand::Idp {
                idp,
                store,
                process,
            }) => {
                config.command = Some(Command::Idp);
                config.idp = idp;
                config.backend.database_url = store.database_url;
                config.process = process;
            }
            Some(CliCommand::Export {
                file,
                include_file_storage,
                target,
            }) => {
                config.admin = Some(AdminCommand {
                    request: AdminRequest::Export {
                        file,
                        include_file_storage,
                    },
                    target,
                });
            }
            Some(CliCommand::Import {
                file,
                replace,
                append,
                target,
            }) => {
                let mode = if replace {
                    keel_db::snapshot::ImportMode::Replace
                } else if append {
                    keel_db::snapshot::ImportMode::Append
                } else {
                    keel_db::snapshot::ImportMode::RequireEmpty
                };
                config.admin = Some(AdminCommand {
                    request: AdminRequest::Import { file, mode },
                    target,
                });
            }
            Some(CliCommand::Data {
                table,
                limit,
                target,
            }) => {
                config.admin = Some(AdminCommand {
                    request: AdminRequest::Data { table, limit },
                    target,
                });
            }
            Some(CliCommand::Logs {
                history,
                once,
                json,
                target,
            }) => {
                config.admin = Some(AdminCommand {
                    request: AdminRequest::Logs {
                        history,
                        follow: !once,
                        json,
                    },
                    target,
                });
            }
            Some(CliCommand::Run {
                function,
                args,
                identity,
                target,
            }) => {
                config.admin = Some(AdminCommand {
                    request: AdminRequest::Run {
                        function,
                        args,
                        identity,
                    },
                    target,
                });
            }
            Some(CliCommand::New { dir, keel_path }) => {
                config.command = Some(Command::New);
                config.new_project = Some(NewProject {
                    dir,
                    keel_path: keel_path.unwrap_or_else(crate::new::default_keel_path),
                });
            }
        }
        if config.admin.is_some() {
            config.command = Some(Command::Admin);
        }
        config
    }

    /// The PostgreSQL URL the idp keeps its state in (`--database-url postgres://…`), or
    /// `None` for its own SQLite file in the data directory (also when the backend's database
    /// is a SQLite file).
    pub fn idp_database_url(&self) -> Result<Option<String>, DatabaseUrlError> {
        Ok(match self.database()? {
            DatabaseLocation::Postgres(url) => Some(url),
            DatabaseLocation::Sqlite(_) => None,
        })
    }

    /// The database location from `--database-url`, or SQLite in the data directory.
    pub fn database(&self) -> Result<DatabaseLocation, DatabaseUrlError> {
        match self.backend.database_url.as_deref() {
            None => Ok(DatabaseLocation::Sqlite(
                self.process.data_dir.join("keel.sqlite3"),
            )),
            Some(url) => {
                if let Some(path) = url.strip_prefix("sqlite://") {
                    if path.is_empty() {
                        return Err(DatabaseUrlError::Malformed(url.to_owned()));
                    }
                    Ok(DatabaseLocation::Sqlite(PathBuf::from(path)))
                } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    Ok(DatabaseLocation::Postgres(url.to_owned()))
                } else {
                    Err(DatabaseUrlError::Malformed(url.to_owned()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("keel").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_embedded() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.command, None);
        assert_eq!(
            config.database().unwrap(),
            DatabaseLocation::Sqlite("./.keel/keel.sqlite3".into())
        );
        assert_eq!(config.idp.session_token_ttl, Duration::from_secs(60));
        assert_eq!(config.web.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.backend.site_addr.to_string(), "127.0.0.1:3211");
        let config = parse(&["backend", "--site-addr", "localhost:4000"]).unwrap();
        assert_eq!(config.backend.site_addr.to_string(), "localhost:4000");
        assert!(parse(&["web", "--site-addr", "localhost:4000"]).is_err());
        assert_eq!(config.web.backend_url, None);
        assert_eq!(config.backend.role, BackendRole::Node);
        assert_eq!(config.process.shutdown_timeout, Duration::from_secs(10));
        let config = parse(&["backend", "--backend-role", "committer"]).unwrap();
        assert_eq!(config.backend.role, BackendRole::Committer);
        assert!(parse(&["--backend-role", "leader"]).is_err());
    }

    #[test]
    fn operations_flags_parse() {
        let config = parse(&[]).unwrap();
        assert!(config.backend.client_logs);
        assert!(!config.process.metrics_require_admin_key);
        assert_eq!(config.process.admin_key, None);
        let config = parse(&[
            "backend",
            "--client-logs=false",
            "--metrics-require-admin-key",
            "--admin-key",
            "k-0123456789abcdef0123456789abcdef",
        ])
        .unwrap();
        assert!(!config.backend.client_logs);
        assert!(config.process.metrics_require_admin_key);
        assert_eq!(
            config.process.admin_key.as_deref(),
            Some("k-0123456789abcdef0123456789abcdef")
        );
        let error = parse(&["--client-logs", "sometimes"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--client-logs"), "{error}");
    }

    #[test]
    fn idp_webhook_urls_repeat_or_split_on_commas() {
        let config = parse(&[
            "idp",
            "--idp-webhook-url",
            "http://127.0.0.1:1/a,http://127.0.0.1:2/b",
            "--idp-webhook-url",
            "https://hooks.example/c",
        ])
        .unwrap();
        assert_eq!(
            config.idp.webhook_urls,
            [
                "http://127.0.0.1:1/a",
                "http://127.0.0.1:2/b",
                "https://hooks.example/c"
            ]
        );
        assert!(parse(&[]).unwrap().idp.webhook_urls.is_empty());
    }

    #[test]
    fn web_takes_backend_and_idp_urls() {
        let config = parse(&[
            "web",
            "--web-addr",
            "127.0.0.1:0",
            "--backend-url",
            "http://127.0.0.1:9999",
            "--idp-url",
            "http://127.0.0.1:9998",
        ])
        .unwrap();
        assert_eq!(config.command, Some(Command::Web));
        assert_eq!(
            config.web.backend_url.as_deref(),
            Some("http://127.0.0.1:9999")
        );
        assert_eq!(config.web.idp_url.as_deref(), Some("http://127.0.0.1:9998"));
        let error = parse(&["web", "--web-addr", "x"]).unwrap_err().to_string();
        assert!(error.contains("--web-addr"), "{error}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_named() {
        let error = parse(&["--session-token-ttl", "soon"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--session-token-ttl"), "{error}");
        let error = parse(&["--backend-addr", "nowhere"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--backend-addr"), "{error}");
        assert!(error.contains("no port"), "{error}");
        let error = parse(&["--shutdown-timeout", "forever"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--shutdown-timeout"), "{error}");
        let config = parse(&["--database-url", "postgres://me@db:5432/app"]).unwrap();
        assert_eq!(
            config.database().unwrap(),
            DatabaseLocation::Postgres("postgres://me@db:5432/app".into())
        );
        let config = parse(&["--database-url", "mysql://x"]).unwrap();
        let error = config.database().unwrap_err().to_string();
        assert!(error.contains("mysql://x"), "{error}");
        assert!(error.contains("--database-url"), "{error}");
    }

    #[test]
    fn subcommands_take_their_own_flags() {
        let config = parse(&[
            "backend",
            "--backend-addr",
            "127.0.0.1:0",
            "--auth-issuer",
            "http://a,http://b",
            "--data-dir",
            "/tmp/k",
        ])
        .unwrap();
        assert_eq!(config.command, Some(Command::Backend));
        assert_eq!(
            config.backend.auth_issuers,
            vec!["http://a".to_owned(), "http://b".to_owned()]
        );
        assert_eq!(config.process.data_dir, PathBuf::from("/tmp/k"));
        // Another service's flag is not one of `keel web`'s …
        let error = parse(&["web", "--backend-addr", "127.0.0.1:1"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--backend-addr"), "{error}");
        // … and a flag belongs after the subcommand.
        let error = parse(&["--data-dir", "/tmp/k", "idp"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--data-dir"), "{error}");
    }

    #[test]
    fn the_idp_keeps_its_state_where_database_url_says() {
        let pg = "postgres://me@db:5432/app";
        let config = parse(&[
            "idp",
            "--database-url",
            pg,
            "--idp-issuer",
            "https://id.example",
        ])
        .unwrap();
        assert_eq!(config.idp_database_url().unwrap().as_deref(), Some(pg));
        assert_eq!(config.idp.issuer.as_deref(), Some("https://id.example"));
        // The all-in-one process shares the backend's PostgreSQL database …
        let config = parse(&["--database-url", pg]).unwrap();
        assert_eq!(config.idp_database_url().unwrap().as_deref(), Some(pg));
        // … but a SQLite backend leaves the idp on its own file.
        let config = parse(&["--database-url", "sqlite:///tmp/app.sqlite3"]).unwrap();
        assert_eq!(config.idp_database_url().unwrap(), None);
        assert_eq!(parse(&["idp"]).unwrap().idp_database_url().unwrap(), None);
        let error = parse(&["idp", "--database-url", "mysql://x"])
            .unwrap()
            .idp_database_url()
            .unwrap_err()
            .to_string();
        assert!(error.contains("--database-url"), "{error}");
    }

    #[test]
    fn each_subcommand_lists_only_its_flags() {
        let mut cli = Cli::command();
        let help = |cli: &mut clap::Command, name: &str| -> String {
            let sub = cli.find_subcommand_mut(name).unwrap();
            sub.render_long_help().to_string()
        };
        let web = help(&mut cli, "web");
        for flag in ["--web-addr", "--backend-url", "--idp-url", "--devtools"] {
            assert!(web.contains(flag), "{flag} missing from:\n{web}");
        }
        for flag in [
            "--backend-addr",
            "--database-url",
            "--idp-addr",
            "--auth-issuer",
        ] {
            assert!(!web.contains(flag), "{flag} in `keel web --help`:\n{web}");
        }
        let backend = help(&mut cli, "backend");
        assert!(backend.contains("--database-url") && backend.contains("--data-dir"));
        assert!(!backend.contains("--web-addr") && !backend.contains("--idp-addr"));
        let idp = help(&mut cli, "idp");
        assert!(idp.contains("--session-token-ttl") && !idp.contains("--backend-addr"));
        let all = cli.render_long_help().to_string();
        for flag in [
            "--web-addr",
            "--backend-addr",
            "--idp-addr",
            "--shutdown-timeout",
        ] {
            assert!(all.contains(flag), "{flag} missing from `keel --help`");
        }
    }

    #[test]
    fn new_takes_a_directory_and_a_keel_path() {
        let config = parse(&["new", "myapp"]).unwrap();
        assert_eq!(config.command, Some(Command::New));
        let project = config.new_project.unwrap();
        assert_eq!(project.dir, PathBuf::from("myapp"));
        assert_eq!(project.keel_path, crate::new::default_keel_path());
        let config = parse(&["new", "myapp", "--keel-path", "/src/keel"]).unwrap();
        assert_eq!(
            config.new_project.unwrap().keel_path,
            PathBuf::from("/src/keel")
        );
        let error = parse(&["new"]).unwrap_err().to_string();
        assert!(error.contains("<DIR>"), "{error}");
        assert!(parse(&["new", "a", "--web-addr", "127.0.0.1:1"]).is_err());
    }

    #[test]
    fn listen_addresses_take_host_names() {
        let config = parse(&["--web-addr", "localhost:5000"]).unwrap();
        assert_eq!(config.web.addr.host(), "localhost");
        assert_eq!(config.web.addr.port(), 5000);
    }

    #[test]
    fn trusted_proxies_and_https_are_off_by_default_and_checked() {
        let config = parse(&[]).unwrap();
        assert!(config.web.trusted_proxies.is_empty() && !config.web.served_over_https);
        let config = parse(&[
            "web",
            "--trusted-proxy",
            "10.0.0.0/8,127.0.0.1",
            "--trusted-proxy",
            "::1",
            "--served-over-https",
        ])
        .unwrap();
        let proxies: keel_start::TrustedProxies = config.web.trusted_proxies.into_iter().collect();
        for trusted in ["10.1.2.3", "127.0.0.1", "::1"] {
            assert!(proxies.contains(trusted.parse().unwrap()), "{trusted}");
        }
        assert!(config.web.served_over_https);
        let error = parse(&["--trusted-proxy", "proxy.internal"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--trusted-proxy") && error.contains("proxy.internal"),
            "{error}"
        );
    }

    #[test]
    fn devtools_default_to_the_build_kind_and_can_be_set() {
        assert_eq!(parse(&[]).unwrap().web.devtools, cfg!(debug_assertions));
        assert!(parse(&["--devtools"]).unwrap().web.devtools);
        assert!(!parse(&["--devtools", "false"]).unwrap().web.devtools);
        assert!(parse(&["--devtools", "maybe"]).is_err());
        assert!(parse(&["web", "--devtools"]).unwrap().web.devtools);
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
