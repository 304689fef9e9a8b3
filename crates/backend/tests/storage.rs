//! File storage over HTTP against a real backend (SQLite with blobs in a directory; PostgreSQL
//! with blobs in the database): upload URLs from a mutation, uploads, `_storage` metadata, file
//! URLs served with their content type and range requests, single-use and expiring upload
//! URLs, the size limit, hostile ids, deletes and reclaiming, actions' `store` and `get`, and a
//! file uploaded to one node of a cluster served by another.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use keel_backend::{
    ActionCtx, Backend, BackendConfig, BlobStorage, Cluster, ClusterConfig, FunctionError,
    FunctionRegistry, MutationCtx, QueryCtx, StorageConfig,
};
use keel_db::blobs::LocalBlobStore;
use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, PostgresPersistence, Schema, SqlitePersistence, TableSchema};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha2::Digest;
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct NoArgs {}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Text {
    text: String,
}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .mutation(
            "files:generateUploadUrl",
            |ctx: MutationCtx, _: NoArgs| async move { ctx.storage().generate_upload_url().await },
        )
        .query("files:url", |ctx: QueryCtx, args: Id| async move {
            ctx.storage().get_url(&args.id).await
        })
        .query("files:meta", |ctx: QueryCtx, args: Id| async move {
            ctx.storage().get_metadata(&args.id).await
        })
        .query("files:system", |ctx: QueryCtx, args: Id| async move {
            // Convex's `ctx.db.system.get(id)` and `ctx.db.system.query("_storage")`.
            let id = args.id.parse().map_err(FunctionError::internal)?;
            let one = ctx.db().system().get(id).await?.map(|d| d.to_value());
            let all = ctx.db().system().query("_storage").collect().await?;
            // The document `get` found, then every document of `_storage`.
            let mut docs = vec![one.unwrap_or(keel_values::Value::Null)];
            docs.extend(all.iter().map(|d| d.to_value()));
            Ok::<_, FunctionError>(docs)
        })
        .mutation("files:remove", |ctx: MutationCtx, args: Id| async move {
            ctx.storage().delete(&args.id).await
        })
        .mutation("files:list", |ctx: MutationCtx, _: NoArgs| async move {
            ctx.storage().list().await
        })
        .mutation("notes:add", |ctx: MutationCtx, _: NoArgs| async move {
            Ok(ctx
                .db()
                .insert("notes", Default::default())
                .await?
                .to_string())
        })
        .action("files:storeText", |ctx: ActionCtx, args: Text| async move {
            ctx.storage()
                .store(Bytes::from(args.text), Some("text/plain"))
                .await
        })
        .action("files:readText", |ctx: ActionCtx, args: Id| async move {
            let Some(mut chunks) = ctx.storage().get(&args.id).await? else {
                return Ok::<_, FunctionError>(None);
            };
            let mut text = Vec::new();
            while let Some(chunk) = chunks.next().await {
                text.extend_from_slice(&chunk.map_err(FunctionError::internal)?);
            }
            Ok(Some(String::from_utf8_lossy(&text).into_owned()))
        })
        .action(
            "files:removeInAction",
            |ctx: ActionCtx, args: Id| async move { ctx.storage().delete(&args.id).await },
        );
    functions
}

fn schema() -> Schema {
    Schema::new().table("notes", TableSchema::new())
}

/// A backend serving the test functions, with file storage.
struct Node {
    backend: Backend,
    url: String,
    _dir: tempfile::TempDir,
}

