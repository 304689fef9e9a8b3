//! TokenVerifier against real issuers on 127.0.0.1: the security table, two providers at once,
//! the verified-token cache, JWKS caching and refetch, and key rotation in the idp.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{EcKey, RsaKey, TestIssuer, b64, now, start_idp, user_with_session};
use keel_auth::{
    AuthConfig, AuthError, ProviderConfig, SigningAlgorithm, TokenVerifier, VerifierOptions,
};
use serde_json::json;

fn oidc(domain: &str) -> ProviderConfig {
    ProviderConfig::Oidc {
        domain: domain.to_owned(),
        application_id: "convex".to_owned(),
    }
}

fn verifier(providers: Vec<ProviderConfig>) -> TokenVerifier {
    TokenVerifier::new(AuthConfig { providers })
}

#[tokio::test]
async fn security_table_each_bad_token_has_its_own_error() {
    let rsa = RsaKey::generate("rsa-1");
    let ec = EcKey::generate("ec-1");
    let issuer = TestIssuer::start(vec![rsa.jwk(), ec.jwk()], "public, max-age=300").await;
    let other = TestIssuer::start(vec![], "public, max-age=300").await;
    let v = verifier(vec![oidc(&issuer.url)]);
    let n = now();
    let claims = issuer.claims("user_1");
    let with = |patch: serde_json::Value| {
        let mut c = claims.clone();
        for (k, val) in patch.as_object().unwrap() {
            c[k] = val.clone();
        }
        c
    };
    let impostor = RsaKey::generate("rsa-1");
    let hs256 = {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","typ":"JWT","kid":"rsa-1"}"#),
            b64(claims.to_string().as_bytes())
        );
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret"),
            input.as_bytes(),
        );
        format!("{input}.{}", b64(tag.as_ref()))
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims.to_string().as_bytes())
    );
    let huge = format!("{}.{}.sig", b64(br#"{"alg":"RS256"}"#), "A".repeat(20_000));

    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("alg none", none, "UnsupportedAlgorithm", "`none`"),
        ("HS256", hs256, "UnsupportedAlgorithm", "`HS256`"),
        (
            "wrong key",
            impostor.sign(&claims),
            "InvalidSignature",
            "signature is invalid",
        ),
        (
            "wrong issuer",
            rsa.sign(&with(json!({"iss": other.url}))),
            "NoAuthProvider",
            "no provider has issuer",
        ),
        (
            "wrong audience",
            rsa.sign(&with(json!({"aud": "someone-else"}))),
            "NoAuthProvider",
            "does not contain the application id",
        ),
        (
            "expired",
            rsa.sign(&with(json!({"exp": n - 30}))),
            "TokenExpired",
            "token expired at",
        ),
        (
            "not yet valid",
            rsa.sign(&with(json!({"nbf": n + 60}))),
            "TokenNotYetValid",
            "not valid before",
        ),
        (
            "future iat",
            rsa.sign(&with(json!({"iat": n + 60}))),
            "TokenIssuedInFuture",
            "issued in the future",
        ),
        (
            "garbage",
            "this is not a token".to_owned(),
            "MalformedToken",
            "three base64url segments",
        ),
        (
            "garbage json",
            format!("{}.{}.c2ln", b64(b"{\"alg\":\"RS256\"}"), b64(b"[1,2]")),
            "MalformedToken",
            "payload is not a JSON object",
        ),
        ("huge", huge, "TokenTooLarge", "too large"),
        (
            "unknown kid",
            rsa.sign_with_header(&json!({"alg": "RS256", "kid": "nope"}), &claims),
            "UnknownSigningKey",
            "kid `nope`",
        ),
        (
            "ES256 signed, RSA kid",
            ec.sign_with_header(&json!({"alg": "ES256", "kid": "rsa-1"}), &claims),
            "KeyAlgorithmMismatch",
            "RSA",
        ),
        (
            "RS256 claimed, EC kid",
            rsa.sign_with_header(&json!({"alg": "RS256", "kid": "ec-1"}), &claims),
            "KeyAlgorithmMismatch",
            "EC P-256",
        ),
        (
            "missing exp",
            rsa.sign(&with(json!({"exp": null}))),
            "MissingClaim",
            "`exp`",
        ),
        (
            "email_verified as string",
            rsa.sign(&with(json!({"email_verified": "true"}))),
            "InvalidClaim",
            "email_verified",
        ),
    ];
    let mut messages = std::collections::HashSet::new();
    for (name, token, code, fragment) in cases {
        let err = v.verify(&token).await.expect_err(name);
        let message = err.to_string();
        assert_eq!(err.code(), code, "{name}: {message}");
        assert!(
            message.contains(fragment),
            "{name}: {message:?} lacks {fragment:?}"
        );
        assert!(
            messages.insert(message.clone()),
            "{name}: message not distinct: {message}"
        );
        if matches!(err, AuthError::Oidc(_)) {
            assert!(
                message.starts_with(keel_auth::OIDC_FAILURE_MESSAGE),
                "{name}: {message}"
            );
        }
        if code == "NoAuthProvider" {
            assert!(message.starts_with("No auth provider found matching the given token"));
        }
    }
    // And a good token still passes after all that.
    let id = v.verify(&rsa.sign(&claims)).await.unwrap();
    assert_eq!(id.token_identifier(), format!("{}|user_1", issuer.url));
    // EC-signed tokens are accepted for OIDC providers too.
    assert_eq!(v.verify(&ec.sign(&claims)).await.unwrap().subject, "user_1");
}

