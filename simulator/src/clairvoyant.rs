//! The clairvoyant predictor: every job's true (recorded) run time, as point and upper
//! estimate. Simulator only (a live service cannot know a run time before the run): it
//! is the bound a perfect model would reach, the reference the others are compared with.

use rustci_scheduler::{Estimate, JobSpec, Millis, Predictor};

use crate::workload::SimJob;

/// Knows the run time of each job of one prepared workload, by job id.
#[derive(Debug, Clone)]
pub struct Clairvoyant {
    run_ms: Vec<Millis>,
}

impl Clairvoyant {
    /// For `jobs`, whose ids are their indices (as `workload::prepare` numbers them).
    pub fn new(jobs: &[SimJob]) -> Self {
        let mut run_ms = vec![0; jobs.len()];
        for j in jobs {
            if let Some(slot) = run_ms.get_mut(j.spec.id.0 as usize) {
                *slot = j.run_ms;
            }
        }
        Self { run_ms }
    }
}

impl Predictor for Clairvoyant {
    fn preview(&self, job: &JobSpec) -> Estimate {
        // A job never played (manual) or skipped has no run: 1 ms, the core's floor.
        let ms = self
            .run_ms
            .get(job.id.0 as usize)
            .copied()
            .unwrap_or(0)
            .max(1);
        Estimate {
            point_ms: ms,
            upper_ms: ms,
        }
    }

    fn name(&self) -> &str {
        "clairvoyant"
    }
}
