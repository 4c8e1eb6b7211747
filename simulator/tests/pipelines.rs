//! Pipelines in the simulator: small replays worked by hand, the report's interface,
//! the engine's invariants on the real GitLab and FlowBench traces and on random
//! pipelines, and bad input.

mod common;

use std::collections::HashMap;

use proptest::prelude::*;
use rustci_datasets::record::{JobRecord, Outcome, PipelineRef, When};
use rustci_datasets::testdata::dataset;
use rustci_datasets::{jobcsv, open_trace, TraceFormat};
use rustci_sim::engine::Fate;
use rustci_sim::fleet_file::FleetFile;
use rustci_sim::report::Report;
use rustci_sim::simulate::{simulate, RunOutput, RunSpec};
use rustci_sim::workload::Supersede;

/// A fleet of `runners` one-slot runners.
fn fleet(runners: u32) -> FleetFile {
    let text = format!("[[pool]]\nname = \"r\"\nrunners = {runners}\nslots = 1\n");
    FleetFile::parse(&text, "test fleet").expect("fleet")
}

/// Job `name` of pipeline `pipe` (created at `created`) in stage `stage`, that ran
/// `run_s` (requested time = run time, so estimates are exact) with `outcome`.
fn job(
    pipe: &str,
    created: i64,
    name: &str,
    stage: u32,
    needs: Option<&[&str]>,
    run_s: Option<i64>,
    outcome: Outcome,
) -> JobRecord {
    let mut r = JobRecord::new(format!("{pipe}/{name}"), "team", created);
    r.project = Some("proj".into());
    r.branch = Some(format!("branch-of-{pipe}"));
    r.job_name = Some(name.into());
    r.run_s = run_s;
    r.wait_s = run_s.map(|_| 0);
    r.requested_s = run_s.filter(|&s| s > 0);
    r.outcome = outcome;
    let mut p = PipelineRef::new(pipe, created, format!("s{stage}"), stage);
    p.needs = needs.map(|n| n.iter().map(|s| s.to_string()).collect());
    r.pipeline = Some(p);
    r
}

fn ok(pipe: &str, created: i64, name: &str, needs: &[&str], run_s: i64) -> JobRecord {
    job(
        pipe,
        created,
        name,
        0,
        Some(needs),
        Some(run_s),
        Outcome::Success,
    )
}

fn run(records: &[JobRecord], runners: u32, policy: &str, supersede: Supersede) -> RunOutput {
    let fleet = fleet(runners);
    simulate(RunSpec {
        supersede,
        record_decisions: true,
        ..RunSpec::new(records, &fleet, policy).expect("policy")
    })
    .expect("simulate")
}

/// (created, end, state) of each pipeline, by trace id.
fn pipelines(out: &RunOutput) -> HashMap<String, (f64, Option<f64>, &'static str)> {
    out.facts
        .pipelines
        .as_ref()
        .expect("pipelines")
        .pipelines
        .iter()
        .map(|p| (p.id.clone(), (p.created_s, p.end_s, p.state)))
        .collect()
}

/// (start, end) of each job that ran, by trace id.
fn spans(out: &RunOutput) -> HashMap<String, (f64, f64)> {
    out.facts
        .results
        .iter()
        .map(|r| (r.id.clone(), (r.start_s, r.end_s)))
        .collect()
}

mod scenarios {
    use super::*;

    /// Two pipelines created at t = 0 on one runner. P1: `lint` (20 s) and `build`
    /// (10 s) are roots, `test` (40 s) needs `build`; P2: `doc` (20 s).
    ///
    /// FIFO: lint 0-20, build 20-30, doc 30-50 (queued at 0, before test, queued at
    /// 30), test 50-90: P1 ends at 90, P2 at 50.
    ///
    /// Latest start (`critical-path-latest-start`, the rule before aging): ranks build
    /// 50, test 40, lint 20, doc 20; P1's critical path 50, P2's 20. Latest starts
    /// (created + path - rank): build 0, lint 30, doc 0. build (earlier in the queue than
    /// doc) 0-10; at 10 test is queued with key 0 + 50 - 40 = 10: doc (0) 10-30, test
    /// (10) 30-70, lint (30) 70-90. P1 still ends at 90, P2 at 30 instead of 50.
    ///
    /// `critical-path` (the latest start capped at the ready time): lint min(30, 0) = 0,
    /// build 0, doc 0, so the rank decides: build 0-10, then lint (rank 20, queued before
    /// doc) 10-30; test is queued at 10 with key min(10, 10) = 10, after doc (0): doc
    /// 30-50, test 50-90. The times to feedback are FIFO's: neither pipeline is behind
    /// its schedule, so the cap leaves jobs with slack in FIFO's place.
    fn two_pipelines() -> Vec<JobRecord> {
        vec![
            ok("p1", 0, "lint", &[], 20),
            ok("p1", 0, "build", &[], 10),
            ok("p1", 0, "test", &["build"], 40),
            ok("p2", 0, "doc", &[], 20),
        ]
    }