#[tokio::test]
async fn eddsa_tokens_are_accepted() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(pair.public_key().as_ref())});
    let issuer = TestIssuer::start(vec![jwk], "public, max-age=300").await;
    let claims = issuer.claims("user_ed");
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"EdDSA","kid":"ed-1"}"#),
        b64(claims.to_string().as_bytes())
    );
    let token = format!("{input}.{}", b64(pair.sign(input.as_bytes()).as_ref()));
    let v = verifier(vec![oidc(&issuer.url)]);
    assert_eq!(v.verify(&token).await.unwrap().subject, "user_ed");
    let mut forged = token.clone();
    forged.replace_range(
        input.len() + 1..input.len() + 3,
        if &token[input.len() + 1..input.len() + 3] == "AA" {
            "BB"
        } else {
            "AA"
        },
    );
    assert_eq!(
        v.verify(&forged).await.unwrap_err().code(),
        "InvalidSignature"
    );
}

#[tokio::test]
async fn garbage_never_panics() {
    let v = verifier(vec![oidc("http://127.0.0.1:9")]);
    let inputs = [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "e30.e30.",
        "e30.e30.e30",
        "\u{0}\u{1}.\u{ff}.x",
        "eyJhbGciOiJSUzI1NiJ9.%%%.abc",
    ];
    for input in inputs {
        let err = v.verify(input).await.expect_err(input);
        assert!(!err.to_string().is_empty());
    }
    // Valid shape, no issuer.
    let t = format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"RS256"}"#),
        b64(br#"{"sub":"x"}"#)
    );
    let err = v.verify(&t).await.unwrap_err();
    assert_eq!(err.code(), "NoAuthProvider");
    assert!(err.to_string().contains("no string `iss`"));
}

#[tokio::test]
async fn tokens_from_two_providers_are_accepted_idp_and_custom_jwt() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let (user_id, sid) = user_with_session(&idp, "ada@example.com").await;
    let custom_key = RsaKey::generate("custom-1");
    let jwks = json!({"keys": [custom_key.jwk()]}).to_string();
    let data_uri = format!(
        "data:text/plain;charset=utf-8;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jwks)
    );
    let v = verifier(vec![
        oidc(idp.issuer()),
        ProviderConfig::CustomJwt {
            issuer: "https://custom.example.com/".to_owned(),
            jwks: data_uri,
            algorithm: SigningAlgorithm::RS256,
            application_id: Some("my-app".to_owned()),
        },
    ]);

    let token = idp.template_token(&sid, "convex", None).unwrap();
    let id = v.verify(&token).await.unwrap();
    assert_eq!(id.token_identifier(), format!("{}|{user_id}", idp.issuer()));
    let json = id.to_json();
    assert_eq!(json["subject"], user_id.as_str());
    assert_eq!(json["issuer"], idp.issuer());
    assert_eq!(json["name"], "Ada Lovelace");
    assert_eq!(json["givenName"], "Ada");
    assert_eq!(json["familyName"], "Lovelace");
    assert_eq!(json["nickname"], "ada");
    assert_eq!(json["email"], "ada@example.com");
    assert_eq!(json["emailVerified"], true);
    assert!(json["updatedAt"].as_str().unwrap().ends_with('Z'));
    assert!(!json.contains_key("jti") && !json.contains_key("nbf") && !json.contains_key("aud"));
    assert!(id.expires_at() > std::time::SystemTime::now());

    let n = now();
    let custom = custom_key.sign(&json!({
        "iss": "https://custom.example.com", "sub": "u-7", "aud": ["my-app", "x"], "iat": n, "exp": n + 60,
        "jti": "j", "org": {"id": "o1", "role": "admin"}, "email": "c@example.com"
    }));
    let id = v.verify(&custom).await.unwrap();
    let json = id.to_json();
    assert_eq!(json["tokenIdentifier"], "https://custom.example.com|u-7");
    assert_eq!(json["org.id"], "o1");
    assert_eq!(json["org.role"], "admin");
    assert_eq!(json["email"], "c@example.com");
    assert!(
        id.attributes.email.is_none(),
        "customJwt keeps claims as custom claims"
    );
    assert!(!json.contains_key("jti"));

    // customJwt enforces its configured algorithm.
    let ec = EcKey::generate("custom-1");
    let err = v.verify(&ec.sign(&json!({"iss": "https://custom.example.com", "sub": "u", "aud": "my-app", "exp": n + 60}))).await.unwrap_err();
    assert_eq!(err.code(), "AlgorithmNotAllowed");
    assert!(err.to_string().starts_with("Could not validate token:"));

    // A session token (no `aud`) is not accepted by a provider that requires `convex`.
    let session_token = idp.session_token(&sid, None).unwrap();
    assert_eq!(
        v.verify(&session_token).await.unwrap_err().code(),
        "NoAuthProvider"
    );
}

