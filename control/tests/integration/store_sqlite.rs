//! The SQLite store: round trips, change log, pagination, atomicity, durability across a
//! reopen, corrupt rows and schema versions.

use std::path::Path;
use std::time::Instant;

use rustci_control::store::sqlite::{SqliteStore, SyncMode, DB_FILE};
use rustci_control::store::{Batch, JobFilter, JobState, Store, StoreError, StoredJob};
use rustci_datasets::Outcome;

use crate::store_fixtures;
use store_fixtures::{commit_jobs, finished, job, leased, runner};

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, SyncMode::Normal).expect("open store")
}

#[test]
fn commit_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("nested/data"), SyncMode::Full).unwrap();
    assert!(dir.path().join("nested/data").join(DB_FILE).exists());
    assert_eq!(
        s.load(0).unwrap(),
        Default::default(),
        "a new store is empty"
    );

    let q = job(1, "acme", JobState::Queued, 1);
    let l = leased(job(2, "acme", JobState::Queued, 0), 7, 2);
    let f = finished(
        leased(job(3, "zeta", JobState::Queued, 0), 5, 0),
        JobState::Succeeded,
        2_000_000,
        3,
    );
    let old = finished(
        job(4, "zeta", JobState::Queued, 0),
        JobState::Cancelled,
        10,
        4,
    );
    let batch = Batch {
        jobs: vec![q.clone(), l.clone(), f.clone(), old.clone()],
        runners: vec![runner("r1"), runner("r2")],
        removed_runners: vec![],
    };
    s.commit(&batch).unwrap();
    s.commit(&Batch {
        removed_runners: vec!["r2".into()],
        ..Batch::default()
    })
    .unwrap();
    s.commit(&Batch::default()).unwrap();

    let snap = s.load(1_000_000).unwrap();
    assert_eq!(snap.unfinished, vec![q.clone(), l.clone()]);
    assert_eq!(snap.recently_finished, vec![f.clone()]);
    assert_eq!(snap.runners, vec![runner("r1")]);
    assert_eq!(snap.max_job_id, 4);
    assert_eq!(snap.max_revision, 4);
    assert_eq!(snap.max_fencing_token, 7);
    assert_eq!(
        s.load(0).unwrap().recently_finished,
        vec![f.clone(), old.clone()]
    );

    assert_eq!(s.get_job(2).unwrap(), Some(l));
    assert_eq!(s.get_job(3).unwrap(), Some(f));
    assert_eq!(s.get_job(99).unwrap(), None);
}

#[test]
fn updates_bump_the_job_and_every_revision_is_in_the_change_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let v1 = job(1, "acme", JobState::Queued, 1);
    let other = job(2, "zeta", JobState::Queued, 2);
    let v2 = leased(v1.clone(), 11, 3);
    let v3 = finished(v2.clone(), JobState::Failed, 1_100_000, 4);
    commit_jobs(&mut s, vec![v1.clone(), other.clone()]);
    commit_jobs(&mut s, vec![v2.clone()]);
    commit_jobs(&mut s, vec![v3.clone()]);

    assert_eq!(s.get_job(1).unwrap(), Some(v3.clone()));
    assert_eq!(
        s.changes_since(0, None, 100).unwrap(),
        vec![v1.clone(), other.clone(), v2.clone(), v3.clone()]
    );
    assert_eq!(
        s.changes_since(2, None, 100).unwrap(),
        vec![v2.clone(), v3.clone()]
    );
    assert_eq!(
        s.changes_since(0, None, 2).unwrap(),
        vec![v1.clone(), other.clone()]
    );
    assert_eq!(
        s.changes_since(0, Some("acme"), 100).unwrap(),
        vec![v1, v2, v3.clone()]
    );
    assert_eq!(s.changes_since(0, Some("zeta"), 100).unwrap(), vec![other]);
    assert_eq!(s.changes_since(0, Some("nobody"), 100).unwrap(), vec![]);
    assert_eq!(s.changes_since(4, None, 100).unwrap(), vec![]);

    let snap = s.load(0).unwrap();
    assert_eq!(snap.max_revision, 4);
    assert_eq!(
        snap.max_fencing_token, 11,
        "the token of a finished job still counts"
    );
    assert_eq!(snap.unfinished.len(), 1);
    assert_eq!(snap.recently_finished, vec![v3]);
}