    #[test]
    fn fifo_and_critical_path_time_to_feedback() {
        let records = two_pipelines();
        let fifo = run(&records, 1, "fcfs", Supersede::ByGroup);
        let s = spans(&fifo);
        assert_eq!(s["p1/lint"], (0.0, 20.0));
        assert_eq!(s["p1/build"], (20.0, 30.0));
        assert_eq!(s["p2/doc"], (30.0, 50.0));
        assert_eq!(s["p1/test"], (50.0, 90.0));
        let p = pipelines(&fifo);
        assert_eq!(p["p1"], (0.0, Some(90.0), "succeeded"));
        assert_eq!(p["p2"], (0.0, Some(50.0), "succeeded"));

        let capped = run(&records, 1, "critical-path", Supersede::ByGroup);
        let s = spans(&capped);
        assert_eq!(s["p1/build"], (0.0, 10.0));
        assert_eq!(s["p1/lint"], (10.0, 30.0));
        assert_eq!(s["p2/doc"], (30.0, 50.0));
        assert_eq!(s["p1/test"], (50.0, 90.0));
        let p = pipelines(&capped);
        assert_eq!(p["p1"], (0.0, Some(90.0), "succeeded"));
        assert_eq!(p["p2"], (0.0, Some(50.0), "succeeded"));

        let cp = run(
            &records,
            1,
            "critical-path-latest-start",
            Supersede::ByGroup,
        );
        let s = spans(&cp);
        assert_eq!(s["p1/build"], (0.0, 10.0));
        assert_eq!(s["p2/doc"], (10.0, 30.0));
        assert_eq!(s["p1/test"], (30.0, 70.0));
        assert_eq!(s["p1/lint"], (70.0, 90.0));
        let p = pipelines(&cp);
        assert_eq!(p["p1"], (0.0, Some(90.0), "succeeded"));
        assert_eq!(p["p2"], (0.0, Some(30.0), "succeeded"));

        // The report: TTFs (90, 50) under FIFO, (90, 30) under the latest start.
        let fifo = Report::from_facts(&fifo.facts)
            .pipelines
            .expect("pipelines");
        let cp = Report::from_facts(&cp.facts).pipelines.expect("pipelines");
        assert_eq!(
            (fifo.ttf_mean_s, fifo.ttf_p50_s, fifo.ttf_p95_s),
            (Some(70.0), Some(50.0), Some(90.0))
        );
        assert_eq!(
            (cp.ttf_mean_s, cp.ttf_p50_s, cp.ttf_p95_s),
            (Some(60.0), Some(30.0), Some(90.0))
        );
        // A pipeline job waits from when it is ready: FIFO's test from 30 to 50.
        let test = fifo_wait(&records, "p1/test");
        assert_eq!(test, 20.0);
    }

    fn fifo_wait(records: &[JobRecord], id: &str) -> f64 {
        let out = run(records, 1, "fcfs", Supersede::ByGroup);
        let r = out.facts.results.iter().find(|r| r.id == id).expect("ran");
        r.wait_s()
    }

