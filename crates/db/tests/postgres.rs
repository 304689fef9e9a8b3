//! PostgreSQL specifics: the committer lease, restart, migrations, and connection errors. Each
//! test uses its own schema on the test server (`KEEL_TEST_POSTGRES_URL`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_db::persistence::{PostgresOptions, PostgresTestSchema};
use keel_db::{Database, Persistence, PostgresPersistence, Schema, TableSchema};
use keel_values::{Object, Value};

async fn test_schema() -> PostgresTestSchema {
    PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn schema() -> Schema {
    Schema::new().table("notes", TableSchema::new())
}

fn note(n: i64) -> Object {
    let mut o = Object::new();
    o.insert("n".into(), Value::Int64(n));
    o
}

/// A plain connection to the test server, beside the persistence under test.
async fn admin(pg: &PostgresTestSchema) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A database on `persistence` holding one committed note.
async fn with_one_note(persistence: &PostgresPersistence) -> Database {
    let db = Database::open(Arc::new(persistence.clone()), schema())
        .await
        .unwrap();
    let mut tx = db.begin();
    tx.insert("notes", note(1)).await.unwrap();
    db.commit(tx).await.unwrap();
    db
}

fn options(pg: &PostgresTestSchema, lease_wait: Duration) -> PostgresOptions {
    PostgresOptions {
        lease_wait,
        ..pg.options()
    }
}

#[tokio::test]
async fn a_second_committer_is_refused_until_the_first_lets_go() {
    let pg = test_schema().await;
    let first = pg.connect().await.unwrap();
    let started = Instant::now();
    let err = PostgresPersistence::connect_with(pg.url(), options(&pg, Duration::from_millis(300)))
        .await
        .err()
        .expect("the second committer must be refused");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waits for the lease first"
    );
    let text = err.to_string();
    assert!(
        text.contains("another backend holds the committer lease"),
        "{text}"
    );
    assert!(text.contains(pg.name()) && text.contains("since"), "{text}");
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "the message names the holder: {text}"
    );
    // Without waiting: refused at once.
    let err = PostgresPersistence::connect_with(pg.url(), options(&pg, Duration::ZERO))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("committer lease"), "{err}");
    // The first still writes.
    first.set_global("k", b"1".to_vec()).await.unwrap();

    // An explicit release hands the lease over; the old handle can no longer write.
    first.release().await.unwrap();
    let second = PostgresPersistence::connect_with(pg.url(), options(&pg, Duration::ZERO))
        .await
        .unwrap();
    let err = first.set_global("k", b"2".to_vec()).await.unwrap_err();
    assert!(err.to_string().contains("released"), "{err}");
    second.set_global("k", b"3".to_vec()).await.unwrap();
    assert_eq!(second.global("k").await.unwrap(), Some(b"3".to_vec()));

    // Dropping the holder ends its session, which releases the lease (waited for, not slept).
    drop(second);
    let third = PostgresPersistence::connect_with(pg.url(), options(&pg, Duration::from_secs(10)))
        .await
        .unwrap();
    third.set_global("k", b"4".to_vec()).await.unwrap();
    drop((first, third));
    pg.drop_schema().await;
}

#[tokio::test]
async fn a_holder_whose_lease_was_taken_over_stops_writing() {
    let pg = test_schema().await;
    let holder = pg.connect().await.unwrap();
    let db = with_one_note(&holder).await;
    // Another process rewrites the lease row (as a takeover does once it holds the lock).
    let client = admin(&pg).await;
    client
        .batch_execute(&format!(
            "UPDATE \"{}\".keel_leases SET lease_id = lease_id + 1",
            pg.name()
        ))
        .await
        .unwrap();
    let mut tx = db.begin();
    tx.insert("notes", note(2)).await.unwrap();
    let err = db.commit(tx).await.unwrap_err();
    assert!(
        err.to_string().contains("lost the committer lease"),
        "{err}"
    );
    let mut tx = db.begin();
    assert_eq!(
        tx.query("notes").collect().await.unwrap().len(),
        1,
        "nothing of the fenced commit"
    );
    drop((db, holder));
    pg.drop_schema().await;
}

