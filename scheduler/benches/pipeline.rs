//! Pipelines in the core: `cargo bench -p rustci-scheduler --bench pipeline [-- accept|compare]`.
//!
//! 1. `accept`: a 10,000-job DAG (40 stages of 250 jobs: stage-rule jobs, jobs with
//!    explicit needs on the stage before, and a fan-out/fan-in matrix) submitted to a
//!    core with 200 one-slot runners (`Event::SubmitPipeline`: check, estimates, ranks,
//!    the first stage queued and a scheduling pass), then projected (`Scheduler::project` over
//!    every waiting job and the 9,750 not ready, with the pipeline's projected end).
//!    Budget: accept + plan under 50 ms.
//! 2. `compare`: a stream of synthetic pipelines through a small event loop, under FIFO
//!    (`easy`) and critical-path order (alone and inside fair-share lanes), with exact
//!    estimates (the clairvoyant bound) and with estimates off by up to 2x either way;
//!    prints the pipelines' time to feedback (creation to end), p50, p95 and mean.
//!
//! Figures go to BENCHMARKS.md.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use proptest::prelude::Rng as _;
use proptest::test_runner::{RngAlgorithm, TestRng};
use rustci_scheduler::*;

/// A seeded generator for the synthetic workloads (the core has no `rand`; proptest,
/// a dev-dependency, brings one).
struct Rng(TestRng);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Rng(TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }
}

/// A core under `policy` with `runners` one-slot runners joined at 0.
fn core(policy: &str, tenants: usize, runners: u32) -> Scheduler {
    let mut s = Scheduler::new(config(policy, tenants), Box::new(RequestedTime::default()));
    let mut out = Vec::new();
    for i in 0..runners {
        s.handle(
            0,
            Event::RunnerJoined {
                runner: RunnerId(i),
                pool: PoolId(0),
            },
            &mut out,
        )
        .expect("join");
    }
    s
}

fn config(policy: &str, tenants: usize) -> CheckedConfig {
    SchedulerConfig {
        policy: PolicyConfig::named(policy).expect("policy"),
        labels: vec![],
        pools: vec![PoolSpec {
            name: "ci".into(),
            labels: LabelSet::EMPTY,
            slots_per_runner: 1,
            cost_per_hour: 1.0,
            provisioning_delay_ms: 0,
        }],
        tenants: (0..tenants.max(1))
            .map(|i| TenantSpec {
                name: format!("t{i}"),
                weight: 1.0,
            })
            .collect(),
        qos: vec![QosSpec {
            name: "default".into(),
            priority: 0,
            wait_target_ms: 600_000,
        }],
    }
    .check()
    .expect("config")
}

fn spec(id: u64, requested_ms: Millis, tenant: u32) -> JobSpec {
    JobSpec {
        id: JobId(id),
        tenant: TenantId(tenant),
        qos: QosId(0),
        priority: 0,
        labels: LabelSet::EMPTY,
        slots: 1,
        requested_ms: Some(requested_ms),
        submit_ms: 0,
        history: HistoryKeys::default(),
    }
}

fn job(id: u64, name: String, stage: u32, needs: Option<Vec<String>>, ms: Millis) -> PipelineJob {
    PipelineJob {
        name,
        stage,
        needs,
        when: When::OnSuccess,
        allow_failure: false,
        interruptible: false,
        spec: spec(id, ms, 0),
    }
}

/// 40 stages of 250 jobs. Every fourth job names three jobs of the stage before; stage
/// 20 is a matrix: one fan-out job, 248 jobs that need it, one fan-in job that needs
/// them all; the rest follow the stage rule.
fn big_dag(rng: &mut Rng) -> PipelineSpec {
    const STAGES: u32 = 40;
    const WIDTH: u64 = 250;
    let name = |s: u32, i: u64| format!("s{s}-j{i}");
    let mut jobs = Vec::with_capacity((STAGES as u64 * WIDTH) as usize);
    for s in 0..STAGES {
        for i in 0..WIDTH {
            let id = u64::from(s) * WIDTH + i;
            let ms = 30_000 + rng.below(600_000) as Millis;
            let needs = if s == 20 {
                match i {
                    0 => None,
                    i if i == WIDTH - 1 => Some((1..WIDTH - 1).map(|k| name(s, k)).collect()),
                    _ => Some(vec![name(s, 0)]),
                }
            } else if s > 0 && i % 4 == 0 {
                Some((0..3).map(|_| name(s - 1, rng.below(WIDTH))).fold(
                    Vec::new(),
                    |mut v: Vec<String>, n| {
                        if !v.contains(&n) {
                            v.push(n);
                        }
                        v
                    },
                ))
            } else {
                None
            };
            jobs.push(job(id, name(s, i), s, needs, ms));
        }
    }
    PipelineSpec {
        id: PipelineId(1),
        group: None,
        auto_cancel: AutoCancel::default(),
        jobs,
    }
}