    /// Two pushes to one branch, two runners. P1 at t = 0: `build` (100 s,
    /// interruptible), `lint` (60 s, not interruptible), `test` (50 s, needs build).
    /// P2 at t = 40: the same jobs.
    ///
    /// t = 0: build on one runner, lint on the other. t = 40: P2 supersedes P1: build is
    /// interrupted (it ran 40 s, 60 s were left), test never started (50 s); lint is not
    /// interruptible and runs to 60, when P1 ends cancelled. P2: build 40-140 (on the
    /// runner build left), lint 60-120, test 140-190: its time to feedback is 150 s.
    ///
    /// Saved: 60 + 50 = 110 runner-seconds; lost: 40.
    #[test]
    fn supersession_cancels_waiting_and_interrupts_interruptible() {
        let push = |pipe: &str, created: i64, interruptible: bool| {
            let mut jobs = vec![
                ok(pipe, created, "build", &[], 100),
                ok(pipe, created, "lint", &[], 60),
                ok(pipe, created, "test", &["build"], 50),
            ];
            for j in &mut jobs {
                let p = j.pipeline.as_mut().expect("pipeline");
                p.interruptible = interruptible && j.job_name.as_deref() == Some("build");
                j.branch = Some("feature".into());
            }
            jobs
        };
        let mut records = push("p1", 0, true);
        records.extend(push("p2", 40, true));
        let out = run(&records, 2, "fcfs", Supersede::ByGroup);
        let s = spans(&out);
        assert_eq!(s["p1/build"], (0.0, 40.0), "interrupted at 40");
        assert_eq!(
            s["p1/lint"],
            (0.0, 60.0),
            "not interruptible: runs to its end"
        );
        assert!(!s.contains_key("p1/test"), "cancelled before it started");
        assert_eq!(s["p2/build"], (40.0, 140.0));
        assert_eq!(s["p2/lint"], (60.0, 120.0));
        assert_eq!(s["p2/test"], (140.0, 190.0));
        let p = pipelines(&out);
        assert_eq!(p["p1"], (0.0, Some(60.0), "cancelled"));
        assert_eq!(p["p2"], (40.0, Some(190.0), "succeeded"));

        let rep = Report::from_facts(&out.facts).pipelines.expect("pipelines");
        assert_eq!(
            (rep.superseded, rep.superseded_jobs, rep.interrupted_jobs),
            (1, 2, 1)
        );
        assert!((rep.saved_runner_hours - 110.0 / 3600.0).abs() < 1e-12);
        assert!((rep.lost_runner_hours - 40.0 / 3600.0).abs() < 1e-12);
        // A superseded pipeline gave no feedback: only P2's 150 s counts.
        assert_eq!((rep.ttf_count, rep.ttf_mean_s), (1, Some(150.0)));
        assert_eq!((rep.cancelled, rep.succeeded), (1, 1));

        // Without supersession both run to their end and nothing is saved.
        let out = run(&records, 2, "fcfs", Supersede::Never);
        let rep = Report::from_facts(&out.facts).pipelines.expect("pipelines");
        assert_eq!(
            (rep.superseded, rep.superseded_jobs, rep.succeeded),
            (0, 0, 2)
        );
        assert_eq!(rep.saved_runner_hours, 0.0);
    }

    /// One runner. Stage 0: `build` (10 s). Stage 1: `deploy` (manual, may fail: does
    /// not hold later stages back) and `docs` (5 s). Stage 2: `notify`, recorded
    /// skipped. build 0-10, docs 10-15; deploy is never played, notify is skipped when
    /// the pipeline is created. The pipeline succeeds at 15.
    #[test]
    fn recorded_skip_and_manual_job() {
        let mut deploy = job("p", 0, "deploy", 1, None, None, Outcome::Manual);
        if let Some(p) = deploy.pipeline.as_mut() {
            p.when = When::Manual;
            p.allow_failure = true;
        }
        let records = vec![
            job("p", 0, "build", 0, None, Some(10), Outcome::Success),
            deploy,
            job("p", 0, "docs", 1, None, Some(5), Outcome::Success),
            job("p", 0, "notify", 2, None, None, Outcome::Skipped),
        ];
        let out = run(&records, 1, "fcfs", Supersede::ByGroup);
        let s = spans(&out);
        assert_eq!(s.len(), 2);
        assert_eq!(s["p/build"], (0.0, 10.0));
        assert_eq!(s["p/docs"], (10.0, 15.0));
        assert_eq!(pipelines(&out)["p"], (0.0, Some(15.0), "succeeded"));
        let rep = Report::from_facts(&out.facts);
        let p = rep.pipelines.as_ref().expect("pipelines");
        assert_eq!((p.skipped_jobs, p.manual_jobs), (1, 1));
        // Pipeline jobs that never ran are pipeline outcomes, not unsimulated records.
        assert_eq!(rep.skipped.unknown_run_time, 0);
        assert_eq!(rep.jobs, 2);
    }

