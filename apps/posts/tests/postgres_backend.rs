//! `keel backend --backend-role committer` with `KEEL_DATABASE_URL=postgres://…`: it runs on
//! PostgreSQL, a second such backend on the same database refuses to become the committer, and
//! once the first is killed a new one takes over. (Backends in the default `node` role share the
//! database instead: see `backend_cluster.rs`.) Uses a fresh schema on the test server (`KEEL_TEST_POSTGRES_URL`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keel_db::persistence::PostgresTestSchema;

fn backend(url: &str, data_dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        // The site (HTTP actions) on a free port too, never the shared default.
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .arg("backend")
        .env("KEEL_DATABASE_URL", url)
        .env("KEEL_BACKEND_ADDR", "127.0.0.1:0")
        .env("KEEL_DATA_DIR", data_dir)
        .env("KEEL_BACKEND_ROLE", "committer")
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (up to a deadline) for the `backend: <url>` line on the child's stdout.
fn wait_until_serving(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("backend: ") {
                    return url.to_owned();
                }
            }
            Err(e) => {
                let _ = child.kill();
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("the backend did not start ({e}): {stderr}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_on_postgres_take_turns_as_committer() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}?schema={}", pg.url(), pg.name());
    let dir = tempfile::tempdir().unwrap();

    let mut first = backend(&url, dir.path());
    let served = wait_until_serving(&mut first);
    assert!(served.starts_with("http://127.0.0.1:"), "{served}");

    // A second backend on the same database is refused, naming the holder.
    let second = backend(&url, dir.path()).wait_with_output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another backend holds the committer lease")
            && stderr.contains(pg.name())
            && stderr.contains(&format!("process {}", first.id())),
        "{stderr}"
    );

    // Once the first dies (SIGKILL, no clean-up), a new backend becomes the committer.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut third = backend(&url, dir.path());
    wait_until_serving(&mut third);
    third.kill().unwrap();
    third.wait().unwrap();
    pg.drop_schema().await;
}
