//! Capacity planning through the binary: `rustci-sim sweep` (one row per point, the same
//! rows whatever the threads do) and `rustci-sim plan` (a fleet that meets the target and
//! still meets it when replayed with `run`; a clear refusal when none can).

use std::path::Path;

mod common;
use common::{sim, stderr, write};

const GRID: &str = "\
scale = [0.5, 1.0]
policy = [\"easy\", \"fairshare\"]
load = [1.0, 3.0]

[workload]
synthetic = { seed = 3, days = 1, jobs_per_day = 4000, pipelines = { enabled = false } }
";

fn sweep(grid: &str, out: &Path, threads: &str) -> (String, serde_json::Value) {
    let o = sim(&[
        "sweep",
        "--grid",
        grid,
        "--out",
        &out.display().to_string(),
        "--threads",
        threads,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The cost vs p95 frontier comes with every sweep, as SVG and PNG.
    let svg = std::fs::read_to_string(out.join("frontier.svg")).expect("frontier.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let png = std::fs::read(out.join("frontier.png")).expect("frontier.png");
    assert!(png.len() > 1000 && png.starts_with(b"\x89PNG"));
    let html = std::fs::read_to_string(out.join("sweep.html")).expect("sweep.html");
    assert!(
        html.contains("id=\"plot-frontier\"")
            && html.contains("<svg")
            && html.ends_with("</html>\n")
    );
    let csv = std::fs::read_to_string(out.join("sweep.csv")).expect("sweep.csv");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).expect("json"))
            .expect("sweep.json is JSON");
    assert_eq!(
        Some(html.matches("<tr><td>").count()),
        json.as_array().map(Vec::len),
        "one table row per point"
    );
    (csv, json)
}

#[test]
fn sweep_writes_one_row_per_point_the_same_on_every_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grid = write(dir.path(), "grid.toml", GRID);
    let (csv1, json1) = sweep(&grid, &dir.path().join("a"), "2");
    let (csv2, json2) = sweep(&grid, &dir.path().join("b"), "1");
    assert_eq!(csv1, csv2, "the CSV depends on the threads");
    assert_eq!(json1, json2, "the JSON depends on the threads");

    let lines: Vec<&str> = csv1.lines().collect();
    assert_eq!(lines.len(), 1 + 8, "a header and one row per point");
    let header: Vec<&str> = lines[0].split(',').collect();
    for col in [
        "point",
        "scale",
        "runners.linux",
        "policy",
        "load",
        "jobs",
        "runner_hours",
        "cost",
        "wait_mean_s",
        "wait_p95_s",
        "bsld_mean",
        "qos.standard.wait_p95_s",
        "qos.standard.within_target",
        "qos.urgent.wait_p95_s",
    ] {
        assert!(header.contains(&col), "missing column {col}: {header:?}");
    }
    for (i, line) in lines[1..].iter().enumerate() {
        assert_eq!(line.split(',').count(), header.len(), "row {i}: {line}");
        assert!(
            line.starts_with(&format!("{i},")),
            "rows in point order: {line}"
        );
    }

    let rows = json1.as_array().expect("an array of rows");
    assert_eq!(rows.len(), 8);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["point"], i);
        assert!(r["jobs"].as_u64().is_some_and(|n| n > 0));
        assert!(r["qos"]["standard"]["wait_p95_s"].is_number());
        assert!(r["qos"]["standard"]["within_target"].is_number());
    }
    // Axis order: scale outermost, load innermost.
    assert_eq!(rows[0]["scale"], 0.5);
    assert_eq!(rows[1]["load"], 3.0);
    assert_eq!(rows[2]["policy"], "fairshare");
    assert_eq!(rows[4]["scale"], 1.0);
    assert_eq!(rows[4]["runners"]["linux"], 220);
    assert_eq!(rows[0]["runners"]["linux"], 110);
    // Triple the load on half the fleet waits longer than the plain load on all of it.
    let p95 = |r: &serde_json::Value| r["wait_p95_s"].as_f64().unwrap_or(f64::NAN);
    assert!(p95(&rows[1]) > p95(&rows[4]), "{} vs {}", rows[1], rows[4]);
}

