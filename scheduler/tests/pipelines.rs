//! Pipelines in the core: scenarios with hand-worked numbers (critical-path order,
//! conditions, manual jobs, supersession, ETAs), errors that name the job, and property
//! tests over random DAGs.

mod common;

use std::collections::BTreeMap;

use common::pipes::*;
use common::*;
use rustci_scheduler::*;

/// A one-slot job `name` with id `id` in `stage`, estimated (requested) `est` ms.
fn pj(id: u64, name: &str, stage: u32, needs: Option<&[&str]>, est: Millis) -> PipelineJob {
    PipelineJob {
        name: name.into(),
        stage,
        needs: needs.map(|n| n.iter().map(|s| s.to_string()).collect()),
        when: When::OnSuccess,
        allow_failure: false,
        interruptible: false,
        spec: job(id, 0, 1, est),
    }
}

fn with(mut j: PipelineJob, f: impl FnOnce(&mut PipelineJob)) -> PipelineJob {
    f(&mut j);
    j
}

fn pipeline(id: u64, group: Option<u64>, jobs: Vec<PipelineJob>) -> PipelineSpec {
    PipelineSpec {
        id: PipelineId(id),
        group,
        auto_cancel: AutoCancel::default(),
        jobs,
    }
}

fn sched(policy: &str) -> Scheduler {
    let cfg = config(
        PolicyConfig::named(policy).expect("policy"),
        vec![pool("m", 0, 1)],
        2,
    );
    Scheduler::new(cfg, Box::new(RequestedTime::default()))
}

/// Two one-slot runners.
const TWO: [(u32, u16); 2] = [(0, 0), (1, 0)];

/// Every job runs exactly its estimate and succeeds.
fn exact(p: &PipelineSpec) -> BTreeMap<u64, (Millis, bool)> {
    p.jobs
        .iter()
        .map(|j| (j.spec.id.0, (j.spec.requested_ms.unwrap_or(1), false)))
        .collect()
}

fn script(at: Millis, p: PipelineSpec) -> Script {
    Script {
        runs: exact(&p),
        inputs: vec![(at, Input::Pipeline(p))],
    }
}

mod order {
    use super::*;

    /// x1, x2, x3 (10 each, no needs) and a chain L1 (10) -> L2 (30), spec order x1 x2
    /// x3 L1 L2, on two runners. Ranks: x 10, L1 40, L2 30; critical path 40.
    fn chain_and_shorts() -> PipelineSpec {
        let none: Option<&[&str]> = Some(&[]);
        pipeline(
            1,
            None,
            vec![
                pj(1, "x1", 0, none, 10),
                pj(2, "x2", 0, none, 10),
                pj(3, "x3", 0, none, 10),
                pj(4, "L1", 0, none, 10),
                pj(5, "L2", 0, Some(&["L1"]), 30),
            ],
        )
    }

    /// FIFO (submit order): x1, x2 at 0; x3 and L1 at 10; L2 once L1 ends at 20, so the
    /// pipeline ends at 50. Latest start (and oldest pipeline, by rank): L1 (latest
    /// start 0) and x1 at 0; at 10 L2 (latest start 10) before x2 and x3 (30): L2
    /// 10..40, x2 10..20, x3 20..30; the pipeline ends at 40, its critical path.
    /// `critical-path` (capped): at 0 every key is 0 and the rank decides, L1 (40) and x1
    /// start; at 10 x2 and x3 keep the key of their ready time (min(30, 0) = 0) and go
    /// before L2 (min(10, 10) = 10): L2 20..50, the pipeline ends at 50, as under FIFO.
    /// That is what the cap gives up. Inside fair-share and QoS lanes alike.
    #[test]
    fn critical_path_first_ends_the_pipeline_at_its_critical_path() {
        for (policy, l1, l2, x3, end) in [
            ("easy", 10, 20, 10, 50),
            ("fairshare", 10, 20, 10, 50),
            ("qos", 10, 20, 10, 50),
            ("critical-path-latest-start", 0, 10, 20, 40),
            ("critical-path-oldest", 0, 10, 20, 40),
            ("critical-path", 0, 20, 10, 50),
            ("fairshare-cp", 0, 20, 10, 50),
            ("qos-cp", 0, 20, 10, 50),
        ] {
            let mut s = sched(policy);
            let run = drive_pipelines(&mut s, &TWO, &script(0, chain_and_shorts()));
            assert_eq!(run.start_of(4), Some(l1), "{policy}: L1");
            assert_eq!(run.start_of(5), Some(l2), "{policy}: L2");
            assert_eq!(run.start_of(3), Some(x3), "{policy}: x3");
            assert_eq!(
                run.pipeline(1),
                Some((end, PipelineState::Succeeded)),
                "{policy}"
            );
        }
    }

    /// A pipeline behind its predicted schedule goes ahead. One runner. P0 at 0: z (20).
    /// P1 at 0: a (10), then b (10) in the next stage: critical path 20, b's latest
    /// start 10. P2 at 15: c (10). z 0..20 (keys 0, submitted first), then a (key 0)
    /// before c (15): a 20..30. At 30 b is ready, 20 behind its latest start:
    /// - FIFO: c (queued at 15) before b (30): c 30..40, b 40..50; P1 ends at 50, P2 at
    ///   40: the longest time to feedback is 50.
    /// - `critical-path`: b's key min(10, 30) = 10 before c's 15: b 30..40, c 40..50; P1
    ///   ends at 40, P2 at 50 (35 after its creation): the longest is 40.
    #[test]
    fn a_pipeline_behind_its_schedule_goes_ahead() {
        for (policy, b, c) in [
            ("easy", 40, 30),
            ("critical-path", 30, 40),
            ("fairshare-cp", 30, 40),
            ("qos-cp", 30, 40),
        ] {
            let mut sc = script(0, pipeline(0, None, vec![pj(9, "z", 0, None, 20)]));
            for (at, p) in [
                (
                    0,
                    pipeline(
                        1,
                        None,
                        vec![pj(1, "a", 0, None, 10), pj(2, "b", 1, None, 10)],
                    ),
                ),
                (15, pipeline(2, None, vec![pj(3, "c", 0, None, 10)])),
            ] {
                sc.runs.extend(exact(&p));
                sc.inputs.push((at, Input::Pipeline(p)));
            }
            let mut s = sched(policy);
            let run = drive_pipelines(&mut s, &[(0, 0)], &sc);
            assert_eq!(run.start_of(1), Some(20), "{policy}: a");
            assert_eq!(run.start_of(2), Some(b), "{policy}: b");
            assert_eq!(run.start_of(3), Some(c), "{policy}: c");
            assert_eq!(
                run.pipeline(1),
                Some((b + 10, PipelineState::Succeeded)),
                "{policy}"
            );
        }
    }

    /// One runner. P1 at 0: a (10) -> b (40): critical path 50, b's latest start
    /// 0 + 50 - 40 = 10, and b is ready at 10. P2 at 2: c (5), latest start 2. An
    /// independent job i (1 ms) at 3: its submit time, 3. At 10 (a ends) the queue, by
    /// rule:
    /// - latest start (the rule before aging), `critical-path` (capped: b's key is
    ///   min(10, 10)) and bounded (max(10, 10 - 50)): c (2), i (3), b (10): c 10..15,
    ///   i 15..16, b 16..56;
    /// - oldest pipeline: b (P1 created at 0), c (2), i (3): b 10..50, c 50..55, i 55..56.
    #[test]
    fn across_pipelines_by_rule() {
        for (policy, order) in [
            ("critical-path-latest-start", [(3, 10), (9, 15), (2, 16)]),
            ("critical-path", [(3, 10), (9, 15), (2, 16)]),
            ("critical-path-bounded", [(3, 10), (9, 15), (2, 16)]),
            ("critical-path-oldest", [(2, 10), (3, 50), (9, 55)]),
        ] {
            let mut s = sched(policy);
            let p1 = pipeline(
                1,
                None,
                vec![pj(1, "a", 0, None, 10), pj(2, "b", 1, None, 40)],
            );
            let p2 = pipeline(2, None, vec![pj(3, "c", 0, None, 5)]);
            join_all(&mut s, &[(0, 0)]);
            let mut out = Vec::new();
            s.handle(0, Event::SubmitPipeline(p1), &mut out).unwrap();
            s.handle(2, Event::SubmitPipeline(p2), &mut out).unwrap();
            s.handle(3, Event::Submit(job(9, 3, 1, 1)), &mut out)
                .unwrap();
            let mut now = 10;
            let mut last = JobId(1);
            for (job, at) in order {
                assert_eq!(now, at, "{policy}: job {job}");
                out.clear();
                s.handle(now, Event::Finish { job: last }, &mut out)
                    .unwrap();
                assert_eq!(started(&out), vec![job], "{policy} at {now}");
                last = JobId(job);
                now += match job {
                    2 => 40,
                    3 => 5,
                    _ => 1,
                };
            }
        }
    }

