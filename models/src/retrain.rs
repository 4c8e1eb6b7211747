//! The whole retraining job behind `rustci retrain`: evaluate a new model
//! chronologically beside the baselines and the version in use, and write it as the next
//! version only if it is no worse (or when forced).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rustci_datasets::JobRecord;
use serde::Serialize;

use crate::arrivals::{ArrivalMetrics, ArrivalModel};
use crate::artifact::{
    current_path, fingerprint, save_version, Artifact, TrainingInfo, SCHEMA_VERSION,
};
use crate::dataset::prepare;
use crate::error::ModelError;
use crate::eval::{baseline_columns, chronological, test_points, Evaluation, Metrics, TestPoints};
use crate::features::{choose_extras, feature_names};
use crate::planning::PlanChoice;
use crate::plots;
use crate::train::{RunTimeModel, Target, TrainConfig};

/// How to retrain.
#[derive(Debug, Clone)]
pub struct RetrainOptions {
    pub config: TrainConfig,
    /// Share of the history (oldest first) the evaluated model trains on.
    pub train_fraction: f64,
    /// Write even if the new model is worse than the current one.
    pub force: bool,
    /// Write SVG plots next to the artifact.
    pub plots: bool,
    /// Where the history came from (for the artifact).
    pub sources: Vec<String>,
    /// Epoch of the records' clock, if known (SWF `UnixStartTime`; 0 for CI traces).
    pub unix_start: Option<i64>,
    /// `Some(tolerance)`: try every target scale, not only `config`'s, when the
    /// held-out slice is replayed; a scale whose held-out MAE is more than `tolerance`
    /// (relatively; the CLI's is [`MAE_TOLERANCE`]) above `config`'s is not replayed.
    /// `None` (the user named a scale): `config`'s only.
    pub target_mae_tolerance: Option<f64>,
}

/// How much worse (relatively) another scale's held-out MAE may be than the configured
/// scale's for `rustci retrain` to replay it: the predictions users see must stay about
/// as accurate as they were.
pub const MAE_TOLERANCE: f64 = 0.02;

/// Adds to a choice's reason why the other scale was not replayed.
fn not_replayed(reason: &mut String, target: Target, why: impl std::fmt::Display) {
    reason.push_str(&format!(
        "; the {} scale not replayed: {why}",
        target.name()
    ));
}

/// Jobs the current version never saw that a comparison needs.
pub const MIN_UNSEEN: usize = 50;

/// The version in use, measured on the latest test jobs it never saw.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentVersion {
    pub path: PathBuf,
    /// `None` when it could not be loaded (the reason is in `problem`) or when fewer than
    /// [`MIN_UNSEEN`] test jobs are newer than its training history.
    pub model: Option<Metrics>,
    /// The new version's figures on those same jobs.
    pub new_model_same_jobs: Option<Metrics>,
    pub compared_on: usize,
    /// It was trained on exactly this history (same fingerprint).
    pub same_history: bool,
    /// Its training history ends after this one's newest job.
    pub newer_history: bool,
    pub problem: Option<String>,
}

impl CurrentVersion {
    fn unusable(path: PathBuf, problem: String) -> Self {
        Self {
            path,
            model: None,
            new_model_same_jobs: None,
            compared_on: 0,
            same_history: false,
            newer_history: false,
            problem: Some(problem),
        }
    }
}

/// What a retrain did.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainReport {
    pub jobs: usize,
    pub skipped_no_run_time: usize,
    pub fingerprint: String,
    pub features: Vec<String>,
    pub evaluation: Evaluation,
    pub arrivals: Option<ArrivalMetrics>,
    pub current: Option<CurrentVersion>,
    pub written: bool,
    /// Why the new version was or was not written.
    pub decision: String,
    pub artifact: Option<PathBuf>,
    /// The planning estimate and correction chosen on the held-out replay (stored in the
    /// artifact); `None`: the defaults stay.
    pub planning: Option<PlanChoice>,
    /// Why no choice was made, when none was.
    pub planning_skipped: Option<String>,
    pub plots: Vec<PathBuf>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// Stages for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Features,
    Evaluate,
    ChoosePlanning,
    CompareCurrent,
    TrainFinal,
    Write,
}

