//! One instant at which running jobs end and jobs are submitted, as pyss handles it
//! (tie-breaking rules 6 and 7 at the top of `scheduler/src/scheduler.rs`): small
//! scenarios through the engine on one 10-processor machine, with start times worked
//! by hand in the comments.
//!
//! The setup of every scenario: L (6 processors) runs 0..4000 s, exactly its request.
//! E (2 processors, request 5000 s) ends early at 1000 s; A (2 processors) ends at
//! 1000 s exactly at its request. The machine is full until then, and four jobs wait
//! in this order: H (10 processors, 100 s), W (4 processors, 1800 s), X1 and X2 (2
//! processors, 600 s each); every job runs exactly its request unless said otherwise.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rustci_scheduler::{
    Decision, HistoryKeys, JobId, JobSpec, LabelSet, PolicyConfig, PoolId, PoolSpec, Predictor,
    QosId, QosSpec, RequestedTime, RunnerId, Scheduler, SchedulerConfig, TenantId, TenantSpec,
    Tsafrir,
};
use rustci_sim::engine::{self, EngineOptions};
use rustci_sim::workload::SimJob;

/// (name, submit s, processors, request s, run s), in submission order.
type Job<'a> = (&'a str, i64, u32, i64, i64);

/// Start and planned end (start + estimate), in seconds, of every job.
struct Schedule {
    start: BTreeMap<String, i64>,
    planned_end: BTreeMap<String, i64>,
}

fn run(policy: &str, predictor: Box<dyn Predictor>, jobs: &[Job]) -> Schedule {
    let config = SchedulerConfig {
        policy: PolicyConfig::named(policy).expect("policy"),
        labels: Vec::new(),
        pools: vec![PoolSpec {
            name: "machine".into(),
            labels: LabelSet::default(),
            slots_per_runner: 10,
            cost_per_hour: 0.0,
            provisioning_delay_ms: 0,
        }],
        tenants: vec![TenantSpec {
            name: "user".into(),
            weight: 1.0,
        }],
        qos: vec![QosSpec {
            name: "default".into(),
            priority: 0,
            wait_target_ms: 3_600_000,
        }],
    }
    .check()
    .expect("config");
    let mut scheduler = Scheduler::new(config, predictor);
    let sim_jobs: Vec<SimJob> = jobs
        .iter()
        .enumerate()
        .map(|(i, &(_, submit_s, slots, request_s, run_s))| SimJob {
            record: i,
            spec: JobSpec {
                id: JobId(i as u64),
                tenant: TenantId(0),
                qos: QosId(0),
                priority: 0,
                labels: LabelSet::default(),
                slots,
                requested_ms: Some(request_s * 1000),
                submit_ms: submit_s * 1000,
                history: HistoryKeys::default(),
            },
            run_ms: run_s * 1000,
            failed: false,
            pipeline: None,
        })
        .collect();
    let out = engine::run(
        &mut scheduler,
        &sim_jobs,
        &[(RunnerId(0), PoolId(0), 10)],
        0,
        EngineOptions {
            record_decisions: true,
            ..Default::default()
        },
    )
    .expect("engine");
    let mut schedule = Schedule {
        start: BTreeMap::new(),
        planned_end: BTreeMap::new(),
    };
    for (at, decision) in out.decisions.expect("decision log") {
        if let Decision::Start {
            job,
            expected_end_ms,
            ..
        } = decision
        {
            let name = jobs[job.0 as usize].0;
            schedule.start.insert(name.into(), at / 1000);
            schedule
                .planned_end
                .insert(name.into(), expected_end_ms / 1000);
        }
    }
    assert_eq!(schedule.start.len(), jobs.len(), "every job started");
    // Every slot came back: no end was lost or counted twice.
    assert_eq!(
        (
            scheduler.free_slots(),
            scheduler.running_count(),
            scheduler.pending_count()
        ),
        (10, 0, 0)
    );
    schedule
}

