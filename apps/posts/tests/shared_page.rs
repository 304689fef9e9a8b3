//! `posts:page` watched by many signed-in sessions: it asks only whether its caller is signed
//! in, so the backend runs it once per commit for all of them (it ran once per session when
//! query results were kept per identity), every session gets the new post, `users:me` stays each
//! caller's own, and a signed-out caller is refused.
//!
//! The sessions are driven as the sync protocol drives them (`Backend::subscribe_query_shared`
//! with each query's journal, at the latest commit, all at once after each commit) against a
//! real backend over SQLite, with the app's own schema and functions; executions are counted
//! in the backend's execution log.

use std::sync::Arc;

use keel_backend::{Backend, BackendConfig, Identity, QueryJournal, SharedOutcome};
use keel_db::{Database, SqlitePersistence};
use keel_values::{Object, Value};
use serde_json::json;

/// Signed-in sessions watching the first page of posts.
const SESSIONS: usize = 50;
/// Posts created while they watch.
const COMMITS: usize = 20;

/// The CPU time the process's threads have used so far: the sum of their
/// `/proc/self/task/*/schedstat` (nanoseconds; the runtime's threads, and the blocking pool's,
/// live through the test).
fn cpu_time() -> std::time::Duration {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let nanos = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    std::time::Duration::from_nanos(nanos)
}

fn user(n: usize) -> Identity {
    let fields = json!({ "subject": format!("user_{n}"), "name": format!("User {n}") });
    let fields = fields.as_object().expect("an object");
    Identity::acting_as(keel_auth::UserIdentity::acting_as(fields).expect("an identity"))
}

fn object(json: serde_json::Value) -> Object {
    match keel_values::from_json(&json).expect("Convex JSON") {
        Value::Object(object) => object,
        other => panic!("arguments are an object, not {other:?}"),
    }
}

fn path(path: &str) -> keel::protocol::CanonicalPath {
    keel::protocol::normalize_udf_path(path).expect("a function path")
}

/// How many times `name` has run on this backend.
fn executions(backend: &Backend, name: &str) -> usize {
    let page = backend.execution_log().read(0, usize::MAX);
    page.entries.iter().filter(|e| e.path == name).count()
}

/// The titles on a `posts:page` result.
fn titles(outcome: &SharedOutcome) -> Vec<String> {
    let value = outcome.outcome().result.as_ref().expect("a page");
    let Value::Array(page) = &value.as_object().expect("an object")["page"] else {
        panic!("a page: {value:?}");
    };
    page.iter()
        .map(|post| {
            let title = &post.as_object().expect("a post")["title"];
            title.as_str().expect("a title").to_owned()
        })
        .collect()
}

#[tokio::test]
async fn posts_page_runs_once_per_commit_however_many_sessions_watch_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
    let db = Database::open(Arc::new(persistence), keel_posts::functions::schema())
        .await
        .expect("the database opens");
    let backend = Backend::new(
        db,
        keel_posts::functions::functions(),
        BackendConfig::default(),
    );
    let users: Vec<Identity> = (0..SESSIONS).map(user).collect();
    let page = path("posts:page");
    let first_page = object(json!({ "paginationOpts": { "numItems": 10, "cursor": null } }));
    let mut journals = vec![QueryJournal::new(); SESSIONS];

    // Every session (re)runs its query at once, at the latest commit, with its journal.
    let watch_all = async |journals: &mut Vec<QueryJournal>| {
        let ts = backend.latest_ts();
        let runs = users.iter().zip(journals.iter()).map(|(user, journal)| {
            backend.subscribe_query_shared(&page, &first_page, user, ts, journal)
        });
        let outcomes = futures::future::join_all(runs).await;
        for (journal, outcome) in journals.iter_mut().zip(&outcomes) {
            *journal = outcome.outcome().journal.clone();
        }
        outcomes
    };

    let mut outcomes = watch_all(&mut journals).await;
    assert!(outcomes.iter().all(|o| titles(o).is_empty()));
    assert_eq!(executions(&backend, "posts:page"), 1);

    let create = path("posts:create");
    let mut per_commit: Vec<usize> = Vec::new();
    let mut rerun_cpu = std::time::Duration::ZERO;
    for n in 1..=COMMITS {
        let before = executions(&backend, "posts:page");
        let title = format!("Post {n}");
        let post = object(json!({ "title": title, "body": "shared" }));
        let author = &users[n % SESSIONS];
        backend
            .run_mutation(&create, post, author)
            .await
            .expect("the post is created");
        assert!(
            outcomes
                .iter()
                .all(|o| o.outcome().subscription.is_invalidated()),
            "the commit reaches every session's subscription"
        );
        let cpu = cpu_time();
        outcomes = watch_all(&mut journals).await;
        rerun_cpu += cpu_time() - cpu;
        for outcome in &outcomes {
            assert_eq!(
                titles(outcome).first(),
                Some(&title),
                "every session sees it"
            );
        }
        per_commit.push(executions(&backend, "posts:page") - before);
    }
    // The figure for docs/BENCHMARKS.md (`--no-capture` shows it).
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{SESSIONS} sessions, {COMMITS} commits: posts:page executions per commit \
             {per_commit:?}; CPU of the sessions' re-runs {:.2} ms per commit",
            rerun_cpu.as_secs_f64() * 1e3 / COMMITS as f64
        );
    }
    assert_eq!(
        per_commit,
        vec![1; COMMITS],
        "executions of posts:page per commit with {SESSIONS} sessions watching"
    );

    // The caller's own data stays theirs; a signed-out caller is refused.
    let me = path("users:me");
    let none = object(json!({}));
    for (n, user) in users.iter().enumerate().take(3) {
        let own = backend.run_query(&me, &none, user, None).await.expect("me");
        let subject = &own.as_object().expect("an object")["subject"];
        assert_eq!(subject, &Value::from(format!("user_{n}")));
    }
    let refused = backend
        .run_query(&page, &first_page, &Identity::Anonymous, None)
        .await
        .expect_err("refused");
    let data = refused.error_data().expect("an application error");
    assert_eq!(
        data.as_object().expect("an object")["code"],
        Value::from("UNAUTHENTICATED")
    );
}

/// Cache hits answered from one execution.
const HITS: usize = 20_000;

#[tokio::test]
async fn a_cached_page_answers_every_session_from_one_execution() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
    let db = Database::open(Arc::new(persistence), keel_posts::functions::schema())
        .await
        .expect("the database opens");
    let backend = Backend::new(
        db,
        keel_posts::functions::functions(),
        BackendConfig::default(),
    );
    let users: Vec<Identity> = (0..SESSIONS).map(user).collect();
    let page = path("posts:page");
    let first_page = object(json!({ "paginationOpts": { "numItems": 10, "cursor": null } }));
    let first = backend
        .run_query_shared(&page, &first_page, &users[0], None)
        .await;
    // One caller's hits (the same key before and after results were shared across identities:
    // what a hit costs, mostly its key).
    let cpu = cpu_time();
    for _ in 0..HITS {
        let hit = backend
            .run_query_shared(&page, &first_page, &users[0], None)
            .await;
        assert!(hit.same_execution(&first));
    }
    let took = cpu_time() - cpu;
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{HITS} cached posts:page results: {:.2} µs of CPU each",
            took.as_secs_f64() * 1e6 / HITS as f64,
        );
    }
    // Every other signed-in session gets the same execution.
    for user in &users {
        let hit = backend
            .run_query_shared(&page, &first_page, user, None)
            .await;
        assert!(hit.same_execution(&first));
    }
    assert_eq!(executions(&backend, "posts:page"), 1);
}
