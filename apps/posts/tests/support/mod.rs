//! Running the reference app's `keel` binary for end-to-end tests: one process with every
//! service ([`Mode::OneProcess`]) or `keel idp` + `keel backend` + `keel web` as three processes
//! ([`Mode::Separate`]), each on 127.0.0.1:0 with its own data directory; and a [`Visitor`] — a
//! cookie-keeping HTTP client that signs up through the forms as a browser would.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};

/// How long a process may take to print its address lines.
const START_WAIT: Duration = Duration::from_secs(60);

/// Flags that put every service of `keel` (one process) on a free port of 127.0.0.1.
pub const ANY_PORTS: [&str; 6] = [
    "--web-addr",
    "127.0.0.1:0",
    "--backend-addr",
    "127.0.0.1:0",
    "--idp-addr",
    "127.0.0.1:0",
];

/// The password every test visitor signs up with.
pub const PASSWORD: &str = "correct horse battery";

/// How the services run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `keel`: idp, backend and web tier in one process.
    OneProcess,
    /// `keel idp`, `keel backend` and `keel web`: three processes talking HTTP.
    Separate,
}

/// A `keel` process and the lines it printed on stdout.
pub struct Process {
    pub child: Child,
    /// Every `name: value` line printed before the process was ready.
    lines: Vec<String>,
}

impl Process {
    /// Starts `keel <args>` and collects its stdout until every line in `until` (prefixes such
    /// as `"web: "`) has appeared.
    pub fn start(args: &[&str], data_dir: &Path, until: &[&str]) -> Process {
        Process::start_with_env(args, data_dir, until, &[])
    }

    /// [`Process::start`] with extra environment variables.
    pub fn start_with_env(
        args: &[&str],
        data_dir: &Path,
        until: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .envs(env.iter().copied())
            .env("KEEL_SITE_ADDR", "127.0.0.1:0")
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the keel binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        while !until
            .iter()
            .all(|prefix| lines.iter().any(|l: &String| l.starts_with(prefix)))
        {
            match rx.recv_timeout(START_WAIT) {
                Ok(line) => lines.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("keel {args:?} did not print {until:?}; it printed {lines:?}");
                }
            }
        }
        Process { child, lines }
    }

    /// The value of the line `<name>: <value>` (first word).
    pub fn line(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}: ");
        self.lines.iter().find_map(|l| {
            l.strip_prefix(&prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (as a supervisor stopping it would) and waits up to `limit` for the
    /// process to exit; its exit status, or a panic if it is still running then.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        terminate(&mut self.child, limit)
    }
}

/// Sends SIGTERM to `child` and waits up to `limit` for it to exit (see [`wait_for_exit`]).
pub fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM was not delivered");
    wait_for_exit(child, limit)
}

/// Waits up to `limit` for `child` to exit; panics (after killing it) if it does not.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a `keel` process that ran to its end printed, and how it ended.
pub struct Exited {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `keel <args> --data-dir <data_dir>` to its end (it is expected to refuse to start),
/// with stdout and stderr captured and logs at `info`; panics if it runs longer than `limit`.
pub fn run_to_exit(args: &[&str], data_dir: &Path, limit: Duration) -> Exited {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the keel binary starts");
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let status = wait_for_exit(&mut child, limit);
    Exited {
        status,
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}

/// The flags of `extra` (each `--flag` with the value that follows it, if any) that
/// `keel <service>` takes, as its `--help` lists them: each subcommand refuses the others'.
pub fn flags_for<'a>(service: &str, extra: &[&'a str]) -> Vec<&'a str> {
    let help = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([service, "--help"])
        .output()
        .expect("keel --help runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let mut taken = Vec::new();
    let mut rest = extra;
    while let Some((flag, after)) = rest.split_first() {
        let value = after.first().filter(|v| !v.starts_with("--"));
        let len = 1 + usize::from(value.is_some());
        if help.contains(&format!("{flag} ")) {
            taken.extend_from_slice(&rest[..len]);
        }
        rest = &rest[len..];
    }
    taken
}

/// The reference app running in one of the two [`Mode`]s.
pub struct Deployment {
    pub mode: Mode,
    /// Every process; all must still be running when a test asks [`Deployment::assert_alive`].
    pub processes: Vec<Process>,
    /// Base URLs (`http://127.0.0.1:<port>`).
    pub web: String,
    pub backend: String,
    /// The backend's site (HTTP actions).
    pub site: String,
    pub idp: String,
    /// The idp's Backend-API secret key.
    pub secret_key: String,
    pub dir: tempfile::TempDir,
}

