//! The reference app's web tier end to end: the `keel` binary (idp + backend + web in one
//! process, on 127.0.0.1:0, its own data dir) driven by reqwest clients with cookie stores —
//! sign-up/in/out without JavaScript, SSR of authenticated loaders, forms, the same-origin
//! check, boundaries, and the live event stream across token expiries.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use tokio::time::Instant;

/// The `keel` binary running all three services.
struct Keel {
    child: Child,
    web: String,
    backend: String,
    idp: String,
    secret_key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Keel {
    fn start(token_ttl: &str) -> Keel {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            // The site (HTTP actions) on a free port too, never the shared default.
            .env("KEEL_SITE_ADDR", "127.0.0.1:0")
            .args(["--web-addr", "127.0.0.1:0", "--backend-addr", "127.0.0.1:0"])
            .args(["--idp-addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args([
                "--session-token-ttl",
                token_ttl,
                "--template-token-ttl",
                token_ttl,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the keel binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut web, mut backend, mut idp, mut secret_key) = (None, None, None, None);
        while web.is_none() || backend.is_none() {
            let line = lines
                .next()
                .expect("keel printed its addresses before exiting")
                .unwrap();
            if let Some(url) = line.strip_prefix("web: ") {
                web = Some(url.to_owned());
            } else if let Some(url) = line.strip_prefix("backend: ") {
                backend = Some(url.to_owned());
            } else if let Some(url) = line.strip_prefix("idp: ") {
                idp = Some(url.to_owned());
            } else if let Some(key) = line.strip_prefix("idp secret key: ") {
                secret_key = key.split_whitespace().next().map(str::to_owned);
            }
        }
        Keel {
            child,
            web: web.unwrap(),
            backend: backend.unwrap(),
            idp: idp.expect("idp line"),
            secret_key: secret_key.expect("secret key line"),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.web)
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs up through the form; returns the session id.
async fn sign_up(keel: &Keel, client: &reqwest::Client, email: &str, name: &str) -> String {
    let response = client
        .post(keel.url("/_keel/auth/sign-up"))
        .form(&[
            ("email", email),
            ("password", "correct horse battery"),
            ("first_name", name),
            ("redirect_url", "/posts"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Signed in, on to the "enter the code" step (verification is not required).
    assert_eq!(
        response.headers()[LOCATION],
        "/verify-email?redirect_url=%2Fposts"
    );
    let cookies: Vec<_> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("__session=")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("__client=")),
        "{cookies:?}"
    );
    let token = cookies
        .iter()
        .find_map(|c| c.strip_prefix("__session="))
        .and_then(|c| c.split(';').next())
        .unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

async fn page(keel: &Keel, client: &reqwest::Client, path: &str) -> (StatusCode, String) {
    let response = client.get(keel.url(path)).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn create_post(keel: &Keel, client: &reqwest::Client, title: &str) -> reqwest::Response {
    client
        .post(keel.url("/_keel/fn/posts/create"))
        .form(&[("title", title), ("body", "text")])
        .send()
        .await
        .unwrap()
}

/// The ids of posts titled `title` on the page.
fn post_id(html: &str, title: &str) -> Option<String> {
    let at = html.find(&format!(">{title}</a>"))?;
    let before = &html[..at];
    let start = before.rfind("data-post-id=\"")? + "data-post-id=\"".len();
    Some(before[start..].split('"').next()?.to_owned())
}

#[tokio::test]
async fn sign_up_ssr_forms_and_boundaries() {
    let keel = Keel::start("60s");
    let ada = browser();

    // Signed out: the nav offers sign-in, /posts shows a prompt, the backend refuses too.
    let (status, html) = page(&keel, &ada, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<a href="/" class="font-bold">Home</a>"#),
        "{html}"
    );
    assert!(html.contains(r#"data-keel-modal="sign-in""#));
    let (status, html) = page(&keel, &ada, "/posts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sign in to see the posts"), "{html}");
    assert!(html.contains(r#"<a href="/posts" class="font-bold">Posts</a>"#));
    let anonymous = keel_client::HttpClient::new(&keel.backend).unwrap();
    let refused = anonymous
        .query::<serde_json::Value, _>("posts:list", serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "Application", "{refused}");
    // The sign-in page works without JavaScript.
    let (status, html) = page(&keel, &ada, "/sign-in?redirect_url=%2Fposts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"action="/_keel/auth/sign-in""#) && html.contains(r#"value="/posts""#));

    sign_up(&keel, &ada, "ada@example.com", "Ada").await;
    let response = create_post(&keel, &ada, "Hello from Ada").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/posts");
    // The SSR of /posts already holds the post (authenticated loader, consistent snapshot).
    let (status, html) = page(&keel, &ada, "/posts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(">Hello from Ada</a> by Ada"), "{html}");
    assert!(html.contains("keel-user-button") && !html.contains("data-keel-modal"));
    assert!(html.contains(r#"<meta name="keel-live""#));
    let id = post_id(&html, "Hello from Ada").expect("post listed with its id");
    assert!(html.contains("Delete"), "the author sees a delete button");
    let (status, detail) = page(&keel, &ada, &format!("/posts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        detail.contains("<title>Hello from Ada</title>"),
        "deepest title wins"
    );

    // A cross-origin form post is refused and changes nothing.
    let response = ada
        .post(keel.url("/_keel/fn/posts/create"))
        .header("origin", "http://evil.example")
        .form(&[("title", "Forged"), ("body", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Same origin from a browser is fine.
    let response = ada
        .post(keel.url("/_keel/fn/posts/create"))
        .header("origin", &keel.web)
        .form(&[("title", "Second"), ("body", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&keel, &ada, "/posts").await;
    assert!(!html.contains("Forged") && html.contains(">Second</a>"));

    // Bad input comes back to the form with the backend's message.
    let response = create_post(&keel, &ada, "   ").await;
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/posts?error="), "{location}");
    let (_, html) = page(&keel, &ada, &location).await;
    assert!(html.contains("title must be 1 to 200 characters"), "{html}");

    // Someone else may not delete Ada's post.
    let bob = browser();
    sign_up(&keel, &bob, "bob@example.com", "Bob").await;
    let (_, html) = page(&keel, &bob, "/posts").await;
    assert!(
        html.contains(">Hello from Ada</a>") && !html.contains("Delete"),
        "{html}"
    );
    let response = bob
        .post(keel.url("/_keel/fn/posts/remove"))
        .form(&[("id", id.as_str())])
        .send()
        .await
        .unwrap();
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let (_, html) = page(&keel, &bob, &location).await;
    assert!(html.contains("Only the author may delete a post"), "{html}");
    assert!(html.contains(">Hello from Ada</a>"));
    // The author may.
    let response = ada
        .post(keel.url("/_keel/fn/posts/remove"))
        .form(&[("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/posts");
    let (_, html) = page(&keel, &ada, "/posts").await;
    assert!(!html.contains("Hello from Ada"));

    // The import action creates five posts as the caller.
    let response = bob
        .post(keel.url("/_keel/fn/posts/importSample"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/posts");
    let (_, html) = page(&keel, &bob, "/posts").await;
    for n in 1..=5 {
        assert!(
            html.contains(&format!(">Sample post {n}</a> by Bob")),
            "{html}"
        );
    }

    // Unknown paths and unknown posts: the NotFound page, 404, inside the layout.
    for path in ["/nope", "/posts/nope"] {
        let (status, html) = page(&keel, &ada, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            html.contains("keel-not-found") && html.contains("Home</a>"),
            "{html}"
        );
    }

    // Sign-out clears the cookies; the page is signed out again.
    let response = ada
        .post(keel.url("/_keel/auth/sign-out"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&keel, &ada, "/posts").await;
    assert!(html.contains("Sign in to see the posts"));

    // Sign-in with the password; a wrong one is told so.
    let response = ada
        .post(keel.url("/_keel/auth/sign-in"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", "wrong password!"),
            ("redirect_url", "/posts"),
        ])
        .send()
        .await
        .unwrap();
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/sign-in?error="), "{location}");
    let response = ada
        .post(keel.url("/_keel/auth/sign-in"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", "correct horse battery"),
            ("redirect_url", "/posts"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/posts");
    let (_, html) = page(&keel, &ada, "/posts").await;
    assert!(html.contains("Sample post 1"));
}

/// Server-sent events read off a response.
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// The data of the last event read.
    data: String,
}

impl Events {
    async fn open(keel: &Keel, client: &reqwest::Client, page_html: &str) -> Events {
        let start = page_html
            .find(r#"<meta name="keel-live" content=""#)
            .expect("live address")
            + r#"<meta name="keel-live" content=""#.len();
        let url = page_html[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&");
        let response = client.get(keel.url(&url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Events {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
            data: String::new(),
        }
    }

    /// The next named event within `wait`; `None` when the stream ended.
    async fn next(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event: ")) {
                    self.data = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Some(name.to_owned());
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Some(Err(_)) | None) => return None,
                Err(_) => panic!("no event within {wait:?}"),
            }
        }
    }

    async fn expect(&mut self, name: &str, wait: Duration) {
        assert_eq!(self.next(wait).await.as_deref(), Some(name));
    }

    /// The next event is a pushed `render`, whole or spliced; returns its JSON.
    async fn expect_render(&mut self, wait: Duration) -> serde_json::Value {
        self.expect("render", wait).await;
        serde_json::from_str(&self.data).expect("a render is JSON")
    }
}

#[tokio::test]
async fn live_stream_pushes_renders_and_signs_out() {
    let keel = Keel::start("60s");
    let ada = browser();
    sign_up(&keel, &ada, "ada@example.com", "Ada").await;
    let (_, html) = page(&keel, &ada, "/posts").await;
    let mut events = Events::open(&keel, &ada, &html).await;
    events.expect("ready", Duration::from_secs(10)).await;

    let bob = browser();
    sign_up(&keel, &bob, "bob@example.com", "Bob").await;
    let (_, bobs_html) = page(&keel, &bob, "/posts").await;
    let mut bobs_events = Events::open(&keel, &bob, &bobs_html).await;
    bobs_events.expect("ready", Duration::from_secs(10)).await;
    let created = Instant::now();
    assert_eq!(
        create_post(&keel, &bob, "Live one").await.status(),
        StatusCode::SEE_OTHER
    );
    // Each session's page is rendered for its own user: Bob's shows his post's Delete button.
    let bobs = bobs_events.expect_render(Duration::from_secs(2)).await;
    let bobs = bobs["body"].as_str().unwrap();
    assert!(bobs.contains(">Live one</a> by Bob") && bobs.contains(">Delete</button>"));
    // The page re-rendered on the server from Ada's live data, pushed whole to this tab.
    let render = events.expect_render(Duration::from_secs(2)).await;
    assert!(created.elapsed() < Duration::from_secs(2));
    let body = render["body"]
        .as_str()
        .expect("the first push is the whole body");
    assert!(body.contains(">Live one</a> by Bob"), "{body}");
    assert!(
        body.contains("keel-user-button"),
        "rendered for Ada, signed in: {body}"
    );
    assert!(
        !body.contains(">Delete</button>"),
        "never Bob's render: {body}"
    );
    assert_eq!(render["title"], "Posts");
    let (_, html) = page(&keel, &ada, "/posts").await;
    assert!(html.contains(">Live one</a>"));
    // The page as a fetch renders it (the devtools panel of debug builds aside: its timestamps
    // differ).
    let page_part = |html: &str| {
        let html = html.split("<body>").last().unwrap_or(html);
        html.split(r#"<link rel="stylesheet" href="/_keel/devtools"#)
            .next()
            .unwrap()
            .trim_end_matches("</body></html>")
            .to_owned()
    };
    assert_eq!(
        page_part(body),
        page_part(&html),
        "the pushed body is what a fetch renders"
    );

    // A change before the stream opens is caught by the digests the page carries.
    let mut stale = Events::open(&keel, &ada, &html).await;
    stale.expect("ready", Duration::from_secs(10)).await;
    assert_eq!(
        create_post(&keel, &bob, "Live two").await.status(),
        StatusCode::SEE_OTHER
    );
    // The next change reaches the first tab as a splice of what it was sent.
    let splice = events.expect_render(Duration::from_secs(2)).await;
    assert_eq!(splice["base"], render["seq"], "{splice}");
    let ins = splice["splices"][0][2].as_str().expect("splices");
    assert!(
        ins.contains("Live two") && ins.len() < body.len() / 2,
        "{ins}"
    );
    let mut late = Events::open(&keel, &ada, &html).await;
    late.expect("ready", Duration::from_secs(10)).await;
    let caught_up = late.expect_render(Duration::from_secs(2)).await;
    assert!(
        caught_up["body"]
            .as_str()
            .unwrap()
            .contains(">Live two</a>")
    );

    // Sign-out ends every stream of the session with `signed-out`.
    ada.post(keel.url("/_keel/auth/sign-out"))
        .send()
        .await
        .unwrap();
    for stream in [&mut events, &mut stale, &mut late] {
        loop {
            match stream.next(Duration::from_secs(5)).await.as_deref() {
                Some("render") => continue,
                other => {
                    assert_eq!(other, Some("signed-out"));
                    break;
                }
            }
        }
        assert_eq!(
            stream.next(Duration::from_secs(5)).await,
            None,
            "the stream ends"
        );
    }
}

#[tokio::test]
async fn live_stream_survives_token_expiries() {
    let keel = Keel::start("5s");
    let ada = browser();
    let ada_session = sign_up(&keel, &ada, "ada@example.com", "Ada").await;
    let bob = browser();
    sign_up(&keel, &bob, "bob@example.com", "Bob").await;
    let (_, html) = page(&keel, &ada, "/posts").await;
    let mut events = Events::open(&keel, &ada, &html).await;
    events.expect("ready", Duration::from_secs(10)).await;
    let started = Instant::now();
    let mut n = 0;
    // Past three 5-second token lifetimes, every write still reaches the page.
    while started.elapsed() < Duration::from_secs(16) {
        n += 1;
        // Bob's own cookie session refreshes through __client as his tokens lapse.
        let response = create_post(&keel, &bob, &format!("Tick {n}")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/posts", "post {n}");
        let render = events.expect_render(Duration::from_secs(2)).await;
        let text = render["body"]
            .as_str()
            .or(render["splices"][0][2].as_str())
            .unwrap();
        assert!(text.contains(&format!(">Tick {n}</a>")), "{render}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert!(n >= 5, "{n}");
    // The page's own SSR still works with an expired __session (refreshed via __client).
    let (_, html) = page(&keel, &ada, "/posts").await;
    assert!(html.contains(&format!(">Tick {n}</a>")));

    // Revoked at the identity provider (not through this web tier): the next token refresh
    // finds no token, and the stream says `signed-out` and ends.
    reqwest::Client::new()
        .post(format!("{}/v1/sessions/{ada_session}/revoke", keel.idp))
        .bearer_auth(&keel.secret_key)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    loop {
        match events.next(Duration::from_secs(8)).await.as_deref() {
            Some("render") => continue,
            other => {
                assert_eq!(other, Some("signed-out"));
                break;
            }
        }
    }
    assert_eq!(events.next(Duration::from_secs(5)).await, None);
}
