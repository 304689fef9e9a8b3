//! Token verification cost: a bare `jsonwebtoken` RS256 decode (baseline) vs `TokenVerifier`'s
//! first verification of a token (JWKS already cached: parse + key lookup + RSA verify +
//! identity) vs a cached verification (hash lookup).
//!
//! Run with `cargo bench -p keel-auth --bench verify`. Tokens are real `convex` template tokens
//! from the idp (started on 127.0.0.1:0), verified through OIDC discovery like the backend does.

#![allow(clippy::print_stdout)] // a bench reports on stdout

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;
use keel_auth::{AuthConfig, ProviderConfig, TokenVerifier};

/// Polls a future that must complete without waiting (no I/O on these paths).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("verification unexpectedly waited for I/O"),
    }
}

struct Setup {
    token: String,
    verifier: TokenVerifier,
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    _idp: keel_idp::Idp,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (idp, token, verifier) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idp = keel_idp::Idp::open(keel_idp::IdpConfig::new(dir.path()), addr).unwrap();
        tokio::spawn(idp.clone().serve(listener));
        let user = idp
            .create_user(keel_idp::NewUser {
                email_addresses: vec!["bench@example.com".into()],
                first_name: Some("Bench".into()),
                last_name: Some("Mark".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let session = idp.create_session(&user.id).unwrap();
        let token = idp
            .template_token(&session.id, "convex", Some(Duration::from_secs(3600)))
            .unwrap();
        let verifier = TokenVerifier::new(AuthConfig {
            providers: vec![ProviderConfig::Oidc {
                domain: idp.issuer().into(),
                application_id: "convex".into(),
            }],
        });
        verifier.verify(&token).await.unwrap(); // fetch discovery + JWKS once
        (idp, token, verifier)
    });
    let jwk = &idp.jwks()["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["convex"]);
    validation.set_issuer(&[idp.issuer()]);
    validation.leeway = 5;
    Setup {
        token,
        verifier,
        key,
        validation,
        _idp: idp,
        _dir: dir,
        _rt: rt,
    }
}

fn baseline(s: &Setup) {
    let data =
        jsonwebtoken::decode::<serde_json::Value>(black_box(&s.token), &s.key, &s.validation)
            .unwrap();
    black_box(data);
}

fn first(s: &Setup) {
    s.verifier.forget_cached_tokens();
    black_box(ready(s.verifier.verify(black_box(&s.token))).unwrap());
}

fn cached(s: &Setup) {
    black_box(ready(s.verifier.verify(black_box(&s.token))).unwrap());
}

fn cached_shared(s: &Setup) {
    black_box(ready(s.verifier.verify_shared(black_box(&s.token))).unwrap());
}

/// Median time per call over `rounds` rounds of `n` calls.
fn median_ns(s: &Setup, f: fn(&Setup), n: u32, rounds: usize) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f(s);
            }
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[rounds / 2]
}

fn main() {
    let s = setup();
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let mut group = c.benchmark_group("token_verification");
    group.bench_function("jsonwebtoken_rs256_decode", |b| b.iter(|| baseline(&s)));
    group.bench_function("keel_first_verification", |b| b.iter(|| first(&s)));
    group.bench_function("keel_cached_verification", |b| b.iter(|| cached(&s)));
    group.bench_function("keel_cached_verification_shared", |b| {
        b.iter(|| cached_shared(&s));
    });
    group.finish();
    c.final_summary();

    let base = median_ns(&s, baseline, 200, 15);
    let cold = median_ns(&s, first, 200, 15);
    let warm = median_ns(&s, cached, 20_000, 15);
    let shared = median_ns(&s, cached_shared, 20_000, 15);
    let row = |name: &str, ns: f64| {
        println!(
            "  {name:<32} {ns:>10.0} ns  ({:.4}x baseline, {:.1}x faster)",
            ns / base,
            base / ns
        );
    };
    println!("summary (median per call, same process):");
    println!("  {:<32} {base:>10.0} ns", "jsonwebtoken RS256 decode");
    row("keel first verification", cold);
    row("keel cached verification", warm);
    row("keel cached (verify_shared)", shared);
}
