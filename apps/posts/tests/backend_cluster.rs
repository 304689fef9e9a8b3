//! Three `keel backend` processes on one PostgreSQL schema. Writers send `posts:create` to every
//! node while subscribers (the official `convex` Rust client) watch `posts:list` on every node;
//! the committer is stopped in the middle — killed with SIGKILL, or stopped with SIGTERM as a
//! supervisor would. Checked: another node takes over within a few seconds (at once after
//! SIGTERM, which drains the committer, exits 0 and hands the lease over), no acknowledged
//! mutation is lost and none is applied twice, no live node answers a mutation with an error
//! (forwards cut by the kill are sent again, their receipts keep them from applying twice), the
//! stopped node restarted rejoins as a follower, and every subscriber converges to the same
//! posts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convex::{ConvexClient, FunctionResult, Value};
use futures::StreamExt;
use keel_db::PostgresPersistence;
use keel_db::persistence::PostgresTestSchema;
use keel_idp::{Idp, IdpConfig, NewUser};
use tokio::sync::watch;

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(30);
/// Acknowledged mutations before the kill, and per writer after it.
const BEFORE_KILL: usize = 30;
const AFTER_KILL_PER_WRITER: usize = 20;
const WRITERS: usize = 3;

/// A running `keel backend` and what it printed about itself.
struct Node {
    child: Child,
    url: String,
    committer: bool,
}