/// With pipelines (the synthetic workload's default) each point's JSON row carries the
/// run report's `pipelines` figures, the CSV their `pipelines.*` columns, and the page a
/// time-to-feedback CDF for each fleet size with one curve per policy; a grid whose
/// workload turns pipelines off has none of them.
#[test]
fn sweep_with_pipelines_draws_time_to_feedback_per_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workload = "[workload]\nsynthetic = { seed = 3, days = 0.5, jobs_per_day = 4000";
    let axes = "scale = [0.05, 1.0]\npolicy = [\"easy\", \"critical-path\"]\n";
    let grid = write(
        dir.path(),
        "pipelines.toml",
        &format!("{axes}{workload} }}\n"),
    );
    let out = dir.path().join("on");
    let (csv, json) = sweep(&grid, &out, "2");
    let (csv1, json1) = sweep(&grid, &dir.path().join("on1"), "1");
    assert_eq!(
        (&csv, &json),
        (&csv1, &json1),
        "the rows depend on the threads"
    );
    let rows = json.as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    for r in rows {
        let p = &r["pipelines"];
        assert!(p["count"].as_u64().is_some_and(|n| n > 0), "{r}");
        let (p50, p95) = (p["ttf_p50_s"].as_f64(), p["ttf_p95_s"].as_f64());
        assert!(p50.is_some_and(|x| x > 0.0) && p95 >= p50, "{p}");
        assert!(p["ttf_mean_s"].is_number() && p["saved_runner_hours"].is_number());
        assert!(p["superseded_jobs"].is_u64(), "{p}");
        // Sweeps skip the ETA projection.
        assert!(p["eta_within_10pct"].is_null() && p["eta_within_60s"].is_null());
    }
    // A twentieth of the fleet keeps pipelines waiting longer than the whole of it.
    let p95 = |i: usize| {
        rows[i]["pipelines"]["ttf_p95_s"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    assert!(p95(0) > p95(2), "{} vs {}", rows[0], rows[2]);
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    for col in [
        "pipelines.count",
        "pipelines.ttf_mean_s",
        "pipelines.ttf_p95_s",
    ] {
        assert!(header.contains(&col), "missing column {col}: {header:?}");
    }
    let html = std::fs::read_to_string(out.join("sweep.html")).expect("sweep.html");
    for (i, runners) in [(0, "runners (x0.05)"), (1, "276 runners (x1)")] {
        let at = html
            .find(&format!("id=\"plot-ttf-cdf-{i}\""))
            .unwrap_or_else(|| panic!("no time-to-feedback CDF {i} on the page"));
        let figure = &html[at..at + html[at..].find("</figure>").expect("figure ends")];
        assert!(figure.contains(runners), "{i}: caption names the setting");
        assert!(figure.contains("<svg"), "{i}: no plot");
        // One line per policy (and, with a font, one in the legend each).
        assert!(figure.matches("<polyline").count() >= 2, "{i}: {figure}");
        if figure.contains("<text") {
            for policy in ["easy (", "critical-path ("] {
                assert!(figure.contains(policy), "{i}: no curve for {policy}");
            }
        }
    }
    assert!(!html.contains("plot-ttf-cdf-2"), "one CDF per fleet size");

    let grid = write(
        dir.path(),
        "plain.toml",
        &format!("{axes}{workload}, pipelines = {{ enabled = false }} }}\n"),
    );
    let out = dir.path().join("off");
    let (csv, json) = sweep(&grid, &out, "2");
    let rows = json.as_array().expect("rows");
    assert!(rows.iter().all(|r| r.get("pipelines").is_none()), "{json}");
    assert!(!csv.contains("pipelines."));
    let html = std::fs::read_to_string(out.join("sweep.html")).expect("sweep.html");
    assert!(!html.contains("plot-ttf-cdf"));
}

#[test]
fn sweep_refuses_a_bad_grid_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, field) in [
        ("load = [1, -2]\n", "load[1]"),
        ("policy = [\"easy\", \"lottery\"]\n", "policy[1]"),
        ("runners = [{ solaris = 2 }]\n", "runners[0].solaris"),
        ("loads = [1]\n", "loads"),
    ] {
        let grid = write(dir.path(), "bad.toml", text);
        let o = sim(&[
            "sweep",
            "--grid",
            &grid,
            "--out",
            &dir.path().join("out").display().to_string(),
        ]);
        assert!(!o.status.success(), "{text}");
        assert!(stderr(&o).contains(field), "{text}: {}", stderr(&o));
    }
}