impl Node {
    /// SQLite, blobs in `<dir>/storage`, with `storage` settings (origin filled in).
    async fn sqlite(storage: StorageConfig) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
        let db = Database::open(Arc::new(persistence), schema())
            .await
            .expect("database");
        let blobs = BlobStorage(Arc::new(LocalBlobStore::new(dir.path().join("storage"))));
        Node::serve(dir, storage, blobs, |functions, config| {
            Backend::new(db, functions, config)
        })
        .await
    }

    /// A node of a cluster on `pg`, blobs in the database.
    async fn postgres(pg: &PostgresTestSchema) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let persistence = PostgresPersistence::connect_standby(pg.url(), pg.options())
            .await
            .expect("postgres");
        let blobs = BlobStorage(Arc::new(persistence.blob_store()));
        let cluster = Cluster::join(
            persistence,
            schema(),
            ClusterConfig::new(format!("http://{addr}")),
        )
        .await
        .expect("joins");
        Node::serve_on(
            listener,
            dir,
            StorageConfig::default(),
            blobs,
            |functions, config| Backend::clustered(cluster, functions, config),
        )
    }

    async fn serve(
        dir: tempfile::TempDir,
        storage: StorageConfig,
        blobs: BlobStorage,
        build: impl FnOnce(FunctionRegistry, BackendConfig) -> Backend,
    ) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Node::serve_on(listener, dir, storage, blobs, build)
    }

    fn serve_on(
        listener: TcpListener,
        dir: tempfile::TempDir,
        storage: StorageConfig,
        blobs: BlobStorage,
        build: impl FnOnce(FunctionRegistry, BackendConfig) -> Backend,
    ) -> Node {
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let config = BackendConfig {
            storage: StorageConfig {
                blobs: Some(blobs),
                origin: url.clone(),
                ..storage
            },
            ..BackendConfig::default()
        };
        let backend = build(functions(), config);
        let router = keel_backend::router(&backend);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Node {
            backend,
            url,
            _dir: dir,
        }
    }

    fn blob_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("storage")
    }

    /// Calls a function over the HTTP API; returns its value or its error message.
    async fn call(&self, kind: &str, path: &str, args: Json) -> Result<Json, String> {
        let answer: Json = reqwest::Client::new()
            .post(format!("{}/api/{kind}", self.url))
            .json(&json!({ "path": path, "args": args, "format": "json" }))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        match answer["status"].as_str() {
            Some("success") => Ok(answer["value"].clone()),
            _ => Err(answer["errorMessage"]
                .as_str()
                .unwrap_or_default()
                .to_owned()),
        }
    }

    async fn upload_url(&self) -> String {
        let url = self
            .call("mutation", "files:generateUploadUrl", json!({}))
            .await
            .expect("an upload URL");
        url.as_str().expect("a string").to_owned()
    }

    /// POSTs `body` to `url` with `content_type`; returns the status and the JSON answer.
    async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Json) {
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("answered");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    }

    async fn upload(&self, content_type: &str, body: &'static [u8]) -> String {
        let (status, answer) = Node::post(&self.upload_url().await, content_type, body).await;
        assert_eq!(status, 200, "{answer}");
        answer["storageId"]
            .as_str()
            .expect("a storage id")
            .to_owned()
    }
}

/// Every blob file under `dir` (complete or being written).
fn blob_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect()
}

const PICTURE: &[u8] = b"\x89PNG\r\n\x1a\nnot really a picture, but bytes all the same";

