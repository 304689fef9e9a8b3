//! Attacks on the web tier: forms, server functions, cookies, pages and assets.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::support::{PASSWORD, post_id};

attack!(
    /// A form posted from another site (`Origin` of another host) creates nothing.
    cross_origin_form_post_is_refused,
    |keel| {
        let victim = keel.signed_up("victim@example.com").await;
        for (header, value) in [
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
            // A sibling site (another subdomain or port of the same host) is not this origin.
            ("sec-fetch-site", "same-site"),
        ] {
            let response = victim
                .client
                .post(keel.url("/_keel/fn/posts/create"))
                .header(header, value)
                .form(&[("title", format!("Forged with {value}")), ("body", String::new())])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        }
        let (_, html) = victim.page("/posts").await;
        assert!(!html.contains("Forged"), "{html}");
    }
);

attack!(
    /// A link from another site to a server function (a top-level `GET`, which carries the
    /// victim's `SameSite=Lax` cookies) changes nothing: functions that change state answer
    /// `POST` only.
    server_functions_refuse_get,
    |keel| {
        let victim = keel.signed_up("victim@example.com").await;
        assert_eq!(victim.create_post("Keep me").await.status(), StatusCode::SEE_OTHER);
        let (_, html) = victim.page("/posts").await;
        let id = post_id(&html, "Keep me").expect("the post is listed");
        for path in [
            "/_keel/fn/posts/create?title=Forged&body=x".to_owned(),
            format!("/_keel/fn/posts/remove?id={id}"),
            "/_keel/fn/posts/importSample".to_owned(),
        ] {
            // As a cross-site navigation, and as an older browser sends it (no Sec-Fetch-*).
            for cross_site in [true, false] {
                let mut request = victim.client.get(keel.url(&path));
                if cross_site {
                    request = request
                        .header("sec-fetch-site", "cross-site")
                        .header("sec-fetch-mode", "navigate");
                }
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "GET {path}");
                assert_eq!(response.headers()["allow"], "POST", "GET {path}");
            }
        }
        let (_, html) = victim.page("/posts").await;
        assert!(html.contains(">Keep me</a>"), "{html}");
        assert!(!html.contains("Forged") && !html.contains("Sample post"), "{html}");
    }
);

/// Failed sign-ins one address may make before the idp refuses it: far more than its limit.
const MAX_GUESSES: usize = 200;

attack!(
    /// One attacker guessing passwords from one address (here reported by a trusted proxy)
    /// exhausts only that address: the owner, from another address, signs in at once.
    sign_in_throttle_keys_on_the_visitors_address,
    flags = ["--trusted-proxy", "127.0.0.1"],
    |keel| {
        keel.visitor_from("198.51.100.7")
            .sign_up("owner@example.com")
            .await;
        let attacker = keel.visitor_from("203.0.113.66");
        let mut throttled = false;
        for n in 0..MAX_GUESSES {
            let response = attacker
                .sign_in(&format!("guess-{n}@example.com"), "wrong password")
                .await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            assert!(location.starts_with("/sign-in?error="), "{location}");
            if location.contains("Too%20many%20attempts") {
                throttled = true;
                break;
            }
        }
        assert!(throttled, "{MAX_GUESSES} failed sign-ins from one address were never throttled");
        // While the attacker keeps guessing, the owner signs in from another address, again
        // and again: nothing the attacker does from their address stands in the way.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let guessing = tokio::spawn({
            let (attacker, stop) = (attacker.clone(), stop.clone());
            async move {
                let mut refused = 0;
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let response = attacker
                        .sign_in(&format!("more-{n}@example.com"), "wrong password")
                        .await;
                    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
                    refused += usize::from(location.contains("Too%20many%20attempts"));
                }
                refused
            }
        });
        for _ in 0..3 {
            let response = keel
                .visitor_from("198.51.100.7")
                .sign_in("owner@example.com", PASSWORD)
                .await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            assert_eq!(response.headers()[LOCATION], "/posts");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(guessing.await.unwrap() > 0, "the attacker stayed refused");
    }
);

attack!(
    /// Without a trusted proxy, a visitor's own `X-Forwarded-For` / `Forwarded` is ignored: an
    /// attacker cannot dodge the per-address limit by claiming a new address on every guess.
    forged_forwarding_headers_do_not_dodge_the_throttle,
    |keel| {
        let attacker = keel.visitor();
        let mut throttled = false;
        for n in 0..MAX_GUESSES {
            let response = attacker
                .client
                .post(keel.url("/_keel/auth/sign-in"))
                .header("x-forwarded-for", format!("203.0.113.{}", n % 250))
                .header("forwarded", format!("for=198.51.100.{}", n % 250))
                .form(&[
                    ("email", format!("dodge-{n}@example.com").as_str()),
                    ("password", "wrong password"),
                ])
                .send()
                .await
                .unwrap();
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            if location.contains("Too%20many%20attempts") {
                throttled = true;
                break;
            }
        }
        assert!(throttled, "{MAX_GUESSES} guesses claiming new addresses were never throttled");
    }
);

