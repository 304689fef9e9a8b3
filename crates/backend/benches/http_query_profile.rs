//! Per-request cost of the backend's HTTP query path against a trivial axum JSON handler,
//! made for load-independent counts under valgrind (the service bench's throughput row shares
//! two cores with its clients, so its figures move with the machine's load).
//!
//! One process, one thread (a current-thread runtime), one keep-alive connection written by
//! hand (no HTTP client library in the counts): the same `POST /api/query` as the service
//! bench's HTTP rows (`items:latest`, 10 documents, anonymous, cached after the first call),
//! or the same request to the baseline handler.
//!
//! ```sh
//! cargo bench -p keel-backend --bench http_query_profile --no-run
//! B=$(ls -t target/release/deps/http_query_profile-* | grep -v '\.d$' | head -1)
//! # instructions per request: the difference between two request counts, divided
//! for side in keel baseline; do for n in 0 4000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$side.$n $B $side $n
//! done; done
//! ```
//!
//! Without arguments (`cargo bench -p keel-backend --bench http_query_profile`) it runs both
//! sides and prints wall-clock microseconds per request (noisy on a busy machine; the
//! instruction counts are the figures to compare).
#![allow(clippy::print_stdout, missing_docs)]

/// The allocator of Keel's binaries (`keel`'s default feature `mimalloc`), for Keel and the
/// baseline alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::post;
use keel_backend::{Backend, BackendConfig, FunctionError, FunctionRegistry, QueryCtx};
use keel_db::{Database, Order, Schema, SqlitePersistence, TableSchema};
use keel_values::{Object, Value};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The request body of the service bench's HTTP rows.
const QUERY: &str = r#"{"path":"items:latest","args":{},"format":"json"}"#;
/// Requests sent before the counted ones (the cache filled, the allocator warm).
const WARM_UP: usize = 200;

#[derive(Deserialize)]
struct NoArgs {}

async fn latest(ctx: QueryCtx, _: NoArgs) -> Result<Vec<Value>, FunctionError> {
    let docs = ctx.db().query("items").order(Order::Desc).take(10).await?;
    Ok(docs.iter().map(|d| d.to_value()).collect())
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The backend of the service bench (an `items` table holding 10 documents), served.
async fn keel(dir: &std::path::Path) -> (std::net::SocketAddr, &'static str) {
    let persistence = SqlitePersistence::open(dir.join("profile.sqlite3")).expect("sqlite opens");
    let db = Database::open(
        Arc::new(persistence),
        Schema::new().table("items", TableSchema::new()),
    )
    .await
    .expect("db opens");
    let mut tx = db.begin();
    for n in 0..10 {
        let mut fields = Object::new();
        fields.insert("n".into(), Value::Float64(f64::from(n)));
        tx.insert("items", fields).await.expect("insert");
    }
    db.commit(tx).await.expect("commit");
    let mut functions = FunctionRegistry::new();
    functions.query("items:latest", latest);
    let backend = Backend::new(db, functions, BackendConfig::default());
    (serve(keel_backend::router(&backend)).await, "/api/query")
}

/// The service bench's baseline: a trivial axum JSON handler.
async fn baseline() -> (std::net::SocketAddr, &'static str) {
    let router = Router::new().route(
        "/baseline",
        post(|| async { axum::Json(serde_json::json!({"status":"success","value":[]})) }),
    );
    (serve(router).await, "/baseline")
}

/// A keep-alive HTTP/1.1 connection sending the same request over and over.
struct Connection {
    stream: TcpStream,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr, route: &str) -> Connection {
        let request = format!(
            "POST {route} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             accept: */*\r\ncontent-length: {}\r\n\r\n{QUERY}",
            QUERY.len()
        );
        Connection {
            stream: TcpStream::connect(addr).await.expect("connect"),
            request: request.into_bytes(),
            buffer: Vec::with_capacity(16 * 1024),
        }
    }

    /// Reads what has arrived onto the buffer (into its spare capacity: nothing is zeroed per
    /// read, which would count as the client's instructions).
    async fn read_more(&mut self) {
        self.buffer.reserve(8192);
        let n = self.stream.read_buf(&mut self.buffer).await.expect("read");
        assert!(n > 0, "the server closed the connection");
    }

    /// Sends the request and reads its whole answer; panics on anything but a 200 success.
    async fn call(&mut self) {
        self.stream.write_all(&self.request).await.expect("write");
        self.buffer.clear();
        let (head_end, length) = loop {
            self.read_more().await;
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end]).expect("ascii head");
                assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().expect("length"))
                    })
                    .expect("a content-length");
                break (end + 4, length);
            }
        };
        while self.buffer.len() < head_end + length {
            self.read_more().await;
        }
        let body = &self.buffer[head_end..head_end + length];
        assert!(
            body.starts_with(br#"{"status":"success""#),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// Sends `n` counted requests (after the warm-up) to one side; returns the time they took.
async fn run(side: &str, n: usize) -> std::time::Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, route) = match side {
        "keel" => keel(dir.path()).await,
        "baseline" => baseline().await,
        other => panic!("unknown side {other:?}: keel or baseline"),
    };
    let mut connection = Connection::open(addr, route).await;
    for _ in 0..WARM_UP {
        connection.call().await;
    }
    let started = Instant::now();
    for _ in 0..n {
        connection.call().await;
    }
    started.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let side = args.first().map(String::as_str);
    if let Some(side @ ("keel" | "baseline")) = side {
        let n = args
            .get(1)
            .map_or(1000, |n| n.parse().expect("a request count"));
        let took = run(side, n).await;
        println!("{side}: {n} requests in {took:?}");
        return;
    }
    let n = 4000;
    let keel = run("keel", n).await;
    let base = run("baseline", n).await;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "| HTTP query, one connection, one thread | {:.1} µs/request | {:.1} µs/request (trivial axum handler) | {:.2}× |",
        per(keel),
        per(base),
        per(keel) / per(base)
    );
}
