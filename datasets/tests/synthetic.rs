//! The synthetic workload: deterministic, sorted, and shaped as documented.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::Instant;

use rustci_datasets::synthetic::{
    default_pool_for, generate, generate_trace, LabelSet, PipelineConfig, SyntheticConfig,
    BUILD_VARIANTS, DEFAULT_LABEL_SETS, PIPELINE_STAGES,
};
use rustci_datasets::time::weekday;
use rustci_datasets::{check_pipelines, DatasetError, JobRecord, Outcome, PipelineRef, When};

fn small(seed: u64) -> SyntheticConfig {
    SyntheticConfig {
        seed,
        days: 2.0,
        jobs_per_day: 5_000.0,
        ..SyntheticConfig::default()
    }
}

/// Two weeks at the default rate, shared by the statistical tests.
fn two_weeks() -> &'static (SyntheticConfig, Vec<JobRecord>) {
    static W: std::sync::OnceLock<(SyntheticConfig, Vec<JobRecord>)> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        let cfg = SyntheticConfig {
            seed: 7,
            days: 14.0,
            ..SyntheticConfig::default()
        };
        let jobs = generate(&cfg).expect("valid config");
        (cfg, jobs)
    })
}

#[test]
fn deterministic_per_seed_and_different_across_seeds() {
    let a = generate(&small(42)).expect("generate");
    let b = generate(&small(42)).expect("generate");
    assert_eq!(a, b);
    let c = generate(&small(43)).expect("generate");
    assert_ne!(a, c);
    let submits = |v: &[JobRecord]| v.iter().map(|r| r.submit_s).collect::<Vec<_>>();
    assert_ne!(submits(&a), submits(&c));
}

#[test]
fn sorted_by_submit_then_id_with_unique_ids() {
    let (cfg, jobs) = two_weeks();
    assert!(jobs
        .windows(2)
        .all(|w| (w[0].submit_s, &w[0].id) < (w[1].submit_s, &w[1].id)));
    let ids: HashSet<&str> = jobs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), jobs.len());
    let horizon = cfg.horizon_s();
    assert!(jobs.iter().all(|r| (0..horizon).contains(&r.submit_s)));
    assert!(jobs.iter().all(|r| r.wait_s.is_none()));
}

#[test]
fn volume_close_to_configured() {
    let (cfg, jobs) = two_weeks();
    let expected = cfg.expected_jobs();
    // 14 days: 10 weekdays + 4 weekend days at 0.3, plus bursts.
    let by_hand = (10.0 + 4.0 * 0.3) * (20_000.0 + 2.0 * 150.0);
    assert!(
        (expected - by_hand).abs() / by_hand < 1e-6,
        "{expected} vs {by_hand}"
    );
    let rel = (jobs.len() as f64 - expected).abs() / expected;
    assert!(rel < 0.03, "{} jobs, expected {expected:.0}", jobs.len());
}

#[test]
fn labels_in_documented_sets_and_served_by_default_pools() {
    let (_, jobs) = two_weeks();
    let sets: HashMap<Vec<String>, u32> = DEFAULT_LABEL_SETS
        .iter()
        .map(|s| (s.labels.iter().map(|l| l.to_string()).collect(), s.slots))
        .collect();
    let mut share: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for r in jobs {
        let slots = sets
            .get(&r.labels)
            .unwrap_or_else(|| panic!("{}: labels {:?} not documented", r.id, r.labels));
        assert_eq!(r.slots, *slots, "{}", r.id);
        *share.entry(r.labels.clone()).or_default() += 1;
    }
    for s in DEFAULT_LABEL_SETS {
        let labels: Vec<String> = s.labels.iter().map(|l| l.to_string()).collect();
        assert!(
            default_pool_for(&labels).is_some(),
            "{labels:?} has no pool"
        );
        let got = share.get(&labels).copied().unwrap_or(0) as f64 / jobs.len() as f64;
        assert!(
            (got - s.weight).abs() < 0.03 + 0.2 * s.weight,
            "{labels:?}: share {got:.3}, configured {}",
            s.weight
        );
    }
    assert!(default_pool_for(&["windows".to_string()]).is_none());
}

