//! Opening the services — the idp, the backend and the web tier, alone or together — before
//! any of them serves: every listener is bound first (a taken port fails before a file is
//! touched), then each service locks what it owns in the data directory and opens it. Only
//! once everything is open are the service lines printed, so a start-up that fails prints
//! none of them; its error names the flag to change and its environment variable. A web tier
//! with the backend and the idp in its process calls them directly (no loopback HTTP).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use keel_auth::{
    AuthConfig, ClerkAuthenticator, ClerkConfig, InProcessIdp, LocalIdpAuthenticator,
    LocalIdpConfig, ProviderConfig, PublishableKey,
};
use keel_backend::{
    AdminKey, Backend, BackendConfig, BlobStorage, Cluster, ClusterConfig, InProcess, StorageConfig,
};
use keel_client::InProcessBackend;
use keel_db::blobs::LocalBlobStore;
use keel_db::{Database, Persistence, PostgresPersistence, SqlitePersistence};
use keel_idp::{Idp, IdpConfig};
use keel_metrics::MetricsAccess;
use keel_tasks::Tasks;

use crate::app::App;
use crate::config::{BackendRole, Command, Config, DatabaseLocation};
use crate::idp_router::IdpRouter;
use crate::listen::{BACKEND_ADDR, Bound, IDP_ADDR, SITE_ADDR, WEB_ADDR, bind};
use crate::lock::DataLock;

/// The services of this process, open and bound, not serving yet.
pub(crate) struct Services {
    pub(crate) idp: Option<IdpService>,
    pub(crate) backend: Option<BackendService>,
    pub(crate) web: Option<WebService>,
    /// The admin key, and where it came from (for the `admin key:` line).
    pub(crate) admin_key: Option<(AdminKey, AdminKeySource)>,
}

/// Where the process's admin key came from.
#[derive(Clone, Debug)]
pub(crate) enum AdminKeySource {
    /// `--admin-key` / `KEEL_ADMIN_KEY`.
    Given,
    /// The file in the data directory (written at the backend's first start).
    File(PathBuf),
}

/// The identity provider, its listener and its lock.
pub(crate) struct IdpService {
    pub(crate) idp: Idp,
    pub(crate) bound: Bound,
    pub(crate) lock: DataLock,
    /// Who may read its `/metrics`.
    pub(crate) metrics_access: MetricsAccess,
}

/// The backend, its listeners (API and site) and (on SQLite) its lock.
pub(crate) struct BackendService {
    pub(crate) backend: Backend,
    pub(crate) bound: Bound,
    /// The app's HTTP actions (`--site-addr`).
    pub(crate) site: Bound,
    pub(crate) lock: Option<DataLock>,
    /// The dashboard's configuration: the idp's Backend API when the idp runs in this process.
    pub(crate) dashboard: keel_backend::DashboardConfig,
}

/// The web tier's router, its listener and its background tasks.
pub(crate) struct WebService {
    pub(crate) router: axum::Router,
    pub(crate) bound: Bound,
    /// Live page streams and sessions (see `StartConfig::tasks`).
    pub(crate) tasks: Tasks,
    /// The web tier's metrics (its live pages, shown by the dashboard in one process).
    pub(crate) metrics: keel_metrics::Registry,
}

/// Where each service listens, bound before anything is opened.
struct Listeners {
    idp: Option<Bound>,
    /// The backend's API and its site.
    backend: Option<(Bound, Bound)>,
    web: Option<Bound>,
}

impl Listeners {
    async fn bind(app: &App, config: &Config) -> anyhow::Result<Listeners> {
        let (idp, backend, web) = match config.command {
            None => (true, true, app.web.is_some()),
            Some(Command::Idp) => (true, false, false),
            Some(Command::Backend) => (false, true, false),
            Some(Command::Web) => (false, false, true),
            Some(Command::New | Command::Admin) => (false, false, false),
        };
        Ok(Listeners {
            idp: if idp {
                Some(bind(&config.idp.addr, IDP_ADDR).await?)
            } else {
                None
            },
            backend: if backend {
                Some((
                    bind(&config.backend.addr, BACKEND_ADDR).await?,
                    bind(&config.backend.site_addr, SITE_ADDR).await?,
                ))
            } else {
                None
            },
            web: if web {
                Some(bind(&config.web.addr, WEB_ADDR).await?)
            } else {
                None
            },
        })
    }