/// L and then the queue H, W, X1, X2, submitted while the machine is full.
const L: Job<'static> = ("L", 0, 6, 4000, 4000);
const QUEUE: [Job<'static>; 4] = [
    ("H", 600, 10, 100, 100),
    ("W", 601, 4, 1800, 1800),
    ("X1", 602, 2, 600, 600),
    ("X2", 603, 2, 600, 600),
];
/// E starts at 0 and ends early at 1000; A starts at 500 and ends at its request at 1000.
const E_FIRST: [Job<'static>; 3] = [("E", 0, 2, 5000, 1000), L, ("A", 500, 2, 500, 500)];

/// Classic EASY on requested times.
fn easy(jobs: &[Job]) -> Schedule {
    run("easy", Box::new(RequestedTime::default()), jobs)
}

fn jobs<'a>(setup: &[Job<'a>], extra: &[Job<'a>]) -> Vec<Job<'a>> {
    let mut all = setup.to_vec();
    all.extend(QUEUE);
    all.extend(extra);
    all.sort_by_key(|j| j.1);
    all
}

fn starts(s: &Schedule, names: &[&str]) -> Vec<i64> {
    names.iter().map(|&n| s.start[n]).collect()
}

/// E started before A, so E's end is handled first, and the instant's first pass sees
/// both E's and A's processors free (4). H is reserved at 4000 s (when L's 6 join those
/// 4; extra 0); W (1000 + 1800 = 2800 <= 4000) fits the 4 and starts; X1 and X2 find
/// nothing free. W ends at 2800: X1 and X2 (2800 + 600 <= 4000) start; H at 4000.
///
/// Delivering A's end alone first (the engine's order before) gave the pass only A's 2:
/// H reserved at 5000 (E still planned to 5000), W too wide, X1 started; E's end then
/// started X2, and W waited until 1600.
#[test]
fn an_early_end_that_started_first_frees_its_slots_for_the_first_pass() {
    let s = easy(&jobs(&E_FIRST, &[]));
    assert_eq!(
        starts(&s, &["E", "L", "A", "W", "X1", "X2", "H"]),
        [0, 0, 500, 1000, 2800, 2800, 4000]
    );
}

/// A started before E (both at 0), so A's end comes first and its pass sees only A's 2
/// processors: E is still planned until 5000, so H is reserved at 5000; W (4) does not
/// fit; X1 (1000 + 600 <= 5000) starts. E's end frees 2 more and re-plans H at 4000
/// (X1 by 1600, L by 4000): W still does not fit, X2 starts. X1 and X2 end at 1600, and
/// W (1600 + 1800 = 3400 <= 4000) starts then; H at 4000.
#[test]
fn an_end_at_estimate_that_started_first_passes_alone() {
    let a_first = [("A", 0, 2, 1000, 1000), ("E", 0, 2, 5000, 1000), L];
    let s = easy(&jobs(&a_first, &[]));
    assert_eq!(
        starts(&s, &["A", "E", "L", "X1", "X2", "W", "H"]),
        [0, 0, 0, 1000, 1000, 1600, 4000]
    );
}

/// Z (2 processors, 100 s) is submitted at 1000: submissions come before the ends, and Z
/// fits A's 2 free processors, so its pass runs with E's still taken: as in the scenario
/// above X1 starts there, X2 at E's end, W at 1600. Z (behind them) starts when W ends
/// at 3400 (3400 + 100 <= 4000).
#[test]
fn a_submission_that_fits_passes_before_the_early_end() {
    let s = easy(&jobs(&E_FIRST, &[("Z", 1000, 2, 100, 100)]));
    assert_eq!(
        starts(&s, &["X1", "X2", "W", "Z", "H"]),
        [1000, 1000, 1600, 3400, 4000]
    );
}

/// Z (4 processors, 100 s) submitted at 1000 does not fit A's 2 free processors. Under
/// EASY that runs no pass (rule 7), so the first pass is E's end's, as in the first
/// scenario: W at 1000, X1 and X2 at 2800, Z when they end at 3400, H at 4000.
///
/// EASY++ passes at every submission, with A's 2 free and H reserved at 5000: by
/// shortest request, Z does not fit and X1 starts; E's end starts X2 (H re-planned at
/// 4000). When X1 and X2 end at 1600, Z (the shortest) takes the 4 processors, and W
/// (1700 + 1800 = 3500 <= 4000) starts when Z ends at 1700.
#[test]
fn under_easy_a_submission_that_fits_nowhere_waits_for_the_ends() {
    let all = jobs(&E_FIRST, &[("Z", 1000, 4, 100, 100)]);
    let classic = easy(&all);
    assert_eq!(
        starts(&classic, &["W", "X1", "X2", "Z", "H"]),
        [1000, 2800, 2800, 3400, 4000]
    );
    let easy_pp = run("easy++", Box::new(RequestedTime::default()), &all);
    assert_eq!(
        starts(&easy_pp, &["X1", "X2", "Z", "W", "H"]),
        [1000, 1000, 1600, 1700, 4000]
    );
}

/// Tsafrir's predictor learns a run when its end is handled, after the instant's
/// submissions. U1 runs 100 s of its 1000; U2, submitted as U1 ends, is estimated at its
/// request (no history yet) and ends at it, at 400; U3, submitted then, is estimated
/// before U2's run is learnt: only one run is known, so its request, 1000 s, planning
/// its end at 1400. (Learning U2 first would give the mean of 300 and 100: 200 s.)
#[test]
fn a_submission_is_estimated_before_the_instants_ends_are_learnt() {
    let s = run(
        "easy++",
        Box::new(Tsafrir::new(3_600_000)),
        &[
            ("U1", 0, 1, 1000, 100),
            ("U2", 100, 1, 300, 300),
            ("U3", 400, 1, 1000, 50),
        ],
    );
    assert_eq!(starts(&s, &["U1", "U2", "U3"]), [0, 100, 400]);
    assert_eq!(s.planned_end["U2"], 400);
    assert_eq!(s.planned_end["U3"], 1400);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Many jobs submitted and ending at the same instants, half of them exactly at their
    /// request: under EASY and EASY++ the engine never finds a runner over capacity or a
    /// job started twice (it checks both), every job starts once, not before its
    /// submission, and every slot is free again at the end.
    #[test]
    fn crowded_instants_keep_the_books(
        raw in prop::collection::vec((0i64..6, 1u32..6, 1i64..5, any::<bool>()), 1..40),
        easy_pp in any::<bool>(),
    ) {
        let names: Vec<String> = (0..raw.len()).map(|i| format!("J{i}")).collect();
        let mut jobs: Vec<Job> = raw
            .iter()
            .zip(&names)
            .map(|(&(submit, slots, request, at_estimate), name)| {
                // Times on a 100 s grid so that ends and submissions coincide often.
                let request = request * 100;
                let run = if at_estimate { request } else { request - 50 };
                (name.as_str(), submit * 100, slots, request, run)
            })
            .collect();
        jobs.sort_by_key(|j| j.1);
        let policy = if easy_pp { "easy++" } else { "easy" };
        let s = run(policy, Box::new(RequestedTime::default()), &jobs);
        for &(name, submit, ..) in &jobs {
            prop_assert!(s.start[name] >= submit, "{name} started before its submission");
        }
    }
}
