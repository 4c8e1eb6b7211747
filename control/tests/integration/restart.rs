//! Restart: queue, leases and fair-share usage are rebuilt from the store; leases keep
//! their fencing tokens; a dead runner's jobs are requeued after one TTL. Each scenario
//! runs on both stores: the embedded SQLite store and MongoDB (`mongo_*`, skipped
//! visibly without `RUSTCI_TEST_MONGODB_URI`).

use std::sync::Arc;

use rustci_control::server::live::{
    Completion, Lease, Live, LiveConfig, LiveError, ManualClock, PipelineJobStatus,
    PipelineJobSubmission, PipelineSubmission,
};
use rustci_control::store::mongo::MongoStore;
use rustci_control::store::sqlite::{SqliteStore, SyncMode};
use rustci_control::store::{JobFilter, JobState, PipelineStatus, Store, StoreError};
use rustci_scheduler::{AutoCancel, PolicyConfig, When};

use crate::support_mongo::{mongo_test_database, mongo_uri_or_skip, MONGO_SESSIONS};

const T0: i64 = 1_700_000_000_000;

/// Where a scenario's `Live` keeps its state; every [`Place::store`] is a new handle on
/// the same data, as a restarted server's is.
enum Place {
    Sqlite(tempfile::TempDir),
    Mongo { uri: String, db: String },
}

impl Place {
    fn store(&self) -> Box<dyn Store> {
        match self {
            Place::Sqlite(dir) => {
                Box::new(SqliteStore::open(dir.path(), SyncMode::Normal).expect("store"))
            }
            Place::Mongo { uri, db } => {
                Box::new(MongoStore::connect(uri, db).expect("connect to MongoDB"))
            }
        }
    }

    /// A new handle that took the store over, as a starting server's does.
    fn writer(&self) -> Box<dyn Store> {
        let mut store = self.store();
        store.take_over().expect("take the store over");
        store
    }
}

fn on_sqlite(scenario: fn(&Place)) {
    scenario(&Place::Sqlite(tempfile::tempdir().expect("tempdir")));
}

/// Runs `scenario` on a MongoDB database of its own (the multi-thread runtime the
/// store's blocking calls need), then drops the database. Alone: its servers take the
/// store over, which ends every session of the URI's user.
async fn on_mongo(test: &str, scenario: fn(&Place)) {
    let _alone = MONGO_SESSIONS.write().await;
    let Some(uri) = mongo_uri_or_skip(test) else {
        return;
    };
    let db = mongo_test_database();
    scenario(&Place::Mongo {
        uri: uri.clone(),
        db: db.clone(),
    });
    let s = MongoStore::connect_async(&uri, &db)
        .await
        .expect("connect to MongoDB");
    s.database().drop().await.expect("drop the test database");
}

