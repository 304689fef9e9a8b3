//! [`ServedBackend`]: a real backend on a real socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use keel_backend::{
    Backend, BackendConfig, BlobStorage, Cluster, ClusterConfig, FunctionRegistry, Identity,
};
use keel_db::blobs::LocalBlobStore;
use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, PostgresPersistence, Schema, SqlitePersistence};
use keel_values::{Object, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A [`Backend`] served by axum on `127.0.0.1:<free port>`, with the storage it runs on.
pub struct ServedBackend {
    /// The backend, for in-process calls.
    pub backend: Backend,
    /// Where it listens.
    pub addr: SocketAddr,
    config: BackendConfig,
    server: JoinHandle<()>,
    /// The SQLite file (reopened by [`ServedBackend::restart`]); `None` for a cluster node.
    db_path: Option<PathBuf>,
    _dir: Arc<TempDir>,
}

impl ServedBackend {
    /// A backend over a new SQLite file in a temporary directory, with file storage there too
    /// (unless `config` names a blob store of its own).
    pub async fn sqlite(
        schema: Schema,
        functions: FunctionRegistry,
        config: BackendConfig,
    ) -> ServedBackend {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let db_path = dir.path().join("db.sqlite3");
        Self::open_sqlite(schema, functions, config, db_path, dir).await
    }

    async fn open_sqlite(
        schema: Schema,
        functions: FunctionRegistry,
        config: BackendConfig,
        db_path: PathBuf,
        dir: Arc<TempDir>,
    ) -> ServedBackend {
        let persistence = SqlitePersistence::open(&db_path).expect("sqlite");
        let db = Database::open(Arc::new(persistence), schema)
            .await
            .expect("database opens");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut served = config.clone();
        if served.storage.blobs.is_none() {
            // File storage as `keel` sets it up: bytes in the data directory, URLs on this port.
            let store = LocalBlobStore::new(dir.path().join("storage"));
            served.storage.blobs = Some(BlobStorage(Arc::new(store)));
            served.storage.origin = format!("http://{addr}");
        }
        let backend = Backend::new(db, functions, served);
        Self::serve(listener, backend, config, Some(db_path), dir)
    }

    /// A node of the cluster on the PostgreSQL schema `pg`: the committer if it is the first to
    /// join, else a follower.
    pub async fn cluster_node(
        pg: &PostgresTestSchema,
        schema: Schema,
        functions: FunctionRegistry,
        config: BackendConfig,
    ) -> ServedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let persistence = PostgresPersistence::connect_standby(pg.url(), pg.options())
            .await
            .expect("postgres");
        let cluster = Cluster::join(
            persistence,
            schema,
            ClusterConfig::new(format!("http://{addr}")),
        )
        .await
        .expect("joins the cluster");
        let backend = Backend::clustered(cluster, functions, config.clone());
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::serve(listener, backend, config, None, dir)
    }

    fn serve(
        listener: TcpListener,
        backend: Backend,
        config: BackendConfig,
        db_path: Option<PathBuf>,
        dir: Arc<TempDir>,
    ) -> ServedBackend {
        let addr = listener.local_addr().expect("addr");
        let router = keel_backend::router(&backend);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        ServedBackend {
            backend,
            addr,
            config,
            server,
            db_path,
            _dir: dir,
        }
    }

    /// Stops serving, drops the backend and opens a new one over the same SQLite file with the
    /// same configuration on a new port, as a restarted process would. Sockets to the old one
    /// must be closed by the caller.
    ///
    /// # Panics
    /// On a cluster node, which has no file of its own to reopen.
    pub async fn restart(self, schema: Schema, functions: FunctionRegistry) -> ServedBackend {
        let ServedBackend {
            backend,
            config,
            server,
            db_path,
            _dir: dir,
            ..
        } = self;
        let db_path = db_path.expect("only a SQLite backend restarts over its file");
        server.abort();
        let _ = server.await;
        drop(backend);
        Self::open_sqlite(schema, functions, config, db_path, dir).await
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &BackendConfig {
        &self.config
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Runs the mutation `path` in-process, anonymously, with no arguments; returns its value.
    pub async fn mutation(&self, path: &str) -> Value {
        let path = keel_protocol::normalize_udf_path(path).expect("a function path");
        let (value, _) = self
            .backend
            .run_mutation(&path, Object::new(), &Identity::Anonymous)
            .await
            .expect("the mutation commits");
        value
    }
}