#[tokio::test]
async fn an_uploaded_file_is_described_and_served_with_its_content_type() {
    let node = Node::sqlite(StorageConfig::default()).await;
    let upload_url = node.upload_url().await;
    assert!(
        upload_url.starts_with(&format!("{}/api/storage/upload?token=", node.url)),
        "{upload_url}"
    );
    let (status, answer) = Node::post(&upload_url, "image/png", PICTURE).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["storageId"].as_str().expect("storageId").to_owned();

    let meta = node
        .call("query", "files:meta", json!({ "id": id }))
        .await
        .expect("metadata");
    let sha256 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(PICTURE));
    assert_eq!(meta["_id"], id);
    assert_eq!(meta["size"].as_f64(), Some(PICTURE.len() as f64));
    assert_eq!(meta["sha256"], sha256);
    assert_eq!(meta["contentType"], "image/png");
    assert!(meta["_creationTime"].as_f64().is_some());

    // `ctx.db().system()` reads the same document, with Convex's fields only.
    let system = node
        .call("query", "files:system", json!({ "id": id }))
        .await
        .expect("the system document");
    for doc in [&system[0], &system[1]] {
        assert_eq!(doc["_id"], id);
        assert_eq!(doc["sha256"], sha256);
        assert_eq!(doc["contentType"], "image/png");
        assert!(doc.get("storageKey").is_none(), "{doc}");
    }

    let url = node
        .call("query", "files:url", json!({ "id": id }))
        .await
        .expect("a URL");
    assert_eq!(url, format!("{}/api/storage/{id}", node.url));
    let response = reqwest::get(url.as_str().unwrap()).await.expect("served");
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(
        headers["content-length"],
        PICTURE.len().to_string().as_str()
    );
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-security-policy"], "sandbox");
    assert_eq!(&response.bytes().await.unwrap()[..], PICTURE);
    assert_eq!(blob_files(&node.blob_dir()).len(), 1);

    // A `Digest` header is checked: a wrong one stores nothing, the right one is accepted.
    let with_digest = async |sha: &str| {
        let response = reqwest::Client::new()
            .post(node.upload_url().await)
            .header("digest", format!("sha-256={sha}"))
            .body(PICTURE)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Json>().await.unwrap())
    };
    let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let (status, answer) = with_digest(&wrong).await;
    assert_eq!((status, &answer["code"]), (400, &json!("Sha256Mismatch")));
    assert_eq!(blob_files(&node.blob_dir()).len(), 1, "nothing was kept");
    let (status, _) = with_digest(&sha256).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn range_requests_get_206_and_the_bytes_asked_for() {
    let node = Node::sqlite(StorageConfig::default()).await;
    let id = node.upload("image/png", PICTURE).await;
    let url = format!("{}/api/storage/{id}", node.url);
    let client = reqwest::Client::new();
    let size = PICTURE.len();
    for (range, expected, content_range) in [
        ("bytes=0-3", &PICTURE[0..4], format!("bytes 0-3/{size}")),
        (
            "bytes=8-",
            &PICTURE[8..],
            format!("bytes 8-{}/{size}", size - 1),
        ),
        (
            "bytes=-5",
            &PICTURE[size - 5..],
            format!("bytes {}-{}/{size}", size - 5, size - 1),
        ),
    ] {
        let response = client
            .get(&url)
            .header("range", range)
            .send()
            .await
            .expect("served");
        assert_eq!(response.status().as_u16(), 206, "{range}");
        assert_eq!(response.headers()["content-range"], content_range.as_str());
        assert_eq!(&response.bytes().await.unwrap()[..], expected, "{range}");
    }
    let past_the_end = client
        .get(&url)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .expect("answered");
    assert_eq!(past_the_end.status().as_u16(), 416);
    assert_eq!(
        past_the_end.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
}

#[tokio::test]
async fn an_upload_url_is_single_use_and_expires() {
    let node = Node::sqlite(StorageConfig::default()).await;
    let url = node.upload_url().await;
    let (status, _) = Node::post(&url, "text/plain", "first").await;
    assert_eq!(status, 200);
    let (status, answer) = Node::post(&url, "text/plain", "second").await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["code"], "InvalidUploadToken");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("already been used"),
        "{answer}"
    );
    // A forged secret for a real token, and tokens that are no tokens.
    let (base, token) = url.split_once("token=").unwrap();
    let (id, _) = token.split_once('.').unwrap();
    for forged in [
        format!("{base}token={id}.{}", "0".repeat(32)),
        format!("{base}token=nonsense"),
        format!("{base}token="),
        format!("{}/api/storage/upload", node.url),
    ] {
        let (status, answer) = Node::post(&forged, "text/plain", "x").await;
        assert_eq!(
            (status, &answer["code"]),
            (401, &json!("InvalidUploadToken")),
            "{forged}"
        );
    }
    assert_eq!(
        blob_files(&node.blob_dir()).len(),
        1,
        "only the first upload is kept"
    );

    let expiring = Node::sqlite(StorageConfig {
        upload_url_ttl: Duration::ZERO,
        ..StorageConfig::default()
    })
    .await;
    let (status, answer) = Node::post(&expiring.upload_url().await, "text/plain", "late").await;
    assert_eq!(status, 401);
    assert!(
        answer["message"].as_str().unwrap().contains("expired"),
        "{answer}"
    );
    assert!(blob_files(&expiring.blob_dir()).is_empty());
    // The expired token's document is reclaimed.
    let report = expiring
        .backend
        .reclaim_storage(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.tokens, 1);
}