impl Stage {
    pub const COUNT: u64 = 6;
    pub fn label(self) -> &'static str {
        match self {
            Stage::Features => "features",
            Stage::Evaluate => "train + evaluate",
            Stage::ChoosePlanning => "replay held-out jobs",
            Stage::CompareCurrent => "compare with current",
            Stage::TrainFinal => "train on all history",
            Stage::Write => "write artifact",
        }
    }
}

/// The latest part of the history, which the evaluated model did not train on: a
/// chooser replays it to pick how the scheduler uses the model ([`retrain_with`]).
#[derive(Debug)]
pub struct HeldOut<'a> {
    /// The evaluated model, trained on the history before the slice.
    pub model: RunTimeModel,
    /// The whole history as given; the slice is its records from `from_submit_s` on.
    pub records: &'a [JobRecord],
    /// Share of `records` (by submit time, as `rustci-sim --replay-from-fraction` cuts)
    /// before the slice: learned by the predictor, not replayed.
    pub replay_from_fraction: f64,
    /// Submit time of the slice's first job.
    pub from_submit_s: i64,
    /// Epoch of the records' clock.
    pub unix_start: Option<i64>,
}

/// Picks how the scheduler uses the model from a replay of the held-out slice:
/// `Ok(choice)`, or `Err(why no choice is made)`.
pub type Chooser<'c> = dyn FnMut(HeldOut<'_>) -> Result<PlanChoice, String> + 'c;

/// [`retrain_with`] without a replay: no choice is stored, the defaults stay.
pub fn retrain(
    records: &[JobRecord],
    out: &Path,
    opts: &RetrainOptions,
    progress: &mut dyn FnMut(Stage),
) -> Result<RetrainReport, ModelError> {
    retrain_with(records, out, opts, progress, &mut |_| {
        Err("no replay of held-out jobs was asked for".to_string())
    })
}

