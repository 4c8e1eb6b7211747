//! The core's [`Predictor`] backed by a trained model: the scheduler asks for estimates
//! without linking an ML library.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustci_scheduler::domain::JobId;
use rustci_scheduler::predictor::{tsafrir_correction, Estimate, Predictor};
use rustci_scheduler::{JobSpec, Millis};

use crate::arrivals::ArrivalModel;
use crate::artifact::{load_current, version_name, Artifact};
use crate::calibration::{residual, KeyResiduals};
use crate::dataset::calibration_key;
use crate::error::ModelError;
use crate::eval::Evaluation;
use crate::features::{featurize, spec_keys, Baseline, JobInput};
use crate::history::History;
use crate::train::RunTimeModel;

/// A shared, swappable model: `rustci serve` replaces it when a new version appears
/// while every predictor keeps its learned history.
#[derive(Debug, Clone)]
pub struct ModelHandle {
    inner: Arc<RwLock<Arc<RunTimeModel>>>,
    name: Arc<RwLock<String>>,
    /// The version's arrival forecaster (predictive autoscaling), when it has one.
    arrivals: Arc<RwLock<Option<Arc<ArrivalModel>>>>,
}

/// Reads a lock that a panicking writer may have poisoned: writers only swap whole
/// values, so what is inside is always complete.
fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

impl ModelHandle {
    pub fn new(model: RunTimeModel, name: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(model))),
            name: Arc::new(RwLock::new(name.into())),
            arrivals: Arc::new(RwLock::new(None)),
        }
    }

    /// The artifact's run-time model and its arrival forecaster.
    pub fn from_artifact(artifact: Artifact, name: impl Into<String>) -> Self {
        let handle = Self::new(artifact.model, name);
        write(&handle.arrivals, artifact.arrivals.map(Arc::new));
        handle
    }

    /// The current version of a model directory (`rustci retrain --out DIR`), named
    /// after its file (`v000003`), as `rustci-sim --predictor model:DIR` and
    /// `rustci serve --model DIR` load it.
    pub fn load_current(dir: &Path) -> Result<CurrentVersion, ModelError> {
        let (path, artifact) = load_current(dir)?;
        let evaluation = artifact.evaluation.clone();
        Ok(CurrentVersion {
            handle: Self::from_artifact(artifact, version_name(&path)),
            path,
            evaluation,
        })
    }

    /// The model in use now.
    pub fn get(&self) -> Arc<RunTimeModel> {
        read(&self.inner)
    }

    /// The arrival forecaster of the version in use, if it has one.
    pub fn arrivals(&self) -> Option<Arc<ArrivalModel>> {
        read(&self.arrivals)
    }

    /// Swaps the run-time model only (the arrival forecaster stays).
    pub fn replace(&self, model: RunTimeModel, name: impl Into<String>) {
        write(&self.inner, Arc::new(model));
        write(&self.name, name.into());
    }

    /// Swaps to a whole new version: run-time model and arrival forecaster.
    pub fn replace_artifact(&self, artifact: Artifact, name: impl Into<String>) {
        write(&self.arrivals, artifact.arrivals.map(Arc::new));
        self.replace(artifact.model, name);
    }

    pub fn version_name(&self) -> String {
        read(&self.name)
    }
}

/// A model directory's current version, loaded ([`ModelHandle::load_current`]).
#[derive(Debug)]
pub struct CurrentVersion {
    pub handle: ModelHandle,
    /// The version's file.
    pub path: PathBuf,
    /// How the version measured on the jobs it was not trained on (for logs).
    pub evaluation: Evaluation,
}

/// Estimates from a trained model, with per-user/job/branch history learned from the
/// jobs this scheduler sees finish.
#[derive(Debug)]
pub struct ModelPredictor {
    model: ModelHandle,
    history: History,
    /// Unix time of the driver's clock zero (time-of-day features), if known.
    epoch_s: Option<i64>,
    name: String,
    plan_with: PlanWith,
    correction: Correction,
    /// Per-key upper margins and the points they are measured against.
    calibration: LiveCalibration,
}

/// Jobs whose submit-time point is remembered at most, a safety net: a cancelled job's
/// point goes at once ([`Predictor::forget`]); beyond it the lowest ids go first.
const MAX_PENDING: usize = 1 << 20;

#[derive(Debug, Default)]
struct LiveCalibration {
    residuals: KeyResiduals,
    /// Point estimate (seconds) of each job given one and not yet finished.
    pending: BTreeMap<JobId, f64>,
}