    /// A failed pipeline whose later stage still ran (the trace shows it went on): the
    /// replay lets `package` run after the failed `unit`, and still reports the
    /// pipeline failed. A cancelled job that never started gets the median run time of
    /// its name elsewhere in the trace; one whose name never ran is skipped and counted.
    #[test]
    fn failures_that_went_on_and_cancelled_jobs() {
        let records = vec![
            job("a", 0, "unit", 0, None, Some(10), Outcome::Failure),
            job("a", 0, "package", 1, None, Some(5), Outcome::Success),
            job("b", 100, "e2e", 0, Some(&[]), Some(30), Outcome::Success),
            job("c", 200, "e2e", 0, Some(&[]), None, Outcome::Cancelled),
            job(
                "c",
                200,
                "never-ran",
                0,
                Some(&[]),
                None,
                Outcome::Cancelled,
            ),
        ];
        let out = run(&records, 1, "fcfs", Supersede::ByGroup);
        let s = spans(&out);
        assert_eq!(s["a/unit"], (0.0, 10.0));
        assert_eq!(s["a/package"], (10.0, 15.0));
        assert_eq!(s["c/e2e"], (200.0, 230.0), "the median of e2e's runs");
        assert!(!s.contains_key("c/never-ran"));
        let p = pipelines(&out);
        assert_eq!(p["a"], (0.0, Some(15.0), "failed"));
        assert_eq!(p["c"], (200.0, Some(230.0), "succeeded"));
        let rep = Report::from_facts(&out.facts).pipelines.expect("pipelines");
        assert_eq!((rep.median_run_time_jobs, rep.unreplayable_jobs), (1, 1));
        assert_eq!((rep.failed, rep.succeeded), (1, 2));
    }

    /// `--load 2` halves creation times: the second pipeline is created at 50, not 100.
    #[test]
    fn load_compresses_pipeline_arrivals() {
        let records = vec![ok("x", 0, "a", &[], 10), ok("y", 100, "a", &[], 10)];
        let fleet = fleet(1);
        let out = simulate(RunSpec {
            load: 2.0,
            ..RunSpec::new(&records, &fleet, "fcfs").expect("policy")
        })
        .expect("simulate");
        assert_eq!(pipelines(&out)["y"], (50.0, Some(60.0), "succeeded"));
    }

    /// With true run times the projected end at creation is exact when nothing else
    /// arrives: both pipelines of the supersession-free FIFO run above.
    #[test]
    fn clairvoyant_eta_is_exact_without_later_arrivals() {
        let records = vec![
            ok("p1", 0, "build", &[], 10),
            ok("p1", 0, "test", &["build"], 40),
        ];
        let fleet = fleet(1);
        let out = simulate(RunSpec {
            clairvoyant: true,
            ..RunSpec::new(&records, &fleet, "fcfs").expect("policy")
        })
        .expect("simulate");
        assert_eq!(out.facts.predictor, "clairvoyant");
        let p = &out.facts.pipelines.as_ref().expect("pipelines").pipelines[0];
        assert_eq!((p.eta_s, p.end_s), (Some(50.0), Some(50.0)));
        let rep = Report::from_facts(&out.facts).pipelines.expect("pipelines");
        assert_eq!(
            (rep.eta_within_10pct, rep.eta_within_60s),
            (Some(1.0), Some(1.0))
        );
    }
}

mod interface {
    use super::*;

    /// The report's pipeline fields outside checks read, by their exact names; absent
    /// without pipelines.
    #[test]
    fn json_field_names() {
        let records = vec![ok("p", 0, "a", &[], 10)];
        let out = run(&records, 1, "easy", Supersede::ByGroup);
        let json: serde_json::Value =
            serde_json::from_str(&Report::from_facts(&out.facts).to_json_pretty()).expect("json");
        let p = &json["pipelines"];
        for field in [
            "count",
            "ttf_p50_s",
            "ttf_p95_s",
            "ttf_mean_s",
            "superseded_jobs",
            "saved_runner_hours",
            "eta_within_10pct",
            "eta_within_60s",
        ] {
            assert!(p.get(field).is_some(), "pipelines.{field} missing in {p}");
        }
        assert_eq!(p["count"], 1);
        assert_eq!(p["ttf_p95_s"], 10.0);
        assert!(p["qos"]["standard"]["ttf_p95_s"].is_number());
        assert!(p["tenants"]["team"]["ttf_mean_s"].is_number());

        let mut plain = JobRecord::new("1", "t", 0);
        plain.run_s = Some(5);
        let out = run(&[plain], 1, "easy", Supersede::ByGroup);
        let json: serde_json::Value =
            serde_json::from_str(&Report::from_facts(&out.facts).to_json_pretty()).expect("json");
        assert!(json.get("pipelines").is_none());
    }

