//! `read_history`: the live store's finished jobs as `JobRecord`s (the source of
//! `rustci retrain`), from the embedded SQLite store (also while its server still has it
//! open) and from MongoDB (when `RUSTCI_TEST_MONGODB_URI` is set; otherwise a SKIPPED
//! line), and bad sources that must give errors naming them.

use std::sync::Arc;

use rustci_control::server::live::{Completion, Live, LiveConfig, ManualClock, Submission};
use rustci_control::store::history::{is_store_source, read_history, HistorySource};
use rustci_control::store::mongo::MongoStore;
use rustci_control::store::sqlite::{SqliteStore, SyncMode, DB_FILE};
use rustci_control::store::{Batch, JobState, Store, StoreError};
use rustci_datasets::{JobRecord, Outcome};
use rustci_scheduler::PolicyConfig;

use crate::common;
use crate::store_fixtures;
use crate::support_mongo::{
    mongo_test_database, mongo_uri_or_skip, uri_with_database, MONGO_SESSIONS,
};
use store_fixtures::{finished, job, leased};

/// 2023-11-14T22:13:20Z in ms: a whole second, so record seconds are easy to state.
const T0: i64 = 1_700_000_000_000;
const T0_S: i64 = T0 / 1000;

fn submission(rid: &str, tenant: &str, job_name: &str) -> Submission {
    Submission {
        request_id: rid.into(),
        tenant: tenant.into(),
        labels: vec!["linux".into()],
        command: "true".into(),
        job_name: job_name.into(),
        ..Submission::default()
    }
}

/// Ids of the jobs [`drive`] creates.
#[derive(Debug)]
struct Ids {
    ok: u64,
    failed: u64,
    cancelled_running: u64,
    cancelled_queued: u64,
    leased: u64,
    queued: u64,
}

/// Runs jobs through the live driver (on a virtual clock) into `store`: one succeeds,
/// one fails, one is cancelled while running, one is cancelled before it starts, one is
/// still leased and one can never start (queued). Returns the live state, still open.
fn drive(store: Box<dyn Store>) -> (Live, Ids) {
    let clock = Arc::new(ManualClock::new(T0));
    let config = LiveConfig {
        policy: PolicyConfig::named("fcfs").expect("policy"),
        lease_ttl_ms: 3_600_000,
        ..LiveConfig::default()
    };
    let mut live = Live::open(config, clock.clone(), store).expect("live");
    let lease_of = |live: &mut Live, id: u64| {
        let lease = live
            .acquire("w1", 1)
            .expect("acquire")
            .pop()
            .expect("a lease");
        assert_eq!(lease.job.id, id, "leased in submit order");
        lease.fencing_token
    };
    let done = |live: &mut Live, id: u64, token: u64, success: bool| {
        live.complete(
            "w1",
            Completion {
                job: id,
                fencing_token: token,
                success,
                exit_code: i32::from(!success),
                reported_run_ms: None,
            },
        )
        .expect("complete")
    };

    // t=0: a (acme) with every optional field; t=1.4 s: b (zeta), no project, no
    // requested time. No runner yet: both wait.
    let a = live
        .submit(Submission {
            project: "web".into(),
            branch: "main".into(),
            requested_ms: 90_000,
            qos: "urgent".into(),
            labels: vec!["linux".into(), "x86_64".into()],
            slots: 1,
            ..submission("a", "acme", "build")
        })
        .expect("submit a");
    clock.set(T0 + 1_400);
    let b = live
        .submit(submission("b", "zeta", "test"))
        .expect("submit b");
    // t=10 s: a one-slot runner joins; a starts (waited 10 s).
    clock.set(T0 + 10_000);
    live.register_runner("w1", "lin", vec!["linux".into(), "x86_64".into()], 1)
        .expect("register");
    let token_a = lease_of(&mut live, a.id);
    // t=70.4 s: a succeeds (ran 60.4 s); b starts (waited 69 s).
    clock.set(T0 + 70_400);
    done(&mut live, a.id, token_a, true);
    let token_b = lease_of(&mut live, b.id);
    // t=72 s: c queues behind b; t=72.5 s: e too, and is cancelled at 73 s (never ran).
    clock.set(T0 + 72_000);
    let c = live
        .submit(submission("c", "acme", "deploy"))
        .expect("submit c");
    clock.set(T0 + 72_500);
    let e = live
        .submit(submission("e", "acme", "lint"))
        .expect("submit e");
    clock.set(T0 + 73_000);
    assert_eq!(live.cancel(e.id).expect("cancel e").start_ms, None);
    // t=76 s: b fails (ran 5.6 s); c starts (waited 4 s) and is cancelled at 80 s.
    clock.set(T0 + 76_000);
    done(&mut live, b.id, token_b, false);
    lease_of(&mut live, c.id);
    clock.set(T0 + 80_000);
    live.cancel(c.id).expect("cancel c");
    // t=81 s: d starts at once and stays leased; g needs a label no runner has.
    clock.set(T0 + 81_000);
    let d = live
        .submit(submission("d", "zeta", "test"))
        .expect("submit d");
    lease_of(&mut live, d.id);
    let g = live
        .submit(Submission {
            labels: vec!["gpu".into()],
            ..submission("g", "acme", "train")
        })
        .expect("submit g");
    clock.set(T0 + 90_000);
    assert_eq!(live.job(d.id).expect("d").state, JobState::Leased);
    assert_eq!(live.job(g.id).expect("g").state, JobState::Queued);
    let ids = Ids {
        ok: a.id,
        failed: b.id,
        cancelled_running: c.id,
        cancelled_queued: e.id,
        leased: d.id,
        queued: g.id,
    };
    (live, ids)
}