impl LiveCalibration {
    fn remember(&mut self, job: JobId, point_s: f64) {
        // The first estimate is the one made at submit; later ones keep it.
        self.pending.entry(job).or_insert(point_s);
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
    }
}

/// What a running job that outlived its estimate is expected to take (EASY++'s
/// correction), as a total run time from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Correction {
    /// The model's upper quantile first, then Tsafrir's steps beyond it.
    #[default]
    UpperThenIncremental,
    /// Tsafrir's steps (1 min, 5, 15, 30 min, 1 h, ...) beyond the planned estimate.
    Incremental,
    /// Twice the time the job has run so far (recursive doubling), stopping once at the
    /// request.
    Doubling,
    /// The user's request, then doubling beyond it if the job outlives that too.
    Request,
}

impl Correction {
    /// The total run time to expect after `corrections` earlier corrections of a job
    /// planned at `estimate.point_ms`.
    pub fn apply(
        self,
        estimate: Estimate,
        corrections: u32,
        requested_ms: Option<Millis>,
    ) -> Millis {
        let point = estimate.point_ms.max(1);
        let requested = requested_ms.filter(|&r| r > 0);
        match self {
            Correction::UpperThenIncremental if estimate.upper_ms > point => match corrections {
                0 => estimate.upper_ms,
                n => tsafrir_correction(estimate.upper_ms, n - 1, requested),
            },
            Correction::UpperThenIncremental | Correction::Incremental => {
                tsafrir_correction(point, corrections, requested)
            }
            Correction::Doubling => doubling(point, corrections, requested),
            Correction::Request => match requested {
                Some(r) if r > point => match corrections {
                    0 => r,
                    n => doubling(r, n - 1, None),
                },
                _ => doubling(point, corrections, requested),
            },
        }
    }
}

/// `first` doubled `corrections + 1` times, each time from the previous value (the time
/// run so far), stopping once at the request (a job that outlives its request as well
/// keeps doubling from there).
fn doubling(first: Millis, corrections: u32, requested: Option<Millis>) -> Millis {
    let mut e = first.max(1);
    for _ in 0..=corrections.min(64) {
        e = match requested {
            Some(r) if e < r => e.saturating_mul(2).min(r),
            _ => e.saturating_mul(2),
        };
    }
    e
}

/// Which of the model's values the scheduler plans with (`Estimate::point_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanWith {
    /// The point estimate (least absolute error).
    #[default]
    Point,
    /// The upper quantile (P90 by default): fewer jobs outlive their plan.
    Upper,
}

impl ModelPredictor {
    pub fn new(model: ModelHandle, epoch_s: Option<i64>) -> Self {
        Self {
            name: format!("model:{}", model.version_name()),
            model,
            history: History::default(),
            epoch_s,
            plan_with: PlanWith::Point,
            correction: Correction::default(),
            calibration: LiveCalibration::default(),
        }
    }

    /// How estimates of jobs that outlive them grow (EASY++).
    pub fn correcting_with(mut self, correction: Correction) -> Self {
        self.correction = correction;
        if correction != Correction::default() {
            self.name.push_str(match correction {
                Correction::UpperThenIncremental => "",
                Correction::Incremental => "+incremental",
                Correction::Doubling => "+doubling",
                Correction::Request => "+request",
            });
        }
        self
    }

    /// Plan with the upper quantile instead of the point estimate.
    pub fn planning_with(mut self, plan_with: PlanWith) -> Self {
        self.plan_with = plan_with;
        if plan_with == PlanWith::Upper {
            self.name.push_str("@upper");
        }
        self
    }

    /// The prediction in seconds for `spec` given the history so far.
    pub fn predict(&self, spec: &JobSpec) -> crate::train::Prediction {
        let model = self.model.get();
        let input = JobInput::from_spec(spec, self.epoch_s);
        let looked = self.history.look(input.keys);
        let mut row = Vec::with_capacity(model.names.len());
        featurize(&input, &looked, &model.extras, &mut row);
        let same = looked.job.unwrap_or(looked.user).count;
        let mut p = model.predict_one(
            &mut row,
            same,
            &Baseline::of(&looked, input.requested_s, input.size),
        );
        if model.per_key_upper {
            let key = calibration_key(input.keys);
            if let Some(m) = self.calibration.residuals.margin(key, model.upper_quantile) {
                p.upper_s = model.upper_at(p.point_s, m, input.requested_s);
            }
        }
        p
    }
}

