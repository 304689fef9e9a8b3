//! Test fixtures: a hand-rolled OIDC issuer with its own keys (so tests control every claim and
//! header, and count JWKS downloads) and a helper that starts the real idp on 127.0.0.1:0.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RSA key with its JWK.
pub struct RsaKey {
    pub kid: String,
    pub pair: KeyPair,
}

impl RsaKey {
    pub fn generate(kid: &str) -> Self {
        RsaKey {
            kid: kid.to_owned(),
            pair: KeyPair::generate(KeySize::Rsa2048).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// Signs with RS256, using `header` as given (so tests can lie in it).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", b64(&sig))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// A P-256 key with its JWK.
pub struct EcKey {
    pub kid: String,
    pub pair: EcdsaKeyPair,
}

impl EcKey {
    pub fn generate(kid: &str) -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        EcKey {
            kid: kid.to_owned(),
            pair,
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid, "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// A minimal OIDC issuer: discovery + JWKS with a configurable Cache-Control, counting
/// JWKS downloads.
pub struct TestIssuer {
    pub url: String,
    pub jwks: Arc<parking_lot::Mutex<Value>>,
    pub jwks_hits: Arc<AtomicUsize>,
}

impl TestIssuer {
    pub async fn start(keys: Vec<Value>, cache_control: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(parking_lot::Mutex::new(json!({ "keys": keys })));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let (doc_url, j, hits) = (url.clone(), jwks.clone(), jwks_hits.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let u = doc_url.clone();
                    async move { axum::Json(json!({"issuer": u, "jwks_uri": format!("{u}/jwks")})) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = j.lock().clone();
                    async move {
                        ([(header::CACHE_CONTROL, cache_control)], axum::Json(body)).into_response()
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestIssuer {
            url,
            jwks,
            jwks_hits,
        }
    }

    pub fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Standard valid claims for this issuer.
    pub fn claims(&self, sub: &str) -> Value {
        let n = now();
        json!({"iss": self.url, "sub": sub, "aud": "convex", "iat": n, "nbf": n - 5, "exp": n + 60, "email": "t@example.com", "email_verified": true})
    }
}

/// Starts the real idp on 127.0.0.1:0 with state in a fresh temporary directory.
pub async fn start_idp(
    adjust: impl FnOnce(&mut keel_idp::IdpConfig),
) -> (keel_idp::Idp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (idp, _) = start_idp_in(dir.path(), adjust).await;
    (idp, dir)
}

pub async fn start_idp_in(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut keel_idp::IdpConfig),
) -> (keel_idp::Idp, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = keel_idp::IdpConfig::new(dir);
    adjust(&mut config);
    let idp = keel_idp::Idp::open(config, addr).unwrap();
    tokio::spawn(idp.clone().serve(listener));
    (idp, addr)
}

/// Creates a user with a session in `idp`; returns (user id, session id).
pub async fn user_with_session(idp: &keel_idp::Idp, email: &str) -> (String, String) {
    let user = idp
        .create_user(keel_idp::NewUser {
            email_addresses: vec![email.to_owned()],
            password: Some("correct horse battery".to_owned()),
            first_name: Some("Ada".to_owned()),
            last_name: Some("Lovelace".to_owned()),
            username: Some("ada".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let session = idp.create_session(&user.id).unwrap();
    (user.id, session.id)
}