fn accept_and_plan() {
    const RUNS: usize = 20;
    let mut accept = Vec::with_capacity(RUNS);
    let mut plan = Vec::with_capacity(RUNS);
    let mut eta = None;
    for r in 0..RUNS {
        let mut rng = Rng::new(42 + r as u64);
        let dag = big_dag(&mut rng);
        let jobs = dag.jobs.len();
        let mut s = core("critical-path", 1, 200);
        let mut out = Vec::new();
        let t = Instant::now();
        s.handle(1, Event::SubmitPipeline(dag), &mut out)
            .expect("accept");
        accept.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let p = s.project(1, usize::MAX);
        plan.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(p.running.len() + p.pending.len() + p.later.len(), jobs);
        eta = p.pipeline_end(PipelineId(1));
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    let (a0, a50, a100) = stats(&mut accept);
    let (p0, p50, p100) = stats(&mut plan);
    println!(
        "10,000-job DAG, 200 runners, {RUNS} runs: accept min {a0:.2} / median {a50:.2} / max {a100:.2} ms; \
         plan min {p0:.2} / median {p50:.2} / max {p100:.2} ms; accept + plan median {:.2} ms (budget 50 ms); \
         projected end {:.1} h",
        a50 + p50,
        eta.unwrap_or(0) as f64 / 3.6e6
    );
}

/// A synthetic CI pipeline: 2 to 6 stages of 1 to 12 jobs, each 30 s to 5 min, one in
/// three stages with a long job (10 to 25 min); a third of the jobs after the first
/// stage name one or two jobs of the stage before instead of the stage rule. With
/// `noise`, estimates are the run times times 0.5 to 2 (drawn from `noise`, so that the
/// workload is the same either way). Returns the pipeline and each job's run time.
fn ci_pipeline(
    rng: &mut Rng,
    mut noise: Option<&mut Rng>,
    id: u64,
    first_job: u64,
    tenant: u32,
) -> (PipelineSpec, Vec<Millis>) {
    let stages = 2 + rng.below(5) as u32;
    let mut jobs = Vec::new();
    let mut runs = Vec::new();
    let mut prev: Vec<String> = Vec::new();
    for s in 0..stages {
        let width = 1 + rng.below(12);
        let long = rng.below(3) == 0;
        let mut this = Vec::new();
        for i in 0..width {
            let run = if long && i == 0 {
                600_000 + rng.below(900_000) as Millis
            } else {
                30_000 + rng.below(270_000) as Millis
            };
            let est = match noise.as_deref_mut() {
                Some(n) => ((run as f64) * (0.5 + 1.5 * n.unit())) as Millis,
                None => run,
            };
            let needs = if s > 0 && rng.below(3) == 0 {
                let mut n = vec![prev[rng.below(prev.len() as u64) as usize].clone()];
                let other = prev[rng.below(prev.len() as u64) as usize].clone();
                if !n.contains(&other) {
                    n.push(other);
                }
                Some(n)
            } else {
                None
            };
            let name = format!("s{s}-{i}");
            let mut j = job(first_job + jobs.len() as u64, name.clone(), s, needs, est);
            j.spec.tenant = TenantId(tenant);
            jobs.push(j);
            runs.push(run);
            this.push(name);
        }
        prev = this;
    }
    (
        PipelineSpec {
            id: PipelineId(id),
            group: None,
            auto_cancel: AutoCancel::default(),
            jobs,
        },
        runs,
    )
}

/// Drives `count` pipelines arriving about every `gap_ms` through a core under `policy`
/// on `runners` one-slot runners. Returns each pipeline's time to feedback in ms, and
/// the runners' load (work over runner time until the last end).
fn stream(
    policy: &str,
    runners: u32,
    count: u64,
    gap_ms: f64,
    noise: bool,
    seed: u64,
) -> (Vec<Millis>, f64) {
    const TENANTS: u32 = 4;
    let mut rng = Rng::new(seed);
    let mut noise_rng = Rng::new(seed ^ 0x5eed);
    let mut s = core(policy, TENANTS as usize, runners);
    let mut out = Vec::new();
    // (time, 0 = finish / 1 = arrival, sequence, job or pipeline)
    let mut events: BinaryHeap<Reverse<(Millis, u8, u64, u64)>> = BinaryHeap::new();
    let mut pipelines = Vec::new();
    let mut run_of = Vec::new();
    let mut t = 0.0f64;
    for p in 0..count {
        t += -gap_ms * (1.0 - rng.unit()).ln();
        let (spec, runs) = ci_pipeline(
            &mut rng,
            noise.then_some(&mut noise_rng),
            p,
            run_of.len() as u64,
            (p % u64::from(TENANTS)) as u32,
        );
        run_of.extend(runs);
        events.push(Reverse((t as Millis, 1, p, p)));
        pipelines.push(Some(spec));
    }
    let mut created = vec![0; count as usize];
    let mut feedback = Vec::with_capacity(count as usize);
    let mut seq = count;
    let mut last = 0;
    while let Some(Reverse((now, class, _, what))) = events.pop() {
        last = now;
        out.clear();
        let event = if class == 0 {
            Event::Finish { job: JobId(what) }
        } else {
            created[what as usize] = now;
            Event::SubmitPipeline(pipelines[what as usize].take().expect("once"))
        };
        s.handle(now, event, &mut out).expect("event");
        for d in &out {
            match *d {
                Decision::Start { job, .. } => {
                    events.push(Reverse((now + run_of[job.0 as usize], 0, seq, job.0)));
                    seq += 1;
                }
                Decision::PipelineEnded { pipeline, .. } => {
                    feedback.push(now - created[pipeline.0 as usize]);
                }
                _ => {}
            }
        }
    }
    let work: Millis = run_of.iter().sum();
    (feedback, work as f64 / (f64::from(runners) * last as f64))
}

fn compare() {
    const RUNNERS: u32 = 40;
    const PIPELINES: u64 = 3_000;
    const SEEDS: u64 = 3;
    // A pipeline holds about 91 min of runner time on average (4 stages x 6.5 jobs x
    // 165 s, plus 1.3 long jobs of 17.5 min); one every 160 s keeps 40 runners about
    // 85% busy (the printed load is measured).
    const GAP_MS: f64 = 160_000.0;
    println!(
        "{PIPELINES} synthetic pipelines x {SEEDS} seeds on {RUNNERS} runners, one every {:.0} s on average",
        GAP_MS / 1e3
    );
    println!(
        "{:<26} {:<10} {:>9} {:>9} {:>9} {:>6}",
        "policy", "estimates", "p50 min", "p95 min", "mean min", "load"
    );
    for noise in [false, true] {
        for policy in [
            "easy",
            "critical-path",
            "critical-path-latest-start",
            "critical-path-oldest",
            "fairshare",
            "fairshare-cp",
        ] {
            let mut all = Vec::new();
            let mut load = 0.0;
            for seed in 1..=SEEDS {
                let (f, l) = stream(policy, RUNNERS, PIPELINES, GAP_MS, noise, seed);
                all.extend(f);
                load += l / SEEDS as f64;
            }
            all.sort_unstable();
            let pct = |p: f64| stats::nearest_rank(&all, p).unwrap_or(0) as f64 / 60_000.0;
            let mean = all.iter().sum::<Millis>() as f64 / all.len().max(1) as f64 / 60_000.0;
            println!(
                "{policy:<26} {:<10} {:>9.1} {:>9.1} {:>9.1} {:>6.2}",
                if noise { "0.5x-2x" } else { "exact" },
                pct(50.0),
                pct(95.0),
                mean,
                load
            );
        }
    }
}

fn main() {
    // cargo bench passes --bench; a filter argument selects one part.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |n: &str| filter.as_deref().is_none_or(|f| n.contains(f));
    if wants("accept") {
        accept_and_plan();
    }
    if wants("compare") {
        compare();
    }
}
