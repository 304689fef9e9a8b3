//! Followers: a database that reads another committer's commits, invalidates its own
//! subscriptions exactly, refuses to commit, and takes over when promoted. On SQLite (two
//! databases over one file in this process) and on PostgreSQL (a standby connection following
//! the lease holder through notifications, then taking the lease when the holder lets go).

mod support;

use std::sync::Arc;
use std::time::Duration;

use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, DbError, Persistence, PostgresPersistence, SqlitePersistence, Timestamp};
use keel_values::{DocumentId, obj};
use support::{fields, schema};

async fn insert_counter(db: &Database, name: &str) -> DocumentId {
    let mut tx = db.begin();
    let id = tx
        .insert("counters", fields(obj! { "name" => name, "value" => 0i64 }))
        .await
        .unwrap();
    db.commit(tx).await.unwrap();
    id
}

async fn set_counter(db: &Database, id: DocumentId, value: i64) -> Timestamp {
    let mut tx = db.begin();
    tx.patch(id, fields(obj! { "value" => value }), &[])
        .await
        .unwrap();
    db.commit(tx).await.unwrap()
}

async fn counter_by_name(db: &Database, name: &str) -> (Option<i64>, keel_db::Subscription) {
    let mut tx = db.begin();
    let doc = tx
        .query("counters")
        .with_index("by_name", |r| r.eq("name", name))
        .unique()
        .await
        .unwrap();
    let value = doc.map(|d| match d.fields.get("value") {
        Some(keel_values::Value::Int64(v)) => *v,
        other => panic!("unexpected value {other:?}"),
    });
    (value, db.subscribe(tx.read_set().clone(), tx.snapshot_ts()))
}

/// How many documents the undeclared table `late_notes` holds, and a subscription to that read.
async fn late_notes(db: &Database) -> (usize, keel_db::Subscription) {
    let mut tx = db.begin();
    let rows = tx.query("late_notes").collect().await.unwrap();
    (
        rows.len(),
        db.subscribe(tx.read_set().clone(), tx.snapshot_ts()),
    )
}

/// The shared scenario: `leader` commits, `follower` follows through `follow` (which must bring
/// the follower to at least the given timestamp), then, once the leader is gone, `take_over`
/// makes the follower the committer.
async fn follow_and_take_over(
    leader: Database,
    follower: Database,
    follow: impl AsyncFn(Database, Timestamp),
    take_over: impl AsyncFn(Database),
) {
    assert!(leader.is_committer() && !follower.is_committer());
    let a = insert_counter(&leader, "a").await;
    let b = insert_counter(&leader, "b").await;
    follow(follower.clone(), leader.latest_ts()).await;

    // Reads on the follower see the committer's writes; subscriptions there are exact.
    let (value, sub_a) = counter_by_name(&follower, "a").await;
    assert_eq!(value, Some(0));
    let (_, sub_b) = counter_by_name(&follower, "b").await;
    let (missing, sub_c) = counter_by_name(&follower, "c").await;
    assert_eq!(missing, None);
    let ts = set_counter(&leader, b, 5).await;
    follow(follower.clone(), ts).await;
    assert_eq!(
        sub_b.invalidated_at(),
        Some(ts),
        "a write to b invalidates b"
    );
    assert_eq!(sub_a.invalidated_at(), None, "not a");
    assert_eq!(sub_c.invalidated_at(), None, "not c");
    let ts = insert_counter(&leader, "c").await;
    let ts_c = leader.latest_ts();
    follow(follower.clone(), ts_c).await;
    assert_eq!(
        sub_c.invalidated_at(),
        Some(ts_c),
        "an insert at c invalidates c ({ts})"
    );
    assert_eq!(sub_a.invalidated_at(), None);

    // A table the schema does not declare, read on the follower before the committer created
    // it, is empty; the first document written to it invalidates the read, also when the
    // follower learned of the table through another read before following that commit.
    let (none, sub_late) = late_notes(&follower).await;
    assert_eq!(none, 0);
    let mut tx = leader.begin();
    tx.insert("late_notes", fields(obj! { "n" => 1i64 }))
        .await
        .unwrap();
    let ts_late = leader.commit(tx).await.unwrap();
    let (before, _) = late_notes(&follower).await;
    assert!(before <= 1);
    follow(follower.clone(), ts_late).await;
    assert_eq!(sub_late.invalidated_at(), Some(ts_late));
    assert_eq!(late_notes(&follower).await.0, 1);
    assert_eq!(
        sub_a.invalidated_at(),
        None,
        "an insert elsewhere leaves a alone"
    );

    // A follower does not commit.
    let mut tx = follower.begin();
    tx.patch(a, fields(obj! { "value" => 9i64 }), &[])
        .await
        .unwrap();
    match follower.commit(tx).await {
        Err(DbError::NotCommitter(message)) => assert!(message.contains("follower"), "{message}"),
        other => panic!("expected NotCommitter, got {other:?}"),
    }

    // A transaction read on the follower before the last commits of the old committer …
    let mut stale = follower.begin();
    stale.get(a).await.unwrap();
    stale
        .patch(a, fields(obj! { "value" => 100i64 }), &[])
        .await
        .unwrap();
    let last = set_counter(&leader, a, 7).await;
    drop(leader);

    take_over(follower.clone()).await;
    assert!(follower.is_committer());
    assert!(follower.latest_ts() >= last, "promotion catches up");
    assert_eq!(sub_a.invalidated_at(), Some(last));
    // … conflicts with them after the promotion (the rebuilt write log serves OCC).
    assert!(follower.commit(stale).await.unwrap_err().is_occ());
    let ts = set_counter(&follower, a, 8).await;
    assert!(ts > last);
    let (value, _) = counter_by_name(&follower, "a").await;
    assert_eq!(value, Some(8));
    // The schema's validators hold on the promoted follower too.
    let mut tx = follower.begin();
    let err = tx
        .insert("users", fields(obj! { "name" => 5i64 }))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Validation { .. }), "{err}");
    let d = insert_counter(&follower, "d").await;
    let mut tx = follower.begin();
    assert!(tx.get(d).await.unwrap().is_some());
}