    /// A ready job with slack against a stream of newer pipelines. One runner. P1 at 0:
    /// s (10) and a (10) -> b (B), no stage gates: critical path B + 10; ranks s 10,
    /// a B + 10, b B; latest starts s B, a 0, b 10. Newer pipelines Q_k at 5 + 10k, one
    /// 10 ms job each (latest start: its creation). Every rule starts a first (0..10).
    /// - Latest start: at 10 Q0 (5) goes before b (10): 10..20; b 20..20+B. s's key B
    ///   lets every Q created before B pass it: Q1..Q_{B/10-1} run from 20+B, and s
    ///   starts at 10+2B, after B/10 newer pipelines; the longer the slack, the longer
    ///   it waits, for as long as newer pipelines come.
    /// - Oldest pipeline: b (P1 is older than every Q) 10..10+B, s 10+B..20+B: no
    ///   newer pipeline passes s; P1 ends at its critical path plus s.
    /// - `critical-path` (capped): s's key is min(B, 0) = 0: s 10..20; then Q0 (5)
    ///   before b (min(10, 10) = 10): 20..30; b 30..30+B. No newer pipeline passes s.
    ///   Bounded: the same keys (s max(0, 0 - (B + 10)), b max(10, 10 - (B + 10))).
    #[test]
    fn a_ready_job_is_not_passed_by_a_stream_of_newer_pipelines() {
        let none: Option<&[&str]> = Some(&[]);
        for b in [500, 1000] {
            let mut sc = script(
                0,
                pipeline(
                    1,
                    None,
                    vec![
                        pj(1, "s", 0, none, 10),
                        pj(2, "a", 0, none, 10),
                        pj(3, "b", 0, Some(&["a"]), b),
                    ],
                ),
            );
            let stream = 2 * b / 10 + 10;
            for k in 0..stream {
                let id = 100 + k as u64;
                sc.inputs.push((
                    5 + 10 * k,
                    Input::Pipeline(pipeline(id, None, vec![pj(id, "q", 0, None, 10)])),
                ));
                sc.runs.insert(id, (10, false));
            }
            for (policy, s_start, p1_end, passed) in [
                ("critical-path-latest-start", 10 + 2 * b, 20 + 2 * b, b / 10),
                ("critical-path-oldest", 10 + b, 20 + b, 0),
                ("critical-path", 10, 30 + b, 0),
                ("fairshare-cp", 10, 30 + b, 0),
                ("qos-cp", 10, 30 + b, 0),
                ("critical-path-bounded", 10, 30 + b, 0),
            ] {
                let mut s = sched(policy);
                let run = drive_pipelines(&mut s, &[(0, 0)], &sc);
                assert_eq!(run.start_of(2), Some(0), "{policy} B={b}: a");
                assert_eq!(run.start_of(1), Some(s_start), "{policy} B={b}: s");
                assert_eq!(
                    run.pipeline(1),
                    Some((p1_end, PipelineState::Succeeded)),
                    "{policy} B={b}"
                );
                let newer_before_s = (100..100 + stream as u64)
                    .filter(|q| run.start_of(*q).is_some_and(|t| t < s_start))
                    .count() as i64;
                assert_eq!(newer_before_s, passed, "{policy} B={b}: passed s");
            }
        }
    }

    /// `critical-path` (and the in-lane order of `fairshare-cp` and `qos-cp`) is the
    /// capped latest start; the rule before aging keeps a name of its own.
    #[test]
    fn critical_path_is_the_capped_latest_start() {
        for name in ["critical-path", "cp", "fairshare-cp", "qos-cp"] {
            let p = PolicyConfig::named(name).expect("policy");
            assert_eq!(
                p.critical_path,
                CriticalPathKey::CappedLatestStart,
                "{name}"
            );
        }
        let old = PolicyConfig::named("critical-path-latest-start").expect("policy");
        assert_eq!(old.critical_path, CriticalPathKey::LatestStart);
    }

    fn started(out: &[Decision]) -> Vec<u64> {
        out.iter()
            .filter_map(|d| match d {
                Decision::Start { job, .. } => Some(job.0),
                _ => None,
            })
            .collect()
    }

    /// A pipeline job is queued when it becomes ready: its queue time is then, and under
    /// FIFO it goes behind jobs submitted before that.
    #[test]
    fn a_job_enters_the_queue_when_it_becomes_ready() {
        let mut s = sched("easy");
        join_all(&mut s, &[(0, 0)]);
        let mut out = Vec::new();
        let p = pipeline(
            1,
            None,
            vec![pj(1, "a", 0, None, 10), pj(2, "b", 1, None, 10)],
        );
        s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        assert_eq!(
            s.pipeline_job_state(JobId(2)),
            Some(PipelineJobState::Created)
        );
        assert_eq!(
            s.pipeline_job_state(JobId(1)),
            Some(PipelineJobState::Running)
        );
        s.handle(5, Event::Submit(job(3, 5, 1, 10)), &mut out)
            .unwrap();
        out.clear();
        s.handle(10, Event::Finish { job: JobId(1) }, &mut out)
            .unwrap();
        // b became ready at 10, after job 3 (submitted at 5).
        assert!(matches!(out[..], [Decision::Start { job: JobId(3), .. }]));
        assert_eq!(
            s.pipeline_job_state(JobId(2)),
            Some(PipelineJobState::Waiting)
        );
        assert_eq!(s.queue_position(JobId(2)), Some(0));
        assert_eq!(
            s.pipeline_job_state(JobId(1)),
            Some(PipelineJobState::Succeeded)
        );
    }
}

mod conditions {
    use super::*;

