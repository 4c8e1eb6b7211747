//! The core's [`Predictor`] backed by a trained model: the scheduler asks for estimates
//! without linking an ML library.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustci_scheduler::domain::JobId;
use rustci_scheduler::predictor::{Estimate, Predictor};
use rustci_scheduler::{JobSpec, Millis};

use crate::arrivals::ArrivalModel;
use crate::artifact::{load_current, version_name, Artifact};
use crate::calibration::{debias, residual, KeyResiduals};
use crate::dataset::calibration_key;
use crate::error::ModelError;
use crate::eval::Evaluation;
use crate::features::{featurize, spec_keys, Baseline, JobInput};
use crate::history::History;
pub use crate::planning::{Correction, PlanWith, Usage};
use crate::train::RunTimeModel;

/// A shared, swappable model: `rustci serve` replaces it when a new version appears
/// while every predictor keeps its learned history.
#[derive(Debug, Clone)]
pub struct ModelHandle {
    inner: Arc<RwLock<Arc<RunTimeModel>>>,
    name: Arc<RwLock<String>>,
    /// The version's arrival forecaster (predictive autoscaling), when it has one.
    arrivals: Arc<RwLock<Option<Arc<ArrivalModel>>>>,
    /// How the version in use says to plan and correct (its artifact's choice, else the
    /// defaults), and whether that came from the artifact.
    usage: Arc<RwLock<(Usage, bool)>>,
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
            usage: Arc::new(RwLock::new((Usage::default(), false))),
        }
    }

    /// The artifact's run-time model and its arrival forecaster.
    pub fn from_artifact(artifact: Artifact, name: impl Into<String>) -> Self {
        let handle = Self::new(artifact.model, name);
        write(&handle.arrivals, artifact.arrivals.map(Arc::new));
        write(&handle.usage, stored_usage(artifact.planning.as_ref()));
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

    /// The planning estimate and correction the version in use chose (`rustci retrain`
    /// replays them), and `true` if it stored a choice; the defaults and `false` if not.
    pub fn usage(&self) -> (Usage, bool) {
        read(&self.usage)
    }

    /// Swaps the run-time model only (the arrival forecaster and usage stay).
    pub fn replace(&self, model: RunTimeModel, name: impl Into<String>) {
        write(&self.inner, Arc::new(model));
        write(&self.name, name.into());
    }

    /// Swaps to a whole new version: run-time model and arrival forecaster.
    pub fn replace_artifact(&self, artifact: Artifact, name: impl Into<String>) {
        write(&self.arrivals, artifact.arrivals.map(Arc::new));
        write(&self.usage, stored_usage(artifact.planning.as_ref()));
        self.replace(artifact.model, name);
    }

    pub fn version_name(&self) -> String {
        read(&self.name)
    }
}

fn stored_usage(choice: Option<&crate::planning::PlanChoice>) -> (Usage, bool) {
    choice.map_or((Usage::default(), false), |c| (c.usage, true))
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
    /// Overrides of the version's choice (`None`: what [`ModelHandle::usage`] says).
    plan_with: Option<PlanWith>,
    correction: Option<Correction>,
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

impl ModelPredictor {
    pub fn new(model: ModelHandle, epoch_s: Option<i64>) -> Self {
        Self {
            name: format!("model:{}", model.version_name()),
            model,
            history: History::default(),
            epoch_s,
            plan_with: None,
            correction: None,
            calibration: LiveCalibration::default(),
        }
    }

    /// How estimates of jobs that outlive them grow (EASY++), whatever the version
    /// chose.
    pub fn correcting_with(mut self, correction: Correction) -> Self {
        self.correction = Some(correction);
        // Named only where it departs from the version's own choice.
        if correction != self.model.usage().0.correction {
            self.name.push('+');
            self.name.push_str(correction.name());
        }
        self
    }

    /// Plan with this value of the model's, whatever the version chose.
    pub fn planning_with(mut self, plan_with: PlanWith) -> Self {
        self.plan_with = Some(plan_with);
        if plan_with != self.model.usage().0.plan_with {
            self.name.push('@');
            self.name.push_str(plan_with.name());
        }
        self
    }

    /// What this predictor plans and corrects with now: its overrides, else the
    /// version's choice (which follows a swap to a new version).
    pub fn usage(&self) -> Usage {
        let (chosen, _) = self.model.usage();
        Usage {
            plan_with: self.plan_with.unwrap_or(chosen.plan_with),
            correction: self.correction.unwrap_or(chosen.correction),
        }
    }

    /// The prediction in seconds for `spec` given the history so far.
    pub fn predict(&self, spec: &JobSpec) -> crate::train::Prediction {
        self.predict_keyed(spec).0
    }

    /// The prediction and the job's calibration key.
    fn predict_keyed(&self, spec: &JobSpec) -> (crate::train::Prediction, u64) {
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
        let key = calibration_key(input.keys);
        if model.per_key_upper {
            if let Some(m) = self.calibration.residuals.margin(key, model.upper_quantile) {
                p.upper_s = model.upper_at(p.point_s, m, input.requested_s);
            }
        }
        (p, key)
    }
}

fn to_ms(s: f64) -> Millis {
    (s * 1000.0).round().clamp(1.0, 1e15) as Millis
}

impl ModelPredictor {
    fn to_estimate(
        &self,
        p: &crate::train::Prediction,
        key: u64,
        requested_ms: Option<Millis>,
    ) -> Estimate {
        let planned = match self.usage().plan_with {
            PlanWith::Point => p.point_s,
            PlanWith::Upper => p.upper_s,
            PlanWith::Debiased => match self.calibration.residuals.bias(key) {
                // A job is stopped at its request: planning beyond it helps no one.
                Some(b) => {
                    let limit = requested_ms
                        .filter(|&r| r > 0)
                        .map_or(f64::INFINITY, |r| r as f64 / 1000.0);
                    debias(p.point_s, b).min(limit.max(p.point_s))
                }
                None => p.point_s,
            },
            low @ (PlanWith::Low10 | PlanWith::Low20 | PlanWith::Low30 | PlanWith::Low40) => {
                match low
                    .low_quantile()
                    .and_then(|q| self.calibration.residuals.low(key, q))
                {
                    Some(m) => debias(p.point_s, m),
                    None => p.point_s,
                }
            }
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
        let (p, key) = self.predict_keyed(job);
        self.calibration.remember(job.id, p.point_s);
        self.to_estimate(&p, key, job.requested_ms)
    }

    fn preview(&self, job: &JobSpec) -> Estimate {
        let (p, key) = self.predict_keyed(job);
        self.to_estimate(&p, key, job.requested_ms)
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

    /// By the predictor's [`Correction`] (its override, else the version's choice); by
    /// default a job that outlived its point
    /// estimate is first expected to reach the model's upper quantile, then grows by
    /// Tsafrir's steps beyond it.
    fn correct(&self, job: &JobSpec, estimate: Estimate, corrections: u32) -> Millis {
        self.usage()
            .correction
            .apply(estimate, corrections, job.requested_ms)
    }
}
