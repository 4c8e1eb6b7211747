//! Replications and intervals (issue 17): common random numbers across the scenarios
//! compared, paired comparisons that find a real difference and no false one, the
//! report's `<metric>_ci95` fields, and the explanation when one replication cannot
//! give an interval.

use rustci_datasets::synthetic::SyntheticConfig;
use rustci_sim::fleet_file::FleetFile;
use rustci_sim::interval::paired;
use rustci_sim::replicate::{self, Replications, Resampling};
use rustci_sim::scenario::{
    pipelines_unless_turned_off, PredictorSpec, Scenario, Workload, WorkloadSpec,
};

mod common;
use common::{sim, stderr, write};

/// Half a synthetic day at `seed`.
fn half_day(seed: u64, pipelines: bool) -> WorkloadSpec {
    let mut cfg = SyntheticConfig {
        seed,
        days: 0.5,
        ..SyntheticConfig::default()
    };
    pipelines_unless_turned_off(&mut cfg, None);
    cfg.pipelines.enabled = pipelines;
    WorkloadSpec::Synthetic(Box::new(cfg))
}

/// `n` replications of half a synthetic day from `seed`: the base workload, how they
/// differ, and theirs.
fn half_days(seed: u64, pipelines: bool, n: usize) -> (Workload, Resampling, Vec<Workload>) {
    let spec = half_day(seed, pipelines);
    let base = spec.load().expect("synthetic workload");
    let reps = Replications {
        n,
        first: 0,
        base: seed,
    };
    let (how, workloads) = replicate::workloads(&spec, &base, reps, 2).expect("replications");
    (base, how, workloads)
}

/// Replication i is the same workload whichever policy runs on it: two policies'
/// runs of replication i submit the same jobs at the same times, and replications
/// differ from one another. (Independent jobs: a pipeline job's submission is when its
/// needs end, which the policy changes.)
#[test]
fn replication_i_of_two_policies_sees_the_same_arrivals() {
    let (base, how, workloads) = half_days(5, false, 3);
    assert_eq!(how, Resampling::Seeds);
    // Made again (as for a second scenario): the same records.
    let (_, _, again) = half_days(5, false, 3);
    // A small fleet, so that jobs queue and the two policies order them differently.
    let fleet = FleetFile::default_ci().unwrap().scaled(0.15);
    let p = PredictorSpec::default();
    let mut previous: Option<Vec<f64>> = None;
    for (w, w2) in workloads.iter().zip(&again) {
        assert_eq!(w.records, w2.records);
        let submits = |policy: &str, w| {
            let out = Scenario::new(w, &fleet, policy, &p)
                .unwrap()
                .simulate(None, Vec::new())
                .unwrap();
            let mut s: Vec<f64> = out.facts.results.iter().map(|r| r.submit_s).collect();
            s.sort_by(f64::total_cmp);
            (s, out.facts.results.iter().map(|r| r.start_s).sum::<f64>())
        };
        let (fcfs, fcfs_starts) = submits("fcfs", w);
        let (fair, fair_starts) = submits("fairshare", w2);
        assert!(!fcfs.is_empty());
        assert_eq!(
            fcfs, fair,
            "{}: the policies saw different arrivals",
            w.name
        );
        // The policies themselves did differ (else the check above proves nothing).
        assert_ne!(fcfs_starts, fair_starts);
        assert_ne!(
            previous.as_ref(),
            Some(&fcfs),
            "two replications were the same"
        );
        previous = Some(fcfs);
    }
    // Replication 0 is the base seed's workload: `--replications 1` is the plain run.
    assert_eq!(workloads[0].records, base.records);
}