    /// Stage 0: build (10) and lint (5, fails, allow_failure). Stage 1: test (20, fails).
    /// Stage 2: deploy (on_success), cleanup (always, 4), alert (on_failure, 6). Stage 3:
    /// report (on_success). Two runners.
    /// 0: build, lint start; 5: lint fails (allowed); 10: build ends, stage 1 opens (the
    /// allowed failure counts as success): test 10..30 fails. Stage 2 sees a failure:
    /// deploy is skipped at 30, cleanup 30..34 and alert 30..36 run. Stage 3 sees the
    /// failure through the gates: report skipped at 36; the pipeline failed at 36.
    #[test]
    fn stage_rule_with_every_condition() {
        let p = pipeline(
            1,
            None,
            vec![
                pj(1, "build", 0, None, 10),
                with(pj(2, "lint", 0, None, 5), |j| j.allow_failure = true),
                pj(3, "test", 1, None, 20),
                pj(4, "deploy", 2, None, 10),
                with(pj(5, "cleanup", 2, None, 4), |j| j.when = When::Always),
                with(pj(6, "alert", 2, None, 6), |j| j.when = When::OnFailure),
                pj(7, "report", 3, None, 1),
            ],
        );
        let mut sc = script(0, p);
        sc.runs.insert(2, (5, true));
        sc.runs.insert(3, (20, true));
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &sc);
        assert_eq!(run.start_of(3), Some(10));
        assert_eq!(run.end_of(3), Some((30, End::Failed)));
        assert_eq!(run.end_of(4), Some((30, End::Skipped)));
        assert_eq!(run.start_of(5), Some(30));
        assert_eq!(run.start_of(6), Some(30));
        assert_eq!(run.end_of(7), Some((36, End::Skipped)));
        assert_eq!(run.pipeline(1), Some((36, PipelineState::Failed)));
        assert_eq!(run.starts.len(), 5);
    }

    /// Explicit needs: a fails at 10. b (on_success, needs a) is skipped; c (always,
    /// needs b) runs anyway; d (on_failure, needs b) is skipped, since b did not fail; e
    /// (on_failure, needs a) runs. One runner: c 10..11, e 11..12.
    #[test]
    fn explicit_needs_skip_cascades() {
        let p = pipeline(
            1,
            None,
            vec![
                pj(1, "a", 0, Some(&[]), 10),
                pj(2, "b", 0, Some(&["a"]), 10),
                with(pj(3, "c", 0, Some(&["b"]), 1), |j| j.when = When::Always),
                with(pj(4, "d", 0, Some(&["b"]), 1), |j| j.when = When::OnFailure),
                with(pj(5, "e", 0, Some(&["a"]), 1), |j| j.when = When::OnFailure),
            ],
        );
        let mut sc = script(0, p);
        sc.runs.insert(1, (10, true));
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &[(0, 0)], &sc);
        assert_eq!(run.end_of(2), Some((10, End::Skipped)));
        assert_eq!(run.end_of(4), Some((10, End::Skipped)));
        assert_eq!(run.start_of(3), Some(10));
        assert_eq!(run.start_of(5), Some(11));
        assert_eq!(run.pipeline(1), Some((12, PipelineState::Failed)));
    }

    /// A skipped job is neutral through the stage rule: stage 0 a (on_failure: nothing
    /// failed, so skipped at once) and b (10); stage 1 c runs at 10. Named explicitly, the
    /// skipped job skips its dependent: d needs a, skipped at 0.
    #[test]
    fn a_skipped_job_is_neutral_through_a_stage_but_not_as_a_named_need() {
        let p = pipeline(
            1,
            None,
            vec![
                with(pj(1, "a", 0, None, 5), |j| j.when = When::OnFailure),
                pj(2, "b", 0, None, 10),
                pj(3, "c", 1, None, 10),
                pj(4, "d", 1, Some(&["a"]), 10),
            ],
        );
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &script(0, p));
        assert_eq!(run.end_of(1), Some((0, End::Skipped)));
        assert_eq!(run.end_of(4), Some((0, End::Skipped)));
        assert_eq!(run.start_of(3), Some(10));
        assert_eq!(run.pipeline(1), Some((20, PipelineState::Succeeded)));
    }

    /// The driver cancels a waiting job (a, at 1): its on_success dependent is skipped,
    /// its always dependent runs, its on_failure dependent is skipped (a cancel is not a
    /// failure). One runner busy with z until 10. The pipeline ends cancelled.
    #[test]
    fn a_cancelled_need_skips_on_success_and_on_failure_but_not_always() {
        let p = pipeline(
            1,
            None,
            vec![
                pj(9, "z", 0, Some(&[]), 10),
                pj(1, "a", 0, Some(&[]), 10),
                pj(2, "b", 0, Some(&["a"]), 10),
                with(pj(3, "c", 0, Some(&["a"]), 5), |j| j.when = When::Always),
                with(pj(4, "d", 0, Some(&["a"]), 5), |j| j.when = When::OnFailure),
            ],
        );
        let mut sc = script(0, p);
        sc.inputs.push((1, Input::Cancel(1)));
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &[(0, 0)], &sc);
        assert_eq!(run.end_of(1), Some((1, End::Cancelled)));
        assert_eq!(run.end_of(2), Some((1, End::Skipped)));
        assert_eq!(run.end_of(4), Some((1, End::Skipped)));
        assert_eq!(run.start_of(3), Some(10));
        assert_eq!(run.pipeline(1), Some((15, PipelineState::Cancelled)));
    }

    /// The driver skips jobs a trace recorded skipped: a waiting one leaves the queue and
    /// its dependents see a skip; a running one cannot be skipped; an ended one is left.
    #[test]
    fn the_driver_skips_a_job_that_has_not_started() {
        let mut s = sched("easy");
        join_all(&mut s, &[(0, 0)]);
        let p = pipeline(
            1,
            None,
            vec![
                pj(1, "a", 0, Some(&[]), 10),
                pj(2, "b", 0, Some(&[]), 10),
                pj(3, "c", 0, Some(&["b"]), 10),
            ],
        );
        let mut out = Vec::new();
        s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        assert_eq!(
            s.handle(1, Event::Skip { job: JobId(1) }, &mut out),
            Err(CoreError::AlreadyStarted(JobId(1)))
        );
        out.clear();
        s.handle(1, Event::Skip { job: JobId(2) }, &mut out)
            .unwrap();
        assert_eq!(out, vec![Decision::Skip { job: JobId(3) }]);
        assert_eq!(s.pending_count(), 0);
        s.handle(1, Event::Skip { job: JobId(3) }, &mut out)
            .unwrap();
        assert_eq!(
            s.handle(1, Event::Skip { job: JobId(77) }, &mut out),
            Err(CoreError::NotInPipeline(JobId(77)))
        );
        out.clear();
        s.handle(10, Event::Finish { job: JobId(1) }, &mut out)
            .unwrap();
        assert_eq!(
            out,
            vec![Decision::PipelineEnded {
                pipeline: PipelineId(1),
                state: PipelineState::Succeeded
            }]
        );
        assert!(!s.is_pipeline_running(PipelineId(1)));
    }
}

mod manual {
    use super::*;

    /// Stage 0: build (10) and slow (100). Stage 1: deploy (manual, needs build: waits
    /// for a person from 10). Stage 2: notify (5, stage rule). Two runners.
    fn deploy_pipeline(blocking: bool) -> PipelineSpec {
        pipeline(
            1,
            None,
            vec![
                pj(1, "build", 0, None, 10),
                pj(2, "slow", 0, None, 100),
                with(pj(3, "deploy", 1, Some(&["build"]), 10), |j| {
                    j.when = When::Manual { blocking }
                }),
                pj(4, "notify", 2, None, 5),
            ],
        )
    }

    /// Played at 20: deploy 20..30; notify waits for slow: 100..105.
    #[test]
    fn a_played_manual_job_runs_and_holds_its_dependents() {
        for blocking in [false, true] {
            let mut sc = script(0, deploy_pipeline(blocking));
            sc.inputs.push((20, Input::Play(3)));
            let mut s = sched("easy");
            let run = drive_pipelines(&mut s, &TWO, &sc);
            assert_eq!(run.start_of(3), Some(20));
            assert_eq!(run.start_of(4), Some(100));
            assert_eq!(run.pipeline(1), Some((105, PipelineState::Succeeded)));
            assert!(run.manual.is_empty());
        }
    }

    /// Never played: a non-blocking manual job does not hold stage 2 back (notify
    /// 100..105, the pipeline succeeds); a blocking one does: at 100 nothing can run
    /// without a person, notify is skipped and the pipeline ends blocked.
    #[test]
    fn an_unplayed_manual_job_holds_later_stages_only_if_blocking() {
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &script(0, deploy_pipeline(false)));
        assert_eq!(run.start_of(4), Some(100));
        assert_eq!(run.pipeline(1), Some((105, PipelineState::Succeeded)));
        assert!(run.manual.contains(&3));

        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &script(0, deploy_pipeline(true)));
        assert_eq!(run.end_of(4), Some((100, End::Skipped)));
        assert_eq!(run.pipeline(1), Some((100, PipelineState::Blocked)));
        assert!(run.manual.contains(&3));
    }

    /// A job that names a manual job in `needs` waits for it to be played even if it is
    /// non-blocking; never played, it is skipped when the pipeline ends (blocked).
    #[test]
    fn a_named_need_on_a_manual_job_waits_for_it() {
        let p = pipeline(
            1,
            None,
            vec![
                with(pj(1, "gate", 0, Some(&[]), 10), |j| {
                    j.when = When::Manual { blocking: false }
                }),
                pj(2, "after", 0, Some(&["gate"]), 10),
                pj(3, "other", 0, Some(&[]), 30),
            ],
        );
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &script(0, p));
        assert_eq!(run.end_of(2), Some((30, End::Skipped)));
        assert_eq!(run.pipeline(1), Some((30, PipelineState::Blocked)));
        assert_eq!(
            s.handle(31, Event::PlayManual { job: JobId(1) }, &mut Vec::new()),
            Err(CoreError::NotManual(JobId(1)))
        );
    }

    /// A manual job whose needs failed is skipped, not offered to a person.
    #[test]
    fn a_manual_job_after_a_failure_is_skipped() {
        let p = pipeline(
            1,
            None,
            vec![
                pj(1, "a", 0, None, 10),
                with(pj(2, "m", 1, None, 10), |j| {
                    j.when = When::Manual { blocking: true }
                }),
            ],
        );
        let mut sc = script(0, p);
        sc.runs.insert(1, (10, true));
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &sc);
        assert_eq!(run.end_of(2), Some((10, End::Skipped)));
        assert!(run.manual.is_empty());
        assert_eq!(run.pipeline(1), Some((10, PipelineState::Failed)));
    }
}