#[test]
fn plan_finds_a_fleet_whose_replay_meets_the_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("planned.toml").display().to_string();
    let workload = ["--days", "1", "--jobs-per-day", "4000", "--seed", "2"];
    let mut args = vec![
        "plan",
        "--target",
        "standard:p95<=120",
        "--target",
        "urgent:p95<=30s",
        "--format",
        "json",
        "--fleet-out",
        &out,
        "-q",
    ];
    args.extend(workload);
    let o = sim(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan JSON");
    let targets = plan["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 2);
    for t in targets {
        assert!(t["margin_s"].as_f64().is_some_and(|m| m >= 0.0), "{t}");
    }
    assert!(plan["cost"].as_f64().is_some_and(|c| c > 0.0));
    assert!(plan["report"]["qos"]["standard"]["wait_p95_s"].is_number());
    // The search shrinks the built-in 276-runner fleet for this light day.
    let total = plan["total_runners"].as_u64().expect("total_runners");
    assert!(total < 276, "{total}");

    let report = replay(&out, &workload);
    let p95 = |class: &str| report["qos"][class]["wait_p95_s"].as_f64().expect("p95");
    assert!(p95("standard") <= 120.0, "{report}");
    assert!(p95("urgent") <= 30.0, "{report}");
    assert_eq!(
        report["cost"], plan["cost"],
        "the replay is the planned run"
    );
}

#[test]
fn plan_finds_an_autoscaler_setting_whose_replay_meets_the_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = concat!(env!("CARGO_MANIFEST_DIR"), "/fleets/autoscale-ci.toml");
    let workload = ["--days", "1", "--jobs-per-day", "4000"];
    // Reactive plans the idle timeout, predictive the target_scale.
    for (policy, knob) in [
        ("reactive", "idle_timeout_s"),
        ("predictive", "target_scale"),
    ] {
        let out = dir
            .path()
            .join(format!("{policy}.toml"))
            .display()
            .to_string();
        let mut args = vec![
            "plan",
            "--fleet",
            fleet,
            "--autoscaler",
            policy,
            "--target",
            "standard:p95<=60",
            "--format",
            "json",
            "--fleet-out",
            &out,
            "-q",
        ];
        args.extend(workload);
        let o = sim(&args);
        assert!(o.status.success(), "{policy}: {}", stderr(&o));
        let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan JSON");
        assert_eq!(plan["autoscaler"], policy);
        assert!(plan[knob].is_number(), "{policy}: {plan}");

        // The written fleet names the policy: `run --fleet` alone replays the planned run.
        let report = replay(&out, &workload);
        assert_eq!(report["autoscaler"]["policy"], policy);
        let p95 = report["qos"]["standard"]["wait_p95_s"]
            .as_f64()
            .expect("p95");
        assert!(p95 <= 60.0, "{policy}: {report}");
        assert_eq!(report["cost"], plan["cost"], "{policy}");
    }
}

/// `run --fleet FLEET` on `workload` (the planned run, replayed): its JSON report.
fn replay(fleet: &str, workload: &[&str]) -> serde_json::Value {
    let mut run = vec!["run", "--fleet", fleet, "--format", "json", "-q"];
    run.extend(workload);
    let o = sim(&run);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("report")
}

