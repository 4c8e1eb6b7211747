//! Must-show: on every Parallel Workloads Archive log under `pwa_swf/`, the run-time
//! model's MAE beats both the user's requested time and Tsafrir's last-two average, on a
//! chronological split (train on the first 70% of jobs by submit time, test on the rest).
//!
//! The six logs take about a minute of CPU in release; they run two at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rustci_datasets::open_trace;
use rustci_datasets::testdata::dataset;
use rustci_models::dataset::prepare;
use rustci_models::eval::{chronological, Evaluation};
use rustci_models::features::choose_extras;
use rustci_models::TrainParams;

mod common;
use common::split_submit_bounds;

const LOGS: [&str; 6] = [
    "CTC-SP2-1996-3.1-cln",
    "HPC2N-2002-2.2-cln",
    "KTH-SP2-1996-2.1-cln",
    "LANL-CM5-1994-4.1-cln",
    "SDSC-BLUE-2000-4.2-cln",
    "SDSC-SP2-1998-4.2-cln",
];

const THREADS: usize = 2;

struct Outcome {
    log: &'static str,
    eval: Evaluation,
    seconds: f64,
    /// What is wrong with this log's result (empty when all checks pass).
    problems: Vec<String>,
}

fn evaluate(log: &'static str) -> Option<Outcome> {
    let path = dataset(&format!("pwa_swf/{log}.swf.gz"))?;
    let t0 = Instant::now();
    let trace = open_trace(&path, None).unwrap_or_else(|e| panic!("{log}: open: {e}"));
    let unix_start = trace.meta.unix_start;
    let records = trace
        .collect_records()
        .unwrap_or_else(|e| panic!("{log}: read: {e}"));
    let extras = choose_extras(records.iter());
    let data = prepare(&records, unix_start, extras);
    let config = TrainParams::default().check().expect("default parameters");
    let (_model, e, points) =
        chronological(&config, &data, 0.7).unwrap_or_else(|err| panic!("{log}: {err}"));

    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    // The split is chronological: every training job was submitted no later than any
    // test job, and the rows are in submit order.
    let split = e.train_jobs;
    check(
        split + e.test_jobs == data.rows() && points.actual_s.len() == e.test_jobs,
        format!("{} + {} jobs != {} rows", split, e.test_jobs, data.rows()),
    );
    check(
        data.submit_s.windows(2).all(|w| w[0] <= w[1]),
        "rows are not in submit order".into(),
    );
    let (last_train, first_test) = split_submit_bounds(&data, split);
    check(
        last_train <= first_test,
        format!("a training job (submit {last_train}) is later than a test job ({first_test})"),
    );
    check(
        (split as f64 / data.rows() as f64 - 0.7).abs() < 0.01,
        format!("split at {split} of {}", data.rows()),
    );

    let b = &e.baselines;
    let m = e.model.mae_s;
    match b.requested {
        Some(req) => check(
            m < req.mae_s,
            format!(
                "model MAE {m:.0} s not below requested time's {:.0} s",
                req.mae_s
            ),
        ),
        None => check(false, "no requested-time baseline on an SWF log".into()),
    }
    check(
        m < b.tsafrir.mae_s,
        format!(
            "model MAE {m:.0} s not below Tsafrir's {:.0} s",
            b.tsafrir.mae_s
        ),
    );
    let cov = e.model.upper_coverage.unwrap_or(f64::NAN);
    check(
        (0.8..=0.97).contains(&cov),
        format!("P90 coverage {cov:.3} outside 0.80..=0.97"),
    );
    Some(Outcome {
        log,
        eval: e,
        seconds: t0.elapsed().as_secs_f64(),
        problems,
    })
}

#[test]
fn model_beats_requested_time_and_tsafrir_on_every_pwa_log() {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&log) = LOGS.get(i) else { break };
                if let Some(o) = evaluate(log) {
                    results.lock().unwrap().push(o);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|o| o.log);

    // Printed straight to stderr so that the table shows without --nocapture.
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n| log | jobs | test | model MAE s | linear | forest | requested | Tsafrir | last-5 median | vs best baseline | P90 cov | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for o in &results {
        let e = &o.eval;
        let b = &e.baselines;
        let _ = writeln!(
            err,
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.1}% | {:.3} | {:.1} |",
            o.log,
            e.train_jobs + e.test_jobs,
            e.test_jobs,
            e.model.mae_s,
            e.linear.map_or(f64::NAN, |m| m.mae_s),
            e.forest.map_or(f64::NAN, |m| m.mae_s),
            b.requested.map_or(f64::NAN, |m| m.mae_s),
            b.tsafrir.mae_s,
            b.last5_median.mae_s,
            (e.model.mae_s / b.best_mae() - 1.0) * 100.0,
            e.model.upper_coverage.unwrap_or(f64::NAN),
            o.seconds,
        );
    }
    drop(err);

    let failures: Vec<String> = results
        .iter()
        .flat_map(|o| o.problems.iter().map(move |p| format!("{}: {p}", o.log)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
