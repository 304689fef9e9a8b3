//! Sign-in and sign-up throttling over real HTTP, with end users' addresses reported in
//! `X-Forwarded-For` as the web tier reports them: attackers are refused (Clerk's 429
//! `too_many_requests` with `Retry-After`), while the owner signing in from another address and
//! unrelated users are untouched.

mod common;

use std::time::Duration;

use common::{assert_clerk_error, assert_too_many, start_in};
use keel_idp::RateLimit;
use reqwest::StatusCode;

const ATTACKER: &str = "203.0.113.66";
const OWNER_ELSEWHERE: &str = "198.51.100.7";

#[tokio::test]
async fn wrong_passwords_from_one_address_do_not_lock_the_owner_out() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let victim = r.create_user("victim@example.com").await;
    // The attacker guesses until refused, then keeps trying: every answer is a 422 or a 429.
    let mut refused = None;
    for i in 0..30 {
        let answer = r
            .verify_from(ATTACKER, &victim, &format!("guess {i}"))
            .await;
        match answer.status {
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(answer.body["errors"][0]["code"], "incorrect_password");
            }
            _ => {
                assert_too_many(&answer);
                refused.get_or_insert(i);
            }
        }
    }
    let first_refusal = refused.expect("the attacker was never slowed");
    assert!(
        first_refusal <= 6,
        "refused only after {first_refusal} guesses"
    );
    // Even the right password is refused from the attacker's address while it is slowed…
    assert_too_many(&r.verify_from(ATTACKER, &victim, "correct horse").await);
    // …but the owner, from another address, signs in at once.
    let owner = r
        .verify_from(OWNER_ELSEWHERE, &victim, "correct horse")
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    assert_eq!(owner.body["verified"], true);
    // An unrelated user at yet another address is untouched, wrong or right.
    let other = r.create_user("other@example.com").await;
    let wrong = r.verify_from("192.0.2.1", &other, "not it at all").await;
    assert_clerk_error(
        wrong.status,
        &wrong.body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incorrect_password",
    );
    r.assert_signs_in("192.0.2.1", &other, "correct horse")
        .await;
}

#[tokio::test]
async fn guesses_from_many_addresses_are_slowed_but_the_owner_at_home_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let victim = r.create_user("victim@example.com").await;
    let home = "192.0.2.10";
    r.assert_signs_in(home, &victim, "correct horse").await;
    // A botnet: one guess from each of 40 addresses. The account's budget for unfamiliar
    // addresses (20 by default) runs out, and further guesses are refused.
    let mut statuses = Vec::new();
    for i in 0..40 {
        let answer = r
            .verify_from(&format!("10.66.0.{i}"), &victim, &format!("guess {i}"))
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_too_many(&answer);
            assert!(
                answer.body["errors"][0]["long_message"]
                    .as_str()
                    .unwrap()
                    .contains("networks it has not signed in from"),
                "{}",
                answer.body
            );
        }
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        20,
        "{statuses:?}"
    );
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // The owner at home is not counted against that budget.
    r.assert_signs_in(home, &victim, "correct horse").await;
    // Other accounts, from the same botnet addresses, are untouched.
    let other = r.create_user("other@example.com").await;
    r.assert_signs_in("10.66.0.39", &other, "correct horse")
        .await;
}

#[tokio::test]
async fn one_address_guessing_across_accounts_is_slowed_alone() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.password_rate_limit_per_address = RateLimit {
            burst: 10,
            refill_every: Duration::from_secs(3600),
        };
    })
    .await;
    let owner = r.create_user("owner@example.com").await;
    // Random emails: the web tier asks about an id derived from each unknown address.
    let mut answers = Vec::new();
    for i in 0..14 {
        let answer = r
            .verify_from(ATTACKER, &format!("user_unknown{i:04}"), "guess")
            .await;
        answers.push(answer.status.as_u16());
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_too_many(&answer);
        }
    }
    assert_eq!(answers[..10], [404; 10], "{answers:?}");
    assert_eq!(answers[10..], [429; 4], "{answers:?}");
    // Everyone else keeps signing in.
    for address in [OWNER_ELSEWHERE, "::1", "2001:db8::1"] {
        r.assert_signs_in(address, &owner, "correct horse").await;
    }
}

#[tokio::test]
async fn ipv6_guesses_count_per_64_network() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let victim = r.create_user("victim@example.com").await;
    // Rotating through addresses of one /64 is one address to the throttle.
    let mut first_refusal = None;
    for i in 0..10u32 {
        let answer = r
            .verify_from(&format!("2001:db8:66:1::{i:x}"), &victim, "guess")
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            first_refusal.get_or_insert(i);
        }
    }
    assert!(first_refusal.is_some_and(|i| i <= 6), "{first_refusal:?}");
    r.assert_signs_in("2001:db8:77:1::1", &victim, "correct horse")
        .await;
}

#[tokio::test]
async fn sign_ups_are_limited_per_reported_address_not_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    // The ten admitted sign-ups each hash a password; on a loaded machine the last of them
    // can wait past the pool's default 2 s and be refused as busy (also a 429), which would
    // count as a throttled sign-up. Only the sign-up throttle is under test here.
    let r = start_in(dir.path(), |config| {
        config.password_hashing.max_wait = Duration::from_secs(120);
    })
    .await;
    // 20 sign-ups from one address in a burst: 10 are accepted, the rest refused.
    let answers = futures::future::join_all((0..20).map(|i| {
        let r = &r;
        async move {
            r.sign_up_from(ATTACKER, &format!("bulk{i}@example.com"), "correct horse")
                .await
        }
    }))
    .await;
    let created = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert_eq!(created, 10);
    for answer in answers.iter().filter(|a| a.status != StatusCode::OK) {
        assert_too_many(answer);
    }
    // Someone else signs up meanwhile.
    let other = r
        .sign_up_from(OWNER_ELSEWHERE, "ada@example.com", "correct horse")
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    // A script holding the secret key and reporting no address is not limited.
    for i in 0..15 {
        r.create_user(&format!("seeded{i}@example.com")).await;
    }
    // A user created from an address is trusted from it: guesses from elsewhere never count
    // against it there.
    let ada = other.body["id"].as_str().unwrap();
    for i in 0..25 {
        r.verify_from(&format!("10.77.0.{i}"), ada, "guess").await;
    }
    r.assert_signs_in(OWNER_ELSEWHERE, ada, "correct horse")
        .await;
}
