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
    /// What the run's pipelines did; `None` when the workload had none.
    pub pipelines: Option<PipelineFacts>,
    /// The trace's past the predictor learned from (`--replay-from-fraction`).
    pub history: Option<HistoryFacts>,
}

/// The part of a trace learned from, not replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryFacts {
    /// The fraction of the records (by submit time) that is the past.
    pub fraction: f64,
    pub records: u64,
    /// Of those, the jobs the predictor observed as finished.
    pub learned_jobs: u64,
    /// Records after the cut left out with the pipeline they belong to, which began
    /// before the cut.
    pub cut_pipeline_records: u64,
}

/// One pipeline as it ran. Times are seconds on the trace's axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineResult {
    /// The trace's pipeline id.
    pub id: String,
    pub tenant: String,
    pub qos: String,
    /// Concurrency group (the engine's number), if any.
    pub group: Option<u64>,
    pub created_s: f64,
    /// The core's projected end right after creation.
    pub eta_s: Option<f64>,
    /// `None`: it had not ended when the run stopped.
    pub end_s: Option<f64>,
    /// `succeeded`, `failed`, `cancelled`, `blocked`, or `running` (not ended).
    pub state: &'static str,
    pub jobs: usize,
    /// Jobs that ran (to their end, or until supersession stopped them).
    pub ran_jobs: usize,
    /// Time in which none of its jobs ran, between creation and end.
    pub wait_s: Option<f64>,
}

impl PipelineResult {
    /// Time to feedback: creation to end, for a pipeline that ended normally (not
    /// cancelled: a superseded pipeline never gave feedback).
    pub fn ttf_s(&self) -> Option<f64> {
        match (self.state, self.end_s) {
            ("succeeded" | "failed" | "blocked", Some(end)) => Some(end - self.created_s),
            _ => None,
        }
    }
}

/// Everything the report says of pipelines.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PipelineFacts {
    pub pipelines: Vec<PipelineResult>,
    /// Pipeline jobs skipped (recorded so, or by a condition) and manual jobs never
    /// played.
    pub skipped_jobs: u64,
    pub manual_jobs: u64,
    /// Pipelines superseded by a newer one of their group, and their jobs cancelled.
    pub superseded: u64,
    pub superseded_jobs: u64,
    pub interrupted_jobs: u64,
    /// Slot-hours supersession saved (true run times) and lost (interrupted runs).
    pub saved_runner_hours: f64,
    pub lost_runner_hours: f64,
    /// See `workload::PipelineCounts`.
    pub unreplayable_jobs: u64,
    pub median_run_time_jobs: u64,
    pub unschedulable_pipelines: u64,
}

impl PipelineFacts {
    /// The times to feedback ([`PipelineResult::ttf_s`]), ascending: what a CDF is
    /// drawn from.
    pub fn sorted_ttfs(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.pipelines.iter().filter_map(|p| p.ttf_s()).collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// One runner's life as the report needs it, seconds on the trace's time axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerSpan {
    /// Index of its pool in `RunFacts::pools`.
    pub pool: usize,
    pub requested_s: f64,
    /// `None`: it never became ready within the run.
    pub ready_s: Option<f64>,
    /// `None`: still there at the end of the run.
    pub released_s: Option<f64>,
    pub interrupted: bool,
}

/// What an autoscaler did in a run (see `engine::ScalingOutcome`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingFacts {
    pub policy: String,
    /// The arrival forecast of the predictive policy.
    pub forecast: Option<String>,
    pub interval_s: f64,
    pub runners: Vec<RunnerSpan>,
    pub evaluations: u64,
    pub interruptions: u64,
    /// Run time lost to interruptions and run again, seconds.
    pub retried_work_s: f64,
    pub requeued_to_fallback: u64,
    pub never_started: u64,
    /// Per pool (as `RunFacts::pools`): the on-demand price a spot pool is compared with.
    pub on_demand_cost_per_hour: Vec<Option<f64>>,
}