    /// This process as the lock files record it: its pid and what it serves.
    fn holder(&self) -> String {
        let mut parts = vec![format!("pid {}", std::process::id())];
        let (backend, site) = match &self.backend {
            Some((backend, site)) => (Some(backend), Some(site)),
            None => (None, None),
        };
        for (name, bound) in [
            ("idp", self.idp.as_ref()),
            ("backend", backend),
            ("site", site),
            ("web", self.web.as_ref()),
        ] {
            if let Some(bound) = bound {
                parts.push(format!("{name} {}", bound.url));
            }
        }
        parts.join(", ")
    }
}

impl Services {
    /// Binds, locks and opens the services `config` asks for.
    pub(crate) async fn open(app: &App, config: &Config) -> anyhow::Result<Services> {
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
        let listeners = Listeners::bind(app, config).await?;
        let holder = listeners.holder();
        if listeners.idp.is_some() || listeners.backend.is_some() {
            let dir = &config.process.data_dir;
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create the data directory {} (--data-dir / KEEL_DATA_DIR)",
                    dir.display()
                )
            })?;
        }
        let admin_key = resolve_admin_key(config, listeners.backend.is_some())?;
        let metrics_access = metrics_access(config, admin_key.as_ref().map(|(key, _)| key));
        let Listeners { idp, backend, web } = listeners;
        let idp = match idp {
            Some(bound) => Some(IdpService::open(
                config,
                bound,
                &holder,
                metrics_access.clone(),
            )?),
            None => None,
        };
        let mut backend = match backend {
            Some(bound) => {
                let mut issuers = config.backend.auth_issuers.clone();
                // In one process, the backend trusts the idp beside it.
                issuers.extend(idp.as_ref().map(|idp| idp.idp.issuer().to_owned()));
                issuers.extend(clerk_issuer);
                let key = admin_key.as_ref().map(|(key, _)| key.clone());
                let mut service =
                    BackendService::open(app, config, &database, issuers, key, bound, &holder)
                        .await?;
                // In one process, the dashboard's users page reaches the idp beside it through
                // its Backend API, with its secret key.
                service.dashboard.idp = idp.as_ref().map(|idp| {
                    keel_auth::BackendApiClient::new(idp.idp.issuer(), idp.idp.secret_key())
                });
                Some(service)
            }
            None => None,
        };
        let web = match web {
            Some(bound) => {
                // The backend beside the web tier is called in process (no loopback HTTP),
                // unless the web tier was pointed at another one.
                let (backend_url, in_process) = match (&config.web.backend_url, &backend) {
                    (Some(url), _) => (url.clone(), None),
                    (None, Some(backend)) => (
                        backend.bound.url.clone(),
                        Some(InProcess::shared(backend.backend.clone())),
                    ),
                    (None, None) => (format!("http://{}", config.backend.addr), None),
                };
                // Likewise the idp beside it: its Backend API answers in process.
                let (idp_url, idp_in_process) = match (&config.web.idp_url, &idp) {
                    (Some(url), _) => (url.clone(), None),
                    (None, Some(idp)) => (
                        idp.idp.issuer().to_owned(),
                        Some(Arc::new(IdpRouter(idp.idp.router())) as Arc<dyn InProcessIdp>),
                    ),
                    (None, None) => (format!("http://{}", config.idp.addr), None),
                };
                // Only the local idp needs its secret key; real Clerk brings CLERK_SECRET_KEY.
                let secret_key = match (&config.web.idp_secret_key, &idp) {
                    _ if clerk.is_some() => String::new(),
                    (Some(key), _) => key.clone(),
                    (None, Some(idp)) => idp.idp.secret_key().to_owned(),
                    (None, None) => read_secret_key(config)?,
                };
                Some(WebService::open(
                    app,
                    config,
                    clerk,
                    (&backend_url, in_process),
                    (&idp_url, idp_in_process),
                    &secret_key,
                    bound,
                    metrics_access,
                )?)
            }
            None => None,
        };
        // In one process, the dashboard's health page shows the web tier's live pages.
        if let (Some(backend), Some(web)) = (&mut backend, &web) {
            backend.dashboard.web_metrics = Some(web.metrics.clone());
        }
        Ok(Services {
            idp,
            backend,
            web,
            admin_key,
        })
    }

    /// Prints where each service listens (the lines scripts and tests read), now that all are
    /// open, and logs that each is ready.
    pub(crate) fn announce(&self) {
        if let Some(idp) = &self.idp {
            announce(&format!("idp: {}", idp.idp.issuer()));
            announce(&format!(
                "idp secret key: {} (stored in {})",
                idp.idp.secret_key(),
                idp.idp.secret_key_path().display()
            ));
            announce(&format!(
                "idp webhook secret: {} (stored in {})",
                idp.idp.webhook_secret(),
                idp.idp.webhook_secret_path().display()
            ));
        }
        if let Some(backend) = &self.backend {
            if let Some(cluster) = backend.backend.cluster() {
                let role = if cluster.is_committer() {
                    "committer"
                } else {
                    "follower"
                };
                announce(&format!(
                    "backend node: {role} (forwarded calls at {})",
                    cluster.address()
                ));
            }
            match &self.admin_key {
                Some((key, AdminKeySource::File(path))) => announce(&format!(
                    "admin key: {} (stored in {})",
                    key.expose(),
                    path.display()
                )),
                Some((_, AdminKeySource::Given)) => {
                    announce("admin key: (given by --admin-key / KEEL_ADMIN_KEY)");
                }
                None => {}
            }
            // The site line before the backend's: a script that stops reading at `backend:`
            // (closing the pipe) has seen both.
            announce(&format!("site: {}", backend.site.url));
            announce(&format!(
                "dashboard: {}{}",
                backend.bound.url,
                keel_backend::DASHBOARD_PATH
            ));
            announce(&format!("backend: {}", backend.bound.url));
        }
        if let Some(web) = &self.web {
            announce(&format!("web: {}", web.bound.url));
        }
        if let Some(idp) = &self.idp {
            tracing::info!(url = %idp.idp.issuer(), "identity provider ready");
        }
        if let Some(backend) = &self.backend {
            tracing::info!(url = %backend.bound.url, site = %backend.site.url, "backend ready");
        }
        if let Some(web) = &self.web {
            tracing::info!(url = %web.bound.url, "web tier ready");
        }
    }
}