/// 20 one-hour jobs submitted at once; `extra` adds rows.
fn burst_trace(dir: &Path, extra: &str) -> String {
    let mut text =
        String::from("id,tenant,project,job_name,branch,labels,slots,requested_s,submit_s,wait_s,run_s,outcome,qos,queue\n");
    for i in 0..20 {
        text.push_str(&format!(
            "j{i},t,t/p,build,main,linux,1,3600,0,,3600,success,standard,\n"
        ));
    }
    text.push_str(extra);
    write(dir, "burst.csv", &text)
}

const ONE_RUNNER: &str = "\
[[pool]]
name = \"linux\"
labels = [\"linux\"]
runners = 1
cost_per_hour = 0.1
";

#[test]
fn plan_says_which_class_cannot_be_met_and_writes_no_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = burst_trace(dir.path(), "");
    let fleet = write(dir.path(), "fleet.toml", ONE_RUNNER);
    let out = dir.path().join("planned.toml");
    // At most 4 runners for 20 simultaneous one-hour jobs: the p95 is hours.
    let o = sim(&[
        "plan",
        "--fleet",
        &fleet,
        "--trace",
        &trace,
        "--target",
        "standard:p95<=10",
        "--max-scale",
        "4",
        "--fleet-out",
        &out.display().to_string(),
        "-q",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("class standard") && e.contains("best p95") && e.contains("max-scale 4"),
        "{e}"
    );
    assert!(
        !out.exists(),
        "no fleet is written when none meets the target"
    );
    assert!(o.stdout.is_empty());

    // With up to 20 runners it is met, and by 19: the nearest-rank p95 of 20 waits is the
    // 19th smallest, so one job may wait its hour; 18 runners would make two wait.
    let o = sim(&[
        "plan",
        "--fleet",
        &fleet,
        "--trace",
        &trace,
        "--target",
        "standard:p95<=10",
        "--max-scale",
        "20",
        "--format",
        "json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan JSON");
    assert_eq!(plan["total_runners"], 19, "{plan}");
    assert_eq!(plan["targets"][0]["margin_s"], 10.0, "{plan}");
}

#[test]
fn plan_refuses_a_class_whose_jobs_no_pool_can_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = burst_trace(
        dir.path(),
        "mac,t,t/p,build,main,macos,1,60,0,,60,success,standard,\n",
    );
    let fleet = write(dir.path(), "fleet.toml", ONE_RUNNER);
    let o = sim(&[
        "plan",
        "--fleet",
        &fleet,
        "--trace",
        &trace,
        "--target",
        "standard:p95<=100000",
        "-q",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("class standard") && e.contains("labels"), "{e}");
}

#[test]
fn plan_refuses_bad_targets_naming_the_field() {
    for (target, words) in [
        ("standard:p95<=abc", &["seconds", "abc"][..]),
        ("standard:p95<=-5", &["seconds", "-5"][..]),
        ("gold:p95<=300", &["class", "gold", "standard"][..]),
        ("standard:p50<=300", &["metric", "p50"][..]),
        ("standard<=300", &["expected CLASS:p95<=SECONDS"][..]),
    ] {
        let o = sim(&["plan", "--days", "0.1", "--target", target, "-q"]);
        assert!(!o.status.success(), "{target}");
        let e = stderr(&o);
        for w in words {
            assert!(e.contains(w), "{target}: {e}");
        }
    }
}

#[test]
fn sweep_and_plan_estimate_with_a_trained_model() {
    use rustci_datasets::synthetic::{generate, SyntheticConfig};
    use rustci_models::retrain::{retrain, RetrainOptions};
    use rustci_models::TrainParams;

    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let history = generate(&SyntheticConfig {
        seed: 9,
        days: 2.0,
        jobs_per_day: 4000.0,
        ..SyntheticConfig::default()
    })
    .expect("synthetic history");
    let opts = RetrainOptions {
        config: TrainParams::default().check().expect("params"),
        train_fraction: 0.7,
        force: true,
        plots: false,
        sources: vec!["synthetic".into()],
        unix_start: None,
        target_mae_tolerance: None,
    };
    retrain(&history, &models, &opts, &mut |_| {}).expect("retrain");
    let model = format!("model:{}", models.display());

    let grid = |predictor: &str| {
        format!(
            "predictor = \"{predictor}\"\nscale = [0.3]\nload = [2.0]\npolicy = [\"sef\"]\n\n\
             [workload]\nsynthetic = {{ seed = 3, days = 1, jobs_per_day = 4000 }}\n"
        )
    };
    let (_, with_model) = sweep(
        &write(dir.path(), "model.toml", &grid(&model)),
        &dir.path().join("m"),
        "1",
    );
    let (_, requested) = sweep(
        &write(dir.path(), "requested.toml", &grid("requested")),
        &dir.path().join("r"),
        "1",
    );
    let row = |v: &serde_json::Value| v[0].clone();
    assert_eq!(row(&with_model)["jobs"], row(&requested)["jobs"]);
    assert_ne!(
        row(&with_model)["wait_mean_s"],
        row(&requested)["wait_mean_s"],
        "shortest-estimate-first orders by the model's estimates, not the requested times"
    );

    let o = sim(&[
        "plan",
        "--target",
        "standard:p95<=120",
        "--predictor",
        &model,
        "--format",
        "json",
        "-q",
        "--days",
        "1",
        "--jobs-per-day",
        "4000",
        "--seed",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan JSON");
    let used = plan["report"]["predictor"].as_str().expect("predictor");
    assert!(used.starts_with("model:"), "{used}");

    // A directory without a model is refused, naming the grid field.
    let o = sim(&[
        "sweep",
        "--grid",
        &write(dir.path(), "bad.toml", &grid("model:/nonexistent/models")),
        "--out",
        &dir.path().join("bad").display().to_string(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("predictor") && err.contains("/nonexistent/models"),
        "{err}"
    );
}

/// 600 jobs on 8 processors, one every 200 s: user `short` runs ~120 s, `long` ~1500 s
/// until the latest 30%, where `long` runs twice as long (a model trained before that
/// under-predicts it); every job requests 4 h.
fn drifting_history() -> Vec<rustci_datasets::JobRecord> {
    use rustci_datasets::{JobRecord, Outcome};
    let mut x: u64 = 7;
    let mut next = move || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 33) as f64 / (1u64 << 31) as f64
    };
    (0..600i64)
        .map(|i| {
            let long = next() < 0.5;
            let typical = match (long, i >= 420) {
                (false, _) => 120.0,
                (true, false) => 1500.0,
                (true, true) => 3000.0,
            };
            let mut r = JobRecord::new(
                (i + 1).to_string(),
                if long { "long" } else { "short" },
                i * 200,
            );
            r.wait_s = Some(0);
            r.run_s = Some((typical * (0.8 + 0.4 * next())).round() as i64);
            r.requested_s = Some(4 * 3600);
            r.slots = 1 + (next() * 3.0) as u32;
            r.outcome = Outcome::Success;
            r
        })
        .collect()
}

/// `retrain` with the simulator's chooser stores the candidate with the lowest bounded
/// slowdown on the held-out replay, and that is what `model:DIR` plans and corrects with
/// when no flag says otherwise: replayed again with the parsed default it gives the
/// chosen figure, and `run` reports where the choice came from.
#[test]
fn the_choice_retrain_stores_is_the_replays_best_and_the_default() {
    use rustci_models::planning::CANDIDATES;
    use rustci_models::retrain::{retrain_with, RetrainOptions};
    use rustci_models::TrainParams;
    use rustci_sim::fleet_file::FleetFile;
    use rustci_sim::held_out::choose_usage;
    use rustci_sim::scenario::{PredictorSpec, Scenario, Workload};

    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let history = drifting_history();
    let fleet = FleetFile::processors(8);
    let opts = RetrainOptions {
        config: TrainParams {
            trees: 8,
            ..TrainParams::default()
        }
        .check()
        .expect("params"),
        train_fraction: 0.7,
        force: true,
        plots: false,
        sources: vec!["drifting".into()],
        unix_start: None,
        target_mae_tolerance: None,
    };
    let mut fraction = None;
    let report = retrain_with(&history, &models, &opts, &mut |_| {}, &mut |held| {
        fraction = Some(held.replay_from_fraction);
        choose_usage(held, &fleet, "8 processors")
            .expect("replay")
            .ok_or_else(|| "no job".to_string())
    })
    .expect("retrain");
    let choice = report.planning.expect("a choice");
    assert_eq!(choice.candidates.len(), CANDIDATES.len());
    assert_eq!(choice.replay.jobs, 180, "the latest 30% are replayed");
    let best = choice
        .candidates
        .iter()
        .map(|f| f.figure())
        .fold(f64::INFINITY, f64::min);
    let worst = choice
        .candidates
        .iter()
        .map(|f| f.figure())
        .fold(0.0, f64::max);
    // Every figure is a typical day's. The held-out jobs (180, one every 200 s) fall
    // within one day of the trace's clock in all three replays, so the typical day is
    // the mean over their pooled jobs: the mean of the three replays' means.
    for f in &choice.candidates {
        let day = f.bsld_typical_day.expect("a typical day");
        assert!((day - f.bsld_mean).abs() < 1e-9 * f.bsld_mean, "{f:?}");
        // Three replays give each figure a standard error (the loads move the waits).
        let se = f
            .bsld_typical_day_se
            .expect("a standard error over three replays");
        assert!(se.is_finite() && se >= 0.0, "{f:?}");
    }
    assert!(
        choice
            .candidates
            .iter()
            .any(|f| f.bsld_typical_day_se.is_some_and(|se| se > 0.0)),
        "the replays at three loads differ somewhere: {choice:?}"
    );
    let chosen = choice
        .candidates
        .iter()
        .find(|f| f.usage == choice.usage)
        .expect("the choice is a candidate");
    assert_eq!(chosen.figure(), best);
    assert!(worst > best * 1.05, "the candidates differ: {choice:?}");

    let spec =
        PredictorSpec::parse(&format!("model:{}", models.display()), 3_600_000).expect("model:DIR");
    let PredictorSpec::Model {
        plan_with,
        correction,
        ..
    } = &spec
    else {
        panic!("a model predictor");
    };
    assert_eq!(
        (*plan_with, *correction),
        (choice.usage.plan_with, choice.usage.correction)
    );
    // The final version trained on all of the history, not the evaluated one: replay the
    // held-out jobs with it to check the default is the chosen usage, not its figure.
    let workload = Workload {
        records: history.clone(),
        name: "drifting".into(),
        seed: None,
        epoch_unix_s: 0,
        meta: Default::default(),
        format: None,
    };
    let mut s = Scenario::new(&workload, &fleet, "easy++", &spec).expect("scenario");
    s.history_fraction = fraction;
    assert_eq!(s.report().expect("replay").jobs, 180);

    let csv = dir.path().join("drifting.csv");
    rustci_datasets::jobcsv::write_jobcsv(&csv, &history).expect("csv");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--trace",
            csv.to_str().expect("utf-8"),
            "--processors",
            "8",
            "--policy",
            "easy++",
            "--format",
            "json",
            "-q",
        ];
        let m = format!("model:{}", models.display());
        args.extend(["--predictor", &m]);
        args.extend(extra);
        let o = sim(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON")
    };
    let r = run(&[]);
    let u = &r["model_usage"];
    assert_eq!(u["estimate"], choice.usage.plan_with.name());
    assert_eq!(u["correction"], choice.usage.correction.name());
    assert_eq!(
        (&u["estimate_from"], &u["correction_from"]),
        (&"artifact".into(), &"artifact".into())
    );
    let r = run(&["--model-correction", "request"]);
    assert_eq!(r["model_usage"]["correction"], "request");
    assert_eq!(r["model_usage"]["correction_from"], "flag");
    assert_eq!(r["model_usage"]["estimate_from"], "artifact");
}
