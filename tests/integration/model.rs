//! `rustci retrain` (the JSON interface outside checks use, bad input, the history
//! `rustci serve` wrote on each store) and `rustci serve --model DIR` (estimates from the
//! model, a new version picked up without a restart).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::bins::Bin;
use crate::common::OwnerChannel;
use crate::stores::{on_both_stores, Backend, TestStore};
use common::{list_all, rustci, wait_for, Procs};
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;
use rustci_control::server::live::ManualClock;
use rustci_control::server::{start_with_clock, RunningServer, ServeOptions};
use rustci_datasets::testdata::dataset;
use rustci_datasets::JobRecord;

#[test]
fn retrain_prints_the_stable_json_interface_and_writes_a_version() {
    let Some(kth) = dataset("pwa_swf/KTH-SP2-1996-2.1-cln.swf.gz") else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("models");
    let kth = kth.to_str().expect("utf-8 path");
    let dir_s = dir.to_str().expect("utf-8 path");
    let run = rustci(["retrain", "--from", kth, "--out", dir_s, "--format", "json"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Not a terminal: no progress output on stderr.
    assert!(
        run.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON on stdout");
    let mae = j["model"]["mae_s"].as_f64().expect("model.mae_s");
    let cov = j["model"]["p90_coverage"]
        .as_f64()
        .expect("model.p90_coverage");
    let req = j["baselines"]["requested"]["mae_s"]
        .as_f64()
        .expect("requested");
    let ts = j["baselines"]["tsafrir"]["mae_s"]
        .as_f64()
        .expect("tsafrir");
    let l5 = j["baselines"]["last5_median"]["mae_s"]
        .as_f64()
        .expect("last5");
    assert!(
        mae < req && mae < ts,
        "model {mae} vs requested {req}, tsafrir {ts}"
    );
    assert!(l5 > 0.0 && (0.8..=0.97).contains(&cov), "coverage {cov}");
    let artifact = j["artifact"].as_str().expect("artifact path");
    assert!(Path::new(artifact).is_file());
    assert_eq!(j["written"], true);
    // An SWF log: the held-out jobs were replayed on its MaxProcs, every candidate has
    // a figure and the choice is the lowest (on the other scale only by more than its
    // standard error).
    let planning = &j["planning"];
    assert_eq!(planning["chosen"], true, "{planning}");
    assert!(planning["replay"]["machine"]
        .as_str()
        .is_some_and(|m| m.contains("100 processors")));
    let figures: Vec<(String, String, String, f64, f64)> = planning["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| {
            (
                c["estimate"].as_str().expect("estimate").to_string(),
                c["correction"].as_str().expect("correction").to_string(),
                c["target"].as_str().expect("target").to_string(),
                // The choice is made on the typical day's figure (the mean is shown).
                c["bsld_typical_day"].as_f64().expect("bsld_typical_day"),
                // Three replays: a standard error for each.
                c["bsld_typical_day_se"]
                    .as_f64()
                    .expect("bsld_typical_day_se"),
            )
        })
        .collect();
    // Fifteen usages on the square-root scale, and on the log scale unless its held-out
    // MAE was too far above (the reason then says so).
    let scales: std::collections::BTreeSet<&str> = figures.iter().map(|f| f.2.as_str()).collect();
    assert_eq!(figures.len(), 15 * scales.len(), "{planning}");
    for p in ["p10", "p20", "p30", "p40"] {
        assert!(
            figures.iter().any(|f| f.0 == p && f.1 == "request"),
            "{p} with the request replayed: {planning}"
        );
    }
    assert!(scales.contains("sqrt"), "{planning}");
    if scales.len() == 1 {
        assert!(planning["reason"]
            .as_str()
            .is_some_and(|r| r.contains("log scale not replayed")));
    }
    assert_eq!(
        planning["replay"]["loads"].as_array().map(Vec::len),
        Some(3)
    );
    let lowest = |scale: Option<&str>| {
        figures
            .iter()
            .filter(|f| scale.is_none_or(|s| f.2 == s))
            .min_by(|a, b| a.3.total_cmp(&b.3))
            .expect("figures")
    };
    let chosen = figures
        .iter()
        .find(|f| {
            planning["estimate"] == f.0.as_str()
                && planning["correction"] == f.1.as_str()
                && planning["target"] == f.2.as_str()
        })
        .expect("the choice is a candidate");
    // The lowest of its scale; the log scale only if it beats the square root's best by
    // more than its standard error over the replays, else the square root's best.
    assert_eq!(chosen.3, lowest(Some(&chosen.2)).3, "{planning}");
    let overall = lowest(None);
    if chosen.2 == "log" {
        assert_eq!(chosen.3, overall.3, "{planning}");
        assert!(lowest(Some("sqrt")).3 > chosen.3 + chosen.4, "{planning}");
    } else if overall.2 == "log" && overall.3 < chosen.3 {
        assert!(chosen.3 <= overall.3 + overall.4, "{planning}");
        assert!(planning["reason"]
            .as_str()
            .is_some_and(|r| r.contains("kept over")));
    }
    assert!(planning["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .all(|c| c["bsld_mean"].as_f64().is_some_and(|m| m >= 1.0)));

    // Same history again: nothing new to learn, the current version stays.
    let again = rustci(["retrain", "--from", kth, "--out", dir_s, "--format", "json"]);
    assert!(again.status.success());
    let j2: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(j2["written"], false, "{j2}");
    assert_eq!(j2["current"]["same_history"], true);
    assert_eq!(j2["artifact"].as_str(), Some(artifact));
    // --force writes the next version.
    let forced = rustci([
        "retrain", "--from", kth, "--out", dir_s, "--format", "json", "--force",
    ]);
    let j3: serde_json::Value = serde_json::from_slice(&forced.stdout).expect("JSON");
    assert!(j3["artifact"]
        .as_str()
        .expect("path")
        .ends_with("v000002.model"));

    // Trained on the first half only, then on the whole log: compared with the first
    // version on the latest jobs it never saw.
    let half = out.path().join("half");
    let half_s = half.to_str().expect("utf-8");
    let h = rustci([
        "retrain",
        "--from",
        kth,
        "--out",
        half_s,
        "--history-fraction",
        "0.5",
        "-q",
    ]);
    assert!(h.status.success());
    let full = rustci([
        "retrain", "--from", kth, "--out", half_s, "--format", "json",
    ]);
    let j4: serde_json::Value = serde_json::from_slice(&full.stdout).expect("JSON");
    assert!(
        j4["current"]["compared_on_jobs"]
            .as_u64()
            .expect("compared")
            >= 50,
        "{j4}"
    );
    assert!(j4["current"]["mae_s"].as_f64().is_some());

    // The simulator uses the same artifact.
    let sim_bin = Bin::RustciSim.path().to_path_buf();
    let sim = Command::new(&sim_bin)
        .args([
            "run",
            "--trace",
            kth,
            "--trace-format",
            "swf",
            "--processors",
            "100",
        ])
        .args(["--policy", "easy++", "--format", "json", "-q"])
        .arg("--predictor")
        .arg(format!("model:{dir_s}"))
        .output();
    // rustci-sim lives in another package: it is there when the workspace was built.
    match sim {
        Ok(sim) => {
            assert!(
                sim.status.success(),
                "{}",
                String::from_utf8_lossy(&sim.stderr)
            );
            let r: serde_json::Value = serde_json::from_slice(&sim.stdout).expect("sim JSON");
            assert_eq!(r["predictor"], "model:v000002");
            assert_eq!(r["model_usage"]["estimate_from"], "artifact", "{r}");
            assert_eq!(r["model_usage"]["correction_from"], "artifact", "{r}");
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: rustci-sim part ({}: {e}); build the workspace",
                sim_bin.display()
            );
        }
    }
}

/// Jobs of the history serve writes for retrain: enough for a train/test split.
const SERVED_JOBS: usize = 60;

on_both_stores!(retrain_trains_on_the_history_serve_wrote);

/// `rustci serve` (a child process, on the test's store) runs jobs of two kinds (quick
/// and slow, two tenants) through a reference runner; `rustci retrain --from` that store
/// (its data directory, or `mongodb://HOST:PORT/DB`), beside the running server, trains
/// a version on exactly the records of those jobs.
async fn retrain_trains_on_the_history_serve_wrote(backend: Backend, test: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let mut procs = Procs::new();
    let c = store.serve_with_runner(&mut procs, dir.path()).await;
    let mut submitted = std::collections::BTreeSet::new();
    for i in 0..SERVED_JOBS {
        let (job_name, command) = if i % 3 == 0 {
            ("slow", "sleep 1.2")
        } else {
            ("quick", "sleep 0.05")
        };
        let job = c
            .jobs
            .clone()
            .submit_job(SubmitJobRequest {
                request_id: format!("h-{i}"),
                tenant: if i % 2 == 0 { "alpha" } else { "beta" }.into(),
                labels: vec!["linux".into()],
                command: command.into(),
                job_name: job_name.into(),
                ..Default::default()
            })
            .await
            .expect("submit")
            .into_inner();
        let id = job.name.strip_prefix("jobs/").expect("jobs/ID").to_string();
        submitted.insert(id);
    }
    wait_for(
        "every job to succeed",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let c = c.clone();
            async move {
                let done = list_all(&c, "", JobState::Succeeded, 1000)
                    .await
                    .map_err(|s| s.to_string())?
                    .len();
                if done == SERVED_JOBS {
                    Ok(())
                } else {
                    Err(format!("{done} succeeded"))
                }
            }
        },
    )
    .await;

    // The store's history is exactly the jobs served (once durable: the server commits
    // in groups).
    let source = store.history_source();
    let history = store.history_of(SERVED_JOBS).await;
    let ids: std::collections::BTreeSet<String> = history.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, submitted, "the history is the jobs served");
    let slow = history
        .iter()
        .filter(|r| r.job_name.as_deref() == Some("slow"))
        .collect::<Vec<_>>();
    assert_eq!(slow.len(), SERVED_JOBS / 3);
    assert!(
        slow.iter().all(|r| r.run_s >= Some(1)),
        "slow jobs ran over a second: {slow:?}"
    );

    let models = dir.path().join("models");
    let models_s = models.to_str().expect("utf-8 path");
    let run = rustci([
        "retrain", "--from", &source, "--out", models_s, "--format", "json",
    ]);
    assert!(
        run.status.success(),
        "retrain --from {source}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON on stdout");
    assert_eq!(j["jobs"], SERVED_JOBS, "trained on the served jobs: {j}");
    assert_eq!(j["skipped_no_run_time"], 0, "{j}");
    assert_eq!(
        j["train_jobs"].as_u64().expect("train_jobs") + j["test_jobs"].as_u64().expect("test_jobs"),
        SERVED_JOBS as u64,
        "{j}"
    );
    assert_eq!(j["written"], true, "{j}");
    let artifact = j["artifact"].as_str().expect("artifact path");
    assert!(Path::new(artifact).is_file(), "{artifact}");
    assert!(models.join("CURRENT").is_file());
    procs.assert_alive();
    drop(procs);
    store.finish().await;
}

#[test]
fn retrain_on_ci_builds_reports_no_requested_baseline() {
    let Some(gha) = dataset("gha_build_duration") else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let run = rustci([
        "retrain",
        "--from",
        gha.to_str().expect("utf-8"),
        "--trace-format",
        "gha",
        "--out",
        out.path().to_str().expect("utf-8"),
        "--format",
        "json",
        "--plots",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    assert!(j["baselines"]["requested"].is_null());
    // Not an SWF log and no --fleet: no machine to replay on, so no choice, and why.
    let planning = &j["planning"];
    assert_eq!(planning["chosen"], false, "{planning}");
    assert_eq!(
        (&planning["estimate"], &planning["correction"]),
        (&"point".into(), &"upper".into())
    );
    let why = planning["reason"].as_str().expect("reason");
    assert!(
        why.contains("no machine") && why.contains("--fleet"),
        "{why}"
    );
    let (_, artifact) = rustci_models::load_current(out.path()).expect("written");
    assert!(artifact.planning.is_none());
    assert!(j["baselines"]["tsafrir"]["mae_s"].as_f64().is_some());
    let plots = j["plots"].as_array().expect("plots");
    assert_eq!(plots.len(), 2);
    for p in plots {
        let text = std::fs::read_to_string(p.as_str().expect("path")).expect("svg");
        assert!(text.starts_with("<svg") && text.contains("</svg>"));
    }
}

#[test]
fn retrain_bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.swf");
    std::fs::write(
        &bad,
        "1 0 10 100 4 -1 -1 4 200 -1 1 7 1 -1 1 -1 -1 -1\n2 5 x 100\n",
    )
    .expect("write");
    let run = rustci([
        "retrain",
        "--from",
        bad.to_str().expect("utf-8"),
        "--out",
        dir.path().join("m").to_str().expect("utf-8"),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("bad.swf") && err.contains(":2"), "{err}");

    // Too little history: says so, writes nothing.
    let few = dir.path().join("few.swf");
    std::fs::write(
        &few,
        "1 0 10 100 4 -1 -1 4 200 -1 1 7 1 -1 1 -1 -1 -1\n2 5 1 100 4 -1 -1 4 200 -1 1 7 1 -1 1 -1 -1 -1\n",
    )
    .expect("write");
    let m = dir.path().join("m2");
    let run = rustci([
        "retrain",
        "--from",
        few.to_str().expect("utf-8"),
        "--out",
        m.to_str().expect("utf-8"),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("not enough history"), "{err}");
    assert!(!m.join("CURRENT").exists());
}

/// A history where every job runs `share` of its 1,000 s request.
fn history(share: f64) -> Vec<JobRecord> {
    let mut seed: u64 = 42;
    (0..400)
        .map(|i| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = 0.9 + 0.2 * ((seed >> 33) as f64 / (1u64 << 31) as f64);
            let mut r = JobRecord::new(format!("{i}"), format!("t{}", i % 4), i * 600);
            r.requested_s = Some(1000);
            r.wait_s = Some(0);
            r.run_s = Some((1000.0 * share * noise).round() as i64);
            r
        })
        .collect()
}

fn train_into(dir: &Path, share: f64) {
    common::retrain_into(dir, &history(share));
}

async fn predicted_run_ms(api: &mut JobServiceClient<OwnerChannel>, i: u32) -> i64 {
    let job = api
        .submit_job(SubmitJobRequest {
            request_id: format!("r{i}"),
            tenant: "newcomer".into(),
            command: "true".into(),
            requested_ms: 1_000_000,
            ..Default::default()
        })
        .await
        .expect("submit")
        .into_inner();
    job.predicted_run_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_uses_the_model_and_switches_versions_without_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let models = tmp.path().join("models");
    train_into(&models, 0.1);
    let (srv, ch) = common::serve_virtual(
        ServeOptions {
            data_dir: tmp.path().join("data"),
            model_dir: Some(models.clone()),
            model_poll_ms: 50,
            ..ServeOptions::default()
        },
        Arc::new(ManualClock::new(1_700_000_000_000)),
    )
    .await;
    let mut api = JobServiceClient::new(ch);
    // Jobs that use a tenth of their request: the estimate is far below it.
    let first = predicted_run_ms(&mut api, 0).await;
    assert!(first < 500_000, "estimate {first} ms");

    // A new version (jobs use all of their request) is picked up while serving.
    train_into(&models, 1.0);
    let mut i = 1;
    let switched = common::wait_for(
        "the new model version",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            i += 1;
            let mut api = api.clone();
            let n = i;
            async move {
                let est = predicted_run_ms(&mut api, n).await;
                if est > 500_000 {
                    Ok(est)
                } else {
                    Err(format!("estimate still {est} ms"))
                }
            }
        },
    )
    .await;
    assert!(switched <= 1_000_000, "capped at the request: {switched}");

    // A corrupt newer version is refused; the one in use stays.
    std::fs::write(
        models.join("v000009.model"),
        b"rustci-model 1 fnv64:0 bytes:3\n{}",
    )
    .expect("write");
    std::fs::write(models.join("CURRENT"), "v000009.model\n").expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = predicted_run_ms(&mut api, 999).await;
    assert!(after > 500_000, "still the good version: {after}");
    srv.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_missing_or_corrupt_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("none");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let opts = |dir: &Path| ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: tmp.path().join("data"),
        model_dir: Some(dir.to_path_buf()),
        ..ServeOptions::default()
    };
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let err = start_with_clock(opts(&empty), clock.clone())
        .await
        .expect_err("no model");
    assert!(format!("{err:#}").contains("no model artifact"), "{err:#}");

    let bad = tmp.path().join("bad");
    train_into(&bad, 0.5);
    let current = std::fs::read_to_string(bad.join("CURRENT")).expect("current");
    let file = bad.join(current.trim());
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = start_with_clock(opts(&bad), clock)
        .await
        .expect_err("truncated");
    assert!(format!("{err:#}").contains("truncated"), "{err:#}");
}

/// `serve --model models` on `dir`'s data dir, on a virtual clock.
async fn serve_model(
    dir: &Path,
    models: &Path,
    clock: Arc<ManualClock>,
) -> (RunningServer, OwnerChannel) {
    common::serve_virtual(
        ServeOptions {
            data_dir: dir.join("data"),
            model_dir: Some(models.to_path_buf()),
            ..ServeOptions::default()
        },
        clock,
    )
    .await
}

fn steady_job(i: u32) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: format!("s{i}"),
        tenant: "steady".into(),
        job_name: "build".into(),
        command: "true".into(),
        requested_ms: 1_000_000,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimates_after_a_restart_remember_the_run_times_seen_before() {
    restart_keeps_estimates(900_000).await;
}

/// Jobs that end at the instant they were submitted: a restart replays each one's
/// submission before its end, so its residual still counts for its key's margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimates_after_a_restart_remember_instant_runs_too() {
    restart_keeps_estimates(0).await;
}

