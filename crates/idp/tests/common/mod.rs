//! Test support: a real idp on 127.0.0.1:0 with a Backend-API client (calls as a script, or on
//! behalf of an end user at a given address, as the web tier does with `X-Forwarded-For`),
//! Clerk-error assertions, and the process's resident memory around a burst of sign-ups.
//! Shared by the tests in `tests/` and the `signup_burst` benchmark.
#![allow(dead_code, unreachable_pub)]

pub mod pg;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keel_idp::{Idp, IdpConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running idp and an HTTP client for it.
pub struct Running {
    pub idp: Idp,
    pub url: String,
    pub http: reqwest::Client,
}

/// Starts an idp with state in `dir`, its configuration adjusted by `adjust`.
pub async fn start_in(dir: &std::path::Path, adjust: impl FnOnce(&mut IdpConfig)) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = IdpConfig::new(dir);
    adjust(&mut config);
    let idp = Idp::open(config, addr).unwrap();
    tokio::spawn(idp.clone().serve(listener));
    Running {
        url: format!("http://{addr}"),
        idp,
        // One connection per request in flight: a burst is many clients at once.
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
    }
}

/// An answer: status, `Retry-After` (seconds) and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Running {
    /// A Backend-API call as a script (secret key, no reported address).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(method, path, body, Some(self.idp.secret_key()))
            .await
    }

    pub async fn call_as(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        secret: Option<&str>,
    ) -> (StatusCode, Value) {
        let answer = self.send(method, path, body, secret, None).await;
        (answer.status, answer.body)
    }

    /// A Backend-API call on behalf of an end user at `address` (`X-Forwarded-For`).
    pub async fn call_from(&self, address: &str, method: &str, path: &str, body: Value) -> Answer {
        self.send(
            method,
            path,
            Some(body),
            Some(self.idp.secret_key()),
            Some(address),
        )
        .await
    }

    /// A Backend-API call with a raw JSON body (for malformed JSON).
    pub async fn send_raw(&self, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(self.idp.secret_key())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        secret: Option<&str>,
        address: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(s) = secret {
            req = req.bearer_auth(s);
        }
        if let Some(a) = address {
            req = req.header("x-forwarded-for", a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        Answer {
            status,
            retry_after,
            body: resp.json().await.unwrap_or(Value::Null),
        }
    }

    /// Creates a user (as a script) with `password`; its id.
    pub async fn create_user_with(&self, email: &str, password: &str) -> String {
        let (status, user) = self
            .call("POST", "/v1/users", Some(json!({"email_address": [email], "password": password, "first_name": "Grace", "last_name": "Hopper"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        user["id"].as_str().unwrap().to_owned()
    }

    /// Creates a user with the password `correct horse`; its id.
    pub async fn create_user(&self, email: &str) -> String {
        self.create_user_with(email, "correct horse").await
    }

    /// `verify_password` for `user` from `address`.
    pub async fn verify_from(&self, address: &str, user: &str, password: &str) -> Answer {
        self.call_from(
            address,
            "POST",
            &format!("/v1/users/{user}/verify_password"),
            json!({ "password": password }),
        )
        .await
    }

    /// Asserts that `password` is verified for `user` from `address`.
    pub async fn assert_signs_in(&self, address: &str, user: &str, password: &str) {
        let answer = self.verify_from(address, user, password).await;
        assert_eq!(answer.status, StatusCode::OK, "{address}: {}", answer.body);
        assert_eq!(answer.body["verified"], true);
    }

    /// `POST /v1/users` (as a script) that must be refused with a 422 `code`; the error body.
    pub async fn create_user_refused(&self, body: Value, code: &str) -> Value {
        let (status, answer) = self.call("POST", "/v1/users", Some(body)).await;
        assert_clerk_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, code);
        answer
    }

    /// `POST /v1/users` on behalf of an end user at `address` (the web tier's sign-up form).
    pub async fn sign_up_from(&self, address: &str, email: &str, password: &str) -> Answer {
        self.call_from(
            address,
            "POST",
            "/v1/users",
            json!({ "email_address": [email], "password": password }),
        )
        .await
    }

    /// `count` concurrent sign-ups (as a script, strong passwords): how they were answered.
    pub async fn burst(&self, round: &str, count: usize) -> Outcome {
        let started = Instant::now();
        let calls = (0..count).map(|i| async move {
            self.send(
                "POST",
                "/v1/users",
                Some(json!({
                    "email_address": [format!("{round}-{i}@burst.example.com")],
                    "password": format!("{round} {i} correct horse battery"),
                })),
                Some(self.idp.secret_key()),
                None,
            )
            .await
        });
        let answers = futures::future::join_all(calls).await;
        let mut outcome = Outcome {
            elapsed: started.elapsed(),
            ..Outcome::default()
        };
        for answer in answers {
            match answer.status.as_u16() {
                200 => outcome.created += 1,
                429 if answer.retry_after.is_some()
                    && answer.body["errors"][0]["code"] == "too_many_requests" =>
                {
                    outcome.refused += 1;
                }
                _ => outcome.failed += 1,
            }
        }
        outcome
    }
}

/// What a burst got back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub created: usize,
    /// Clerk-shaped 429s with `Retry-After` (the hashing queue was full or past its deadline).
    pub refused: usize,
    /// Anything else.
    pub failed: usize,
    pub elapsed: Duration,
}

pub fn assert_clerk_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    let e = &body["errors"][0];
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        e["long_message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// A Clerk-shaped 429 with a `Retry-After` of at least a second.
pub fn assert_too_many(answer: &Answer) {
    assert_clerk_error(
        answer.status,
        &answer.body,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    );
    assert!(
        answer.retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {:?}",
        answer.retry_after
    );
}

/// Resident memory of this process, in bytes (`VmRSS`).
pub fn rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// Peak resident memory since the last [`reset_peak`], in bytes (`VmHWM`).
pub fn peak_rss() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// Resets `VmHWM` to the current RSS (writing 5 to `/proc/self/clear_refs`).
pub fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Waits until RSS stops falling (two readings 500 ms apart within 1 MiB), at most `limit`;
/// the last reading.
pub async fn settled_rss(limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let mut last = rss();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss();
        if last.abs_diff(now) < 1 << 20 || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

pub const MIB: u64 = 1 << 20;

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}