#[tokio::test]
async fn an_oversized_upload_is_refused_and_stores_nothing() {
    let node = Node::sqlite(StorageConfig {
        max_file_bytes: 1_000,
        ..StorageConfig::default()
    })
    .await;
    let url = node.upload_url().await;
    // Announced by Content-Length.
    let (status, answer) = Node::post(&url, "text/plain", vec![b'a'; 1_001]).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["code"], "FileTooLarge");
    assert!(
        answer["message"].as_str().unwrap().contains("1000 bytes"),
        "{answer}"
    );
    // Streamed without a length: found out while writing, and what was written is removed.
    let chunks = futures::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'b'; 300]))),
    );
    let (status, answer) = Node::post(&url, "text/plain", reqwest::Body::wrap_stream(chunks)).await;
    assert_eq!((status, &answer["code"]), (413, &json!("FileTooLarge")));
    assert!(blob_files(&node.blob_dir()).is_empty(), "nothing was kept");
    let listed = node
        .call("mutation", "files:list", json!({}))
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    // The URL was not used up by the refused uploads.
    let (status, _) = Node::post(&url, "text/plain", vec![b'c'; 1_000]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn hostile_ids_and_paths_find_nothing() {
    let node = Node::sqlite(StorageConfig::default()).await;
    let id = node.upload("text/plain", b"secret").await;
    let note = node.call("mutation", "notes:add", json!({})).await.unwrap();
    let note = note.as_str().unwrap();
    let client = reqwest::Client::new();
    for path in [
        "/api/storage/..%2F..%2Fdb.sqlite3".to_owned(),
        "/api/storage/%2e%2e".to_owned(),
        "/api/storage/not-an-id".to_owned(),
        format!("/api/storage/{note}"),
        format!("/api/storage/{id}x"),
        format!("/api/storage/{}", "k".repeat(5_000)),
    ] {
        let response = client
            .get(format!("{}{path}", node.url))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    // A traversal the router resolves elsewhere never reaches a file either.
    let response = client
        .get(format!("{}/api/storage/../../db.sqlite3", node.url))
        .send()
        .await
        .unwrap();
    assert_ne!(response.status().as_u16(), 200);
    // In functions, an id that is not a storage id is an error; another table's id is no file.
    let error = node
        .call("query", "files:url", json!({ "id": "../../etc/passwd" }))
        .await
        .unwrap_err();
    assert!(error.contains("InvalidStorageId"), "{error}");
    let url = node.call("query", "files:url", json!({ "id": note })).await;
    assert_eq!(url, Ok(Json::Null));
}

#[tokio::test]
async fn a_deleted_file_is_gone_and_its_bytes_are_reclaimed() {
    let node = Node::sqlite(StorageConfig::default()).await;
    let id = node.upload("text/plain", b"short-lived").await;
    let kept = node.upload("text/plain", b"kept").await;
    node.call("mutation", "files:remove", json!({ "id": id }))
        .await
        .expect("deleted");
    let error = node
        .call("mutation", "files:remove", json!({ "id": id }))
        .await
        .unwrap_err();
    assert!(error.contains("StorageIdNotFound"), "{error}");
    let response = reqwest::get(format!("{}/api/storage/{id}", node.url))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        node.call("query", "files:url", json!({ "id": id })).await,
        Ok(Json::Null)
    );
    assert_eq!(
        blob_files(&node.blob_dir()).len(),
        2,
        "the bytes stay until reclaimed"
    );
    // Within the grace period nothing is reclaimed; past it, the deleted file's bytes are.
    let report = node
        .backend
        .reclaim_storage(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.blobs, 0);
    let report = node.backend.reclaim_storage(Duration::ZERO).await.unwrap();
    assert_eq!(report.blobs, 1);
    assert_eq!(blob_files(&node.blob_dir()).len(), 1);
    let response = reqwest::get(format!("{}/api/storage/{kept}", node.url))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "kept");
}

