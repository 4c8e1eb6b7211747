//! The MongoDB store, against a real server: set `RUSTCI_TEST_MONGODB_URI` (a
//! `mongodb://` URI; a single-node replica set also exercises transactions). Without it
//! every test prints a SKIPPED line and passes. Each test uses its own database and drops
//! it at the end.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use rustci_control::store::mongo::MongoStore;
use rustci_control::store::{Batch, JobState, Store, StoreError, StoredJob};
use tokio::runtime::Handle;
use tokio::task::block_in_place;
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

use crate::store_fixtures::{self, job, leased};
use crate::support_mongo::{
    mongo_test_database, mongo_uri_or_skip, MONGO_ENV, MONGO_SESSIONS as SESSIONS,
};

fn jobs(v: Vec<StoredJob>) -> Batch {
    Batch {
        jobs: v,
        ..Batch::default()
    }
}

/// Runs `contract` on a store in a database of its own, then drops the database.
async fn on_mongo(test: &str, contract: impl FnOnce(&mut MongoStore)) {
    let _shared = SESSIONS.read().await;
    let Some(mut s) = store(test).await else {
        return;
    };
    contract(&mut s);
    drop_db(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_commit_and_load_round_trip() {
    on_mongo("mongo_commit_and_load_round_trip", |s| {
        store_fixtures::commit_and_load_round_trip(s);
        // Finished jobs carry their JobRecord for the retraining side.
        let raw = block_in_place(|| {
            Handle::current().block_on(async {
                s.database()
                    .collection::<Document>("jobs")
                    .find_one(doc! { "_id": 3_i64 })
                    .await
            })
        })
        .unwrap()
        .unwrap();
        let record = raw.get_document("record").unwrap();
        assert_eq!(record.get_str("id").unwrap(), "3");
        assert_eq!(record.get_str("outcome").unwrap(), "success");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_pipelines_round_trip() {
    on_mongo("mongo_pipelines_round_trip", |s| {
        store_fixtures::pipelines_round_trip(s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_updates_and_change_log() {
    on_mongo("mongo_updates_and_change_log", |s| {
        store_fixtures::updates_and_change_log(s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_list_jobs_pages_by_id_and_filters() {
    on_mongo("mongo_list_jobs_pages_by_id_and_filters", |s| {
        store_fixtures::list_jobs_pages_by_id_and_filters(s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_duplicate_request_id_is_refused() {
    on_mongo("mongo_duplicate_request_id_is_refused", |s| {
        // All or nothing only with transactions (replica set / sharded cluster).
        let atomic = s.uses_transactions();
        if !atomic {
            let _ = writeln!(
                std::io::stderr(),
                "note: standalone server, no transactions: atomicity not checked"
            );
        }
        let err = store_fixtures::duplicate_request_id_fails_the_batch(s, atomic);
        assert!(matches!(err, StoreError::Mongo { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_everything_survives_a_reconnect() {
    on_mongo("mongo_everything_survives_a_reconnect", |s| {
        let uri = std::env::var(MONGO_ENV).unwrap();
        let db = s.database().name().to_string();
        store_fixtures::everything_survives_a_reopen(s, &mut || {
            Box::new(MongoStore::connect(&uri, &db).expect("reconnect"))
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_a_later_take_over_fences_the_earlier_writer() {
    // take_over ends every session of the URI's user: no other test may run meanwhile.
    let _alone = SESSIONS.write().await;
    let Some(s) = store("mongo_a_later_take_over_fences_the_earlier_writer").await else {
        return;
    };
    let uri = std::env::var(MONGO_ENV).unwrap();
    let db = s.database().name().to_string();
    let connect = || MongoStore::connect(&uri, &db).expect("connect");
    store_fixtures::a_later_take_over_fences_the_earlier_writer(
        &mut connect(),
        &mut connect(),
        &mut connect(),
    );
    drop_db(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_history_gives_records_of_finished_jobs() {
    on_mongo("mongo_history_gives_records_of_finished_jobs", |s| {
        store_fixtures::history_gives_records_of_finished_jobs(s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_prune_keeps_the_newest_changes() {
    on_mongo("mongo_prune_keeps_the_newest_changes", |s| {
        store_fixtures::prune_keeps_the_newest_changes(s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_a_long_change_log_is_trimmed_a_little_at_a_time() {
    // After each commit is durable here, outside its transaction.
    on_mongo(
        "mongo_a_long_change_log_is_trimmed_a_little_at_a_time",
        |s| store_fixtures::a_long_change_log_is_trimmed_a_little_at_a_time(s),
    )
    .await;
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