/// A trace is resampled, not regenerated: its replications are whole-day resamples of
/// it, the same for every scenario.
#[test]
fn a_trace_is_resampled_by_days_the_same_for_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("week.csv");
    let week = WorkloadSpec::Synthetic(Box::new(SyntheticConfig {
        days: 7.0,
        jobs_per_day: 300.0,
        ..SyntheticConfig::default()
    }))
    .load()
    .unwrap();
    rustci_datasets::jobcsv::write_jobcsv(&path, &week.records).unwrap();
    let spec = WorkloadSpec::Trace { path, format: None };
    let trace = spec.load().unwrap();
    let reps = Replications {
        n: 4,
        first: 0,
        base: 1,
    };
    let (how, a) = replicate::workloads(&spec, &trace, reps, 2).unwrap();
    let (_, b) = replicate::workloads(&spec, &trace, reps, 1).unwrap();
    assert_eq!(how, Resampling::Days);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.records, y.records);
    }
    assert_ne!(a[0].records, a[1].records);
}

fn scenario_file(dir: &std::path::Path, name: &str, scale: f64) -> String {
    write(
        dir,
        name,
        &format!(
            "scale = [{scale}]\npolicy = [\"qos\"]\n[workload]\nsynthetic = {{ seed = 3, days = 0.5 }}\n"
        ),
    )
}

