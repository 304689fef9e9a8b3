//! Operating the reference app's `keel` process: the admin key (printed at start, kept in the
//! data directory with mode 0600 across restarts, or given with `--admin-key`), the execution
//! log behind it with `posts:list`'s log line, and `/metrics` on each service (backend, web,
//! idp) parsed strictly after real traffic, open or behind the admin key.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use keel_testing::prometheus;
use reqwest::StatusCode;
use support::{Deployment, Mode, Process};

/// Waits until `check` holds, polling; panics after 30 s.
async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(url: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("request completes");
    (response.status(), response.text().await.expect("body"))
}

/// A scrape of `base`'s `/metrics`, parsed strictly.
async fn scrape(base: &str, auth: Option<&str>) -> prometheus::Metrics {
    let (status, text) = get(&format!("{base}/metrics"), auth).await;
    assert_eq!(status, StatusCode::OK, "{base}/metrics: {text}");
    prometheus::parse(&text).unwrap_or_else(|e| panic!("{base}/metrics: {e}\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_key_is_printed_kept_private_and_the_same_after_a_restart() {
    let mut deployment = Deployment::start(Mode::OneProcess);
    let key = deployment.processes[0]
        .line("admin key")
        .expect("an `admin key:` line");
    let file = deployment.dir.path().join("admin_key");
    assert_eq!(
        std::fs::read_to_string(&file).expect("the key file").trim(),
        key
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let logs = format!("{}/api/admin/logs", deployment.backend);
    assert_eq!(get(&logs, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&logs, Some("Convex wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&logs, Some(&format!("Convex {key}"))).await.0,
        StatusCode::OK
    );

    deployment.processes[0].terminate(Duration::from_secs(30));
    deployment.restart(&[]);
    assert_eq!(
        deployment.processes[0].line("admin key").as_deref(),
        Some(key.as_str())
    );
    let logs = format!("{}/api/admin/logs", deployment.backend);
    assert_eq!(
        get(&logs, Some(&format!("Convex {key}"))).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_admin_key_is_used_and_a_malformed_one_refused_at_start() {
    let given = "a-cluster-wide-admin-key-0123456789abcdef";
    let deployment = Deployment::start_with(Mode::OneProcess, &["--admin-key", given]);
    assert_eq!(
        deployment.processes[0].line("admin key").as_deref(),
        Some("(given"),
        "the given key is not printed"
    );
    assert!(!deployment.dir.path().join("admin_key").exists());
    let logs = format!("{}/api/admin/logs", deployment.backend);
    assert_eq!(
        get(&logs, Some(&format!("Convex {given}"))).await.0,
        StatusCode::OK
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = support::ANY_PORTS.to_vec();
    args.extend(["--admin-key", "short key"]);
    let exited = support::run_to_exit(&args, dir.path(), Duration::from_secs(30));
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("--admin-key"), "{}", exited.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_metrics_that_move_with_traffic() {
    let deployment = Deployment::start(Mode::OneProcess);
    let key = deployment.processes[0].line("admin key").expect("key line");
    let visitor = deployment.signed_up("ada@example.com").await;
    let (status, _) = visitor.page("/posts").await;
    assert_eq!(status, StatusCode::OK);
    let returning = deployment.visitor();
    let right = returning
        .sign_in("ada@example.com", support::PASSWORD)
        .await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    // A wrong password (the idp counts the failure, below).
    deployment
        .visitor()
        .sign_in("ada@example.com", "not the password")
        .await;

    // A page kept live: its event stream stays open while the scrape is taken.
    let live = reqwest::Client::new()
        .get(deployment.url("/_keel/live?q=[]"))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(live.status(), StatusCode::OK);

    // The reference app's `posts:list` logs a line, which its caller receives.
    let token = deployment.backend_token("grace@example.com").await;
    let listed: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/query", deployment.backend))
        .bearer_auth(&token)
        .json(&serde_json::json!({"path": "posts:list", "args": {}}))
        .send()
        .await
        .expect("request completes")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        listed["logLines"],
        serde_json::json!(["[LOG] 'listed 0 posts'"])
    );

    let backend = scrape(&deployment.backend, None).await;
    assert!(
        backend.sum(
            "keel_function_calls_total",
            &[("path", "posts:list"), ("outcome", "success")]
        ) >= 1.0
    );
    // The page's own queries reach the backend in process (no HTTP request, see
    // `transport.rs`), and are counted as calls all the same; the client's request is HTTP.
    assert!(
        backend.sum(
            "keel_function_calls_total",
            &[("path", "posts:newest"), ("outcome", "success")]
        ) >= 1.0
    );
    assert!(backend.sum("keel_http_requests_total", &[("route", "/api/query")]) >= 1.0);
    let idp = scrape(&deployment.idp, None).await;
    assert!(
        idp.value("keel_idp_sign_ins_total", &[])
            .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        idp.value(
            "keel_idp_sign_in_failures_total",
            &[("reason", "incorrect_password")]
        ),
        Some(1.0)
    );
    wait_until("the live page is counted", async || {
        scrape(&deployment.web, None)
            .await
            .value("keel_live_pages", &[])
            == Some(1.0)
    })
    .await;
    let web = scrape(&deployment.web, None).await;
    assert!(
        web.sum(
            "keel_http_requests_total",
            &[("route", "page"), ("status", "200")]
        ) >= 1.0
    );
    drop(live);
    wait_until("the closed page leaves the gauge", async || {
        scrape(&deployment.web, None)
            .await
            .value("keel_live_pages", &[])
            == Some(0.0)
    })
    .await;

    // The execution log has `posts:list` with its line and its caller.
    let (status, text) = get(
        &format!("{}/api/admin/logs", deployment.backend),
        Some(&format!("Convex {key}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let list = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["path"] == "posts:list")
        .unwrap_or_else(|| panic!("posts:list in {page}"));
    assert_eq!(list["logLines"][0]["message"], "'listed 0 posts'");
    assert!(
        list["caller"].as_str().is_some_and(|c| c.contains('|')),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_the_admin_key_on_every_service() {
    let deployment = Deployment::start_with(Mode::OneProcess, &["--metrics-require-admin-key"]);
    let key = deployment.processes[0].line("admin key").expect("key line");
    let auth = format!("Convex {key}");
    for base in [&deployment.backend, &deployment.web, &deployment.idp] {
        let (status, body) = get(&format!("{base}/metrics"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{base}: {body}");
        assert_eq!(
            get(&format!("{base}/metrics"), Some("Convex wrong"))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        scrape(base, Some(&auth)).await;
    }
}

#[test]
fn a_separate_web_tier_reads_the_admin_key_from_the_data_directory_or_says_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = [
        "web",
        "--web-addr",
        "127.0.0.1:0",
        "--backend-url",
        "http://127.0.0.1:9",
        "--idp-url",
        "http://127.0.0.1:9",
        "--idp-secret-key",
        "sk_test_x",
        "--metrics-require-admin-key",
    ];
    let exited = support::run_to_exit(&args, dir.path(), Duration::from_secs(30));
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("admin_key"), "{}", exited.stderr);
    std::fs::write(
        dir.path().join("admin_key"),
        "a-key-written-by-the-backend-0123456789\n",
    )
    .expect("write");
    let mut web = Process::start(&args, dir.path(), &["web: "]);
    web.terminate(Duration::from_secs(30));
}
