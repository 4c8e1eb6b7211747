//! The trained model behind the core's `Predictor` trait: it learns users' run times from
//! `observe` and tells a short-running user from a long-running one; `ModelHandle::replace`
//! swaps the model under a live predictor without losing what it learned.

use std::sync::Arc;

use rustci_datasets::{JobRecord, Outcome};
use rustci_models::dataset::prepare;
use rustci_models::retrain::{retrain, RetrainOptions};
use rustci_models::{
    load_current, Artifact, ModelHandle, ModelPredictor, RunTimeModel, TrainParams,
};
use rustci_scheduler::predictor::{Estimate, Predictor};
use rustci_scheduler::{HistoryKeys, JobId, JobSpec, LabelSet, Millis, QosId, TenantId};

mod common;
use common::Lcg;

const A_RUN_S: f64 = 100.0;
const B_RUN_S: f64 = 1000.0;
const REQUESTED_S: i64 = 3600;

/// 400 jobs, users A and B in random order; A runs ~100 s, B ~1000 s (+-10%), both
/// request an hour.
fn history() -> Vec<JobRecord> {
    let mut rng = Lcg(5);
    (0..400)
        .map(|i| {
            let a = rng.next() < 0.5;
            let typical = if a { A_RUN_S } else { B_RUN_S };
            let mut r = JobRecord::new(i.to_string(), if a { "A" } else { "B" }, i * 300);
            r.wait_s = Some(0);
            r.run_s = Some((typical * (0.9 + 0.2 * rng.next())).round() as i64);
            r.requested_s = Some(REQUESTED_S);
            r.outcome = Outcome::Success;
            r
        })
        .collect()
}

/// Retraining as the tests here run it: `trees` trees, the latest 30% held out, no plots.
fn retrain_options(trees: usize, source: &str) -> RetrainOptions {
    RetrainOptions {
        config: TrainParams {
            trees,
            ..TrainParams::default()
        }
        .check()
        .expect("valid parameters"),
        train_fraction: 0.7,
        force: false,
        plots: false,
        sources: vec![source.into()],
        unix_start: Some(0),
        target_mae_tolerance: None,
    }
}

fn train() -> RunTimeModel {
    let recs = history();
    let data = prepare(&recs, Some(0), vec![]);
    TrainParams {
        trees: 8,
        ..TrainParams::default()
    }
    .check()
    .expect("valid parameters")
    .fit(&data, 0..data.rows())
    .expect("train")
}

fn spec(id: u64, tenant: u32, submit_ms: Millis) -> JobSpec {
    JobSpec {
        id: JobId(id),
        tenant: TenantId(tenant),
        qos: QosId(0),
        priority: 0,
        labels: LabelSet::EMPTY,
        slots: 1,
        requested_ms: Some(REQUESTED_S * 1000),
        submit_ms,
        history: HistoryKeys::default(),
    }
}

const A: u32 = 0;
const B: u32 = 1;

/// Feeds `runs` finished runs (seconds) of `tenant`, one every 2000 s from `t0_ms`.
fn feed(p: &mut dyn Predictor, tenant: u32, runs: &[f64], first_id: u64, t0_ms: Millis) {
    for (i, &run_s) in runs.iter().enumerate() {
        let submit = t0_ms + i as Millis * 2_000_000;
        let s = spec(first_id + i as u64, tenant, submit);
        let run_ms = (run_s * 1000.0) as Millis;
        p.observe(&s, run_ms, submit + run_ms, false);
    }
}

