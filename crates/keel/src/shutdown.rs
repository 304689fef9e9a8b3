//! Serving the open services until SIGTERM or SIGINT (Ctrl-C), then stopping them in order
//! within `--shutdown-timeout`.
//!
//! The order follows who calls whom, so nothing in flight loses what it depends on:
//! 1. The web tier stops accepting, ends every page's live stream (browsers reconnect by
//!    themselves) and closes its backend sockets, and finishes the requests it has — server
//!    functions included, whose mutations the backend below still accepts.
//! 2. The backend (its API and its site of HTTP actions) and the idp stop accepting and finish
//!    their requests (mutations forwarded by other backend nodes included); each sync session answers what it received, sends its
//!    last transition and closes with 1001, after which clients reconnect.
//! 3. The backend's background work stops: cluster loops, then the committer after the commits
//!    it holds; on PostgreSQL the committer lease is handed over so that a waiting node takes
//!    over at once.
//!
//! Steps 1 and 2 share the deadline; whatever is still running then is dropped (its clients
//! see the connection close and retry — a mutation's receipt keeps a retry from applying it
//! twice), and the process still exits 0 after a warning. A second signal stops at once. A
//! service that fails (or a cluster node that lost its lease) stops the others the same way,
//! and the process exits with the error.

use std::net::SocketAddr;
use std::time::Duration;

use keel_tasks::Tasks;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::services::{BackendService, IdpService, Services, WebService};

/// What ended the serving.
enum Stop {
    /// SIGTERM or SIGINT.
    Signal(&'static str),
    /// A service could not go on.
    Failed(anyhow::Error),
}

/// One service's HTTP server, running until told to drain.
struct Server {
    name: &'static str,
    /// Telling it to stop makes axum stop accepting and finish the requests in flight.
    tasks: Tasks,
    handle: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `router` on `listener` (with each request's peer address available to handlers).
    fn start(name: &'static str, listener: TcpListener, router: axum::Router) -> Server {
        let tasks = Tasks::new(name);
        let stop = tasks.clone();
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let handle = tasks.spawn("http", async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move { stop.stopping().await })
                .await
        });
        Server {
            name,
            tasks,
            handle,
        }
    }

    /// Resolves when the server stopped on its own (it only does on an error), which it then
    /// takes out of `server`.
    async fn failed(server: &mut Option<Server>) -> anyhow::Error {
        let Some(running) = server.as_mut() else {
            return std::future::pending().await;
        };
        let why = match (&mut running.handle).await {
            Ok(Ok(())) => "it stopped".to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        let name = running.name;
        *server = None;
        anyhow::anyhow!("the {name} server failed: {why}")
    }
}

/// Resolves with the name of the first SIGTERM or SIGINT from now on.
pub(crate) async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Serves `services` until `signal` (or a failure), then stops them in order within `timeout`.
pub(crate) async fn serve(
    services: Services,
    signal: impl Future<Output = &'static str>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let Services {
        idp, backend, web, ..
    } = services;
    // The data locks are held until everything has stopped.
    let mut locks = Vec::new();
    let mut idp_server = idp.map(
        |IdpService {
             idp,
             bound,
             lock,
             metrics_access,
         }| {
            locks.push(lock);
            let router =
                keel_metrics::instrument(idp.router(), idp.metrics(), metrics_access, "unmatched");
            Server::start("idp", bound.listener, router)
        },
    );
    let (backend, mut backend_server, mut site_server) = match backend {
        Some(BackendService {
            backend,
            bound,
            site,
            lock,
            dashboard,
        }) => {
            locks.extend(lock);
            let router = keel_backend::router_with(&backend, dashboard);
            let server = Server::start("backend", bound.listener, router);
            let site = Server::start("site", site.listener, keel_backend::site_router(&backend));
            (Some(backend), Some(server), Some(site))
        }
        None => (None, None, None),
    };
    let (web_tasks, mut web_server) = match web {
        Some(WebService {
            router,
            bound,
            tasks,
            ..
        }) => (
            Some(tasks),
            Some(Server::start("web", bound.listener, router)),
        ),
        None => (None, None),
    };

    let stop = tokio::select! {
        name = signal => Stop::Signal(name),
        error = Server::failed(&mut web_server) => Stop::Failed(error),
        error = Server::failed(&mut backend_server) => Stop::Failed(error),
        error = Server::failed(&mut site_server) => Stop::Failed(error),
        error = Server::failed(&mut idp_server) => Stop::Failed(error),
        reason = cluster_failure(backend.as_ref()) => Stop::Failed(anyhow::anyhow!("{reason}")),
    };
    match &stop {
        Stop::Signal(name) => tracing::info!(
            signal = name,
            ?timeout,
            "shutting down: finishing the requests in flight"
        ),
        Stop::Failed(error) => tracing::error!(error = %format!("{error:#}"), "shutting down"),
    }
    let deadline = Instant::now() + timeout;
    let drained = async {
        // 1. The web tier: its requests call the backend and the idp.
        if let Some(tasks) = &web_tasks {
            tasks.stop();
            drain(web_server.take()).await;
            tasks.stopped().await;
            tracing::info!("web tier stopped");
        }
        // 2. The backend (HTTP and sync sessions) and the idp.
        let backend_drained = async {
            if let Some(backend) = &backend {
                tokio::join!(
                    backend.close_sessions(),
                    drain(backend_server.take()),
                    drain(site_server.take())
                );
            }
        };
        let idp_drained = async {
            if drain(idp_server.take()).await {
                tracing::info!("identity provider stopped");
            }
        };
        tokio::join!(backend_drained, idp_drained);
    };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep_until(deadline) => tracing::warn!(
            ?timeout,
            "requests were still in flight at the shutdown deadline (--shutdown-timeout); \
             stopping anyway"
        ),
        name = self::signal() => tracing::warn!(signal = name, "second signal: stopping at once"),
    }
    // 3. The backend's background work, bounded too: a database that stopped answering must
    // not hold the process.
    if let Some(backend) = &backend {
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        match tokio::time::timeout(grace, backend.shutdown()).await {
            Ok(()) => tracing::info!("backend stopped"),
            Err(_) => tracing::warn!("the backend's background work did not stop in time"),
        }
    }
    drop(locks);
    match stop {
        Stop::Signal(_) => {
            tracing::info!("stopped");
            Ok(())
        }
        Stop::Failed(error) => Err(error),
    }
}

/// Tells `server` (if it still runs) to stop accepting and waits until its requests in flight
/// are done; whether there was one.
async fn drain(server: Option<Server>) -> bool {
    let Some(server) = server else {
        return false;
    };
    server.tasks.stop();
    let _ = server.handle.await;
    true
}

/// Resolves when this backend, a node of a cluster, can no longer serve (never otherwise).
async fn cluster_failure(backend: Option<&keel_backend::Backend>) -> String {
    match backend.and_then(keel_backend::Backend::cluster) {
        Some(cluster) => cluster.failed().await,
        None => std::future::pending().await,
    }
}
