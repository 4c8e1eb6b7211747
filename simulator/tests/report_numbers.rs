//! Report numbers on small hand-worked scenarios: every expected value is computed by hand
//! in the comments next to it.

use std::collections::BTreeSet;

use rustci_sim::outcome::*;
use rustci_sim::report::*;
use serde_json::Value;

#[allow(clippy::too_many_arguments)]
fn job(
    id: &str,
    tenant: &str,
    qos: &str,
    submit_s: f64,
    start_s: f64,
    end_s: f64,
    slots: u32,
    pool: &str,
    runner: u32,
) -> JobResult {
    JobResult {
        index: 0,
        id: id.to_string(),
        tenant: tenant.to_string(),
        qos: qos.to_string(),
        submit_s,
        start_s,
        end_s,
        slots,
        pool: pool.to_string(),
        runner,
    }
}

fn pool(name: &str, runners: u32, slots_per_runner: u32, cost_per_hour: f64) -> PoolFacts {
    PoolFacts {
        name: name.to_string(),
        runners,
        slots_per_runner,
        cost_per_hour,
    }
}

fn qos(name: &str, wait_target_s: f64) -> QosFacts {
    QosFacts {
        name: name.to_string(),
        wait_target_s,
    }
}

fn facts(results: Vec<JobResult>, pools: Vec<PoolFacts>, qos: Vec<QosFacts>) -> RunFacts {
    let sim_start_s = results
        .iter()
        .map(|r| r.submit_s)
        .fold(f64::INFINITY, f64::min);
    let sim_end_s = results.iter().map(|r| r.end_s).fold(0.0, f64::max);
    RunFacts {
        results,
        pools,
        qos,
        skipped: Skipped::default(),
        sim_start_s: if sim_start_s.is_finite() {
            sim_start_s
        } else {
            0.0
        },
        sim_end_s,
        events: 0,
        wall_s: 0.0,
        policy: "fifo".to_string(),
        predictor: "oracle".to_string(),
        workload: "hand".to_string(),
        seed: Some(7),
        pipelines: None,
        history: None,
    }
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0)
}

#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    assert!(close(actual, expected), "got {actual}, expected {expected}");
}

#[track_caller]
fn assert_some_close(actual: Option<f64>, expected: f64) {
    match actual {
        Some(a) => assert_close(a, expected),
        None => panic!("got null, expected {expected}"),
    }
}

/// Four 1-slot jobs on pool "p" (2 runners x 1 slot = 2 slots, 2.5 per runner-hour),
/// simulated from 0 s to 1800 s:
///
/// | job | tenant | qos   | submit | start | end  | runner | wait | run  | bsld                                  |
/// |-----|--------|-------|--------|-------|------|--------|------|------|---------------------------------------|
/// | j1  | t1     | fast  | 0      | 0     | 1800 | 0      | 0    | 1800 | 1800/1800 = 1                         |
/// | j2  | t1     | fast  | 0      | 0     | 4    | 1      | 0    | 4    | max(1, 4/max(4,10)=0.4) = 1           |
/// | j3  | t2     | batch | 10     | 40    | 70   | 1      | 30   | 30   | 60/30 = 2                             |
/// | j4  | t2     | batch | 80     | 96    | 100  | 1      | 16   | 4    | 20/max(4,10) = 2 (unbounded: 20/4 = 5) |
///
/// QoS targets: fast 0 s, batch 16 s, interactive 60 s (no jobs).
fn four_jobs() -> RunFacts {
    let mut f = facts(
        vec![
            job("j1", "t1", "fast", 0.0, 0.0, 1800.0, 1, "p", 0),
            job("j2", "t1", "fast", 0.0, 0.0, 4.0, 1, "p", 1),
            job("j3", "t2", "batch", 10.0, 40.0, 70.0, 1, "p", 1),
            job("j4", "t2", "batch", 80.0, 96.0, 100.0, 1, "p", 1),
        ],
        vec![pool("p", 2, 1, 2.5)],
        vec![
            qos("fast", 0.0),
            qos("batch", 16.0),
            qos("interactive", 60.0),
        ],
    );
    f.events = 500;
    f.wall_s = 2.0;
    f
}

