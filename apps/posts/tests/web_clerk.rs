//! The web tier in real-Clerk mode (`CLERK_PUBLISHABLE_KEY` + `CLERK_SECRET_KEY`), with Keel's
//! idp standing in for Clerk's Backend API (`CLERK_API_URL`): `keel idp`, `keel backend` and
//! `keel web` as separate processes. Sessions come from Clerk's `__session` cookie; pages carry
//! Clerk's publishable key for the browser script; the local sign-in endpoints are off. A
//! stand-in for Clerk's Frontend API on 127.0.0.1 answers Clerk's handshake, which renews an
//! outdated or missing session before the page renders.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::{Value, json};

/// A `keel` process, killed on drop.
struct Service {
    child: Child,
    lines: HashMap<String, String>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `keel <args>` and waits for its `<prefix>: <value>` lines.
fn spawn(args: &[&str], env: &[(&str, &str)], prefixes: &[&str]) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        // The site (HTTP actions) on a free port too, never the shared default.
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        // Pages as in production: the development devtools panel shows errors on purpose.
        .env("KEEL_DEVTOOLS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("keel starts");
    let mut lines = HashMap::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
    while prefixes.iter().any(|p| !lines.contains_key(*p)) {
        let line = reader.next().expect("keel printed its addresses").unwrap();
        if let Some((prefix, value)) = line.split_once(": ") {
            lines.insert(prefix.to_owned(), value.to_owned());
        }
    }
    Service { child, lines }
}

/// `keel idp` and a `keel backend` trusting it, in `data`: the idp, its URL, its secret key
/// and the backend.
fn idp_and_backend(data: &str) -> (Service, String, String, Service) {
    let idp = spawn(
        &["idp", "--idp-addr", "127.0.0.1:0", "--data-dir", data],
        &[],
        &["idp", "idp secret key"],
    );
    let idp_url = idp.lines["idp"].clone();
    let secret = idp.lines["idp secret key"]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let backend = spawn(
        &[
            "backend",
            "--backend-addr",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--auth-issuer",
            &idp_url,
        ],
        &[],
        &["backend"],
    );
    (idp, idp_url, secret, backend)
}

async fn bapi(idp: &str, secret: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{idp}/v1{path}"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn clerk_mode_reads_the_session_cookie_and_mints_convex_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // `_idp` keeps the idp running until the test ends.
    let (_idp, idp_url, secret, backend) = idp_and_backend(data);
    let backend_url = backend.lines["backend"].clone();
    let publishable_key =
        keel_auth::PublishableKey::encode(keel_auth::InstanceType::Development, "clerk.keel.test");
    let web = spawn(
        &[
            "web",
            "--web-addr",
            "127.0.0.1:0",
            "--backend-url",
            &backend_url,
        ],
        &[
            ("CLERK_PUBLISHABLE_KEY", &publishable_key),
            ("CLERK_SECRET_KEY", &secret),
            ("CLERK_API_URL", &idp_url),
        ],
        &["web"],
    );
    let web_url = web.lines["web"].clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Signed out: Clerk's script is announced, the local sign-in endpoints do not exist.
    let html = client
        .get(format!("{web_url}/posts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in to see the posts"), "{html}");
    assert!(html.contains(&format!(
        r#"<meta name="keel-clerk-publishable-key" content="{publishable_key}">"#
    )));
    assert!(html.contains(r#"<meta name="keel-clerk-frontend-api" content="clerk.keel.test">"#));
    let response = client
        .post(format!("{web_url}/_keel/auth/sign-in"))
        .form(&[("email", "x@example.com"), ("password", "whatever!")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A Clerk session (made through the Backend API, as Clerk's hosted sign-in would).
    let user = bapi(
        &idp_url,
        &secret,
        "/users",
        json!({"email_address": ["grace@example.com"], "password": "correct horse battery", "first_name": "Grace"}),
    )
    .await;
    let session = bapi(
        &idp_url,
        &secret,
        "/sessions",
        json!({"user_id": user["id"]}),
    )
    .await;
    let sid = session["id"].as_str().unwrap();
    let session_token = bapi(
        &idp_url,
        &secret,
        &format!("/sessions/{sid}/tokens"),
        json!({}),
    )
    .await;
    let convex_token = bapi(
        &idp_url,
        &secret,
        &format!("/sessions/{sid}/tokens/convex"),
        json!({}),
    )
    .await;
    let backend_client = keel_client::HttpClient::new(&backend_url)
        .unwrap()
        .with_auth(convex_token["jwt"].as_str().unwrap());
    let _: String = backend_client
        .mutation("posts:create", json!({"title": "Via Clerk", "body": ""}))
        .await
        .unwrap();

    // The web tier reads Clerk's cookie, mints a convex token and renders the posts.
    let cookie = format!("__session={}", session_token["jwt"].as_str().unwrap());
    let response = client
        .get(format!("{web_url}/posts"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains(">Via Clerk</a> by Grace"), "{html}");
    assert!(html.contains("keel-user-button"));
    // Forms work in Clerk mode too (server functions take the same token).
    let response = client
        .post(format!("{web_url}/_keel/fn/posts/create"))
        .header(COOKIE, &cookie)
        .form(&[("title", "Form in Clerk mode"), ("body", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let posts: Vec<Value> = backend_client.query("posts:list", json!({})).await.unwrap();
    assert!(posts.iter().any(|p| p["title"] == "Form in Clerk mode"));

    // With the backend gone, the loader fails: DefaultCatchBoundary, HTTP 500, no internals.
    drop(backend);
    let response = client
        .get(format!("{web_url}/posts"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Something went wrong") && html.contains("Try again"),
        "{html}"
    );
    assert!(
        html.contains("Go back") && html.contains("Posts</a>"),
        "{html}"
    );
    for internal in ["transport", "Transport", "127.0.0.1", "api/query"] {
        assert!(!html.contains(internal), "{internal} leaked: {html}");
    }
}

/// A stand-in for Clerk on 127.0.0.1: its Frontend API's handshake
/// (`GET /v1/client/handshake`, answering as Clerk documents it: back to `redirect_url` with a
/// `__clerk_handshake` payload — a JWT signed by the instance key whose `handshake` claim lists
/// `Set-Cookie` values), and its Backend API: the idp's, with the handshake key added to the
/// JWKS (`GET /v1/jwks`) and every other call passed on to the idp.
struct ClerkDouble {
    url: String,
    key: aws_lc_rs::rsa::KeyPair,
    /// The browser's session, as Clerk's `__client` cookie would name it.
    sid: std::sync::Mutex<String>,
    idp: String,
    secret: String,
    /// Answer handshakes without a payload (a Frontend API that cannot help).
    empty_handshakes: std::sync::atomic::AtomicBool,
}

const DOUBLE_KID: &str = "ins_clerk_double";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sign_rs256(key: &aws_lc_rs::rsa::KeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", b64(&signature))
}

fn claims_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

impl ClerkDouble {
    async fn start(idp: &str, secret: &str) -> std::sync::Arc<ClerkDouble> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let double = std::sync::Arc::new(ClerkDouble {
            url: format!("http://{}", listener.local_addr().unwrap()),
            key: aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
            sid: std::sync::Mutex::new(String::new()),
            idp: idp.to_owned(),
            secret: secret.to_owned(),
            empty_handshakes: std::sync::atomic::AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .route("/v1/client/handshake", axum::routing::get(handshake))
            .route("/v1/jwks", axum::routing::get(jwks))
            .fallback(pass_to_idp)
            .with_state(double.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        double
    }

    fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// A handshake payload listing `cookies`, signed with `key`.
    fn payload(&self, key: &aws_lc_rs::rsa::KeyPair, cookies: &[String]) -> String {
        sign_rs256(key, DOUBLE_KID, &json!({ "handshake": cookies }))
    }
}

type Double = axum::extract::State<std::sync::Arc<ClerkDouble>>;

async fn handshake(
    axum::extract::State(double): Double,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let back = query["redirect_url"].clone();
    if double
        .empty_handshakes
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return axum::response::Redirect::temporary(&back).into_response();
    }
    let sid = double.sid.lock().unwrap().clone();
    let token = bapi(
        &double.idp,
        &double.secret,
        &format!("/sessions/{sid}/tokens"),
        json!({}),
    )
    .await["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let uat = claims_of(&token)["iat"].as_i64().unwrap();
    let payload = double.payload(
        &double.key,
        &[
            format!("__session={token}; Path=/; SameSite=Lax"),
            format!("__client_uat={uat}; Path=/; SameSite=Lax; Max-Age=315360000"),
        ],
    );
    let joiner = if back.contains('?') { '&' } else { '?' };
    axum::response::Redirect::temporary(&format!("{back}{joiner}__clerk_handshake={payload}"))
        .into_response()
}

async fn jwks(axum::extract::State(double): Double) -> axum::Json<Value> {
    use aws_lc_rs::signature::KeyPair as _;
    let mut set: Value = reqwest::Client::new()
        .get(format!("{}/v1/jwks", double.idp))
        .bearer_auth(&double.secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = double.key.public_key();
    set["keys"].as_array_mut().unwrap().push(json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": DOUBLE_KID,
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    }));
    axum::Json(set)
}

async fn pass_to_idp(
    axum::extract::State(double): Double,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = reqwest::Client::new()
        .request(parts.method.clone(), format!("{}{path}", double.idp))
        .body(body);
    for name in [
        reqwest::header::AUTHORIZATION,
        reqwest::header::CONTENT_TYPE,
        reqwest::header::ORIGIN,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.unwrap();
    let status = answer.status();
    let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.unwrap();
    let mut response = (status, bytes).into_response();
    if let Some(value) = content_type {
        response
            .headers_mut()
            .insert(reqwest::header::CONTENT_TYPE, value);
    }
    response
}

/// The `Set-Cookie` values of a response, as `name=value` pairs.
fn cookie_pairs(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn clerk_mode_renews_an_outdated_session_through_the_handshake_before_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // `_idp` keeps the idp running until the test ends.
    let (_idp, idp_url, secret, backend) = idp_and_backend(data);
    let double = ClerkDouble::start(&idp_url, &secret).await;
    let publishable_key =
        keel_auth::PublishableKey::encode(keel_auth::InstanceType::Development, double.host());
    let web = spawn(
        &[
            "web",
            "--web-addr",
            "127.0.0.1:0",
            "--backend-url",
            &backend.lines["backend"],
        ],
        &[
            ("CLERK_PUBLISHABLE_KEY", &publishable_key),
            ("CLERK_SECRET_KEY", &secret),
            ("CLERK_API_URL", &double.url),
        ],
        &["web"],
    );
    let web_url = web.lines["web"].clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let navigate = |url: String, cookies: String| {
        let client = client.clone();
        async move {
            let mut request = client
                .get(url)
                .header("sec-fetch-dest", "document")
                .header("accept", "text/html");
            if !cookies.is_empty() {
                request = request.header(COOKIE, cookies);
            }
            request.send().await.unwrap()
        }
    };

    let user = bapi(
        &idp_url,
        &secret,
        "/users",
        json!({"email_address": ["grace@example.com"], "password": "correct horse battery", "first_name": "Grace"}),
    )
    .await;
    let session = bapi(
        &idp_url,
        &secret,
        "/sessions",
        json!({"user_id": user["id"]}),
    )
    .await;
    let sid = session["id"].as_str().unwrap().to_owned();
    *double.sid.lock().unwrap() = sid.clone();
    let token = bapi(
        &idp_url,
        &secret,
        &format!("/sessions/{sid}/tokens"),
        json!({}),
    )
    .await["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    // Clerk's script says the browser signed in after this token was minted: it is outdated.
    let uat = claims_of(&token)["iat"].as_i64().unwrap() + 30;
    let stale = format!("__session={token}; __client_uat={uat}");

    // 1. The page is not rendered signed out: it goes to the Frontend API's handshake.
    let response = navigate(format!("{web_url}/posts"), stale.clone()).await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let to_fapi = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_fapi.starts_with(&format!("{}/v1/client/handshake?redirect_url=", double.url)),
        "{to_fapi}"
    );
    assert!(
        to_fapi.contains("session-token-iat-before-client-uat"),
        "{to_fapi}"
    );
    assert!(cookie_pairs(&response).contains(&"__clerk_redirect_count=1".to_owned()));

    // 2. Clerk sends the browser back with the payload; the web tier sets the cookies and
    //    returns to the page without it.
    let response = navigate(to_fapi, String::new()).await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    let back = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&format!("{web_url}/posts?__clerk_handshake=")),
        "{back}"
    );
    let response = navigate(back.clone(), format!("{stale}; __clerk_redirect_count=1")).await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.headers()["location"], "/posts");
    let fresh: Vec<String> = cookie_pairs(&response)
        .into_iter()
        .filter(|c| c.starts_with("__session=") || c.starts_with("__client_uat="))
        .collect();
    assert_eq!(fresh.len(), 2, "{fresh:?}");
    assert_ne!(fresh[0], format!("__session={token}"));

    // 3. With them, the page renders signed in.
    let response = navigate(format!("{web_url}/posts"), fresh.join("; ")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("keel-user-button"), "signed in: {html}");
    assert!(!html.contains("Sign in to see the posts"));

    // A browser with Clerk's client cookie but no session token handshakes too.
    let response = navigate(format!("{web_url}/posts"), format!("__client_uat={uat}")).await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .contains("client-uat-but-no-session-token")
    );

    // A forged payload (another key under Clerk's kid) is ignored: signed out, nothing set.
    let stranger = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let forged = double.payload(&stranger, &[format!("{}; Path=/", fresh[0])]);
    let response = navigate(
        format!("{web_url}/posts?__clerk_handshake={forged}"),
        String::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(cookie_pairs(&response).is_empty());
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Sign in to see the posts")
    );

    // A genuine payload on a path that would leave the site comes back to `/`.
    let genuine = double.payload(&double.key, &[format!("{}; Path=/", fresh[0])]);
    let response = navigate(
        format!("{web_url}//evil.example/x?__clerk_handshake={genuine}"),
        String::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.headers()["location"], "/");

    // A Frontend API that keeps answering without a payload: three handshakes, then the page
    // renders (signed out) instead of looping.
    double
        .empty_handshakes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut count = 0;
    let rendered = loop {
        let response = navigate(
            format!("{web_url}/posts"),
            format!("{stale}; __clerk_redirect_count={count}"),
        )
        .await;
        if response.status() != StatusCode::TEMPORARY_REDIRECT {
            break response;
        }
        let to_fapi = response.headers()["location"].to_str().unwrap().to_owned();
        let back = navigate(to_fapi, String::new()).await;
        assert_eq!(back.headers()["location"], format!("{web_url}/posts"));
        count += 1;
        assert!(count <= 3, "handshake loop");
    };
    assert_eq!(count, keel_auth::MAX_HANDSHAKE_REDIRECTS);
    assert_eq!(rendered.status(), StatusCode::OK);
    assert!(
        rendered
            .text()
            .await
            .unwrap()
            .contains("Sign in to see the posts")
    );
}
