//! The MongoDB store, against a real server: set `RUSTCI_TEST_MONGODB_URI` (a
//! `mongodb://` URI; a single-node replica set also exercises transactions). Without it
//! every test prints a SKIPPED line and passes. Each test uses its own database and drops
//! it at the end.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use rustci_control::store::mongo::MongoStore;
use rustci_control::store::{Batch, JobFilter, JobState, Store, StoredJob};
use rustci_datasets::Outcome;
/// Connects to a fresh database, or prints the skip line and returns `None`.
async fn store(test: &str) -> Option<MongoStore> {
    let uri = mongo_uri_or_skip(test)?;
    Some(
        MongoStore::connect_async(&uri, &mongo_test_database())
            .await
            .expect("connect to MongoDB"),
    )
}

async fn drop_db(s: &MongoStore) {
    s.database().drop().await.expect("drop the test database");
}

use crate::store_fixtures::{
    finished, job, leased, mongo_test_database, mongo_uri_or_skip, runner, MONGO_ENV,
    MONGO_SESSIONS as SESSIONS,
};

fn jobs(v: Vec<StoredJob>) -> Batch {
    Batch {
        jobs: v,
        ..Batch::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_commit_and_load_round_trip() {
    let _shared = SESSIONS.read().await;
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
    let uri = std::env::var(MONGO_ENV).unwrap();
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
    let _shared = SESSIONS.read().await;
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
    let _shared = SESSIONS.read().await;
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
    let _shared = SESSIONS.read().await;
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
    let _shared = SESSIONS.read().await;
    let Some(mut s) = store("mongo_a_long_change_log_is_trimmed_a_little_at_a_time").await else {
        return;
    };
    // After each commit is durable here, outside its transaction.
    crate::store_fixtures::a_long_change_log_is_trimmed_a_little_at_a_time(&mut s);
    drop_db(&s).await;
}

/// Polls `cond` every 5 ms until it holds, or fails after `within`.
async fn until(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A second writer holds a job's document in an open transaction: the store's commit of
/// the same job meets `WriteConflict` (labelled `TransientTransactionError`), backs off
/// and retries, and goes through once the other writer commits, with no error for the
/// caller (so the server does not rebuild its state).
#[tokio::test(flavor = "multi_thread")]
async fn mongo_a_commit_that_meets_a_conflicting_writer_retries_and_goes_through() {
    let _shared = SESSIONS.read().await;
    let Some(mut s) =
        store("mongo_a_commit_that_meets_a_conflicting_writer_retries_and_goes_through").await
    else {
        return;
    };
    let v1 = job(1, "acme", JobState::Queued, 1);
    s.commit(&jobs(vec![v1.clone()])).unwrap();

    let other = mongodb::Client::with_uri_str(std::env::var(MONGO_ENV).unwrap())
        .await
        .unwrap();
    let coll = other
        .database(s.database().name())
        .collection::<Document>("jobs");
    let mut session = other.start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    coll.update_one(doc! { "_id": 1_i64 }, doc! { "$set": { "other": true } })
        .session(&mut session)
        .await
        .unwrap();

    let retried = s.retry_counter();
    let v2 = leased(v1, 9, 2);
    let expected = v2.clone();
    let commit = tokio::spawn(async move {
        let r = s.commit_async(&jobs(vec![v2])).await;
        (s, r)
    });
    until(Duration::from_secs(20), "a retry", || {
        retried.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert!(
        !commit.is_finished(),
        "the commit waits for the other writer"
    );
    session.commit_transaction().await.unwrap();
    let (mut s, result) = commit.await.unwrap();
    result.expect("the commit goes through after the conflict");
    assert!(retried.load(Ordering::Relaxed) >= 1);
    // The store's version replaced the document the other writer committed first.
    assert_eq!(s.get_job(1).unwrap(), Some(expected));
    drop_db(&s).await;
}

/// A server that died mid-commit leaves its transaction open on the database (MongoDB
/// keeps it for `transactionLifetimeLimitSeconds`). The server that takes over ends it
/// first (`Store::take_over`), so its first commit of the same job needs no retry.
#[tokio::test(flavor = "multi_thread")]
async fn mongo_a_new_server_ends_the_transaction_a_dead_one_left_open() {
    let _alone = SESSIONS.write().await;
    let Some(mut s) = store("mongo_a_new_server_ends_the_transaction_a_dead_one_left_open").await
    else {
        return;
    };
    let v1 = job(1, "acme", JobState::Queued, 1);
    s.commit(&jobs(vec![v1.clone()])).unwrap();

    // The "dead" server: a transaction on job 1 that nobody will end (the client stays
    // alive, so the driver does not abort it on drop).
    let dead = mongodb::Client::with_uri_str(std::env::var(MONGO_ENV).unwrap())
        .await
        .unwrap();
    let coll = dead
        .database(s.database().name())
        .collection::<Document>("jobs");
    let mut left_open = dead.start_session().await.unwrap();
    left_open.start_transaction().await.unwrap();
    coll.update_one(doc! { "_id": 1_i64 }, doc! { "$set": { "half": true } })
        .session(&mut left_open)
        .await
        .unwrap();

    let mut next =
        MongoStore::connect_async(&std::env::var(MONGO_ENV).unwrap(), s.database().name())
            .await
            .unwrap();
    next.take_over_async().await.expect("killAllSessions");
    let v2 = leased(v1, 3, 2);
    next.commit_async(&jobs(vec![v2.clone()])).await.unwrap();
    assert_eq!(
        next.retry_counter().load(Ordering::Relaxed),
        0,
        "nothing held the job any more"
    );
    assert_eq!(next.get_job(1).unwrap(), Some(v2));
    drop(left_open);
    drop_db(&s).await;
}