#[test]
fn four_jobs_overall_numbers() {
    let r = Report::from_facts(&four_jobs());
    assert_eq!(r.jobs, 4);
    // 1800 - 0.
    assert_close(r.makespan_s, 1800.0);
    // Waits sorted: 0, 0, 16, 30. Mean 46/4 = 11.5.
    assert_some_close(r.wait_mean_s, 11.5);
    // Nearest rank: p50 rank ceil(0.5*4) = 2 -> 0 (an interpolated median would be 8).
    assert_some_close(r.wait_p50_s, 0.0);
    // p95 rank ceil(0.95*4) = 4 -> 30; p99 likewise.
    assert_some_close(r.wait_p95_s, 30.0);
    assert_some_close(r.wait_p99_s, 30.0);
    // bsld 1, 1, 2, 2 -> mean 1.5 (j4 unbounded would give (1+1+2+5)/4 = 2.25).
    assert_some_close(r.bsld_mean, 1.5);
    // Slot-seconds 1800 + 4 + 30 + 4 = 1838 over 2 slots * 1800 s = 3600.
    assert_close(r.utilization, 1838.0 / 3600.0);
    // 2 runners * 1800 s = 1 runner-hour; cost 1 * 2.5.
    assert_close(r.runner_hours, 1.0);
    assert_close(r.cost, 2.5);
    // 500 events / 2 s.
    assert_eq!(r.events, 500);
    assert_some_close(r.events_per_s, 250.0);
    assert_close(r.wall_s, 2.0);
    assert_eq!(r.seed, Some(7));
    assert_eq!(r.policy, "fifo");
}

#[test]
fn four_jobs_per_qos() {
    let r = Report::from_facts(&four_jobs());
    assert_eq!(
        r.qos.keys().map(String::as_str).collect::<Vec<_>>(),
        ["batch", "fast", "interactive"]
    );
    // fast: waits 0, 0; target 0: both exactly at the target count as within -> 1.0.
    let fast = &r.qos["fast"];
    assert_eq!(fast.jobs, 2);
    assert_some_close(fast.wait_mean_s, 0.0);
    assert_some_close(fast.wait_p95_s, 0.0);
    assert_some_close(fast.within_target, 1.0);
    // batch: waits 16, 30; target 16: 16 is within, 30 is not -> 0.5. Mean 23, p95 30.
    let batch = &r.qos["batch"];
    assert_eq!(batch.jobs, 2);
    assert_some_close(batch.wait_mean_s, 23.0);
    assert_some_close(batch.wait_p95_s, 30.0);
    assert_some_close(batch.within_target, 0.5);
    // interactive: no jobs -> listed, all stats null.
    let interactive = &r.qos["interactive"];
    assert_eq!(interactive.jobs, 0);
    assert_eq!(interactive.wait_mean_s, None);
    assert_eq!(interactive.wait_p95_s, None);
    assert_eq!(interactive.within_target, None);
}

#[test]
fn four_jobs_per_tenant_pool_and_jain() {
    let r = Report::from_facts(&four_jobs());
    // t1: j1, j2: waits 0, 0; bsld 1, 1.
    let t1 = &r.tenants["t1"];
    assert_eq!(t1.jobs, 2);
    assert_close(t1.wait_mean_s, 0.0);
    assert_close(t1.wait_p95_s, 0.0);
    assert_close(t1.bsld_mean, 1.0);
    // t2: j3, j4: waits 30, 16 -> mean 23, p95 30; bsld 2, 2.
    let t2 = &r.tenants["t2"];
    assert_eq!(t2.jobs, 2);
    assert_close(t2.wait_mean_s, 23.0);
    assert_close(t2.wait_p95_s, 30.0);
    assert_close(t2.bsld_mean, 2.0);
    assert_eq!(r.tenants.len(), 2);
    // Jain over (1, 2): 3^2 / (2 * (1 + 4)) = 0.9.
    assert_some_close(r.jain_fairness, 0.9);
    // Pool p: all 4 jobs, 1838 slot-seconds over 2 runners * 1 slot * 1800 s.
    let p = &r.pools["p"];
    assert_eq!(p.jobs, 4);
    assert_eq!(p.runners, 2);
    assert_close(p.busy_share, 1838.0 / 3600.0);
}