/// Six runs of one job of `run_ms` each, one after another; then the same job's estimate
/// and P90 before and after a restart at the same instant.
async fn restart_keeps_estimates(run_ms: i64) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let models = tmp.path().join("models");
    // The trained model: each user's jobs use their own share of the request, so the
    // user's history is what predicts a run time.
    let varied: Vec<JobRecord> = (0..800)
        .map(|i| {
            let share = (i % 8 + 1) as f64 / 10.0;
            let mut r = JobRecord::new(format!("{i}"), format!("u{}", i % 8), i * 600);
            r.job_name = Some("build".into());
            r.requested_s = Some(1000);
            r.wait_s = Some(0);
            r.run_s = Some((1000.0 * share) as i64 + i % 7);
            r
        })
        .collect();
    common::retrain_into(&models, &varied);
    let t0 = 1_700_000_000_000;
    let clock = Arc::new(ManualClock::new(t0));
    let (srv, ch) = serve_model(tmp.path(), &models, clock.clone()).await;
    let mut api = JobServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch);
    run.register_runner(RegisterRunnerRequest {
        runner_id: "r0".into(),
        pool: "any".into(),
        labels: vec![],
        slots: 1,
    })
    .await
    .expect("register");
    let fresh = api
        .submit_job(steady_job(0))
        .await
        .expect("submit")
        .into_inner();
    // This job runs `run_ms` (90% of its request, or nothing), six times over, one after
    // another.
    let mut now = t0;
    for i in 0..6 {
        let job = if i == 0 {
            fresh.clone()
        } else {
            api.submit_job(steady_job(i))
                .await
                .expect("submit")
                .into_inner()
        };
        let lease = common::lease_one(&mut run, "r0").await;
        assert_eq!(
            lease.job.as_ref().map(|j| j.name.clone()),
            Some(job.name.clone())
        );
        now += run_ms;
        clock.set(now);
        common::complete_ok(&mut run, "r0", &lease).await;
    }
    now += 60_000;
    clock.set(now);
    let job = api
        .submit_job(steady_job(100))
        .await
        .expect("submit")
        .into_inner();
    let (before, before_upper) = (job.predicted_run_ms, job.predicted_run_upper_ms);
    assert!(
        (before - run_ms).abs() < (fresh.predicted_run_ms - run_ms).abs() / 2,
        "the history moved the estimate towards {run_ms} ms: {} ms with none, {before} ms \
         after six such runs",
        fresh.predicted_run_ms
    );
    srv.stop().await.expect("stop");

    // Restarted at the same instant: the same job gets the same estimate.
    let (srv, ch) = serve_model(tmp.path(), &models, clock.clone()).await;
    let job = JobServiceClient::new(ch)
        .submit_job(steady_job(101))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(
        job.predicted_run_ms, before,
        "the estimate after the restart"
    );
    // And the same P90: the job's key has its own margin from its six runs, measured
    // again against what was predicted at each one's submission.
    assert_eq!(
        job.predicted_run_upper_ms, before_upper,
        "the upper quantile after the restart"
    );
    srv.stop().await.expect("stop");
}