#[test]
fn model_predictor_tells_short_and_long_users_apart() {
    let handle = ModelHandle::new(train(), "v1");
    let mut boxed: Box<dyn Predictor> = Box::new(ModelPredictor::new(handle, Some(0)));
    let p: &mut dyn Predictor = boxed.as_mut();
    assert_eq!(p.name(), "model:v1");

    // Without history the two users look the same.
    let now: Millis = 100_000_000;
    let a0 = p.estimate(&spec(1000, A, now));
    let b0 = p.estimate(&spec(1001, B, now));
    assert_eq!(a0, b0);
    assert!(a0.point_ms > 0 && a0.upper_ms >= a0.point_ms);

    feed(p, A, &[95.0, 104.0, 99.0, 102.0], 1, 0);
    feed(p, B, &[980.0, 1020.0, 1005.0, 990.0], 11, 1_000_000);

    let a = p.estimate(&spec(1002, A, now));
    let b = p.estimate(&spec(1003, B, now));
    eprintln!(
        "A: point {:.1} s upper {:.1} s | B: point {:.1} s upper {:.1} s (no history: {:.1} s)",
        a.point_ms as f64 / 1000.0,
        a.upper_ms as f64 / 1000.0,
        b.point_ms as f64 / 1000.0,
        b.upper_ms as f64 / 1000.0,
        a0.point_ms as f64 / 1000.0
    );
    assert!(a.point_ms < 300_000, "A {a:?}");
    assert!(a.point_ms > 30_000, "A {a:?}");
    assert!(b.point_ms > 500_000, "B {b:?}");
    assert!(b.point_ms < 2_000_000, "B {b:?}");
    assert!(a.upper_ms >= a.point_ms && b.upper_ms >= b.point_ms);
    assert!(a.upper_ms < b.upper_ms);

    // The estimate does not depend on the job id, and asking twice changes nothing.
    assert_eq!(p.estimate(&spec(77, A, now)), a);
    // A tenant the predictor has not seen still gets the no-history estimate.
    assert_eq!(p.estimate(&spec(1004, 9, now)), a0);
}

#[test]
fn replacing_the_model_keeps_the_history() {
    let handle = ModelHandle::new(train(), "v1");
    let mut p = ModelPredictor::new(handle.clone(), Some(0));
    feed(&mut p, A, &[90.0, 100.0, 110.0, 95.0, 105.0], 1, 0);
    let before = p.estimate(&spec(100, A, 50_000_000));
    assert!(before.point_ms < 300_000, "{before:?}");
    let old = handle.get();

    // The new model puts all its weight on the last-5 median: after the swap, A's
    // estimate is exactly the median of the five runs the predictor saw before it.
    let mut next = train();
    next.stack = [0.0, 1.0, 0.0, 0.0, 0.0];
    handle.replace(next, "v2");
    assert_eq!(handle.version_name(), "v2");
    assert!(!Arc::ptr_eq(&old, &handle.get()));
    // Every clone of the handle (the predictor holds one) sees the new model.
    assert!(Arc::ptr_eq(&handle.clone().get(), &handle.get()));

    let after = p.estimate(&spec(101, A, 50_000_000));
    assert_eq!(after.point_ms, 100_000, "{after:?}");
    assert!(after.upper_ms >= after.point_ms);
    // A user without history falls back to the request.
    assert_eq!(
        p.estimate(&spec(102, B, 50_000_000)).point_ms,
        REQUESTED_S * 1000
    );
    // The old model is still whole for whoever held it.
    assert_eq!(old.stack.len(), 5);
    eprintln!(
        "before swap A {:.1} s, after {:.1} s; predictor name {:?}, handle {:?}",
        before.point_ms as f64 / 1000.0,
        after.point_ms as f64 / 1000.0,
        p.name(),
        handle.version_name()
    );
}

#[test]
fn predictor_from_an_artifact_and_concurrent_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let opts = retrain_options(8, "synthetic A/B");
    retrain(&history(), dir.path(), &opts, &mut |_| {}).unwrap();
    let (path, artifact) = load_current(dir.path()).unwrap();
    // The loader `rustci serve --model` and `rustci-sim --predictor model:` share names the
    // handle after the current version's file.
    let current = ModelHandle::load_current(dir.path()).unwrap();
    assert_eq!(current.path, path);
    assert_eq!(current.handle.version_name(), "v000001");
    assert_eq!(current.evaluation, artifact.evaluation);
    let bytes = std::fs::read(&path).unwrap();
    let handle = ModelHandle::from_artifact(artifact, "v000001");
    let mut p = ModelPredictor::new(handle.clone(), Some(0));
    feed(&mut p, A, &[95.0, 104.0, 99.0, 102.0], 1, 0);
    feed(&mut p, B, &[980.0, 1020.0, 1005.0, 990.0], 11, 1_000_000);

    // Swap the model from another thread while estimating: every estimate stays sane.
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..20 {
                let a = Artifact::from_bytes(&path, &bytes).unwrap();
                handle.replace(a.model, format!("swap{i}"));
            }
        });
        for i in 0..2000 {
            let a = p.estimate(&spec(5000 + i, A, 100_000_000));
            let b = p.estimate(&spec(9000 + i, B, 100_000_000));
            assert!(a.point_ms < 300_000 && b.point_ms > 500_000, "{a:?} {b:?}");
        }
    });
    assert_eq!(handle.version_name(), "swap19");
}