#[test]
fn list_jobs_pages_by_id_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let jobs: Vec<StoredJob> = (1..=10)
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
    commit_jobs(&mut s, jobs);

    let all = JobFilter::default();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.list_jobs(&all, after, 3).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().unwrap().id;
        seen.extend(page.iter().map(|j| j.id));
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert!(s.list_jobs(&all, 0, 0).unwrap().is_empty());

    let ids = |v: Vec<StoredJob>| v.iter().map(|j| j.id).collect::<Vec<_>>();
    let even = JobFilter {
        tenant: Some("even".into()),
        state: None,
        ..JobFilter::default()
    };
    assert_eq!(
        ids(s.list_jobs(&even, 0, 100).unwrap()),
        vec![2, 4, 6, 8, 10]
    );
    assert_eq!(ids(s.list_jobs(&even, 4, 2).unwrap()), vec![6, 8]);
    let done = JobFilter {
        tenant: None,
        state: Some(JobState::Succeeded),
        ..JobFilter::default()
    };
    assert_eq!(ids(s.list_jobs(&done, 0, 100).unwrap()), vec![3, 6, 9]);
    assert_eq!(ids(s.list_jobs(&done, 3, 1).unwrap()), vec![6]);
    let odd_queued = JobFilter {
        tenant: Some("odd".into()),
        state: Some(JobState::Queued),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(s.list_jobs(&odd_queued, 0, 100).unwrap()),
        vec![1, 5, 7]
    );
    let by_request = |tenant: &str, request: &str| JobFilter {
        tenant: Some(tenant.into()),
        request_id: Some(request.into()),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(s.list_jobs(&by_request("even", "req-4"), 0, 100).unwrap()),
        vec![4]
    );
    assert!(s
        .list_jobs(&by_request("odd", "req-4"), 0, 100)
        .unwrap()
        .is_empty());
    let request_only = JobFilter {
        request_id: Some("req-7".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(s.list_jobs(&request_only, 0, 100).unwrap()), vec![7]);
    let all_filters = JobFilter {
        tenant: Some("odd".into()),
        state: Some(JobState::Succeeded),
        request_id: Some("req-9".into()),
    };
    assert_eq!(ids(s.list_jobs(&all_filters, 0, 100).unwrap()), vec![9]);
    assert!(s.list_jobs(&all_filters, 9, 100).unwrap().is_empty());
    let none = JobFilter {
        tenant: Some("nobody".into()),
        state: None,
        ..JobFilter::default()
    };
    assert!(s.list_jobs(&none, 0, 100).unwrap().is_empty());
}

#[test]
fn duplicate_request_id_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let first = job(1, "acme", JobState::Queued, 1);
    commit_jobs(&mut s, vec![first.clone()]);
    let before = s.load(0).unwrap();

    let ok = job(2, "acme", JobState::Queued, 2);
    let mut dup = job(3, "acme", JobState::Queued, 3);
    dup.request_id = first.request_id.clone();
    let bump = leased(first.clone(), 9, 4);
    let err = s
        .commit(&Batch {
            jobs: vec![ok.clone(), bump, dup],
            runners: vec![runner("r9")],
            removed_runners: vec![],
        })
        .expect_err("a second job for the same (tenant, request_id) must fail");
    assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
    assert!(
        err.to_string().contains(DB_FILE),
        "the error names the database: {err}"
    );

    // Nothing of the failed batch is visible.
    assert_eq!(s.get_job(2).unwrap(), None);
    assert_eq!(s.get_job(3).unwrap(), None);
    assert_eq!(s.get_job(1).unwrap(), Some(first.clone()));
    assert_eq!(s.changes_since(1, None, 100).unwrap(), vec![]);
    assert_eq!(
        s.load(0).unwrap(),
        before,
        "runners, tokens and revisions unchanged"
    );

    // The same request id in another tenant is fine, and the store keeps working.
    let mut other = job(2, "zeta", JobState::Queued, 2);
    other.request_id = first.request_id.clone();
    commit_jobs(&mut s, vec![other.clone()]);
    assert_eq!(s.get_job(2).unwrap(), Some(other));
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (snap, changes) = {
        let mut s = open(dir.path());
        let a = job(1, "acme", JobState::Queued, 1);
        let b = leased(job(2, "acme", JobState::Queued, 0), 42, 2);
        let c = finished(
            job(3, "zeta", JobState::Queued, 0),
            JobState::Succeeded,
            5_000_000,
            3,
        );
        s.commit(&Batch {
            jobs: vec![a, b, c],
            runners: vec![runner("r1")],
            removed_runners: vec![],
        })
        .unwrap();
        commit_jobs(
            &mut s,
            vec![finished(
                job(1, "acme", JobState::Queued, 0),
                JobState::Cancelled,
                6_000_000,
                4,
            )],
        );
        (s.load(0).unwrap(), s.changes_since(0, None, 100).unwrap())
    };
    for mode in [SyncMode::Full, SyncMode::Normal] {
        let mut s = SqliteStore::open(dir.path(), mode).unwrap();
        assert_eq!(s.load(0).unwrap(), snap);
        assert_eq!(s.changes_since(0, None, 100).unwrap(), changes);
        assert_eq!(snap.max_fencing_token, 42);
        assert_eq!(snap.max_revision, 4);
        assert_eq!(snap.max_job_id, 3);
    }
}