/// `compare` on two identical scenarios finds no significant difference (every paired
/// difference is exactly 0); against a fleet a third the size, the wait and the cost
/// differ significantly, in the expected directions.
#[test]
fn compare_finds_a_real_difference_and_no_false_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = scenario_file(dir.path(), "a.toml", 0.3);
    let same = scenario_file(dir.path(), "same.toml", 0.3);
    let smaller = scenario_file(dir.path(), "smaller.toml", 0.1);
    let run = |b: &str| {
        let o = sim(&[
            "compare",
            &a,
            b,
            "--replications",
            "5",
            "--format",
            "json",
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let d = run(&same);
    assert_eq!(d["replications"], 5);
    for key in ["cost", "wait_mean_s", "wait_p95_s"] {
        let x = &d["differences"][key];
        assert_eq!(x["significant"], false, "{key}: {x}");
        assert_eq!(x["mean"], 0.0, "{key}: {x}");
        assert_eq!(x["ci95"], serde_json::json!([0.0, 0.0]), "{key}: {x}");
    }
    let d = run(&smaller);
    let cost = &d["differences"]["cost"];
    assert_eq!(cost["significant"], true, "{cost}");
    assert!(cost["ci95"][1].as_f64().unwrap() < 0.0, "{cost}");
    let wait = &d["differences"]["qos"]["standard"]["wait_mean_s"];
    assert_eq!(wait["significant"], true, "{wait}");
    assert!(wait["ci95"][0].as_f64().unwrap() > 0.0, "{wait}");
    // The summaries carry their intervals too.
    assert!(d["b"]["summary"]["qos"]["standard"]["wait_p95_s_ci95"].is_array());
}

/// The paired interval is narrower than the two unpaired ones would suggest: the same
/// replications make most of the week-to-week spread cancel.
#[test]
fn pairing_removes_the_shared_spread() {
    let spec = half_day(11, true);
    let base = spec.load().unwrap();
    let replicator = replicate::Replicator::new(&spec, &base, 11);
    let fleet = FleetFile::default_ci().unwrap();
    let bigger = fleet.scaled(1.1);
    let p = PredictorSpec::default();
    let a = Scenario::new(&base, &fleet, "easy", &p).unwrap();
    let b = Scenario::new(&base, &bigger, "easy", &p).unwrap();
    let (ra, rb) = replicate::paired_reports(&a, &b, &replicator, 6, 2, &|_| {}).unwrap();
    let v = |r: &[rustci_sim::report::Report]| -> Vec<serde_json::Value> {
        r.iter().map(|x| serde_json::to_value(x).unwrap()).collect()
    };
    let d = paired(&v(&ra), &v(&rb));
    // 10% more runners for the same makespan: 10% more cost in every replication.
    let cost = &d["cost"];
    assert_eq!(cost["significant"], true, "{cost}");
    let width = cost["ci95"][1].as_f64().unwrap() - cost["ci95"][0].as_f64().unwrap();
    let costs: Vec<f64> = ra.iter().map(|r| r.cost).collect();
    let spread = costs.iter().cloned().fold(f64::MIN, f64::max)
        - costs.iter().cloned().fold(f64::MAX, f64::min);
    assert!(width < spread, "paired width {width}, cost spread {spread}");
}

#[test]
fn run_reports_intervals_beside_each_metric() {
    let o = sim(&[
        "run",
        "--days",
        "0.25",
        "--replications",
        "3",
        "--format",
        "json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["replications"], 3);
    assert_eq!(r["resampling"], "synthetic seeds");
    for key in ["cost", "wait_mean_s", "utilization", "runner_hours"] {
        let ci = r[format!("{key}_ci95")]
            .as_array()
            .unwrap_or_else(|| panic!("{key}_ci95"));
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        let mean = r[key].as_f64().unwrap();
        assert!(
            lo <= mean && mean <= hi,
            "{key}: {mean} not in [{lo}, {hi}]"
        );
    }
    assert!(r["qos"]["standard"]["wait_p95_s_ci95"].is_array());
    // Settings and bookkeeping get no interval.
    assert!(r.get("seed_ci95").is_none() && r.get("wall_s_ci95").is_none());
    let table = sim(&["run", "--days", "0.25", "--replications", "2", "-q"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("2 replications") && text.contains("qos.standard.wait_p95_s"),
        "{text}"
    );
}

/// One replication has no spread, so no interval: `--ci` and `compare` refuse with the
/// reason, and `plan` says its answer rests on one run; nothing prints NaN.
#[test]
fn one_replication_explains_why_there_is_no_interval() {
    for args in [
        &["run", "--days", "0.1", "--ci", "-q"][..],
        &["run", "--days", "0.1", "--ci", "--replications", "1", "-q"][..],
    ] {
        let o = sim(args);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains("--ci") && e.contains("at least 2 replications") && e.contains("one run"),
            "{e}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let a = scenario_file(dir.path(), "a.toml", 1.0);
    let o = sim(&["compare", &a, &a, "--replications", "1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("at least 2 replications"),
        "{}",
        stderr(&o)
    );
    let o = sim(&[
        "plan",
        "--days",
        "0.1",
        "--target",
        "standard:p95<=300",
        "--replications",
        "1",
        "--max-scale",
        "2",
        "-q",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("no confidence bound") && e.contains("at least 2 replications"),
        "{e}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("NaN"), "{out}");
}

/// `plan --replications 3 --validate 3`: the chosen fleet's upper bound meets the
/// target, and the validation reports its share over 3 fresh replications.
#[test]
fn plan_with_replications_reports_the_bound_and_the_validation() {
    let o = sim(&[
        "plan",
        "--days",
        "0.25",
        "--target",
        "standard:p95<=300",
        "--replications",
        "3",
        "--validate",
        "3",
        "--bound",
        "mean",
        "--confirm",
        "0",
        "--max-scale",
        "2",
        "-q",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["replications"], 3);
    let t = &r["targets"][0];
    let bound = t["upper_bound_s"].as_f64().unwrap();
    assert!(bound <= 300.0, "{t}");
    assert_eq!(t["p95_s_ci95"][1].as_f64().unwrap(), bound, "{t}");
    let v = &r["validation"];
    assert_eq!(v["replications"], 3);
    let met = v["met_every_target"].as_u64().unwrap();
    assert_eq!(v["share"].as_f64().unwrap(), met as f64 / 3.0);
    // Each validation p95 is counted as met exactly when it is within the target.
    let p95s = v["targets"][0]["p95_s"].as_array().unwrap();
    let within = p95s
        .iter()
        .filter(|x| x.as_f64().is_some_and(|x| x <= 300.0))
        .count();
    assert_eq!(within as u64, v["targets"][0]["met"].as_u64().unwrap());
    assert!(r["summary"]["qos"]["standard"]["wait_p95_s_ci95"].is_array());
}

/// `n` quarter days from `seed` on, at `jobs_per_day` times the default's arrivals.
fn quarter_days(seed: u64, busier: f64, n: usize) -> Vec<Workload> {
    (0..n as u64)
        .map(|i| {
            let mut cfg = SyntheticConfig {
                seed: seed + i,
                days: 0.25,
                ..SyntheticConfig::default()
            };
            cfg.jobs_per_day *= busier;
            WorkloadSpec::Synthetic(Box::new(cfg))
                .load()
                .expect("synthetic workload")
        })
        .collect()
}

/// A choice that misses on replications it was not chosen on is stepped up to the least
/// that meets the target on them, and the answer is a fleet that met the target on its
/// confirmation. Made to happen, with a known end: the search's two days are quiet, the
/// "fresh" ones twice as busy, so the quiet days' cheapest fleet misses on them; every
/// round gets the same two busy days, so the step up (chosen on them) must pass the
/// next round. (Truly fresh busy quarter days are so unlike one another that a fleet
/// chosen on two misses on one of the next two about as often as not.)
#[test]
fn plan_confirms_its_choice_on_fresh_replications_and_steps_up_on_a_miss() {
    use rustci_sim::plan::{plan_replicated, Bound, Confirm, PlanSpec, Target};
    let spec = PlanSpec {
        fleet: FleetFile::default_ci().expect("built-in fleet"),
        targets: vec![Target {
            class: "standard".into(),
            p95_s: 300.0,
        }],
        policy: "easy".into(),
        load: 1.0,
        predictor: PredictorSpec::parse("requested", 3_600_000).expect("predictor"),
        autoscaler: None,
        max_scale: 4.0,
        max_idle_timeout_s: 3600,
        threads: 2,
        bound: Bound::Every,
    };
    let search = quarter_days(1, 1.0, 2);
    let asked = std::sync::Mutex::new(Vec::new());
    let fresh = |round: usize| {
        asked.lock().expect("lock").push(round);
        Ok(quarter_days(100, 2.0, 2))
    };
    let confirm = Confirm {
        replications: 2,
        rounds: 3,
        fresh: &fresh,
    };
    let r = plan_replicated(&spec, &search, &confirm, None, &|_| {}).expect("plan");
    let c = r.confirmation.as_ref().expect("confirmation rounds");
    let rounds = &c.rounds;
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(
        !rounds[0].confirmed,
        "the quiet days' fleet should miss: {rounds:?}"
    );
    assert!(rounds[0].met_every_target < 2, "{rounds:?}");
    assert!(c.confirmed && rounds[1].confirmed, "{c:?}");
    assert_eq!(rounds[1].met_every_target, 2, "{rounds:?}");
    assert_eq!(*asked.lock().expect("lock"), vec![0, 1]);
    assert!(rounds.last().map(|x| x.total_runners) > Some(rounds[0].total_runners));
    assert_eq!(
        rounds.last().map(|x| x.total_runners),
        Some(r.total_runners)
    );
    // The answer does meet the target on every day of its confirmation round, as
    // `run --fleet` would replay it.
    for w in quarter_days(100, 2.0, 2) {
        let rep = Scenario::new(&w, &r.fleet, &spec.policy, &spec.predictor)
            .expect("scenario")
            .report()
            .expect("run");
        let p95 = rep.qos["standard"].wait_p95_s.expect("standard jobs ran");
        assert!(p95 <= 300.0, "p95 {p95} s on a confirmation day");
    }
    // And the search's own days too (a bigger fleet than the one chosen on them), whose
    // figures the answer reports.
    let mut p95s = Vec::new();
    for w in &search {
        let rep = Scenario::new(w, &r.fleet, &spec.policy, &spec.predictor)
            .expect("scenario")
            .report()
            .expect("run");
        p95s.push(rep.qos["standard"].wait_p95_s.expect("standard jobs ran"));
    }
    assert!(p95s.iter().all(|&x| x <= 300.0), "{p95s:?}");
    let mean = p95s.iter().sum::<f64>() / p95s.len() as f64;
    assert!(
        (r.targets[0].p95_s - mean).abs() < 1e-9,
        "{:?} {p95s:?}",
        r.targets
    );
}
