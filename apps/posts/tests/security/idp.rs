//! Attacks on sign-up and sign-in through the web tier's forms (the identity provider behind
//! them decides): weak passwords, hostile addresses, mass sign-up, guessing one account's
//! password from one address or many, guessing its second-factor code, and a burst of sign-ups
//! aimed at memory.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::support::{Deployment, PASSWORD, Visitor, rand_suffix};

/// Posts the sign-up form; the `Location` it answers with (a `303`).
async fn sign_up_form(keel: &Deployment, visitor: &Visitor, email: &str, password: &str) -> String {
    let response = visitor
        .client
        .post(keel.url("/_keel/auth/sign-up"))
        .form(&[
            ("email", email),
            ("password", password),
            ("first_name", "Test"),
            ("redirect_url", "/posts"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email}");
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// The decoded `?error=` of a form's answer, if it is one.
fn form_error(location: &str) -> Option<String> {
    let (_, query) = location.split_once("error=")?;
    let text = query.split('&').next().unwrap_or_default();
    Some(
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned(),
    )
}

attack!(
    /// Passwords on every common list, or too weak to last, are refused on the form with a
    /// message saying why; the address stays free for a good password.
    weak_passwords_are_refused,
    |keel| {
        let visitor = keel.visitor();
        for weak in ["        ", "12345678", "password", "qwertyuiop", "aaaaaaaaaaaa"] {
            let location = sign_up_form(keel, &visitor, "weak@example.com", weak).await;
            let error = form_error(&location).unwrap_or_else(|| panic!("{weak:?} accepted"));
            assert!(
                error.contains("assword"),
                "{weak:?}: the message names the password: {error}"
            );
        }
        let location = sign_up_form(keel, &visitor, "weak@example.com", PASSWORD).await;
        assert_eq!(
            location, "/verify-email?redirect_url=%2Fposts",
            "the address was not taken by the refusals"
        );
    }
);

attack!(
    /// Addresses with control characters, markup or no real domain are refused with a clear
    /// message and create nothing.
    hostile_email_addresses_are_refused,
    |keel| {
        let visitor = keel.visitor();
        for hostile in [
            "ada\u{0}@example.com",
            "ada\u{7}@example.com",
            "<script>alert(1)</script>@example.com",
            "\"ada\"@example.com",
            "ada@localhost",
            "ada@[127.0.0.1]",
            "ada@example.com\r\nBcc: victim@example.com",
        ] {
            let location = sign_up_form(keel, &visitor, hostile, PASSWORD).await;
            let error = form_error(&location).unwrap_or_else(|| panic!("{hostile:?} accepted"));
            assert!(!error.is_empty(), "{hostile:?}");
        }
        let (_, html) = visitor.page("/posts").await;
        assert!(html.contains("Sign in to see the posts"), "no session was made");
    }
);

attack!(
    /// One address signing up again and again is slowed after a few accounts; a visitor from
    /// another address signs up at once.
    mass_sign_up_from_one_address_is_throttled,
    flags = ["--trusted-proxy", "127.0.0.1"],
    |keel| {
        let mut throttled = false;
        for n in 0..40 {
            let farm = keel.visitor_from("203.0.113.9");
            let location = sign_up_form(
                keel,
                &farm,
                &format!("farm-{n}-{}@example.com", rand_suffix()),
                PASSWORD,
            )
            .await;
            if let Some(error) = form_error(&location) {
                assert!(error.contains("Too many attempts"), "{error}");
                throttled = true;
                break;
            }
        }
        assert!(throttled, "40 sign-ups from one address were never throttled");
        let other = keel.visitor_from("198.51.100.20");
        let location = sign_up_form(keel, &other, "someone@example.com", PASSWORD).await;
        assert_eq!(location, "/verify-email?redirect_url=%2Fposts");
    }
);

attack!(
    /// Guessing one account's password from many addresses never stops its owner, who signs in
    /// from an address they used before, while the guesses are refused.
    guessing_one_account_from_many_addresses_does_not_lock_its_owner_out,
    flags = ["--trusted-proxy", "127.0.0.1"],
    |keel| {
        keel.visitor_from("198.51.100.7")
            .sign_up("owner@example.com")
            .await;
        let mut refused = 0;
        for n in 0..60 {
            let attacker = keel.visitor_from(&format!("203.0.113.{}", n % 30 + 1));
            let response = attacker
                .sign_in("owner@example.com", &format!("guess number {n}"))
                .await;
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            assert!(location.starts_with("/sign-in?error="), "guess {n}: {location}");
            refused += usize::from(location.contains("Too%20many%20attempts"));
        }
        assert!(refused > 0, "60 guesses at one account were never slowed");
        let response = keel
            .visitor_from("198.51.100.7")
            .sign_in("owner@example.com", PASSWORD)
            .await;
        assert_eq!(response.headers()[LOCATION], "/posts", "the owner gets in");
    }
);

attack!(
    /// An attacker guessing one account's password from one address is slowed, and the owner
    /// signing in from an address never used with the account gets in at once.
    guessing_from_one_address_leaves_the_owner_at_a_new_address_alone,
    flags = ["--trusted-proxy", "127.0.0.1"],
    |keel| {
        keel.visitor_from("198.51.100.7")
            .sign_up("owner@example.com")
            .await;
        let attacker = keel.visitor_from("203.0.113.5");
        let mut refused_after = None;
        for n in 0..12 {
            let response = attacker
                .sign_in("owner@example.com", &format!("guess number {n}"))
                .await;
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            assert!(location.starts_with("/sign-in?error="), "guess {n}: {location}");
            if location.contains("Too%20many%20attempts") {
                refused_after = Some(n);
                break;
            }
        }
        let refused_after = refused_after.expect("12 guesses from one address were never slowed");
        assert!(refused_after <= 6, "slowed only after {refused_after} guesses");
        let response = keel
            .visitor_from("192.0.2.44")
            .sign_in("owner@example.com", PASSWORD)
            .await;
        assert_eq!(response.headers()[LOCATION], "/posts", "the owner gets in");
    }
);

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Turns on two-step verification for the signed-in `visitor` through the account page; the
/// authenticator app's secret.
async fn enable_totp(visitor: &Visitor) -> keel_idp::TotpSecret {
    let response = visitor
        .client
        .post(visitor.url("/_keel/account/two-factor/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, html) = visitor.page("/account").await;
    let secret = html
        .split_once(r#"<code class="keel-totp-secret">"#)
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(secret, _)| secret.to_owned())
        .unwrap_or_else(|| panic!("no secret on the account page: {html}"));
    assert!(html.contains("otpauth://totp/"), "{html}");
    let secret = keel_idp::TotpSecret::from_base32(&secret).unwrap();
    let response = visitor
        .client
        .post(visitor.url("/_keel/account/two-factor/confirm"))
        .form(&[("code", secret.code_at(unix_now()))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("Two-step verification is on"), "{html}");
    assert_eq!(
        html.matches("<li><code>").count(),
        10,
        "ten backup codes: {html}"
    );
    secret
}

/// Posts a code to the second step of signing in; the `Location` it answers with.
async fn second_step(visitor: &Visitor, code: &str) -> String {
    let response = visitor
        .client
        .post(visitor.url("/_keel/auth/factor-two"))
        .form(&[("code", code), ("redirect_url", "/posts")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

attack!(
    /// An attacker who has the password guesses the second-factor code: refused after a few
    /// tries, while the owner, from an address never used with the account, finishes signing
    /// in with the app's code. The password alone never gives a session.
    guessing_the_second_factor_is_slowed_and_the_owner_gets_in,
    flags = ["--trusted-proxy", "127.0.0.1"],
    |keel| {
        let owner = keel.visitor_from("198.51.100.8");
        owner.sign_up("owner2fa@example.com").await;
        let secret = enable_totp(&owner).await;

        let attacker = keel.visitor_from("203.0.113.9");
        let response = attacker.sign_in("owner2fa@example.com", PASSWORD).await;
        assert_eq!(
            response.headers()[LOCATION],
            "/sign-in/factor-two?redirect_url=%2Fposts"
        );
        let (status, html) = attacker.page("/sign-in/factor-two?redirect_url=%2Fposts").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("/_keel/auth/factor-two"), "{html}");
        let (_, html) = attacker.page("/posts").await;
        assert!(html.contains("Sign in to see the posts"), "no session from the password alone");
        let valid: Vec<String> = (0..5)
            .map(|i| secret.code_at(unix_now() + i * 30 - 60))
            .collect();
        let guesses = (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .filter(|c| !valid.contains(c));
        let mut refused_after = None;
        for (n, guess) in guesses.take(12).enumerate() {
            let location = second_step(&attacker, &guess).await;
            let error = form_error(&location).unwrap_or_else(|| panic!("{guess} accepted"));
            if error.contains("Too many attempts") {
                refused_after = Some(n);
                break;
            }
        }
        let refused_after = refused_after.expect("12 code guesses were never slowed");
        assert!(refused_after <= 6, "slowed only after {refused_after} guesses");

        let owner_elsewhere = keel.visitor_from("192.0.2.45");
        let response = owner_elsewhere.sign_in("owner2fa@example.com", PASSWORD).await;
        assert_eq!(
            response.headers()[LOCATION],
            "/sign-in/factor-two?redirect_url=%2Fposts"
        );
        let location = second_step(&owner_elsewhere, &secret.code_at(unix_now() + 30)).await;
        assert_eq!(location, "/posts", "the owner gets in");
        let (_, html) = owner_elsewhere.page("/posts").await;
        assert!(!html.contains("Sign in to see the posts"), "{html}");
    }
);

attack!(
    /// The code step without the password (no pending sign-in, a forged or oversized one) and
    /// the set-up endpoints without a session give nothing: back to sign in, no session.
    the_second_step_cannot_be_reached_without_the_password,
    |keel| {
        let owner = keel.visitor();
        owner.sign_up("skip2fa@example.com").await;
        enable_totp(&owner).await;
        let code = "123456";
        for cookie in [
            None,
            Some("__keel_sign_in=2f1.user_x.1.AAAA".to_owned()),
            Some(format!("__keel_sign_in={}", "A".repeat(3000))),
        ] {
            let intruder = keel.visitor();
            let mut request = intruder
                .client
                .post(intruder.url("/_keel/auth/factor-two"))
                .form(&[("code", code), ("redirect_url", "/posts")]);
            if let Some(cookie) = &cookie {
                request = request.header(reqwest::header::COOKIE, cookie);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            let error = form_error(&location).unwrap_or_default();
            assert!(
                location.starts_with("/sign-in?") && error.contains("expired"),
                "{cookie:?}: {location}"
            );
            let (_, html) = intruder.page("/posts").await;
            assert!(html.contains("Sign in to see the posts"), "{cookie:?}");
        }
        for action in [
            "/_keel/account/two-factor/start",
            "/_keel/account/two-factor/confirm",
            "/_keel/account/two-factor/disable",
        ] {
            let response = keel
                .visitor()
                .client
                .post(keel.url(action))
                .form(&[("code", code)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{action}");
            assert!(
                response.headers()[LOCATION]
                    .to_str()
                    .unwrap()
                    .starts_with("/sign-in?"),
                "{action}"
            );
        }
    }
);

/// Resident memory of process `pid`, in KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// How much a burst of sign-ups may raise the hashing process's memory. Before hashing was
/// bounded, 200 concurrent sign-ups raised it by gigabytes.
const BURST_MEMORY_LIMIT_KIB: u64 = 256 * 1024;

attack!(
    /// 200 sign-ups at once from 200 addresses: each is answered (an account, or "try again"),
    /// and the process that hashes passwords grows by a bounded amount.
    a_burst_of_sign_ups_keeps_memory_bounded,
    flags = ["--trusted-proxy", "127.0.0.1"],
    |keel| {
        // The idp hashes: the one process, or the first of three.
        let pid = keel.processes[0].child.id();
        let before = rss_kib(pid);
        let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let peak = tokio::spawn({
            let sampling = sampling.clone();
            async move {
                let mut peak = 0;
                while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                    peak = peak.max(rss_kib(pid));
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                peak
            }
        });
        let keel = &*keel;
        let burst = (0..200).map(|n| {
            let visitor = keel.visitor_from(&format!("10.{}.{}.1", n / 200, n % 200));
            async move {
                sign_up_form(
                    keel,
                    &visitor,
                    &format!("burst-{n}@example.com"),
                    PASSWORD,
                )
                .await
            }
        });
        let answers = futures::future::join_all(burst).await;
        sampling.store(false, std::sync::atomic::Ordering::SeqCst);
        let peak = peak.await.unwrap();
        let signed_up = "/verify-email?redirect_url=%2Fposts";
        let created = answers.iter().filter(|l| *l == signed_up).count();
        assert!(created > 0, "some of the burst got accounts: {answers:?}");
        for location in answers.iter().filter(|l| *l != signed_up) {
            let error = form_error(location).unwrap_or_default();
            assert!(error.contains("busy") || error.contains("Too many"), "{error}");
        }
        assert!(
            peak.saturating_sub(before) < BURST_MEMORY_LIMIT_KIB,
            "the burst raised memory from {before} KiB to {peak} KiB"
        );
    }
);