#[test]
fn weekends_are_quieter() {
    let (cfg, jobs) = two_weeks();
    let mut per_day: BTreeMap<i64, usize> = BTreeMap::new();
    for r in jobs {
        *per_day.entry(r.submit_s / 86_400).or_default() += 1;
    }
    let (mut wk, mut we) = (Vec::new(), Vec::new());
    for (day, n) in per_day {
        if weekday(cfg.start_unix + day * 86_400) >= 5 {
            we.push(n as f64);
        } else {
            wk.push(n as f64);
        }
    }
    assert_eq!((wk.len(), we.len()), (10, 4));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&we) / mean(&wk);
    assert!(
        (0.25..0.35).contains(&ratio),
        "weekend/weekday = {ratio:.3}"
    );
}

#[test]
fn diurnal_peak_and_trough() {
    let (cfg, jobs) = two_weeks();
    let hour = |r: &JobRecord| (cfg.start_unix + r.submit_s).rem_euclid(86_400) / 3600;
    let weekday_jobs = jobs
        .iter()
        .filter(|r| weekday(cfg.start_unix + r.submit_s) < 5);
    let (mut peak, mut night) = (0usize, 0usize);
    for r in weekday_jobs {
        match hour(r) {
            12..=15 => peak += 1,
            0..=3 => night += 1,
            _ => {}
        }
    }
    // Expected ratio (1 + 0.6·0.955) / (1 − 0.6·0.955) ≈ 3.7.
    let ratio = peak as f64 / night as f64;
    assert!((2.8..4.8).contains(&ratio), "peak/night = {ratio:.2}");
}

#[test]
fn durations_heavy_tailed_and_consistent_per_job() {
    let (cfg, jobs) = two_weeks();
    let mut runs: Vec<i64> = jobs
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .filter_map(|r| r.run_s)
        .collect();
    runs.sort_unstable();
    let median = runs[runs.len() / 2];
    assert!((120..=600).contains(&median), "median {median}");
    let over_hour = runs.iter().filter(|&&r| r > 3600).count() as f64 / runs.len() as f64;
    assert!(
        over_hour > 0.005 && over_hour < 0.15,
        "share over 1 h {over_hour}"
    );
    assert!(jobs.iter().all(|r| {
        let run = r.run_s.unwrap_or(-1);
        run >= 1 && run <= cfg.max_duration_s && Some(run) <= r.requested_s
    }));

    // Spread of log run time within a (tenant, project, job) is far below the overall one.
    let mut groups: HashMap<(&str, &str, &str), Vec<f64>> = HashMap::new();
    let mut all = Vec::new();
    for r in jobs.iter().filter(|r| r.outcome == Outcome::Success) {
        let l = (r.run_s.unwrap_or(1) as f64).ln();
        all.push(l);
        let key = (
            r.tenant.as_str(),
            r.project.as_deref().unwrap_or(""),
            r.job_name.as_deref().unwrap_or(""),
        );
        groups.entry(key).or_default().push(l);
    }
    let var = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64
    };
    let (mut within, mut n) = (0.0, 0.0);
    for v in groups.values().filter(|v| v.len() > 1) {
        within += var(v) * v.len() as f64;
        n += v.len() as f64;
    }
    let within_sd = (within / n).sqrt();
    let overall_sd = var(&all).sqrt();
    assert!(
        within_sd < 0.6 * overall_sd,
        "within {within_sd:.2} overall {overall_sd:.2}"
    );
}

#[test]
fn tenants_qos_and_outcomes() {
    let (_, jobs) = two_weeks();
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    let mut qos: HashMap<&str, usize> = HashMap::new();
    for r in jobs {
        *per_tenant.entry(r.tenant.as_str()).or_default() += 1;
        *qos.entry(r.qos.as_deref().unwrap_or("none")).or_default() += 1;
    }
    assert_eq!(per_tenant.len(), 40);
    let top = per_tenant["tenant-00"] as f64;
    let tenth = per_tenant["tenant-09"] as f64;
    // Zipf 1.1: weight ratio of ranks 1 and 10 is 10^1.1 ≈ 12.6.
    assert!((7.0..22.0).contains(&(top / tenth)), "{top} / {tenth}");
    let n = jobs.len() as f64;
    for (name, w) in [("urgent", 0.10), ("standard", 0.70), ("batch", 0.20)] {
        let got = qos.get(name).copied().unwrap_or(0) as f64 / n;
        assert!((got - w).abs() < 0.01, "{name}: {got:.3}");
    }
    let fail = jobs
        .iter()
        .filter(|r| r.outcome == Outcome::Failure)
        .count() as f64
        / n;
    assert!((0.07..0.12).contains(&fail), "failure share {fail:.3}");
    let ok = jobs
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .count() as f64
        / n;
    assert!(ok > 0.85, "success share {ok:.3}");
}