mod supersession {
    use super::*;

    fn mode(mut p: PipelineSpec, m: AutoCancel) -> PipelineSpec {
        p.auto_cancel = m;
        p
    }

    /// Group 7. P1 at 0 on two runners: a (50) and b (50) run, w (10) waits, m (manual,
    /// est 5) waits for a person, c (stage 1, 10) waits for stage 0; `interruptible`
    /// marks the jobs named in `interruptible`. P2 (x, 10) of the same group at 20.
    fn older(interruptible: &[&str]) -> PipelineSpec {
        let mark = |j: PipelineJob| {
            with(j, |j| {
                j.interruptible = interruptible.contains(&j.name.as_str())
            })
        };
        pipeline(
            1,
            Some(7),
            vec![
                mark(pj(1, "a", 0, None, 50)),
                mark(pj(2, "b", 0, None, 50)),
                mark(pj(3, "w", 0, None, 10)),
                mark(with(pj(4, "m", 0, None, 5), |j| {
                    j.when = When::Manual { blocking: false }
                })),
                mark(pj(5, "c", 1, None, 10)),
            ],
        )
    }

    fn supersede(p1: PipelineSpec) -> (Scheduler, PipeRun) {
        let p2 = pipeline(2, Some(7), vec![pj(11, "x", 0, None, 10)]);
        let mut runs = exact(&p1);
        runs.extend(exact(&p2));
        let sc = Script {
            inputs: vec![(0, Input::Pipeline(p1)), (20, Input::Pipeline(p2))],
            runs,
        };
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &sc);
        (s, run)
    }

    fn cancels(run: &PipeRun) -> Vec<(Millis, u64, bool)> {
        run.decisions
            .iter()
            .filter_map(|&(t, d)| match d {
                Decision::Cancel { job, runner, .. } => Some((t, job.0, runner.is_some())),
                _ => None,
            })
            .collect()
    }

    fn stats(s: &Scheduler) -> (u64, u64, u64, i64, i64) {
        let st = s.pipeline_stats();
        (
            st.superseded,
            st.superseded_jobs,
            st.interrupted_jobs,
            st.saved_run_ms,
            st.lost_run_ms,
        )
    }

    /// `conservative`, b (not interruptible) has started at 20: nothing of P1 is
    /// cancelled. a and b end at 50; w and x (queued at 0 and 20) run 50..60; the stage
    /// gate (m does not hold it: non-blocking) lets c run 60..70; P1 succeeds at 70.
    #[test]
    fn conservative_leaves_a_pipeline_whose_uninterruptible_job_started() {
        let (s, run) = supersede(mode(older(&["a", "w", "m", "c"]), AutoCancel::Conservative));
        assert_eq!(cancels(&run), vec![]);
        assert_eq!(run.starts[&3].0, 50);
        assert_eq!(run.starts[&11].0, 50);
        assert_eq!(run.starts[&5].0, 60);
        assert_eq!(run.pipeline(1), Some((70, PipelineState::Succeeded)));
        assert_eq!(run.pipeline(2), Some((60, PipelineState::Succeeded)));
        assert_eq!(stats(&s), (0, 0, 0, 0, 0));
    }

    /// `conservative` (the default), only interruptible jobs started: the whole of P1
    /// goes at 20, a and b on their runners, w, m and c unstarted; P1 ends cancelled at
    /// once, x takes a runner at 20. Saved by the estimates: a's and b's remaining 30
    /// each, w 10, m 5, c 10 = 85; a and b had run 20 each.
    #[test]
    fn conservative_cancels_everything_while_only_interruptible_jobs_started() {
        let p1 = older(&["a", "b"]);
        assert_eq!(p1.auto_cancel, AutoCancel::Conservative, "the default");
        let (s, run) = supersede(p1);
        assert_eq!(
            cancels(&run),
            vec![
                (20, 1, true),
                (20, 2, true),
                (20, 3, false),
                (20, 4, false),
                (20, 5, false)
            ]
        );
        assert!(run.decisions.iter().all(|(_, d)| match d {
            Decision::Cancel { reason, .. } =>
                *reason == CancelReason::Superseded { by: PipelineId(2) },
            _ => true,
        }));
        assert_eq!(run.pipeline(1), Some((20, PipelineState::Cancelled)));
        assert_eq!(run.starts[&11].0, 20);
        assert_eq!(run.pipeline(2), Some((30, PipelineState::Succeeded)));
        assert_eq!(stats(&s), (1, 5, 2, 85, 40));
    }

    /// `interruptible`: a (running) and w (waiting) are interruptible and go at 20; b
    /// runs on, m stays manual (not interruptible), c waits for stage 0. At 50 b ends:
    /// the stage saw cancelled jobs, so c (`on_success`) is skipped, and P1 ends
    /// cancelled. x takes a's runner at 20. Saved: a's remaining 30 and w 10; lost: a's
    /// 20.
    #[test]
    fn interruptible_cancels_only_the_interruptible_jobs() {
        let (s, run) = supersede(mode(older(&["a", "w"]), AutoCancel::Interruptible));
        assert_eq!(cancels(&run), vec![(20, 1, true), (20, 3, false)]);
        assert_eq!(run.end_of(2), Some((50, End::Succeeded)));
        assert!(run
            .decisions
            .contains(&(50, Decision::Skip { job: JobId(5) })));
        assert!(!run.starts.contains_key(&4) && !run.starts.contains_key(&5));
        assert_eq!(run.pipeline(1), Some((50, PipelineState::Cancelled)));
        assert_eq!(run.starts[&11].0, 20);
        assert_eq!(stats(&s), (1, 2, 1, 40, 20));
    }

    /// `interruptible` with no interruptible job: nothing is cancelled and P1 is not
    /// superseded (it ends as if P2 had not come).
    #[test]
    fn interruptible_without_interruptible_jobs_cancels_nothing() {
        let (s, run) = supersede(mode(older(&[]), AutoCancel::Interruptible));
        assert_eq!(cancels(&run), vec![]);
        assert_eq!(run.pipeline(1), Some((70, PipelineState::Succeeded)));
        assert_eq!(stats(&s), (0, 0, 0, 0, 0));
    }

    /// `unstarted_and_interruptible` (the simulator's rule): a (interruptible) is
    /// cancelled on its runner at 20, w, m and c unstarted; b runs to its end at 50,
    /// when P1 ends cancelled; x takes a's runner at 20. Saved: a's remaining 30, w 10,
    /// m 5, c 10 = 55; lost: a's 20.
    #[test]
    fn unstarted_and_interruptible_lets_other_running_jobs_end() {
        let (s, run) = supersede(mode(older(&["a"]), AutoCancel::UnstartedAndInterruptible));
        assert_eq!(
            cancels(&run),
            vec![
                (20, 1, true),
                (20, 3, false),
                (20, 4, false),
                (20, 5, false)
            ]
        );
        assert_eq!(run.end_of(2), Some((50, End::Succeeded)));
        assert_eq!(run.pipeline(1), Some((50, PipelineState::Cancelled)));
        assert_eq!(run.starts[&11].0, 20);
        assert_eq!(stats(&s), (1, 4, 1, 55, 20));
    }

    /// `none`: nothing of P1 goes, even with every job interruptible; P2, of mode
    /// `none` too, is not kept in the group, yet a `none` pipeline supersedes an older
    /// `conservative` one: P3 (`conservative`, its job y waits behind P1's) is cancelled
    /// by P4 (`none`) at 30.
    #[test]
    fn none_is_never_cancelled_but_supersedes_others() {
        let all = ["a", "b", "w", "m", "c"];
        let p1 = mode(older(&all), AutoCancel::None);
        let p3 = pipeline(3, Some(7), vec![pj(21, "y", 0, None, 10)]);
        let p4 = mode(
            pipeline(4, Some(7), vec![pj(31, "z", 0, None, 10)]),
            AutoCancel::None,
        );
        let mut runs = exact(&p1);
        runs.extend(exact(&p3));
        runs.extend(exact(&p4));
        let sc = Script {
            inputs: vec![
                (0, Input::Pipeline(p1)),
                (20, Input::Pipeline(p3)),
                (30, Input::Pipeline(p4)),
            ],
            runs,
        };
        let mut s = sched("easy");
        let run = drive_pipelines(&mut s, &TWO, &sc);
        assert_eq!(cancels(&run), vec![(30, 21, false)]);
        assert_eq!(run.pipeline(3), Some((30, PipelineState::Cancelled)));
        assert_eq!(run.pipeline(1), Some((70, PipelineState::Succeeded)));
        assert_eq!(stats(&s), (1, 1, 0, 10, 0));
    }

    /// Pipelines of other groups, and of no group, are left alone.
    #[test]
    fn other_groups_are_left_alone() {
        let mut s = sched("easy");
        join_all(&mut s, &TWO);
        let mut out = Vec::new();
        for (id, group) in [(1, Some(1)), (2, None), (3, Some(2)), (4, None)] {
            let p = pipeline(id, group, vec![pj(id, "j", 0, None, 10)]);
            s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        }
        assert!(!out.iter().any(|d| matches!(d, Decision::Cancel { .. })));
        assert_eq!(s.pipeline_stats().superseded, 0);
    }

    /// CancelPipeline cancels running jobs too, interruptible or not; the pipeline ends
    /// cancelled at once.
    #[test]
    fn cancel_pipeline_stops_everything() {
        let mut s = sched("easy");
        join_all(&mut s, &[(0, 0)]);
        let mut out = Vec::new();
        let p = pipeline(
            1,
            None,
            vec![pj(1, "a", 0, None, 10), pj(2, "b", 0, None, 10)],
        );
        s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        out.clear();
        s.handle(
            5,
            Event::CancelPipeline {
                pipeline: PipelineId(1),
            },
            &mut out,
        )
        .unwrap();
        let reason = CancelReason::PipelineCancelled;
        assert_eq!(
            out,
            vec![
                Decision::Cancel {
                    job: JobId(1),
                    runner: Some(RunnerId(0)),
                    reason
                },
                Decision::Cancel {
                    job: JobId(2),
                    runner: None,
                    reason
                },
                Decision::PipelineEnded {
                    pipeline: PipelineId(1),
                    state: PipelineState::Cancelled
                },
            ]
        );
        assert_eq!(
            (s.pending_count(), s.running_count(), s.free_slots()),
            (0, 0, 1)
        );
        assert_eq!(
            s.handle(
                6,
                Event::CancelPipeline {
                    pipeline: PipelineId(1)
                },
                &mut out
            ),
            Err(CoreError::UnknownPipeline(PipelineId(1)))
        );
    }
}