#[test]
fn jain_two_tenants_with_slowdowns_one_and_three() {
    // t1: wait 0, run 20 -> bsld 1. t2: wait 40, run 20 -> 60/20 = 3.
    // Jain: (1 + 3)^2 / (2 * (1 + 9)) = 16/20 = 0.8.
    let f = facts(
        vec![
            job("a", "t1", "std", 0.0, 0.0, 20.0, 1, "p", 0),
            job("b", "t2", "std", 0.0, 40.0, 60.0, 1, "p", 0),
        ],
        vec![pool("p", 1, 1, 1.0)],
        vec![qos("std", 60.0)],
    );
    let r = Report::from_facts(&f);
    assert_close(r.tenants["t1"].bsld_mean, 1.0);
    assert_close(r.tenants["t2"].bsld_mean, 3.0);
    assert_some_close(r.jain_fairness, 0.8);
}

#[test]
fn jain_is_one_with_a_single_tenant() {
    // One tenant with bsld 1 and 3 (mean 2): Jain over the single value 2 = 4 / (1 * 4) = 1.
    let f = facts(
        vec![
            job("a", "t1", "std", 0.0, 0.0, 20.0, 1, "p", 0),
            job("b", "t1", "std", 0.0, 40.0, 60.0, 1, "p", 0),
        ],
        vec![pool("p", 1, 1, 1.0)],
        vec![],
    );
    let r = Report::from_facts(&f);
    assert_close(r.tenants["t1"].bsld_mean, 2.0);
    assert_some_close(r.jain_fairness, 1.0);
}

#[test]
fn two_pools_capacity_runner_hours_and_cost() {
    // Pool a: 2 runners x 1 slot, 1.0/h. Pool b: 1 runner x 4 slots, 10.0/h. 6 slots.
    // Makespan 0..3600 s = 1 h.
    // Job x on a: 1 slot x 1800 s = 1800 slot-s. Job y on b: 4 slots x 1800 s = 7200 slot-s.
    let f = facts(
        vec![
            job("x", "t", "std", 0.0, 0.0, 1800.0, 1, "a", 0),
            job("y", "t", "std", 0.0, 1800.0, 3600.0, 4, "b", 0),
        ],
        vec![pool("a", 2, 1, 1.0), pool("b", 1, 4, 10.0)],
        vec![],
    );
    let r = Report::from_facts(&f);
    assert_close(r.makespan_s, 3600.0);
    // (1800 + 7200) / (6 * 3600) = 9000 / 21600.
    assert_close(r.utilization, 9000.0 / 21600.0);
    // (2 + 1) runners * 1 h.
    assert_close(r.runner_hours, 3.0);
    // 2 runner-hours * 1.0 + 1 runner-hour * 10.0.
    assert_close(r.cost, 12.0);
    // a: 1800 / (2 * 1 * 3600) = 0.25; b: 7200 / (1 * 4 * 3600) = 0.5.
    assert_close(r.pools["a"].busy_share, 0.25);
    assert_close(r.pools["b"].busy_share, 0.5);
    assert_eq!(r.pools["a"].jobs, 1);
    assert_eq!(r.pools["b"].jobs, 1);
    assert_eq!(r.pools["b"].runners, 1);
    // Job x waited 0, job y waited 1800 s; no QoS configured: class "std" is listed from
    // the results, with no target -> within_target null.
    let std = &r.qos["std"];
    assert_eq!(std.jobs, 2);
    assert_some_close(std.wait_mean_s, 900.0);
    assert_eq!(std.within_target, None);
}

