//! Run-time model speed: `cargo bench -p rustci-models --bench predict [-- --quick]`.
//!
//! On the whole TravisTorrent history (every project; a generated CI history when the
//! datasets are absent):
//!
//! * (a) the whole `retrain` job (features, chronological evaluation, final fit on all
//!   history, arrival model, artifact write into a temp dir): target under 60 s;
//! * (b) one prediction through the core's `Predictor::estimate` on a `ModelPredictor`
//!   (feature computation from the learned history included): target under 5 us;
//! * (c) batched `RunTimeModel::predict_rows` over every row of the test split (the last
//!   30% of jobs): target at least 1M predictions/s; also split across 2 threads.
//!
//! Only `std::time::Instant`; figures go to BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use rustci_datasets::synthetic::{generate, SyntheticConfig};
use rustci_datasets::testdata::dataset;
use rustci_datasets::{open_trace, JobRecord};
use rustci_models::dataset::prepare;
use rustci_models::retrain::{retrain, RetrainOptions, Stage};
use rustci_models::train::Prediction;
use rustci_models::{load_current, ModelHandle, ModelPredictor, RunTimeModel, TrainParams};
use rustci_scheduler::predictor::Predictor;
use rustci_scheduler::{HistoryKeys, JobId, JobSpec, LabelSet, Millis, QosId, TenantId};

type Error = Box<dyn std::error::Error>;

fn load() -> Result<(String, Vec<JobRecord>, Option<i64>), Error> {
    if let Some(path) = dataset("travistorrent_cesel/projects") {
        let trace = open_trace(&path, None)?;
        let unix_start = trace.meta.unix_start.or(Some(0));
        return Ok((
            "TravisTorrent, all projects".into(),
            trace.collect_records()?,
            unix_start,
        ));
    }
    let cfg = SyntheticConfig {
        days: 14.0,
        jobs_per_day: 15_000.0,
        ..SyntheticConfig::default()
    };
    let unix_start = Some(cfg.start_unix);
    Ok((
        "generated CI history (datasets absent)".into(),
        generate(&cfg)?,
        unix_start,
    ))
}

/// The core's view of a record, as the simulator and the live service build it.
fn specs(records: &[JobRecord], unix_start: i64) -> Vec<(JobSpec, Option<Millis>)> {
    let mut tenants: HashMap<&str, u32> = HashMap::new();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let n = tenants.len() as u32;
            let tenant = *tenants.entry(r.tenant.as_str()).or_insert(n);
            let spec = JobSpec {
                id: JobId(i as u64),
                tenant: TenantId(tenant),
                qos: QosId(0),
                priority: 0,
                labels: LabelSet::EMPTY,
                slots: r.slots.max(1),
                requested_ms: r.requested_s.map(|s| s * 1000),
                // The driver's clock starts at the trace's first submission.
                submit_ms: (r.submit_s - unix_start) * 1000,
                history: HistoryKeys::of(r.job_name.as_deref(), r.branch.as_deref()),
            };
            (spec, r.run_s.filter(|&s| s >= 0).map(|s| s * 1000))
        })
        .collect()
}

fn per_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Best of `reps` timings of `f`.
fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..reps {
        let t = Instant::now();
        let out = f();
        let d = t.elapsed();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, out));
        }
    }
    best.expect("reps >= 1")
}

fn predict_split(
    model: &RunTimeModel,
    data: &rustci_models::dataset::Prepared,
    rows: &[usize],
    threads: usize,
) -> Vec<Prediction> {
    let chunk = rows.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| s.spawn(move || model.predict_rows(data, part)))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for h in handles {
            out.extend(h.join().expect("predict thread").expect("predict_rows"));
        }
        out
    })
}

