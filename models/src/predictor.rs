//! The core's [`Predictor`] backed by a trained model: the scheduler asks for estimates
//! without linking an ML library.

use std::sync::{Arc, RwLock};

use rustci_scheduler::predictor::{tsafrir_correction, Estimate, Predictor};
use rustci_scheduler::{JobSpec, Millis};

use crate::arrivals::ArrivalModel;
use crate::artifact::Artifact;
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
        }
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
        model.predict_one(&mut row, same, &Baseline::of(&looked, input.requested_s))
    }
}

fn to_ms(s: f64) -> Millis {
    (s * 1000.0).round().clamp(1.0, 1e15) as Millis
}

impl Predictor for ModelPredictor {
    fn estimate(&self, job: &JobSpec) -> Estimate {
        let p = self.predict(job);
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

    fn observe(&mut self, job: &JobSpec, run_ms: Millis, finished_ms: Millis) {
        let requested = job
            .requested_ms
            .filter(|&r| r > 0)
            .map(|r| r as f64 / 1000.0);
        self.history.observe(
            spec_keys(job),
            run_ms as f64 / 1000.0,
            requested,
            finished_ms as f64 / 1000.0,
        );
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// A job that outlived its point estimate is first expected to reach the model's
    /// upper quantile, then grows by Tsafrir's steps beyond it.
    fn correct(&self, job: &JobSpec, estimate: Estimate, corrections: u32) -> Millis {
        if estimate.upper_ms > estimate.point_ms {
            match corrections {
                0 => estimate.upper_ms,
                n => tsafrir_correction(estimate.upper_ms, n - 1, job.requested_ms),
            }
        } else {
            tsafrir_correction(estimate.point_ms, corrections, job.requested_ms)
        }
    }
}