/// What [`drive`] leaves in history, in submit order.
fn expected(ids: &Ids) -> Vec<JobRecord> {
    let mut a = JobRecord::new(ids.ok.to_string(), "acme", T0_S);
    a.project = Some("web".into());
    a.job_name = Some("build".into());
    a.branch = Some("main".into());
    a.labels = vec!["linux".into(), "x86_64".into()];
    a.requested_s = Some(90);
    a.wait_s = Some(10);
    a.run_s = Some(60);
    a.outcome = Outcome::Success;
    a.qos = Some("urgent".into());
    a.queue = Some("w1".into());

    let mut b = JobRecord::new(ids.failed.to_string(), "zeta", T0_S + 1);
    b.job_name = Some("test".into());
    b.labels = vec!["linux".into()];
    b.wait_s = Some(69);
    b.run_s = Some(6);
    b.outcome = Outcome::Failure;
    b.queue = Some("w1".into());

    let mut c = JobRecord::new(ids.cancelled_running.to_string(), "acme", T0_S + 72);
    c.job_name = Some("deploy".into());
    c.labels = vec!["linux".into()];
    c.wait_s = Some(4);
    c.run_s = Some(4);
    c.outcome = Outcome::Cancelled;
    c.queue = Some("w1".into());
    vec![a, b, c]
}

/// `actual` is `expected` but for the QoS of jobs submitted without one (the server's
/// default class, whatever it is named).
fn assert_history(actual: &[JobRecord], ids: &Ids) {
    let mut expected = expected(ids);
    assert_eq!(actual.len(), expected.len(), "{actual:#?}");
    for (e, a) in expected.iter_mut().zip(actual) {
        if e.qos.is_none() {
            assert!(
                a.qos.as_deref().is_some_and(|q| !q.is_empty()),
                "the default QoS class is recorded: {a:?}"
            );
            e.qos = a.qos.clone();
        }
    }
    assert_eq!(actual, expected.as_slice());
    let left_out = [ids.cancelled_queued, ids.leased, ids.queued].map(|i| i.to_string());
    assert!(actual.iter().all(|r| !left_out.contains(&r.id)));
}

#[tokio::test]
async fn sqlite_history_has_exactly_the_finished_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data, SyncMode::Normal).expect("store");
    let (live, ids) = drive(Box::new(store));

    // While the "server" still has the database open (WAL and shared memory present).
    let source = data.display().to_string();
    let open = read_history(&source).await.expect("read while open");
    assert_history(&open, &ids);
    drop(live);

    // Closed: every syntax of the same store gives the same records.
    let file = data.join(DB_FILE).display().to_string();
    for s in [
        source.clone(),
        file.clone(),
        format!("sqlite:{source}"),
        format!("sqlite:{file}"),
    ] {
        assert!(is_store_source(&s), "{s}");
        assert_eq!(read_history(&s).await.expect(&s), open, "{s}");
    }
}

#[tokio::test]
async fn sqlite_history_reads_beside_a_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = SqliteStore::open(dir.path(), SyncMode::Normal).expect("store");
    let source = dir.path().display().to_string();
    let done = |id: u64| {
        finished(
            leased(job(id, "acme", JobState::Queued, 0), id, 0),
            JobState::Succeeded,
            2_000_000 + id as i64,
            id,
        )
    };
    for round in 0..5u64 {
        let batch = Batch {
            jobs: (1..=100).map(|i| done(round * 100 + i)).collect(),
            ..Batch::default()
        };
        writer.commit(&batch).expect("commit");
        let h = read_history(&source).await.expect("read");
        assert_eq!(h.len() as u64, (round + 1) * 100);
    }
    // The reader changed nothing: the writer goes on committing.
    writer
        .commit(&Batch {
            jobs: vec![done(501)],
            ..Batch::default()
        })
        .expect("commit after the reads");
    assert_eq!(read_history(&source).await.expect("read").len(), 501);
}

