//! `docs/GUIDE.md`, run: the shell commands of its ```` ```sh ```` blocks are exactly
//! [`COMMANDS`], and the slow test runs every one of them, in order, as the guide says — a new
//! project, its tests, the app in one process (its page, a note added over the HTTP API, a
//! sign-up), then the identity provider, two backend nodes on PostgreSQL (committer and
//! follower) and the web tier as four processes. Every ```` ```rust ```` block is code `keel new`
//! writes; every ```` ```rust,ignore ```` block is an excerpt of the reference app (`apps/posts`).
//!
//! What differs from a person following the guide, and only this:
//! * `../myapp` is a new temporary directory with a name of its own (a project's build in the
//!   shared target directory is found by its package name);
//! * every service listens on a free port (`127.0.0.1:0` for the guide's `--*-addr` flags, and
//!   the addresses' environment variables for the bare `cargo run`), and the guide's default
//!   addresses (`127.0.0.1:3210` …) in later commands are replaced by the ones the services
//!   printed;
//! * the PostgreSQL schema (`?schema=myapp`) has a name of its own, dropped at the end;
//! * Cargo runs offline with this workspace's target directory, as in `keel new`'s own test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The guide.
const GUIDE: &str = include_str!("../../../docs/GUIDE.md");

/// The guide's shell commands, in order.
const COMMANDS: &[&str] = &[
    "cargo run -- new ../myapp",
    "cd ../myapp",
    "cargo test",
    "cargo run",
    r#"curl -s -H 'content-type: application/json' -d '{"path":"notes:add","args":{"text":"hello"}}' http://127.0.0.1:3210/api/mutation"#,
    "cargo run -- idp --idp-addr 127.0.0.1:3100",
    "KEEL_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?schema=myapp' cargo run -- backend --backend-addr 127.0.0.1:3210 --site-addr 127.0.0.1:3211 --auth-issuer http://127.0.0.1:3100",
    "KEEL_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?schema=myapp' cargo run -- backend --backend-addr 127.0.0.1:3220 --site-addr 127.0.0.1:3221 --auth-issuer http://127.0.0.1:3100",
    "cargo run -- web --backend-url http://127.0.0.1:3210 --idp-url http://127.0.0.1:3100",
    r#"curl -s -H 'content-type: application/json' -d '{"path":"notes:add","args":{"text":"via the follower"}}' http://127.0.0.1:3220/api/mutation"#,
    "curl -s http://127.0.0.1:3220/api/keel/node",
];

/// How long a service may take to print its lines (the first `cargo run` builds the app).
const START_WAIT: Duration = Duration::from_secs(600);
/// How long a write may take to show on a page.
const SHOW_WAIT: Duration = Duration::from_secs(20);

