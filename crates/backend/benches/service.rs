//! Backend service benchmarks, each against a baseline measured in the same run.
//!
//! Run with `cargo bench -p keel-backend --bench service` (add `-- --quick` for a short run).
//!
//! * HTTP query latency (p50/p99, sequential) and throughput (16 concurrent clients), against a
//!   trivial axum JSON handler on the same machine.
//! * Mutation throughput (8 concurrent HTTP clients), against committing the same inserts
//!   directly through `keel_db` (no HTTP, no function runner).
//! * Fan-out: one commit → N WebSocket subscribers of the same query, time until each receives
//!   its Transition (p50/p99 over rounds), against a plain axum WebSocket server broadcasting a
//!   message of the same size to N sockets.
//! * Cluster (two nodes on a fresh schema of the test PostgreSQL server): mutation latency sent
//!   to a follower (forwarded to the committer) against sent to the committer itself, and the
//!   time from a commit to a follower's WebSocket subscriber against a subscriber on the
//!   committer.
#![allow(clippy::print_stdout, missing_docs)]

/// The allocator of Keel's binaries (`keel`'s default feature `mimalloc`), for Keel and the
/// baselines alike: what is compared is what a deployment runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
use axum::routing::{any, post};
use futures::{SinkExt, StreamExt};
use keel_backend::{
    Backend, BackendConfig, FunctionError, FunctionRegistry, MutationCtx, QueryCtx,
};
use keel_backend::{Cluster, ClusterConfig};
use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, Order, PostgresPersistence, Schema, SqlitePersistence, TableSchema};
use keel_values::{Object, Value};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

#[derive(Deserialize)]
struct NoArgs {}

#[derive(Deserialize)]
struct AddArgs {
    n: f64,
}

async fn latest(ctx: QueryCtx, _: NoArgs) -> Result<Vec<Value>, FunctionError> {
    let docs = ctx.db().query("items").order(Order::Desc).take(10).await?;
    Ok(docs.iter().map(|d| d.to_value()).collect())
}

async fn add(ctx: MutationCtx, args: AddArgs) -> Result<String, FunctionError> {
    let mut fields = Object::new();
    fields.insert("n".into(), Value::Float64(args.n));
    Ok(ctx.db().insert("items", fields).await?.to_string())
}

fn schema() -> Schema {
    Schema::new().table("items", TableSchema::new())
}

async fn open_db(dir: &std::path::Path, name: &str) -> Database {
    let persistence = SqlitePersistence::open(dir.join(name)).expect("sqlite opens");
    Database::open(Arc::new(persistence), schema())
        .await
        .expect("db opens")
}

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn sequential_latencies(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    n: usize,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        assert!(response.status().is_success());
        let text = response.text().await.expect("body");
        assert!(!text.contains("\"status\":\"error\""), "{text}");
        out.push(started.elapsed());
    }
    out.sort();
    out
}

async fn throughput(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    concurrency: usize,
    total: usize,
) -> f64 {
    let started = Instant::now();
    let per_task = total / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_owned(), body.to_owned());
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request");
                    let text = response.text().await.expect("body");
                    assert!(!text.contains("\"status\":\"error\""), "{text}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    (per_task * concurrency) as f64 / started.elapsed().as_secs_f64()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscriber(ws_url: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("ws connect");
    let session = format!("{:08x}-0000-4000-8000-000000000000", rand::random::<u32>());
    let connect = format!(
        r#"{{"type":"Connect","sessionId":"{session}","connectionCount":0,"lastCloseReason":"InitialConnect","clientTs":0}}"#
    );
    socket.send(Message::text(connect)).await.expect("send");
    let add = r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"items:latest","args":[{}]}]}"#;
    socket.send(Message::text(add)).await.expect("send");
    next_transition(&mut socket).await;
    socket
}

async fn next_transition(socket: &mut Socket) {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"Transition\"") => return,
            Some(Ok(_)) => {}
            other => panic!("subscriber lost: {other:?}"),
        }
    }
}

/// Time until each of `sockets` has received the next message, measured from `started`.
async fn arrivals(
    sockets: &mut [Socket],
    started: Instant,
    until_transition: bool,
) -> Vec<Duration> {
    let waits = sockets.iter_mut().map(|socket| async move {
        if until_transition {
            next_transition(socket).await;
        } else {
            socket.next().await.expect("message").expect("frame");
        }
        started.elapsed()
    });
    let mut out = futures::future::join_all(waits).await;
    out.sort();
    out
}