/// `#[test] fn NAME` on SQLite and `#[tokio::test] async fn mongo_NAME` on MongoDB, each
/// running the scenario `fn NAME(&Place)` of the module `scenarios`.
macro_rules! on_both_stores {
    ($($name:ident => $mongo:ident),+ $(,)?) => {$(
        #[test]
        fn $name() {
            on_sqlite(scenarios::$name);
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $mongo() {
            on_mongo(stringify!($mongo), scenarios::$name).await;
        }
    )+};
}

on_both_stores!(
    queue_leases_and_usage_survive_a_restart => mongo_queue_leases_and_usage_survive_a_restart,
    a_dead_runner_loses_its_leases_and_stale_completions_are_refused =>
        mongo_a_dead_runner_loses_its_leases_and_stale_completions_are_refused,
    group_commit_hands_out_leases_only_once_durable_and_rolls_back_failures =>
        mongo_group_commit_hands_out_leases_only_once_durable_and_rolls_back_failures,
    the_change_log_is_pruned_and_resuming_before_it_is_refused =>
        mongo_the_change_log_is_pruned_and_resuming_before_it_is_refused,
    a_runners_timing_is_kept_within_the_lease_and_survives_a_restart =>
        mongo_a_runners_timing_is_kept_within_the_lease_and_survives_a_restart,
    a_server_that_took_over_fences_the_one_before =>
        mongo_a_server_that_took_over_fences_the_one_before,
    runners_are_not_lost_for_the_time_the_server_did_not_run =>
        mongo_runners_are_not_lost_for_the_time_the_server_did_not_run,
    a_pipeline_goes_on_where_it_was_after_a_crash =>
        mongo_a_pipeline_goes_on_where_it_was_after_a_crash,
    a_superseded_pipeline_stays_cancelled_after_a_crash =>
        mongo_a_superseded_pipeline_stays_cancelled_after_a_crash,
    a_lease_granted_out_of_id_order_keeps_its_runner_after_a_restart =>
        mongo_a_lease_granted_out_of_id_order_keeps_its_runner_after_a_restart,
);

mod scenarios {
    use super::*;
    use crate::common::{flush, submission as job};

    fn open(place: &Place, clock: Arc<ManualClock>) -> Live {
        let config = LiveConfig {
            policy: PolicyConfig::named("fairshare").expect("policy"),
            lease_ttl_ms: 10_000,
            ..LiveConfig::default()
        };
        Live::open(config, clock, place.writer()).expect("live")
    }

    /// The one lease `runner` gets now (one slot asked for).
    fn lease_one(live: &mut Live, runner: &str, what: &str) -> Lease {
        live.acquire(runner, 1)
            .expect("acquire")
            .pop()
            .unwrap_or_else(|| panic!("{what}: no lease for {runner}"))
    }

    /// A successful completion of `job` under `fencing_token`.
    fn success(job: u64, fencing_token: u64, reported_run_ms: Option<i64>) -> Completion {
        Completion {
            job,
            fencing_token,
            success: true,
            exit_code: 0,
            reported_run_ms,
        }
    }

    /// Fair share leases a newer job before an older one; after a restart the newer
    /// job's lease is back on its runner and the older job still waits. (The rebuild
    /// once queued the older job first, whose submission pass took the runner's only
    /// slot, and requeued the lease while the runner still ran its job: two runs at
    /// once, as the chaos soak found.)
    pub fn a_lease_granted_out_of_id_order_keeps_its_runner_after_a_restart(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 1)
            .expect("register");
        // Tenant "heavy" gets fair-share usage, then holds the only slot with b.
        let a = live.submit(job("heavy", "a")).expect("submit a");
        let lease_a = lease_one(&mut live, "w1", "lease a");
        clock.set(T0 + 3_600_000);
        live.complete("w1", success(a.id, lease_a.fencing_token, None))
            .expect("complete a");
        let b = live.submit(job("heavy", "b")).expect("submit b");
        let lease_b = lease_one(&mut live, "w1", "lease b");
        let c = live.submit(job("heavy", "c")).expect("submit c");
        let d = live.submit(job("light", "d")).expect("submit d");
        clock.set(T0 + 3_600_000 + 1_000);
        live.complete("w1", success(b.id, lease_b.fencing_token, None))
            .expect("complete b");
        // The light tenant's newer job goes first.
        let lease_d = lease_one(&mut live, "w1", "lease d");
        assert_eq!(lease_d.job.id, d.id, "fair share leases d before c");
        assert!(c.id < d.id);
        assert_eq!(live.job(c.id).expect("c").state, JobState::Queued);
        drop(live); // a crash: only the store remains

        clock.set(T0 + 3_600_000 + 2_000);
        let mut live = open(place, clock.clone());
        let d2 = live.job(d.id).expect("d");
        assert_eq!(
            (d2.state, d2.runner.as_deref(), d2.fencing_token),
            (JobState::Leased, Some("w1"), lease_d.fencing_token),
            "d keeps its lease on w1"
        );
        assert_eq!(
            live.job(c.id).expect("c").state,
            JobState::Queued,
            "c waits for the slot d holds"
        );
    }

    pub fn queue_leases_and_usage_survive_a_restart(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 1)
            .expect("register");
        // Tenant "heavy" runs a long job to completion: it has fair-share usage.
        let a = live.submit(job("heavy", "a")).expect("submit");
        let lease = lease_one(&mut live, "w1", "lease");
        clock.set(T0 + 3_600_000);
        live.complete("w1", success(a.id, lease.fencing_token, None))
            .expect("complete");
        // The runner is busy with another job while two tenants queue one each.
        let b = live.submit(job("heavy", "b")).expect("submit");
        let lease_b = lease_one(&mut live, "w1", "lease b");
        let c = live.submit(job("heavy", "c")).expect("submit");
        let d = live.submit(job("light", "d")).expect("submit");
        assert_eq!(live.job(c.id).expect("c").state, JobState::Queued);
        drop(live); // no shutdown hook: like a crash, only the store remains

        clock.set(T0 + 3_600_000 + 1_000);
        let mut live = open(place, clock.clone());
        let b2 = live.job(b.id).expect("b");
        assert_eq!(
            (b2.state, b2.fencing_token),
            (JobState::Leased, lease_b.fencing_token),
            "the lease survives"
        );
        assert_eq!(live.job(c.id).expect("c").state, JobState::Queued);
        assert_eq!(live.job(d.id).expect("d").state, JobState::Queued);
        // Idempotency survives too: the same request gives the same job.
        assert_eq!(live.submit(job("heavy", "c")).expect("resubmit").id, c.id);
        assert_eq!(
            live.durability().borrow().outcome(live.last_ticket()),
            Some(true),
            "a repeat that changed nothing is durable at once"
        );
        assert_eq!(
            live.submit(job("heavy", "a"))
                .expect("resubmit finished")
                .id,
            a.id
        );
        // The runner heartbeats again and finishes b: the light tenant goes first, because
        // the heavy one's usage was rebuilt from history.
        live.heartbeat("w1").expect("heartbeat");
        live.complete("w1", success(b.id, lease_b.fencing_token, None))
            .expect("complete b");
        let next = lease_one(&mut live, "w1", "lease");
        assert_eq!(
            next.job.id, d.id,
            "fair share rebuilt from the store puts the light tenant first"
        );
        // A finished job's request id still maps to it, not to another job of the tenant.
        assert_eq!(
            live.submit(job("heavy", "b"))
                .expect("resubmit finished b")
                .id,
            b.id
        );
    }

    pub fn a_dead_runner_loses_its_leases_and_stale_completions_are_refused(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 1)
            .expect("register");
        live.register_runner("w2", "lin", vec!["linux".into()], 1)
            .expect("register");
        let j = live.submit(job("t", "x")).expect("submit");
        let (holder, other) = match live.acquire("w1", 1).expect("acquire").pop() {
            Some(l) => (("w1", l), "w2"),
            None => (("w2", lease_one(&mut live, "w2", "lease")), "w1"),
        };
        // Only the other runner heartbeats; the holder goes silent past the TTL.
        clock.set(T0 + 6_000);
        live.heartbeat(other).expect("hb");
        clock.set(T0 + 11_000);
        live.heartbeat(other).expect("hb");
        let lost = live.tick().expect("tick");
        assert_eq!(lost, vec![holder.0.to_string()]);
        let relet = lease_one(&mut live, other, "requeued and leased again");
        assert_eq!(relet.job.id, j.id);
        assert!(
            relet.fencing_token > holder.1.fencing_token,
            "a new lease has a new token"
        );
        assert_eq!(relet.job.attempts, 2);
        // The dead runner's late report is refused; the live lease completes.
        let err = live
            .complete(other, success(j.id, holder.1.fencing_token, None))
            .expect_err("stale token");
        assert!(err.to_string().contains("fencing token"), "{err}");
        live.complete(other, success(j.id, relet.fencing_token, None))
            .expect("complete");
        let err = live
            .complete(other, success(j.id, relet.fencing_token, None))
            .expect_err("twice");
        assert!(err.to_string().contains("already finished"), "{err}");
    }

    pub fn group_commit_hands_out_leases_only_once_durable_and_rolls_back_failures(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 4)
            .expect("register");
        live.set_group_commit(true);
        let a = live.submit(job("t", "a")).expect("submit");
        let ticket_a = live.last_ticket();
        assert_eq!(
            live.durability().borrow().outcome(ticket_a),
            None,
            "not durable yet"
        );
        assert!(
            live.acquire("w1", 4).expect("acquire").is_empty(),
            "no lease before it is durable"
        );
        flush(&mut live);
        assert_eq!(live.durability().borrow().outcome(ticket_a), Some(true));
        assert_eq!(
            live.acquire("w1", 4)
                .expect("acquire")
                .pop()
                .expect("lease")
                .job
                .id,
            a.id
        );

        // A failed commit: the request is rolled back, memory is rebuilt from the store.
        let b = live.submit(job("t", "b")).expect("submit");
        let ticket_b = live.last_ticket();
        let flush = live.take_pending().expect("pending");
        live.finish_flush(
            flush,
            Err(rustci_control::store::StoreError::Other("disk full".into())),
        );
        assert_eq!(live.durability().borrow().outcome(ticket_b), Some(false));
        assert!(
            live.job(b.id).is_err(),
            "the job that never became durable is gone"
        );
        assert_eq!(
            live.job(a.id).expect("a").state,
            JobState::Leased,
            "durable state is intact"
        );
        // The client retries the same request: it is accepted afresh.
        let b2 = live.submit(job("t", "b")).expect("retry");
        assert_eq!(b2.request_id, "b");
    }

    pub fn the_change_log_is_pruned_and_resuming_before_it_is_refused(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let config = LiveConfig {
            change_log_keep: 10,
            ..LiveConfig::default()
        };
        let mut live = Live::open(config, clock.clone(), place.store()).expect("live");
        for i in 0..30 {
            live.submit(job("t", &format!("r{i}"))).expect("submit");
        }
        assert_eq!(live.revision(), 30);
        assert_eq!(
            live.changes_since(1, None, 100)
                .expect("all kept so far")
                .len(),
            29
        );
        live.tick().expect("tick prunes");
        let err = live
            .changes_since(5, None, 100)
            .expect_err("revision 6 is gone");
        assert!(err.to_string().contains("pruned"), "{err}");
        let kept = live
            .changes_since(0, None, 100)
            .expect("from the oldest kept");
        assert_eq!(kept.len(), 10);
        assert_eq!(kept.first().map(|j| j.revision), Some(21));
        assert_eq!(
            live.changes_since(20, None, 100)
                .expect("resume right at the edge")
                .len(),
            10
        );
    }

    pub fn a_runners_timing_is_kept_within_the_lease_and_survives_a_restart(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 2)
            .expect("register");
        let a = live.submit(job("t", "a")).expect("submit a");
        let b = live.submit(job("t", "b")).expect("submit b");
        let leases = live.acquire("w1", 2).expect("acquire");
        assert_eq!(leases.len(), 2);
        // Both leases last 60 s by the server's clock.
        clock.set(T0 + 60_000);
        for (l, reported) in leases.iter().zip([Some(42_000), Some(90_000)]) {
            live.complete("w1", success(l.job.id, l.fencing_token, reported))
                .expect("complete");
        }
        drop(live);
        let mut live = open(place, clock);
        let stored = |live: &mut Live, id| live.job(id).expect("stored").reported_run_ms;
        // As reported; a report longer than the lease (a fast clock) is cut to the lease.
        assert_eq!(stored(&mut live, a.id), Some(42_000));
        assert_eq!(stored(&mut live, b.id), Some(60_000));
    }

    /// A server paused past its leader lease (or a second server started on the same
    /// store) keeps its memory, but once another server took the store over, none of its
    /// commits lands: the request fails, the state says it is fenced and serves nothing
    /// more, and the new writer's numbering and leases are untouched.
    pub fn a_server_that_took_over_fences_the_one_before(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let mut old = open(place, clock.clone());
        old.register_runner("w1", "lin", vec!["linux".into()], 2)
            .expect("register");
        let x = old.submit(job("t", "x")).expect("submit x");
        let lease = lease_one(&mut old, "w1", "x");

        let mut new = open(place, clock.clone());
        let err = old
            .submit(job("t", "y"))
            .expect_err("a fenced server's submit");
        assert!(
            matches!(err, LiveError::Store(StoreError::Fenced { .. })),
            "{err:?}"
        );
        assert!(old.is_fenced());
        let err = old.ensure_current().expect_err("not served, not rebuilt");
        assert!(err.to_string().contains("took over"), "{err}");
        assert!(old
            .complete("w1", success(x.id, lease.fencing_token, None))
            .is_err());

        // The new writer sees neither y nor x's completion.
        let stored = new.job(x.id).expect("x");
        assert_eq!(stored.state, JobState::Leased);
        assert_eq!(stored.fencing_token, lease.fencing_token);
        let y = new
            .submit(job("t", "y"))
            .expect("submit y on the new writer");
        assert!(y.id > x.id);
        let requests: Vec<(u64, String)> = new
            .list(&JobFilter::default(), 0, 10)
            .expect("list")
            .into_iter()
            .map(|j| (j.id, j.request_id))
            .collect();
        assert_eq!(requests, [(x.id, "x".into()), (y.id, "y".into())]);
        new.heartbeat("w1")
            .expect("w1 heartbeats to the new server");
        new.complete("w1", success(x.id, lease.fencing_token, None))
            .expect("the live lease completes on the new server");
    }

    /// A server that did not run for longer than the lease (SIGSTOP, a starved machine)
    /// did not hear its runners' heartbeats: excused, no runner is lost for that time,
    /// and one that stays silent a lease TTL after it is.
    pub fn runners_are_not_lost_for_the_time_the_server_did_not_run(place: &Place) {
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 1)
            .expect("register");
        let x = live.submit(job("t", "x")).expect("submit");
        lease_one(&mut live, "w1", "x");
        clock.set(T0 + 30_000);
        live.excuse_silence();
        assert!(live.tick().expect("tick").is_empty(), "w1 was not silent");
        assert_eq!(live.job(x.id).expect("x").state, JobState::Leased);
        clock.set(T0 + 40_001);
        assert_eq!(
            live.tick().expect("tick"),
            ["w1"],
            "silent a full TTL since"
        );
        assert_eq!(live.job(x.id).expect("x").state, JobState::Queued);
    }

    /// A pipeline job `name` of `stage` (position `stage_index`), on `linux`.
    fn pjob(name: &str, stage_index: u32, needs: Option<&[&str]>) -> PipelineJobSubmission {
        PipelineJobSubmission {
            name: name.into(),
            stage: ["build", "test", "deploy"][stage_index as usize].into(),
            stage_index,
            needs: needs.map(|n| n.iter().map(|s| s.to_string()).collect()),
            labels: vec!["linux".into()],
            command: format!("make {name}"),
            requested_ms: 60_000,
            ..PipelineJobSubmission::default()
        }
    }

    fn pipeline(request_id: &str, jobs: Vec<PipelineJobSubmission>) -> PipelineSubmission {
        PipelineSubmission {
            request_id: request_id.into(),
            tenant: "acme".into(),
            project: "shop".into(),
            git_ref: "main".into(),
            auto_cancel: Some(AutoCancel::Conservative),
            jobs,
        }
    }

    fn done(job: u64, fencing_token: u64, success: bool) -> Completion {
        Completion {
            job,
            fencing_token,
            success,
            exit_code: if success { 0 } else { 1 },
            reported_run_ms: None,
        }
    }

    /// Each job's (name, status) in the pipeline's order.
    fn statuses(live: &mut Live, id: u64) -> Vec<(String, PipelineJobStatus)> {
        live.pipeline(id)
            .expect("get pipeline")
            .jobs
            .into_iter()
            .map(|(j, s)| (j.job_name.unwrap_or_default(), s))
            .collect()
    }

    fn named(table: &[(&str, PipelineJobStatus)]) -> Vec<(String, PipelineJobStatus)> {
        table.iter().map(|&(n, s)| (n.to_string(), s)).collect()
    }

    /// One runner slot. build, then lint (no needs, allow_failure, fails); unit and fail
    /// need build; deploy (stage rule) and cleanup (always) come last. build succeeds,
    /// lint fails, unit is leased: the server dies. After the restart unit keeps its
    /// lease, fail waits in the queue, deploy and cleanup wait for their needs; unit
    /// ends, fail is leased and fails: deploy is skipped, cleanup runs, the pipeline
    /// ends failed. Every job was leased at most once; a second restart changes
    /// nothing.
    pub fn a_pipeline_goes_on_where_it_was_after_a_crash(place: &Place) {
        use PipelineJobStatus::*;
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 1)
            .expect("register");
        let mut lint = pjob("lint", 0, Some(&[]));
        lint.allow_failure = true;
        let mut cleanup = pjob("cleanup", 2, None);
        cleanup.when = When::Always;
        let submitted = live
            .submit_pipeline(pipeline(
                "p1",
                vec![
                    pjob("build", 0, None),
                    lint,
                    pjob("unit", 1, Some(&["build"])),
                    pjob("fail", 1, Some(&["build"])),
                    pjob("deploy", 2, None),
                    cleanup,
                ],
            ))
            .expect("submit pipeline");
        let id = submitted.pipeline.id;
        let lease = lease_one(&mut live, "w1", "build");
        assert_eq!(lease.job.job_name.as_deref(), Some("build"));
        clock.set(T0 + 1_000);
        live.complete("w1", done(lease.job.id, lease.fencing_token, true))
            .expect("build");
        let lease = lease_one(&mut live, "w1", "lint");
        assert_eq!(lease.job.job_name.as_deref(), Some("lint"));
        live.complete("w1", done(lease.job.id, lease.fencing_token, false))
            .expect("lint");
        let unit = lease_one(&mut live, "w1", "unit");
        assert_eq!(unit.job.job_name.as_deref(), Some("unit"));
        drop(live); // a crash: only the store remains

        clock.set(T0 + 2_000);
        let mut live = open(place, clock.clone());
        assert_eq!(
            statuses(&mut live, id),
            named(&[
                ("build", Succeeded),
                ("lint", Failed),
                ("unit", Running),
                ("fail", Waiting),
                ("deploy", Created),
                ("cleanup", Created),
            ])
        );
        let view = live.pipeline(id).expect("pipeline");
        assert_eq!(view.pipeline.state, PipelineStatus::Running);
        assert!(view.predicted_finish_ms.is_some_and(|t| t >= T0 + 2_000));
        let unit_now = live.job(unit.job.id).expect("unit");
        assert_eq!(
            (unit_now.state, unit_now.fencing_token),
            (JobState::Leased, unit.fencing_token),
            "the lease survives"
        );
        // The same request is the same pipeline, nothing new.
        let again = live
            .submit_pipeline(pipeline(
                "p1",
                submitted
                    .jobs
                    .iter()
                    .map(|(j, _)| pjob(j.job_name.as_deref().unwrap_or(""), 0, None))
                    .collect(),
            ))
            .expect("resubmit");
        assert_eq!(again.pipeline.id, id);
        live.heartbeat("w1").expect("heartbeat");
        // The runner is handed its lease again (same token: the same run), and nothing
        // else while unit holds the one slot.
        let again = lease_one(&mut live, "w1", "unit again");
        assert_eq!(
            (again.job.id, again.fencing_token, again.job.attempts),
            (unit.job.id, unit.fencing_token, 1)
        );
        assert!(live.acquire("w1", 1).expect("acquire").is_empty());
        live.complete("w1", done(unit.job.id, unit.fencing_token, true))
            .expect("unit");
        let fail = lease_one(&mut live, "w1", "fail");
        assert_eq!(fail.job.job_name.as_deref(), Some("fail"));
        live.complete("w1", done(fail.job.id, fail.fencing_token, false))
            .expect("fail");
        let last = lease_one(&mut live, "w1", "cleanup");
        assert_eq!(last.job.job_name.as_deref(), Some("cleanup"));
        clock.set(T0 + 3_000);
        live.complete("w1", done(last.job.id, last.fencing_token, true))
            .expect("cleanup");
        let expected = named(&[
            ("build", Succeeded),
            ("lint", Failed),
            ("unit", Succeeded),
            ("fail", Failed),
            ("deploy", Skipped),
            ("cleanup", Succeeded),
        ]);
        assert_eq!(statuses(&mut live, id), expected);
        let view = live.pipeline(id).expect("pipeline");
        assert_eq!(view.pipeline.state, PipelineStatus::Failed);
        assert_eq!(view.pipeline.end_ms, Some(T0 + 3_000));
        let attempts: Vec<u32> = view.jobs.iter().map(|(j, _)| j.attempts).collect();
        assert_eq!(attempts, vec![1, 1, 1, 1, 0, 1], "no job ran twice");
        assert!(live.acquire("w1", 1).expect("acquire").is_empty());
        drop(live);

        let mut live = open(place, clock.clone());
        assert_eq!(
            statuses(&mut live, id),
            expected,
            "a restart changes nothing"
        );
        assert_eq!(
            live.pipeline(id).expect("pipeline").pipeline.state,
            PipelineStatus::Failed
        );
    }

    /// Two runner slots. P1 (`auto_cancel: interruptible`): a (not interruptible) runs,
    /// b (interruptible) needs a. P2 of the same project and ref supersedes P1: b is
    /// cancelled, a runs on. The mode is stored with P1, so the restart keeps it. The server
    /// dies and restarts: a keeps its lease, b stays cancelled and never starts, P2's job
    /// is leased; when a ends, P1 ends cancelled.
    pub fn a_superseded_pipeline_stays_cancelled_after_a_crash(place: &Place) {
        use PipelineJobStatus::*;
        let clock = Arc::new(ManualClock::new(T0));
        let mut live = open(place, clock.clone());
        live.register_runner("w1", "lin", vec!["linux".into()], 2)
            .expect("register");
        let b = PipelineJobSubmission {
            interruptible: true,
            ..pjob("b", 1, Some(&["a"]))
        };
        let p1 = live
            .submit_pipeline(PipelineSubmission {
                auto_cancel: Some(AutoCancel::Interruptible),
                ..pipeline("p1", vec![pjob("a", 0, None), b])
            })
            .expect("p1")
            .pipeline
            .id;
        let a = lease_one(&mut live, "w1", "a");
        let p2 = live
            .submit_pipeline(pipeline("p2", vec![pjob("x", 0, None)]))
            .expect("p2")
            .pipeline
            .id;
        assert_eq!(
            statuses(&mut live, p1),
            named(&[("a", Running), ("b", Cancelled)])
        );
        drop(live);

        clock.set(T0 + 1_000);
        let mut live = open(place, clock.clone());
        assert_eq!(
            statuses(&mut live, p1),
            named(&[("a", Running), ("b", Cancelled)])
        );
        live.heartbeat("w1").expect("heartbeat");
        let again = lease_one(&mut live, "w1", "a again");
        assert_eq!(
            (again.job.id, again.fencing_token),
            (a.job.id, a.fencing_token)
        );
        let x = lease_one(&mut live, "w1", "x");
        assert_eq!(x.job.job_name.as_deref(), Some("x"));
        assert!(
            live.acquire("w1", 1).expect("acquire").is_empty(),
            "b never starts"
        );
        live.complete("w1", done(a.job.id, a.fencing_token, true))
            .expect("a");
        let view = live.pipeline(p1).expect("p1");
        assert_eq!(view.pipeline.state, PipelineStatus::Cancelled);
        assert!(matches!(
            view.pipeline.cancel,
            Some(rustci_control::store::PipelineCancel::Superseded { by }) if by == p2
        ));
        live.complete("w1", done(x.job.id, x.fencing_token, true))
            .expect("x");
        assert_eq!(
            live.pipeline(p2).expect("p2").pipeline.state,
            PipelineStatus::Succeeded
        );
    }
}