    /// A run with pipelines adds the time-to-feedback CDF to its plots and HTML
    /// report; a run without keeps the three plots it had.
    #[test]
    fn html_report_has_the_ttf_cdf() {
        use rustci_sim::plots::{RunPlot, RunPlotData};
        let records = vec![ok("p", 0, "a", &[], 10), ok("q", 5, "a", &[], 20)];
        let out = run(&records, 1, "critical-path", Supersede::ByGroup);
        let report = Report::from_facts(&out.facts);
        let data = RunPlotData::new(&out.facts, &report, &out.timeline(), 5);
        assert_eq!(data.plots().last(), Some(&RunPlot::TtfCdf));
        let html = rustci_sim::html::render(&report, &data).expect("html");
        let fig = html
            .find("<figure id=\"plot-ttf_cdf\">")
            .expect("ttf figure");
        assert!(html[fig..].contains("<svg"));
        assert!(html.contains("time to feedback p95 (s)"));

        let mut plain = JobRecord::new("1", "t", 0);
        plain.run_s = Some(5);
        let out = run(&[plain], 1, "easy", Supersede::ByGroup);
        let report = Report::from_facts(&out.facts);
        let data = RunPlotData::new(&out.facts, &report, &out.timeline(), 5);
        assert_eq!(data.plots(), RunPlot::ALL.to_vec());
    }

    /// The built-in synthetic workload runs pipelines; a `--synthetic` file turns them
    /// off with `[pipelines] enabled = false` (and keeps them without a `[pipelines]`
    /// table, or with `enabled = true`).
    #[test]
    fn synthetic_workload_has_pipelines_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let count = |args: &[&str]| -> Option<u64> {
            let mut all = vec!["run", "--days", "0.25", "--format", "json", "-q"];
            all.extend_from_slice(args);
            let o = common::sim(&all);
            assert!(o.status.success(), "{}", common::stderr(&o));
            let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
            json.get("pipelines")
                .map(|p| p["count"].as_u64().expect("count"))
        };
        assert!(count(&[]).is_some_and(|n| n > 0));
        let off = common::write(dir.path(), "off.toml", "[pipelines]\nenabled = false\n");
        assert_eq!(count(&["--synthetic", &off]), None);
        let plain = common::write(dir.path(), "plain.toml", "seed = 3\n");
        assert!(count(&["--synthetic", &plain]).is_some_and(|n| n > 0));
        let on = common::write(dir.path(), "on.toml", "[pipelines]\nenabled = true\n");
        assert!(count(&["--synthetic", &on]).is_some_and(|n| n > 0));
    }

    /// The CLI on a pipeline trace: JSON with the interface fields, `--no-supersede`,
    /// `--predictor clairvoyant` and a per-pipeline CSV.
    #[test]
    fn cli_replays_a_pipeline_trace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = dir.path().join("trace.csv");
        let mut records = vec![
            ok("p1", 0, "build", &[], 100),
            ok("p1", 0, "test", &["build"], 50),
            ok("p2", 40, "build", &[], 100),
            ok("p2", 40, "test", &["build"], 50),
        ];
        for r in &mut records {
            r.branch = Some("feature".into());
        }
        jobcsv::write_jobcsv(&trace, &records).expect("write trace");
        let trace = trace.display().to_string();
        let csv = dir.path().join("pipelines.csv").display().to_string();
        let json = |args: &[&str]| -> serde_json::Value {
            let mut all = vec!["run", "--trace", &trace, "--format", "json", "-q"];
            all.extend_from_slice(args);
            let o = common::sim(&all);
            assert!(o.status.success(), "{}", common::stderr(&o));
            serde_json::from_slice(&o.stdout).expect("json report")
        };
        let on = json(&["--predictor", "clairvoyant", "--pipelines-out", &csv]);
        assert_eq!(on["predictor"], "clairvoyant");
        assert_eq!(on["pipelines"]["count"], 2);
        // The built-in fleet has runners to spare: p1's build runs 0-100 and is not
        // interruptible, so p2 (at 40) cancels only p1's test; p1 ends (cancelled) when
        // its build ends. p2: build 40-140, test 140-190. The clairvoyant projections
        // at creation are exact: 150 and 190.
        assert_eq!(on["pipelines"]["superseded_jobs"], 1);
        let off = json(&["--no-supersede"]);
        assert_eq!(off["pipelines"]["superseded_jobs"], 0);
        let table = std::fs::read_to_string(&csv).expect("pipelines csv");
        let mut lines = table.lines();
        assert_eq!(
            lines.next(),
            Some("id,tenant,group,created_s,eta_s,end_s,state,jobs,ttf_s,wait_s")
        );
        assert_eq!(lines.next(), Some("p1,team,0,0,150,100,cancelled,2,,0"));
        assert_eq!(lines.next(), Some("p2,team,0,40,190,190,succeeded,2,150,0"));
    }
}