#[tokio::test]
async fn sqlite_history_maps_empty_fields_and_orders_by_submit_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = SqliteStore::open(dir.path(), SyncMode::Normal).expect("store");
    // Written by hand, not by the live driver: empty strings and a zero requested time
    // become none; ids out of submit order come back in submit order.
    let mut late = job(1, "acme", JobState::Queued, 0);
    late.submit_ms = 5_000_700;
    late.project = Some(String::new());
    late.job_name = Some(String::new());
    late.branch = Some(String::new());
    late.requested_ms = Some(0);
    let late = finished(leased(late, 1, 0), JobState::Failed, 5_020_199, 1);
    let mut early = job(2, "zeta", JobState::Queued, 0);
    early.submit_ms = 4_000_000;
    early.requested_ms = Some(1_500);
    let early = finished(leased(early, 2, 0), JobState::Succeeded, 4_012_500, 2);
    let mut no_start = job(3, "acme", JobState::Queued, 0);
    no_start.state = JobState::Cancelled;
    no_start.end_ms = Some(4_500_000);
    no_start.revision = 3;
    s.commit(&Batch {
        jobs: vec![late, early, no_start],
        ..Batch::default()
    })
    .expect("commit");

    let h = read_history(&dir.path().display().to_string())
        .await
        .expect("read");
    let ids: Vec<&str> = h.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["2", "1"], "by submit time; no start, no record");
    let (early, late) = (&h[0], &h[1]);
    assert_eq!(
        (early.submit_s, early.wait_s, early.run_s, early.requested_s),
        (4_000, Some(10), Some(3), Some(2)),
        "12.5 s - 10 s = 2.5 s rounds to 3; 1.5 s requested rounds to 2"
    );
    assert_eq!(
        (late.submit_s, late.wait_s, late.run_s, late.requested_s),
        (5_001, Some(10), Some(9), None),
        "19.499 s - 10 s rounds to 9"
    );
    assert_eq!(
        (&late.project, &late.job_name, &late.branch),
        (&None, &None, &None)
    );
    assert_eq!(early.project.as_deref(), Some("proj"));
    assert_eq!(early.job_name.as_deref(), Some("build"));
    assert_eq!(late.outcome, Outcome::Failure);
    assert_eq!(early.qos.as_deref(), Some("normal"));
    assert_eq!(early.slots, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_history_has_exactly_the_finished_jobs() {
    let _shared = MONGO_SESSIONS.read().await;
    let Some(uri) = mongo_uri_or_skip("mongo_history_has_exactly_the_finished_jobs") else {
        return;
    };
    let db = mongo_test_database();
    let store = MongoStore::connect_async(&uri, &db)
        .await
        .expect("connect to MongoDB");
    let database = store.database().clone();
    let (live, ids) = drive(Box::new(store));
    let source = uri_with_database(&uri, &db);
    let result = read_history(&source).await;
    drop(live);
    let cleanup = database.drop().await;
    let h = result.expect("read MongoDB history");
    assert_history(&h, &ids);
    // The `record` subdocuments stored beside finished jobs are not read.
    assert!(h.iter().all(|r| r.extra.is_empty()));
    cleanup.expect("drop the test database");
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_history_refuses_a_database_without_jobs() {
    let _shared = MONGO_SESSIONS.read().await;
    let Some(uri) = mongo_uri_or_skip("mongo_history_refuses_a_database_without_jobs") else {
        return;
    };
    let db = mongo_test_database();
    let source = uri_with_database(&uri, &db);
    let err = read_history(&source).await.expect_err("an empty database");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::History { .. }), "{err:?}");
    assert!(
        msg.contains(&db) && msg.contains("not a rustci store"),
        "{msg}"
    );
}

/// `source` gives an error (not a panic) whose message contains every one of `needles`
/// and none of `secret`.
async fn expect_bad(source: &str, needles: &[&str]) -> StoreError {
    let Err(err) = read_history(source).await else {
        panic!("{source:?} must be refused");
    };
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "{source:?}: {n:?} missing from {msg:?}");
    }
    assert!(!msg.contains("s3cret"), "the password leaked: {msg}");
    err
}

