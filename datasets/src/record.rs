//! `JobRecord`: the one schema for job history, whatever trace or store it came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a job ended, as the trace recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Cancelled,
    /// The trace does not say (SWF status -1, an empty CI conclusion).
    #[default]
    Unknown,
}

/// One job of a history. Times are whole seconds; `submit_s` is relative to the trace's
/// epoch (`TraceMeta::unix_start`), so SWF logs keep their own numbers and CI traces use
/// Unix seconds with an epoch of 0.
///
/// Start and end are derived (`start_s`, `end_s`) from `submit_s`, `wait_s` and `run_s`
/// so that a trace which knows the run time but not the wait (SWF `-1`, TravisTorrent)
/// loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The trace's own identifier (SWF job number, Travis build id, GHA run id/job index).
    pub id: String,
    /// Who is charged for the job: the SWF user, the CI project owner or repository.
    pub tenant: String,
    pub project: Option<String>,
    /// Job, workflow or application name: what "the same job" means for history features.
    pub job_name: Option<String>,
    pub branch: Option<String>,
    /// Runner labels the job requires; a pool must carry all of them.
    pub labels: Vec<String>,
    /// Processors (SWF) or runner slots (CI) the job occupies; at least 1.
    pub slots: u32,
    /// The user's run-time estimate (SWF requested time), if the trace has one.
    pub requested_s: Option<i64>,
    pub submit_s: i64,
    /// Recorded queue wait, if known.
    pub wait_s: Option<i64>,
    /// Recorded run time, if known.
    pub run_s: Option<i64>,
    pub outcome: Outcome,
    /// QoS class name, if the trace or generator assigns one.
    pub qos: Option<String>,
    /// The queue or partition the trace recorded, if any.
    pub queue: Option<String>,
    /// Trace-specific numeric features (TravisTorrent churn, test counts, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
}

impl JobRecord {
    /// A record with only the fields every trace has; the rest empty.
    pub fn new(id: impl Into<String>, tenant: impl Into<String>, submit_s: i64) -> Self {
        Self {
            id: id.into(),
            tenant: tenant.into(),
            project: None,
            job_name: None,
            branch: None,
            labels: Vec::new(),
            slots: 1,
            requested_s: None,
            submit_s,
            wait_s: None,
            run_s: None,
            outcome: Outcome::Unknown,
            qos: None,
            queue: None,
            extra: BTreeMap::new(),
        }
    }

    pub fn start_s(&self) -> Option<i64> {
        self.wait_s.map(|w| self.submit_s + w)
    }

    pub fn end_s(&self) -> Option<i64> {
        Some(self.start_s()? + self.run_s?)
    }
}

/// Facts a trace states about itself (SWF header fields, file-level metadata).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceMeta {
    /// Unix time of `submit_s == 0`, when known (SWF `UnixStartTime`).
    pub unix_start: Option<i64>,
    /// Machine size (SWF `MaxProcs`, else `MaxNodes`).
    pub max_procs: Option<u32>,
    pub max_jobs: Option<u64>,
    pub installation: Option<String>,
    /// Every `; Key: value` header line, in file order.
    pub header: Vec<(String, String)>,
}