/// Tells the person (or script) that started `keel` where a service listens. These lines are
/// the binary's interface: tests and scripts read them. A reader that has gone away (a script
/// that read the line it wanted and closed the pipe) costs nothing: the services keep running.
fn announce(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        tracing::debug!(line, "stdout is closed; the service line was not printed");
    }
}

/// The admin key: `--admin-key` / `KEEL_ADMIN_KEY`, else `<data dir>/admin_key` — created
/// there when this process serves the backend, only read when it serves the web tier or the
/// idp with `/metrics` behind the key. `None` when nothing here needs one.
fn resolve_admin_key(
    config: &Config,
    serves_backend: bool,
) -> anyhow::Result<Option<(AdminKey, AdminKeySource)>> {
    if let Some(key) = &config.process.admin_key {
        let key = key
            .parse()
            .context("the admin key given by --admin-key / KEEL_ADMIN_KEY")?;
        return Ok(Some((key, AdminKeySource::Given)));
    }
    let path = config.process.data_dir.join("admin_key");
    if serves_backend {
        let key = AdminKey::load_or_create(&path).with_context(|| {
            format!(
                "cannot read or create the admin key {} (give one with --admin-key / \
                 KEEL_ADMIN_KEY, or point --data-dir / KEEL_DATA_DIR elsewhere)",
                path.display()
            )
        })?;
        return Ok(Some((key, AdminKeySource::File(path))));
    }
    if !config.process.metrics_require_admin_key {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "--metrics-require-admin-key needs the admin key: cannot read {} (give it with \
             --admin-key / KEEL_ADMIN_KEY)",
            path.display()
        )
    })?;
    let key = text
        .trim()
        .parse()
        .with_context(|| format!("the admin key in {}", path.display()))?;
    Ok(Some((key, AdminKeySource::File(path))))
}

/// Who may read the web tier's and the idp's `/metrics` (the backend decides its own from the
/// same flag).
fn metrics_access(config: &Config, key: Option<&AdminKey>) -> MetricsAccess {
    if !config.process.metrics_require_admin_key {
        return MetricsAccess::Open;
    }
    let key = key.cloned();
    MetricsAccess::AdminKey(Arc::new(move |presented| {
        key.as_ref().is_some_and(|key| key.verify(presented))
    }))
}

/// The idp's secret key from `<data dir>/idp/secret_key`, for `keel web`.
fn read_secret_key(config: &Config) -> anyhow::Result<String> {
    let path = config.process.data_dir.join("idp").join("secret_key");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| {
            format!(
                "cannot read the idp secret key from {} (give it with --idp-secret-key / \
                 KEEL_IDP_SECRET_KEY, or point --data-dir / KEEL_DATA_DIR at the idp's data \
                 directory)",
                path.display()
            )
        })?
        .trim()
        .to_owned())
}

