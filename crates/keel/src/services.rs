//! Starting the services: the idp, the backend and the web tier, alone or together.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use keel_auth::{
    AuthConfig, ClerkAuthenticator, ClerkConfig, LocalIdpAuthenticator, LocalIdpConfig,
    ProviderConfig, PublishableKey,
};
use keel_backend::{Backend, BackendConfig, Cluster, ClusterConfig};
use keel_db::{Database, Persistence, PostgresPersistence, SqlitePersistence};
use keel_idp::{Idp, IdpConfig};
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{BackendRole, Command, Config, DatabaseLocation};

/// Runs the services `config` asks for until one of them stops.
pub(crate) async fn run(app: App, config: Config) -> anyhow::Result<()> {
    let database = config.database()?;
    let clerk = ClerkConfig::from_env().context("real Clerk settings (CLERK_*)")?;
    // With real Clerk, the backend also trusts Clerk's issuer (its Frontend API).
    let clerk_issuer = match &clerk {
        Some(clerk) => Some(format!(
            "https://{}",
            PublishableKey::parse(&clerk.publishable_key)
                .context("CLERK_PUBLISHABLE_KEY")?
                .frontend_api
        )),
        None => None,
    };
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    match config.command {
        Some(Command::Idp) => {
            let (idp, listener) = open_idp(&config).await?;
            idp.serve(listener).await?;
        }
        Some(Command::Web) => {
            let backend_url = config
                .backend_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.backend_addr));
            let idp_url = config
                .idp_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.idp_addr));
            // Only the local idp needs its secret key; real Clerk brings CLERK_SECRET_KEY.
            let secret_key = match &config.idp_secret_key {
                _ if clerk.is_some() => String::new(),
                Some(key) => key.clone(),
                None => {
                    let path = config.data_dir.join("idp").join("secret_key");
                    std::fs::read_to_string(&path)
                        .with_context(|| {
                            format!(
                                "cannot read the idp secret key from {} (set KEEL_IDP_SECRET_KEY)",
                                path.display()
                            )
                        })?
                        .trim()
                        .to_owned()
                }
            };
            let web = open_web(&app, &config, clerk, &backend_url, &idp_url, &secret_key).await?;
            serve_web(Some(web)).await?;
        }
        Some(Command::Backend) => {
            let mut issuers = config.auth_issuers.clone();
            issuers.extend(clerk_issuer);
            let (backend, listener) = open_backend(&app, &config, &database, issuers).await?;
            tokio::select! {
                result = axum::serve(listener, backend.router()).into_future() => result?,
                reason = cluster_failure(&backend) => anyhow::bail!("{reason}"),
            }
        }
        None => {
            let (idp, idp_listener) = open_idp(&config).await?;
            let mut issuers = config.auth_issuers.clone();
            issuers.push(idp.issuer().to_owned());
            issuers.extend(clerk_issuer);
            let (backend, backend_listener) =
                open_backend(&app, &config, &database, issuers).await?;
            let backend_url = match &config.backend_url {
                Some(url) => url.clone(),
                None => format!("http://{}", backend_listener.local_addr()?),
            };
            let idp_url = config
                .idp_url
                .clone()
                .unwrap_or_else(|| idp.issuer().to_owned());
            let secret_key = config
                .idp_secret_key
                .clone()
                .unwrap_or_else(|| idp.secret_key().to_owned());
            // An app without web routes runs the idp and the backend only.
            let web = match app.web {
                Some(_) => {
                    Some(open_web(&app, &config, clerk, &backend_url, &idp_url, &secret_key).await?)
                }
                None => None,
            };
            tokio::select! {
                result = idp.serve(idp_listener) => result?,
                result = axum::serve(backend_listener, backend.router()).into_future() => result?,
                result = serve_web(web) => result?,
                reason = cluster_failure(&backend) => anyhow::bail!("{reason}"),
            }
        }
    }
    Ok(())
}

/// Serves the web tier, if the app has one (never returns otherwise), with each request's peer
/// address (the visitor's address for sign-in throttling).
async fn serve_web(web: Option<(axum::Router, TcpListener)>) -> std::io::Result<()> {
    match web {
        Some((router, listener)) => {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service).await
        }
        None => std::future::pending().await,
    }
}

/// Tells the person (or script) that started `keel` where a service listens. These lines are
/// the binary's interface: tests and scripts read them.
#[allow(clippy::print_stdout)]
fn announce(line: &str) {
    println!("{line}");
}

async fn open_idp(config: &Config) -> anyhow::Result<(Idp, TcpListener)> {
    let listener = TcpListener::bind(config.idp_addr)
        .await
        .with_context(|| format!("cannot listen on {} (KEEL_IDP_ADDR)", config.idp_addr))?;
    let addr = listener.local_addr()?;
    let mut idp_config = IdpConfig::new(&config.data_dir);
    idp_config.session_token_ttl = config.session_token_ttl;
    idp_config.template_token_ttl = config.template_token_ttl;
    let idp = Idp::open(idp_config, addr).context("cannot open the identity provider")?;
    announce(&format!("idp: {}", idp.issuer()));
    announce(&format!(
        "idp secret key: {} (stored in {})",
        idp.secret_key(),
        idp.secret_key_path().display()
    ));
    Ok((idp, listener))
}

