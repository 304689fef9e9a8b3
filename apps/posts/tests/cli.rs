//! `keel export / import / data / logs / run` against running `keel` processes: the reference app on
//! SQLite with a post and its image, exported with its stored files, imported into a fresh
//! deployment on PostgreSQL, where `keel run posts:list` answers the same and the image serves
//! the same bytes; and the command line's errors — no key, a wrong key (401), an unreachable
//! backend, a failing function, a refused import — each with a non-zero exit code.

mod support;

use std::path::Path;
use std::process::Command;

use keel_db::persistence::PostgresTestSchema;
use reqwest::StatusCode;
use serde_json::Value as Json;
use support::{Deployment, Mode};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR an image for the snapshot";
const BOUNDARY: &str = "----keelCliBoundary";

/// What a `keel` command printed and how it ended.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `keel <args>` to its end with `data_dir` as the data directory (where the admin key is
/// read from) and no `KEEL_ADMIN_KEY` from the test's environment.
fn keel_cli(args: &[&str], data_dir: &Path) -> Ran {
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("KEEL_DATA_DIR", data_dir)
        .env_remove("KEEL_ADMIN_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("keel runs");
    Ran {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn json(ran: &Ran) -> Json {
    assert!(ran.ok, "keel failed: {}", ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
}

async fn post_with_image(keel: &Deployment) {
    let visitor = keel.signed_up("exporter@example.com").await;
    let mut body = Vec::new();
    for (name, value) in [("title", "Exported"), ("body", "with an image")] {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(PNG);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let response = visitor
        .client
        .post(visitor.url("/_keel/fn/posts/create"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// `posts:list` as a user, with each image URL replaced by the bytes it serves.
async fn listed_posts(keel: &Deployment, backend: &str) -> Vec<Json> {
    let ran = keel_run(
        keel,
        backend,
        &["posts:list", "{}", "--identity", r#"{"subject":"cli"}"#],
    );
    let mut posts = json(&ran).as_array().cloned().expect("a list");
    for post in &mut posts {
        if let Some(url) = post["imageUrl"].as_str() {
            assert!(url.starts_with(backend), "{url}");
            let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
            post["imageUrl"] = Json::String(format!("{} bytes", bytes.len()));
            assert_eq!(&bytes[..], PNG);
        }
    }
    posts
}

fn keel_run(deployment: &Deployment, backend: &str, args: &[&str]) -> Ran {
    let mut all = vec!["run", "--url", backend];
    all.extend_from_slice(args);
    keel_cli(&all, deployment.dir.path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_moves_to_postgres_through_the_command_line() {
    let source = Deployment::start(Mode::OneProcess);
    post_with_image(&source).await;
    let file = source.dir.path().join("snapshot.zip");
    let file = file.to_str().unwrap();

    // In the deployment's data directory the key needs no flag.
    let exported = json(&keel_cli(
        &[
            "export",
            file,
            "--include-file-storage",
            "--url",
            &source.backend,
        ],
        source.dir.path(),
    ));
    assert!(exported["bytes"].as_u64().unwrap() > 0, "{exported}");
    let tables = json(&keel_cli(
        &["data", "--url", &source.backend],
        source.dir.path(),
    ));
    let posts_count = |tables: &Json| {
        tables
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "posts")
            .map(|t| t["documents"].clone())
    };
    assert_eq!(posts_count(&tables), Some(Json::from(1)), "{tables}");

    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let database = format!("{}?schema={}", pg.url(), pg.name());
    let target = Deployment::start_with(Mode::OneProcess, &["--database-url", &database]);
    // The key given as a flag this time (read from the target's data directory by the test).
    let key = std::fs::read_to_string(target.dir.path().join("admin_key")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let imported = json(&keel_cli(
        &[
            "import",
            file,
            "--url",
            &target.backend,
            "--admin-key",
            key.trim(),
        ],
        elsewhere.path(),
    ));
    assert_eq!(imported["files"], 1, "{imported}");

    let before = listed_posts(&source, &source.backend).await;
    let after = listed_posts(&target, &target.backend).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before, after, "the same query answers the same");

    let documents = json(&keel_cli(
        &["data", "posts", "--limit", "5", "--url", &target.backend],
        target.dir.path(),
    ));
    assert_eq!(documents[0]["title"], "Exported", "{documents}");

    // A second import into the now non-empty tables is refused, and says how to proceed.
    let again = keel_cli(
        &["import", file, "--url", &target.backend],
        target.dir.path(),
    );
    assert!(!again.ok);
    assert!(
        again.stderr.contains("ImportTargetNotEmpty") && again.stderr.contains("--replace"),
        "{}",
        again.stderr
    );
    let replaced = json(&keel_cli(
        &["import", file, "--replace", "--url", &target.backend],
        target.dir.path(),
    ));
    assert_eq!(replaced["files"], 1, "{replaced}");
    assert_eq!(listed_posts(&target, &target.backend).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_refuses_clearly() {
    let keel_app = Deployment::start(Mode::OneProcess);
    let backend = keel_app.backend.as_str();
    let empty = tempfile::tempdir().unwrap();

    // In a project directory whose `./.keel` is the running deployment's data directory, with
    // its backend at KEEL_BACKEND_ADDR: no flag at all.
    let project = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(keel_app.dir.path(), project.path().join(".keel")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("data")
        .current_dir(project.path())
        .env_remove("KEEL_DATA_DIR")
        .env_remove("KEEL_ADMIN_KEY")
        .env(
            "KEEL_BACKEND_ADDR",
            backend.strip_prefix("http://").unwrap(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("\"posts\""),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let no_key = keel_cli(&["data", "--url", backend], empty.path());
    assert!(!no_key.ok);
    assert!(no_key.stderr.contains("NoAdminKey"), "{}", no_key.stderr);

    let wrong = keel_cli(
        &[
            "data",
            "--url",
            backend,
            "--admin-key",
            "keel|0000000000000000000000000000000000000000",
        ],
        empty.path(),
    );
    assert!(!wrong.ok);
    assert!(
        wrong.stderr.contains("Unauthorized") && wrong.stderr.contains("invalid"),
        "{}",
        wrong.stderr
    );

    let unreachable = keel_cli(
        &["data", "--url", "http://127.0.0.1:1"],
        keel_app.dir.path(),
    );
    assert!(!unreachable.ok);
    assert!(
        unreachable.stderr.contains("BackendUnreachable"),
        "{}",
        unreachable.stderr
    );

    let failing = keel_cli(
        &["run", "posts:list", "{}", "--url", backend],
        keel_app.dir.path(),
    );
    assert!(!failing.ok, "posts:list needs a user");
    assert!(
        failing.stderr.contains("FunctionFailed"),
        "{}",
        failing.stderr
    );

    let bad_args = keel_cli(
        &["run", "posts:list", "{nope", "--url", backend],
        keel_app.dir.path(),
    );
    assert!(!bad_args.ok);
    assert!(
        bad_args.stderr.contains("BadArgument"),
        "{}",
        bad_args.stderr
    );

    let not_zip = keel_app.dir.path().join("not.zip");
    std::fs::write(&not_zip, b"hello").unwrap();
    let refused = keel_cli(
        &["import", not_zip.to_str().unwrap(), "--url", backend],
        keel_app.dir.path(),
    );
    assert!(!refused.ok);
    assert!(refused.stderr.contains("InvalidZip"), "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("InvalidZip: InvalidZip"),
        "the code is said once: {}",
        refused.stderr
    );

    // Without a key on the wire at all, every admin route is a 401.
    let response = reqwest::get(format!("{backend}/api/admin/tables"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_logs_prints_executions_and_follows_new_ones() {
    use std::io::BufRead;

    let keel_app = Deployment::start(Mode::OneProcess);
    let backend = keel_app.backend.as_str();
    let dir = keel_app.dir.path();
    let ada = r#"{"subject":"ada","name":"Ada"}"#;
    assert!(
        keel_cli(
            &[
                "run",
                "posts:list",
                "{}",
                "--identity",
                ada,
                "--url",
                backend
            ],
            dir
        )
        .ok
    );
    assert!(!keel_cli(&["run", "posts:list", "{}", "--url", backend], dir).ok);

    // What is logged already: the success with its log line, the failure with its error.
    let logged = keel_cli(
        &["logs", "--once", "--history", "100", "--url", backend],
        dir,
    );
    assert!(logged.ok, "{}", logged.stderr);
    assert!(
        logged.stdout.contains("Q(posts:list) success")
            && logged.stdout.contains("[LOG] 'listed 0 posts'")
            && logged.stdout.contains("caller=keel-admin|ada"),
        "{}",
        logged.stdout
    );
    assert!(
        logged.stdout.contains("Q(posts:list) failure")
            && logged.stdout.contains("error: ")
            && logged.stdout.contains("Not authenticated"),
        "{}",
        logged.stdout
    );
    // `--history 1`: only the newest; `--json`: one object per execution.
    let newest = keel_cli(
        &[
            "logs",
            "--once",
            "--history",
            "1",
            "--json",
            "--url",
            backend,
        ],
        dir,
    );
    let lines: Vec<Json> = newest
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{}", newest.stdout);
    assert_eq!(lines[0]["outcome"], "failure");
    assert_eq!(lines[0]["path"], "posts:list");

    // Following: a mutation run after `keel logs` started shows up while it runs. The follower
    // asks for the newest entry first: once that is printed, it has its place in the log, and
    // the mutation run next cannot slip in before it.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["logs", "--history", "1", "--url", backend])
        .env("KEEL_DATA_DIR", dir)
        .env_remove("KEEL_ADMIN_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("keel logs starts");
    let stdout = follower.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let first = receive
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("keel logs prints the newest entry");
    assert!(first.contains("Q(posts:list) failure"), "{first}");
    let created = keel_cli(
        &[
            "run",
            "posts:create",
            r#"{"title":"followed","body":"by keel logs"}"#,
            "--identity",
            ada,
            "--url",
            backend,
        ],
        dir,
    );
    assert!(created.ok, "{}", created.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("M(posts:create) success"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match receive.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("keel logs printed no posts:create ({e}): {seen:?}"),
        }
    }
    assert!(
        !seen.iter().any(|l| l.contains("Q(posts:list)")),
        "only the one entry of history asked for: {seen:?}"
    );
    let _ = follower.kill();
    let _ = follower.wait();

    // A careless flag is refused before anything is asked.
    let bad = keel_cli(&["logs", "--history", "lots", "--url", backend], dir);
    assert!(!bad.ok);
    assert!(bad.stderr.contains("--history"), "{}", bad.stderr);
}