#[test]
fn one_row_and_batched_predictions_agree() {
    let recs = history();
    let data = prepare(&recs, Some(0), vec![]);
    let model = train();
    assert!(
        model.forest.is_some() && model.forest_weight > 0.0,
        "w {}",
        model.forest_weight
    );
    let rows: Vec<usize> = (0..data.rows()).collect();
    let batch = model.predict_rows(&data, &rows).unwrap();
    for (&r, b) in rows.iter().zip(&batch) {
        let mut row = data.row(r).to_vec();
        let one = model.predict_one(&mut row, data.same_job_runs[r], &data.baseline(r));
        assert!(
            (one.point_s - b.point_s).abs() <= 1e-9 * b.point_s.max(1.0)
                && (one.upper_s - b.upper_s).abs() <= 1e-9 * b.upper_s.max(1.0),
            "row {r}: one {one:?} batch {b:?}"
        );
    }
}

/// A per-key-margin predictor that saw user A run 100 s five times (and B 1000 s),
/// then six of A's jobs, each asked about with `ask` at submit, run 300 s. Returns the
/// upper/point ratio of A's first such job, of a new job of A after them, and the
/// predictor.
fn after_a_surprise(
    ask: fn(&mut ModelPredictor, &JobSpec) -> Estimate,
) -> (f64, f64, ModelPredictor) {
    let mut model = train();
    model.per_key_upper = true;
    let handle = ModelHandle::new(model, "v1");
    let mut p = ModelPredictor::new(handle, Some(0));
    feed(&mut p, A, &[100.0; 5], 1, 0);
    feed(&mut p, B, &[1000.0; 5], 11, 0);
    let ratio = |e: Estimate| e.upper_ms as f64 / e.point_ms as f64;
    let first = ratio(ask(&mut p, &spec(100, A, 20_000_000)));
    let mut t = 20_000_000;
    for id in 100..106 {
        let s = spec(id, A, t);
        ask(&mut p, &s);
        p.observe(&s, 300_000, t + 300_000, false);
        t += 10_000_000;
    }
    let after = ratio(p.estimate(&spec(200, A, t)));
    (first, after, p)
}

/// With per-key margins on, a key's upper quantile follows its own finished jobs'
/// residuals against the points estimated at their submit: a user whose runs jumped
/// from 100 s to 300 s gets the margin of that surprise (the largest of its residuals
/// while it has under ten), not the global one.
#[test]
fn live_per_key_margins_learn_from_estimated_then_finished_jobs() {
    let (global, ratio, mut p) = after_a_surprise(|p, s| p.estimate(s));
    eprintln!("A: global upper/point {global:.2}, per-key {ratio:.2}");
    // The first surprise: ln(301 / (1 + ~100 s point)) ~ ln 3.
    assert!(ratio > 2.0, "{ratio}");
    // B's jobs never went through `estimate` (no point to measure): global margin.
    let b = p.estimate(&spec(201, B, 80_000_000));
    let b_ratio = b.upper_ms as f64 / b.point_ms as f64;
    assert!((b_ratio - global).abs() < 0.05, "{b:?} vs {global}");
}

/// Planning with the debiased point: a key's point moves by the median of its last
/// residuals once it has three (the user's recent bias, learned as jobs finish), and
/// the residuals stay measured against the model's own point, not the debiased one.
#[test]
fn the_debiased_plan_follows_a_users_recent_residuals() {
    use rustci_models::planning::PlanWith;
    let handle = ModelHandle::new(train(), "v1");
    let mut p = ModelPredictor::new(handle, Some(0)).planning_with(PlanWith::Debiased);
    feed(&mut p, A, &[100.0; 5], 1, 0);
    let ms = |s: f64| (s * 1000.0).round() as Millis;
    let mut t = 20_000_000;
    let mut residuals = Vec::new();
    for id in 100..103 {
        let s = spec(id, A, t);
        let point = p.predict(&s).point_s;
        let e = p.estimate(&s);
        // Fewer than three residuals: the plan is the model's point.
        assert_eq!(e.point_ms, ms(point), "job {id}");
        // A ran 10 s where ~100 s were predicted.
        p.observe(&s, 10_000, t + 10_000, false);
        residuals.push(11f64.ln() - point.ln_1p());
        t += 10_000_000;
    }
    let s = spec(200, A, t);
    let point = p.predict(&s).point_s;
    residuals.sort_by(f64::total_cmp);
    let want = (point.ln_1p() + residuals[1]).exp_m1();
    let e = p.estimate(&s);
    eprintln!("point {point:.1} s, debiased {want:.1} s");
    assert!(want < point / 3.0, "{want} vs {point}");
    assert_eq!(e.point_ms, ms(want));
    assert!(e.upper_ms >= e.point_ms);
    // B has no residuals: its plan is its point.
    let b = spec(201, B, t);
    assert_eq!(p.estimate(&b).point_ms, ms(p.predict(&b).point_s));
}