#[tokio::test]
async fn actions_store_read_and_delete_files() {
    let node = Node::sqlite(StorageConfig::default()).await;
    let id = node
        .call(
            "action",
            "files:storeText",
            json!({ "text": "from an action" }),
        )
        .await
        .expect("stored");
    let id = id.as_str().unwrap();
    let text = node
        .call("action", "files:readText", json!({ "id": id }))
        .await
        .unwrap();
    assert_eq!(text, "from an action");
    let meta = node
        .call("query", "files:meta", json!({ "id": id }))
        .await
        .unwrap();
    assert_eq!(meta["contentType"], "text/plain");
    node.call("action", "files:removeInAction", json!({ "id": id }))
        .await
        .expect("deleted");
    let text = node
        .call("action", "files:readText", json!({ "id": id }))
        .await
        .unwrap();
    assert_eq!(text, Json::Null);
    // Clients cannot reach the storage's own mutations.
    let error = node
        .call("mutation", "_system/storage:insert", json!({}))
        .await
        .unwrap_err();
    assert!(error.contains("Could not find public function"), "{error}");
}

#[tokio::test]
async fn on_postgresql_a_file_uploaded_to_one_node_is_served_by_another() {
    let pg = PostgresTestSchema::create().await.expect("PostgreSQL");
    let committer = Node::postgres(&pg).await;
    let follower = Node::postgres(&pg).await;
    assert!(committer.backend.cluster().unwrap().is_committer());
    assert!(!follower.backend.cluster().unwrap().is_committer());
    // A large file crosses several chunks; uploaded through the follower (whose recording
    // mutation is forwarded to the committer), served by the committer, ranges included.
    let big: Vec<u8> = (0..1_300_000u32).map(|i| (i % 251) as u8).collect();
    let url = follower.upload_url().await;
    let (status, answer) = Node::post(&url, "application/octet-stream", big.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["storageId"].as_str().unwrap().to_owned();
    let served = reqwest::get(format!("{}/api/storage/{id}", committer.url))
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), &big[..]);
    let ranged = reqwest::Client::new()
        .get(format!("{}/api/storage/{id}", committer.url))
        .header("range", "bytes=524000-1048700")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    assert_eq!(
        ranged.bytes().await.unwrap().as_ref(),
        &big[524_000..=1_048_700]
    );
    // The URL is used up on every node.
    let (status, _) = Node::post(&url, "text/plain", "again").await;
    assert_eq!(status, 401);
    // Deleted through the committer, the bytes are reclaimed from the database.
    committer
        .call("mutation", "files:remove", json!({ "id": id }))
        .await
        .unwrap();
    let report = committer
        .backend
        .reclaim_storage(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.blobs, 1);
    common::wait_until("the follower sees the delete", async || {
        reqwest::get(format!("{}/api/storage/{id}", follower.url))
            .await
            .is_ok_and(|r| r.status().as_u16() == 404)
    })
    .await;
    committer.backend.shutdown().await;
    follower.backend.shutdown().await;
    pg.drop_schema().await;
}
