//! Clerk's handshake on `ClerkAuthenticator::authenticate_page`, against a stand-in for
//! Clerk's Backend API on 127.0.0.1 (its JWKS, with a key the test signs session tokens and
//! handshake payloads with): which requests are redirected to the Frontend API and how, the
//! loop guard, applying a genuine payload (cookie and query forms), and refusing forged or
//! hostile payloads and redirects off the site.

mod common;

use common::{RsaKey, now};
use http::HeaderMap;
use keel_auth::{
    Authenticator, ClerkAuthenticator, ClerkConfig, InstanceType, PageAuthentication,
    PublishableKey,
};
use serde_json::json;

const PAGE: &str = "http://app.keel.test/posts?page=2";

struct Clerk {
    key: RsaKey,
    auth: ClerkAuthenticator,
    fapi: String,
}

/// A Backend API serving `key` as the instance's JWKS; the Frontend API named by the
/// publishable key is `fapi_host` (never contacted: the browser would be).
async fn clerk(fapi_host: &str) -> Clerk {
    let key = RsaKey::generate("ins_handshake");
    let jwks = json!({ "keys": [key.jwk()] });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let auth = ClerkAuthenticator::new(ClerkConfig {
        publishable_key: PublishableKey::encode(InstanceType::Development, fapi_host),
        secret_key: "sk_test_handshake".into(),
        jwt_key: None,
        api_url: api,
        authorized_parties: Vec::new(),
        issuer: None,
    })
    .unwrap();
    Clerk {
        key,
        auth,
        fapi: fapi_host.to_owned(),
    }
}

impl Clerk {
    fn session_token(&self, iat: i64, exp: i64) -> String {
        self.key.sign(&json!({
            "iss": format!("https://{}", self.fapi), "sub": "user_1", "sid": "sess_1",
            "iat": iat, "nbf": iat - 5, "exp": exp, "v": 2,
        }))
    }

    fn payload(&self, cookies: &[String]) -> String {
        self.key.sign(&json!({ "handshake": cookies }))
    }

    async fn page(&self, headers: &HeaderMap, url: &str) -> PageAuthentication {
        self.auth.authenticate_page(headers, url).await.unwrap()
    }
}

/// A browser navigation carrying `cookies`.
fn navigation(cookies: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("sec-fetch-dest", "document".parse().unwrap());
    h.insert("accept", "text/html".parse().unwrap());
    if !cookies.is_empty() {
        h.insert(http::header::COOKIE, cookies.parse().unwrap());
    }
    h
}

fn redirect(outcome: PageAuthentication) -> (String, Vec<String>) {
    match outcome {
        PageAuthentication::Redirect {
            location,
            set_cookies,
        } => (location, set_cookies),
        PageAuthentication::Render(auth) => panic!("rendered instead: {auth:?}"),
    }
}