impl Deployment {
    /// Starts the app in `mode` with 60-second tokens.
    pub fn start(mode: Mode) -> Deployment {
        Deployment::start_with(mode, &[])
    }

    /// Starts the app in `mode`, adding `extra` flags to every process they apply to (a web-tier
    /// flag such as `--trusted-proxy` goes to `keel web` only; see [`flags_for`]).
    pub fn start_with(mode: Mode, extra: &[&str]) -> Deployment {
        let dir = tempfile::tempdir().expect("a temp dir");
        match mode {
            Mode::OneProcess => {
                let mut deployment = Deployment {
                    mode,
                    processes: Vec::new(),
                    web: String::new(),
                    backend: String::new(),
                    site: String::new(),
                    idp: String::new(),
                    secret_key: String::new(),
                    dir,
                };
                deployment.restart(extra);
                deployment
            }
            Mode::Separate => Deployment::separate(dir, false, extra),
        }
    }

    /// `keel idp`, `keel backend` and `keel web` with the `extra` flags each takes, each in its own
    /// subdirectory of `dir` — or, with `shared_data_dir`, all three in `dir` itself, where the
    /// web tier reads the idp's secret key from the idp's files.
    pub fn separate(dir: tempfile::TempDir, shared_data_dir: bool, extra: &[&str]) -> Deployment {
        let data_dir = |service: &str| match shared_data_dir {
            true => dir.path().to_owned(),
            false => dir.path().join(service),
        };
        let mut args = vec!["idp", "--idp-addr", "127.0.0.1:0"];
        args.extend(flags_for("idp", extra));
        let idp = Process::start(&args, &data_dir("idp"), &["idp: ", "idp secret key: "]);
        let idp_url = idp.line("idp").expect("idp line");
        let secret_key = idp.line("idp secret key").expect("secret key line");
        let mut args = vec![
            "backend",
            "--backend-addr",
            "127.0.0.1:0",
            "--auth-issuer",
            &idp_url,
        ];
        args.extend(flags_for("backend", extra));
        let backend = Process::start(&args, &data_dir("backend"), &["backend: ", "site: "]);
        let backend_url = backend.line("backend").expect("backend line");
        let site = backend.line("site").expect("site line");
        let mut args = vec![
            "web",
            "--web-addr",
            "127.0.0.1:0",
            "--backend-url",
            &backend_url,
            "--idp-url",
            &idp_url,
        ];
        if !shared_data_dir {
            args.extend(["--idp-secret-key", &secret_key]);
        }
        args.extend(flags_for("web", extra));
        let web = Process::start(&args, &data_dir("web"), &["web: "]);
        Deployment {
            mode: Mode::Separate,
            web: web.line("web").expect("web line"),
            backend: backend_url,
            site,
            idp: idp_url,
            secret_key,
            processes: vec![idp, backend, web],
            dir,
        }
    }

    /// Starts the one-process deployment's `keel` on its data directory with `extra` flags: at
    /// first, or again after it stopped (new ports, same data).
    pub fn restart(&mut self, extra: &[&str]) {
        assert_eq!(self.mode, Mode::OneProcess, "restart is for one process");
        let mut args = ANY_PORTS.to_vec();
        args.extend_from_slice(extra);
        let keel = Process::start(
            &args,
            self.dir.path(),
            &["web: ", "backend: ", "site: ", "idp: ", "idp secret key: "],
        );
        self.site = keel.line("site").expect("site line");
        self.web = keel.line("web").expect("web line");
        self.backend = keel.line("backend").expect("backend line");
        self.idp = keel.line("idp").expect("idp line");
        self.secret_key = keel.line("idp secret key").expect("secret key line");
        self.processes = vec![keel];
    }

