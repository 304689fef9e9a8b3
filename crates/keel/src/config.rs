//! The `keel` command line: one flag per setting, each with an environment fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Keel: server-rendered apps on a reactive backend with one identity token.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about)]
pub struct Config {
    /// Which service to run; all of them in one process when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Where the web tier listens (pages, forms, live streams).
    #[arg(
        long,
        env = "KEEL_WEB_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub web_addr: SocketAddr,
    /// The backend URL the web tier calls (default: the backend of this process, or
    /// `http://<backend addr>` for `keel web`).
    #[arg(long = "backend-url", env = "CONVEX_URL", global = true)]
    pub backend_url: Option<String>,
    /// The identity provider the web tier uses (default: the idp of this process, or
    /// `http://<idp addr>` for `keel web`).
    #[arg(long, env = "KEEL_IDP_URL", global = true)]
    pub idp_url: Option<String>,
    /// The idp's secret key for the web tier (default: read from `<data dir>/idp/secret_key`).
    #[arg(
        long,
        env = "KEEL_IDP_SECRET_KEY",
        global = true,
        hide_env_values = true
    )]
    pub idp_secret_key: Option<String>,
    /// Show the devtools panel on every page: `true` by default in development (debug) builds,
    /// `false` in release builds.
    #[arg(
        long,
        env = "KEEL_DEVTOOLS",
        global = true,
        num_args = 0..=1,
        default_value_t = cfg!(debug_assertions),
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub devtools: bool,
    /// Proxies in front of the web tier (addresses or CIDR ranges, comma separated) whose
    /// `X-Forwarded-For` / `Forwarded` headers name the visitor; sign-ins and sign-ups are
    /// throttled by that address. Default: none, the visitor is the socket's peer.
    #[arg(long = "trusted-proxy", env = "KEEL_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Vec<keel_start::TrustedProxies>,
    /// The site is served over HTTPS by a TLS-terminating proxy in front of the web tier: pages
    /// send `Strict-Transport-Security` and the session cookies are `Secure`.
    #[arg(
        long,
        env = "KEEL_SERVED_OVER_HTTPS",
        global = true,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub served_over_https: bool,
    /// Where the backend listens (Convex HTTP API and WebSocket sync).
    #[arg(
        long,
        env = "KEEL_BACKEND_ADDR",
        default_value = "127.0.0.1:3210",
        global = true
    )]
    pub backend_addr: SocketAddr,
    /// How a backend on PostgreSQL takes part with other backends on the same database: `node`
    /// commits if no other backend does and otherwise follows the committer (serving queries
    /// and subscriptions, forwarding mutations) and takes over when it dies; `committer`
    /// refuses to start unless it becomes the committer. Ignored on SQLite.
    #[arg(
        long,
        env = "KEEL_BACKEND_ROLE",
        value_enum,
        default_value_t = BackendRole::Node,
        global = true
    )]
    pub backend_role: BackendRole,
    /// The URL other backend nodes reach this backend at, to forward mutations while it is the
    /// committer (default: `http://<backend addr>`, with the host name for a wildcard address).
    #[arg(long, env = "KEEL_BACKEND_NODE_URL", global = true)]
    pub backend_node_url: Option<String>,
    /// Where the development identity provider listens; its issuer is `http://<addr>`.
    #[arg(
        long,
        env = "KEEL_IDP_ADDR",
        default_value = "127.0.0.1:3100",
        global = true
    )]
    pub idp_addr: SocketAddr,
    /// Directory for the SQLite database, the idp's keys, users and secret key.
    #[arg(long, env = "KEEL_DATA_DIR", default_value = "./.keel", global = true)]
    pub data_dir: PathBuf,
    /// The backend's database: `sqlite://<path>` (default: `<data dir>/keel.sqlite3`) or
    /// `postgres://user[:password]@host[:port]/database`.
    #[arg(long, env = "KEEL_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Lifetime of idp session tokens (`60`, `90s`, `5m`).
    #[arg(long, env = "KEEL_SESSION_TOKEN_TTL", default_value = "60s", value_parser = parse_ttl, global = true)]
    pub session_token_ttl: Duration,
    /// Lifetime of idp template tokens such as `convex`.
    #[arg(long, env = "KEEL_TEMPLATE_TOKEN_TTL", default_value = "60s", value_parser = parse_ttl, global = true)]
    pub template_token_ttl: Duration,
    /// Token issuers the backend accepts (OIDC discovery at `<issuer>/.well-known/…`); comma
    /// separated. Default when the idp runs in the same process: the idp's issuer.
    #[arg(
        long = "auth-issuer",
        env = "KEEL_AUTH_ISSUERS",
        value_delimiter = ',',
        global = true
    )]
    pub auth_issuers: Vec<String>,
    /// The audience (`aud`) tokens must carry, like Convex's `applicationID`.
    #[arg(
        long,
        env = "KEEL_AUTH_APPLICATION_ID",
        default_value = "convex",
        global = true
    )]
    pub auth_application_id: String,
}