/// Resolves when this backend, a node of a cluster, can no longer serve (never otherwise).
async fn cluster_failure(backend: &Backend) -> String {
    match backend.cluster() {
        Some(cluster) => cluster.failed().await,
        None => std::future::pending().await,
    }
}

/// Where other backend nodes reach this one: the configured URL, or the listening address
/// (with the host name in place of a wildcard IP).
fn node_url(config: &Config, addr: SocketAddr) -> String {
    if let Some(url) = &config.backend_node_url {
        return url.clone();
    }
    if addr.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        return format!("http://{host}:{}", addr.port());
    }
    format!("http://{addr}")
}

/// The database and, on PostgreSQL as a cluster node, the cluster it joined.
async fn open_database(
    app: &App,
    config: &Config,
    database: &DatabaseLocation,
    addr: SocketAddr,
) -> anyhow::Result<(Database, Option<Cluster>)> {
    let schema = app.schema.clone();
    let persistence: Arc<dyn Persistence> = match database {
        DatabaseLocation::Sqlite(path) => Arc::new(
            SqlitePersistence::open(path)
                .with_context(|| format!("cannot open the SQLite database {}", path.display()))?,
        ),
        // The error names the server (never the password) and what to check.
        DatabaseLocation::Postgres(url) if config.backend_role == BackendRole::Committer => {
            Arc::new(
                PostgresPersistence::connect(url)
                    .await
                    .context("cannot open the PostgreSQL database (KEEL_DATABASE_URL)")?,
            )
        }
        DatabaseLocation::Postgres(url) => {
            let persistence = PostgresPersistence::connect_standby(url, Default::default())
                .await
                .context("cannot open the PostgreSQL database (KEEL_DATABASE_URL)")?;
            let cluster = Cluster::join(
                persistence,
                schema,
                ClusterConfig::new(node_url(config, addr)),
            )
            .await
            .context("cannot join the backend nodes on this database")?;
            return Ok((cluster.database().clone(), Some(cluster)));
        }
    };
    let db = Database::open(persistence, schema)
        .await
        .context("cannot open the database")?;
    Ok((db, None))
}

async fn open_backend(
    app: &App,
    config: &Config,
    database: &DatabaseLocation,
    issuers: Vec<String>,
) -> anyhow::Result<(Backend, TcpListener)> {
    let listener = TcpListener::bind(config.backend_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (KEEL_BACKEND_ADDR)",
                config.backend_addr
            )
        })?;
    let addr = listener.local_addr()?;
    let (db, cluster) = open_database(app, config, database, addr).await?;
    if issuers.is_empty() {
        tracing::warn!("no --auth-issuer given: the backend accepts anonymous calls only");
    }
    let auth = AuthConfig {
        providers: issuers
            .into_iter()
            .map(|domain| ProviderConfig::Oidc {
                domain,
                application_id: config.auth_application_id.clone(),
            })
            .collect(),
    };
    let backend_config = BackendConfig {
        auth,
        ..BackendConfig::default()
    };
    let functions = app.functions.clone();
    let backend = match cluster {
        Some(cluster) => {
            announce(&format!(
                "backend node: {} (forwarded calls at {})",
                if cluster.is_committer() {
                    "committer"
                } else {
                    "follower"
                },
                cluster.address()
            ));
            Backend::clustered(cluster, functions, backend_config)
        }
        None => Backend::new(db, functions, backend_config),
    };
    announce(&format!("backend: http://{addr}"));
    Ok((backend, listener))
}

/// The web tier: real Clerk when `CLERK_*` is set, else the local idp at `idp_url`.
async fn open_web(
    app: &App,
    config: &Config,
    clerk: Option<ClerkConfig>,
    backend_url: &str,
    idp_url: &str,
    secret_key: &str,
) -> anyhow::Result<(axum::Router, TcpListener)> {
    let listener = TcpListener::bind(config.web_addr)
        .await
        .with_context(|| format!("cannot listen on {} (KEEL_WEB_ADDR)", config.web_addr))?;
    let addr = listener.local_addr()?;
    let start = keel_start::StartConfig::new(backend_url);
    let mut start = match clerk {
        Some(clerk) => {
            let clerk = ClerkAuthenticator::new(clerk).context("real Clerk settings (CLERK_*)")?;
            tracing::info!(frontend_api = %clerk.publishable_key().frontend_api, "web tier uses real Clerk");
            start.with_clerk(Arc::new(clerk))
        }
        None => {
            let mut idp_config = LocalIdpConfig::new(idp_url, secret_key);
            idp_config.origin = Some(format!("http://{addr}"));
            idp_config.secure_cookies = config.served_over_https;
            start.with_local_idp(Arc::new(LocalIdpAuthenticator::new(idp_config)))
        }
    };
    start.devtools = config.devtools;
    start.trusted_proxies = config.trusted_proxies.iter().cloned().collect();
    start.served_over_https = config.served_over_https;
    let routes = app
        .web
        .as_ref()
        .context("this app has no web tier (it gave `App::web` no routes)")?;
    let web = routes(start)
        .into_router()
        .context("cannot build the web app")?;
    announce(&format!("web: http://{addr}"));
    Ok((web, listener))
}