/// Checks what every replay must keep, from the recorded schedule.
fn check_invariants(records: &[JobRecord], out: &RunOutput) {
    let prepared = &out.prepared;
    let engine = &out.engine;
    // Every job of every pipeline reaches one terminal state (the engine refuses a
    // second one); skipped and manual jobs never ran.
    for (i, job) in prepared.jobs.iter().enumerate() {
        if job.pipeline.is_none() {
            continue;
        }
        let fate = engine.fates[i].unwrap_or_else(|| panic!("job {i} never ended"));
        if matches!(fate, Fate::Skipped | Fate::Manual) {
            assert!(engine.placements[i].is_none(), "{fate:?} job {i} ran");
        }
        if matches!(fate, Fate::Finished | Fate::Failed) {
            assert!(engine.placements[i].is_some(), "{fate:?} job {i} never ran");
        }
    }
    for (k, p) in engine.pipelines.iter().enumerate() {
        assert!(p.end.is_some(), "pipeline {k} never ended");
    }
    // No job starts before its needs have finished (explicit needs, or every job of
    // the earlier stages).
    for (pi, pipe) in prepared.pipelines.iter().enumerate() {
        let members: Vec<usize> = prepared
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.pipeline == Some(pi as u32))
            .map(|(i, _)| i)
            .collect();
        let by_name: HashMap<&str, usize> = pipe
            .spec
            .jobs
            .iter()
            .zip(&members)
            .map(|(j, &i)| (j.name.as_str(), i))
            .collect();
        for (pj, &i) in pipe.spec.jobs.iter().zip(&members) {
            let Some(start) = engine.placements[i].map(|p| p.start_ms) else {
                continue;
            };
            let needs: Vec<usize> = match &pj.needs {
                Some(n) => n.iter().map(|name| by_name[name.as_str()]).collect(),
                None => pipe
                    .spec
                    .jobs
                    .iter()
                    .zip(&members)
                    .filter(|(o, _)| o.stage < pj.stage)
                    .map(|(_, &k)| k)
                    .collect(),
            };
            for k in needs {
                if let Some(need) = engine.placements[k] {
                    assert!(
                        need.end_ms <= start,
                        "{} started at {start} before its need {} ended at {}",
                        records[prepared.jobs[i].record].id,
                        records[prepared.jobs[k].record].id,
                        need.end_ms
                    );
                }
            }
        }
    }
    // No runner over capacity: one-slot runners run one job at a time.
    let mut by_runner: HashMap<u32, Vec<(i64, i64)>> = HashMap::new();
    for p in engine.placements.iter().flatten() {
        by_runner
            .entry(p.runner.0)
            .or_default()
            .push((p.start_ms, p.end_ms));
    }
    for (r, mut spans) in by_runner {
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "runner {r} ran {:?} and {:?} at once",
                w[0],
                w[1]
            );
        }
    }
}

mod invariants {
    use super::*;

    fn replay(rel: &str, format: TraceFormat, runners: u32, load: f64, policy: &str) {
        let Some(path) = dataset(rel) else { return };
        let records = open_trace(&path, Some(format))
            .and_then(|t| t.collect_records())
            .expect("read trace");
        let fleet = fleet(runners);
        let out = simulate(RunSpec {
            load,
            ..RunSpec::new(&records, &fleet, policy).expect("policy")
        })
        .expect("simulate");
        assert!(!out.prepared.pipelines.is_empty());
        check_invariants(&records, &out);
    }

    #[test]
    fn gitlab_trace() {
        for policy in ["easy", "critical-path"] {
            replay("gitlab_datadog", TraceFormat::Gitlab, 40, 1.0, policy);
        }
    }

    #[test]
    fn flowbench_trace() {
        replay(
            "flowbench/somospie.zip",
            TraceFormat::Flowbench,
            4,
            20.0,
            "critical-path",
        );
    }