fn to_ms(s: f64) -> Millis {
    (s * 1000.0).round().clamp(1.0, 1e15) as Millis
}

impl ModelPredictor {
    fn to_estimate(&self, p: &crate::train::Prediction) -> Estimate {
        let planned = match self.plan_with {
            PlanWith::Point => p.point_s,
            PlanWith::Upper => p.upper_s,
        };
        let point_ms = to_ms(planned);
        Estimate {
            point_ms,
            upper_ms: to_ms(p.upper_s).max(point_ms),
        }
    }
}

impl Predictor for ModelPredictor {
    /// Remembers the point until the job ends, to measure it against the run.
    fn estimate(&mut self, job: &JobSpec) -> Estimate {
        let p = self.predict(job);
        self.calibration.remember(job.id, p.point_s);
        self.to_estimate(&p)
    }

    fn preview(&self, job: &JobSpec) -> Estimate {
        self.to_estimate(&self.predict(job))
    }

    fn observe(&mut self, job: &JobSpec, run_ms: Millis, finished_ms: Millis, failed: bool) {
        let requested = job
            .requested_ms
            .filter(|&r| r > 0)
            .map(|r| r as f64 / 1000.0);
        let keys = spec_keys(job);
        let run_s = run_ms as f64 / 1000.0;
        let cal = &mut self.calibration;
        // A job finished without an estimate from this predictor (history relearned
        // from the store after a restart) has no point to measure.
        if let Some(point_s) = cal.pending.remove(&job.id) {
            cal.residuals
                .push(calibration_key(keys), residual(run_s, point_s));
        }
        self.history.observe(
            keys,
            run_s,
            requested,
            finished_ms as f64 / 1000.0,
            failed,
            // A core job spec carries no build-matrix size.
            1.0,
        );
    }

    fn forget(&mut self, job: &JobSpec) {
        self.calibration.pending.remove(&job.id);
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// By the predictor's [`Correction`]; by default a job that outlived its point
    /// estimate is first expected to reach the model's upper quantile, then grows by
    /// Tsafrir's steps beyond it.
    fn correct(&self, job: &JobSpec, estimate: Estimate, corrections: u32) -> Millis {
        self.correction
            .apply(estimate, corrections, job.requested_ms)
    }
}

#[cfg(test)]
mod correction_tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn est(point: Millis, upper: Millis) -> Estimate {
        Estimate {
            point_ms: point,
            upper_ms: upper,
        }
    }

    #[test]
    fn doubling_doubles_stops_once_at_the_request_then_doubles_on() {
        let e = est(10 * MIN, 20 * MIN);
        let c = Correction::Doubling;
        assert_eq!(c.apply(e, 0, Some(60 * MIN)), 20 * MIN);
        assert_eq!(c.apply(e, 1, Some(60 * MIN)), 40 * MIN);
        assert_eq!(c.apply(e, 2, Some(60 * MIN)), 60 * MIN);
        // A job that outlives its request as well.
        assert_eq!(c.apply(e, 3, Some(60 * MIN)), 120 * MIN);
        assert_eq!(c.apply(e, 4, Some(60 * MIN)), 240 * MIN);
        assert_eq!(c.apply(e, 0, None), 20 * MIN);
        assert!(c.apply(e, 200, None) > 0);
    }

    #[test]
    fn request_goes_to_the_request_then_doubles() {
        let e = est(10 * MIN, 20 * MIN);
        let c = Correction::Request;
        assert_eq!(c.apply(e, 0, Some(60 * MIN)), 60 * MIN);
        assert_eq!(c.apply(e, 1, Some(60 * MIN)), 120 * MIN);
        // No request: doubling.
        assert_eq!(c.apply(e, 0, None), 20 * MIN);
    }

    #[test]
    fn upper_then_incremental_and_incremental() {
        let e = est(10 * MIN, 20 * MIN);
        let r = Some(600 * MIN);
        let c = Correction::UpperThenIncremental;
        assert_eq!(c.apply(e, 0, r), 20 * MIN);
        assert_eq!(c.apply(e, 1, r), 21 * MIN);
        assert_eq!(c.apply(e, 2, r), 25 * MIN);
        assert_eq!(Correction::Incremental.apply(e, 0, r), 11 * MIN);
        assert_eq!(Correction::Incremental.apply(e, 1, r), 15 * MIN);
        // Without a margin above the point, both are Tsafrir's steps.
        assert_eq!(c.apply(est(10 * MIN, 10 * MIN), 0, r), 11 * MIN);
    }
}
