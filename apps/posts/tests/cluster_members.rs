//! The cluster's members across three `keel backend` processes on one PostgreSQL schema: every
//! node lists all three (as JSON under the admin key, on the dashboard's health page, and as
//! the `keel_cluster_members` gauge); a node killed with SIGKILL shows as gone on the others
//! within a deadline; a node stopped with SIGTERM removes its own record; the JSON route
//! answers 401 without the admin key.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use keel_db::persistence::PostgresTestSchema;
use reqwest::StatusCode;
use serde_json::Value;
use support::Process;

/// The admin key every node is given (`KEEL_ADMIN_KEY`).
const KEY: &str = "a-shared-admin-key-for-the-cluster-members-test";
/// How long a member may take to appear, to be shown as gone or to leave: the heartbeat is 2 s
/// and a member is gone after three missed ones.
const WAIT: Duration = Duration::from_secs(25);

fn start_node(db_url: &str, data_dir: &Path) -> (Process, String) {
    let node = Process::start_with_env(
        &["backend"],
        data_dir,
        &["backend: "],
        &[
            ("KEEL_DATABASE_URL", db_url),
            ("KEEL_BACKEND_ADDR", "127.0.0.1:0"),
            ("KEEL_ADMIN_KEY", KEY),
        ],
    );
    let url = node.line("backend").expect("a backend line");
    (node, url)
}

/// `GET /api/keel/cluster/members` on `url` with `authorization`.
async fn members_with(url: &str, authorization: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(format!("{url}/api/keel/cluster/members"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The members `url` lists, by address: (state, this node).
async fn members(url: &str) -> Vec<(String, String, bool)> {
    let (status, body) = members_with(url, Some(&format!("Convex {KEY}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let mut members: Vec<(String, String, bool)> = body["members"]
        .as_array()
        .expect("a list of members")
        .iter()
        .map(|m| {
            (
                m["address"].as_str().expect("an address").to_owned(),
                m["state"].as_str().expect("a state").to_owned(),
                m["thisNode"].as_bool().expect("thisNode"),
            )
        })
        .collect();
    members.sort();
    members
}

/// Waits until `check` holds for what `url` lists.
async fn wait_for_members(
    url: &str,
    what: &str,
    check: impl Fn(&[(String, String, bool)]) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let listed = members(url).await;
        if check(&listed) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT,
            "{url} never showed {what}: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The health page of `url`'s dashboard, signed in with the admin key.
async fn health_page(url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = client
        .post(format!("{url}/dashboard/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = client
        .get(format!("{url}/dashboard"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

/// The `keel_cluster_members` gauge on `url`'s `/metrics`.
async fn gauge(url: &str) -> Option<f64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("keel_cluster_members "))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_lists_the_members_and_sees_a_killed_one_gone_and_a_stopped_one_leave() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db_url = format!("{}?schema={}", pg.url(), pg.name());
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<(Process, String)> = (0..3)
        .map(|n| start_node(&db_url, &dir.path().join(format!("node{n}"))))
        .collect();
    let urls: Vec<String> = nodes.iter().map(|(_, url)| url.clone()).collect();

    // Every node lists all three as live, itself once as this node.
    for url in &urls {
        wait_for_members(url, "three live members", |listed| {
            listed.len() == 3
                && listed.iter().all(|(_, state, _)| state == "live")
                && listed.iter().map(|(a, _, _)| a).eq(sorted(&urls).iter())
                && listed
                    .iter()
                    .filter(|(address, _, this)| *this && address == url)
                    .count()
                    == 1
        })
        .await;
    }
    let page = health_page(&urls[1]).await;
    for url in &urls {
        assert!(
            page.contains(url.as_str()),
            "{url} on the health page: {page}"
        );
    }
    assert!(page.contains("3 live of 3 recorded"), "{page}");
    assert_eq!(page.matches(r#"data-state="live""#).count(), 3, "{page}");
    let started = Instant::now();
    while gauge(&urls[0]).await != Some(3.0) {
        assert!(started.elapsed() < WAIT, "the gauge never counted three");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Without the admin key, or with another one: 401, no members.
    for authorization in [None, Some("Convex not-the-admin-key"), Some("Bearer x")] {
        let (status, body) = members_with(&urls[0], authorization).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}: {body}"
        );
        assert!(!body.contains(&urls[1]), "{body}");
    }

    // SIGKILL: the node's record stays, shown as gone once it misses its heartbeats.
    let killed = urls[2].clone();
    nodes[2].0.child.kill().unwrap();
    nodes[2].0.child.wait().unwrap();
    for url in &urls[..2] {
        let took = wait_for_members(url, "the killed node gone", |listed| {
            listed.len() == 3
                && listed
                    .iter()
                    .all(|(address, state, _)| (address == &killed) == (state == "gone"))
        })
        .await;
        assert!(took < WAIT, "{took:?}");
    }
    let page = health_page(&urls[0]).await;
    assert!(page.contains("2 live of 3 recorded"), "{page}");
    assert_eq!(page.matches(r#"data-state="gone""#).count(), 1, "{page}");

    // SIGTERM: the node leaves cleanly and removes its record at once.
    let stopped = urls[1].clone();
    let status = nodes[1].0.terminate(WAIT);
    assert!(status.success(), "{status}");
    let listed = members(&urls[0]).await;
    assert!(
        listed.iter().all(|(address, _, _)| address != &stopped),
        "a node that stopped cleanly is no member: {listed:?}"
    );
    assert_eq!(listed.len(), 2, "{listed:?}");
}

fn sorted(urls: &[String]) -> Vec<String> {
    let mut urls = urls.to_vec();
    urls.sort();
    urls
}