fn main() -> Result<(), Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let calls: usize = if quick { 20_000 } else { 200_000 };
    let reps = if quick { 1 } else { 3 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let t = Instant::now();
    let (source, records, unix_start) = load()?;
    let read_s = t.elapsed().as_secs_f64();
    println!(
        "rustci-models predict bench: {source}, {} records (read in {read_s:.1} s), {cores} cores{}",
        records.len(),
        if quick { ", --quick" } else { "" }
    );

    // (a) The whole retrain job.
    let dir = tempfile::tempdir()?;
    let opts = RetrainOptions {
        config: TrainParams::default().check()?,
        train_fraction: 0.7,
        force: false,
        plots: false,
        sources: vec![source.clone()],
        unix_start,
        target_mae_tolerance: None,
    };
    let mut marks: Vec<(Stage, Instant)> = Vec::new();
    let t = Instant::now();
    let report = retrain(&records, dir.path(), &opts, &mut |s| {
        marks.push((s, Instant::now()))
    })?;
    let retrain_d = t.elapsed();
    let end = Instant::now();
    let stages: Vec<String> = marks
        .iter()
        .enumerate()
        .map(|(i, (s, at))| {
            let next = marks.get(i + 1).map_or(end, |m| m.1);
            format!("{} {:.1} s", s.label(), (next - *at).as_secs_f64())
        })
        .collect();
    let e = &report.evaluation;
    println!(
        "(a) retrain: {:.1} s for {} jobs [{}]; test MAE {:.0} s vs best baseline {:.0} s; written {}",
        retrain_d.as_secs_f64(),
        report.jobs,
        stages.join(", "),
        e.model.mae_s,
        e.baselines.best_mae(),
        report.written
    );

    let (path, artifact) = load_current(dir.path())?;
    let bytes = std::fs::read(&path)?;
    let specs = specs(&records, unix_start.unwrap_or(0));
    let mut variants = vec![("as trained", artifact.model)];
    let w = variants[0].1.forest_weight;
    println!(
        "model: forest weight {w}, stack {:?}, linear {}, forest {}",
        variants[0].1.stack,
        variants[0].1.linear.is_some(),
        variants[0].1.forest.is_some()
    );
    if w == 0.0 && variants[0].1.forest.is_some() {
        // The final fit left the forest out of the blend, so `predict_one` skips it.
        // Measure the same model with the forest in the blend too: what a model that
        // uses it costs.
        let mut m = rustci_models::Artifact::from_bytes(&path, &bytes)?.model;
        m.forest_weight = 0.5;
        variants.push(("forest weight set to 0.5", m));
    }
    let mut table = vec![format!(
        "| (a) whole retrain, {} jobs | {:.1} s | < 60 s | {} |",
        report.jobs,
        retrain_d.as_secs_f64(),
        met(retrain_d.as_secs_f64() < 60.0)
    )];
    for (label, model) in variants {
        println!("-- {label}");
        table.extend(measure(
            label, model, &records, unix_start, &specs, calls, reps,
        )?);
    }
    println!();
    println!("| measure | value | target | |");
    println!("|---|---|---|---|");
    for line in table {
        println!("{line}");
    }
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// (b) and (c) for one model; returns table lines.
fn measure(
    label: &str,
    model: RunTimeModel,
    records: &[JobRecord],
    unix_start: Option<i64>,
    specs: &[(JobSpec, Option<Millis>)],
    calls: usize,
    reps: usize,
) -> Result<Vec<String>, Error> {
    let handle = ModelHandle::new(model, label);
    let model = handle.get();

    // (b) Single predictions through the core's trait. The predictor first learns the
    // history of the first 70% of jobs (as a live server would have by then); the calls
    // then cycle through the other 30%.
    let split = specs.len() * 7 / 10;
    let mut predictor = ModelPredictor::new(handle.clone(), unix_start);
    for (spec, run) in &specs[..split] {
        if let Some(run) = run {
            predictor.observe(spec, *run, spec.submit_ms + run, false);
        }
    }
    let test_specs: Vec<&JobSpec> = specs[split..].iter().map(|(s, _)| s).collect();
    let p: &mut dyn Predictor = &mut predictor;
    for s in test_specs.iter().take(10_000) {
        black_box(p.estimate(black_box(s)));
    }
    let (single_d, _) = best_of(reps, || {
        let mut acc: Millis = 0;
        for i in 0..calls {
            let e = p.estimate(black_box(test_specs[i % test_specs.len()]));
            acc = acc.wrapping_add(e.point_ms);
        }
        black_box(acc)
    });
    let ns_per = single_d.as_nanos() as f64 / calls as f64;
    // Latency spread: each call timed on its own (adds ~20-40 ns of clock reads).
    let mut lat: Vec<u64> = (0..calls.min(50_000))
        .map(|i| {
            let t = Instant::now();
            black_box(p.estimate(black_box(test_specs[i % test_specs.len()])));
            t.elapsed().as_nanos() as u64
        })
        .collect();
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    println!(
        "(b) Predictor::estimate: {ns_per:.0} ns/prediction (mean of {calls} calls, best of {reps}); p50 {} ns, p99 {} ns, max {} ns",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );

    // (c) Batched predictions over the test split's rows.
    let t = Instant::now();
    let data = prepare(records, unix_start, model.extras.clone());
    let prep_s = t.elapsed().as_secs_f64();
    let split_rows = data.rows() * 7 / 10;
    let rows: Vec<usize> = (split_rows..data.rows()).collect();
    let (one_d, one) = best_of(reps, || model.predict_rows(&data, &rows));
    let one = one?;
    let (two_d, two) = best_of(reps, || predict_split(&model, &data, &rows, 2));
    assert_eq!(one, two, "split predictions differ");
    // Diagnostic: the same rows one at a time through `predict_one`.
    let (loop_d, looped) = best_of(reps, || {
        let mut row = Vec::with_capacity(data.width());
        rows.iter()
            .map(|&r| {
                row.clear();
                row.extend_from_slice(data.row(r));
                model.predict_one(&mut row, data.same_job_runs[r], &data.baseline(r))
            })
            .collect::<Vec<Prediction>>()
    });
    let same = looped
        .iter()
        .zip(&one)
        .filter(|(a, b)| (a.point_s - b.point_s).abs() <= 1e-9 * b.point_s.max(1.0))
        .count();
    let one_rate = per_s(rows.len(), one_d);
    let two_rate = per_s(rows.len(), two_d);
    let loop_rate = per_s(rows.len(), loop_d);
    println!(
        "(c) predict_rows over {} test rows (features prepared in {prep_s:.1} s, not counted): 1 thread {:.0} ms = {:.2} M/s; 2 threads {:.0} ms = {:.2} M/s",
        rows.len(),
        one_d.as_secs_f64() * 1e3,
        one_rate / 1e6,
        two_d.as_secs_f64() * 1e3,
        two_rate / 1e6
    );
    println!(
        "    the same rows one at a time (predict_one), 1 thread: {:.0} ms = {:.2} M/s ({same} of {} points equal to predict_rows')",
        loop_d.as_secs_f64() * 1e3,
        loop_rate / 1e6,
        rows.len()
    );
    Ok(vec![
        format!(
            "| (b) `Predictor::estimate`, one job [{label}] | {ns_per:.0} ns (p50 {} ns, p99 {} ns) | < 5 us | {} |",
            pct(0.5),
            pct(0.99),
            met(ns_per < 5_000.0)
        ),
        format!(
            "| (c) `predict_rows`, 1 thread, {} rows [{label}] | {:.2} M/s | >= 1 M/s | {} |",
            rows.len(),
            one_rate / 1e6,
            met(one_rate >= 1e6)
        ),
        format!(
            "| (c) `predict_rows`, 2 threads [{label}] | {:.2} M/s | >= 1 M/s | {} |",
            two_rate / 1e6,
            met(two_rate >= 1e6)
        ),
        format!(
            "| (c) loop of `predict_one`, 1 thread [{label}] | {:.2} M/s | (diagnostic) | |",
            loop_rate / 1e6
        ),
    ])
}