fn rendered_signed_in(outcome: &PageAuthentication) -> bool {
    match outcome {
        PageAuthentication::Render(auth) => auth.state.is_signed_in(),
        PageAuthentication::Redirect { location, .. } => panic!("redirected to {location}"),
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url.split_once('?')?.1.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[tokio::test]
async fn an_expired_session_of_a_signed_in_client_goes_to_the_frontend_api() {
    let c = clerk("127.0.0.1:4999").await;
    let n = now();
    let expired = c.session_token(n - 120, n - 60);
    let headers = navigation(&format!("__session={expired}; __client_uat={}", n - 300));
    let (location, cookies) = redirect(c.page(&headers, PAGE).await);
    assert!(
        location.starts_with("http://127.0.0.1:4999/v1/client/handshake?"),
        "{location}"
    );
    assert_eq!(
        query_param(&location, "redirect_url").as_deref(),
        Some(PAGE)
    );
    assert_eq!(
        query_param(&location, "__clerk_hs_reason").as_deref(),
        Some("session-token-expired")
    );
    assert_eq!(
        query_param(&location, "suffixed_cookies").as_deref(),
        Some("false")
    );
    assert_eq!(
        cookies,
        ["__clerk_redirect_count=1; Path=/; SameSite=Lax; HttpOnly; Max-Age=3"]
    );

    // The development browser token travels along; a real Frontend API host is https.
    let c2 = clerk("verb-noun-00.clerk.accounts.dev").await;
    let headers = navigation(&format!(
        "__session={}; __client_uat={}; __clerk_db_jwt=dvb_1",
        c2.session_token(n - 120, n - 60),
        n - 300
    ));
    let (location, _) = redirect(c2.page(&headers, PAGE).await);
    assert!(location.starts_with("https://verb-noun-00.clerk.accounts.dev/v1/client/handshake?"));
    assert_eq!(
        query_param(&location, "__clerk_db_jwt").as_deref(),
        Some("dvb_1")
    );

    // A session cookie missing, or older than the client's last sign-in: handshake too.
    let headers = navigation(&format!("__client_uat={}", n - 300));
    let (location, _) = redirect(c.page(&headers, PAGE).await);
    assert_eq!(
        query_param(&location, "__clerk_hs_reason").as_deref(),
        Some("client-uat-but-no-session-token")
    );
    let outdated = c.session_token(n - 30, n + 30);
    let headers = navigation(&format!("__session={outdated}; __client_uat={}", n - 10));
    let (location, _) = redirect(c.page(&headers, PAGE).await);
    assert_eq!(
        query_param(&location, "__clerk_hs_reason").as_deref(),
        Some("session-token-iat-before-client-uat")
    );
}

#[tokio::test]
async fn only_browser_navigations_of_signed_in_clients_handshake() {
    let c = clerk("127.0.0.1:4999").await;
    let n = now();
    let expired = c.session_token(n - 120, n - 60);
    let fresh = c.session_token(n - 5, n + 55);
    // A fresh session renders signed in.
    let headers = navigation(&format!("__session={fresh}; __client_uat={}", n - 300));
    assert!(rendered_signed_in(&c.page(&headers, PAGE).await));
    // Not a document (a fetch), no clerk-js (`__client_uat` absent), signed out by clerk-js
    // (`0`), a bearer token: no redirect, signed out.
    let mut fetch = navigation(&format!("__session={expired}; __client_uat={}", n - 300));
    fetch.insert("sec-fetch-dest", "empty".parse().unwrap());
    let mut bearer = HeaderMap::new();
    bearer.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {expired}").parse().unwrap(),
    );
    bearer.insert("accept", "text/html".parse().unwrap());
    for headers in [
        fetch,
        navigation(&format!("__session={expired}")),
        navigation(&format!("__session={expired}; __client_uat=0")),
        navigation("__client_uat=0"),
        navigation("__client_uat=garbage"),
        navigation(""),
        bearer,
    ] {
        assert!(
            !rendered_signed_in(&c.page(&headers, PAGE).await),
            "{headers:?}"
        );
    }
    // The loop guard: after three handshakes in a row, the page renders signed out.
    let loop_cookies = format!("__session={expired}; __client_uat={}", n - 300);
    for count in 0..3 {
        let headers = navigation(&format!("{loop_cookies}; __clerk_redirect_count={count}"));
        let (_, cookies) = redirect(c.page(&headers, PAGE).await);
        assert!(cookies[0].starts_with(&format!("__clerk_redirect_count={}", count + 1)));
    }
    let headers = navigation(&format!("{loop_cookies}; __clerk_redirect_count=3"));
    assert!(!rendered_signed_in(&c.page(&headers, PAGE).await));
    // A page URL that is not plainly this site's is never sent along.
    let headers = navigation(&loop_cookies);
    for url in [
        "http://app.keel.test//evil.example/",
        "javascript:alert(1)",
        "/relative",
    ] {
        assert!(!rendered_signed_in(&c.page(&headers, url).await), "{url}");
    }
}

#[tokio::test]
async fn a_genuine_payload_sets_fresh_cookies_and_renders_signed_in() {
    let c = clerk("127.0.0.1:4999").await;
    let n = now();
    let fresh = c.session_token(n, n + 60);
    let set = vec![
        format!("__session={fresh}; Path=/; SameSite=Lax"),
        format!("__client_uat={n}; Path=/; SameSite=Lax; Max-Age=31536000"),
    ];
    let payload = c.payload(&set);

    // Production: the payload is a cookie; the page renders signed in with the cookies.
    let expired = c.session_token(n - 120, n - 60);
    let headers = navigation(&format!(
        "__session={expired}; __client_uat={}; __clerk_handshake={payload}",
        n - 300
    ));
    match c.page(&headers, PAGE).await {
        PageAuthentication::Render(auth) => {
            assert_eq!(auth.state.user_id.as_deref(), Some("user_1"));
            assert_eq!(auth.state.session_token.as_deref(), Some(fresh.as_str()));
            assert_eq!(&auth.set_cookies[..2], &set[..]);
            assert!(
                auth.set_cookies
                    .contains(&"__clerk_handshake=; Path=/; Max-Age=0".to_owned())
            );
            assert!(
                auth.set_cookies
                    .contains(&"__clerk_redirect_count=; Path=/; Max-Age=0".to_owned())
            );
        }
        other @ PageAuthentication::Redirect { .. } => panic!("{other:?}"),
    }

    // Development: the payload is a query parameter; back to the page without it.
    let url = format!("{PAGE}&__clerk_handshake={payload}&__clerk_help=1");
    let (location, cookies) = redirect(c.page(&navigation(""), &url).await);
    assert_eq!(location, "/posts?page=2");
    assert_eq!(&cookies[..2], &set[..]);
    // …and the page itself, with the cookies the browser now has, is signed in.
    let headers = navigation(&format!("__session={fresh}; __client_uat={n}"));
    assert!(rendered_signed_in(&c.page(&headers, PAGE).await));

    // A payload that signs the browser out (no session) renders signed out, cookies applied.
    let out = c.payload(&[
        "__session=; Path=/; Max-Age=0".to_owned(),
        "__client_uat=0; Path=/".to_owned(),
    ]);
    let headers = navigation(&format!("__clerk_handshake={out}"));
    match c.page(&headers, PAGE).await {
        PageAuthentication::Render(auth) => {
            assert!(!auth.state.is_signed_in());
            assert!(
                auth.set_cookies
                    .iter()
                    .any(|c| c == "__client_uat=0; Path=/")
            );
        }
        other @ PageAuthentication::Redirect { .. } => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn forged_or_hostile_payloads_are_ignored() {
    let c = clerk("127.0.0.1:4999").await;
    let n = now();
    let fresh = c.session_token(n, n + 60);
    let good = vec![format!("__session={fresh}; Path=/")];
    let stranger = RsaKey::generate("ins_handshake");
    let forged_same_kid = stranger.sign(&json!({ "handshake": good }));
    let unknown_kid = RsaKey::generate("ins_other").sign(&json!({ "handshake": good }));
    let genuine = c.payload(&good);
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let tampered_claims = common::b64(
        json!({ "handshake": ["__session=attacker; Path=/"] })
            .to_string()
            .as_bytes(),
    );
    parts[1] = &tampered_claims;
    let tampered = parts.join(".");
    let none_alg = format!(
        "{}.{}.",
        common::b64(br#"{"alg":"none","typ":"JWT"}"#),
        common::b64(json!({ "handshake": good }).to_string().as_bytes())
    );
    let foreign_cookie = c.payload(&[
        good[0].clone(),
        "sessionid=attacker; Domain=keel.test".to_owned(),
    ]);
    let header_injection = c.payload(&[format!(
        "__session={fresh}\r\nLocation: https://evil.example"
    )]);
    let not_a_list = c.key.sign(&json!({ "handshake": "__session=x" }));
    let too_many = c.payload(&vec![good[0].clone(); 40]);
    let expired_payload = c.key.sign(&json!({ "handshake": good, "exp": n - 60 }));
    for (what, payload) in [
        ("another key with the same kid", forged_same_kid),
        ("an unknown kid", unknown_kid),
        ("tampered claims", tampered),
        ("alg none", none_alg),
        ("a cookie that is not Clerk's", foreign_cookie),
        ("a header injection", header_injection),
        ("no list", not_a_list),
        ("too many cookies", too_many),
        ("an expired payload", expired_payload),
        ("junk", "not.a.jwt".to_owned()),
        ("oversized", "a".repeat(40_000)),
    ] {
        let headers = navigation(&format!("__clerk_handshake={payload}"));
        match c.page(&headers, PAGE).await {
            PageAuthentication::Render(auth) => {
                assert!(!auth.state.is_signed_in(), "{what}");
                assert_eq!(
                    auth.set_cookies,
                    ["__clerk_handshake=; Path=/; Max-Age=0"],
                    "{what}"
                );
            }
            other @ PageAuthentication::Redirect { .. } => panic!("{what}: {other:?}"),
        }
        // In the query: rendered signed out, nothing set, no redirect.
        let url = format!(
            "{PAGE}&__clerk_handshake={}",
            percent_encoding::utf8_percent_encode(&payload, percent_encoding::NON_ALPHANUMERIC)
        );
        match c.page(&navigation(""), &url).await {
            PageAuthentication::Render(auth) => {
                assert!(
                    !auth.state.is_signed_in() && auth.set_cookies.is_empty(),
                    "{what}"
                );
            }
            other @ PageAuthentication::Redirect { .. } => panic!("{what}: {other:?}"),
        }
    }
    // A genuine payload on a page whose path would leave the site comes back home.
    let url = format!(
        "http://app.keel.test//evil.example/x?__clerk_handshake={}",
        c.payload(&good)
    );
    let (location, _) = redirect(c.page(&navigation(""), &url).await);
    assert_eq!(location, "/");
}
