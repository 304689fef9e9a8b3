//! The `keel` process from the outside: a graceful shutdown under load (SIGTERM while HTTP,
//! WebSocket and web-form clients write and a page's live stream is open), the data-directory
//! locks (three services on one directory, released when a process stops), host names as
//! listen addresses, and plain-text logs that say when each service is ready and stopped.
//! Refusals of a second process on a running deployment's data or ports are rows of the
//! security table (`tests/security/process.rs`).

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use support::{Deployment, Mode, Process, rand_suffix};

/// Every wait in these tests.
const WAIT: Duration = Duration::from_secs(30);

/// What the writers saw: acknowledged titles, and answers that were failures.
#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<String>,
    failures: Vec<String>,
}

type Shared = Arc<Mutex<Outcomes>>;

/// Writes posts through the backend's HTTP API until the backend is unreachable.
async fn http_writer(backend: String, token: String, name: String, outcomes: Shared) {
    let http = reqwest::Client::new();
    for i in 0.. {
        let title = format!("{name}-{i}");
        let sent = http
            .post(format!("{backend}/api/mutation"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "path": "posts:create", "args": { "title": title, "body": "" }, "format": "json",
            }))
            .send()
            .await;
        // Unreachable: the server stopped accepting (or closed an idle connection); in doubt.
        let Ok(response) = sent else { return };
        let Ok(body) = response.json::<serde_json::Value>().await else {
            return;
        };
        let mut outcomes = outcomes.lock().unwrap();
        match body["status"] == "success" {
            true => outcomes.acknowledged.push(title),
            false => outcomes.failures.push(body.to_string()),
        }
    }
}

/// Writes posts with the official Rust client over the WebSocket until a mutation stays
/// unanswered (the socket closed and the backend is gone: in doubt).
async fn socket_writer(backend: String, token: String, name: String, outcomes: Shared) {
    let mut client = convex::ConvexClient::new(&backend).await.unwrap();
    client.set_auth(Some(token)).await;
    for i in 0.. {
        let title = format!("{name}-{i}");
        let args = BTreeMap::from([
            ("title".to_owned(), convex::Value::String(title.clone())),
            ("body".to_owned(), convex::Value::String(String::new())),
        ]);
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            client.mutation("posts:create", args),
        );
        let Ok(Ok(result)) = answer.await else {
            return;
        };
        let mut outcomes = outcomes.lock().unwrap();
        match result {
            convex::FunctionResult::Value(_) => outcomes.acknowledged.push(title),
            failure => outcomes.failures.push(format!("{failure:?}")),
        }
    }
}

/// Creates posts through the web tier's server function, as a signed-in browser's form does.
async fn form_writer(visitor: support::Visitor, name: String, outcomes: Shared) {
    for i in 0.. {
        let title = format!("{name}-{i}");
        let sent = visitor
            .client
            .post(visitor.url("/_keel/fn/posts/create"))
            .form(&[("title", title.as_str()), ("body", "")])
            .send()
            .await;
        let Ok(response) = sent else { return };
        // Success redirects to the posts page; a refusal adds `?error=…` to it.
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut outcomes = outcomes.lock().unwrap();
        match (response.status(), location.as_str()) {
            (StatusCode::SEE_OTHER, "/posts") => outcomes.acknowledged.push(title),
            (status, location) => outcomes
                .failures
                .push(format!("the form answered {status} {location}")),
        }
    }
}

