//! Subscriptions: exact invalidation over 10,000 distinct keys through the database, late
//! subscribers, drop, and a property test of the interval index against brute force.

mod support;

use std::time::Duration;

use keel_db::{IndexId, Interval, ReadSet, SubscriptionManager, Timestamp};
use keel_values::{Value, obj};
use support::{fields, fresh};

#[tokio::test]
async fn ten_thousand_subscriptions_notify_exactly_the_right_ones() {
    const N: usize = 10_000;
    let t = fresh().await;
    let mut ids = Vec::with_capacity(N);
    let mut tx = t.db.begin();
    for i in 0..N {
        ids.push(
            tx.insert(
                "counters",
                fields(obj! { "name" => format!("k{i:05}"), "value" => 0i64 }),
            )
            .await
            .unwrap(),
        );
    }
    t.db.commit(tx).await.unwrap();
    // One subscription per key, each from a real query's read set.
    let mut subs = Vec::with_capacity(N);
    for i in 0..N {
        let mut tx = t.db.begin();
        let name = format!("k{i:05}");
        tx.query("counters")
            .with_index("by_name", |r| r.eq("name", name))
            .unique()
            .await
            .unwrap()
            .unwrap();
        subs.push(t.db.subscribe(tx.read_set().clone(), tx.snapshot_ts()));
    }
    // A second, identical subscription to key 7 shares its interval and is notified too.
    let twin = {
        let mut tx = t.db.begin();
        tx.query("counters")
            .with_index("by_name", |r| r.eq("name", "k00007"))
            .unique()
            .await
            .unwrap();
        t.db.subscribe(tx.read_set().clone(), tx.snapshot_ts())
    };
    assert_eq!(t.db.subscriptions().len(), N + 1);

    // Patch key 7, and insert a new document at key 4242 (a second one with that name).
    let mut tx = t.db.begin();
    tx.patch(ids[7], fields(obj! { "value" => 1i64 }), &[])
        .await
        .unwrap();
    tx.insert(
        "counters",
        fields(obj! { "name" => "k04242", "value" => 0i64 }),
    )
    .await
    .unwrap();
    let ts = t.db.commit(tx).await.unwrap();
    for expected in [7, 4242] {
        let at = tokio::time::timeout(Duration::from_secs(5), subs[expected].invalidated())
            .await
            .unwrap();
        assert_eq!(at, ts);
    }
    assert_eq!(twin.invalidated_at(), Some(ts));
    let invalid: Vec<usize> = (0..N)
        .filter(|i| subs[*i].invalidated_at().is_some())
        .collect();
    assert_eq!(invalid, vec![7, 4242]);
    assert_eq!(t.db.subscriptions().len(), N - 2);
    // Dropping subscriptions removes them.
    subs.truncate(100);
    assert_eq!(
        t.db.subscriptions().len(),
        100 - 1,
        "0..100 are left, minus the invalidated 7"
    );
}

#[tokio::test]
async fn late_subscriber_to_a_changed_read_set_starts_invalidated() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let id = tx
        .insert("counters", fields(obj! { "name" => "a", "value" => 0i64 }))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    let mut reader = t.db.begin();
    assert_eq!(
        reader.get(id).await.unwrap().unwrap().fields["value"],
        Value::Int64(0)
    );
    let mut writer = t.db.begin();
    writer
        .patch(id, fields(obj! { "value" => 1i64 }), &[])
        .await
        .unwrap();
    let ts = t.db.commit(writer).await.unwrap();
    let sub =
        t.db.subscribe(reader.read_set().clone(), reader.snapshot_ts());
    assert_eq!(sub.invalidated_at(), Some(ts));
    let fresh_sub = t.db.subscribe(reader.read_set().clone(), ts);
    assert_eq!(fresh_sub.invalidated_at(), None);
    let mut commits = t.db.watch_commits();
    assert_eq!(*commits.borrow_and_update(), ts);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]
    #[test]
    fn invalidation_matches_brute_force(
        subs in proptest::collection::vec(
            proptest::collection::vec((0u32..3, 0u8..50, proptest::option::of(0u8..52)), 1..4), 1..60),
        writes in proptest::collection::vec((0u32..3, 0u8..52), 1..6),
    ) {
        let manager = SubscriptionManager::standalone(Timestamp(1));
        let mut read_sets = Vec::new();
        let mut handles = Vec::new();
        for intervals in &subs {
            let mut read_set = ReadSet::new();
            for (index, start, end) in intervals {
                read_set.record(IndexId(*index), Interval { start: vec![*start], end: end.map(|e| vec![e]) });
            }
            handles.push(manager.subscribe(read_set.clone(), Timestamp(1)));
            read_sets.push(read_set);
        }
        let keys: Vec<(IndexId, Vec<u8>)> = writes.iter().map(|(i, k)| (IndexId(*i), vec![*k])).collect();
        let count = manager.invalidate_keys(Timestamp(2), &keys);
        let expected: Vec<bool> = read_sets.iter().map(|rs| keys.iter().any(|(i, k)| rs.contains(*i, k))).collect();
        let actual: Vec<bool> = handles.iter().map(|h| h.invalidated_at().is_some()).collect();
        proptest::prop_assert_eq!(&actual, &expected);
        proptest::prop_assert_eq!(count, expected.iter().filter(|e| **e).count());
    }
}