impl IdpService {
    fn open(
        config: &Config,
        bound: Bound,
        holder: &str,
        metrics_access: MetricsAccess,
    ) -> anyhow::Result<IdpService> {
        let dir = config.process.data_dir.join("idp");
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create the idp's directory {} (--data-dir / KEEL_DATA_DIR)",
                dir.display()
            )
        })?;
        let lock = DataLock::acquire(
            &dir.join("lock"),
            &format!("the identity provider's state in {}", dir.display()),
            holder,
        )?;
        let mut idp_config = IdpConfig::new(&config.process.data_dir);
        idp_config.database_url = config.idp_database_url()?;
        idp_config.issuer = Some(
            config
                .idp
                .issuer
                .clone()
                .unwrap_or_else(|| bound.url.clone()),
        );
        idp_config.session_token_ttl = config.idp.session_token_ttl;
        idp_config.template_token_ttl = config.idp.template_token_ttl;
        idp_config.require_verified_email = config.idp.require_verified_email;
        idp_config.smtp_url = config.idp.smtp_url.clone();
        idp_config.mail_from = config.idp.mail_from.clone();
        // `KEEL_IDP_WEBHOOK_URLS=` (empty) or a trailing comma names no endpoint.
        idp_config.webhook_urls = config
            .idp
            .webhook_urls
            .iter()
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        let local_addr = bound.listener.local_addr()?;
        if idp_config.smtp_url.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(%local_addr, "the idp listens beyond this machine without --smtp-url: verification codes are listed on its /dev/mailbox page, readable by anyone who reaches it");
        }
        let shared = idp_config.database_url.is_some();
        let idp = Idp::open(idp_config, local_addr).with_context(|| {
            if shared {
                "cannot open the identity provider's state in PostgreSQL (--database-url / \
                 KEEL_DATABASE_URL)"
                    .to_owned()
            } else {
                format!(
                    "cannot open the identity provider's state in {} (--data-dir / KEEL_DATA_DIR)",
                    dir.display()
                )
            }
        })?;
        Ok(IdpService {
            idp,
            bound,
            lock,
            metrics_access,
        })
    }
}

impl BackendService {
    async fn open(
        app: &App,
        config: &Config,
        database: &DatabaseLocation,
        issuers: Vec<String>,
        admin_key: Option<AdminKey>,
        (bound, site): (Bound, Bound),
        holder: &str,
    ) -> anyhow::Result<BackendService> {
        let lock = match database {
            DatabaseLocation::Sqlite(path) => {
                let mut lock_path = path.clone().into_os_string();
                lock_path.push(".lock");
                Some(DataLock::acquire(
                    lock_path.as_ref(),
                    &format!("the SQLite database {}", path.display()),
                    holder,
                )?)
            }
            DatabaseLocation::Postgres(_) => None,
        };
        let addr = bound.listener.local_addr()?;
        let (db, blobs, cluster) = open_database(app, config, database, addr).await?;
        if issuers.is_empty() {
            tracing::warn!("no --auth-issuer given: the backend accepts anonymous calls only");
        }
        let auth = AuthConfig {
            providers: issuers
                .into_iter()
                .map(|domain| ProviderConfig::Oidc {
                    domain,
                    application_id: config.backend.auth_application_id.clone(),
                })
                .collect(),
        };
        let backend_config = BackendConfig {
            auth,
            max_import_bytes: config.backend.max_import_bytes,
            storage: StorageConfig {
                blobs: Some(blobs),
                origin: bound.url.clone(),
                ..StorageConfig::default()
            },
            client_logs: config.backend.client_logs,
            admin_key,
            metrics_require_admin_key: config.process.metrics_require_admin_key,
            ..BackendConfig::default()
        };
        let functions = app.functions.clone();
        let backend = match cluster {
            Some(cluster) => Backend::clustered(cluster, functions, backend_config),
            None => Backend::new(db, functions, backend_config),
        };
        Ok(BackendService {
            backend,
            bound,
            site,
            lock,
            dashboard: keel_backend::DashboardConfig::default(),
        })
    }
}

