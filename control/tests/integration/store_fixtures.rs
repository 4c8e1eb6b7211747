//! Jobs and runners in the states the store tests need; shared by the SQLite and the
//! MongoDB store tests, which check the same `Store` contract.

use rustci_control::store::{Batch, JobState, Store, StoredJob, StoredRunner};

pub fn job(id: u64, tenant: &str, state: JobState, revision: u64) -> StoredJob {
    StoredJob {
        id,
        request_id: format!("req-{id}"),
        tenant: tenant.to_string(),
        labels: vec!["linux".into(), "x86_64".into()],
        slots: 2,
        command: format!("make test-{id}"),
        qos: "normal".into(),
        priority: 3,
        requested_ms: Some(600_000),
        project: Some("proj".into()),
        job_name: Some("build".into()),
        branch: None,
        state,
        submit_ms: 1_000_000 + id as i64,
        start_ms: None,
        end_ms: None,
        runner: None,
        fencing_token: 0,
        lease_expires_ms: None,
        exit_code: None,
        attempts: 0,
        revision,
        reported_run_ms: None,
    }
}

pub fn leased(mut j: StoredJob, token: u64, revision: u64) -> StoredJob {
    j.state = JobState::Leased;
    j.runner = Some("r1".into());
    j.fencing_token = token;
    j.start_ms = Some(j.submit_ms + 10_000);
    j.lease_expires_ms = Some(j.submit_ms + 70_000);
    j.attempts += 1;
    j.revision = revision;
    j
}

pub fn finished(mut j: StoredJob, state: JobState, end_ms: i64, revision: u64) -> StoredJob {
    j.state = state;
    if j.start_ms.is_none() {
        j.start_ms = Some(j.submit_ms + 10_000);
    }
    j.end_ms = Some(end_ms);
    j.lease_expires_ms = None;
    j.exit_code = Some(if state == JobState::Succeeded { 0 } else { 1 });
    j.revision = revision;
    j
}

pub fn runner(id: &str) -> StoredRunner {
    StoredRunner {
        id: id.into(),
        pool: "default".into(),
        labels: vec!["linux".into()],
        slots: 4,
        draining: false,
        last_heartbeat_ms: 123,
    }
}

/// The environment variable naming the MongoDB server of the MongoDB tests.
pub const MONGO_ENV: &str = "RUSTCI_TEST_MONGODB_URI";

/// Set (CI sets it) to make a missing MongoDB server a failure instead of a skip.
pub const MONGO_REQUIRE_ENV: &str = "RUSTCI_REQUIRE_MONGODB";

/// The test server's URI, or `None` after printing the visible skip line; with
/// `RUSTCI_REQUIRE_MONGODB=1` a missing URI fails the test instead.
pub fn mongo_uri_or_skip(test: &str) -> Option<String> {
    use std::io::Write;
    let Ok(uri) = std::env::var(MONGO_ENV) else {
        if std::env::var_os(MONGO_REQUIRE_ENV).is_some_and(|v| v != "0") {
            panic!("{test}: {MONGO_ENV} is not set, and {MONGO_REQUIRE_ENV} is");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {MONGO_ENV} not set");
        return None;
    };
    Some(uri)
}

/// Every test that uses the MongoDB server holds this shared; the take-over test, which
/// ends every session on the server (`killAllSessions`), holds it alone.
pub static MONGO_SESSIONS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A database name no other test run uses.
pub fn mongo_test_database() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "rustci_test_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// `uri` with its path (the database) set to `db`, keeping hosts and options. A path it
/// had (the authentication database, for MongoDB) becomes `authSource` unless set.
pub fn uri_with_database(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("a mongodb:// URI");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (path, options) = tail.split_at(tail.find('?').unwrap_or(tail.len()));
    let old_db = path.trim_start_matches('/');
    let mut options = options.to_string();
    if !old_db.is_empty() && !options.to_ascii_lowercase().contains("authsource=") {
        options.push(if options.is_empty() { '?' } else { '&' });
        options.push_str("authSource=");
        options.push_str(old_db);
    }
    format!("{scheme}://{authority}/{db}{options}")
}

/// The change-log contract of `prune_changes`: on a log of 12,000 entries, keeping 1,000
/// deletes a bounded chunk at once, and later commits (100 versions each) trim the rest a
/// little at a time until exactly the newest 1,000 are kept.
pub fn a_long_change_log_is_trimmed_a_little_at_a_time(s: &mut dyn Store) {
    let mut j = job(1, "acme", JobState::Queued, 1);
    for chunk in 0..12 {
        commit_jobs(s, versions(&mut j, chunk * 1_000 + 1, 1_000));
    }
    assert_eq!(s.oldest_change().expect("oldest"), Some(1));
    let now = s.prune_changes(1_000).expect("prune");
    assert!(now > 0 && now < 11_000, "deleted {now} at once");
    assert_eq!(s.oldest_change().expect("oldest"), Some(now + 1));
    // Each commit of 100 versions deletes up to 216 old entries.
    let mut next = 12_001;
    let mut oldest = now + 1;
    for _ in 0..100 {
        commit_jobs(s, versions(&mut j, next, 100));
        next += 100;
        let o = s.oldest_change().expect("oldest").expect("a kept entry");
        assert!(o >= oldest, "the oldest kept revision never goes back");
        oldest = o;
    }
    assert_eq!(oldest, next - 1_000, "exactly the newest 1,000 are kept");
    assert_eq!(
        s.changes_since(0, None, 5_000).expect("changes").len(),
        1_000
    );
}

/// Commits `jobs` (and nothing else) to `s`.
pub fn commit_jobs(s: &mut dyn Store, jobs: Vec<StoredJob>) {
    s.commit(&Batch {
        jobs,
        ..Batch::default()
    })
    .expect("commit");
}

/// Versions `from..from + n` of `j` (revisions in a row, as a change log gets them); `j`
/// is left at the last.
pub fn versions(j: &mut StoredJob, from: u64, n: u64) -> Vec<StoredJob> {
    (from..from + n)
        .map(|rev| {
            j.revision = rev;
            j.clone()
        })
        .collect()
}
