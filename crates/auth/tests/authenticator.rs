//! The web tier's authenticators against the real idp on 127.0.0.1: the local-idp cookie flow
//! (sign-up, sign-in, refresh through `__client`, sign-out, revocation) and the real-Clerk
//! authenticator pointed at the idp's Backend API.

mod common;

use std::time::{Duration, Instant};

use common::{start_idp, user_with_session};
use http::HeaderMap;
use keel_auth::{
    AuthConfig, AuthError, Authenticator, ClerkAuthenticator, ClerkConfig, InstanceType,
    LocalIdpAuthenticator, LocalIdpConfig, ProviderConfig, PublishableKey, SignUp, TokenVerifier,
};

/// Turns `Set-Cookie` values into a `Cookie` request header (dropping deleted cookies).
fn cookie_header(set_cookies: &[String]) -> HeaderMap {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap())
        .collect();
    let mut h = HeaderMap::new();
    if !pairs.is_empty() {
        h.insert(http::header::COOKIE, pairs.join("; ").parse().unwrap());
    }
    h
}

fn with_cookie(pairs: &[(&str, &str)]) -> HeaderMap {
    let v: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut h = HeaderMap::new();
    h.insert(http::header::COOKIE, v.join("; ").parse().unwrap());
    h
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")) && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_owned())
}

fn clears(set_cookies: &[String], name: &str) -> bool {
    set_cookies
        .iter()
        .any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0"))
}

fn local(idp: &keel_idp::Idp) -> LocalIdpAuthenticator {
    LocalIdpAuthenticator::new(LocalIdpConfig::new(idp.issuer(), idp.secret_key()))
}