/// A committer and a follower over one SQLite file (the directory lives while they do).
async fn sqlite_pair() -> (tempfile::TempDir, Database, Database) {
    let dir = tempfile::tempdir().unwrap();
    let persistence: Arc<dyn Persistence> =
        Arc::new(SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap());
    let leader = Database::open(persistence.clone(), schema()).await.unwrap();
    let follower = Database::open_follower(persistence, schema())
        .await
        .unwrap();
    (dir, leader, follower)
}

#[tokio::test]
async fn a_follower_on_sqlite_follows_and_takes_over() {
    let (_dir, leader, follower) = sqlite_pair().await;
    follow_and_take_over(
        leader,
        follower,
        async |db, ts| assert_eq!(db.follow_to(ts).await.unwrap(), ts),
        async |db| db.promote().await.unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_on_postgres_follows_notifications_and_takes_the_lease() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let holder = pg.connect().await.unwrap();
    let leader = Database::open(Arc::new(holder.clone()), schema())
        .await
        .unwrap();
    holder
        .set_committer_address("http://127.0.0.1:1")
        .await
        .unwrap();

    let standby = PostgresPersistence::connect_standby(pg.url(), pg.options())
        .await
        .unwrap();
    assert!(!standby.holds_lease());
    assert!(
        !standby.try_acquire_lease().await.unwrap(),
        "the holder is alive"
    );
    assert_eq!(
        standby.committer_address().await.unwrap().as_deref(),
        Some("http://127.0.0.1:1")
    );
    let err = standby.set_global("x", vec![1]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not hold the committer lease"),
        "{err}"
    );

    let follower = Database::open_follower(Arc::new(standby.clone()), schema())
        .await
        .unwrap();
    // Follow through notifications alone: the poll runs once a second, so a deadline well
    // below it shows the notification arrived (the first poll happens at once, at start).
    let mut commits = standby.commit_notifications().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let driver = {
        let follower = follower.clone();
        tokio::spawn(async move {
            loop {
                let ts = *commits.borrow_and_update();
                follower.follow_to(ts).await.unwrap();
                if commits.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let follow = async |db: Database, ts: Timestamp| {
        let mut latest = db.watch_commits();
        tokio::time::timeout(Duration::from_millis(800), latest.wait_for(|t| *t >= ts))
            .await
            .expect("the follower saw the commit within 800 ms")
            .unwrap();
    };
    // The standby waits for the lease from the start; it gets it once the holder lets go (as
    // when a committer process exits), and only then promotes its database.
    let waiter = {
        let standby = standby.clone();
        tokio::spawn(async move { standby.acquire_lease().await })
    };
    let waiter = tokio::sync::Mutex::new(Some(waiter));
    let take_over = async |db: Database| {
        let waiter = waiter.lock().await.take().unwrap();
        assert!(
            !waiter.is_finished(),
            "the standby waits while the holder lives"
        );
        holder.release().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the standby takes the lease once it is free")
            .unwrap()
            .unwrap();
        db.promote().await.unwrap();
    };
    follow_and_take_over(leader, follower.clone(), follow, take_over).await;
    driver.abort();
    assert!(standby.holds_lease());
    assert_eq!(standby.committer_address().await.unwrap(), None);
    drop((follower, standby, holder));
    pg.drop_schema().await;
}

#[tokio::test]
async fn a_follower_behind_pruned_history_invalidates_every_subscription() {
    let (_dir, leader, follower) = sqlite_pair().await;
    let a = insert_counter(&leader, "a").await;
    follower.follow_to(leader.latest_ts()).await.unwrap();
    let (value, sub_a) = counter_by_name(&follower, "a").await;
    assert_eq!(value, Some(0));
    let (_, sub_z) = counter_by_name(&follower, "z").await;

    // Renamed twice, then the committer prunes what those writes superseded (its maintenance
    // does so minutes later; here at once) before the follower looked.
    for name in ["b", "c"] {
        let mut tx = leader.begin();
        tx.patch(a, fields(obj! { "name" => name }), &[])
            .await
            .unwrap();
        leader.commit(tx).await.unwrap();
    }
    assert!(leader.prune_history(Duration::ZERO).await.unwrap() > 0);
    let until = leader.latest_ts();
    follower.follow_to(until).await.unwrap();
    // The revision that held "a" is gone, so nothing says which reads the renames touched:
    // every subscription starts over.
    assert_eq!(sub_a.invalidated_at(), Some(until), "the read of \"a\"");
    assert_eq!(sub_z.invalidated_at(), Some(until), "every other read too");

    // Reads are right, and subscriptions are exact again from here on.
    assert_eq!(counter_by_name(&follower, "a").await.0, None);
    let (value, sub_c) = counter_by_name(&follower, "c").await;
    assert_eq!(value, Some(0));
    let (_, sub_y) = counter_by_name(&follower, "y").await;
    let ts = set_counter(&leader, a, 3).await;
    follower.follow_to(ts).await.unwrap();
    assert_eq!(sub_c.invalidated_at(), Some(ts));
    assert_eq!(sub_y.invalidated_at(), None);
}