    /// A random pipeline of `n` jobs: each job in a stage, with the stage rule or
    /// explicit needs on earlier jobs, a run time, and a recorded outcome.
    fn pipeline_records() -> impl Strategy<Value = Vec<JobRecord>> {
        let one = (
            0u32..3,
            proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
            any::<bool>(),
            1i64..60,
            prop_oneof![
                6 => Just(Outcome::Success),
                1 => Just(Outcome::Failure),
                1 => Just(Outcome::Skipped),
                1 => Just(Outcome::Manual),
                1 => Just(Outcome::Cancelled),
            ],
            any::<bool>(),
        );
        let pipe = (0i64..200, 0u8..2, proptest::collection::vec(one, 1..6));
        proptest::collection::vec(pipe, 1..5).prop_map(|pipes| {
            let mut records = Vec::new();
            for (k, (created, branch, jobs)) in pipes.into_iter().enumerate() {
                let id = format!("p{k}");
                let mut stages: Vec<u32> = Vec::new();
                for (i, (stage, needs, stage_rule, run, outcome, interruptible)) in
                    jobs.into_iter().enumerate()
                {
                    // Needs only on earlier jobs of the same or an earlier stage.
                    let stage = stages.last().map_or(stage, |&s| s.max(stage));
                    let names: Vec<String> = if i == 0 {
                        Vec::new()
                    } else {
                        let mut n: Vec<String> =
                            needs.iter().map(|x| format!("j{}", x.index(i))).collect();
                        n.sort();
                        n.dedup();
                        n
                    };
                    stages.push(stage);
                    let ran = matches!(outcome, Outcome::Success | Outcome::Failure);
                    let mut r = job(
                        &id,
                        created,
                        &format!("j{i}"),
                        stage,
                        None,
                        ran.then_some(run),
                        outcome,
                    );
                    r.branch = Some(format!("b{branch}"));
                    if let Some(p) = r.pipeline.as_mut() {
                        p.needs = (!stage_rule).then_some(names);
                        p.interruptible = interruptible;
                        if outcome == Outcome::Manual {
                            p.when = When::Manual;
                            p.allow_failure = true;
                        }
                    }
                    records.push(r);
                }
            }
            records
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random pipelines with random outcomes and supersessions, on one or two
        /// runners under FIFO and critical path: every invariant holds.
        #[test]
        fn random_pipelines(records in pipeline_records(), runners in 1u32..3, cp in any::<bool>()) {
            rustci_datasets::check_pipelines(&records).expect("generated pipelines are valid");
            let policy = if cp { "critical-path" } else { "fcfs" };
            let out = run(&records, runners, policy, Supersede::ByGroup);
            check_invariants(&records, &out);
        }
    }
}

mod bad_input {
    use super::*;

    /// Writes `records` as a trace and runs the CLI on it: it must fail, and its
    /// message must contain each of `expect`.
    fn refused(records: &[JobRecord], expect: &[&str]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = dir.path().join("bad.csv");
        jobcsv::write_jobcsv(&trace, records).expect("write trace");
        let o = common::sim(&["run", "--trace", &trace.display().to_string(), "-q"]);
        assert!(!o.status.success(), "accepted a bad trace");
        let err = common::stderr(&o);
        for e in expect.iter().chain(&["bad.csv"]) {
            assert!(err.contains(e), "{err:?} does not name {e:?}");
        }
    }

    #[test]
    fn cyclic_dag() {
        refused(
            &[ok("p", 0, "a", &["b"], 10), ok("p", 0, "b", &["a"], 10)],
            &["pipeline p", "p/a", "cycle"],
        );
    }

    #[test]
    fn missing_need() {
        refused(
            &[ok("p", 0, "a", &["nope"], 10)],
            &["pipeline p", "p/a", "\"nope\""],
        );
    }

    #[test]
    fn duplicate_job_name() {
        let mut b = ok("p", 0, "a", &[], 10);
        b.id = "p/second".into();
        refused(
            &[ok("p", 0, "a", &[], 10), b],
            &["pipeline p", "p/second", "\"a\""],
        );
    }

    /// A pipeline line with a bad time: the file and line, and the column.
    #[test]
    fn bad_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = dir.path().join("bad.csv");
        jobcsv::write_jobcsv(&trace, &[ok("p", 0, "a", &[], 10)]).expect("write trace");
        let text = std::fs::read_to_string(&trace).expect("read");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let header: Vec<&str> = lines[0].split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == "pipeline_created_s")
            .expect("column");
        let mut cells: Vec<String> = lines[1].split(',').map(str::to_string).collect();
        cells[col] = "yesterday".into();
        lines[1] = cells.join(",");
        let trace = common::write(dir.path(), "bad.csv", &(lines.join("\n") + "\n"));
        let o = common::sim(&["run", "--trace", &trace, "-q"]);
        assert!(!o.status.success());
        let err = common::stderr(&o);
        for e in ["bad.csv", ":2", "pipeline_created_s"] {
            assert!(err.contains(e), "{err:?} does not name {e:?}");
        }
    }
}