    /// A URL on the web tier.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.web)
    }

    /// A new visitor with an empty cookie jar.
    pub fn visitor(&self) -> Visitor {
        Visitor {
            web: self.web.clone(),
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
        }
    }

    /// A new visitor whose requests say (`X-Forwarded-For`) they come from `address` through a
    /// proxy — believed only by a web tier started with `--trusted-proxy 127.0.0.1`.
    pub fn visitor_from(&self, address: &str) -> Visitor {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            address.parse().expect("an address header value"),
        );
        Visitor {
            web: self.web.clone(),
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// A new visitor signed up through the form as `email`.
    pub async fn signed_up(&self, email: &str) -> Visitor {
        let visitor = self.visitor();
        visitor.sign_up(email).await;
        visitor
    }

    /// A `convex` template token for a new user (made through the Backend API).
    pub async fn backend_token(&self, email: &str) -> String {
        let http = reqwest::Client::new();
        let bapi = |path: &str| format!("{}/v1{path}", self.idp);
        let user: serde_json::Value = http
            .post(bapi("/users"))
            .bearer_auth(&self.secret_key)
            .json(&serde_json::json!({ "email_address": [email], "password": PASSWORD }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let user_id = user["id"].as_str().unwrap_or_else(|| panic!("{user}"));
        let session: serde_json::Value = http
            .post(bapi("/sessions"))
            .bearer_auth(&self.secret_key)
            .json(&serde_json::json!({ "user_id": user_id }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid = session["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{session}"));
        let token: serde_json::Value = http
            .post(bapi(&format!("/sessions/{sid}/tokens/convex")))
            .bearer_auth(&self.secret_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["jwt"].as_str().unwrap().to_owned()
    }

    /// Fails unless every process of the deployment is still running.
    pub fn assert_alive(&mut self) {
        for process in &mut self.processes {
            assert!(process.is_running(), "a keel process exited");
        }
    }

    /// Fails unless the deployment still serves a new user end to end: sign-up through the
    /// form, a post created through the server function, the post on the SSR page, and the
    /// backend's HTTP API answering a query with a token. Run after an attack.
    pub async fn assert_still_serves(&mut self) {
        self.assert_alive();
        let email = format!("canary-{}@example.com", rand_suffix());
        let visitor = self.signed_up(&email).await;
        let title = format!("Canary {}", rand_suffix());
        let response = visitor.create_post(&title).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (status, html) = visitor.page("/posts").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!(">{title}</a>")), "{html}");
        let token = self
            .backend_token(&format!("canary-api-{}@example.com", rand_suffix()))
            .await;
        let posts = self
            .query("posts:list", serde_json::json!({}), Some(&token))
            .await;
        assert_eq!(posts["status"], "success", "{posts}");
        self.assert_alive();
    }

    /// `POST /api/query` on the backend, as `token` (anonymous without): Convex's JSON answer.
    pub async fn query(
        &self,
        path: &str,
        args: serde_json::Value,
        token: Option<&str>,
    ) -> serde_json::Value {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/query", self.backend))
            .json(&serde_json::json!({ "path": path, "args": args, "format": "json" }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }
}

/// A short random suffix for unique names.
pub fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}{:x}", std::process::id())
}

/// A browser-like client of the web tier: keeps cookies, does not follow redirects.
#[derive(Clone)]
pub struct Visitor {
    pub web: String,
    pub client: reqwest::Client,
}

impl Visitor {
    /// A URL on the web tier.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.web)
    }

    /// Signs up through the form (password [`PASSWORD`]); returns the `Set-Cookie` values.
    pub async fn sign_up(&self, email: &str) -> Vec<String> {
        let response = self
            .client
            .post(self.url("/_keel/auth/sign-up"))
            .form(&[
                ("email", email),
                ("password", PASSWORD),
                ("first_name", "Test"),
                ("redirect_url", "/posts"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "sign-up of {email}"
        );
        // Signed in, on to the "enter the code" step (verification is not required).
        assert_eq!(
            response.headers()[LOCATION],
            "/verify-email?redirect_url=%2Fposts",
            "sign-up of {email}"
        );
        let cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            cookies.iter().any(|c| c.starts_with("__session=")),
            "{cookies:?}"
        );
        cookies
    }

    /// Signs in through the form as `email` with `password`, coming back to `/posts`: the
    /// answer (a `303` to `/posts`, or back to `/sign-in?error=…`).
    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/_keel/auth/sign-in"))
            .form(&[
                ("email", email),
                ("password", password),
                ("redirect_url", "/posts"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// `GET path`: status and body.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Creates a post through the `posts/create` server function.
    pub async fn create_post(&self, title: &str) -> reqwest::Response {
        self.client
            .post(self.url("/_keel/fn/posts/create"))
            .form(&[("title", title), ("body", "text")])
            .send()
            .await
            .unwrap()
    }
}

/// The id of the post titled `title` on a posts page.
pub fn post_id(html: &str, title: &str) -> Option<String> {
    let at = html.find(&format!(">{title}</a>"))?;
    let before = &html[..at];
    let start = before.rfind("data-post-id=\"")? + "data-post-id=\"".len();
    Some(before[start..].split('"').next()?.to_owned())
}
