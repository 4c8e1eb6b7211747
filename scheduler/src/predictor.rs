//! Run-time estimates. The core asks a [`Predictor`]; `rustci-models` implements it with
//! trained models, so the core never links an ML library.

use serde::Serialize;

use crate::domain::{JobSpec, Millis, TenantId};
use crate::hash::IdMap;

/// A run-time estimate: the point value policies plan with, and an upper quantile for
/// reservations that must rarely be exceeded and for autoscaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub point_ms: Millis,
    pub upper_ms: Millis,
}

/// A source of run-time estimates. The core calls [`Predictor::estimate`] once per job it
/// is given (the job was submitted), then for that job exactly one of
/// [`Predictor::observe`] (it ended) or [`Predictor::forget`] (it was cancelled);
/// [`Predictor::preview`] any time, for ETAs.
pub trait Predictor: Send {
    /// A job was submitted: the estimate the core plans it with. A predictor may remember
    /// what it needs of it (to measure the estimate against the run) until the job's
    /// [`Predictor::observe`] or [`Predictor::forget`]. By default
    /// [`Predictor::preview`], for predictors that keep nothing per job.
    fn estimate(&mut self, job: &JobSpec) -> Estimate {
        self.preview(job)
    }

    /// What [`Predictor::estimate`] would say of `job` now, changing nothing: the ETA of
    /// a job the core is not submitting (finished, parked, or checked before it is).
    fn preview(&self, job: &JobSpec) -> Estimate;

    /// A job ended at `finished_ms` after running `run_ms`, `failed` or not: predictors
    /// that learn from history do so here.
    fn observe(&mut self, _job: &JobSpec, _run_ms: Millis, _finished_ms: Millis, _failed: bool) {}

    /// A job the core gave an estimate will not end (it was cancelled): predictors that
    /// keep per-job state from the estimate drop it.
    fn forget(&mut self, _job: &JobSpec) {}

    /// Name for reports.
    fn name(&self) -> &str;

    /// The total run time to expect of a running job that outlived its estimate, after
    /// `corrections` earlier corrections (EASY++). Tsafrir's corrector by default.
    fn correct(&self, job: &JobSpec, estimate: Estimate, corrections: u32) -> Millis {
        tsafrir_correction(estimate.point_ms, corrections, job.requested_ms)
    }
}

/// The user's requested time, as classic EASY uses it; `default_ms` when a job gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedTime {
    pub default_ms: Millis,
}

impl Default for RequestedTime {
    fn default() -> Self {
        Self {
            default_ms: 3_600_000,
        }
    }
}

impl Predictor for RequestedTime {
    fn preview(&self, job: &JobSpec) -> Estimate {
        let ms = job
            .requested_ms
            .filter(|&r| r > 0)
            .unwrap_or(self.default_ms)
            .max(1);
        Estimate {
            point_ms: ms,
            upper_ms: ms,
        }
    }

    fn name(&self) -> &str {
        "requested"
    }
}

/// Tsafrir, Etsion and Feitelson (2007): the average of the user's last two run times,
/// capped at the request; the request until the user has two finished jobs. Averages
/// are floored to whole seconds, as the published runs (pyss) did.
#[derive(Debug, Clone, Default)]
pub struct Tsafrir {
    /// Per tenant: (last, the one before), milliseconds.
    history: IdMap<TenantId, (Millis, Option<Millis>)>,
    /// For jobs without a request.
    pub default_ms: Millis,
}

impl Tsafrir {
    pub fn new(default_ms: Millis) -> Self {
        Self {
            history: IdMap::default(),
            default_ms,
        }
    }
}

impl Predictor for Tsafrir {
    fn preview(&self, job: &JobSpec) -> Estimate {
        let requested = job
            .requested_ms
            .filter(|&r| r > 0)
            .unwrap_or(self.default_ms)
            .max(1);
        let point = match self.history.get(&job.tenant) {
            Some(&(last, Some(prev))) => tsafrir_point_ms(last, prev, Some(requested)),
            _ => requested,
        };
        Estimate {
            point_ms: point,
            upper_ms: requested.max(point),
        }
    }

    fn observe(&mut self, job: &JobSpec, run_ms: Millis, _finished_ms: Millis, _failed: bool) {
        match self.history.get_mut(&job.tenant) {
            Some(e) => *e = (run_ms, Some(e.0)),
            None => {
                self.history.insert(job.tenant, (run_ms, None));
            }
        }
    }

    fn name(&self) -> &str {
        "tsafrir"
    }
}

/// Tsafrir's estimate from the user's last two run times: their mean floored to whole
/// seconds (as the published runs did), capped at the request, at least 1 ms. The one
/// definition for the core's predictor and the models' baseline.
pub fn tsafrir_point_ms(last_ms: Millis, prev_ms: Millis, requested_ms: Option<Millis>) -> Millis {
    ((last_ms + prev_ms) / 2 / 1000 * 1000)
        .min(requested_ms.unwrap_or(Millis::MAX))
        .max(1)
}

/// How a running job's estimate grows when the job outlives it (Tsafrir's corrector):
/// by 1 min, then to 5, 15, 30 min, 1, 2, 5, 10, 20, 50 and 100 h beyond the first
/// estimate, never past the request.
pub fn tsafrir_correction(
    first_ms: Millis,
    corrections: u32,
    requested_ms: Option<Millis>,
) -> Millis {
    const STEPS_S: [i64; 12] = [
        0, 60, 300, 900, 1800, 3600, 7200, 18000, 36000, 72000, 180000, 360000,
    ];
    let requested = requested_ms.unwrap_or(Millis::MAX);
    let n = corrections as usize + 1;
    if n >= STEPS_S.len() {
        return requested;
    }
    (first_ms + STEPS_S[n] * 1000).min(requested)
}