#[tokio::test]
async fn verified_tokens_are_cached_until_expiry() {
    let rsa = RsaKey::generate("k");
    let issuer = TestIssuer::start(vec![rsa.jwk()], "public, max-age=300").await;
    let v = verifier(vec![oidc(&issuer.url)]);
    let token = rsa.sign(&issuer.claims("u"));
    let first = v.verify(&token).await.unwrap();
    assert_eq!(v.cached_token_count(), 1);
    let again = v.verify(&token).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(issuer.hits(), 1, "JWKS fetched once");
    // A cached token whose expiry (plus leeway) has passed is verified again — and rejected.
    let n = now();
    let short = rsa.sign(
        &json!({"iss": issuer.url, "sub": "u", "aud": "convex", "iat": n - 10, "exp": n - 4}),
    );
    v.verify(&short).await.unwrap();
    assert_eq!(v.cached_token_count(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match v.verify(&short).await {
            Ok(_) => assert!(
                std::time::Instant::now() < deadline,
                "cached token outlived its expiry"
            ),
            Err(e) => {
                assert_eq!(e.code(), "TokenExpired");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    v.forget_cached_tokens();
    assert_eq!(v.cached_token_count(), 0);
}

#[tokio::test]
async fn jwks_cache_honours_cache_control_and_unknown_kid_refetch_is_rate_limited() {
    let old = RsaKey::generate("old");
    let new = RsaKey::generate("new");
    // Cached for 5 minutes: a second, different token does not refetch.
    let issuer = TestIssuer::start(vec![old.jwk()], "public, max-age=300").await;
    let v = TokenVerifier::with_options(
        AuthConfig {
            providers: vec![oidc(&issuer.url)],
        },
        VerifierOptions {
            unknown_kid_refetch_interval: Duration::from_secs(3600),
            ..VerifierOptions::default()
        },
    );
    v.verify(&old.sign(&issuer.claims("a"))).await.unwrap();
    v.verify(&old.sign(&issuer.claims("b"))).await.unwrap();
    assert_eq!(issuer.hits(), 1);
    // The issuer publishes a new key: the unknown kid triggers one refetch…
    issuer.jwks.lock()["keys"] = json!([old.jwk(), new.jwk()]);
    v.verify(&new.sign(&issuer.claims("c"))).await.unwrap();
    assert_eq!(issuer.hits(), 2);
    // …but a flood of unknown kids does not hammer the issuer.
    for i in 0..5 {
        let t = old.sign_with_header(
            &json!({"alg": "RS256", "kid": format!("bogus-{i}")}),
            &issuer.claims("d"),
        );
        assert_eq!(v.verify(&t).await.unwrap_err().code(), "UnknownSigningKey");
    }
    assert_eq!(issuer.hits(), 2);

    // `no-store`: every uncached verification downloads the JWKS again.
    let uncached = TestIssuer::start(vec![old.jwk()], "no-store").await;
    let v = verifier(vec![oidc(&uncached.url)]);
    v.verify(&old.sign(&uncached.claims("a"))).await.unwrap();
    v.verify(&old.sign(&uncached.claims("b"))).await.unwrap();
    assert_eq!(uncached.hits(), 2);
}

#[tokio::test]
async fn idp_key_rotation_keeps_old_tokens_valid() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let (_, sid) = user_with_session(&idp, "rot@example.com").await;
    let v = verifier(vec![oidc(idp.issuer())]);
    let before = idp.template_token(&sid, "convex", None).unwrap();
    let old_kid = idp.active_kid();
    v.verify(&before).await.unwrap();
    let new_kid = idp.rotate_signing_key().unwrap();
    assert_ne!(old_kid, new_kid);
    assert!(new_kid.starts_with("ins_"));
    let kids: Vec<String> = idp.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, vec![old_kid, new_kid]);
    let after = idp.template_token(&sid, "convex", None).unwrap();
    v.verify(&after).await.unwrap();
    // A fresh verifier (cold cache) accepts both too.
    let cold = verifier(vec![oidc(idp.issuer())]);
    cold.verify(&before).await.unwrap();
    cold.verify(&after).await.unwrap();
}

#[tokio::test]
async fn discovery_issuer_mismatch_and_unreachable_issuer_are_clear() {
    let (idp, _dir) = start_idp(|c| c.issuer = Some("http://idp.invalid".to_owned())).await;
    let (_, sid) = user_with_session(&idp, "x@example.com").await;
    // The token names http://idp.invalid; configure a provider for it: discovery fails (no DNS).
    let token = idp.template_token(&sid, "convex", None).unwrap();
    let v = TokenVerifier::with_options(
        AuthConfig {
            providers: vec![oidc("http://idp.invalid")],
        },
        VerifierOptions {
            http_timeout: Duration::from_secs(3),
            ..VerifierOptions::default()
        },
    );
    let err = v.verify(&token).await.unwrap_err();
    assert_eq!(err.code(), "KeySourceUnavailable");
    assert!(
        err.to_string()
            .contains("http://idp.invalid/.well-known/openid-configuration")
    );
}