/// Redirect targets a browser resolves to another site: it strips tabs and newlines and reads
/// `\` as `/` before resolving.
const OFF_SITE_TARGETS: [&str; 8] = [
    "/\t/evil.example/x",
    "/\t\\evil.example",
    "/\n/evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
];

/// Fails unless `location` (a `Location` header) resolves to `keel`'s own origin.
fn assert_on_site(keel: &crate::support::Deployment, location: &str, target: &str) {
    let base = url::Url::parse(&keel.web).unwrap();
    let resolved = base.join(location).unwrap();
    assert_eq!(
        resolved.origin(),
        base.origin(),
        "{target:?} redirected to {location:?} = {resolved}"
    );
}

/// Posts the sign-in or sign-up form (`action`) with `redirect_url=target`: the `Location` of
/// its `303`.
async fn auth_form(
    keel: &crate::support::Deployment,
    visitor: &crate::support::Visitor,
    action: &str,
    (email, password): (&str, &str),
    target: &str,
) -> String {
    let response = visitor
        .client
        .post(keel.url(action))
        .form(&[
            ("email", email),
            ("password", password),
            ("redirect_url", target),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{action} {target:?}"
    );
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_on_site(keel, &location, target);
    location
}

attack!(
    /// Sign-in and sign-up forms and the sign-in pages' `?redirect_url=` never send the visitor
    /// to another site, however the target is spelled.
    off_site_redirect_targets_stay_on_site,
    |keel| {
        let visitor = keel.visitor();
        // Sign-up with the issue's two spellings (each a new account; sign-ups are limited per
        // address), sign-in with every spelling (spread over those accounts, whose password
        // checks are limited too).
        let accounts = ["redirected-0@example.com", "redirected-1@example.com"];
        for (email, target) in accounts.iter().zip(OFF_SITE_TARGETS) {
            let location =
                auth_form(keel, &visitor, "/_keel/auth/sign-up", (email, PASSWORD), target).await;
            // On to the "enter the code" step, whose onward target is home.
            assert_eq!(
                location, "/verify-email?redirect_url=%2F",
                "sign-up {target:?}"
            );
        }
        for (n, target) in OFF_SITE_TARGETS.iter().enumerate() {
            let account = (accounts[n % 2], PASSWORD);
            let location = auth_form(keel, &visitor, "/_keel/auth/sign-in", account, target).await;
            assert_eq!(location, "/", "sign-in {target:?}");
            // A failed sign-in goes back to the form, which must not keep the target either.
            let unknown = format!("nobody-{n}@example.com");
            let wrong = (unknown.as_str(), "wrong password");
            let location = auth_form(keel, &visitor, "/_keel/auth/sign-in", wrong, target).await;
            assert!(location.starts_with("/sign-in?error=Incorrect"), "{location}");
            let (_, html) = visitor.page(&location).await;
            assert!(html.contains(r#"name="redirect_url" value="/""#), "{target:?}: {html}");
            for page in ["/sign-in", "/sign-up"] {
                let mut url = url::Url::parse(&keel.url(page)).unwrap();
                url.query_pairs_mut().append_pair("redirect_url", target);
                let html = visitor.client.get(url).send().await.unwrap().text().await.unwrap();
                assert!(html.contains(r#"name="redirect_url" value="/""#), "{page} {target:?}: {html}");
            }
        }
        // A local target still works, normalised.
        let account = (accounts[0], PASSWORD);
        let location =
            auth_form(keel, &visitor, "/_keel/auth/sign-in", account, "/posts/../posts?x=1").await;
        assert_eq!(location, "/posts?x=1");
    }
);

attack!(
    /// `posts:get` answers only signed-in callers, like `posts:list` and the page: an anonymous
    /// call learns neither the post nor its author.
    posts_get_needs_sign_in,
    |keel| {
        let author = keel.signed_up("author@example.com").await;
        author.create_post("Members only").await;
        let (_, html) = author.page("/posts").await;
        let id = post_id(&html, "Members only").expect("the post is listed");
        let answer = keel
            .query("posts:get", serde_json::json!({ "id": id }), None)
            .await;
        assert_eq!(answer["status"], "error", "{answer}");
        assert_eq!(answer["errorData"]["code"], "UNAUTHENTICATED", "{answer}");
        assert!(!answer.to_string().contains("Members only"), "{answer}");
        // Signed in, the post page still shows it.
        let (status, detail) = author.page(&format!("/posts/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(detail.contains("Members only"), "{detail}");
    }
);

attack!(
    /// Pages forbid framing (clickjacking), sniffing and scripts from anywhere but the site, and
    /// keep their addresses to themselves; no HSTS over plain HTTP.
    pages_carry_security_headers,
    |keel| {
        let visitor = keel.signed_up("headers@example.com").await;
        for path in ["/", "/posts", "/sign-in", "/nope", "/_keel/fn/nope"] {
            let response = visitor.client.get(keel.url(path)).send().await.unwrap();
            let headers = response.headers();
            let header = |name: &str| {
                headers
                    .get(name)
                    .unwrap_or_else(|| panic!("{path}: no {name}"))
                    .to_str()
                    .unwrap()
                    .to_owned()
            };
            assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
            assert_eq!(header("x-frame-options"), "DENY", "{path}");
            assert_eq!(header("referrer-policy"), "strict-origin-when-cross-origin", "{path}");
            let csp = header("content-security-policy");
            for directive in [
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "object-src 'none'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            ] {
                assert!(csp.split(';').any(|d| d.trim() == directive), "{path}: {directive} in {csp}");
            }
            assert!(!csp.contains("unsafe"), "{path}: {csp}");
            assert!(headers.get("strict-transport-security").is_none(), "{path}");
        }
    }
);

attack!(
    /// A post whose title and body are markup is shown as text, never run.
    stored_markup_is_escaped,
    |keel| {
        let author = keel.signed_up("author@example.com").await;
        let title = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        let response = author.create_post(title).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (_, html) = author.page("/posts").await;
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        let id = post_id(&html, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;")
            .expect("the post is listed");
        let (status, detail) = author.page(&format!("/posts/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!detail.contains("<script>alert(1)"), "{detail}");
    }
);

attack!(
    /// Paths that climb out of the asset directory or into the server's files find nothing.
    path_traversal_finds_nothing,
    |keel| {
        let visitor = keel.visitor();
        for path in [
            "/_keel/../Cargo.toml",
            "/_keel/%2e%2e/%2e%2e/Cargo.toml",
            "/_keel/assets/..%2f..%2fCargo.toml",
            "/_keel/runtime.js/../../../../etc/passwd",
            "/..%2f..%2f..%2fetc%2fpasswd",
        ] {
            let (status, body) = visitor.page(path).await;
            assert_ne!(status, StatusCode::OK, "{path}");
            assert!(!body.contains("[workspace]") && !body.contains("root:x:0:0"), "{path}");
        }
    }
);

attack!(
    /// Garbage in the session cookies renders the page signed out; it does not fail it.
    forged_session_cookies_are_signed_out,
    |keel| {
        let visitor = keel.visitor();
        for cookie in [
            "__session=not-a-jwt",
            "__session=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            "__client=forged; __session=x.y.z",
            "__session=%00%01; __client=\"quoted\"",
        ] {
            let response = visitor
                .client
                .get(keel.url("/posts"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{cookie}");
            let html = response.text().await.unwrap();
            assert!(html.contains("Sign in to see the posts"), "{cookie}: {html}");
        }
    }
);

attack!(
    /// The account endpoints refuse cross-site posts, act only for the visitor's own session,
    /// and answer hostile form input (foreign or malformed session ids, absurd codes, no
    /// confirmation) with a message on the account page, changing nothing.
    account_endpoints_resist_forgery_and_hostile_input,
    |keel| {
        let victim = keel.signed_up("account-victim@example.com").await;
        let stranger = keel.signed_up("account-stranger@example.com").await;
        for path in [
            "/_keel/account/delete",
            "/_keel/account/sign-out-everywhere",
            "/_keel/account/profile",
        ] {
            let response = victim
                .client
                .post(keel.url(path))
                .header("sec-fetch-site", "cross-site")
                .form(&[("confirm", "DELETE"), ("first_name", "Forged")])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        }
        let (_, html) = victim.page("/account").await;
        assert!(html.contains("account-victim@example.com") && !html.contains("Forged"), "{html}");
        // The stranger's own session id, from the stranger's account page.
        let (_, theirs) = stranger.page("/account").await;
        let marker = "data-session-id=\"";
        let at = theirs.find(marker).expect("a session is listed") + marker.len();
        let stranger_sid = &theirs[at..at + theirs[at..].find('"').unwrap()];
        let long_id = "sess_".to_owned() + &"x".repeat(5000);
        for session_id in [stranger_sid, "../../v1/users", "sess_\u{0}", long_id.as_str()] {
            let response = victim
                .client
                .post(keel.url("/_keel/account/sessions/revoke"))
                .form(&[("session_id", session_id)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            assert!(location.starts_with("/account?error="), "{location}");
        }
        let (_, theirs) = stranger.page("/account").await;
        assert!(theirs.contains(stranger_sid), "the stranger's session survived");
        for code in ["", "12", &"9".repeat(10_000), "<script>"] {
            let response = victim
                .client
                .post(keel.url("/_keel/auth/verify-email"))
                .form(&[("code", code), ("redirect_url", "/posts")])
                .send()
                .await
                .unwrap();
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            assert!(location.starts_with("/verify-email?") && location.contains("error="), "{location}");
        }
        let response = victim
            .client
            .post(keel.url("/_keel/account/delete"))
            .form(&[("confirm", "yes")])
            .send()
            .await
            .unwrap();
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(location.starts_with("/account?error="), "{location}");
        let (_, html) = victim.page("/account").await;
        assert!(html.contains("account-victim@example.com"), "the account survived: {html}");
    }
);
