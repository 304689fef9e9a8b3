//! Several idps on one PostgreSQL database (`--database-url`), in one test process: they agree
//! on the secret keys and the signing keys, see each other's users, coordinate key rotation,
//! take an existing `idp.sqlite3` across once, and refuse bad URLs at start with a clear
//! error. (Two real `keel idp` processes: `apps/posts/tests/idp_postgres.rs`.)

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::pg::TestDatabase;
use keel_idp::{Idp, IdpConfig, JwtTemplateDraft, NewUser};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

/// Every wait for another idp to see a change.
const WAIT: Duration = Duration::from_secs(15);

fn open(dir: &Path, database_url: Option<&str>) -> Result<Idp, keel_idp::IdpError> {
    let mut config = IdpConfig::new(dir);
    config.database_url = database_url.map(str::to_owned);
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    Idp::open(config, addr)
}

fn kids(idp: &Idp) -> Vec<String> {
    idp.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn new_user(idp: &Idp, email: &str) -> keel_idp::User {
    idp.create_user(NewUser {
        email_addresses: vec![email.into()],
        password: Some(PASSWORD.into()),
        ..NewUser::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn idps_on_one_database_share_users_secrets_and_keys() {
    let db = TestDatabase::new();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(dir_a.path(), Some(&db.url)).unwrap();
    let b = open(dir_b.path(), Some(&db.url)).unwrap();
    assert_eq!(a.secret_key(), b.secret_key());
    assert_eq!(a.webhook_secret(), b.webhook_secret());
    // The files hold the shared secrets, for the tools that read them there.
    let file = std::fs::read_to_string(dir_b.path().join("idp/secret_key")).unwrap();
    assert_eq!(file.trim(), a.secret_key());
    assert_eq!(a.active_kid(), b.active_kid());

    let ada = new_user(&a, "ada@example.com").await;
    let seen = b.user_by_email("ada@example.com").unwrap().unwrap();
    assert_eq!(seen.id, ada.id);
    assert!(b.verify_password(&ada.id, PASSWORD, None).await.unwrap());
    let session = b.create_session(&ada.id).unwrap();
    assert_eq!(a.session(&session.id).unwrap().user_id, ada.id);
    a.revoke_session(&session.id).unwrap();
    assert!(b.session_token(&session.id, None).is_err());

    // A template made on one mints on the other.
    a.create_jwt_template(JwtTemplateDraft {
        name: Some("shared".into()),
        claims: Some(json!({"aud": "app"})),
        ..JwtTemplateDraft::default()
    })
    .unwrap();
    let live = b.create_session(&ada.id).unwrap();
    assert!(b.template_token(&live.id, "shared", None).is_ok());
}

#[tokio::test]
async fn a_rotation_on_one_idp_reaches_the_others() {
    let db = TestDatabase::new();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(dir_a.path(), Some(&db.url)).unwrap();
    let b = open(dir_b.path(), Some(&db.url)).unwrap();
    let old = a.active_kid();
    let new = a.rotate_signing_key().unwrap();
    let deadline = Instant::now() + WAIT;
    while b.active_kid() != new {
        assert!(
            Instant::now() < deadline,
            "b never took up the new key {new}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both keys stay published on both: tokens signed with the old one are still valid.
    for idp in [&a, &b] {
        let published = kids(idp);
        assert!(
            published.contains(&old) && published.contains(&new),
            "{published:?}"
        );
    }

    // Rotations at the same moment on both still leave exactly one active key.
    let (a2, b2) = (a.clone(), b.clone());
    let rotations = [
        tokio::task::spawn_blocking(move || a2.rotate_signing_key().unwrap()),
        tokio::task::spawn_blocking(move || b2.rotate_signing_key().unwrap()),
    ];
    let mut made = Vec::new();
    for rotation in rotations {
        made.push(rotation.await.unwrap());
    }
    let active = db.query("SELECT kid FROM signing_keys WHERE publish_until IS NULL");
    assert_eq!(active.len(), 1, "{active:?}");
    assert!(made.contains(&active[0]));
    let deadline = Instant::now() + WAIT;
    while a.active_kid() != active[0] || b.active_kid() != active[0] {
        assert!(
            Instant::now() < deadline,
            "the idps never agreed on {}",
            active[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_existing_sqlite_file_is_copied_once() {
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open(dir.path(), None).unwrap();
    let ada = new_user(&sqlite, "ada@example.com").await;
    let bob = new_user(&sqlite, "bob@example.com").await;
    let session = sqlite.create_session(&ada.id).unwrap();
    let template = sqlite
        .create_jwt_template(JwtTemplateDraft {
            name: Some("app".into()),
            claims: Some(json!({"role": "reader"})),
            ..JwtTemplateDraft::default()
        })
        .unwrap();
    let retired = sqlite.active_kid();
    let kid = sqlite.rotate_signing_key().unwrap();
    let secret_key = sqlite.secret_key().to_owned();
    drop(sqlite);

    let pg = open(dir.path(), Some(&db.url)).unwrap();
    assert_eq!(pg.secret_key(), secret_key);
    assert_eq!(pg.active_kid(), kid);
    assert!(kids(&pg).contains(&retired));
    assert!(pg.verify_password(&ada.id, PASSWORD, None).await.unwrap());
    assert_eq!(pg.session(&session.id).unwrap().user_id, ada.id);
    assert!(pg.session_token(&session.id, None).is_ok());
    assert_eq!(
        pg.jwt_template(&template.id).unwrap().claims,
        json!({"role": "reader"})
    );
    assert_eq!(db.query("SELECT count(*) FROM users"), ["2"]);
    let marker = db.query("SELECT value FROM settings WHERE name = 'copied_from_sqlite'");
    assert_eq!(marker.len(), 1);
    assert!(marker[0].contains("2 users"), "{marker:?}");

    // Never twice: what changed in PostgreSQL stays changed, though the file is still there.
    pg.delete_user(&bob.id).unwrap();
    drop(pg);
    let pg = open(dir.path(), Some(&db.url)).unwrap();
    assert!(pg.user(&bob.id).is_err());
    assert_eq!(db.query("SELECT count(*) FROM users"), ["1"]);

    // Another data directory's file is not merged into a database already in use.
    let other = tempfile::tempdir().unwrap();
    let carol = new_user(&open(other.path(), None).unwrap(), "carol@example.com").await;
    let pg_other = open(other.path(), Some(&db.url)).unwrap();
    assert!(pg_other.user(&carol.id).is_err());
    assert_eq!(pg_other.secret_key(), secret_key);
}

#[tokio::test]
async fn bad_database_urls_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |url: &str| match open(dir.path(), Some(url)) {
        Ok(_) => panic!("{url} was accepted"),
        Err(e) => {
            assert_eq!(e.code(), "IdpConfig", "{e}");
            e.to_string()
        }
    };
    let unreachable = refused("postgres://keel:hunter2@127.0.0.1:1/test?connect_timeout=5");
    assert!(unreachable.contains("--database-url"), "{unreachable}");
    assert!(
        unreachable.contains("postgres://keel@127.0.0.1:1/test"),
        "{unreachable}"
    );
    assert!(!unreachable.contains("hunter2"), "{unreachable}");
    let malformed = refused("postgres://keel@127.0.0.1/test?no_such_option=1");
    assert!(malformed.contains("not a PostgreSQL URL"), "{malformed}");
    let schema = refused("postgres://keel@127.0.0.1/test?schema=Robert');DROP");
    assert!(schema.contains("schema"), "{schema}");
    let mode = refused("postgres://keel@127.0.0.1/test?sslmode=sometimes");
    assert!(mode.contains("sslmode"), "{mode}");
    let roots =
        refused("postgres://keel@127.0.0.1/test?sslmode=verify-ca&sslrootcert=%2Fno%2Froot.crt");
    assert!(roots.contains("sslrootcert"), "{roots}");
    // Nothing was created on the way: the SQLite default still opens as before.
    assert!(open(dir.path(), None).is_ok());
}

/// TLS as the backend's engine does it (libpq's `sslmode`): with `require` the idp's connection
/// is encrypted, with `disable` it is not; a server without TLS refuses `require` clearly.
#[tokio::test]
async fn the_idps_connection_follows_sslmode() {
    for (mode, encrypted) in [("require", "t"), ("disable", "f")] {
        let db = TestDatabase::new();
        let ssl_on = db.query("SHOW ssl");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{}&sslmode={mode}", db.url);
        let opened = open(dir.path(), Some(&url));
        if ssl_on != ["on"] && mode == "require" {
            let error = opened
                .err()
                .expect("require needs a server with TLS")
                .to_string();
            assert!(error.contains("--database-url"), "{error}");
            continue;
        }
        let idp = opened.unwrap();
        new_user(&idp, &format!("tls-{mode}@example.com")).await;
        let seen = db.query(&format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'keel idp {}'",
            db.idp_schema
        ));
        assert_eq!(seen, [encrypted], "sslmode={mode}");
        drop(idp);
    }
}