#[test]
fn bursts_add_jobs() {
    let base = SyntheticConfig {
        seed: 3,
        days: 3.0,
        jobs_per_day: 2_000.0,
        bursts_per_day: 0.0,
        ..SyntheticConfig::default()
    };
    let storms = SyntheticConfig {
        bursts_per_day: 10.0,
        burst_jobs_mean: 200.0,
        ..base.clone()
    };
    let a = generate(&base).expect("generate").len() as f64;
    let b = generate(&storms).expect("generate").len() as f64;
    // 3 weekdays (2024-01-01 is a Monday): about 6,000 more jobs.
    let added = b - a;
    assert!((4_500.0..7_500.0).contains(&added), "bursts added {added}");
}

#[test]
fn validate_names_the_bad_field() {
    let cases: Vec<(&str, SyntheticConfig)> = vec![
        (
            "days",
            SyntheticConfig {
                days: -1.0,
                ..Default::default()
            },
        ),
        (
            "days",
            SyntheticConfig {
                days: f64::NAN,
                ..Default::default()
            },
        ),
        (
            "jobs_per_day",
            SyntheticConfig {
                jobs_per_day: -5.0,
                ..Default::default()
            },
        ),
        (
            "jobs_per_day",
            SyntheticConfig {
                jobs_per_day: 1e9,
                days: 365.0,
                ..Default::default()
            },
        ),
        (
            "tenants",
            SyntheticConfig {
                tenants: 0,
                ..Default::default()
            },
        ),
        (
            "weekend_factor",
            SyntheticConfig {
                weekend_factor: 2.0,
                ..Default::default()
            },
        ),
        (
            "diurnal_amplitude",
            SyntheticConfig {
                diurnal_amplitude: 1.5,
                ..Default::default()
            },
        ),
        (
            "within_job_sigma",
            SyntheticConfig {
                within_job_sigma: 2.0,
                ..Default::default()
            },
        ),
        (
            "cancel_rate",
            SyntheticConfig {
                failure_rate: 0.7,
                cancel_rate: 0.5,
                ..Default::default()
            },
        ),
        (
            "label_sets",
            SyntheticConfig {
                label_sets: vec![],
                ..Default::default()
            },
        ),
        (
            "label_sets[0]",
            SyntheticConfig {
                label_sets: vec![LabelSet {
                    labels: vec![],
                    weight: 1.0,
                    slots: 1,
                }],
                ..Default::default()
            },
        ),
        (
            "label_sets",
            SyntheticConfig {
                label_sets: vec![LabelSet {
                    labels: vec!["linux".into()],
                    weight: 0.0,
                    slots: 1,
                }],
                ..Default::default()
            },
        ),
        (
            "qos",
            SyntheticConfig {
                qos: vec![],
                ..Default::default()
            },
        ),
    ];
    for (field, cfg) in cases {
        match cfg.validate() {
            Err(DatasetError::Config { field: f, message }) => {
                assert_eq!(f, field, "{message}");
            }
            other => panic!("{field}: expected a config error, got {other:?}"),
        }
        assert!(generate(&cfg).is_err(), "{field}");
    }
    SyntheticConfig::default()
        .validate()
        .expect("defaults are valid");
}