/// The services `keel` can run.
#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// The web tier alone (needs a running backend and idp).
    Web,
    /// The backend alone.
    Backend,
    /// The development identity provider alone.
    Idp,
}

/// See [`Config::backend_role`].
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

/// Where the backend keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database: the `postgres://` URL (tables in its `keel` schema).
    Postgres(String),
}

/// A `KEEL_DATABASE_URL` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Not a URL this build understands.
    #[error(
        "KEEL_DATABASE_URL: `{0}` is not a database URL (expected sqlite://<path> or postgres://user@host:port/database)"
    )]
    Malformed(String),
}

impl Config {
    /// The database location from `--database-url`, or SQLite in the data directory.
    pub fn database(&self) -> Result<DatabaseLocation, DatabaseUrlError> {
        match self.database_url.as_deref() {
            None => Ok(DatabaseLocation::Sqlite(self.data_dir.join("keel.sqlite3"))),
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
        assert_eq!(config.session_token_ttl, Duration::from_secs(60));
        assert_eq!(config.web_addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.backend_url, None);
        assert_eq!(config.backend_role, BackendRole::Node);
        let config = parse(&["backend", "--backend-role", "committer"]).unwrap();
        assert_eq!(config.backend_role, BackendRole::Committer);
        assert!(parse(&["--backend-role", "leader"]).is_err());
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
        assert_eq!(config.backend_url.as_deref(), Some("http://127.0.0.1:9999"));
        assert_eq!(config.idp_url.as_deref(), Some("http://127.0.0.1:9998"));
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
        let config = parse(&["--database-url", "postgres://me@db:5432/app"]).unwrap();
        assert_eq!(
            config.database().unwrap(),
            DatabaseLocation::Postgres("postgres://me@db:5432/app".into())
        );
        let config = parse(&["--database-url", "mysql://x"]).unwrap();
        assert!(
            config
                .database()
                .unwrap_err()
                .to_string()
                .contains("mysql://x")
        );
    }

    #[test]
    fn subcommand_takes_global_flags() {
        let config = parse(&[
            "backend",
            "--backend-addr",
            "127.0.0.1:0",
            "--auth-issuer",
            "http://a,http://b",
        ])
        .unwrap();
        assert_eq!(config.command, Some(Command::Backend));
        assert_eq!(
            config.auth_issuers,
            vec!["http://a".to_owned(), "http://b".to_owned()]
        );
    }

    #[test]
    fn trusted_proxies_and_https_are_off_by_default_and_checked() {
        let config = parse(&[]).unwrap();
        assert!(config.trusted_proxies.is_empty() && !config.served_over_https);
        let config = parse(&[
            "web",
            "--trusted-proxy",
            "10.0.0.0/8,127.0.0.1",
            "--trusted-proxy",
            "::1",
            "--served-over-https",
        ])
        .unwrap();
        let proxies: keel_start::TrustedProxies = config.trusted_proxies.into_iter().collect();
        for trusted in ["10.1.2.3", "127.0.0.1", "::1"] {
            assert!(proxies.contains(trusted.parse().unwrap()), "{trusted}");
        }
        assert!(config.served_over_https);
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
        assert_eq!(parse(&[]).unwrap().devtools, cfg!(debug_assertions));
        assert!(parse(&["--devtools"]).unwrap().devtools);
        assert!(!parse(&["--devtools", "false"]).unwrap().devtools);
        assert!(parse(&["--devtools", "maybe"]).is_err());
    }
}
