//! `keel new`: the generated project builds and its tests pass (with `cargo test --offline`,
//! sharing this workspace's target directory so that Keel and its dependencies are reused), it
//! starts and its page lists what its mutation stored, and
//! bad targets (a non-empty directory, a file, a bad name, a wrong `--keel-path`) are refused
//! with nothing written.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// This workspace's target directory: where this test binary is (`target/<profile>/deps/`),
/// unless `CARGO_TARGET_DIR` says otherwise.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn project(dir: PathBuf) -> keel::NewProject {
    keel::NewProject {
        dir,
        keel_path: keel::default_keel_path(),
    }
}

#[test]
fn a_new_project_builds_and_its_tests_pass() {
    let temp = tempfile::tempdir().expect("tempdir");
    // A name of its own: Cargo would take another project's build of the same name in the
    // shared target directory for this one's (its fingerprint names the other's files).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("myapp_{}_{nanos}", std::process::id());
    let dir = temp.path().join(&name);
    let written = project(dir.clone()).create().expect("project written");
    for file in [
        "Cargo.toml",
        "README.md",
        "src/main.rs",
        "src/api.rs",
        "src/functions.rs",
        "src/web.rs",
    ] {
        assert!(
            written.iter().any(|w| w == file),
            "{file} not in {written:?}"
        );
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[workspace]"), "{manifest}");
    let keel_crate = keel::default_keel_path().join("crates/keel");
    assert!(
        manifest.contains(keel_crate.to_str().unwrap()),
        "{manifest}"
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("cargo run") && readme.contains("cargo test"),
        "{readme}"
    );

    // The generated code is formatted as `cargo fmt` would.
    let fmt = Command::new(env!("CARGO"))
        .args(["fmt", "--check"])
        .current_dir(&dir)
        .output()
        .expect("cargo fmt runs");
    assert!(
        fmt.status.success(),
        "the new project is not rustfmt-clean:\n{}",
        String::from_utf8_lossy(&fmt.stdout)
    );

    let started = Instant::now();
    let output = Command::new(env!("CARGO"))
        .args(["test", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo test of the new project failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("an_added_note_is_listed ... ok"),
        "the project's test did not run:\n{stdout}"
    );
    report_time(started.elapsed());

    // `cargo run`: the app starts, and its page lists what its mutation stored.
    let build = Command::new(env!("CARGO"))
        .args(["build", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let binary = target_dir().join("debug").join(&name);
    let mut app = Running::start(&binary, &dir);
    let (web, backend) = (app.url("web"), app.url("backend"));
    let page = http(&web, "GET", "/", "");
    assert!(
        page.contains(&format!("<h1>{name}</h1>")) && page.contains("No notes yet"),
        "{page}"
    );
    let added = http(
        &backend,
        "POST",
        "/api/mutation",
        r#"{"path":"notes:add","args":{"text":"from the test"},"format":"json"}"#,
    );
    assert!(added.contains(r#""status":"success""#), "{added}");
    let page = http(&web, "GET", "/", "");
    assert!(page.contains("<li>from the test</li>"), "{page}");
    let sign_up = http(&web, "GET", "/sign-up", "");
    assert!(sign_up.contains("keel-sign-up"), "{sign_up}");
    // Signing up through the page's form signs the visitor in: the page shows their account.
    let form =
        "email=new%40example.com&password=correct+horse+battery&first_name=New&redirect_url=%2F";
    let signed_up = request(&web, "POST", "/_keel/auth/sign-up", FORM, "", form);
    assert!(signed_up.starts_with("HTTP/1.1 303"), "{signed_up}");
    let cookies: Vec<&str> = signed_up
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .filter_map(|c| c.split(';').next())
        .collect();
    assert!(!cookies.is_empty(), "no session cookie: {signed_up}");
    let cookie = format!("Cookie: {}\r\n", cookies.join("; "));
    let page = request(&web, "GET", "/", FORM, &cookie, "");
    assert!(page.contains("keel-user-button"), "not signed in: {page}");
    assert!(page.contains("<li>from the test</li>"), "{page}");

    // The page stays live: its event stream (the address in `<meta name="keel-live">`) says
    // pushes the page re-rendered with another note once it is added, so the browser runtime
    // shows it without a fetch.
    let live = page
        .split(r#"<meta name="keel-live" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page is not live: {page}"))
        .replace("&amp;", "&");
    let mut events = open_event_stream(&web, &live, &cookie);
    read_until(&mut events, "event: ready");
    let added = http(
        &backend,
        "POST",
        "/api/mutation",
        r#"{"path":"notes:add","args":{"text":"live"},"format":"json"}"#,
    );
    assert!(added.contains(r#""status":"success""#), "{added}");
    let pushed = read_until(&mut events, "<li>live</li>");
    assert!(pushed.contains("event: render"), "{pushed}");
    app.stop();
}

/// Opens the page's event stream at `path` on `addr`, with the page's `headers`.
fn open_event_stream(addr: &str, path: &str, headers: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{headers}\r\n"
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    stream
}

/// Reads `stream` until what it sent contains `needle`, for at most 30 seconds.
fn read_until(stream: &mut std::net::TcpStream, needle: &str) -> String {
    use std::io::Read;
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} within 30 s; the stream sent {seen:?}"
        );
        match stream.read(&mut buffer) {
            Ok(0) => panic!("the stream ended before {needle:?}; it sent {seen:?}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the stream: {e}"),
        }
    }
    seen
}

/// The generated app's process, with the service lines it printed.
struct Running {
    child: std::process::Child,
    lines: Vec<String>,
}

impl Running {
    /// Starts `binary` on free ports with its data in `dir/.keel`; returns once it printed
    /// its `web:` line (within a minute).
    fn start(binary: &std::path::Path, dir: &std::path::Path) -> Running {
        use std::io::BufRead;
        let mut child = Command::new(binary)
            .args(["--web-addr", "127.0.0.1:0", "--backend-addr", "127.0.0.1:0"])
            .args(["--idp-addr", "127.0.0.1:0", "--site-addr", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the app starts");
        let stdout = child.stdout.take().expect("stdout");
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
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.starts_with("web: ")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match receive.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(error) => panic!("no `web:` line ({error}); printed {lines:?}"),
            }
        }
        Running { child, lines }
    }

    /// The `host:port` of the service line `name: http://…`.
    fn url(&self, name: &str) -> String {
        let prefix = format!("{name}: http://");
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} line in {:?}", self.lines))
            .to_owned()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A form's content type.
const FORM: &str = "application/x-www-form-urlencoded";

/// One HTTP/1.1 request with a JSON body to `addr` (`host:port`); the whole response.
fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    request(addr, method, path, "application/json", "", body)
}

/// One HTTP/1.1 request to `addr` with `headers` (each ending in CRLF); the whole response.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    headers: &str,
    body: &str,
) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
}

/// The build time, in the test's output when it is shown (`--nocapture`, or nextest's).
#[allow(clippy::print_stderr)]
fn report_time(took: std::time::Duration) {
    eprintln!("the new project built and passed its tests in {took:.1?}");
}

#[test]
fn a_non_empty_directory_is_refused_and_left_alone() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let error = project(dir.clone()).create().unwrap_err();
    assert!(matches!(error, keel::NewError::NotEmpty(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(dir.to_str().unwrap()) && message.contains("not empty"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "something was written"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_file_a_bad_name_or_a_wrong_keel_path_is_refused_with_nothing_written() {
    let temp = tempfile::tempdir().expect("tempdir");
    let file = temp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let error = project(file.clone()).create().unwrap_err();
    assert!(
        matches!(error, keel::NewError::NotADirectory(_)),
        "{error:?}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    let error = project(temp.path().join("9 lives")).create().unwrap_err();
    assert!(matches!(error, keel::NewError::BadName(_)), "{error:?}");
    assert!(error.to_string().contains("9 lives"), "{error}");
    let wrong_keel = keel::NewProject {
        dir: temp.path().join("app"),
        keel_path: temp.path().to_path_buf(),
    };
    let error = wrong_keel.create().unwrap_err();
    assert!(
        matches!(error, keel::NewError::NotKeelCheckout(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("--keel-path"), "{error}");
    assert!(!temp.path().join("app").exists() && !temp.path().join("9 lives").exists());
}

#[test]
fn the_command_line_runs_keel_new() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("cli-app");
    let config =
        keel::Config::try_parse_from(["keel".as_ref(), "new".as_ref(), dir.as_os_str()]).unwrap();
    let app = keel::App::new(
        keel::db::Schema::new(),
        keel::backend::FunctionRegistry::new(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(app.serve_until(config, std::future::pending()))
        .expect("keel new succeeds");
    assert!(dir.join("Cargo.toml").is_file() && dir.join("src/web.rs").is_file());
}