#[tokio::test]
async fn data_and_timestamps_survive_reconnect() {
    let pg = test_schema().await;
    let persistence = Arc::new(pg.connect().await.unwrap());
    let db = Database::open(persistence.clone(), schema()).await.unwrap();
    let mut tx = db.begin();
    let id = tx.insert("notes", note(7)).await.unwrap();
    let first_ts = db.commit(tx).await.unwrap();
    drop(db);
    persistence.release().await.unwrap();
    drop(persistence);

    let persistence = Arc::new(pg.connect().await.unwrap());
    assert!(persistence.max_ts().await.unwrap() >= Some(first_ts));
    let db = Database::open(persistence.clone(), schema()).await.unwrap();
    let mut tx = db.begin();
    assert!(tx.snapshot_ts() >= first_ts);
    assert_eq!(
        tx.get(id).await.unwrap().unwrap().fields["n"],
        Value::Int64(7)
    );
    tx.insert("notes", note(8)).await.unwrap();
    let second_ts = db.commit(tx).await.unwrap();
    assert!(second_ts > first_ts, "{second_ts} after {first_ts}");
    drop(db);
    drop(persistence);
    pg.drop_schema().await;
}

#[tokio::test]
async fn migrations_are_recorded_and_newer_schemas_refused() {
    let pg = test_schema().await;
    let persistence = pg.connect().await.unwrap();
    persistence.release().await.unwrap();
    drop(persistence);
    let client = admin(&pg).await;
    let s = pg.name();
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM \"{s}\".keel_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    // Reconnecting applies nothing new.
    drop(pg.connect().await.unwrap());
    // A database at version 1 (as an earlier build left it) is upgraded at connect.
    client
        .batch_execute(&format!(
            "DELETE FROM \"{s}\".keel_migrations WHERE version >= 2;
             DROP TABLE \"{s}\".keel_members;
             DROP TABLE \"{s}\".keel_blob_chunks;
             DROP TABLE \"{s}\".keel_blobs;
             DROP INDEX \"{s}\".keel_documents_by_ts;
             ALTER TABLE \"{s}\".keel_leases DROP COLUMN address;"
        ))
        .await
        .unwrap();
    let upgraded = pg.connect().await.unwrap();
    upgraded
        .set_committer_address("http://[::1]:9")
        .await
        .unwrap();
    upgraded.release().await.unwrap();
    drop(upgraded);
    let count = client
        .query_one(
            &format!("SELECT count(*) FROM \"{s}\".keel_migrations WHERE version = 2"),
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(count, 1, "migration 2 was applied again");
    client
        .batch_execute(&format!(
            "INSERT INTO \"{s}\".keel_migrations (version) VALUES (999)"
        ))
        .await
        .unwrap();
    let err = pg.connect().await.err().expect("a newer schema is refused");
    assert!(err.to_string().contains("version 999"), "{err}");
    pg.drop_schema().await;
}

/// The test server's URL with another database name.
fn with_database(url: &str, database: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let (prefix, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{prefix}/{database}")
}

#[tokio::test]
async fn connection_errors_name_the_target_and_what_to_check() {
    let err = PostgresPersistence::connect("postgres://keel:sekret@127.0.0.1:1/test")
        .await
        .err()
        .expect("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("postgres://keel@127.0.0.1:1/test"), "{text}");
    assert!(text.contains("running"), "{text}");
    assert!(!text.contains("sekret"), "{text}");

    let url = with_database(&PostgresTestSchema::server_url(), "keel_no_such_database");
    let text = PostgresPersistence::connect(&url)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        text.contains("\"keel_no_such_database\" does not exist") && text.contains("createdb"),
        "{text}"
    );

    let text = PostgresPersistence::connect("postgres://a:sekret@127.0.0.1:notaport/x")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        text.contains("invalid PostgreSQL URL") && !text.contains("sekret"),
        "{text}"
    );

    let options = PostgresOptions {
        schema: "Bad-Name".into(),
        ..PostgresOptions::default()
    };
    let text = PostgresPersistence::connect_with(&PostgresTestSchema::server_url(), options)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(text.contains("invalid PostgreSQL schema name"), "{text}");
}

/// The same random history of revisions, moves and tombstones, written to PostgreSQL and SQLite,
/// reads back the same through many random scans (multi-page ones included) and point reads.
/// Scans `interval` of index 3 at `ts` on both stores, in a random order and with a limit
/// drawn from `limits`: they must return the same rows. Returns how many.
async fn same_scan(
    postgres: &PostgresPersistence,
    sqlite: &keel_db::SqlitePersistence,
    rng: &mut rand::rngs::StdRng,
    interval: &keel_db::Interval,
    ts: keel_db::Timestamp,
    limits: &[usize],
) -> usize {
    use keel_db::{IndexId, Order};
    use rand::Rng;
    let order = if rng.random() {
        Order::Asc
    } else {
        Order::Desc
    };
    let limit = limits[rng.random_range(0..limits.len())];
    let got = postgres
        .index_scan(IndexId(3), interval, ts, order, limit)
        .await
        .unwrap();
    let want = sqlite
        .index_scan(IndexId(3), interval, ts, order, limit)
        .await
        .unwrap();
    assert_eq!(got, want, "{interval:?} at {ts} {order:?} limit {limit}");
    got.len()
}

#[tokio::test]
async fn postgres_reads_match_sqlite_on_a_random_history() {
    use keel_db::persistence::{CommitRecord, DocumentRevision, IndexEntry};
    use keel_db::{Document, IndexId, Interval, SqlitePersistence, Timestamp};
    use keel_values::{DocumentId, TableNumber};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let pg = test_schema().await;
    let postgres = pg.connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let id = |n: u8| DocumentId::new(TableNumber(10001), [n; 16]);
    // Each document's current key in index 3 (None: deleted or never inserted) and last ts.
    let mut state: Vec<(Option<u8>, Option<u64>)> = vec![(None, None); 60];
    for ts in 1..=60u64 {
        let mut commit = CommitRecord {
            ts: Timestamp(ts * 10),
            ..CommitRecord::default()
        };
        for _ in 0..rng.random_range(5..30) {
            let n = rng.random_range(0..60u8);
            if commit.documents.iter().any(|r| r.id == id(n)) {
                continue;
            }
            let (key, prev) = state[n as usize];
            let new_key = (rng.random_range(0..4) > 0).then(|| rng.random_range(0..40u8));
            let document = new_key.map(|k| Document {
                id: id(n),
                creation_time: f64::from(n),
                fields: note(i64::from(k) * 1000 + ts as i64),
            });
            commit.documents.push(DocumentRevision {
                id: id(n),
                ts: commit.ts,
                document,
                prev_ts: prev.map(Timestamp),
            });
            let entry = |k: u8, doc: Option<DocumentId>| IndexEntry {
                index: IndexId(3),
                key: vec![k, n],
                ts: commit.ts,
                document: doc,
            };
            if let Some(old) = key.filter(|k| Some(*k) != new_key) {
                commit.index_entries.push(entry(old, None));
            }
            if let Some(k) = new_key {
                commit.index_entries.push(entry(k, Some(id(n))));
            }
            state[n as usize] = (new_key, Some(commit.ts.0));
        }
        postgres.write(vec![commit.clone()]).await.unwrap();
        sqlite.write(vec![commit]).await.unwrap();
    }
    assert_eq!(
        postgres.max_ts().await.unwrap(),
        sqlite.max_ts().await.unwrap()
    );
    let (mut rows, mut longest) = (0, 0);
    for _ in 0..200 {
        let ts = Timestamp(rng.random_range(0..620));
        let start = vec![rng.random_range(0..40u8)];
        let interval = match rng.random_range(0..3) {
            0 => Interval::all(),
            1 => Interval { start, end: None },
            _ => Interval {
                end: Some(vec![start[0].saturating_add(rng.random_range(0..20))]),
                start,
            },
        };
        let got = same_scan(
            &postgres,
            &sqlite,
            &mut rng,
            &interval,
            ts,
            &[1, 3, 17, 100, 5000],
        )
        .await;
        rows += got;
        longest = longest.max(got);
        let n = rng.random_range(0..60u8);
        assert_eq!(
            postgres.document_at(id(n), ts).await.unwrap(),
            sqlite.document_at(id(n), ts).await.unwrap()
        );
    }
    assert!(
        rows > 2000 && longest > 20,
        "the scans read rows: {rows}, {longest}"
    );

    // Prune PostgreSQL's history behind ts 300 (in small steps): every read at 300 or later
    // still matches the unpruned SQLite copy. Then prune SQLite too: the two agree again.
    let horizon = Timestamp(300);
    let mut pruned = 0;
    loop {
        let step = postgres.prune(horizon, 50).await.unwrap();
        if step == 0 {
            break;
        }
        pruned += step;
    }
    assert!(pruned > 100, "history went: {pruned}");
    let live = |r: Option<DocumentRevision>| r.and_then(|r| r.document);
    for round in 0..2 {
        if round == 1 {
            while sqlite.prune(horizon, 1000).await.unwrap() > 0 {}
        }
        for _ in 0..200 {
            let ts = Timestamp(rng.random_range(300..620));
            let start = vec![rng.random_range(0..40u8)];
            let interval = Interval { start, end: None };
            same_scan(&postgres, &sqlite, &mut rng, &interval, ts, &[1, 17, 5000]).await;
            let n = rng.random_range(0..60u8);
            assert_eq!(
                live(postgres.document_at(id(n), ts).await.unwrap()),
                live(sqlite.document_at(id(n), ts).await.unwrap()),
                "after pruning: document {n} at {ts}"
            );
        }
    }
    drop(postgres);
    pg.drop_schema().await;
}

#[tokio::test]
async fn closed_reader_and_writer_connections_are_reopened() {
    let pg = test_schema().await;
    let persistence = pg.connect().await.unwrap();
    let db = with_one_note(&persistence).await;
    // End every session of this persistence except the one holding the lease (as a server
    // restart would for the readers and the writer, or a proxy dropping idle connections).
    let ended = admin(&pg)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid NOT IN \
               (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
            &[&format!("keel {}", pg.name())],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(ended >= 2, "the writer and the readers: {ended}");
    // Calls that find a connection broken may fail; within a few tries everything works again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut tx = db.begin();
        let attempt = async {
            tx.insert("notes", note(2)).await?;
            db.commit(tx).await
        };
        if attempt.await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the connections were not re-opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut reads = 0;
    while reads < 10 {
        let mut tx = db.begin();
        if let Ok(notes) = tx.query("notes").collect().await {
            assert_eq!(notes.len(), 2);
            reads += 1;
        }
        assert!(Instant::now() < deadline, "reads keep failing");
    }
    assert!(
        !persistence.lease_lost(),
        "the lease connection was left alone"
    );
    drop((db, persistence));
    pg.drop_schema().await;
}

/// `url` with `params` added to its query.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Whether each session of `pg`'s persistences is encrypted (from `pg_stat_ssl`).
async fn sessions_encrypted(admin: &tokio_postgres::Client, pg: &PostgresTestSchema) -> Vec<bool> {
    admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&format!("keel {}", pg.name())],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn tls_follows_sslmode_and_sslrootcert() {
    let pg = test_schema().await;
    let admin = admin(&pg).await;
    let ssl_on: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let url = |params: &str| with_params(pg.url(), params);

    let plain = PostgresPersistence::connect_standby(&url("sslmode=disable"), pg.options())
        .await
        .unwrap();
    let seen = sessions_encrypted(&admin, &pg).await;
    assert!(!seen.is_empty() && seen.iter().all(|ssl| !ssl), "{seen:?}");
    drop(plain);

    if ssl_on != "on" {
        // A server without TLS: `require` is refused with a clear message, `prefer` is plain.
        let err = PostgresPersistence::connect_standby(&url("sslmode=require"), pg.options())
            .await
            .err()
            .expect("require needs a server with TLS")
            .to_string();
        assert!(err.contains("PostgreSQL at"), "{err}");
        pg.drop_schema().await;
        return;
    }

    // Encrypted, certificate unchecked (libpq's `require`; `prefer`, the default, is the same
    // against a server that offers TLS).
    let encrypted = PostgresPersistence::connect_with(&url("sslmode=require"), pg.options())
        .await
        .unwrap();
    let db = Database::open(Arc::new(encrypted.clone()), schema())
        .await
        .unwrap();
    let mut tx = db.begin();
    tx.insert("notes", note(7)).await.unwrap();
    db.commit(tx).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let seen = sessions_encrypted(&admin, &pg).await;
        if seen.len() >= 2 || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(seen.len() >= 2 && seen.iter().all(|ssl| *ssl), "{seen:?}");
    drop(db);
    drop(encrypted);

    // The server's own certificate as the trusted root: the chain checks out; the name does
    // not have to (verify-ca), but must for verify-full (a certificate names host names, and
    // the test server is reached by IP address).
    let cert: String = admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    if std::fs::read(&cert).is_ok() {
        let root = format!("sslrootcert={cert}");
        PostgresPersistence::connect_standby(
            &url(&format!("sslmode=verify-ca&{root}")),
            pg.options(),
        )
        .await
        .unwrap();
        if pg.url().contains("@127.0.0.1") {
            let err = PostgresPersistence::connect_standby(
                &url(&format!("sslmode=verify-full&{root}")),
                pg.options(),
            )
            .await
            .err()
            .expect("the certificate does not name 127.0.0.1")
            .to_string();
            assert!(
                err.contains("TLS handshake failed") && err.contains("127.0.0.1"),
                "{err}"
            );
        }
    }
    // Against public certificate authorities (Debian's bundle) it is unknown.
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    if std::fs::metadata(bundle).is_ok() {
        let err = PostgresPersistence::connect_standby(
            &url(&format!("sslmode=verify-ca&sslrootcert={bundle}")),
            pg.options(),
        )
        .await
        .err()
        .expect("no public authority signed the test server's certificate")
        .to_string();
        assert!(err.contains("TLS handshake failed"), "{err}");
    }
    pg.drop_schema().await;
}