#[tokio::test]
async fn bad_sources_are_errors_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // Malformed MongoDB URIs: refused before any connection.
    for uri in [
        "mongodb://",
        "mongodb://u:s3cret@host:notaport/db",
        "mongodb://h/db?serverSelectionTimeoutMS=soon",
    ] {
        let err = expect_bad(uri, &["history source", "not a valid MongoDB URI"]).await;
        assert!(matches!(err, StoreError::BadSource { .. }), "{err:?}");
    }
    // No DNS resolver in this build: said plainly, and the source named.
    expect_bad(
        "mongodb+srv://u:s3cret@cluster.example.net/db",
        &["mongodb+srv://u:***@cluster.example.net/db", "dns-resolver"],
    )
    .await;
    // A valid URI nobody answers at: the driver's error, with the source.
    let err = expect_bad(
        "mongodb://u:s3cret@127.0.0.1:1/hist?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
        &["mongodb://u:***@127.0.0.1:1/hist", "database hist"],
    )
    .await;
    assert!(matches!(err, StoreError::History { .. }), "{err:?}");

    // Paths.
    let missing = d.join("no-such-dir");
    expect_bad(
        &missing.display().to_string(),
        &[&missing.display().to_string(), "No such file"],
    )
    .await;
    expect_bad(
        &format!("sqlite:{}", missing.display()),
        &[&missing.display().to_string()],
    )
    .await;
    expect_bad("", &["empty path"]).await;
    expect_bad("sqlite:", &["empty path"]).await;
    expect_bad("postgres://db/x", &["postgres://db/x", "unknown scheme"]).await;
    let empty_dir = d.join("empty");
    std::fs::create_dir(&empty_dir).expect("mkdir");
    expect_bad(
        &empty_dir.display().to_string(),
        &[&empty_dir.display().to_string(), DB_FILE],
    )
    .await;

    // A file that is not SQLite.
    let text = d.join("jobs.csv");
    std::fs::write(&text, "id,tenant,submit_s\n1,acme,0\n".repeat(100)).expect("write");
    assert!(!is_store_source(&text.display().to_string()));
    let err = expect_bad(
        &text.display().to_string(),
        &[&text.display().to_string(), "not a database"],
    )
    .await;
    assert!(matches!(err, StoreError::History { .. }), "{err:?}");

    // SQLite, but not a rustci store; and a store of a newer schema.
    let other = d.join("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER);"))
        .expect("create other.db");
    assert!(is_store_source(&other.display().to_string()));
    expect_bad(
        &other.display().to_string(),
        &[&other.display().to_string(), "not a rustci store"],
    )
    .await;
    let newer = d.join("newer");
    drop(SqliteStore::open(&newer, SyncMode::Normal).expect("store"));
    rusqlite::Connection::open(newer.join(DB_FILE))
        .and_then(|c| {
            c.execute(
                "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                [],
            )
        })
        .expect("bump the schema version");
    expect_bad(&newer.display().to_string(), &["schema version 99"]).await;

    // Nothing was created by the failed reads.
    assert!(!missing.exists());
    assert!(!empty_dir.join(DB_FILE).exists());
}

#[test]
fn sources_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(SqliteStore::open(dir.path(), SyncMode::Normal).expect("store"));
    let file = dir.path().join(DB_FILE);
    for s in [
        dir.path().display().to_string(),
        format!("sqlite:{}", dir.path().display()),
        file.display().to_string(),
    ] {
        assert_eq!(
            HistorySource::parse(&s).expect(&s),
            HistorySource::Sqlite { file: file.clone() }
        );
    }
    let src = HistorySource::parse("mongodb://u:s3cret@db1:27017,db2:27017/ci?replicaSet=rs0")
        .expect("mongodb");
    assert!(matches!(&src, HistorySource::Mongo { database, .. } if database == "ci"));
    assert_eq!(
        src.name(),
        "mongodb://u:***@db1:27017,db2:27017/ci?replicaSet=rs0 (database ci)"
    );
    assert!(matches!(
        HistorySource::parse("mongodb://localhost").expect("mongodb"),
        HistorySource::Mongo { database, .. } if database == "rustci"
    ));
}

/// `rustci retrain --from DIR` with a plain data directory reads the store, as
/// `sqlite:DIR` does (not as a trace directory).
#[test]
fn retrain_reads_a_data_directory_given_as_a_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut store = SqliteStore::open(&data, SyncMode::Normal).expect("store");
    let batch = Batch {
        jobs: (1..=200u64)
            .map(|id| {
                let tenant = if id % 2 == 0 { "acme" } else { "zeta" };
                let mut queued = job(id, tenant, JobState::Queued, id);
                queued.submit_ms = id as i64 * 60_000;
                let run = leased(queued, id, id);
                let end = run.start_ms.unwrap_or(0) + 30_000 + (id as i64 % 7) * 1_000;
                finished(run, JobState::Succeeded, end, id)
            })
            .collect(),
        ..Batch::default()
    };
    store.commit(&batch).expect("commit");
    drop(store);
    let out = dir.path().join("models");
    let run = common::rustci([
        "retrain".as_ref(),
        "--from".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "-q".as_ref(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    assert_eq!(report["jobs"], 200, "{report}");
    assert!(out.join("CURRENT").is_file());
}