/// Planning with a low percentile (p20): once a key has five residuals its point moves
/// down to their 20th percentile (the second smallest of five), a key whose jobs all ran
/// longer than predicted keeps its point, and a key with fewer keeps it too.
#[test]
fn the_low_percentile_plan_follows_the_quicker_of_a_users_recent_runs() {
    use rustci_models::planning::PlanWith;
    let handle = ModelHandle::new(train(), "v1");
    let mut p = ModelPredictor::new(handle, Some(0)).planning_with(PlanWith::Low20);
    feed(&mut p, A, &[100.0; 5], 1, 0);
    feed(&mut p, B, &[1000.0; 5], 10, 10);
    let ms = |s: f64| (s * 1000.0).round() as Millis;
    let mut t = 20_000_000;
    let mut residuals = Vec::new();
    // A: two quick runs among ordinary ones; B: every run longer than predicted.
    for (id, a_run, b_run) in [
        (100, 10.0, 5000.0),
        (101, 100.0, 5000.0),
        (102, 12.0, 5000.0),
        (103, 100.0, 5000.0),
        (104, 100.0, 5000.0),
    ] {
        let s = spec(id, A, t);
        let point = p.predict(&s).point_s;
        // Fewer than five residuals: the plan is the model's point.
        assert_eq!(p.estimate(&s).point_ms, ms(point), "job {id}");
        p.observe(&s, ms(a_run), t + ms(a_run), false);
        residuals.push(a_run.ln_1p() - point.ln_1p());
        let b = spec(id + 100, B, t);
        p.estimate(&b);
        p.observe(&b, ms(b_run), t + ms(b_run), false);
        t += 10_000_000;
    }
    let s = spec(200, A, t);
    let point = p.predict(&s).point_s;
    residuals.sort_by(f64::total_cmp);
    let want = (point.ln_1p() + residuals[1].min(0.0)).exp_m1();
    let e = p.estimate(&s);
    eprintln!("point {point:.1} s, p20 {want:.1} s");
    assert!(want < point / 2.0, "{want} vs {point}");
    assert_eq!(e.point_ms, ms(want));
    assert!(e.upper_ms >= e.point_ms);
    let b = spec(300, B, t);
    assert_eq!(p.estimate(&b).point_ms, ms(p.predict(&b).point_s));
}

/// An ETA asked for a job that is not being submitted (`preview`: a finished or parked
/// job in the live service) leaves nothing behind: its finish teaches no margin.
#[test]
fn previews_are_not_measured_against_their_finish() {
    let (global, ratio, _) = after_a_surprise(|p, s| p.preview(s));
    assert!((ratio - global).abs() < 0.05, "{ratio} vs {global}");
}

/// A job estimated at submit and then cancelled (the core tells the predictor to
/// forget it) leaves nothing behind either.
#[test]
fn forgotten_jobs_are_not_measured() {
    let (global, ratio, _) = after_a_surprise(|p, s| {
        let e = p.estimate(s);
        p.forget(s);
        e
    });
    assert!((ratio - global).abs() < 0.05, "{ratio} vs {global}");
}

/// What a chooser of the held-out slice starting at `from_submit_s` returns when its
/// figures make the usages `wins` picks (on `target`) the best: 1.5 against 3.0.
fn rigged_choice(
    from_submit_s: i64,
    target: Option<rustci_models::train::Target>,
    wins: impl Fn(rustci_models::planning::Usage) -> bool,
) -> rustci_models::planning::PlanChoice {
    use rustci_models::planning::{CandidateFigure, HeldOutReplay, PlanChoice, CANDIDATES};
    let figures = CANDIDATES
        .iter()
        .map(|&usage| CandidateFigure {
            usage,
            target,
            bsld_mean: if wins(usage) { 1.5 } else { 3.0 },
            bsld_typical_day: None,
            bsld_typical_day_se: None,
        })
        .collect();
    PlanChoice::pick(
        figures,
        HeldOutReplay {
            jobs: 120,
            from_submit_s,
            machine: "test".into(),
            loads: vec![1.0],
        },
    )
    .expect("finite figures")
}