#[test]
fn corrupt_rows_are_errors_naming_the_job() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path());
        commit_jobs(
            &mut s,
            vec![
                job(1, "acme", JobState::Queued, 1),
                job(2, "acme", JobState::Queued, 2),
                job(3, "acme", JobState::Queued, 3),
            ],
        );
    }
    {
        let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        raw.execute("UPDATE jobs SET labels = 'not json [' WHERE id = 1", [])
            .unwrap();
        raw.execute("UPDATE jobs SET state = 'exploded' WHERE id = 2", [])
            .unwrap();
        raw.execute("UPDATE jobs SET slots = -4 WHERE id = 3", [])
            .unwrap();
        raw.execute("UPDATE job_changes SET job = '{}' WHERE revision = 2", [])
            .unwrap();
    }
    let mut s = open(dir.path());
    let expect_corrupt = |r: Result<_, StoreError>, needles: &[&str]| match r {
        Err(StoreError::Corrupt { what, reason }) => {
            for n in needles {
                assert!(what.contains(n), "{what:?} ({reason}) should mention {n:?}");
            }
        }
        other => panic!("expected Corrupt, got {other:?}"),
    };
    expect_corrupt(s.get_job(1).map(|_| ()), &["job 1", "labels"]);
    expect_corrupt(s.get_job(2).map(|_| ()), &["job 2", "state"]);
    expect_corrupt(s.get_job(3).map(|_| ()), &["job 3", "slots"]);
    expect_corrupt(
        s.list_jobs(&JobFilter::default(), 0, 10).map(|_| ()),
        &["job 1"],
    );
    expect_corrupt(s.load(0).map(|_| ()), &["job 1"]);
    expect_corrupt(
        s.changes_since(1, None, 10).map(|_| ()),
        &["job 2", "revision 2"],
    );
    assert_eq!(
        s.changes_since(2, None, 10).unwrap().len(),
        1,
        "later changes still read"
    );
}

#[test]
fn a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        raw.execute(
            "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    }
    let err =
        SqliteStore::open(dir.path(), SyncMode::Normal).expect_err("schema 99 must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("schema version 99") && msg.contains("newer"),
        "{msg}"
    );
    assert!(msg.contains(DB_FILE), "{msg}");
}

#[test]
fn history_gives_records_of_finished_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let mut a = job(1, "acme", JobState::Queued, 0);
    a.submit_ms = 1_000_000;
    a = leased(a, 1, 0);
    a.start_ms = Some(1_010_000);
    let a = finished(a, JobState::Succeeded, 1_070_000, 1);
    let mut b = job(2, "acme", JobState::Queued, 0);
    b.submit_ms = 2_000_000;
    let b = finished(b, JobState::Failed, 2_500_000, 2);
    let old = finished(
        job(3, "acme", JobState::Queued, 0),
        JobState::Cancelled,
        500,
        3,
    );
    let live = leased(job(4, "acme", JobState::Queued, 0), 2, 4);
    commit_jobs(&mut s, vec![a, b, old, live]);

    let h = s.history(1_000_000, 100).unwrap();
    assert_eq!(h.len(), 2, "only finished jobs since the cut-off: {h:?}");
    let r = &h[0];
    assert_eq!(r.id, "1");
    assert_eq!(r.tenant, "acme");
    assert_eq!(r.submit_s, 1_000);
    assert_eq!(r.wait_s, Some(10));
    assert_eq!(r.run_s, Some(60));
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.labels, vec!["linux".to_string(), "x86_64".to_string()]);
    assert_eq!(r.queue.as_deref(), Some("r1"));
    assert_eq!(h[1].id, "2");
    assert_eq!(h[1].outcome, Outcome::Failure);
    assert_eq!(h[1].run_s, Some(490));
    assert_eq!(s.history(0, 1).unwrap().len(), 1);
    assert_eq!(s.history(0, 100).unwrap().len(), 3);
}