mod restore {
    use super::*;

    /// Runs `event` at `now`; the decisions it made.
    fn step(s: &mut Scheduler, now: Millis, event: Event) -> Vec<Decision> {
        let mut out = Vec::new();
        s.handle(now, event, &mut out)
            .expect("the core takes the event");
        out
    }

    /// Stage 0: a (10), b (20, allow_failure); stage 1: t1 needs a (30), t2 by the stage
    /// rule (40); stage 2: deploy (10), notify (on_failure, 5), cleanup (always, 5).
    fn release() -> PipelineSpec {
        pipeline(
            1,
            None,
            vec![
                pj(1, "a", 0, None, 10),
                with(pj(2, "b", 0, None, 20), |j| j.allow_failure = true),
                pj(3, "t1", 1, Some(&["a"]), 30),
                pj(4, "t2", 1, None, 40),
                pj(5, "deploy", 2, None, 10),
                with(pj(6, "notify", 2, None, 5), |j| j.when = When::OnFailure),
                with(pj(7, "cleanup", 2, None, 5), |j| j.when = When::Always),
            ],
        )
    }

    /// The store had, at a restart at 100 on two runners: a succeeded, b failed (allowed),
    /// t1 running on runner 0 since 90, the rest open. t2's needs (stage 0) all ended: it
    /// is decided again and starts on runner 1 at 100 (100..140). deploy waits for stage
    /// 1: the pipeline's end is projected at 140 + 10 = 150. t1 ends at 120 and starts
    /// nothing; at 140 (t2 ends) deploy and cleanup start, notify is skipped (nothing
    /// failed without allow_failure); cleanup ends at 145, deploy at 150: the pipeline
    /// ends succeeded. No job started twice, none before its needs ended.
    #[test]
    fn a_pipeline_goes_on_where_its_store_left_it() {
        let mut s = sched("easy");
        join_all(&mut s, &TWO);
        let mut out = Vec::new();
        s.restore_pipeline(
            100,
            &release(),
            0,
            None,
            &[
                RestoredJob::Succeeded,
                RestoredJob::Failed,
                RestoredJob::Running {
                    runner: RunnerId(0),
                    start_ms: 90,
                },
                RestoredJob::Open,
                RestoredJob::Open,
                RestoredJob::Open,
                RestoredJob::Open,
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![], "nothing to decide before the pass");
        let state = |s: &Scheduler, id| s.pipeline_job_state(JobId(id));
        assert_eq!(
            state(&s, 2),
            Some(PipelineJobState::Failed { allowed: true })
        );
        assert_eq!(state(&s, 3), Some(PipelineJobState::Running));
        assert_eq!(state(&s, 4), Some(PipelineJobState::Waiting));
        assert_eq!(state(&s, 5), Some(PipelineJobState::Created));
        assert_eq!(
            step(&mut s, 100, Event::Tick),
            vec![Decision::Start {
                job: JobId(4),
                runner: RunnerId(1),
                expected_end_ms: 140
            }]
        );
        assert_eq!(s.pipeline_eta(PipelineId(1), 100, 1_000), Some(150));
        assert_eq!(step(&mut s, 120, Event::Finish { job: JobId(3) }), vec![]);
        assert_eq!(
            step(&mut s, 140, Event::Finish { job: JobId(4) }),
            vec![
                Decision::Skip { job: JobId(6) },
                Decision::Start {
                    job: JobId(5),
                    runner: RunnerId(0),
                    expected_end_ms: 150
                },
                Decision::Start {
                    job: JobId(7),
                    runner: RunnerId(1),
                    expected_end_ms: 145
                },
            ]
        );
        assert_eq!(step(&mut s, 145, Event::Finish { job: JobId(7) }), vec![]);
        assert_eq!(
            step(&mut s, 150, Event::Finish { job: JobId(5) }),
            vec![Decision::PipelineEnded {
                pipeline: PipelineId(1),
                state: PipelineState::Succeeded
            }]
        );
    }

    /// A pipeline superseded before the restart: its non-interruptible job a still ran
    /// (runner 0 since 0), b and the later stage's c were cancelled. Restored as
    /// cancelled, nothing of it starts again; when a ends at 50 it ends cancelled, and
    /// the cancelled jobs stay cancelled.
    #[test]
    fn cancelled_jobs_stay_cancelled_and_skipped_ones_skipped() {
        let mut s = sched("easy");
        join_all(&mut s, &TWO);
        let p = pipeline(
            1,
            Some(7),
            vec![
                pj(1, "a", 0, None, 50),
                pj(2, "b", 0, None, 50),
                pj(3, "c", 1, None, 10),
            ],
        );
        let mut out = Vec::new();
        s.restore_pipeline(
            30,
            &p,
            0,
            Some(CancelReason::Superseded { by: PipelineId(9) }),
            &[
                RestoredJob::Running {
                    runner: RunnerId(0),
                    start_ms: 0,
                },
                RestoredJob::Cancelled,
                RestoredJob::Cancelled,
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(step(&mut s, 30, Event::Tick), vec![]);
        assert_eq!(
            s.pipeline_job_state(JobId(3)),
            Some(PipelineJobState::Cancelled)
        );
        assert_eq!(
            step(&mut s, 50, Event::Finish { job: JobId(1) }),
            vec![Decision::PipelineEnded {
                pipeline: PipelineId(1),
                state: PipelineState::Cancelled
            }]
        );

        // x failed (not allowed): y (needs x) was skipped; z (always, needs y) is
        // decided again and runs, 60..65; the pipeline then ends failed.
        let p = pipeline(
            2,
            None,
            vec![
                pj(11, "x", 0, None, 5),
                pj(12, "y", 1, Some(&["x"]), 5),
                with(pj(13, "z", 2, Some(&["y"]), 5), |j| j.when = When::Always),
            ],
        );
        s.restore_pipeline(
            60,
            &p,
            40,
            None,
            &[RestoredJob::Failed, RestoredJob::Skipped, RestoredJob::Open],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            s.pipeline_job_state(JobId(12)),
            Some(PipelineJobState::Skipped)
        );
        assert_eq!(
            step(&mut s, 60, Event::Tick),
            vec![Decision::Start {
                job: JobId(13),
                runner: RunnerId(0),
                expected_end_ms: 65
            }]
        );
        assert_eq!(
            step(&mut s, 65, Event::Finish { job: JobId(13) }),
            vec![Decision::PipelineEnded {
                pipeline: PipelineId(2),
                state: PipelineState::Failed
            }]
        );
    }

    /// A state per job, or the restore is refused and nothing changes.
    #[test]
    fn a_state_per_job_is_required() {
        let mut s = sched("easy");
        join_all(&mut s, &TWO);
        let mut out = Vec::new();
        assert_eq!(
            s.restore_pipeline(0, &release(), 0, None, &[RestoredJob::Open], &mut out),
            Err(CoreError::RestoreMismatch {
                pipeline: PipelineId(1),
                states: 1,
                jobs: 7
            })
        );
        assert!(!s.is_pipeline_running(PipelineId(1)));
    }
}

mod eta {
    use super::*;

    /// The chain-and-shorts pipeline under the latest-start order (L2 before the x jobs
    /// once ready; the projection follows the core's order, whichever) at 0: L1 and x1 run
    /// (0..10), x2 and x3 wait (10..20 on both runners), L2 is placed after the waiting
    /// jobs, once L1 ends and a runner is free: 20..50. At 10, after L1 and x1 ended: L2
    /// runs 10..40, x2 10..20, x3 waits (20..30): the end is 40.
    #[test]
    fn a_pipeline_end_is_projected_through_its_dag() {
        let mut s = sched("critical-path-latest-start");
        join_all(&mut s, &TWO);
        let none: Option<&[&str]> = Some(&[]);
        let p = pipeline(
            1,
            None,
            vec![
                pj(1, "x1", 0, none, 10),
                pj(2, "x2", 0, none, 10),
                pj(3, "x3", 0, none, 10),
                pj(4, "L1", 0, none, 10),
                pj(5, "L2", 0, Some(&["L1"]), 30),
            ],
        );
        let mut out = Vec::new();
        s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        assert_eq!(s.pipeline_eta(PipelineId(1), 0, 100), Some(50));
        let proj = s.project(0, 100);
        assert_eq!(proj.pipeline_end(PipelineId(1)), Some(50));
        assert_eq!(proj.later.len(), 1);
        assert_eq!(proj.start_of(JobId(5)), Some(20));
        assert_eq!(s.predicted_start(JobId(5), 0, 100), Some(20));
        s.handle(10, Event::Finish { job: JobId(4) }, &mut out)
            .unwrap();
        s.handle(10, Event::Finish { job: JobId(1) }, &mut out)
            .unwrap();
        assert_eq!(s.pipeline_eta(PipelineId(1), 10, 100), Some(40));
        // A waiting job beyond the limit: its pipeline's end is unknown.
        assert_eq!(s.pipeline_eta(PipelineId(1), 10, 0), None);
        assert_eq!(s.pipeline_eta(PipelineId(9), 10, 100), None);
    }

    /// Through stage gates, assuming every job succeeds: one runner, FIFO. Stage 0: a
    /// (10) runs, b (20) waits: 10..30. Stage 1: c (5) 30..35; alert (on_failure) is not
    /// expected to run. Stage 2: d (1) 35..36.
    #[test]
    fn stages_and_conditions_in_the_projection() {
        let mut s = sched("easy");
        join_all(&mut s, &[(0, 0)]);
        let p = pipeline(
            1,
            None,
            vec![
                pj(1, "a", 0, None, 10),
                pj(2, "b", 0, None, 20),
                pj(3, "c", 1, None, 5),
                with(pj(4, "alert", 1, None, 50), |j| j.when = When::OnFailure),
                pj(5, "d", 2, None, 1),
            ],
        );
        let mut out = Vec::new();
        s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        let proj = s.project(0, 100);
        assert_eq!(proj.start_of(JobId(3)), Some(30));
        assert_eq!(proj.start_of(JobId(4)), None);
        assert_eq!(proj.start_of(JobId(5)), Some(35));
        assert_eq!(proj.pipeline_end(PipelineId(1)), Some(36));
    }
}

mod critical_path {
    use super::*;

    /// Stages build (0), test (1), deploy (2) on two runners, estimates in ms:
    /// compile 30 and lint 5 (build); unit 20 and integ 40 need compile, docs 50 needs
    /// lint (test); deploy 10 (stage rule) and alert 10 (`on_failure`, not expected to
    /// run) in deploy. Remaining paths at 0: deploy 10, unit 30, integ 50, docs 60,
    /// compile 30 + 50 = 80, lint 5 + 60 = 65: the path is compile, integ, deploy (80).
    /// At 5 lint ends and docs starts (ends at 55 by its estimate). At 30 compile ends,
    /// unit takes its runner, integ waits: integ 40 + 10 = 50 against docs (55 - 30) + 10
    /// = 35 and unit 30: the path is integ, deploy (50).
    #[test]
    fn the_heaviest_chain_of_what_is_left() {
        let mut s = sched("easy");
        join_all(&mut s, &TWO);
        let p = pipeline(
            1,
            None,
            vec![
                pj(1, "compile", 0, Some(&[]), 30),
                pj(2, "lint", 0, Some(&[]), 5),
                pj(3, "unit", 1, Some(&["compile"]), 20),
                pj(4, "integ", 1, Some(&["compile"]), 40),
                pj(5, "docs", 1, Some(&["lint"]), 50),
                pj(6, "deploy", 2, None, 10),
                with(pj(7, "alert", 2, None, 10), |j| j.when = When::OnFailure),
            ],
        );
        let id = PipelineId(1);
        let mut out = Vec::new();
        s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        let ids = |v: &[u64]| v.iter().map(|&j| JobId(j)).collect::<Vec<_>>();
        let cp = s.critical_path(id, 0).expect("running");
        assert_eq!(cp.jobs, ids(&[1, 4, 6]));
        assert_eq!(cp.remaining_ms, 80);
        assert_eq!(cp.job_remaining_ms, vec![80, 65, 30, 50, 60, 10, 0]);

        s.handle(5, Event::Finish { job: JobId(2) }, &mut out)
            .unwrap();
        assert_eq!(
            s.pipeline_job_state(JobId(5)),
            Some(PipelineJobState::Running)
        );
        let cp = s.critical_path(id, 10).expect("running");
        assert_eq!((cp.jobs.clone(), cp.remaining_ms), (ids(&[1, 4, 6]), 70));
        assert_eq!(cp.job_remaining_ms, vec![70, 0, 30, 50, 55, 10, 0]);

        s.handle(30, Event::Finish { job: JobId(1) }, &mut out)
            .unwrap();
        assert_eq!(
            s.pipeline_job_state(JobId(3)),
            Some(PipelineJobState::Running)
        );
        assert_eq!(
            s.pipeline_job_state(JobId(4)),
            Some(PipelineJobState::Waiting)
        );
        let cp = s.critical_path(id, 30).expect("running");
        assert_eq!((cp.jobs.clone(), cp.remaining_ms), (ids(&[4, 6]), 50));
        assert_eq!(cp.job_remaining_ms, vec![0, 0, 30, 50, 35, 10, 0]);
        assert_eq!(s.critical_path(PipelineId(9), 30), None);
    }

    /// A failed need turns the conditions around: once build fails, the `on_failure`
    /// job is what is left (10) and the `on_success` one counts 0.
    #[test]
    fn conditions_decide_what_counts() {
        let mut s = sched("easy");
        join_all(&mut s, &TWO);
        let p = pipeline(
            2,
            None,
            vec![
                pj(11, "build", 0, None, 30),
                pj(12, "deploy", 1, None, 20),
                with(pj(13, "alert", 1, None, 10), |j| j.when = When::OnFailure),
            ],
        );
        let mut out = Vec::new();
        s.handle(0, Event::SubmitPipeline(p), &mut out).unwrap();
        let cp = s.critical_path(PipelineId(2), 0).expect("running");
        assert_eq!((cp.jobs, cp.remaining_ms), (vec![JobId(11), JobId(12)], 50));
        s.handle(7, Event::Fail { job: JobId(11) }, &mut out)
            .unwrap();
        let cp = s.critical_path(PipelineId(2), 7).expect("running");
        assert_eq!((cp.jobs, cp.remaining_ms), (vec![JobId(13)], 10));
        assert_eq!(cp.job_remaining_ms, vec![0, 0, 10]);
    }
}

mod errors {
    use super::*;

    fn refused(p: PipelineSpec) -> CoreError {
        let mut s = sched("easy");
        join_all(&mut s, &[(0, 0)]);
        let mut out = Vec::new();
        s.handle(0, Event::Submit(job(50, 0, 1, 10)), &mut out)
            .expect("independent job");
        out.clear();
        let e = s
            .handle(1, Event::SubmitPipeline(p), &mut out)
            .expect_err("refused");
        // Nothing changed: no decision, no pipeline, the queue as it was.
        assert!(out.is_empty());
        assert!(!s.is_pipeline_running(PipelineId(1)));
        assert_eq!((s.pending_count(), s.running_count()), (0, 1));
        e
    }

    #[test]
    fn bad_pipelines_are_refused_naming_the_job() {
        let p = PipelineId(1);
        let e = refused(pipeline(
            1,
            None,
            vec![
                pj(1, "a", 0, Some(&["c"]), 1),
                pj(2, "b", 0, Some(&["a"]), 1),
                pj(3, "c", 0, Some(&["b"]), 1),
                pj(4, "d", 0, Some(&["a"]), 1),
            ],
        ));
        assert_eq!(
            e,
            CoreError::NeedCycle {
                pipeline: p,
                job: "a".into(),
                cycle: vec!["a".into(), "c".into(), "b".into(), "a".into()],
            }
        );
        assert_eq!(
            e.to_string(),
            "pipeline 1: job \"a\" is on a cycle of needs: a needs c needs b needs a"
        );
        assert_eq!(
            refused(pipeline(1, None, vec![pj(1, "a", 0, Some(&["a"]), 1)])),
            CoreError::NeedCycle {
                pipeline: p,
                job: "a".into(),
                cycle: vec!["a".into(), "a".into()],
            }
        );
        assert_eq!(
            refused(pipeline(1, None, vec![pj(1, "a", 0, Some(&["zz"]), 1)])),
            CoreError::UnknownNeed {
                pipeline: p,
                job: "a".into(),
                need: "zz".into()
            }
        );
        assert_eq!(
            refused(pipeline(
                1,
                None,
                vec![pj(1, "a", 0, None, 1), pj(2, "a", 1, None, 1)]
            )),
            CoreError::DuplicateJobName {
                pipeline: p,
                job: "a".into()
            }
        );
        assert_eq!(
            refused(pipeline(1, None, vec![])),
            CoreError::EmptyPipeline { pipeline: p }
        );
        assert_eq!(
            refused(pipeline(
                1,
                None,
                vec![pj(1, "a", 0, Some(&["b"]), 1), pj(2, "b", 1, None, 1)]
            )),
            CoreError::NeedOnLaterStage {
                pipeline: p,
                job: "a".into(),
                stage: 0,
                need: "b".into(),
                need_stage: 1
            }
        );
        assert_eq!(
            refused(pipeline(
                1,
                None,
                vec![pj(1, "a", 0, None, 1), pj(2, "b", 0, Some(&["a", "a"]), 1)]
            )),
            CoreError::DuplicateNeed {
                pipeline: p,
                job: "b".into(),
                need: "a".into()
            }
        );
        assert_eq!(
            refused(pipeline(1, None, vec![pj(1, "", 0, None, 1)])),
            CoreError::UnnamedJob {
                pipeline: p,
                index: 0
            }
        );
    }

    #[test]
    fn a_job_the_core_would_refuse_is_named_by_its_pipeline_name() {
        let p = PipelineId(1);
        // Job 50 is already queued; two jobs of the pipeline share id 2.
        for (jobs, job, source) in [
            (
                vec![pj(50, "a", 0, None, 1)],
                "a",
                CoreError::DuplicateJob(JobId(50)),
            ),
            (
                vec![pj(2, "a", 0, None, 1), pj(2, "b", 0, None, 1)],
                "b",
                CoreError::DuplicateJob(JobId(2)),
            ),
        ] {
            assert_eq!(
                refused(pipeline(1, None, jobs)),
                CoreError::PipelineJob {
                    pipeline: p,
                    job: job.into(),
                    source: Box::new(source)
                }
            );
        }
        let gpu = with(pj(3, "gpu-test", 0, None, 1), |j| {
            j.spec.labels = LabelSet(2)
        });
        let e = refused(pipeline(1, None, vec![gpu]));
        assert!(
            e.to_string()
                .starts_with("pipeline 1: job \"gpu-test\": job 3 can never run"),
            "{e}"
        );
    }

    #[test]
    fn ids_of_a_running_pipeline_stay_taken() {
        let mut s = sched("easy");
        let mut out = Vec::new();
        let p = pipeline(
            1,
            None,
            vec![pj(1, "a", 0, None, 1), pj(2, "b", 1, None, 1)],
        );
        s.handle(0, Event::SubmitPipeline(p.clone()), &mut out)
            .unwrap();
        assert_eq!(
            s.handle(0, Event::SubmitPipeline(p), &mut out),
            Err(CoreError::DuplicatePipeline(PipelineId(1)))
        );
        // b is not queued yet, but its id is taken.
        assert_eq!(
            s.handle(0, Event::Submit(job(2, 0, 1, 1)), &mut out),
            Err(CoreError::DuplicateJob(JobId(2)))
        );
        assert_eq!(
            s.handle(0, Event::PlayManual { job: JobId(2) }, &mut out),
            Err(CoreError::NotManual(JobId(2)))
        );
        // Cancelling a job that is not queued yet skips its dependents like any cancel.
        out.clear();
        s.handle(0, Event::Cancel { job: JobId(2) }, &mut out)
            .unwrap();
        assert_eq!(
            s.pipeline_job_state(JobId(2)),
            Some(PipelineJobState::Cancelled)
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A random job: (stage 0..3, needs: None (stage rule) or a subset of earlier jobs of
    /// the same or earlier stages as bits, when 0..6, allow_failure, interruptible, run
    /// 1..40, fails, slots 1..2).
    type GenJob = (u32, Option<u16>, u8, bool, bool, Millis, bool, u32);

    #[derive(Debug, Clone)]
    struct Case {
        /// (submit time, group, jobs) per pipeline.
        pipelines: Vec<(Millis, Option<u64>, Vec<GenJob>)>,
        /// (time, kind 0 = play / 1 = skip / 2 = cancel job / 3 = cancel pipeline, target)
        pokes: Vec<(Millis, u8, usize)>,
        runners: u32,
        slots: u32,
    }

    fn case() -> impl Strategy<Value = Case> {
        let job = (
            0u32..3,
            prop::option::weighted(0.5, any::<u16>()),
            0u8..6,
            prop::bool::weighted(0.2),
            any::<bool>(),
            1i64..40,
            prop::bool::weighted(0.2),
            1u32..3,
        );
        let pipeline = (
            0i64..120,
            prop::option::of(0u64..2),
            prop::collection::vec(job, 1..12),
        );
        (
            prop::collection::vec(pipeline, 1..5),
            prop::collection::vec((0i64..200, 0u8..4, any::<usize>()), 0..6),
            1u32..4,
            2u32..4,
        )
            .prop_map(|(pipelines, pokes, runners, slots)| Case {
                pipelines,
                pokes,
                runners,
                slots,
            })
    }

    fn policies() -> impl Strategy<Value = PolicyConfig> {
        prop_oneof![
            all_policies(),
            (
                prop_oneof![
                    Just(QueueOrder::CriticalPath),
                    Just(QueueOrder::FairShare),
                    Just(QueueOrder::Qos)
                ],
                prop_oneof![Just(Backfill::Easy), Just(Backfill::None)],
                prop_oneof![
                    Just(CriticalPathKey::CappedLatestStart),
                    Just(CriticalPathKey::OldestPipeline),
                    Just(CriticalPathKey::BoundedLatestStart),
                    Just(CriticalPathKey::LatestStart)
                ]
            )
                .prop_map(|(order, backfill, critical_path)| PolicyConfig {
                    order,
                    backfill,
                    within_lane: WithinLane::CriticalPath,
                    critical_path,
                    fair_share_half_life_ms: 100,
                    ..PolicyConfig::default()
                })
        ]
    }

    /// Job ids are `pipeline * 100 + index`; jobs are sorted by stage so that needs on
    /// lower indices of the same or earlier stages never make a cycle.
    fn build(c: &Case) -> (Script, Vec<PipelineSpec>) {
        let mut sc = Script::default();
        let mut specs = Vec::new();
        for (p, (at, group, jobs)) in c.pipelines.iter().enumerate() {
            let mut jobs = jobs.clone();
            jobs.sort_by_key(|j| j.0);
            let names: Vec<String> = (0..jobs.len()).map(|i| format!("j{i}")).collect();
            let spec_jobs = jobs
                .iter()
                .enumerate()
                .map(
                    |(i, &(stage, needs, when, allow, intr, run, fails, slots))| {
                        let id = (p as u64 + 1) * 100 + i as u64;
                        sc.runs.insert(id, (run, fails));
                        let mut spec = job(id, 0, slots.min(c.slots), run);
                        spec.tenant = TenantId((i % 2) as u32);
                        spec.qos = QosId((i % 2) as u8);
                        PipelineJob {
                            name: names[i].clone(),
                            stage,
                            needs: needs.map(|bits| {
                                (0..i)
                                    .filter(|&k| bits & (1 << (k % 16)) != 0)
                                    .map(|k| names[k].clone())
                                    .collect()
                            }),
                            when: match when {
                                3 => When::OnFailure,
                                4 => When::Always,
                                5 => When::Manual {
                                    blocking: run % 2 == 0,
                                },
                                _ => When::OnSuccess,
                            },
                            allow_failure: allow,
                            interruptible: intr,
                            spec,
                        }
                    },
                )
                .collect();
            let mut spec = pipeline(p as u64 + 1, *group, spec_jobs);
            // Every supersession mode, by the submit time (no strategy of its own).
            spec.auto_cancel = match at % 3 {
                0 => AutoCancel::Conservative,
                1 => AutoCancel::Interruptible,
                _ => AutoCancel::None,
            };
            sc.inputs.push((*at, Input::Pipeline(spec.clone())));
            specs.push(spec);
        }
        let all: Vec<u64> = sc.runs.keys().copied().collect();
        for &(at, kind, target) in &c.pokes {
            let job = all[target % all.len()];
            sc.inputs.push((
                at,
                match kind {
                    0 => Input::Play(job),
                    1 => Input::Skip(job),
                    2 => Input::Cancel(job),
                    _ => Input::CancelPipeline(job / 100),
                },
            ));
        }
        sc.inputs.sort_by_key(|(t, _)| *t);
        (sc, specs)
    }

    /// Each job's needs as (need, through the stage rule).
    fn needs_of(p: &PipelineSpec) -> BTreeMap<u64, Vec<(u64, bool)>> {
        let id_of: BTreeMap<&str, u64> = p
            .jobs
            .iter()
            .map(|j| (j.name.as_str(), j.spec.id.0))
            .collect();
        p.jobs
            .iter()
            .map(|j| {
                let needs = match &j.needs {
                    Some(n) => n.iter().map(|name| (id_of[name.as_str()], false)).collect(),
                    None => p
                        .jobs
                        .iter()
                        .filter(|o| o.stage < j.stage)
                        .map(|o| (o.spec.id.0, true))
                        .collect(),
                };
                (j.spec.id.0, needs)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The driver asserts capacity, single start, no start of a skipped or ended job,
        /// cancels on the right runner. Here: no job starts before its needs ended (a
        /// non-blocking manual job never played does not hold the stage rule); every job
        /// reaches exactly one terminal state; every pipeline ends once, failed exactly
        /// when a job failed without allow_failure; nothing is left in the core; the same
        /// inputs give the same decisions.
        #[test]
        fn pipelines_keep_their_invariants(c in case(), policy in policies()) {
            let (sc, specs) = build(&c);
            let runners: Vec<(u32, u16)> = (0..c.runners).map(|r| (r, 0)).collect();
            let cfg = config(policy.clone(), vec![pool("m", 0, c.slots)], 2);
            let mut s = Scheduler::new(cfg.clone(), Box::new(RequestedTime::default()));
            let run = drive_pipelines(&mut s, &runners, &sc);

            for p in &specs {
                let needs = needs_of(p);
                let when: BTreeMap<u64, When> = p.jobs.iter().map(|j| (j.spec.id.0, j.when)).collect();
                for j in &p.jobs {
                    let id = j.spec.id.0;
                    let terminal = usize::from(run.ends.contains_key(&id)) + usize::from(run.manual.contains(&id));
                    prop_assert_eq!(terminal, 1, "job {} reached {} terminal states", id, terminal);
                    if let Some(&(start, _)) = run.starts.get(&id) {
                        for &(n, stage_rule) in &needs[&id] {
                            if stage_rule && when[&n] == (When::Manual { blocking: false }) {
                                continue;
                            }
                            let ended = run.ends.get(&n).map(|e| e.0);
                            prop_assert!(ended.is_some_and(|t| t <= start),
                                "job {} started at {} before its need {} ended ({:?})", id, start, n, ended);
                        }
                    }
                }
                let (_, state) = run.pipeline(p.id.0).expect("every pipeline ends");
                let failed = p.jobs.iter().any(|j| !j.allow_failure
                    && run.ends.get(&j.spec.id.0).is_some_and(|e| e.1 == End::Failed));
                prop_assert_eq!(state == PipelineState::Failed, failed, "pipeline {}", p.id);
            }
            prop_assert_eq!((s.pending_count(), s.running_count()), (0, 0));
            prop_assert_eq!(s.pipeline_stats().submitted, specs.len() as u64);

            let mut again = Scheduler::new(cfg, Box::new(RequestedTime::default()));
            let run2 = drive_pipelines(&mut again, &runners, &sc);
            prop_assert_eq!(run.decisions, run2.decisions);
        }

        /// Without pipelines, critical-path order is FIFO: the same starts as `easy`
        /// (and `fcfs` under strict backfilling).
        #[test]
        fn critical_path_without_pipelines_is_fifo(
            jobs in prop::collection::vec((0i64..100, 1u32..3, 1i64..40), 1..40),
            strict in any::<bool>(),
        ) {
            let backfill = if strict { Backfill::None } else { Backfill::Easy };
            let specs: Vec<(JobSpec, Millis)> = jobs.iter().enumerate()
                .map(|(i, &(at, slots, run))| (job(i as u64, at, slots, run), run)).collect();
            let starts = |order: QueueOrder| {
                let policy = PolicyConfig { order, backfill, ..PolicyConfig::default() };
                let mut s = Scheduler::new(config(policy, vec![pool("m", 0, 2)], 1),
                    Box::new(RequestedTime::default()));
                drive(&mut s, &[(0, 0), (1, 0)], &specs, false).starts
            };
            prop_assert_eq!(starts(QueueOrder::CriticalPath), starts(QueueOrder::Fifo));
        }
    }
}
