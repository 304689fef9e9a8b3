//! One test body run on both stores: the SQLite file (the default) and a PostgreSQL database
//! (`--database-url postgres://…`, a fresh namespace on the test server). Users with metadata,
//! email addresses and their codes, passwords, sessions, JWT templates, TOTP and backup codes,
//! deletion — and all of it still there when the idp is opened again.

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::pg::TestDatabase;
use keel_idp::{
    Idp, IdpConfig, JwtTemplateDraft, NewUser, SessionStatus, TEST_CODE, TotpSecret, UserListQuery,
    UserUpdate,
};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

fn open(dir: &std::path::Path, database_url: Option<&str>) -> Idp {
    let mut config = IdpConfig::new(dir);
    config.database_url = database_url.map(str::to_owned);
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    Idp::open(config, addr).unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn list(idp: &Idp, query: UserListQuery) -> Vec<String> {
    idp.list_users(&query)
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect()
}

async fn behaves_as_a_store(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let idp = open(dir.path(), database_url);

    // Users with addresses (lower-cased, primary first) and metadata.
    let ada = idp
        .create_user(NewUser {
            email_addresses: vec![
                "Ada+clerk_test@Example.com".into(),
                "ada@second.example".into(),
            ],
            password: Some(PASSWORD.into()),
            first_name: Some("Ada".into()),
            username: Some("ada".into()),
            reserve_email_addresses: true,
            public_metadata: Some(json!({"plan": "pro"})),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let addresses: Vec<&str> = ada
        .email_addresses
        .iter()
        .map(|e| e.email_address.as_str())
        .collect();
    assert_eq!(
        addresses,
        ["ada+clerk_test@example.com", "ada@second.example"]
    );
    assert!(!ada.email_addresses[0].is_verified());
    assert_eq!(ada.public_metadata, json!({"plan": "pro"}));

    // An address belongs to one user only; nothing of the refused user is kept.
    let taken = idp
        .create_user(NewUser {
            email_addresses: vec!["carol@example.com".into(), "ADA@second.example".into()],
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code, "form_identifier_exists");
    assert!(idp.user_by_email("carol@example.com").unwrap().is_none());
    let bob = idp
        .create_user(NewUser {
            email_addresses: vec!["bob@example.com".into()],
            last_name: Some("Builder".into()),
            ..NewUser::default()
        })
        .await
        .unwrap();

    // Listing: search, order, paging, filters, counts.
    let search = |q: &str| UserListQuery {
        query: Some(q.into()),
        ..UserListQuery::default()
    };
    // "ADA@" (not "ADA": a random user id may hold those letters) — the search ignores case.
    assert_eq!(list(&idp, search("ADA@")), [ada.id.as_str()]);
    assert_eq!(list(&idp, search("build")), [bob.id.as_str()]);
    assert_eq!(list(&idp, search("100%")), Vec::<String>::new());
    let oldest_first = UserListQuery {
        order_by: Some("+created_at".into()),
        ..UserListQuery::default()
    };
    assert_eq!(
        list(&idp, oldest_first.clone()),
        [ada.id.as_str(), bob.id.as_str()]
    );
    let page = UserListQuery {
        limit: Some(1),
        offset: Some(1),
        ..oldest_first
    };
    assert_eq!(list(&idp, page), [bob.id.as_str()]);
    let by_address = UserListQuery {
        email_addresses: vec!["bob@example.com".into(), "nobody@example.com".into()],
        ..UserListQuery::default()
    };
    assert_eq!(idp.count_users(&by_address).unwrap(), 1);
    assert_eq!(idp.count_users(&UserListQuery::default()).unwrap(), 2);

    // Changes.
    let changed = idp
        .update_user(
            &ada.id,
            UserUpdate {
                last_name: Some("Lovelace".into()),
                private_metadata: Some(json!({"tier": 2})),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.full_name().as_deref(), Some("Ada Lovelace"));
    assert_eq!(changed.private_metadata, json!({"tier": 2}));
    assert_eq!(changed.public_metadata, json!({"plan": "pro"}));

    // Verification codes: a wrong one counts, the right one verifies.
    let email_id = ada.email_addresses[0].id.clone();
    idp.prepare_email_verification(&email_id).unwrap();
    let wrong = idp
        .attempt_email_verification(&email_id, "000000")
        .unwrap_err();
    assert_eq!(wrong.code, "form_code_incorrect");
    let pending = idp.user(&ada.id).unwrap().email_addresses[0].pending_code;
    assert_eq!(pending.map(|(attempts, _)| attempts), Some(1));
    let verified = idp
        .attempt_email_verification(&email_id, TEST_CODE)
        .unwrap();
    assert!(verified.email_addresses[0].is_verified());
    assert_eq!(verified.email_addresses[0].pending_code, None);

    // Passwords and sessions.
    assert!(idp.verify_password(&ada.id, PASSWORD, None).await.unwrap());
    assert!(
        !idp.verify_password(&ada.id, "wrong horse", None)
            .await
            .unwrap()
    );
    let first = idp.create_session(&ada.id).unwrap();
    let second = idp.create_session(&ada.id).unwrap();
    assert_eq!(
        idp.revoke_session(&first.id).unwrap().status,
        SessionStatus::Revoked
    );
    assert!(idp.session_token(&first.id, None).is_err());
    let active: Vec<String> = idp
        .user_sessions(&ada.id, Some("active"))
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(active, [second.id.as_str()]);
    assert!(idp.user(&ada.id).unwrap().last_sign_in_at.is_some());
    let third = idp.create_session(&ada.id).unwrap();
    assert_eq!(idp.sign_out_everywhere(&ada.id).unwrap().len(), 2);
    assert_eq!(
        idp.session(&third.id).unwrap().status,
        SessionStatus::Revoked
    );

    // JWT templates: unique names, renames, tokens.
    let template = idp
        .create_jwt_template(JwtTemplateDraft {
            name: Some("app".into()),
            claims: Some(json!({"plan": "{{user.public_metadata.plan}}"})),
            lifetime: Some(120),
            ..JwtTemplateDraft::default()
        })
        .unwrap();
    let again = idp
        .create_jwt_template(JwtTemplateDraft {
            name: Some("app".into()),
            claims: Some(json!({})),
            ..JwtTemplateDraft::default()
        })
        .unwrap_err();
    assert_eq!(again.status, 422, "{again}");
    let rename = idp
        .update_jwt_template(
            &template.id,
            JwtTemplateDraft {
                name: Some("convex".into()),
                claims: Some(json!({})),
                ..JwtTemplateDraft::default()
            },
        )
        .unwrap_err();
    assert_eq!(rename.status, 422, "{rename}");
    let (templates, total) = idp.jwt_templates(10, 0).unwrap();
    assert_eq!(total, 2);
    assert_eq!(templates[1].name, "app");
    let session = idp.create_session(&ada.id).unwrap();
    assert!(idp.template_token(&session.id, "app", None).is_ok());

    // TOTP and backup codes: each code works once.
    let enrolment = idp.create_totp(&bob.id).unwrap();
    let secret = TotpSecret::from_base32(enrolment.secret.as_deref().unwrap()).unwrap();
    let now = now_secs();
    let confirmed = idp
        .confirm_totp(&bob.id, &secret.code_at(now), None)
        .unwrap();
    let backup = confirmed.backup_codes.unwrap();
    assert!(idp.user(&bob.id).unwrap().two_factor.totp);
    let replay = idp
        .verify_second_factor(&bob.id, &secret.code_at(now), None)
        .unwrap_err();
    assert_eq!(replay.code, "form_code_incorrect", "{replay}");
    assert!(idp.verify_second_factor(&bob.id, &backup[0], None).is_ok());
    assert!(idp.verify_second_factor(&bob.id, &backup[0], None).is_err());

    // All of it survives reopening; the keys and secrets are the same.
    let kid = idp.active_kid();
    let secret_key = idp.secret_key().to_owned();
    drop(idp);
    let idp = open(dir.path(), database_url);
    assert_eq!(idp.active_kid(), kid);
    assert_eq!(idp.secret_key(), secret_key);
    let ada_again = idp.user(&ada.id).unwrap();
    assert_eq!(ada_again.private_metadata, json!({"tier": 2}));
    assert!(ada_again.email_addresses[0].is_verified());
    assert!(idp.verify_password(&ada.id, PASSWORD, None).await.unwrap());
    assert_eq!(idp.jwt_template(&template.id).unwrap().name, "app");
    assert!(idp.user(&bob.id).unwrap().two_factor.enabled());

    // Deleting a user frees their addresses.
    idp.delete_user(&bob.id).unwrap();
    assert!(idp.user(&bob.id).is_err());
    idp.create_user(NewUser {
        email_addresses: vec!["bob@example.com".into()],
        ..NewUser::default()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_sqlite_store() {
    behaves_as_a_store(None).await;
}

#[tokio::test]
async fn the_postgres_store() {
    let db = TestDatabase::new();
    behaves_as_a_store(Some(&db.url)).await;
}