/// Where other backend nodes reach this one: the configured URL, or the listening address
/// (with the host name in place of a wildcard IP).
fn node_url(config: &Config, addr: SocketAddr) -> String {
    if let Some(url) = &config.backend.node_url {
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

/// The database, where stored files' bytes live (a directory under the data directory with
/// SQLite; the database itself with PostgreSQL, so that every node serves every file) and, on
/// PostgreSQL as a cluster node, the cluster it joined.
async fn open_database(
    app: &App,
    config: &Config,
    database: &DatabaseLocation,
    addr: SocketAddr,
) -> anyhow::Result<(Database, BlobStorage, Option<Cluster>)> {
    let schema = app.schema.clone();
    let (persistence, blobs): (Arc<dyn Persistence>, BlobStorage) = match database {
        DatabaseLocation::Sqlite(path) => {
            let persistence = SqlitePersistence::open(path).with_context(|| {
                format!(
                    "cannot open the SQLite database {} (--database-url / KEEL_DATABASE_URL, \
                     by default in --data-dir / KEEL_DATA_DIR)",
                    path.display()
                )
            })?;
            let blobs = LocalBlobStore::new(config.process.data_dir.join("storage"));
            (Arc::new(persistence), BlobStorage(Arc::new(blobs)))
        }
        // The error names the server (never the password) and what to check.
        DatabaseLocation::Postgres(url) if config.backend.role == BackendRole::Committer => {
            let persistence = PostgresPersistence::connect(url).await.context(
                "cannot open the PostgreSQL database (--database-url / KEEL_DATABASE_URL)",
            )?;
            let blobs = BlobStorage(Arc::new(persistence.blob_store()));
            (Arc::new(persistence), blobs)
        }
        DatabaseLocation::Postgres(url) => {
            let persistence = PostgresPersistence::connect_standby(url, Default::default())
                .await
                .context(
                    "cannot open the PostgreSQL database (--database-url / KEEL_DATABASE_URL)",
                )?;
            let blobs = BlobStorage(Arc::new(persistence.blob_store()));
            let cluster = Cluster::join(
                persistence,
                schema,
                ClusterConfig::new(node_url(config, addr)),
            )
            .await
            .context("cannot join the backend nodes on this database")?;
            return Ok((cluster.database().clone(), blobs, Some(cluster)));
        }
    };
    let db = Database::open(persistence, schema)
        .await
        .context("cannot open the database")?;
    Ok((db, blobs, None))
}

impl WebService {
    /// The web tier: real Clerk when `CLERK_*` is set, else the local idp at `idp_url`; the
    /// backend at `backend_url`. Each is called directly when it runs in this process
    /// (`in_process`, `idp_in_process`).
    #[allow(clippy::too_many_arguments)]
    fn open(
        app: &App,
        config: &Config,
        clerk: Option<ClerkConfig>,
        (backend_url, in_process): (&str, Option<Arc<dyn InProcessBackend>>),
        (idp_url, idp_in_process): (&str, Option<Arc<dyn InProcessIdp>>),
        secret_key: &str,
        bound: Bound,
        metrics_access: MetricsAccess,
    ) -> anyhow::Result<WebService> {
        let mut start = keel_start::StartConfig::new(backend_url);
        start.in_process_backend = in_process;
        let mut start = match clerk {
            Some(clerk) => {
                let clerk =
                    ClerkAuthenticator::new(clerk).context("real Clerk settings (CLERK_*)")?;
                tracing::info!(frontend_api = %clerk.publishable_key().frontend_api, "web tier uses real Clerk");
                start.with_clerk(Arc::new(clerk))
            }
            None => {
                let mut idp_config = LocalIdpConfig::new(idp_url, secret_key);
                idp_config.origin = Some(bound.url.clone());
                idp_config.secure_cookies = config.web.served_over_https;
                let mut local_idp = LocalIdpAuthenticator::new(idp_config);
                if let Some(idp) = idp_in_process {
                    local_idp = local_idp.in_process(idp);
                }
                start.with_local_idp(Arc::new(local_idp))
            }
        };
        start.devtools = config.web.devtools;
        start.trusted_proxies = config.web.trusted_proxies.iter().cloned().collect();
        start.served_over_https = config.web.served_over_https;
        start.metrics_access = metrics_access;
        let tasks = start.tasks.clone();
        let metrics = start.metrics.clone();
        let routes = app
            .web
            .as_ref()
            .context("this app has no web tier (it gave `App::web` no routes)")?;
        let router = routes(start)
            .into_router()
            .context("cannot build the web app")?;
        Ok(WebService {
            router,
            bound,
            tasks,
            metrics,
        })
    }
}