mod history {
    use std::sync::{Arc, Mutex};

    use rustci_scheduler::{Estimate, JobSpec, Millis, Predictor};

    use super::*;

    /// What a predictor was told, in order: `(observed?, job tag)`, the tag being the
    /// job's requested time in seconds.
    type Log = Arc<Mutex<Vec<(bool, i64)>>>;

    struct Recording(Log);

    impl Predictor for Recording {
        fn preview(&self, job: &JobSpec) -> Estimate {
            let ms = job.requested_ms.unwrap_or(1000);
            Estimate {
                point_ms: ms,
                upper_ms: ms,
            }
        }
        fn estimate(&mut self, job: &JobSpec) -> Estimate {
            self.0
                .lock()
                .expect("log")
                .push((false, job.requested_ms.unwrap_or(0) / 1000));
            self.preview(job)
        }
        fn observe(&mut self, job: &JobSpec, _run: Millis, _at: Millis, _failed: bool) {
            self.0
                .lock()
                .expect("log")
                .push((true, job.requested_ms.unwrap_or(0) / 1000));
        }
        fn name(&self) -> &str {
            "recording"
        }
    }

    /// Ten independent jobs and a pipeline that straddles the cut: with a fraction of
    /// 0.5 the first five records by submit time are learned (observed, in the order
    /// they ended) before anything else, none of them is replayed, nothing replayed is
    /// observed before it ran, and the pipeline that began before the cut is left out.
    #[test]
    fn nothing_from_the_replayed_span_leaks_into_training() {
        let mut records: Vec<JobRecord> = (0..10)
            .map(|i| {
                let mut r = JobRecord::new(format!("j{i}"), "t", i * 100);
                // Job i ends at i*100 + run; the first ones end in reverse order.
                r.run_s = Some(if i < 5 { 500 - i * 100 } else { 10 });
                r.wait_s = Some(0);
                r.requested_s = Some(i + 1);
                r.outcome = Outcome::Success;
                r
            })
            .collect();
        // A pipeline with one job just before the cut and one after it.
        let mut a = ok("p", 390, "a", &[], 1);
        a.requested_s = Some(100);
        let mut b = ok("p", 390, "b", &[], 1);
        b.submit_s = 610;
        b.requested_s = Some(101);
        records.push(a);
        records.push(b);
        // 12 records, round(12 * 0.5) = 6 past: j0..j4 (0..400) and p/a (390).
        let log: Log = Arc::default();
        let fleet = fleet(1);
        let out = simulate(RunSpec {
            predictor: Box::new(Recording(log.clone())),
            history_fraction: Some(0.5),
            ..RunSpec::new(&records, &fleet, "fcfs").expect("policy")
        })
        .expect("simulate");
        let log = log.lock().expect("log").clone();
        // Learned first, each estimated then observed, in order of their ends: j0..j4
        // end at 500, 500, 500, 500, 500 + ... (i*100 + 500 - i*100 = 500): ties by
        // input order; p/a (390 + 1) ends first.
        let learned: Vec<i64> = log[..12].iter().filter(|e| e.0).map(|e| e.1).collect();
        assert_eq!(learned, vec![100, 1, 2, 3, 4, 5]);
        let past = [1, 2, 3, 4, 5, 100, 101];
        for &(_, tag) in &log[12..] {
            assert!(
                !past.contains(&tag),
                "a job of the past ({tag}) was replayed"
            );
        }
        let ran: Vec<&str> = out.facts.results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ran, vec!["j5", "j6", "j7", "j8", "j9"]);
        let h = out.facts.history.as_ref().expect("history");
        assert_eq!(
            (h.records, h.learned_jobs, h.cut_pipeline_records),
            (6, 6, 1)
        );
        assert!(out.facts.pipelines.is_none());
    }
}