impl Node {
    // The child is waited for when the `Node` is dropped.
    #[allow(clippy::zombie_processes)]
    fn start(db_url: &str, issuer: &str, data_dir: &Path) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            // The site (HTTP actions) on a free port too, never the shared default.
            .env("KEEL_SITE_ADDR", "127.0.0.1:0")
            .arg("backend")
            .env("KEEL_DATABASE_URL", db_url)
            .env("KEEL_BACKEND_ADDR", "127.0.0.1:0")
            .env("KEEL_DATA_DIR", data_dir)
            .env("KEEL_AUTH_ISSUERS", issuer)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut committer = None;
        loop {
            let line = received
                .recv_timeout(WAIT)
                .expect("the backend announces itself");
            if let Some(role) = line.strip_prefix("backend node: ") {
                committer = Some(role.starts_with("committer"));
            }
            if let Some(url) = line.strip_prefix("backend: ") {
                return Node {
                    child,
                    url: url.to_owned(),
                    committer: committer.expect("a node line comes first"),
                };
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The titles in a `posts:list` result.
fn titles(result: &FunctionResult) -> Vec<String> {
    let FunctionResult::Value(Value::Array(posts)) = result else {
        panic!("unexpected result {result:?}");
    };
    posts
        .iter()
        .map(|post| match post {
            Value::Object(fields) => match fields.get("title") {
                Some(Value::String(title)) => title.clone(),
                other => panic!("a post without a title: {other:?}"),
            },
            other => panic!("not a post: {other:?}"),
        })
        .collect()
}

/// Subscribes to all posts on `url`; the channel holds the newest titles.
async fn subscribe(url: &str, token: &str) -> (ConvexClient, watch::Receiver<Vec<String>>) {
    let mut client = ConvexClient::new(url).await.unwrap();
    client.set_auth(Some(token.to_owned())).await;
    let mut subscription = client
        .subscribe(
            "posts:list",
            BTreeMap::from([("limit".to_owned(), Value::Float64(100_000.0))]),
        )
        .await
        .unwrap();
    let (sender, receiver) = watch::channel(Vec::new());
    tokio::spawn(async move {
        while let Some(result) = subscription.next().await {
            if sender.send(titles(&result)).is_err() {
                return;
            }
        }
    });
    (client, receiver)
}

/// One `posts:create` over the HTTP API: `Ok(true)` when acknowledged, `Ok(false)` when the
/// node answered with a failure, `Err` when the node could not be reached.
async fn create(http: &reqwest::Client, url: &str, token: &str, title: &str) -> Result<bool, ()> {
    let response = http
        .post(format!("{url}/api/mutation"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "path": "posts:create",
            "args": { "title": title, "body": "" },
            "format": "json",
        }))
        .send()
        .await
        .map_err(drop)?;
    let body: serde_json::Value = response.json().await.map_err(drop)?;
    Ok(body["status"] == "success")
}

/// The run's figures, shown with `--no-capture`.
#[allow(clippy::print_stderr)]
fn report(line: &str) {
    eprintln!("cluster run: {line}");
}

/// How the committer is stopped mid-workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommitterStop {
    /// SIGKILL: the process vanishes; PostgreSQL ends its session and so its lease.
    Killed,
    /// SIGTERM: the process drains, hands the lease over and exits 0.
    Terminated,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committer_dies_under_load_and_nothing_acknowledged_is_lost() {
    committer_stops_under_load(CommitterStop::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committer_stopped_with_sigterm_hands_over_at_once_and_nothing_is_lost() {
    committer_stops_under_load(CommitterStop::Terminated).await;
}

async fn committer_stops_under_load(how: CommitterStop) {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db_url = format!("{}?schema={}", pg.url(), pg.name());
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = Idp::open(
        IdpConfig::new(dir.path().join("idp")),
        listener.local_addr().unwrap(),
    )
    .unwrap();
    tokio::spawn(idp.clone().serve(listener));
    let user = idp
        .create_user(NewUser {
            email_addresses: vec!["ada@example.com".to_owned()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    let session = idp.create_session(&user.id).unwrap();
    let token = idp
        .template_token(&session.id, "convex", Some(Duration::from_secs(600)))
        .unwrap();

    let mut nodes: Vec<Node> = (0..3)
        .map(|n| Node::start(&db_url, idp.issuer(), &dir.path().join(format!("node{n}"))))
        .collect();
    assert_eq!(
        nodes.iter().filter(|n| n.committer).count(),
        1,
        "exactly one committer"
    );
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let mut subscribers = Vec::new();
    for url in &urls {
        subscribers.push(subscribe(url, &token).await);
    }

    // Writers: writer k starts on node k and moves to the next node when its node is gone.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let (kill_sender, killed) = watch::channel(false);
    let mut writers = Vec::new();
    for k in 0..WRITERS {
        let (urls, token, acknowledged, killed) = (
            urls.clone(),
            token.clone(),
            acknowledged.clone(),
            killed.clone(),
        );
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            // Failures: answered with an error (must not happen: forwarded calls in doubt are
            // resolved by their receipts), and unreachable (the killed node; in doubt).
            let (mut node, mut after_kill, mut errors, mut unreachable) = (k, 0, 0, 0);
            let deadline = Instant::now() + WAIT;
            for i in 0.. {
                assert!(
                    Instant::now() < deadline,
                    "writer {k} made too little progress"
                );
                if after_kill >= AFTER_KILL_PER_WRITER {
                    return (errors, unreachable);
                }
                let title = format!("w{k}-{i}");
                match create(&http, &urls[node % urls.len()], &token, &title).await {
                    Ok(true) => {
                        acknowledged.lock().unwrap().push(title);
                        if *killed.borrow() {
                            after_kill += 1;
                        }
                    }
                    Ok(false) => errors += 1,
                    Err(()) => {
                        unreachable += 1;
                        node += 1;
                    }
                }
            }
            (errors, unreachable)
        }));
    }

    // Kill the committer mid-workload.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < BEFORE_KILL {
        assert!(started.elapsed() < WAIT, "the workload does not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let old = nodes.iter().position(|n| n.committer).unwrap();
    let old_url = nodes[old].url.clone();
    let killed_at = Instant::now();
    match how {
        CommitterStop::Killed => {
            nodes[old].child.kill().unwrap(); // SIGKILL
            nodes[old].child.wait().unwrap();
        }
        CommitterStop::Terminated => {
            let sent = Command::new("kill")
                .args(["-TERM", &nodes[old].child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            let status = loop {
                if let Some(status) = nodes[old].child.try_wait().unwrap() {
                    break status;
                }
                assert!(killed_at.elapsed() < WAIT, "the committer did not stop");
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            assert!(status.success(), "the committer exited with {status}");
        }
    }
    kill_sender.send_replace(true);

    // Another node publishes itself as the committer within a few seconds.
    let observer = PostgresPersistence::connect_standby(pg.url(), pg.options())
        .await
        .unwrap();
    let new_url = loop {
        match observer.committer_address().await.unwrap() {
            Some(address) if address != old_url => break address,
            _ => {}
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no node took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let takeover = killed_at.elapsed();
    let limit = match how {
        CommitterStop::Killed => Duration::from_secs(5),
        // The drain and the hand-over, not a connection timing out.
        CommitterStop::Terminated => Duration::from_secs(3),
    };
    assert!(takeover < limit, "takeover took {takeover:?} after {how:?}");
    assert!(urls.contains(&new_url) && new_url != old_url, "{new_url}");

    let (mut errors, mut unreachable) = (0, 0);
    for writer in writers {
        let (e, u) = writer.await.unwrap();
        errors += e;
        unreachable += u;
    }
    assert_eq!(errors, 0, "a live node answered a mutation with an error");

    // The killed node, restarted as a supervisor would, rejoins as a follower.
    nodes[old] = Node::start(
        &db_url,
        idp.issuer(),
        &dir.path().join(format!("node{old}")),
    );
    assert!(!nodes[old].committer);
    subscribers[old] = subscribe(&nodes[old].url, &token).await;

    // Every subscriber converges to the same posts, holding every acknowledged one once.
    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let mut seen = Vec::new();
    for (n, (_, titles)) in subscribers.iter_mut().enumerate() {
        let titles = tokio::time::timeout(
            WAIT,
            titles.wait_for(|t| acknowledged.iter().all(|a| t.contains(a))),
        )
        .await
        .unwrap_or_else(|_| panic!("node {n} never showed every acknowledged post"))
        .unwrap()
        .clone();
        let unique: BTreeSet<&String> = titles.iter().collect();
        assert_eq!(
            unique.len(),
            titles.len(),
            "node {n}: a mutation applied twice"
        );
        seen.push(titles);
    }
    // In-doubt mutations (in flight at the kill) may or may not have landed, but the same way
    // everywhere: wait for the nodes to agree on the final list.
    let last = {
        let mut check = ConvexClient::new(&new_url).await.unwrap();
        check.set_auth(Some(token.clone())).await;
        titles(
            &check
                .query(
                    "posts:list",
                    BTreeMap::from([("limit".to_owned(), Value::Float64(100_000.0))]),
                )
                .await
                .unwrap(),
        )
    };
    for (n, (_, titles)) in subscribers.iter_mut().enumerate() {
        tokio::time::timeout(WAIT, titles.wait_for(|t| *t == last))
            .await
            .unwrap_or_else(|_| panic!("node {n} does not converge"))
            .unwrap();
    }
    report(&format!(
        "{how:?}: takeover {takeover:?}, {} acknowledged, {unreachable} sent to the stopped \
         node (in doubt), {} posts",
        acknowledged.len(),
        last.len()
    ));
    assert!(last.len() >= acknowledged.len());
    drop((subscribers, seen, nodes));
    pg.drop_schema().await;
}

/// One call over the HTTP API as `token`: Convex's JSON answer, or `None` when the node could
/// not be reached.
async fn call(
    http: &reqwest::Client,
    url: &str,
    kind: &str,
    token: &str,
    path: &str,
    args: serde_json::Value,
) -> Option<serde_json::Value> {
    let response = http
        .post(format!("{url}/api/{kind}"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "path": path, "args": args, "format": "json" }))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_posts_each_run_once_when_the_committer_is_killed() {
    const JOBS: usize = 30;
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db_url = format!("{}?schema={}", pg.url(), pg.name());
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = Idp::open(
        IdpConfig::new(dir.path().join("idp")),
        listener.local_addr().unwrap(),
    )
    .unwrap();
    tokio::spawn(idp.clone().serve(listener));
    let user = idp
        .create_user(NewUser {
            email_addresses: vec!["ada@example.com".to_owned()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    let session = idp.create_session(&user.id).unwrap();
    let token = idp
        .template_token(&session.id, "convex", Some(Duration::from_secs(600)))
        .unwrap();
    let mut nodes: Vec<Node> = (0..2)
        .map(|n| Node::start(&db_url, idp.issuer(), &dir.path().join(format!("node{n}"))))
        .collect();
    let old = nodes.iter().position(|n| n.committer).unwrap();
    let survivor = nodes[1 - old].url.clone();
    let http = reqwest::Client::new();

    // Jobs due from now to three seconds on, scheduled through both nodes (the follower
    // forwards its mutations): some run before the kill, some are due while no node commits,
    // some after the takeover.
    for i in 0..JOBS {
        let node = &nodes[i % 2].url;
        let args = serde_json::json!({
            "title": format!("scheduled {i}"),
            "body": "",
            "delayMs": (i * 100) as f64,
        });
        let answer = call(&http, node, "mutation", &token, "posts:publishLater", args)
            .await
            .expect("the node answers");
        assert_eq!(answer["status"], "success", "{answer}");
    }
    let killed_at = Instant::now();
    nodes[old].child.kill().unwrap(); // SIGKILL
    nodes[old].child.wait().unwrap();

    // The survivor takes over and runs what is left; every post appears exactly once.
    let list = serde_json::json!({ "limit": 100_000.0 });
    let titles = loop {
        let answer = call(
            &http,
            &survivor,
            "query",
            &token,
            "posts:list",
            list.clone(),
        )
        .await;
        let titles: Vec<String> = answer
            .as_ref()
            .and_then(|answer| answer["value"].as_array())
            .map(|posts| {
                posts
                    .iter()
                    .filter_map(|post| post["title"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if titles.len() >= JOBS {
            break titles;
        }
        assert!(
            killed_at.elapsed() < WAIT,
            "the scheduled posts never all appeared: {titles:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let unique: BTreeSet<&String> = titles.iter().collect();
    assert_eq!(
        unique.len(),
        titles.len(),
        "a scheduled post ran twice: {titles:?}"
    );
    assert_eq!(unique.len(), JOBS, "{titles:?}");
    report(&format!(
        "scheduler: {JOBS} scheduled posts, each once, {:?} after the kill",
        killed_at.elapsed()
    ));
    drop(nodes);
    pg.drop_schema().await;
}

/// Runs mutation `path` over the HTTP API of `url`; its value.
async fn mutation(
    url: &str,
    token: &str,
    path: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/mutation"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "path": path, "args": args, "format": "json" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "success", "{path}: {answer}");
    answer["value"].clone()
}

/// Each node has its own data directory: a file uploaded through one is served by every other
/// because its bytes live in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_uploaded_to_one_node_is_served_by_every_node() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db_url = format!("{}?schema={}", pg.url(), pg.name());
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = Idp::open(
        IdpConfig::new(dir.path().join("idp")),
        listener.local_addr().unwrap(),
    )
    .unwrap();
    tokio::spawn(idp.clone().serve(listener));
    let user = idp
        .create_user(NewUser {
            email_addresses: vec!["grace@example.com".to_owned()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    let session = idp.create_session(&user.id).unwrap();
    let token = idp
        .template_token(&session.id, "convex", Some(Duration::from_secs(600)))
        .unwrap();
    let nodes: Vec<Node> = (0..2)
        .map(|n| Node::start(&db_url, idp.issuer(), &dir.path().join(format!("node{n}"))))
        .collect();
    let follower = nodes.iter().find(|n| !n.committer).expect("a follower");
    let committer = nodes.iter().find(|n| n.committer).expect("a committer");

    let image: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    let upload_url = mutation(
        &follower.url,
        &token,
        "files:generateUploadUrl",
        serde_json::json!({}),
    )
    .await;
    let uploaded: serde_json::Value = reqwest::Client::new()
        .post(upload_url.as_str().unwrap())
        .header("content-type", "image/png")
        .body(image.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let storage_id = uploaded["storageId"]
        .as_str()
        .expect("a storage id")
        .to_owned();
    let id = mutation(
        &follower.url,
        &token,
        "posts:create",
        serde_json::json!({ "title": "Clustered", "body": "", "imageId": storage_id }),
    )
    .await;
    for node in &nodes {
        let served = reqwest::get(format!("{}/api/storage/{storage_id}", node.url))
            .await
            .unwrap();
        assert_eq!(served.status(), reqwest::StatusCode::OK, "{}", node.url);
        assert_eq!(served.headers()["content-type"], "image/png");
        assert_eq!(
            served.bytes().await.unwrap().as_ref(),
            &image[..],
            "{}",
            node.url
        );
    }
    let post: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/query", committer.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "path": "posts:get", "args": { "id": id }, "format": "json" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        post["value"]["imageUrl"],
        format!("{}/api/storage/{storage_id}", committer.url)
    );
    drop(nodes);
    pg.drop_schema().await;
}