/// A choice stored by `retrain_with` is what a predictor without overrides plans and
/// corrects with (and follows a swap); the same artifact without the field (as versions
/// before the choice were written) loads with the old defaults.
#[test]
fn a_stored_choice_is_the_predictors_default_and_old_artifacts_keep_the_old_one() {
    use rustci_models::planning::{Correction, PlanWith, Usage};
    use rustci_models::retrain::retrain_with;

    let dir = tempfile::tempdir().unwrap();
    let opts = retrain_options(8, "synthetic A/B");
    // A chooser whose figures make planning with the upper quantile and doubling win.
    let winner = Usage {
        plan_with: PlanWith::Upper,
        correction: Correction::Doubling,
    };
    let mut held_out_from = None;
    let report = retrain_with(&history(), dir.path(), &opts, &mut |_| {}, &mut |held| {
        held_out_from = Some((held.from_submit_s, held.replay_from_fraction));
        Ok(rigged_choice(held.from_submit_s, None, |u| u == winner))
    })
    .unwrap();
    // The held-out slice is the evaluation's test split: its latest 30%, from the
    // second after the last job the evaluated model trained on (the 280th, at 279 * 300).
    let (from_s, fraction) = held_out_from.expect("the chooser was called");
    assert_eq!(from_s, 279 * 300 + 1);
    assert!((fraction - 0.7).abs() < 1e-9, "{fraction}");
    assert_eq!(report.planning.as_ref().map(|c| c.usage), Some(winner));

    let current = ModelHandle::load_current(dir.path()).unwrap();
    assert_eq!(current.handle.usage(), (winner, true));
    let mut p = ModelPredictor::new(current.handle.clone(), Some(0));
    assert_eq!(p.usage(), winner);
    assert_eq!(p.name(), "model:v000001");
    feed(&mut p, A, &[95.0, 104.0, 99.0, 102.0], 1, 0);
    let e = p.estimate(&spec(500, A, 10_000_000));
    assert_eq!(e.point_ms, e.upper_ms, "planned with the upper quantile");
    // Doubling: twice the planned estimate at the first correction.
    let j = spec(501, A, 10_000_000);
    assert_eq!(p.correct(&j, e, 0), 2 * e.point_ms);
    // An override wins and is named.
    let q = ModelPredictor::new(current.handle.clone(), Some(0)).planning_with(PlanWith::Point);
    assert_eq!(q.name(), "model:v000001@point");
    assert_eq!(q.usage().plan_with, PlanWith::Point);
    assert_eq!(q.usage().correction, Correction::Doubling);

    // The same version written without the field, as older versions were.
    let (path, mut artifact) = load_current(dir.path()).unwrap();
    assert!(artifact.planning.is_some());
    artifact.planning = None;
    let old = artifact.to_bytes().unwrap();
    assert!(!String::from_utf8_lossy(&old).contains("planning"));
    let old = Artifact::from_bytes(&path, &old).unwrap();
    assert!(old.planning.is_none());
    // A live predictor follows the swap to a version without a choice: the old defaults.
    current.handle.replace_artifact(old, "v000000");
    assert_eq!(current.handle.usage(), (Usage::default(), false));
    assert_eq!(p.usage(), Usage::default());
    let e = p.estimate(&spec(502, A, 10_000_000));
    assert!(
        e.point_ms < e.upper_ms,
        "planned with the point again: {e:?}"
    );
}