/// A cluster node on `pg`, served on `127.0.0.1:0`; returns its URL.
async fn cluster_node(pg: &PostgresTestSchema) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let persistence = PostgresPersistence::connect_standby(pg.url(), pg.options())
        .await
        .expect("postgres");
    let cluster = Cluster::join(persistence, schema(), ClusterConfig::new(&url))
        .await
        .expect("joins");
    let mut functions = FunctionRegistry::new();
    functions
        .query("items:latest", latest)
        .mutation("items:add", add);
    let backend = Backend::clustered(cluster, functions, BackendConfig::default());
    let router = keel_backend::router(&backend);
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Mutation latency through a follower against the committer, and commit-to-subscriber time on
/// a follower against one on the committer.
async fn cluster_section(client: &reqwest::Client, quick: bool) {
    let pg = match PostgresTestSchema::create().await {
        Ok(pg) => pg,
        Err(e) => {
            println!("| cluster | skipped: {e} | | |");
            return;
        }
    };
    let committer = cluster_node(&pg).await;
    let follower = cluster_node(&pg).await;
    let add = r#"{"path":"items:add","args":{"n":1},"format":"json"}"#;
    let n = if quick { 100 } else { 500 };
    let direct = sequential_latencies(client, &format!("{committer}/api/mutation"), add, n).await;
    let forwarded = sequential_latencies(client, &format!("{follower}/api/mutation"), add, n).await;
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (f, d) = (percentile(&forwarded, p), percentile(&direct, p));
        println!(
            "| cluster: mutation latency {label} via a follower (forwarded) | {:.0} µs | {:.0} µs (sent to the committer) | {:.2}× |",
            micros(f),
            micros(d),
            micros(f) / micros(d)
        );
    }
    let ws = |url: &str| format!("{}/api/sync", url.replace("http://", "ws://"));
    let mut on_committer = [subscriber(&ws(&committer)).await];
    let mut on_follower = [subscriber(&ws(&follower)).await];
    let (mut via_follower, mut via_committer) = (Vec::new(), Vec::new());
    for round in 0..(if quick { 20 } else { 100 }) {
        let started = Instant::now();
        let body = format!(r#"{{"path":"items:add","args":{{"n":{round}}}}}"#);
        client
            .post(format!("{committer}/api/mutation"))
            .body(body)
            .header("content-type", "application/json")
            .send()
            .await
            .expect("mutation");
        let (c, f) = tokio::join!(
            arrivals(&mut on_committer, started, true),
            arrivals(&mut on_follower, started, true)
        );
        via_committer.push(c[0]);
        via_follower.push(f[0]);
    }
    via_committer.sort();
    via_follower.sort();
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (f, c) = (percentile(&via_follower, p), percentile(&via_committer, p));
        println!(
            "| cluster: commit → subscriber on a follower {label} | {:.2} ms | {:.2} ms (subscriber on the committer) | {:.2}× |",
            f.as_secs_f64() * 1e3,
            c.as_secs_f64() * 1e3,
            f.as_secs_f64() / c.as_secs_f64()
        );
    }
    pg.drop_schema().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 5 } else { 1 };
    let dir = tempfile::tempdir().expect("tempdir");

    let mut functions = FunctionRegistry::new();
    functions
        .query("items:latest", latest)
        .mutation("items:add", add);
    let backend = Backend::new(
        open_db(dir.path(), "bench.sqlite3").await,
        functions,
        BackendConfig::default(),
    );
    let backend_url = serve(keel_backend::router(&backend)).await;
    let baseline_url = serve(Router::new().route(
        "/baseline",
        post(|| async { axum::Json(serde_json::json!({"status":"success","value":[]})) }),
    ))
    .await;
    let client = reqwest::Client::new();
    for n in 0..10 {
        let body = format!(r#"{{"path":"items:add","args":{{"n":{n}}}}}"#);
        client
            .post(format!("{backend_url}/api/mutation"))
            .body(body)
            .header("content-type", "application/json")
            .send()
            .await
            .expect("seed");
    }

    println!(
        "# keel-backend service benchmarks (2 cores){}",
        if quick { " — quick run" } else { "" }
    );
    println!();
    println!("| benchmark | keel | baseline | keel cost ÷ baseline |");
    println!("|---|---|---|---|");

    // HTTP query latency.
    let query = r#"{"path":"items:latest","args":{},"format":"json"}"#;
    let n = 2000 / scale;
    let keel = sequential_latencies(&client, &format!("{backend_url}/api/query"), query, n).await;
    let base = sequential_latencies(&client, &format!("{baseline_url}/baseline"), query, n).await;
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (k, b) = (percentile(&keel, p), percentile(&base, p));
        println!(
            "| HTTP query latency {label} (`items:latest`, 10 docs) | {:.0} µs | {:.0} µs (trivial axum handler) | {:.2}× |",
            micros(k),
            micros(b),
            micros(k) / micros(b)
        );
    }

    // HTTP query throughput, 16 concurrent clients.
    let total = 8000 / scale;
    let keel = throughput(
        &client,
        &format!("{backend_url}/api/query"),
        query,
        16,
        total,
    )
    .await;
    let base = throughput(
        &client,
        &format!("{baseline_url}/baseline"),
        query,
        16,
        total,
    )
    .await;
    println!(
        "| HTTP query throughput, 16 concurrent | {keel:.0} req/s | {base:.0} req/s (trivial axum handler) | {:.2}× |",
        base / keel
    );

    // Mutation throughput, 8 concurrent clients, against direct database commits.
    let total = 1600 / scale;
    let add = r#"{"path":"items:add","args":{"n":1},"format":"json"}"#;
    let keel = throughput(
        &client,
        &format!("{backend_url}/api/mutation"),
        add,
        8,
        total,
    )
    .await;
    let db = Arc::new(open_db(dir.path(), "baseline.sqlite3").await);
    let started = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in 0..total / 8 {
                    let mut tx = db.begin();
                    let mut fields = Object::new();
                    fields.insert("n".into(), Value::Float64(1.0));
                    tx.insert("items", fields).await.expect("insert");
                    db.commit(tx).await.expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let base = (total / 8 * 8) as f64 / started.elapsed().as_secs_f64();
    println!(
        "| mutation throughput, 8 concurrent HTTP clients | {keel:.0} mut/s | {base:.0} commits/s (keel_db directly) | {:.2}× |",
        base / keel
    );

    // Fan-out: one commit → N subscribers.
    let subscribers = if quick { 200 } else { 1000 };
    let rounds = if quick { 3 } else { 10 };
    let ws_url = format!("{}/api/sync", backend_url.replace("http://", "ws://"));
    let mut sockets = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        sockets.push(subscriber(&ws_url).await);
    }
    let mut keel_times = Vec::new();
    // When the mutation's reply came (the commit is durable and published by then): the part
    // of the keel row the baseline, a broadcast of a ready message, does not pay.
    let mut replies = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        let body = format!(r#"{{"path":"items:add","args":{{"n":{round}}}}}"#);
        client
            .post(format!("{backend_url}/api/mutation"))
            .body(body)
            .header("content-type", "application/json")
            .send()
            .await
            .expect("mutation");
        replies.push(started.elapsed());
        let times = arrivals(&mut sockets, started, true).await;
        keel_times.push(*times.last().expect("subscribers"));
    }
    drop(sockets);

    let (tx, _) = broadcast::channel::<String>(16);
    let sender = tx.clone();
    let broadcast_url = serve(Router::new().route(
        "/ws",
        any(move |ws: WebSocketUpgrade| {
            let mut rx = sender.subscribe();
            async move {
                ws.on_upgrade(move |mut socket| async move {
                    while let Ok(message) = rx.recv().await {
                        if socket
                            .send(AxumMessage::Text(message.into()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                })
            }
        }),
    ))
    .await;
    let mut sockets = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (socket, _) = tokio_tungstenite::connect_async(format!(
            "{}/ws",
            broadcast_url.replace("http://", "ws://")
        ))
        .await
        .expect("connect");
        sockets.push(socket);
    }
    while tx.receiver_count() < subscribers {
        tokio::task::yield_now().await;
    }
    let payload = format!(
        r#"{{"type":"Transition","modifications":[{}]}}"#,
        "0".repeat(600)
    );
    let mut base_times = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        tx.send(payload.clone()).expect("broadcast");
        let times = arrivals(&mut sockets, started, false).await;
        base_times.push(*times.last().expect("subscribers"));
    }
    replies.sort();
    println!(
        "| fan-out: the mutation's reply (HTTP request and durable commit, inside the keel row), p50 | {:.1} ms | — | — |",
        percentile(&replies, 0.5).as_secs_f64() * 1e3
    );
    keel_times.sort();
    base_times.sort();
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (k, b) = (percentile(&keel_times, p), percentile(&base_times, p));
        println!(
            "| fan-out to {subscribers} subscribers, last arrival {label} | {:.1} ms | {:.1} ms (axum WebSocket broadcast) | {:.2}× |",
            k.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            k.as_secs_f64() / b.as_secs_f64()
        );
    }

    cluster_section(&client, quick).await;
}
