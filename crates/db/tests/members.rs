//! The members' records of a replicated group on PostgreSQL (`keel_members`): reports are
//! stamped with the server's clock and read back by every node of the schema, a report
//! replaces the node's earlier one, a node removes its own record, old records are pruned and
//! fresh ones kept, and hostile values are stored as they came.

use std::time::{Duration, Instant, UNIX_EPOCH};

use keel_db::persistence::PostgresTestSchema;
use keel_db::{MemberReport, PostgresPersistence, SharedStore};

fn report(node_id: &str, role: &str, latest_ts: u64) -> MemberReport {
    MemberReport {
        node_id: node_id.to_owned(),
        role: role.to_owned(),
        address: format!("http://{node_id}.example:3210"),
        started_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        latest_ts,
        sync_sessions: 7,
    }
}

#[tokio::test]
async fn members_are_recorded_listed_removed_and_pruned() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = PostgresPersistence::connect_standby(pg.url(), pg.options())
        .await
        .unwrap();
    let second = PostgresPersistence::connect_standby(pg.url(), pg.options())
        .await
        .unwrap();
    let (a, b) = (first.member_registry(), second.member_registry());
    assert!(a.members().await.unwrap().is_empty());

    a.report(&report("node-a", "committer", 10)).await.unwrap();
    a.report(&report("node-a", "committer", 12)).await.unwrap();
    let hostile = report(
        "node-'b\"; DROP TABLE keel_members; --",
        "<b>follower</b>",
        u64::MAX,
    );
    b.report(&hostile).await.unwrap();

    // Either node reads both; a node's second report replaced its first.
    let listed = a.members().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let node_a = listed
        .iter()
        .find(|m| m.report.node_id == "node-a")
        .unwrap();
    assert_eq!(node_a.report, report("node-a", "committer", 12));
    assert!(node_a.last_seen_ago < Duration::from_secs(5), "{node_a:?}");
    let node_b = listed
        .iter()
        .find(|m| m.report.role == hostile.role)
        .unwrap();
    assert_eq!(node_b.report.node_id, hostile.node_id);
    // Stored as PostgreSQL's BIGINT: the largest timestamp is clamped, never wrapped.
    assert_eq!(node_b.report.latest_ts, i64::MAX as u64);
    let reports = |records: Vec<keel_db::MemberRecord>| -> Vec<_> {
        records.into_iter().map(|m| m.report).collect()
    };
    assert_eq!(reports(b.members().await.unwrap()), reports(listed));

    // Pruning takes what was not refreshed for the given time, and only that.
    assert_eq!(a.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    let started = Instant::now();
    while a.members().await.unwrap()[0].last_seen_ago < Duration::from_millis(300) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the clock stands still"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.report(&hostile).await.unwrap();
    assert_eq!(a.prune(Duration::from_millis(300)).await.unwrap(), 1);
    let listed = b.members().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].report.node_id, hostile.node_id);

    // A node leaving removes its own record; removing an unknown node is no error.
    b.remove(&hostile.node_id).await.unwrap();
    b.remove("never-here").await.unwrap();
    assert!(a.members().await.unwrap().is_empty());
}
