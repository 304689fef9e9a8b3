//! Attacks on sign-up and sign-in through the web tier's forms (the identity provider behind
//! them decides): weak passwords, hostile addresses, mass sign-up, guessing one account's
//! password from many addresses, and a burst of sign-ups aimed at memory.

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