/// The lines of the guide's fenced blocks in `language`, one string per block.
fn blocks(language: &str) -> Vec<String> {
    let fence = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in GUIDE.lines() {
        match &mut current {
            None if line.trim_start() == fence => current = Some(Vec::new()),
            Some(lines) if line.trim_start() == "```" => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```{language} block");
    blocks
}

/// The guide's shell commands: the lines of its `sh` blocks that are not blank or comments.
fn guide_commands() -> Vec<String> {
    blocks("sh")
        .iter()
        .flat_map(|block| block.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .collect()
}

#[test]
fn the_guide_shows_the_commands_this_test_runs_and_the_code_keel_new_writes() {
    assert_eq!(
        guide_commands(),
        COMMANDS,
        "docs/GUIDE.md and this test disagree"
    );

    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("myapp");
    keel::NewProject {
        dir: dir.clone(),
        keel_path: keel::default_keel_path(),
    }
    .create()
    .expect("project written");
    let files: Vec<String> = [
        "src/main.rs",
        "src/api.rs",
        "src/functions.rs",
        "src/web.rs",
    ]
    .iter()
    .map(|file| std::fs::read_to_string(dir.join(file)).expect("a generated file"))
    .collect();
    // Excerpts of the reference app (```` ```rust,ignore ````) are its code, word for word.
    let app: String = ["functions/http.rs", "functions/mod.rs", "web/mod.rs"]
        .iter()
        .map(|file| {
            let path = keel::default_keel_path().join("apps/posts/src").join(file);
            std::fs::read_to_string(&path).expect("a reference app file")
        })
        .collect();
    for block in blocks("rust,ignore") {
        assert!(
            app.contains(&block),
            "this excerpt of docs/GUIDE.md is not the reference app's code:\n{block}"
        );
    }
    let code = blocks("rust");
    assert!(code.len() >= 5, "{code:?}");
    for block in code {
        assert!(
            files.iter().any(|file| file.contains(&block)),
            "this code of docs/GUIDE.md is not what `keel new` writes:\n{block}"
        );
    }
}

#[test]
fn every_command_of_the_guide_runs() {
    assert_eq!(guide_commands(), COMMANDS);
    let temp = tempfile::tempdir().expect("tempdir");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let unique = format!("guide_{}_{nanos}", std::process::id());
    let project = temp.path().join(&unique);
    let mut guide = Guide {
        dir: keel::default_keel_path(),
        addresses: HashMap::new(),
        schema: unique.clone(),
        running: Vec::new(),
    };

    // 1. A new project.
    let new = COMMANDS[0].replace("../myapp", project.to_str().unwrap());
    guide.run_to_end(&new);
    assert!(project.join("src/api.rs").is_file());
    assert_eq!(COMMANDS[1], "cd ../myapp");
    guide.dir = project.clone();

    // 3. Its tests.
    let tested = guide.run_to_end(COMMANDS[2]);
    assert!(
        tested.contains("an_added_note_is_listed ... ok"),
        "{tested}"
    );

    // 4. The app in one process: its page, a note over the HTTP API, a sign-up.
    let app = guide.start(COMMANDS[3], &["idp: ", "backend: ", "web: "]);
    let web = guide.address("127.0.0.1:3000");
    let page = get(&web, "/", "");
    assert!(page.contains("No notes yet"), "{page}");
    let added = guide.run_to_end(COMMANDS[4]);
    assert!(added.contains(r#""status":"success""#), "{added}");
    wait_for_page(&web, "", "<li>hello</li>");
    let cookie = sign_up(&web, "guide@example.com");
    let page = get(&web, "/", &cookie);
    assert!(page.contains("keel-user-button"), "not signed in: {page}");
    guide.stop(app);

    // 7. The identity provider, two backend nodes on PostgreSQL and the web tier.
    guide.start(COMMANDS[5], &["idp: "]);
    let committer = guide.start(COMMANDS[6], &["backend: "]);
    assert!(
        guide
            .line(committer, "backend node: ")
            .starts_with("committer"),
        "the first node is not the committer"
    );
    let follower = guide.start(COMMANDS[7], &["backend: "]);
    assert!(
        guide
            .line(follower, "backend node: ")
            .starts_with("follower"),
        "the second node is not a follower"
    );
    guide.start(COMMANDS[8], &["web: "]);
    let web = guide.address("127.0.0.1:3000");
    let added = guide.run_to_end(COMMANDS[9]);
    assert!(added.contains(r#""status":"success""#), "{added}");
    let node = guide.run_to_end(COMMANDS[10]);
    assert!(node.contains(r#""role":"follower""#), "{node}");
    // The note written through the follower, on the page the web tier renders from the
    // committer; the data of the one-process run (SQLite) is not there.
    let page = wait_for_page(&web, "", "<li>via the follower</li>");
    assert!(!page.contains("<li>hello</li>"), "{page}");
    let cookie = sign_up(&web, "guide-pg@example.com");
    let page = get(&web, "/", &cookie);
    assert!(page.contains("keel-user-button"), "not signed in: {page}");
}

/// A process the guide started, and what it printed.
struct Service {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// Where the guide is: the directory commands run in, the services running, and the addresses
/// they printed (by the guide's default address).
struct Guide {
    dir: PathBuf,
    addresses: HashMap<String, String>,
    schema: String,
    running: Vec<Service>,
}

impl Guide {
    /// `command` as this test runs it: the schema and the services' addresses replaced.
    fn substituted(&self, command: &str) -> String {
        let mut command = command.replace("schema=myapp", &format!("schema={}", self.schema));
        for (default, actual) in &self.addresses {
            command = command.replace(&format!("http://{default}"), &format!("http://{actual}"));
        }
        command
    }

    /// Runs a command that ends (through `sh`); its stdout. Fails the test if it fails.
    fn run_to_end(&self, command: &str) -> String {
        let command = self.substituted(command);
        let output = cargo_env(Command::new("sh").args(["-c", &command]))
            .current_dir(&self.dir)
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "`{command}` failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Starts a service command (`[VAR='value' …] cargo run …`) on free ports and waits for the
    /// lines starting with `until`; records the addresses it printed. Returns its index.
    fn start(&mut self, command: &str, until: &[&str]) -> usize {
        let words = words(&self.substituted(command));
        // Leading `NAME=value` words are the command's environment.
        let split = words
            .iter()
            .position(|w| !is_assignment(w))
            .expect("a command after the variables");
        let (assignments, words) = words.split_at(split);
        assert_eq!(words[0], "cargo", "{command}");
        let mut process = Command::new(env!("CARGO"));
        let mut args = words[1..].iter().map(|w| w.as_str());
        while let Some(arg) = args.next() {
            process.arg(arg);
            if arg.starts_with("--") && arg.ends_with("-addr") {
                args.next().expect("an address");
                process.arg("127.0.0.1:0");
            }
        }
        for assignment in assignments {
            let (name, value) = assignment.split_once('=').unwrap();
            process.env(name, value);
        }
        if words.len() == 2 {
            // The bare `cargo run`: every service on a free port, through their variables.
            for var in [
                "KEEL_WEB_ADDR",
                "KEEL_BACKEND_ADDR",
                "KEEL_SITE_ADDR",
                "KEEL_IDP_ADDR",
            ] {
                process.env(var, "127.0.0.1:0");
            }
        }
        let mut child = cargo_env(&mut process)
            .current_dir(&self.dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cargo starts");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + START_WAIT;
        loop {
            let printed = lines.lock().unwrap().clone();
            if until
                .iter()
                .all(|prefix| printed.iter().any(|l| l.starts_with(prefix)))
            {
                // `<service>: http://<address>`, for the address the guide gave the service
                // (`--<service>-addr …`) or its default.
                for line in &printed {
                    for (service, default) in DEFAULT_ADDRESSES {
                        if let Some(url) = line.strip_prefix(&format!("{service}: http://")) {
                            let flag = format!("--{service}-addr ");
                            let given = command
                                .split_once(&flag)
                                .and_then(|(_, rest)| rest.split(' ').next())
                                .unwrap_or(*default);
                            self.addresses.insert(given.to_owned(), url.to_owned());
                        }
                    }
                }
                break;
            }
            if let Some(status) = child.try_wait().expect("the process's status") {
                panic!("`{command}` exited ({status}) after printing {printed:?}");
            }
            assert!(
                Instant::now() < deadline,
                "`{command}` printed only {printed:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.running.push(Service { child, lines });
        self.running.len() - 1
    }

    /// The rest of the first line service `index` printed starting with `prefix`.
    fn line(&self, index: usize, prefix: &str) -> String {
        let lines = self.running[index].lines.lock().unwrap();
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {lines:?}"))
            .to_owned()
    }

    /// The `host:port` a service printed for the guide's `default` address.
    fn address(&self, default: &str) -> String {
        self.addresses
            .get(default)
            .unwrap_or_else(|| panic!("no service printed an address for {default}"))
            .clone()
    }

    /// Stops service `index` (Ctrl-C in the guide; a kill here).
    fn stop(&mut self, index: usize) {
        let service = &mut self.running[index];
        let _ = service.child.kill();
        let _ = service.child.wait();
    }
}

impl Drop for Guide {
    fn drop(&mut self) {
        for service in &mut self.running {
            let _ = service.child.kill();
            let _ = service.child.wait();
        }
        // The schema of the PostgreSQL run, if it was made.
        let _ = Command::new("psql")
            .arg("postgres://postgres@127.0.0.1:5432/test")
            .args([
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Each service's line and the guide's default address for it.
const DEFAULT_ADDRESSES: &[(&str, &str)] = &[
    ("web", "127.0.0.1:3000"),
    ("backend", "127.0.0.1:3210"),
    ("site", "127.0.0.1:3211"),
    ("idp", "127.0.0.1:3100"),
];

/// Whether `word` is a `NAME=value` assignment (an upper-case name).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    })
}

/// Cargo as `keel new`'s test runs it: offline, with this workspace's target directory.
fn cargo_env(command: &mut Command) -> &mut Command {
    command
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO", env!("CARGO"))
        .env("PATH", path_with_cargo())
}

/// `PATH` with the directory of the Cargo running this test first, so the guide's `cargo` is it.
fn path_with_cargo() -> String {
    let cargo_dir = Path::new(env!("CARGO"))
        .parent()
        .expect("cargo's directory");
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", cargo_dir.display())
}

/// This workspace's target directory (see `new_project.rs`).
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

/// A command line's words: split at spaces, `'…'` kept whole (without its quotes).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    assert!(!quoted, "an unclosed quote in {line}");
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// `GET path` on `addr` with `cookie` (a `Cookie:` value, or empty): the whole response.
fn get(addr: &str, path: &str, cookie: &str) -> String {
    let headers = match cookie {
        "" => String::new(),
        cookie => format!("Cookie: {cookie}\r\n"),
    };
    request(addr, "GET", path, &headers, "")
}

/// `GET /` until it contains `text` (within [`SHOW_WAIT`]); the page.
fn wait_for_page(addr: &str, cookie: &str, text: &str) -> String {
    let deadline = Instant::now() + SHOW_WAIT;
    loop {
        let page = get(addr, "/", cookie);
        if page.contains(text) {
            return page;
        }
        assert!(Instant::now() < deadline, "{text} not on the page:\n{page}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Signs up through the page's form; the session cookies, as a `Cookie:` value.
fn sign_up(addr: &str, email: &str) -> String {
    let form = format!(
        "email={}&password=correct+horse+battery&first_name=Guide&redirect_url=%2F",
        email.replace('@', "%40")
    );
    let headers = "Content-Type: application/x-www-form-urlencoded\r\n";
    let response = request(addr, "POST", "/_keel/auth/sign-up", headers, &form);
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let cookies: Vec<&str> = response
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .filter_map(|c| c.split(';').next())
        .collect();
    assert!(!cookies.is_empty(), "no session cookie: {response}");
    cookies.join("; ")
}

/// One HTTP/1.1 request to `addr` (`host:port`) with `headers` (each ending in CRLF).
fn request(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
}
