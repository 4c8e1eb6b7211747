//! The MongoDB store, against a real server: set `RUSTCI_TEST_MONGODB_URI` (a
//! `mongodb://` URI; a single-node replica set also exercises transactions). Without it
//! every test prints a SKIPPED line and passes. Each test uses its own database and drops
//! it at the end.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use mongodb::bson::{doc, Document};
use rustci_control::store::mongo::MongoStore;
use rustci_control::store::{Batch, JobFilter, JobState, Store, StoredJob};
use rustci_datasets::Outcome;

const ENV: &str = "RUSTCI_TEST_MONGODB_URI";

/// Connects to a fresh database, or prints the skip line and returns `None`.
async fn store(test: &str) -> Option<MongoStore> {
    let Ok(uri) = std::env::var(ENV) else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {ENV} not set");
        return None;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let db = format!(
        "rustci_test_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    );
    Some(
        MongoStore::connect_async(&uri, &db)
            .await
            .expect("connect to MongoDB"),
    )
}

async fn drop_db(s: &MongoStore) {
    s.database().drop().await.expect("drop the test database");
}

use crate::store_fixtures;
use store_fixtures::{finished, job, leased, runner};

fn jobs(v: Vec<StoredJob>) -> Batch {
    Batch {
        jobs: v,
        ..Batch::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_commit_and_load_round_trip() {
    let Some(mut s) = store("mongo_commit_and_load_round_trip").await else {
        return;
    };
    assert_eq!(s.load(0).unwrap(), Default::default());
    let q = job(1, "acme", JobState::Queued, 1);
    let l = leased(job(2, "acme", JobState::Queued, 0), 7, 2);
    let f = finished(
        leased(job(3, "zeta", JobState::Queued, 0), 5, 0),
        JobState::Succeeded,
        2_000_000,
        3,
    );
    s.commit(&Batch {
        jobs: vec![q.clone(), l.clone(), f.clone()],
        runners: vec![runner("r1"), runner("r2")],
        removed_runners: vec![],
    })
    .unwrap();
    s.commit(&Batch {
        removed_runners: vec!["r2".into()],
        ..Batch::default()
    })
    .unwrap();

    let snap = s.load(1_000_000).unwrap();
    assert_eq!(snap.unfinished, vec![q, l.clone()]);
    assert_eq!(snap.recently_finished, vec![f.clone()]);
    assert_eq!(snap.runners, vec![runner("r1")]);
    assert_eq!(
        (snap.max_job_id, snap.max_revision, snap.max_fencing_token),
        (3, 3, 7)
    );
    assert_eq!(s.get_job(2).unwrap(), Some(l));
    assert_eq!(s.get_job(99).unwrap(), None);

    // A reconnect sees the same state.
    let uri = std::env::var(ENV).unwrap();
    let mut again = MongoStore::connect_async(&uri, s.database().name())
        .await
        .unwrap();
    assert_eq!(again.load(1_000_000).unwrap(), snap);

    // Finished jobs carry their JobRecord for the retraining side.
    let raw = s
        .database()
        .collection::<Document>("jobs")
        .find_one(doc! { "_id": 3_i64 })
        .await
        .unwrap()
        .unwrap();
    let record = raw.get_document("record").unwrap();
    assert_eq!(record.get_str("id").unwrap(), "3");
    assert_eq!(record.get_str("outcome").unwrap(), "success");
    drop_db(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_updates_and_change_log() {
    let Some(mut s) = store("mongo_updates_and_change_log").await else {
        return;
    };
    let v1 = job(1, "acme", JobState::Queued, 1);
    let other = job(2, "zeta", JobState::Queued, 2);
    let v2 = leased(v1.clone(), 11, 3);
    let v3 = finished(v2.clone(), JobState::Failed, 1_100_000, 4);
    s.commit(&jobs(vec![v1.clone(), other.clone()])).unwrap();
    s.commit(&jobs(vec![v2.clone()])).unwrap();
    s.commit(&jobs(vec![v3.clone()])).unwrap();

    assert_eq!(s.get_job(1).unwrap(), Some(v3.clone()));
    assert_eq!(
        s.changes_since(0, None, 100).unwrap(),
        vec![v1.clone(), other.clone(), v2.clone(), v3.clone()]
    );
    assert_eq!(s.changes_since(2, None, 1).unwrap(), vec![v2.clone()]);
    assert_eq!(
        s.changes_since(0, Some("acme"), 100).unwrap(),
        vec![v1, v2, v3.clone()]
    );
    assert_eq!(s.changes_since(0, Some("zeta"), 100).unwrap(), vec![other]);
    let snap = s.load(0).unwrap();
    assert_eq!((snap.max_revision, snap.max_fencing_token), (4, 11));

    assert_eq!(s.prune_changes(2).unwrap(), 2);
    assert_eq!(s.changes_since(0, None, 100).unwrap().len(), 2);
    assert_eq!(s.load(0).unwrap().max_revision, 4);

    let h = s.history(0, 10).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].id, "1");
    assert_eq!(h[0].outcome, Outcome::Failure);
    assert_eq!(h[0].wait_s, Some(10));
    // 89.999 s, to the nearest second (the one ms-to-s rule of `history_record`).
    assert_eq!(h[0].run_s, Some(90));
    drop_db(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_list_jobs_pages_and_filters() {
    let Some(mut s) = store("mongo_list_jobs_pages_and_filters").await else {
        return;
    };
    let all: Vec<StoredJob> = (1..=10)
        .map(|id| {
            let tenant = if id % 2 == 0 { "even" } else { "odd" };
            let j = job(id, tenant, JobState::Queued, id);
            if id % 3 == 0 {
                finished(j, JobState::Succeeded, 2_000_000, id)
            } else {
                j
            }
        })
        .collect();
    s.commit(&jobs(all)).unwrap();
    let ids = |v: Vec<StoredJob>| v.iter().map(|j| j.id).collect::<Vec<_>>();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = ids(s.list_jobs(&JobFilter::default(), after, 3).unwrap());
        let Some(&last) = page.last() else { break };
        after = last;
        seen.extend(page);
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    let even = JobFilter {
        tenant: Some("even".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(s.list_jobs(&even, 4, 2).unwrap()), vec![6, 8]);
    let done = JobFilter {
        state: Some(JobState::Succeeded),
        ..JobFilter::default()
    };
    assert_eq!(ids(s.list_jobs(&done, 0, 100).unwrap()), vec![3, 6, 9]);
    let by_request = JobFilter {
        tenant: Some("odd".into()),
        request_id: Some("req-7".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(s.list_jobs(&by_request, 0, 100).unwrap()), vec![7]);
    drop_db(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_duplicate_request_id_is_refused() {
    let Some(mut s) = store("mongo_duplicate_request_id_is_refused").await else {
        return;
    };
    let first = job(1, "acme", JobState::Queued, 1);
    s.commit(&jobs(vec![first.clone()])).unwrap();
    let mut dup = job(3, "acme", JobState::Queued, 3);
    dup.request_id = first.request_id.clone();
    let batch = Batch {
        jobs: vec![job(2, "acme", JobState::Queued, 2), dup],
        runners: vec![runner("r9")],
        removed_runners: vec![],
    };
    assert!(s.commit(&batch).is_err(), "the unique index refuses it");
    if s.uses_transactions() {
        // All or nothing only with transactions (replica set / sharded cluster).
        assert_eq!(s.get_job(2).unwrap(), None);
        assert_eq!(s.changes_since(1, None, 100).unwrap(), vec![]);
        assert!(s.load(0).unwrap().runners.is_empty());
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "note: standalone server, no transactions: atomicity not checked"
        );
    }
    assert_eq!(s.get_job(3).unwrap(), None);
    assert_eq!(s.get_job(1).unwrap(), Some(first));
    drop_db(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_a_long_change_log_is_trimmed_a_little_at_a_time() {
    let Some(mut s) = store("mongo_a_long_change_log_is_trimmed_a_little_at_a_time").await else {
        return;
    };
    // After each commit is durable here, outside its transaction.
    store_fixtures::a_long_change_log_is_trimmed_a_little_at_a_time(&mut s);
    drop_db(&s).await;
}