/// Creates `email` (password `long enough`) at the idp and signs in through `auth`.
async fn user_signed_in(
    idp: &keel_idp::Idp,
    auth: &LocalIdpAuthenticator,
    email: &str,
) -> keel_auth::Authentication {
    idp.create_user(keel_idp::NewUser {
        email_addresses: vec![email.into()],
        password: Some("long enough".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    auth.sign_in(email, "long enough", None).await.unwrap()
}

#[tokio::test]
async fn local_idp_sign_up_sign_in_and_tokens() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let signed_up = auth
        .sign_up(
            SignUp {
                email: "new@example.com".into(),
                password: "long enough".into(),
                first_name: Some("New".into()),
                last_name: None,
            },
            None,
        )
        .await
        .unwrap();
    assert!(signed_up.state.is_signed_in());
    let session_cookie = cookie_value(&signed_up.set_cookies, "__session").unwrap();
    let client_cookie = cookie_value(&signed_up.set_cookies, "__client").unwrap();
    assert!(
        signed_up
            .set_cookies
            .iter()
            .all(|c| c.contains("HttpOnly") && c.contains("SameSite=Lax"))
    );
    assert!(
        signed_up
            .set_cookies
            .iter()
            .any(|c| c.starts_with("__client=") && c.contains("Max-Age=2592000"))
    );

    // Next request: the cookies authenticate without refresh.
    let a = auth
        .authenticate(&cookie_header(&signed_up.set_cookies))
        .await
        .unwrap();
    assert_eq!(a.state.user_id, signed_up.state.user_id);
    assert!(a.state.session_id.as_deref().unwrap().starts_with("sess_"));
    assert_eq!(a.state.claims.as_ref().unwrap()["v"], 2);
    assert!(a.set_cookies.is_empty());

    // Tokens: the session token itself, and a convex template token the backend accepts.
    assert_eq!(
        auth.get_token(&a.state, None).await.unwrap().as_deref(),
        Some(session_cookie.as_str())
    );
    let convex = auth
        .get_token(&a.state, Some("convex"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        auth.get_token(&a.state, Some("convex"))
            .await
            .unwrap()
            .unwrap(),
        convex,
        "template token reused"
    );
    // A forced refresh (after the backend rejected a token) never hands back the cached one, and
    // what it mints is what later calls reuse.
    let fresh = auth
        .get_fresh_token(&a.state, Some("convex"))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(fresh, convex, "a fresh template token is minted");
    assert_eq!(
        auth.get_token(&a.state, Some("convex"))
            .await
            .unwrap()
            .unwrap(),
        fresh,
        "the fresh token replaces the cached one"
    );
    let backend = TokenVerifier::new(AuthConfig {
        providers: vec![ProviderConfig::Oidc {
            domain: idp.issuer().into(),
            application_id: "convex".into(),
        }],
    });
    let identity = backend.verify(&convex).await.unwrap();
    assert_eq!(Some(identity.subject.as_str()), a.state.user_id.as_deref());
    assert_eq!(
        identity.attributes.email.as_deref(),
        Some("new@example.com")
    );

    // Sign-in: right password works; wrong password and unknown email look the same.
    let signed_in = auth
        .sign_in("NEW@example.com", "long enough", None)
        .await
        .unwrap();
    assert_eq!(signed_in.state.user_id, signed_up.state.user_id);
    assert_ne!(signed_in.state.session_id, signed_up.state.session_id);
    for (email, password) in [
        ("new@example.com", "wrong password"),
        ("nobody@example.com", "long enough"),
    ] {
        let err = auth.sign_in(email, password, None).await.unwrap_err();
        assert_eq!(err, AuthError::InvalidCredentials);
        assert_eq!(err.to_string(), "Incorrect email or password");
    }
    // Sign-up errors carry the idp's (Clerk's) code and message.
    let err = auth
        .sign_up(
            SignUp {
                email: "new@example.com".into(),
                password: "long enough".into(),
                ..SignUp::default()
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::InputRefused { code, field: Some(field), .. }
            if code == "form_identifier_exists" && field == "email_address"),
        "{err}"
    );
    let err = auth
        .sign_up(
            SignUp {
                email: "short@example.com".into(),
                password: "short".into(),
                ..SignUp::default()
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::InputRefused { code, field: Some(field), .. }
            if code == "form_password_length_too_short" && field == "password"),
        "{err}"
    );

    // Signed out: no cookies, no token.
    let out = auth.authenticate(&HeaderMap::new()).await.unwrap();
    assert!(!out.state.is_signed_in() && out.set_cookies.is_empty());
    assert_eq!(
        auth.get_token(&out.state, Some("convex")).await.unwrap(),
        None
    );
    let _ = client_cookie;
}

#[tokio::test]
async fn local_idp_refreshes_an_expired_session_through_the_client_cookie() {
    let (idp, _dir) = start_idp(|c| c.session_token_ttl = Duration::from_secs(1)).await;
    let auth = local(&idp);
    let signed_in = user_signed_in(&idp, &auth, "r@example.com").await;
    let old_token = cookie_value(&signed_in.set_cookies, "__session").unwrap();
    let client = cookie_value(&signed_in.set_cookies, "__client").unwrap();

    // Missing __session + valid __client → a fresh token and a cookie to set.
    let a = auth
        .authenticate(&with_cookie(&[("__client", &client)]))
        .await
        .unwrap();
    assert!(a.state.is_signed_in());
    let fresh = cookie_value(&a.set_cookies, "__session").expect("a new __session cookie");
    assert_eq!(a.state.session_token.as_deref(), Some(fresh.as_str()));

    // Wait (bounded) until the old token is past exp + 5 s leeway, then it is refreshed too.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = auth
            .authenticate(&with_cookie(&[
                ("__session", &old_token),
                ("__client", &client),
            ]))
            .await
            .unwrap();
        assert!(a.state.is_signed_in());
        if let Some(new) = cookie_value(&a.set_cookies, "__session") {
            assert_ne!(new, old_token);
            assert_eq!(a.state.session_id, signed_in.state.session_id);
            break;
        }
        assert!(Instant::now() < deadline, "old session token never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Revoked session (e.g. signed out on another device) → signed out, cookies cleared.
    idp.revoke_session(signed_in.state.session_id.as_deref().unwrap())
        .unwrap();
    let a = auth
        .authenticate(&with_cookie(&[
            ("__session", &old_token),
            ("__client", &client),
        ]))
        .await
        .unwrap();
    assert!(!a.state.is_signed_in());
    assert!(clears(&a.set_cookies, "__session") && clears(&a.set_cookies, "__client"));
}

#[tokio::test]
async fn local_idp_sign_out_and_forged_client_cookies() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let signed_in = user_signed_in(&idp, &auth, "o@example.com").await;
    let sid = signed_in.state.session_id.clone().unwrap();
    let client = cookie_value(&signed_in.set_cookies, "__client").unwrap();

    // A forged __client (other session id, same shape) is refused and cleared.
    let forged = client.replacen(&sid, "sess_someoneelse", 1);
    let a = auth
        .authenticate(&with_cookie(&[("__client", &forged)]))
        .await
        .unwrap();
    assert!(!a.state.is_signed_in());
    assert!(clears(&a.set_cookies, "__client"));
    // A client cookie made with another secret key is refused as well.
    let other = LocalIdpAuthenticator::new(LocalIdpConfig::new(idp.issuer(), "sk_test_other"));
    assert!(
        !other
            .authenticate(&with_cookie(&[("__client", &client)]))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );

    // Bearer: session tokens work, template tokens do not.
    let mut bearer = HeaderMap::new();
    bearer.insert(
        http::header::AUTHORIZATION,
        format!(
            "Bearer {}",
            signed_in.state.session_token.as_deref().unwrap()
        )
        .parse()
        .unwrap(),
    );
    assert!(
        auth.authenticate(&bearer)
            .await
            .unwrap()
            .state
            .is_signed_in()
    );
    let template = idp.template_token(&sid, "convex", None).unwrap();
    bearer.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {template}").parse().unwrap(),
    );
    assert!(
        !auth
            .authenticate(&bearer)
            .await
            .unwrap()
            .state
            .is_signed_in()
    );

    // Sign-out revokes the session at the idp and clears both cookies.
    let cleared = auth
        .sign_out(&cookie_header(&signed_in.set_cookies))
        .await
        .unwrap();
    assert!(clears(&cleared, "__session") && clears(&cleared, "__client"));
    assert_eq!(
        idp.session(&sid).unwrap().status,
        keel_idp::SessionStatus::Revoked
    );
    let a = auth
        .authenticate(&with_cookie(&[("__client", &client)]))
        .await
        .unwrap();
    assert!(!a.state.is_signed_in());
}

#[tokio::test]
async fn identity_service_answers_are_read_as_their_meaning() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let auth = local(&idp);
    let signed_in = user_signed_in(&idp, &auth, "m@example.com").await;
    let sid = signed_in.state.session_id.clone().unwrap();
    // A template the instance does not have is a configuration error, not a signed-out user.
    let err = auth
        .get_token(&signed_in.state, Some("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Config(message) if message.contains("`nope`")),
        "{err}"
    );
    // Once the session is revoked elsewhere, minting says the session ended.
    idp.revoke_session(&sid).unwrap();
    let err = auth
        .get_fresh_token(&signed_in.state, Some("convex"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::SessionEnded { .. }), "{err}");
    assert_eq!(err.code(), "SessionEnded");
    // The Backend API says the same about a session it never had.
    let err = auth
        .backend_api()
        .session_token("sess_never")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::SessionEnded { .. }), "{err}");
    // Signing out an ended session is fine.
    assert!(
        auth.sign_out(&cookie_header(&signed_in.set_cookies))
            .await
            .is_ok()
    );
}

