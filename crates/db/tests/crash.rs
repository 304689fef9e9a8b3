//! Durability under SIGKILL: a child process commits in a loop and reports each acknowledged
//! commit; it is killed at random moments; after reopening, every acknowledged commit is present
//! and no commit is partially visible. Run against a SQLite file and against a PostgreSQL schema
//! on the test server (`KEEL_TEST_POSTGRES_URL`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

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
        let (acks_tx, acks) = std::sync::mpsc::channel::<i64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(seq) = line.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
                    let _ = acks_tx.send(seq);
                }
            }
        });
        // Even rounds kill at a random moment from the start (often during start-up); odd rounds
        // first wait for the writer's first acknowledged commit (however long a loaded machine
        // takes to get there), then kill at a random moment of the commit loop.
        let mut seen = Vec::new();
        if round % 2 == 1 {
            let first = acks
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("round {round}: the writer never committed"));
            seen.push(first);
        }
        let wait = if round % 2 == 1 {
            Duration::from_millis(rng.random_range(0..100))
        } else {
            Duration::from_millis(rng.random_range(5..250))
        };
        tokio::time::sleep(wait).await;
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the writer should have been killed"
        );
        reader.join().unwrap();
        seen.extend(acks.try_iter());
        acknowledged.extend(&seen);
        let present = verify(store).await;
        for seq in &acknowledged {
            assert!(
                present.contains_key(seq),
                "round {round}: acknowledged commit {seq} is missing"
            );
        }
    }
    assert!(
        acknowledged.len() >= KILLS / 2,
        "every other round waits for a commit before the kill"
    );
}
