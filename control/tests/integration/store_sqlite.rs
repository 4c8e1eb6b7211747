//! The SQLite store: round trips, change log, pagination, atomicity, durability across a
//! reopen, corrupt rows and schema versions.

use std::path::Path;
use std::time::Instant;

use rustci_control::store::sqlite::{SqliteStore, SyncMode, DB_FILE};
use rustci_control::store::{JobFilter, JobState, Store, StoreError};

use crate::store_fixtures;
use store_fixtures::{commit_jobs, finished, job, leased};

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, SyncMode::Normal).expect("open store")
}

#[test]
fn commit_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let mut s = SqliteStore::open(&data, SyncMode::Full).unwrap();
    assert!(data.join(DB_FILE).exists(), "the directory is made");
    store_fixtures::commit_and_load_round_trip(&mut s);
}

#[test]
fn pipelines_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    store_fixtures::pipelines_round_trip(&mut open(dir.path()));
}

#[test]
fn updates_bump_the_job_and_every_revision_is_in_the_change_log() {
    let dir = tempfile::tempdir().unwrap();
    store_fixtures::updates_and_change_log(&mut open(dir.path()));
}

#[test]
fn list_jobs_pages_by_id_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    store_fixtures::list_jobs_pages_by_id_and_filters(&mut open(dir.path()));
}

#[test]
fn duplicate_request_id_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let err = store_fixtures::duplicate_request_id_fails_the_batch(&mut open(dir.path()), true);
    assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
    assert!(
        err.to_string().contains(DB_FILE),
        "the error names the database: {err}"
    );
}

#[test]
fn a_later_take_over_fences_the_earlier_writer() {
    let dir = tempfile::tempdir().unwrap();
    store_fixtures::a_later_take_over_fences_the_earlier_writer(
        &mut open(dir.path()),
        &mut open(dir.path()),
        &mut open(dir.path()),
    );
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    store_fixtures::everything_survives_a_reopen(&mut s, &mut || {
        Box::new(SqliteStore::open(dir.path(), SyncMode::Full).unwrap())
    });
    let snap = s.load(0).unwrap();
    drop(s);
    assert_eq!(
        SqliteStore::open(dir.path(), SyncMode::Normal)
            .unwrap()
            .load(0)
            .unwrap(),
        snap,
        "closed, and opened in the other sync mode"
    );
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
    store_fixtures::history_gives_records_of_finished_jobs(&mut open(dir.path()));
}

#[test]
fn prune_keeps_the_newest_changes() {
    let dir = tempfile::tempdir().unwrap();
    store_fixtures::prune_keeps_the_newest_changes(&mut open(dir.path()));
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
    // What version 1 wrote: no reported_run_ms column, no pipelines (version 3).
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "DROP INDEX jobs_pipeline; DROP TABLE pipelines; \
             ALTER TABLE jobs DROP COLUMN pipeline_id; ALTER TABLE jobs DROP COLUMN pipeline; \
             ALTER TABLE jobs DROP COLUMN reported_run_ms; \
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
    // The migrated database takes pipelines.
    let p = store_fixtures::pipeline(10, "acme", "main", 1);
    let pj = store_fixtures::pipeline_job(10, 10, "build", 0, None, 5);
    s.commit(&rustci_control::store::Batch {
        jobs: vec![pj.clone()],
        pipelines: vec![p.clone()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.get_pipeline(10).unwrap(), Some(p));
    assert_eq!(s.pipeline_jobs(10).unwrap(), vec![pj]);
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