#[test]
fn empty_input_gives_nulls_without_panic() {
    let mut f = facts(vec![], vec![pool("p", 3, 2, 1.0)], vec![qos("fast", 10.0)]);
    f.sim_start_s = 0.0;
    f.sim_end_s = 0.0;
    f.wall_s = 0.0;
    let r = Report::from_facts(&f);
    assert_eq!(r.jobs, 0);
    assert_eq!(r.makespan_s, 0.0);
    assert_eq!(r.wait_mean_s, None);
    assert_eq!(r.wait_p50_s, None);
    assert_eq!(r.wait_p95_s, None);
    assert_eq!(r.wait_p99_s, None);
    assert_eq!(r.bsld_mean, None);
    assert_eq!(r.utilization, 0.0);
    assert_eq!(r.runner_hours, 0.0);
    assert_eq!(r.cost, 0.0);
    assert_eq!(r.jain_fairness, None);
    assert_eq!(r.events_per_s, None);
    assert!(r.tenants.is_empty());
    assert_eq!(r.qos["fast"].jobs, 0);
    assert_eq!(r.qos["fast"].within_target, None);
    assert_eq!(r.pools["p"].busy_share, 0.0);

    let json: Value = serde_json::from_str(&r.to_json_pretty()).expect("valid JSON");
    for key in [
        "wait_mean_s",
        "wait_p50_s",
        "wait_p95_s",
        "wait_p99_s",
        "bsld_mean",
        "jain_fairness",
        "events_per_s",
    ] {
        assert!(
            json[key].is_null(),
            "{key} should be null, got {}",
            json[key]
        );
    }
    assert!(json["qos"]["fast"]["within_target"].is_null());
    assert!(!r.human_table().is_empty());

    // No pools, no QoS, no jobs at all: still no panic.
    let bare = facts(vec![], vec![], vec![]);
    let r = Report::from_facts(&bare);
    assert_eq!(r.jobs, 0);
    assert!(r.qos.is_empty() && r.pools.is_empty());
    assert!(!r.human_table().is_empty());
    serde_json::from_str::<Value>(&r.to_json_pretty()).expect("valid JSON");
}

#[test]
fn all_jobs_skipped_still_pays_for_the_fleet() {
    // No completed jobs, but the simulated span is 0..7200 s with 3 runners: 6 runner-hours,
    // cost 6 * 0.5 = 3; utilization 0 (no work) without dividing 0 by 0 anywhere.
    let mut f = facts(vec![], vec![pool("p", 3, 2, 0.5)], vec![]);
    f.sim_start_s = 0.0;
    f.sim_end_s = 7200.0;
    f.skipped.unschedulable = 4;
    let r = Report::from_facts(&f);
    assert_close(r.runner_hours, 6.0);
    assert_close(r.cost, 3.0);
    assert_eq!(r.utilization, 0.0);
    assert_eq!(r.skipped.unschedulable, 4);
    let table = r.human_table();
    assert!(table.contains("skipped"), "{table}");
    assert!(table.contains("unschedulable 4"), "{table}");
}

#[test]
fn json_has_the_stable_top_level_keys() {
    let r = Report::from_facts(&four_jobs());
    let json: Value = serde_json::from_str(&r.to_json_pretty()).expect("valid JSON");
    let keys: BTreeSet<&str> = json
        .as_object()
        .expect("top level is an object")
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "jobs",
        "skipped",
        "makespan_s",
        "wait_mean_s",
        "wait_p50_s",
        "wait_p95_s",
        "wait_p99_s",
        "bsld_mean",
        "utilization",
        "runner_hours",
        "cost",
        "qos",
        "tenants",
        "jain_fairness",
        "pools",
        "events",
        "events_per_s",
        "wall_s",
        "policy",
        "predictor",
        "workload",
        "seed",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);

    let object_keys = |v: &Value| -> BTreeSet<String> {
        v.as_object().expect("an object").keys().cloned().collect()
    };
    let set = |ks: &[&str]| -> BTreeSet<String> { ks.iter().map(|k| k.to_string()).collect() };
    assert_eq!(
        object_keys(&json["qos"]["batch"]),
        set(&["jobs", "wait_mean_s", "wait_p95_s", "within_target"])
    );
    assert_eq!(
        object_keys(&json["tenants"]["t1"]),
        set(&["jobs", "wait_mean_s", "wait_p95_s", "bsld_mean"])
    );
    assert_eq!(
        object_keys(&json["pools"]["p"]),
        set(&["jobs", "runners", "busy_share"])
    );
    assert_eq!(
        object_keys(&json["skipped"]),
        set(&[
            "unknown_run_time",
            "negative_run_time",
            "unknown_slots",
            "unschedulable"
        ])
    );
    assert_eq!(json["jobs"], 4);
    assert_eq!(json["wait_mean_s"], 11.5);
    assert_eq!(json["qos"]["batch"]["within_target"], 0.5);
    assert_eq!(json["seed"], 7);
}