#[test]
fn config_from_json_uses_defaults_and_rejects_unknown_fields() {
    let cfg: SyntheticConfig =
        serde_json::from_str(r#"{"seed": 9, "days": 1.5}"#).expect("partial config");
    assert_eq!(cfg.seed, 9);
    assert_eq!(cfg.days, 1.5);
    assert_eq!(cfg.jobs_per_day, SyntheticConfig::default().jobs_per_day);
    let e = serde_json::from_str::<SyntheticConfig>(r#"{"seeed": 9}"#).expect_err("typo");
    assert!(e.to_string().contains("seeed"), "{e}");
    let trace = generate_trace(&cfg).expect("generate");
    assert_eq!(trace.meta.unix_start, Some(cfg.start_unix));
}

#[test]
fn one_million_jobs_at_the_configured_volume() {
    let cfg = SyntheticConfig {
        seed: 11,
        days: 7.0,
        jobs_per_day: 1_000_000.0 / (5.0 + 2.0 * 0.3) - 300.0,
        ..SyntheticConfig::default()
    };
    let t = Instant::now();
    let jobs = generate(&cfg).expect("generate");
    let secs = t.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "synthetic: {} jobs in {secs:.3} s",
        jobs.len()
    );
    assert!(
        (0.97e6..1.03e6).contains(&(jobs.len() as f64)),
        "{}",
        jobs.len()
    );
    // Speed is measured by the simulator's bench (BENCHMARKS.md), not asserted here.
}

/// FNV-1a (64 bit) of the workload's JSON: a fingerprint of every field of every record.
fn fingerprint(jobs: &[JobRecord]) -> u64 {
    let json = serde_json::to_vec(jobs).expect("records serialize");
    json.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn pipelines_off_is_the_workload_of_before_pipelines() {
    // Fingerprints of the generator before pipelines existed (commit 49953bc), so turning
    // pipelines off keeps every existing workload byte for byte.
    let default = generate(&SyntheticConfig::default()).expect("generate");
    let small = generate(&small(42)).expect("generate");
    let _ = writeln!(
        std::io::stderr(),
        "fingerprints: default {:#018x} ({} jobs), small(42) {:#018x} ({} jobs)",
        fingerprint(&default),
        default.len(),
        fingerprint(&small),
        small.len()
    );
    assert_eq!(fingerprint(&default), 0x98e8_f98e_c094_f180);
    assert_eq!(fingerprint(&small), 0x6647_7597_9231_5a4c);
}

fn with_pipelines(seed: u64) -> SyntheticConfig {
    SyntheticConfig {
        pipelines: PipelineConfig {
            enabled: true,
            ..PipelineConfig::default()
        },
        ..small(seed)
    }
}

/// The jobs of each pipeline, by pipeline id, in record order.
fn pipelines_of(jobs: &[JobRecord]) -> BTreeMap<&str, Vec<&JobRecord>> {
    let mut out: BTreeMap<&str, Vec<&JobRecord>> = BTreeMap::new();
    for r in jobs {
        let p = r
            .pipeline
            .as_ref()
            .expect("every job of a template repository");
        out.entry(p.id.as_str()).or_default().push(r);
    }
    out
}

fn place(r: &JobRecord) -> &PipelineRef {
    r.pipeline.as_ref().expect("pipeline")
}

#[test]
fn pipelines_are_dags_of_the_template() {
    let cfg = with_pipelines(42);
    let jobs = generate(&cfg).expect("generate");
    check_pipelines(&jobs).expect("needs exist, point backwards, no cycle");
    assert!(jobs
        .windows(2)
        .all(|w| (w[0].submit_s, &w[0].id) < (w[1].submit_s, &w[1].id)));
    let pipes = pipelines_of(&jobs);
    assert!(pipes.len() > 500, "{} pipelines", pipes.len());
    for (id, pj) in &pipes {
        let first = pj[0];
        let main = first.branch.as_deref() == Some("main");
        // One push: same submit, creation, tenant, project, branch and QoS.
        assert!(pj.iter().all(|r| r.submit_s == first.submit_s
            && place(r).created_s == r.submit_s
            && (&r.tenant, &r.project, &r.branch, &r.qos)
                == (&first.tenant, &first.project, &first.branch, &first.qos)));
        // Stages in template order, indexes counting the stages present.
        let mut stages: Vec<&str> = pj.iter().map(|r| place(r).stage.as_str()).collect();
        stages.dedup();
        let order: Vec<usize> = stages
            .iter()
            .map(|s| {
                PIPELINE_STAGES
                    .iter()
                    .position(|p| p == s)
                    .expect("known stage")
            })
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{id}: {stages:?}");
        assert!(pj
            .iter()
            .all(|r| stages[place(r).stage_index as usize] == place(r).stage));
        // Explicit needs point at strictly earlier stages.
        let stage_of: HashMap<&str, u32> = pj
            .iter()
            .map(|r| (r.job_name.as_deref().unwrap_or(""), place(r).stage_index))
            .collect();
        for r in pj {
            for need in place(r).needs.iter().flatten() {
                assert!(stage_of[need.as_str()] < place(r).stage_index, "{}", r.id);
            }
        }
        let named = |name: &str| pj.iter().find(|r| r.job_name.as_deref() == Some(name));
        let builds: Vec<&&JobRecord> = pj
            .iter()
            .filter(|r| r.job_name.as_deref().unwrap_or("").starts_with("build: ["))
            .collect();
        assert!((1..=4).contains(&builds.len()), "{id}");
        assert!(BUILD_VARIANTS[..builds.len()]
            .iter()
            .all(|v| named(v).is_some()));
        // The test fans in every build.
        let test = named("test").expect("test");
        let mut needs = place(test).needs.clone().expect("explicit");
        needs.sort();
        let mut names: Vec<String> = builds.iter().filter_map(|r| r.job_name.clone()).collect();
        names.sort();
        assert_eq!(needs, names, "{id}");
        assert!(named("lint").is_some());
        assert_eq!(
            place(named("notify-failure").expect("notify")).when,
            When::OnFailure
        );
        if let Some(c) = named("cleanup") {
            assert_eq!(
                (place(c).when, place(c).needs.clone()),
                (When::Always, None)
            );
            assert!(named("integration").is_some());
        }
        if let Some(d) = named("deploy") {
            assert!(main, "{id}: deploy off main");
            assert!(!place(d).interruptible);
            assert_eq!(place(d).allow_failure, place(d).when == When::Manual);
        }
        assert!(pj
            .iter()
            .filter(|r| r.job_name.as_deref() != Some("deploy"))
            .all(|r| place(r).interruptible));
    }
}

#[test]
fn pipeline_outcomes_follow_gitlab_rules() {
    let jobs = generate(&with_pipelines(7)).expect("generate");
    let ran = |r: &JobRecord| !matches!(r.outcome, Outcome::Skipped | Outcome::Manual);
    assert!(jobs.iter().all(|r| ran(r) == r.run_s.is_some()));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, pj) in pipelines_of(&jobs) {
        let named = |name: &str| {
            pj.iter()
                .copied()
                .find(|r| r.job_name.as_deref() == Some(name))
        };
        let blocking_failure =
            |r: &&JobRecord| r.outcome == Outcome::Failure && !place(r).allow_failure;
        // A failed or cancelled build skips the test; otherwise the test runs.
        let test = named("test").expect("test");
        let builds_ok = pj
            .iter()
            .filter(|r| r.job_name.as_deref().unwrap_or("").starts_with("build: ["))
            .all(|r| r.outcome == Outcome::Success);
        assert_eq!(ran(test), builds_ok, "{id}");
        // notify-failure runs exactly when a job before .post failed and may not.
        let notify = named("notify-failure").expect("notify");
        let failed = pj
            .iter()
            .filter(|r| place(r).stage != ".post")
            .any(blocking_failure);
        assert_eq!(ran(notify), failed, "{id}");
        if let Some(c) = named("cleanup") {
            assert!(ran(c), "{id}: cleanup always runs");
        }
        if let Some(d) = named("deploy") {
            *counts
                .entry(if ran(d) {
                    "deploy ran"
                } else {
                    "deploy not run"
                })
                .or_default() += 1;
            if place(d).when == When::Manual && d.outcome == Outcome::Manual {
                *counts.entry("manual waiting").or_default() += 1;
            }
        }
        *counts
            .entry(if failed { "failed" } else { "passed" })
            .or_default() += 1;
    }
    let _ = writeln!(std::io::stderr(), "pipeline outcomes: {counts:?}");
    assert!(counts["manual waiting"] > 10, "{counts:?}");
    assert!(
        counts["failed"] > 10 && counts["passed"] > counts["failed"],
        "{counts:?}"
    );
    let skipped = jobs
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .count();
    let manual = jobs.iter().filter(|r| r.outcome == Outcome::Manual).count();
    assert!(skipped > 0 && manual > 0 && skipped + manual < jobs.len() / 2);
}

#[test]
fn pull_request_branches_are_pushed_again_while_their_pipeline_runs() {
    let cfg = with_pipelines(11);
    let jobs = generate(&cfg).expect("generate");
    let pipes = pipelines_of(&jobs);
    // Per (project, branch), pipeline creation times and a bound on each one's length:
    // the sum over its stages of the stage's longest job.
    let mut branches: BTreeMap<(&str, &str), Vec<(i64, i64)>> = BTreeMap::new();
    for pj in pipes.values() {
        let mut longest: BTreeMap<u32, i64> = BTreeMap::new();
        for r in pj {
            let l = longest.entry(place(r).stage_index).or_default();
            *l = (*l).max(r.run_s.unwrap_or(0));
        }
        let key = (
            pj[0].project.as_deref().unwrap_or(""),
            pj[0].branch.as_deref().unwrap_or(""),
        );
        branches
            .entry(key)
            .or_default()
            .push((place(pj[0]).created_s, longest.values().sum()));
    }
    let (mut pr, mut superseded) = (0usize, 0usize);
    for ((_, branch), mut runs) in branches {
        if branch == "main" {
            continue;
        }
        runs.sort_unstable();
        pr += runs.len();
        superseded += runs.windows(2).filter(|w| w[1].0 < w[0].0 + w[0].1).count();
    }
    let share = superseded as f64 / pr as f64;
    let _ = writeln!(
        std::io::stderr(),
        "pull-request pipelines: {pr}, a newer push arrived before one's stages could end: {share:.3}"
    );
    // 3 pushes per branch on average (2 of 3 pipelines have a successor), 20 min apart.
    assert!((0.2..0.67).contains(&share), "{share}");
}

#[test]
fn pipelines_keep_the_configured_volume_and_are_deterministic() {
    let cfg = with_pipelines(42);
    let a = generate(&cfg).expect("generate");
    assert_eq!(a, generate(&cfg).expect("generate"));
    let other = generate(&with_pipelines(43)).expect("generate");
    assert_ne!(a, other);
    let expected = cfg.expected_jobs();
    let rel = (a.len() as f64 - expected) / expected;
    let _ = writeln!(
        std::io::stderr(),
        "pipelines: {} jobs, expected {expected:.0} ({:+.1}%)",
        a.len(),
        rel * 100.0
    );
    assert!(rel.abs() < 0.1, "{} jobs, expected {expected:.0}", a.len());
    // Pipelines round-trip through the JobRecord CSV.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipelines.csv.gz");
    rustci_datasets::jobcsv::write_jobcsv(&path, &a).expect("write");
    assert_eq!(
        rustci_datasets::jobcsv::read_jobcsv(&path).expect("read"),
        a
    );
}

#[test]
fn half_of_the_repositories_without_pipelines() {
    let cfg = SyntheticConfig {
        pipelines: PipelineConfig {
            enabled: true,
            repo_share: 0.5,
            ..PipelineConfig::default()
        },
        ..small(5)
    };
    let jobs = generate(&cfg).expect("generate");
    let with: HashSet<&str> = jobs
        .iter()
        .filter(|r| r.pipeline.is_some())
        .filter_map(|r| r.project.as_deref())
        .collect();
    let without: HashSet<&str> = jobs
        .iter()
        .filter(|r| r.pipeline.is_none())
        .filter_map(|r| r.project.as_deref())
        .collect();
    assert!(!with.is_empty() && !without.is_empty());
    assert!(with.is_disjoint(&without), "a repository is either kind");
    check_pipelines(&jobs).expect("valid");
}

#[test]
fn pipeline_settings_are_ignored_while_off_and_checked() {
    let off = SyntheticConfig {
        pipelines: PipelineConfig {
            max_matrix_width: 2,
            pushes_per_branch_mean: 9.0,
            ..PipelineConfig::default()
        },
        ..small(42)
    };
    assert_eq!(
        fingerprint(&generate(&off).expect("generate")),
        0x6647_7597_9231_5a4c
    );
    let cfg: SyntheticConfig = serde_json::from_str(
        r#"{"days": 1, "pipelines": {"enabled": true, "max_matrix_width": 9}}"#,
    )
    .expect("parses");
    match cfg.validate() {
        Err(DatasetError::Config { field, .. }) => assert_eq!(field, "pipelines.max_matrix_width"),
        other => panic!("expected a config error, got {other:?}"),
    }
    for (field, json) in [
        ("pipelines.repo_share", r#"{"repo_share": 1.5}"#),
        (
            "pipelines.pushes_per_branch_mean",
            r#"{"pushes_per_branch_mean": 0.5}"#,
        ),
        ("pipelines.repush_gap_mean_s", r#"{"repush_gap_mean_s": 0}"#),
    ] {
        let pipelines: PipelineConfig = serde_json::from_str(json).expect("parses");
        let cfg = SyntheticConfig {
            pipelines,
            ..SyntheticConfig::default()
        };
        match cfg.validate() {
            Err(DatasetError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected a config error, got {other:?}"),
        }
    }
    let e = serde_json::from_str::<SyntheticConfig>(r#"{"pipelines": {"enable": true}}"#)
        .expect_err("typo");
    assert!(e.to_string().contains("enable"), "{e}");
    // Off, the table is not even written back.
    let json = serde_json::to_string(&SyntheticConfig::default()).expect("serialize");
    assert!(!json.contains("pipelines"), "{json}");
}