/// Runs the retraining job on `records` and writes into `out` (see module docs);
/// `choose` replays the held-out slice with the evaluated model and its choice goes
/// into the artifact.
pub fn retrain_with(
    records: &[JobRecord],
    out: &Path,
    opts: &RetrainOptions,
    progress: &mut dyn FnMut(Stage),
    choose: &mut Chooser<'_>,
) -> Result<RetrainReport, ModelError> {
    let started = Instant::now();
    if records.is_empty() {
        return Err(ModelError::NotEnoughData("the history is empty".into()));
    }
    progress(Stage::Features);
    let extras = choose_extras(records.iter());
    let data = prepare(records, opts.unix_start, extras.clone());
    let mut sorted: Vec<&JobRecord> = records
        .iter()
        .filter(|r| r.run_s.is_some_and(|s| s >= 0))
        .collect();
    sorted.sort_by_key(|r| r.submit_s);
    let fp = fingerprint(
        sorted
            .iter()
            .map(|r| (r.id.as_str(), r.submit_s, r.run_s.unwrap_or(0))),
    );

    progress(Stage::Evaluate);
    let (eval_model, evaluation, points) = chronological(&opts.config, &data, opts.train_fraction)?;
    let split = evaluation.train_jobs;
    let n = data.rows();
    let mut notes = eval_model.notes.clone();

    progress(Stage::ChoosePlanning);
    // The slice starts after the last job the evaluated model trained on: jobs submitted
    // in the same second as it but past the split are learned as history, not replayed,
    // so that no replayed job is one the model saw.
    let from_submit_s = match split.checked_sub(1) {
        Some(last) => data.submit_s[last] as i64 + 1,
        None => data.submit_s[0] as i64,
    };
    let before = records
        .iter()
        .filter(|r| r.submit_s < from_submit_s)
        .count();
    let held_out = |model| HeldOut {
        model,
        records,
        replay_from_fraction: before as f64 / records.len() as f64,
        from_submit_s,
        unix_start: opts.unix_start,
    };
    let mut config = opts.config;
    let (mut planning, planning_skipped) = match choose(held_out(eval_model)) {
        Ok(c) => (Some(c), None),
        Err(why) => (None, Some(why)),
    };
    let mut evaluation = evaluation;
    let mut points = points;
    if let (Some(first), Some(tolerance)) = (planning.as_mut(), opts.target_mae_tolerance) {
        let configured = opts.config.params().target;
        for target in Target::ALL.into_iter().filter(|&t| t != configured) {
            let other = opts.config.with_target(target);
            // The other scale is optional: a failure leaves the configured one, said.
            let (model, eval, pts) = match chronological(&other, &data, opts.train_fraction) {
                Ok(trained) => trained,
                Err(e) => {
                    not_replayed(&mut first.reason, target, format!("training failed: {e}"));
                    continue;
                }
            };
            let limit = evaluation.model.mae_s * (1.0 + tolerance);
            if eval.model.mae_s > limit {
                let why = format!(
                    "its held-out MAE {:.0} s is more than {:.0}% above {:.0} s",
                    eval.model.mae_s,
                    tolerance * 100.0,
                    evaluation.model.mae_s
                );
                not_replayed(&mut first.reason, target, why);
                continue;
            }
            let their_notes = model.notes.clone();
            let theirs = match choose(held_out(model)) {
                Ok(c) => c,
                Err(why) => {
                    not_replayed(&mut first.reason, target, why);
                    continue;
                }
            };
            let mut figures = first.candidates.clone();
            figures.extend(theirs.candidates.iter().copied());
            // `first` has a finite figure, so the pick over both has one too.
            let Some(both) = PlanChoice::pick(figures, first.replay.clone()) else {
                continue;
            };
            if both.target == Some(target) {
                notes = their_notes;
                config = other;
                evaluation = eval;
                points = pts;
            }
            *first = both;
        }
    }

    progress(Stage::CompareCurrent);
    // The version in use is compared on jobs it never saw: those submitted after its
    // training history ended (and inside our test split). Measured on jobs it trained
    // on, any forest looks better than it is.
    let compare = |cur: &Artifact| -> Result<Option<(usize, Metrics, Metrics)>, ModelError> {
        let from = match cur.training.last_submit_s {
            Some(last) => data.submit_s.partition_point(|&s| s <= last as f64),
            None => n,
        }
        .max(split);
        if n - from < MIN_UNSEEN {
            return Ok(None);
        }
        let cur_data;
        let d = if cur.model.extras == data.extras {
            &data
        } else {
            // The current version may use other extra columns: rebuild its features.
            cur_data = prepare(records, opts.unix_start, cur.model.extras.clone());
            &cur_data
        };
        // Both versions walk the whole test split, so that their per-key margins have
        // learned from the same finished jobs when the compared ones come; only those
        // are measured. The evaluated model's walk is in `points` already.
        let cur_points = test_points(d, &cur.model, split..n)?;
        let o = from - split;
        let measure = |p: &TestPoints| {
            Metrics::of(&p.actual_s[o..], &p.predicted_s[o..], Some(&p.upper_s[o..]))
        };
        Ok(Some((n - from, measure(&cur_points), measure(&points))))
    };
    let newest = sorted.last().map(|r| r.submit_s);
    let current = match current_path(out) {
        Ok(None) => None,
        Ok(Some(path)) => Some(match Artifact::load(&path) {
            Ok(cur) => match compare(&cur) {
                Ok(Some((jobs, cur_m, new_m))) => CurrentVersion {
                    path,
                    model: Some(cur_m),
                    new_model_same_jobs: Some(new_m),
                    compared_on: jobs,
                    same_history: cur.training.fingerprint == fp,
                    newer_history: cur.training.last_submit_s > newest,
                    problem: None,
                },
                Ok(None) => CurrentVersion {
                    path,
                    model: None,
                    new_model_same_jobs: None,
                    compared_on: 0,
                    same_history: cur.training.fingerprint == fp,
                    newer_history: cur.training.last_submit_s > newest,
                    problem: None,
                },
                Err(e) => CurrentVersion::unusable(path, e.to_string()),
            },
            Err(e) => CurrentVersion::unusable(path, e.to_string()),
        }),
        Err(e) => Some(CurrentVersion::unusable(out.join("CURRENT"), e.to_string())),
    };
    let (write, decision) = match &current {
        None => (true, "no current version".to_string()),
        Some(c) if c.problem.is_some() => (
            true,
            format!(
                "current version unusable ({}); replacing it",
                c.problem.as_deref().unwrap_or("unknown")
            ),
        ),
        Some(CurrentVersion {
            model: Some(cur),
            new_model_same_jobs: Some(new),
            compared_on,
            ..
        }) => {
            let verdict = format!(
                "on the {compared_on} latest jobs the current version never saw: new MAE {:.1} s, current {:.1} s",
                new.mae_s, cur.mae_s
            );
            if new.mae_s <= cur.mae_s {
                (true, format!("new version is no worse ({verdict})"))
            } else if opts.force {
                (true, format!("forced, although worse ({verdict})"))
            } else {
                (false, format!("kept current: new version is worse ({verdict}); use --force to replace"))
            }
        }
        Some(c) if c.same_history && !opts.force => (
            false,
            "kept current: it was trained on this same history (use --force to retrain anyway)".to_string(),
        ),
        Some(c) if c.same_history => (true, "forced: retrained on the same history".to_string()),
        Some(c) if c.newer_history && !opts.force => (
            false,
            "kept current: it was trained on newer jobs than this history has (use --force to replace it)"
                .to_string(),
        ),
        Some(_) => (
            true,
            format!(
                "fewer than {MIN_UNSEEN} jobs newer than the current version's history: no fair comparison, replacing it with the version trained on this history"
            ),
        ),
    };

    let arrivals_model = ArrivalModel::fit(records, opts.unix_start.unwrap_or(0));
    let arrivals = {
        let mut by_time: Vec<&JobRecord> = records.iter().collect();
        by_time.sort_by_key(|r| r.submit_s);
        let cut = (by_time.len() as f64 * opts.train_fraction) as usize;
        let hist: Vec<JobRecord> = by_time[..cut].iter().map(|r| (*r).clone()).collect();
        let test: Vec<JobRecord> = by_time[cut..].iter().map(|r| (*r).clone()).collect();
        ArrivalModel::fit(&hist, opts.unix_start.unwrap_or(0)).evaluate(
            &hist,
            &test,
            opts.unix_start.unwrap_or(0),
        )
    };

    let mut artifact_path = None;
    let mut plot_paths = Vec::new();
    if write {
        progress(Stage::TrainFinal);
        let model = config.fit(&data, 0..n)?;
        notes.extend(model.notes.iter().cloned());
        progress(Stage::Write);
        let artifact = Artifact {
            schema_version: SCHEMA_VERSION,
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            features: feature_names(&extras),
            training: TrainingInfo {
                fingerprint: fp.clone(),
                jobs: n,
                sources: opts.sources.clone(),
                unix_start: opts.unix_start,
                last_submit_s: sorted.last().map(|r| r.submit_s),
                params: *config.params(),
            },
            evaluation: evaluation.clone(),
            model,
            arrivals: Some(arrivals_model),
            planning: planning.clone(),
        };
        let path = save_version(out, &artifact)?;
        if opts.plots {
            let stem = crate::artifact::version_name(&path);
            plot_paths.push(plots::predicted_vs_actual(
                &out.join(format!("{stem}-predicted-vs-actual.svg")),
                "run time: predicted vs actual (test jobs)",
                &points.actual_s,
                &points.predicted_s,
                5_000,
            )?);
            let rows: Vec<usize> = (split..n).collect();
            let (req, ts, l5) = baseline_columns(&data, &rows);
            let mut series: Vec<(&str, &[f64])> = vec![
                ("model", &points.predicted_s),
                ("tsafrir", &ts),
                ("last-5 median", &l5),
            ];
            if let Some(req) = &req {
                series.push(("requested", req));
            }
            plot_paths.push(plots::error_cdf(
                &out.join(format!("{stem}-error-cdf.svg")),
                "absolute error CDF (test jobs)",
                &points.actual_s,
                &series,
            )?);
        }
        artifact_path = Some(path);
    }
    notes.sort();
    notes.dedup();
    Ok(RetrainReport {
        jobs: n,
        skipped_no_run_time: data.skipped_no_run_time,
        fingerprint: fp,
        features: feature_names(&extras),
        evaluation,
        arrivals,
        current,
        written: write,
        decision,
        artifact: artifact_path,
        planning,
        planning_skipped,
        plots: plot_paths,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
