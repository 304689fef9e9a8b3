//! Durability under SIGKILL: a child process commits in a loop and reports each acknowledged
//! commit; it is killed at random moments; after reopening, every acknowledged commit is present
//! and no commit is partially visible. Run against a SQLite file and against a PostgreSQL schema
//! on the test server (`KEEL_TEST_POSTGRES_URL`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, Persistence, Schema, SqlitePersistence, TableSchema};
use keel_values::Value;
use rand::Rng;

const KILLS: usize = 24;

fn schema() -> Schema {
    Schema::new()
        .table("crash", TableSchema::new().index("by_seq", &["seq"]))
        .table("head", TableSchema::new())
}

/// Where the writer commits.
enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(PostgresTestSchema),
}

impl Store {
    /// The writer's command-line arguments.
    fn args(&self) -> Vec<String> {
        match self {
            Store::Sqlite(path) => vec![path.display().to_string()],
            Store::Postgres(pg) => vec![pg.url().to_owned(), pg.name().to_owned()],
        }
    }
}

/// Checks the store: every seq has all three parts, the head points at the newest seq; returns
/// the set of complete seqs.
async fn verify(store: &Store) -> BTreeMap<i64, usize> {
    match store {
        Store::Sqlite(path) => verify_in(Arc::new(SqlitePersistence::open(path).unwrap())).await,
        Store::Postgres(pg) => {
            // Takes the committer lease (waiting for the killed writer's session to end) and
            // hands it back at once for the next writer.
            let persistence = Arc::new(pg.connect().await.unwrap_or_else(|e| panic!("{e}")));
            let parts = verify_in(persistence.clone()).await;
            persistence.release().await.unwrap();
            parts
        }
    }
}

async fn verify_in(persistence: Arc<dyn Persistence>) -> BTreeMap<i64, usize> {
    let db = Database::open(persistence, schema()).await.unwrap();
    let mut tx = db.begin();
    let mut parts: BTreeMap<i64, usize> = BTreeMap::new();
    for doc in tx.query("crash").collect().await.unwrap() {
        let Some(Value::Int64(seq)) = doc.fields.get("seq") else {
            panic!("bad doc")
        };
        *parts.entry(*seq).or_default() += 1;
    }
    for (seq, count) in &parts {
        assert_eq!(*count, 3, "commit {seq} is partially visible");
    }
    if let Some(head) = tx.query("head").first().await.unwrap() {
        let newest = parts.keys().next_back().copied().unwrap_or(-1);
        assert_eq!(
            head.fields["seq"],
            Value::Int64(newest),
            "the head patch and the inserts are atomic"
        );
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    crash_rounds(&Store::Sqlite(dir.path().join("crash.sqlite3"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_commits_survive_sigkill() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Store::Postgres(pg);
    crash_rounds(&store).await;
    if let Store::Postgres(pg) = store {
        pg.drop_schema().await;
    }
}

async fn crash_rounds(store: &Store) {
    let started = Instant::now();
    let mut acknowledged: Vec<i64> = Vec::new();
    let mut rng = rand::rng();
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_db-crash-writer"))
            .args(store.args())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse::<i64>().ok()))
                .collect::<Vec<_>>()
        });
        // Kill at a random moment: anywhere from during start-up to well into the commit loop.
        let wait = Duration::from_millis(rng.random_range(5..250));
        tokio::time::sleep(wait).await;
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the writer should have been killed"
        );
        let acks = reader.join().unwrap();
        acknowledged.extend(&acks);
        let present = verify(store).await;
        for seq in &acknowledged {
            assert!(
                present.contains_key(seq),
                "round {round}: acknowledged commit {seq} is missing"
            );
        }
    }
    assert!(
        acknowledged.len() > KILLS,
        "the writer should have committed across the rounds"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "crash test took {:?}",
        started.elapsed()
    );
}