#[test]
fn human_table_shows_summary_qos_and_top_ten_tenants() {
    // 12 tenants: tenant tNN has NN + 1 jobs of 10 s each, no wait. Top 10 by jobs are
    // t02..t11; t00 (1 job) and t01 (2 jobs) are left out.
    let mut results = Vec::new();
    for t in 0..12 {
        for k in 0..=t {
            results.push(job(
                &format!("j{t}-{k}"),
                &format!("t{t:02}"),
                "std",
                0.0,
                0.0,
                10.0,
                1,
                "p",
                0,
            ));
        }
    }
    let mut f = facts(results, vec![pool("p", 1, 1, 1.0)], vec![qos("std", 5.0)]);
    f.events = 1000;
    f.wall_s = 0.5;
    let r = Report::from_facts(&f);
    assert_eq!(r.tenants.len(), 12);
    let table = r.human_table();
    // 1 + 2 + ... + 12 = 78 jobs.
    assert!(table.contains("78"), "{table}");
    assert!(table.contains("std"), "{table}");
    assert!(table.contains("100.0 %"), "{table}");
    assert!(table.contains("t11") && table.contains("t02"), "{table}");
    assert!(!table.contains("t00") && !table.contains("t01"), "{table}");
    // 1000 events / 0.5 s.
    assert!(table.contains("2000 events/s"), "{table}");
    assert!(!table.contains("skipped"), "{table}");
}

#[test]
fn jobs_csv_quotes_and_compact_numbers() {
    let results = vec![
        job("plain", "t1", "fast", 0.0, 3.0, 10.5, 2, "p", 1),
        job(
            "a,b",
            "say \"hi\"",
            "fast",
            10.1,
            12.345,
            20.0,
            1,
            "pool,x",
            0,
        ),
    ];
    let mut out = Vec::new();
    write_jobs_csv(&mut out, &results).expect("write to a Vec");
    let text = String::from_utf8(out).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "id,tenant,qos,submit_s,start_s,end_s,wait_s,run_s,slots,pool,runner",
            // wait 3 - 0 = 3, run 10.5 - 3 = 7.5.
            "plain,t1,fast,0,3,10.5,3,7.5,2,p,1",
            // wait 12.345 - 10.1 = 2.245, run 20 - 12.345 = 7.655.
            "\"a,b\",\"say \"\"hi\"\"\",fast,10.1,12.345,20,2.245,7.655,1,\"pool,x\",0",
        ]
    );
    assert!(text.ends_with('\n'));

    // No jobs: just the header.
    let mut out = Vec::new();
    write_jobs_csv(&mut out, &[]).expect("write to a Vec");
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        "id,tenant,qos,submit_s,start_s,end_s,wait_s,run_s,slots,pool,runner\n"
    );
}

#[test]
fn percentile_is_nearest_rank() {
    let waits = [10.0, 20.0, 30.0, 40.0, 50.0];
    // ceil(0.5 * 5) = 3 -> 30; ceil(0.95 * 5) = 5 -> 50; ceil(0.2 * 5) = 1 -> 10;
    // ceil(0.21 * 5) = 2 -> 20.
    assert_eq!(percentile(&waits, 50.0), Some(30.0));
    assert_eq!(percentile(&waits, 95.0), Some(50.0));
    assert_eq!(percentile(&waits, 20.0), Some(10.0));
    assert_eq!(percentile(&waits, 21.0), Some(20.0));
    assert_eq!(percentile(&[], 50.0), None);
}