#[test]
fn prune_keeps_the_newest_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let mut j = job(1, "acme", JobState::Queued, 1);
    commit_jobs(&mut s, vec![j.clone()]);
    for rev in 2..=5 {
        j.revision = rev;
        j.attempts = rev as u32;
        commit_jobs(&mut s, vec![j.clone()]);
    }
    assert_eq!(s.oldest_change().unwrap(), Some(1));
    assert_eq!(s.prune_changes(2).unwrap(), 3);
    assert_eq!(s.oldest_change().unwrap(), Some(4));
    assert_eq!(
        s.changes_since(0, None, 100)
            .unwrap()
            .iter()
            .map(|j| j.revision)
            .collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(
        s.prune_changes(0).unwrap(),
        1,
        "at least the newest change is kept"
    );
    assert_eq!(s.oldest_change().unwrap(), Some(5));
    assert_eq!(s.prune_changes(10).unwrap(), 0);
    assert_eq!(s.load(0).unwrap().max_revision, 5);
}

#[test]
fn a_long_change_log_is_trimmed_a_little_at_a_time() {
    // In the commit's own transaction here.
    let dir = tempfile::tempdir().unwrap();
    store_fixtures::a_long_change_log_is_trimmed_a_little_at_a_time(&mut open(dir.path()));
}

#[test]
fn a_version_1_database_is_read_as_is_and_migrated_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(DB_FILE);
    {
        let mut s = open(dir.path());
        let j = finished(
            leased(job(1, "acme", JobState::Queued, 1), 1, 2),
            JobState::Succeeded,
            1_060_000,
            3,
        );
        commit_jobs(&mut s, vec![j]);
    }
    // What version 1 wrote: no reported_run_ms column.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "ALTER TABLE jobs DROP COLUMN reported_run_ms; \
             UPDATE meta SET value = 1 WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    // A read-only reader (rustci retrain beside an old server) reads it as it is.
    let records = rustci_control::store::sqlite::read_history(&db).unwrap();
    assert_eq!(records.len(), 1);
    // Opening it for writing migrates it; the old job has no reported timing.
    let mut s = open(dir.path());
    let mut j = s.load(0).unwrap().recently_finished.remove(0);
    assert_eq!(j.reported_run_ms, None);
    j.reported_run_ms = Some(5_000);
    j.revision = 4;
    commit_jobs(&mut s, vec![j]);
    drop(s);
    let c = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, rustci_control::store::sqlite::SCHEMA_VERSION);
    let mut s = open(dir.path());
    let j = s.load(0).unwrap().recently_finished.remove(0);
    assert_eq!(j.reported_run_ms, Some(5_000));
}

/// Commit throughput, single-job batches (no assertion; run with `--ignored --nocapture`).
#[test]
#[ignore = "benchmark"]
fn bench_single_job_commits() {
    for (mode, n) in [(SyncMode::Normal, 100_000u64), (SyncMode::Full, 2_000)] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), mode).unwrap();
        let start = Instant::now();
        let mut rev = 0;
        for id in 1..=n {
            rev += 1;
            commit_jobs(&mut s, vec![job(id, "acme", JobState::Queued, rev)]);
        }
        let inserts = n as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        for id in 1..=n {
            rev += 1;
            commit_jobs(
                &mut s,
                vec![leased(job(id, "acme", JobState::Queued, 0), id, rev)],
            );
        }
        let updates = n as f64 / start.elapsed().as_secs_f64();
        println!("{mode:?}: {inserts:.0} inserts/s, {updates:.0} updates/s (single-job commits, n = {n})");
    }
}