/// Opens the live event stream of `visitor`'s posts page and waits for its `ready`; returns
/// the rest of the stream.
async fn open_page_stream(
    visitor: &support::Visitor,
) -> futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>> {
    let (_, html) = visitor.page("/posts").await;
    let marker = r#"<meta name="keel-live" content=""#;
    let start = html.find(marker).expect("a live address") + marker.len();
    let url = html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let response = visitor.client.get(visitor.url(&url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream().boxed();
    let mut seen = String::new();
    while !seen.contains("event: ready") {
        let chunk = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("the stream gets ready")
            .expect("the stream is open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_mutation_and_exits_0() {
    // A long deadline: the process must not need it (an open page stream or socket that the
    // shutdown failed to end would hold it that long).
    let mut keel = Deployment::start_with(Mode::OneProcess, &["--shutdown-timeout", "60s"]);
    let token = keel
        .backend_token(&format!("writer-{}@example.com", rand_suffix()))
        .await;
    let reader = keel
        .signed_up(&format!("reader-{}@example.com", rand_suffix()))
        .await;
    let mut page_stream = open_page_stream(&reader).await;

    let outcomes = Shared::default();
    let mut writers = Vec::new();
    for k in 0..3 {
        let name = format!("http{k}");
        writers.push(tokio::spawn(http_writer(
            keel.backend.clone(),
            token.clone(),
            name,
            outcomes.clone(),
        )));
    }
    for k in 0..2 {
        let name = format!("socket{k}");
        writers.push(tokio::spawn(socket_writer(
            keel.backend.clone(),
            token.clone(),
            name,
            outcomes.clone(),
        )));
    }
    let visitor = keel
        .signed_up(&format!("form-{}@example.com", rand_suffix()))
        .await;
    writers.push(tokio::spawn(form_writer(
        visitor,
        "form".to_owned(),
        outcomes.clone(),
    )));

    let started = Instant::now();
    while outcomes.lock().unwrap().acknowledged.len() < 60 {
        assert!(started.elapsed() < WAIT, "the load does not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    let status = keel.processes[0].terminate(WAIT);
    let stopped_after = signalled.elapsed();
    assert!(status.success(), "keel exited with {status} after SIGTERM");
    assert!(
        stopped_after < Duration::from_secs(20),
        "the shutdown took {stopped_after:?}: something held it until near the deadline"
    );
    // The page's live stream was ended (the browser runtime reconnects by itself).
    let rest = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = page_stream.next().await {}
    });
    rest.await.expect("the page stream ended with the process");
    for writer in writers {
        tokio::time::timeout(WAIT, writer)
            .await
            .expect("every writer stops once the process is gone")
            .unwrap();
    }
    let Outcomes {
        acknowledged,
        failures,
    } = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(
        failures.is_empty(),
        "requests in flight failed: {failures:?}"
    );

    // Every acknowledged post is there, once, after a restart on the same data.
    keel.restart(&[]);
    let token = keel
        .backend_token(&format!("checker-{}@example.com", rand_suffix()))
        .await;
    let listed = keel
        .query(
            "posts:list",
            serde_json::json!({ "limit": 100_000 }),
            Some(&token),
        )
        .await;
    let titles: Vec<&str> = listed["value"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|post| post["title"].as_str())
        .collect();
    let unique: BTreeSet<&str> = titles.iter().copied().collect();
    assert_eq!(unique.len(), titles.len(), "a mutation was applied twice");
    for title in &acknowledged {
        assert!(
            unique.contains(title.as_str()),
            "acknowledged {title} is missing"
        );
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{} acknowledged, stopped {stopped_after:?} after SIGTERM",
            acknowledged.len()
        );
    }
}

#[tokio::test]
async fn three_services_share_one_data_dir_and_locks_go_with_their_process() {
    let mut keel = Deployment::separate(tempfile::tempdir().unwrap(), true, &[]);
    keel.assert_still_serves().await;

    // A stopped backend lets go of its database: another takes over the same data.
    let status = keel.processes[1].terminate(WAIT);
    assert!(status.success(), "{status}");
    let again = Process::start(
        &[
            "backend",
            "--backend-addr",
            "127.0.0.1:0",
            "--auth-issuer",
            &keel.idp,
        ],
        keel.dir.path(),
        &["backend: "],
    );
    assert!(again.line("backend").is_some());
}

#[tokio::test]
async fn host_names_are_listen_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let keel = Process::start(
        &[
            "--web-addr",
            "localhost:0",
            "--backend-addr",
            "localhost:0",
            "--idp-addr",
            "localhost:0",
            "--site-addr",
            "localhost:0",
        ],
        dir.path(),
        &["web: ", "backend: ", "site: ", "idp: "],
    );
    for name in ["web", "backend", "site", "idp"] {
        let url = keel.line(name).unwrap();
        assert!(url.starts_with("http://localhost:"), "{name}: {url}");
        assert!(!url.ends_with(":0"), "{name}: {url} (the bound port)");
    }
    let web = keel.line("web").unwrap();
    let response = reqwest::get(format!("{web}/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The idp's issuer is the name too, and the backend accepts its tokens.
    let mut keel = Deployment {
        mode: Mode::OneProcess,
        web,
        backend: keel.line("backend").unwrap(),
        site: keel.line("site").unwrap(),
        idp: keel.line("idp").unwrap(),
        secret_key: keel.line("idp secret key").unwrap(),
        processes: vec![keel],
        dir,
    };
    keel.assert_still_serves().await;
}

#[test]
fn logs_are_plain_text_off_a_terminal_and_say_ready_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        // The site (HTTP actions) on a free port too, never the shared default.
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .args(support::ANY_PORTS)
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| {
        while !log.iter().any(|l: &String| l.contains(needle)) {
            let line = received
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no log line with {needle:?} in {log:#?}"));
            log.push(line);
        }
    };
    for ready in ["identity provider ready", "backend ready", "web tier ready"] {
        wait_for(ready, &mut log);
    }
    let status = support::terminate(&mut child, WAIT);
    assert!(status.success(), "{status}");
    for stopped in [
        "web tier stopped",
        "identity provider stopped",
        "backend stopped",
    ] {
        wait_for(stopped, &mut log);
    }
    assert!(
        !log.iter().any(|l| l.contains('\u{1b}')),
        "colour codes in a log that is not a terminal: {log:#?}"
    );
}
