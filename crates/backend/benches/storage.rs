//! File storage throughput, against raw file writes and reads measured in the same run.
//!
//! Run with `cargo bench -p keel-backend --bench storage` (add `-- --quick` for a short run).
//!
//! * Upload: `POST` of each file to an upload URL (HTTP on 127.0.0.1, streamed into the blob
//!   store, hashed, recorded in `_storage`), against writing the same bytes to a file with
//!   `tokio::fs` and syncing it (as the local blob store does).
//! * Download: `GET /api/storage/<id>` of each file, reading the whole body, against reading the
//!   raw files back with `tokio::fs::read`.
//! * The same upload and download with the blobs in PostgreSQL (the test server; skipped when
//!   it is not reachable).
#![allow(clippy::print_stdout, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_backend::{
    Backend, BackendConfig, BlobStorage, FunctionRegistry, MutationCtx, StorageConfig,
};
use keel_db::blobs::LocalBlobStore;
use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, Schema, SqlitePersistence};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct NoArgs {}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions.mutation(
        "files:generateUploadUrl",
        |ctx: MutationCtx, _: NoArgs| async move { ctx.storage().generate_upload_url().await },
    );
    functions
}

/// Serves a backend with `blobs` on 127.0.0.1; its URL.
async fn serve(db: Database, blobs: BlobStorage) -> (String, Backend) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let config = BackendConfig {
        storage: StorageConfig {
            blobs: Some(blobs),
            origin: url.clone(),
            ..StorageConfig::default()
        },
        ..BackendConfig::default()
    };
    let backend = Backend::new(db, functions(), config);
    let router = keel_backend::router(&backend);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, backend)
}

async fn upload_url(client: &reqwest::Client, url: &str) -> String {
    let answer: serde_json::Value = client
        .post(format!("{url}/api/mutation"))
        .json(
            &serde_json::json!({ "path": "files:generateUploadUrl", "args": {}, "format": "json" }),
        )
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    answer["value"].as_str().expect("an upload URL").to_owned()
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// Uploads then downloads `files` of `file` bytes through the backend at `url`; MB/s of each.
async fn through_backend(url: &str, files: usize, file: &[u8]) -> (f64, f64) {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    let mut uploading = Duration::ZERO;
    for _ in 0..files {
        let target = upload_url(&client, url).await;
        let started = Instant::now();
        let answer: serde_json::Value = client
            .post(&target)
            .header("content-type", "application/octet-stream")
            .body(file.to_vec())
            .send()
            .await
            .expect("uploaded")
            .json()
            .await
            .expect("JSON");
        uploading += started.elapsed();
        ids.push(answer["storageId"].as_str().expect("storageId").to_owned());
    }
    let started = Instant::now();
    let mut read = 0;
    for id in &ids {
        let mut body = client
            .get(format!("{url}/api/storage/{id}"))
            .send()
            .await
            .expect("served")
            .bytes_stream();
        while let Some(chunk) = body.next().await {
            read += chunk.expect("readable").len();
        }
    }
    assert_eq!(read, files * file.len());
    let total = files * file.len();
    (
        mb_per_s(total, uploading),
        mb_per_s(total, started.elapsed()),
    )
}

/// Writes (and syncs) then reads `files` raw files of `file` bytes under `dir`; MB/s of each.
async fn raw_files(dir: &Path, files: usize, file: &[u8]) -> (f64, f64) {
    let started = Instant::now();
    for n in 0..files {
        let mut out = tokio::fs::File::create(dir.join(format!("raw-{n}")))
            .await
            .expect("create");
        out.write_all(file).await.expect("write");
        out.sync_data().await.expect("sync");
    }
    let writing = started.elapsed();
    let started = Instant::now();
    let mut read = 0;
    for n in 0..files {
        read += tokio::fs::read(dir.join(format!("raw-{n}")))
            .await
            .expect("read")
            .len();
    }
    assert_eq!(read, files * file.len());
    let total = files * file.len();
    (mb_per_s(total, writing), mb_per_s(total, started.elapsed()))
}

fn row(name: &str, keel: f64, baseline: f64, what: &str) {
    println!(
        "| {name} | {keel:.0} MB/s | {baseline:.0} MB/s ({what}) | {:.2}× |",
        baseline / keel
    );
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (files, size) = if quick { (4, 4 << 20) } else { (16, 8 << 20) };
    let file: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    println!("{files} files of {} MiB each\n", size >> 20);
    println!("| benchmark | keel | baseline | baseline ÷ keel (time ratio) |");
    println!("|---|---|---|---|");

    let dir = tempfile::tempdir().expect("tempdir");
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
    let db = Database::open(Arc::new(persistence), Schema::new())
        .await
        .expect("database");
    let blobs = BlobStorage(Arc::new(LocalBlobStore::new(dir.path().join("storage"))));
    let (url, backend) = serve(db, blobs).await;
    let (upload, download) = through_backend(&url, files, &file).await;
    let (write, read) = raw_files(dir.path(), files, &file).await;
    row(
        "upload, blobs in a directory (HTTP POST to an upload URL)",
        upload,
        write,
        "tokio::fs write + sync_data",
    );
    row(
        "download, blobs in a directory (HTTP GET of the file URL)",
        download,
        read,
        "tokio::fs::read",
    );
    backend.shutdown().await;

    let Ok(pg) = PostgresTestSchema::create().await else {
        println!("\n(PostgreSQL not reachable: its rows are skipped)");
        return;
    };
    let persistence = pg.connect().await.expect("postgres");
    let blobs = BlobStorage(Arc::new(persistence.blob_store()));
    let db = Database::open(Arc::new(persistence), Schema::new())
        .await
        .expect("database");
    let (url, backend) = serve(db, blobs).await;
    let (upload, download) = through_backend(&url, files, &file).await;
    let (write, read) = raw_files(dir.path(), files, &file).await;
    row(
        "upload, blobs in PostgreSQL",
        upload,
        write,
        "tokio::fs write + sync_data",
    );
    row(
        "download, blobs in PostgreSQL",
        download,
        read,
        "tokio::fs::read",
    );
    backend.shutdown().await;
    pg.drop_schema().await;
}
