//! The `Store` contract, once for both stores: jobs and runners in the states the store
//! tests need, and each contract as a function of `&mut dyn Store` that the SQLite and
//! the MongoDB store tests both run (one fixture, two backends). What only one store has
//! (SQLite's schema versions and corrupt rows, MongoDB's write conflicts and take-over)
//! is tested beside it in `store_sqlite.rs` / `store_mongo.rs`.

use rustci_control::store::{
    Batch, JobFilter, JobState, PipelineCancel, PipelineFilter, PipelineJobInfo, PipelineStatus,
    Store, StoreError, StoredJob, StoredPipeline, StoredRunner,
};
use rustci_datasets::Outcome;
use rustci_scheduler::{AutoCancel, When};

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
        pipeline: None,
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

/// Commits (jobs, runner registrations and removals, an empty batch) load back as one
/// snapshot: unfinished jobs, jobs finished since the cut-off, live runners, and the
/// highest id, revision and fencing token.
pub fn commit_and_load_round_trip(s: &mut dyn Store) {
    assert_eq!(
        s.load(0).expect("load"),
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
    s.commit(&Batch {
        jobs: vec![q.clone(), l.clone(), f.clone(), old.clone()],
        runners: vec![runner("r1"), runner("r2")],
        removed_runners: vec![],
        pipelines: vec![],
    })
    .expect("commit");
    s.commit(&Batch {
        removed_runners: vec!["r2".into()],
        ..Batch::default()
    })
    .expect("commit a removal");
    s.commit(&Batch::default()).expect("commit nothing");

    let snap = s.load(1_000_000).expect("load");
    assert_eq!(snap.unfinished, vec![q, l.clone()]);
    assert_eq!(snap.recently_finished, vec![f.clone()]);
    assert_eq!(snap.runners, vec![runner("r1")]);
    assert_eq!(
        (snap.max_job_id, snap.max_revision, snap.max_fencing_token),
        (4, 4, 7)
    );
    assert_eq!(
        s.load(0).expect("load").recently_finished,
        vec![f.clone(), old],
        "a cut-off of 0 gives every finished job"
    );
    assert_eq!(s.get_job(2).expect("get"), Some(l));
    assert_eq!(s.get_job(3).expect("get"), Some(f));
    assert_eq!(s.get_job(99).expect("get"), None);
}

/// Every committed version of a job is in the change log, in revision order, per tenant
/// on request; the job itself is its latest version.
pub fn updates_and_change_log(s: &mut dyn Store) {
    let v1 = job(1, "acme", JobState::Queued, 1);
    let other = job(2, "zeta", JobState::Queued, 2);
    let v2 = leased(v1.clone(), 11, 3);
    let v3 = finished(v2.clone(), JobState::Failed, 1_100_000, 4);
    commit_jobs(s, vec![v1.clone(), other.clone()]);
    commit_jobs(s, vec![v2.clone()]);
    commit_jobs(s, vec![v3.clone()]);

    assert_eq!(s.get_job(1).expect("get"), Some(v3.clone()));
    let changes = |s: &mut dyn Store, after: u64, tenant: Option<&str>, limit: usize| {
        s.changes_since(after, tenant, limit).expect("changes")
    };
    assert_eq!(
        changes(s, 0, None, 100),
        vec![v1.clone(), other.clone(), v2.clone(), v3.clone()]
    );
    assert_eq!(changes(s, 2, None, 100), vec![v2.clone(), v3.clone()]);
    assert_eq!(changes(s, 2, None, 1), vec![v2.clone()]);
    assert_eq!(changes(s, 0, None, 2), vec![v1.clone(), other.clone()]);
    assert_eq!(changes(s, 0, Some("acme"), 100), vec![v1, v2, v3.clone()]);
    assert_eq!(changes(s, 0, Some("zeta"), 100), vec![other]);
    assert_eq!(changes(s, 0, Some("nobody"), 100), vec![]);
    assert_eq!(changes(s, 4, None, 100), vec![]);

    let snap = s.load(0).expect("load");
    assert_eq!(snap.max_revision, 4);
    assert_eq!(
        snap.max_fencing_token, 11,
        "the token of a finished job still counts"
    );
    assert_eq!(snap.unfinished.len(), 1);
    assert_eq!(snap.recently_finished, vec![v3]);
}

/// `list_jobs` pages by id and filters by tenant, state and request id, alone or together.
pub fn list_jobs_pages_by_id_and_filters(s: &mut dyn Store) {
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
    commit_jobs(s, jobs);
    let mut ids = |f: &JobFilter, after: u64, limit: usize| {
        s.list_jobs(f, after, limit)
            .expect("list")
            .iter()
            .map(|j| j.id)
            .collect::<Vec<_>>()
    };

    let all = JobFilter::default();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = ids(&all, after, 3);
        let Some(&last) = page.last() else { break };
        assert!(page.len() <= 3);
        after = last;
        seen.extend(page);
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert!(ids(&all, 0, 0).is_empty());

    let even = JobFilter {
        tenant: Some("even".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(&even, 0, 100), vec![2, 4, 6, 8, 10]);
    assert_eq!(ids(&even, 4, 2), vec![6, 8]);
    let done = JobFilter {
        state: Some(JobState::Succeeded),
        ..JobFilter::default()
    };
    assert_eq!(ids(&done, 0, 100), vec![3, 6, 9]);
    assert_eq!(ids(&done, 3, 1), vec![6]);
    let odd_queued = JobFilter {
        tenant: Some("odd".into()),
        state: Some(JobState::Queued),
        ..JobFilter::default()
    };
    assert_eq!(ids(&odd_queued, 0, 100), vec![1, 5, 7]);
    let by_request = |tenant: &str, request: &str| JobFilter {
        tenant: Some(tenant.into()),
        request_id: Some(request.into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(&by_request("even", "req-4"), 0, 100), vec![4]);
    assert!(ids(&by_request("odd", "req-4"), 0, 100).is_empty());
    let request_only = JobFilter {
        request_id: Some("req-7".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(&request_only, 0, 100), vec![7]);
    let all_filters = JobFilter {
        tenant: Some("odd".into()),
        state: Some(JobState::Succeeded),
        request_id: Some("req-9".into()),
    };
    assert_eq!(ids(&all_filters, 0, 100), vec![9]);
    assert!(ids(&all_filters, 9, 100).is_empty());
    let none = JobFilter {
        tenant: Some("nobody".into()),
        ..JobFilter::default()
    };
    assert!(ids(&none, 0, 100).is_empty());
}

/// A second job with a tenant's request id fails its batch; with `atomic` (a store that
/// commits a batch all or nothing) nothing of the batch is visible. The same request id
/// in another tenant is another job, and the store goes on working. Returns the error,
/// for the store's own checks of what it says.
pub fn duplicate_request_id_fails_the_batch(s: &mut dyn Store, atomic: bool) -> StoreError {
    let first = job(1, "acme", JobState::Queued, 1);
    commit_jobs(s, vec![first.clone()]);
    let before = s.load(0).expect("load");

    let ok = job(2, "acme", JobState::Queued, 2);
    let mut dup = job(3, "acme", JobState::Queued, 3);
    dup.request_id = first.request_id.clone();
    let bump = leased(first.clone(), 9, 4);
    let err = s
        .commit(&Batch {
            jobs: vec![ok, bump, dup],
            runners: vec![runner("r9")],
            removed_runners: vec![],
            pipelines: vec![],
        })
        .expect_err("a second job for the same (tenant, request_id) must fail");
    assert_eq!(s.get_job(3).expect("get"), None, "the duplicate is refused");
    if atomic {
        assert_eq!(s.get_job(2).expect("get"), None);
        assert_eq!(s.get_job(1).expect("get"), Some(first.clone()));
        assert_eq!(s.changes_since(1, None, 100).expect("changes"), vec![]);
        assert_eq!(
            s.load(0).expect("load"),
            before,
            "runners, tokens and revisions unchanged"
        );
    }

    let mut other = job(5, "zeta", JobState::Queued, 5);
    other.request_id = first.request_id.clone();
    commit_jobs(s, vec![other.clone()]);
    assert_eq!(s.get_job(5).expect("get"), Some(other));
    err
}

/// What one handle committed, another opened later (`reopen`) loads the same: jobs,
/// runners, the change log and the highest id, revision and token.
pub fn everything_survives_a_reopen(s: &mut dyn Store, reopen: &mut dyn FnMut() -> Box<dyn Store>) {
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
        pipelines: vec![],
    })
    .expect("commit");
    commit_jobs(
        s,
        vec![finished(
            job(1, "acme", JobState::Queued, 0),
            JobState::Cancelled,
            6_000_000,
            4,
        )],
    );
    let snap = s.load(0).expect("load");
    let changes = s.changes_since(0, None, 100).expect("changes");
    assert_eq!(
        (snap.max_fencing_token, snap.max_revision, snap.max_job_id),
        (42, 4, 3)
    );
    assert_eq!(changes.len(), 4);
    let mut again = reopen();
    let after = again.load(0).expect("load after reopening");
    assert_eq!(
        (&after.unfinished, &after.runners, &after.recently_finished),
        (&snap.unfinished, &snap.runners, &snap.recently_finished)
    );
    // A store may reserve numbers ahead (SQLite's high-water marks, `store::marks`):
    // after a reopen they never go back, so no id, revision or token is handed out twice.
    assert!(
        after.max_fencing_token >= snap.max_fencing_token
            && after.max_revision >= snap.max_revision
            && after.max_job_id >= snap.max_job_id,
        "high-water marks went back: {after:?} after {snap:?}"
    );
    assert_eq!(again.changes_since(0, None, 100).expect("changes"), changes);
}

/// `history` gives a `JobRecord` for each job that finished after it started, from the
/// cut-off on, oldest first, with waits and run times in whole seconds.
pub fn history_gives_records_of_finished_jobs(s: &mut dyn Store) {
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
    commit_jobs(s, vec![a, b, old, live]);

    let h = s.history(1_000_000, 100).expect("history");
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
    assert_eq!(s.history(0, 1).expect("history").len(), 1);
    assert_eq!(s.history(0, 100).expect("history").len(), 3);
}

/// `prune_changes` keeps the newest entries (at least one), and the highest revision
/// survives it.
pub fn prune_keeps_the_newest_changes(s: &mut dyn Store) {
    let mut j = job(1, "acme", JobState::Queued, 1);
    commit_jobs(s, vec![j.clone()]);
    for rev in 2..=5 {
        j.revision = rev;
        j.attempts = rev as u32;
        commit_jobs(s, vec![j.clone()]);
    }
    assert_eq!(s.oldest_change().expect("oldest"), Some(1));
    assert_eq!(s.prune_changes(2).expect("prune"), 3);
    assert_eq!(s.oldest_change().expect("oldest"), Some(4));
    assert_eq!(
        s.changes_since(0, None, 100)
            .expect("changes")
            .iter()
            .map(|j| j.revision)
            .collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(
        s.prune_changes(0).expect("prune"),
        1,
        "at least the newest change is kept"
    );
    assert_eq!(s.oldest_change().expect("oldest"), Some(5));
    assert_eq!(s.prune_changes(10).expect("prune"), 0);
    assert_eq!(s.load(0).expect("load").max_revision, 5);
}

/// Fencing (`Store::take_over`): once `second` took the store over, a commit through
/// `first` (which took it over before) fails with `Fenced` and writes nothing, while
/// `second` commits; a take-over by `first` again turns it round. A handle that never
/// took over (`reader`) is not fenced, and sees only what the writers committed.
pub fn a_later_take_over_fences_the_earlier_writer(
    first: &mut dyn Store,
    second: &mut dyn Store,
    reader: &mut dyn Store,
) {
    first.take_over().expect("first takes over");
    commit_jobs(first, vec![job(1, "acme", JobState::Queued, 1)]);
    second.take_over().expect("second takes over");
    let err = first
        .commit(&Batch {
            jobs: vec![job(2, "acme", JobState::Queued, 2)],
            runners: vec![runner("r-first")],
            removed_runners: vec![],
            pipelines: vec![],
        })
        .expect_err("the earlier writer is fenced");
    let StoreError::Fenced { mine, current } = err else {
        panic!("expected Fenced, got {err:?}");
    };
    assert!(current > mine, "epochs {mine} then {current}");
    assert!(err.to_string().contains("took over"), "{err}");
    assert_eq!(
        reader.get_job(2).expect("get"),
        None,
        "nothing of it was written"
    );
    assert!(reader.load(0).expect("load").runners.is_empty());

    commit_jobs(second, vec![job(2, "zeta", JobState::Queued, 2)]);
    first.take_over().expect("first takes over again");
    assert!(matches!(
        second.commit(&Batch {
            jobs: vec![job(3, "acme", JobState::Queued, 3)],
            ..Batch::default()
        }),
        Err(StoreError::Fenced { .. })
    ));
    commit_jobs(first, vec![job(3, "acme", JobState::Queued, 3)]);
    let tenants: Vec<String> = reader
        .list_jobs(&JobFilter::default(), 0, 10)
        .expect("list")
        .into_iter()
        .map(|j| j.tenant)
        .collect();
    assert_eq!(tenants, ["acme", "zeta", "acme"]);
}

pub fn pipeline(id: u64, tenant: &str, git_ref: &str, jobs: u32) -> StoredPipeline {
    StoredPipeline {
        id,
        request_id: format!("pipe-{id}"),
        tenant: tenant.into(),
        project: Some("proj".into()),
        git_ref: Some(git_ref.into()),
        group: Some(i64::MAX as u64),
        auto_cancel: AutoCancel::Interruptible,
        state: PipelineStatus::Running,
        created_ms: 5_000_000,
        end_ms: None,
        cancel: None,
        jobs,
    }
}

/// Job `id` of pipeline `pipeline`, named `name`, in `stage` (position `stage_index`).
pub fn pipeline_job(
    id: u64,
    pipeline: u64,
    name: &str,
    stage_index: u32,
    needs: Option<Vec<String>>,
    revision: u64,
) -> StoredJob {
    let mut j = job(id, "acme", JobState::Queued, revision);
    j.request_id = format!("pipelines/{pipeline}/{}", id - pipeline);
    j.job_name = Some(name.into());
    j.submit_ms = 5_000_000;
    j.pipeline = Some(PipelineJobInfo {
        pipeline,
        stage: ["build", "test"][stage_index as usize].into(),
        stage_index,
        needs,
        when: if name == "cleanup" {
            When::Always
        } else {
            When::OnSuccess
        },
        allow_failure: name == "lint",
        interruptible: true,
        ready_ms: None,
        // A played manual job keeps when it was played (a restart plays it again).
        played_ms: (name == "lint").then_some(5_001_000),
    });
    j
}

/// The pipeline contract: a pipeline and its jobs commit in one batch and read back
/// equal (every pipeline field of a job too: stage, needs, `when`, `allow_failure`,
/// `interruptible`, `played_ms`); a later version of the pipeline (ended, with its cancel reason)
/// replaces it; `list_pipelines` pages by id and filters by tenant, state, project, ref
/// and request id; `pipeline_jobs` gives a pipeline's jobs in id order and no other's;
/// a skipped job is finished and has no history record, and a finished pipeline job's
/// record carries its pipeline, with its `ready_ms` as the submit time.
pub fn pipelines_round_trip(s: &mut dyn Store) {
    let p1 = pipeline(10, "acme", "main", 3);
    let build = pipeline_job(10, 10, "build", 0, None, 1);
    let lint = pipeline_job(11, 10, "lint", 0, Some(vec![]), 2);
    let test = pipeline_job(12, 10, "test", 1, Some(vec!["build".into()]), 3);
    let p2 = pipeline(13, "acme", "dev", 1);
    let other = pipeline_job(13, 13, "cleanup", 0, None, 4);
    s.commit(&Batch {
        jobs: vec![build.clone(), lint.clone(), test.clone(), other.clone()],
        pipelines: vec![p1.clone(), p2.clone()],
        ..Batch::default()
    })
    .expect("store");
    assert_eq!(s.get_pipeline(10).expect("store"), Some(p1.clone()));
    assert_eq!(
        s.get_pipeline(11).expect("store"),
        None,
        "a job id is no pipeline"
    );
    assert_eq!(
        s.pipeline_jobs(10).expect("store"),
        vec![build.clone(), lint.clone(), test.clone()]
    );
    assert_eq!(s.pipeline_jobs(13).expect("store"), vec![other.clone()]);
    assert_eq!(s.get_job(12).expect("store"), Some(test.clone()));

    // build ran (queued when the pipeline was created, ready at once), lint failed
    // (allowed), test was skipped; the pipeline ended succeeded. p2 was superseded.
    let mut ran = finished(build.clone(), JobState::Succeeded, 5_060_000, 5);
    ran.runner = Some("r1".into());
    if let Some(p) = ran.pipeline.as_mut() {
        p.ready_ms = Some(5_002_000);
    }
    let mut skipped = test.clone();
    skipped.state = JobState::Skipped;
    skipped.end_ms = Some(5_060_000);
    skipped.revision = 6;
    let mut ended = p1.clone();
    ended.state = PipelineStatus::Succeeded;
    ended.end_ms = Some(5_060_000);
    let mut superseded = p2.clone();
    superseded.cancel = Some(PipelineCancel::Superseded { by: 20 });
    s.commit(&Batch {
        jobs: vec![ran.clone(), skipped.clone()],
        pipelines: vec![ended.clone(), superseded.clone()],
        ..Batch::default()
    })
    .expect("store");
    assert_eq!(s.get_pipeline(10).expect("store"), Some(ended.clone()));
    assert_eq!(s.get_pipeline(13).expect("store"), Some(superseded.clone()));
    assert_eq!(
        s.pipeline_jobs(10).expect("store"),
        vec![ran.clone(), lint.clone(), skipped.clone()]
    );
    let snap = s.load(0).expect("store");
    let unfinished: Vec<u64> = snap.unfinished.iter().map(|j| j.id).collect();
    assert_eq!(unfinished, vec![11, 13], "a skipped job is finished");

    let ids = |s: &mut dyn Store, f: PipelineFilter, after: u64, limit: usize| -> Vec<u64> {
        s.list_pipelines(&f, after, limit)
            .expect("store")
            .iter()
            .map(|p| p.id)
            .collect()
    };
    let all = PipelineFilter::default();
    assert_eq!(ids(s, all.clone(), 0, 10), vec![10, 13]);
    assert_eq!(ids(s, all.clone(), 0, 1), vec![10]);
    assert_eq!(ids(s, all.clone(), 10, 10), vec![13]);
    let running = PipelineFilter {
        state: Some(PipelineStatus::Running),
        ..all.clone()
    };
    assert_eq!(ids(s, running, 0, 10), vec![13]);
    let main = PipelineFilter {
        project: Some("proj".into()),
        git_ref: Some("main".into()),
        ..all.clone()
    };
    assert_eq!(ids(s, main, 0, 10), vec![10]);
    let by_request = PipelineFilter {
        tenant: Some("acme".into()),
        request_id: Some("pipe-13".into()),
        ..all.clone()
    };
    assert_eq!(ids(s, by_request, 0, 10), vec![13]);
    let elsewhere = PipelineFilter {
        tenant: Some("other".into()),
        ..all
    };
    assert_eq!(ids(s, elsewhere, 0, 10), Vec::<u64>::new());

    // History: build only (lint and the skipped job never ran to an end here).
    let records = s.history(0, 100).expect("store");
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.id.as_str(), r.submit_s, r.wait_s),
        ("10", 5_002, Some(8))
    );
    let p = r
        .pipeline
        .as_ref()
        .expect("a pipeline job's record names its pipeline");
    assert_eq!(
        (p.id.as_str(), p.created_s, p.stage.as_str(), p.stage_index),
        ("10", 5_000, "build", 0)
    );
    assert_eq!(p.needs, None);
    assert!(p.interruptible);
    assert_eq!(s.changes_since(0, None, 100).expect("store").len(), 6);
}