/// With a target MAE tolerance, `retrain_with` also trains on the other scale and
/// replays it when its held-out MAE is within the tolerance of the configured scale's;
/// the version then learns on the scale whose replay won, and its evaluation is that
/// scale's. Beyond the tolerance the other scale is not replayed, and the reason says so.
#[test]
fn retrain_learns_on_the_scale_whose_replay_won() {
    use rustci_models::planning::{Correction, PlanWith, Usage, CANDIDATES};
    use rustci_models::retrain::retrain_with;
    use rustci_models::train::Target;

    let winner = Usage {
        plan_with: PlanWith::Debiased,
        correction: Correction::Request,
    };
    let run = |tolerance: Option<f64>| {
        let dir = tempfile::tempdir().unwrap();
        let opts = RetrainOptions {
            target_mae_tolerance: tolerance,
            ..retrain_options(8, "synthetic A/B")
        };
        let mut replayed = Vec::new();
        let report = retrain_with(&history(), dir.path(), &opts, &mut |_| {}, &mut |held| {
            let target = held.model.target;
            replayed.push(target);
            // The log scale's replay wins with `winner`.
            Ok(rigged_choice(held.from_submit_s, Some(target), |u| {
                target == Target::Log && u == winner
            }))
        })
        .unwrap();
        let (_, artifact) = load_current(dir.path()).unwrap();
        (report, replayed, artifact)
    };

    // Without a tolerance: the configured scale only.
    let (fixed, replayed, artifact) = run(None);
    assert_eq!(replayed, vec![Target::Sqrt]);
    assert_eq!(artifact.model.target, Target::Sqrt);
    assert_eq!(
        fixed.planning.as_ref().map(|c| c.candidates.len()),
        Some(CANDIDATES.len())
    );
    let sqrt_mae = fixed.evaluation.model.mae_s;

    // Any MAE accepted: both scales replayed, the log's winner chosen and learnt on.
    let (report, replayed, artifact) = run(Some(f64::INFINITY));
    let choice = report.planning.expect("a choice");
    let log_mae = report.evaluation.model.mae_s;
    eprintln!("sqrt MAE {sqrt_mae:.1} s, log MAE {log_mae:.1} s");
    assert_eq!(replayed, vec![Target::Sqrt, Target::Log]);
    assert_eq!((choice.usage, choice.target), (winner, Some(Target::Log)));
    assert_eq!(choice.candidates.len(), 2 * CANDIDATES.len());
    assert!(choice.reason.contains("debiased"), "{}", choice.reason);
    assert_eq!(artifact.model.target, Target::Log);
    assert_eq!(artifact.training.params.target, Target::Log);
    assert_eq!(
        artifact.planning.as_ref().and_then(|c| c.target),
        Some(Target::Log)
    );
    // The evaluation reported is the log model's.
    assert_ne!(log_mae, sqrt_mae);

    // A tolerance the log scale misses (it is less accurate here): not replayed, the
    // square root stays, and the reason gives both MAEs.
    assert!(log_mae > sqrt_mae, "{log_mae} vs {sqrt_mae}");
    let (report, replayed, artifact) = run(Some(0.0));
    assert_eq!(replayed, vec![Target::Sqrt]);
    assert_eq!(artifact.model.target, Target::Sqrt);
    let reason = &report.planning.expect("a choice").reason;
    assert!(reason.contains("log scale not replayed"), "{reason}");
    assert_eq!(report.evaluation.model.mae_s, sqrt_mae);
}

/// Jobs submitted in the same second as the last trained-on job but past the split are
/// not replayed: the held-out slice has only jobs the evaluated model never saw.
#[test]
fn the_held_out_slice_has_no_job_the_evaluated_model_trained_on() {
    use rustci_models::retrain::retrain_with;

    let dir = tempfile::tempdir().unwrap();
    let opts = retrain_options(4, "synthetic, three jobs a second");
    // Three jobs share each submit second: the 70% split (280 of 400) falls inside one.
    let history: Vec<JobRecord> = history()
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.submit_s = (i as i64 / 3) * 300;
            r
        })
        .collect();
    let mut from = None;
    let report = retrain_with(&history, dir.path(), &opts, &mut |_| {}, &mut |held| {
        from = Some(held.from_submit_s);
        Err("figures are not needed here".into())
    })
    .unwrap();
    let from = from.expect("the chooser was called");
    let mut submits: Vec<i64> = history.iter().map(|r| r.submit_s).collect();
    submits.sort_unstable();
    let trained = report.evaluation.train_jobs;
    assert!(trained > 0 && trained < submits.len());
    assert!(
        from > submits[trained - 1],
        "the slice starts at {from}, but job {trained} (trained on) was submitted at {}",
        submits[trained - 1]
    );
    assert!(
        submits[trained..].iter().any(|&s| s >= from),
        "the slice is not empty"
    );
}