fn clerk_config(idp: &keel_idp::Idp) -> ClerkConfig {
    let host = idp.issuer().trim_start_matches("http://").to_owned();
    ClerkConfig {
        publishable_key: PublishableKey::encode(InstanceType::Development, &host),
        secret_key: idp.secret_key().to_owned(),
        jwt_key: None,
        api_url: idp.issuer().to_owned(),
        authorized_parties: Vec::new(),
        issuer: None,
    }
}

#[tokio::test]
async fn clerk_authenticator_against_the_idp() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let (user_id, sid) = user_with_session(&idp, "c@example.com").await;
    let config = clerk_config(&idp);
    let clerk = ClerkAuthenticator::new(config.clone()).unwrap();
    assert_eq!(
        clerk.publishable_key().frontend_api,
        idp.issuer().trim_start_matches("http://")
    );
    let token = idp.session_token(&sid, None).unwrap();

    // `__session` cookie.
    let a = clerk
        .authenticate(&with_cookie(&[("__session", &token)]))
        .await
        .unwrap();
    assert_eq!(a.state.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(a.state.session_id.as_deref(), Some(sid.as_str()));
    // The suffixed cookie wins over a stale unsuffixed one.
    let suffixed = format!("__session_{}", clerk.publishable_key().cookie_suffix());
    let a = clerk
        .authenticate(&with_cookie(&[
            ("__session", "stale.garbage.token"),
            (&suffixed, &token),
        ]))
        .await
        .unwrap();
    assert!(a.state.is_signed_in());
    // `__client_uat` (clerk-js's record of the browser's last sign-in or sign-out): a cookie
    // token minted before it, or any once it says signed out (0), is stale; one minted after
    // it is good. A bearer token is never checked against it.
    let iat = a.state.claims.as_ref().unwrap()["iat"].as_i64().unwrap();
    let uat_suffixed = format!("__client_uat_{}", clerk.publishable_key().cookie_suffix());
    for (name, uat, signed_in) in [
        ("__client_uat", iat - 5, true),
        ("__client_uat", iat + 5, false),
        ("__client_uat", 0, false),
        (uat_suffixed.as_str(), iat + 5, false),
        ("__client_uat", -1, false),
    ] {
        let uat = uat.to_string();
        let a = clerk
            .authenticate(&with_cookie(&[("__session", &token), (name, &uat)]))
            .await
            .unwrap();
        assert_eq!(
            a.state.is_signed_in(),
            signed_in,
            "{name}={uat} (iat {iat})"
        );
    }
    let garbled = clerk
        .authenticate(&with_cookie(&[
            ("__session", &token),
            ("__client_uat", "soon"),
        ]))
        .await
        .unwrap();
    assert!(
        garbled.state.is_signed_in(),
        "an unreadable __client_uat is ignored"
    );
    // Bearer.
    let mut bearer = HeaderMap::new();
    bearer.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    for uat in [None, Some("__client_uat=0")] {
        if let Some(cookie) = uat {
            bearer.insert(http::header::COOKIE, cookie.parse().unwrap());
        }
        let a = clerk.authenticate(&bearer).await.unwrap();
        assert!(a.state.is_signed_in(), "bearer with {uat:?}");
    }
    // Template tokens through POST /v1/sessions/{sid}/tokens/convex.
    let convex = clerk
        .get_token(&a.state, Some("convex"))
        .await
        .unwrap()
        .unwrap();
    let backend = TokenVerifier::new(AuthConfig {
        providers: vec![ProviderConfig::Oidc {
            domain: idp.issuer().into(),
            application_id: "convex".into(),
        }],
    });
    assert_eq!(backend.verify(&convex).await.unwrap().subject, user_id);
    // A template token is not a session token; garbage signs out without an error.
    assert!(
        !clerk
            .authenticate(&with_cookie(&[("__session", &convex)]))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );
    assert!(
        !clerk
            .authenticate(&with_cookie(&[("__session", "x")]))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );

    // Wrong secret key: verification (JWKS) fails loudly, not as "signed out".
    let wrong = ClerkAuthenticator::new(ClerkConfig {
        secret_key: "sk_test_wrong".into(),
        ..config.clone()
    })
    .unwrap();
    let err = wrong
        .authenticate(&with_cookie(&[("__session", &token)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "KeySourceUnavailable", "{err}");
    let err = wrong.get_token(&a.state, Some("convex")).await.unwrap_err();
    assert!(
        matches!(err, AuthError::BackendApi { status: 401, .. }),
        "{err}"
    );

    // azp allow-list.
    let strict = ClerkAuthenticator::new(ClerkConfig {
        authorized_parties: vec!["http://app.example".into()],
        ..config.clone()
    })
    .unwrap();
    assert!(
        !strict
            .authenticate(&with_cookie(&[("__session", &token)]))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );
    let good = idp.session_token(&sid, Some("http://app.example")).unwrap();
    assert!(
        strict
            .authenticate(&with_cookie(&[("__session", &good)]))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );
    let other = idp
        .session_token(&sid, Some("http://evil.example"))
        .unwrap();
    assert!(
        !strict
            .authenticate(&with_cookie(&[("__session", &other)]))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );
}

#[tokio::test]
async fn clerk_authenticator_networkless_with_jwt_key() {
    let (idp, _dir) = start_idp(|_| {}).await;
    let (user_id, sid) = user_with_session(&idp, "n@example.com").await;
    let token = idp.session_token(&sid, None).unwrap();
    // The API URL points nowhere: verification must not need the network.
    let pem = idp.public_key_pem().unwrap().replace('\n', "\\n");
    let clerk = ClerkAuthenticator::new(ClerkConfig {
        jwt_key: Some(pem),
        api_url: "http://127.0.0.1:9".into(),
        ..clerk_config(&idp)
    })
    .unwrap();
    let a = clerk
        .authenticate(&with_cookie(&[("__session", &token)]))
        .await
        .unwrap();
    assert_eq!(a.state.user_id.as_deref(), Some(user_id.as_str()));
    // Bad configuration is reported clearly.
    let err = ClerkAuthenticator::new(ClerkConfig {
        jwt_key: Some("not a pem".into()),
        ..clerk_config(&idp)
    })
    .unwrap_err();
    assert!(err.to_string().contains("CLERK_JWT_KEY"), "{err}");
    let err = ClerkAuthenticator::new(ClerkConfig {
        secret_key: "nope".into(),
        ..clerk_config(&idp)
    })
    .unwrap_err();
    assert!(err.to_string().contains("CLERK_SECRET_KEY"), "{err}");
}

#[tokio::test]
async fn unknown_emails_are_rate_limited_like_known_ones() {
    let (idp, _dir) = start_idp(|c| {
        c.password_rate_limit_per_user = keel_idp::RateLimit {
            burst: 2,
            refill_every: Duration::from_secs(3600),
        };
    })
    .await;
    let auth = local(&idp);
    idp.create_user(keel_idp::NewUser {
        email_addresses: vec!["k@example.com".into()],
        password: Some("long enough".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let outcome = |r: Result<keel_auth::Authentication, AuthError>| match r {
        Ok(_) => "signed in".to_owned(),
        Err(e) => e.code().to_owned(),
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        known.push(outcome(
            auth.sign_in("k@example.com", "wrong password", None).await,
        ));
        unknown.push(outcome(
            auth.sign_in("ghost@example.com", "wrong password", None)
                .await,
        ));
    }
    assert_eq!(
        known,
        ["InvalidCredentials", "InvalidCredentials", "Throttled"]
    );
    assert_eq!(
        unknown, known,
        "an unknown address must look exactly like a known one"
    );
    // The limit is per address: another unknown address is not affected.
    assert_eq!(
        outcome(
            auth.sign_in("other@example.com", "wrong password", None)
                .await
        ),
        "InvalidCredentials"
    );
}

#[tokio::test]
async fn local_idp_origin_becomes_azp_and_is_enforced() {
    let (idp, _dir) = start_idp(|_| {}).await;
    idp.create_user(keel_idp::NewUser {
        email_addresses: vec!["z@example.com".into()],
        password: Some("long enough".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut config = LocalIdpConfig::new(idp.issuer(), idp.secret_key());
    config.origin = Some("http://127.0.0.1:3000".into());
    config.authorized_parties = vec!["http://127.0.0.1:3000".into()];
    let auth = LocalIdpAuthenticator::new(config.clone());
    let signed_in = auth
        .sign_in("z@example.com", "long enough", None)
        .await
        .unwrap();
    assert_eq!(
        signed_in.state.claims.as_ref().unwrap()["azp"],
        "http://127.0.0.1:3000"
    );
    assert!(
        auth.authenticate(&cookie_header(&signed_in.set_cookies))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );
    // A token minted for another origin is refused by this web tier.
    let foreign = idp
        .session_token(
            signed_in.state.session_id.as_deref().unwrap(),
            Some("http://evil.example"),
        )
        .unwrap();
    assert!(
        !auth
            .authenticate(&with_cookie(&[("__session", &foreign)]))
            .await
            .unwrap()
            .state
            .is_signed_in()
    );
}
