//! What the engine hands the report: one row per simulated job, plus run facts.

use serde::Serialize;

/// One job as it ran in the simulation. Times are seconds (f64, from the engine's
/// millisecond clock) on the trace's own time axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobResult {
    /// Index into the workload's records (input order).
    pub index: usize,
    /// The trace's job id.
    pub id: String,
    pub tenant: String,
    pub qos: String,
    pub submit_s: f64,
    pub start_s: f64,
    pub end_s: f64,
    pub slots: u32,
    pub pool: String,
    pub runner: u32,
}

impl JobResult {
    pub fn wait_s(&self) -> f64 {
        self.start_s - self.submit_s
    }
    pub fn run_s(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// Pool facts the report needs for capacity, runner-hours and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolFacts {
    pub name: String,
    pub runners: u32,
    pub slots_per_runner: u32,
    pub cost_per_hour: f64,
}

/// A QoS class as the report needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QosFacts {
    pub name: String,
    pub wait_target_s: f64,
}

/// Records the simulator did not run, by cause; reported so nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Skipped {
    /// Run time unknown in the trace (SWF -1, empty CI duration).
    pub unknown_run_time: u64,
    /// Negative run time recorded (as read; readers reject other negatives).
    pub negative_run_time: u64,
    /// Neither allocated nor requested processors known.
    pub unknown_slots: u64,
    /// No pool of the fleet has the labels or the slots the job needs.
    pub unschedulable: u64,
}

/// Everything a report is computed from.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub results: Vec<JobResult>,
    pub pools: Vec<PoolFacts>,
    pub qos: Vec<QosFacts>,
    pub skipped: Skipped,
    /// Simulated time span: first submit to last end, seconds.
    pub sim_start_s: f64,
    pub sim_end_s: f64,
    /// Events the engine processed, and the wall time it took.
    pub events: u64,
    pub wall_s: f64,
    pub policy: String,
    pub predictor: String,
    pub workload: String,
    pub seed: Option<u64>,
}
