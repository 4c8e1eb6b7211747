//! `JobRecord`: the one schema for job history, whatever trace or store it came from.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::DatasetError;

/// How a job ended, as the trace recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Cancelled,
    /// The trace recorded the job as skipped: it never ran (an earlier stage failed, or
    /// its rules left it out).
    Skipped,
    /// A manual job nobody started: it never ran.
    Manual,
    /// The trace does not say (SWF status -1, an empty CI conclusion).
    #[default]
    Unknown,
}

/// The largest time or duration, in seconds either way from 0, a record may hold:
/// 10^10 s, about 317 years (a Unix time up to the year 2286). In milliseconds that is
/// 10^13, which leaves a factor of about 900,000 below `i64::MAX` for the sums a replay
/// makes (submit + wait + run, a load that stretches time 1000-fold), so no reader's
/// value can wrap the millisecond clock. Readers refuse a larger value, naming file,
/// line and field.
pub const MAX_TIME_S: i64 = 10_000_000_000;

/// `v` (seconds, a time or a duration) if it is within [`MAX_TIME_S`] of 0, else why not:
/// the one rule every reader applies, each putting the reason into its own error with
/// file, line and field.
pub fn on_clock(v: i64) -> Result<i64, String> {
    if v.unsigned_abs() > MAX_TIME_S.unsigned_abs() {
        Err(format!(
            "{v} s is beyond the largest time the simulator's clock takes \
             (±{MAX_TIME_S} s, about 317 years)"
        ))
    } else {
        Ok(v)
    }
}

/// `s` if it has no control character, else why not. Names, labels and classes are shown
/// to people and matched as text: a control character in one is a damaged file (or an
/// attempt on a terminal), not a name. Every reader applies it, as [`on_clock`].
pub fn printable(s: &str) -> Result<&str, String> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("control character U+{:04X} in {s:?}", u32::from(c))),
        None => Ok(s),
    }
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
    /// The pipeline this job belongs to, when the trace has pipelines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineRef>,
}

/// Where a job sits in its pipeline (a DAG of jobs created together).
///
/// Within one pipeline every job has a `job_name`, and names are unique: `needs` refers
/// to jobs by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRef {
    /// The pipeline's id, unique within the trace.
    pub id: String,
    /// When the pipeline was created (same epoch as `submit_s`).
    pub created_s: i64,
    /// The stage's name ("" when the trace has none).
    pub stage: String,
    /// The stage's position in the pipeline's stage order (0 = first stage).
    pub stage_index: u32,
    /// Names (`job_name`) of the jobs of the same pipeline this job needs. `None`: every
    /// job of the earlier stages (GitLab's rule without `needs`); `Some(vec![])`: none.
    pub needs: Option<Vec<String>>,
    /// When the job runs.
    #[serde(default)]
    pub when: When,
    #[serde(default)]
    pub allow_failure: bool,
    /// A newer pipeline of the same group may cancel this job while it runs.
    #[serde(default)]
    pub interruptible: bool,
    /// Concurrency group (a newer pipeline of the group supersedes older ones);
    /// `None`: the project and branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl PipelineRef {
    /// A job of pipeline `id` in stage `stage` (position `stage_index`), with GitLab's
    /// defaults: needs every earlier stage, runs on success, may not fail, not
    /// interruptible, grouped by project and branch.
    pub fn new(
        id: impl Into<String>,
        created_s: i64,
        stage: impl Into<String>,
        stage_index: u32,
    ) -> Self {
        Self {
            id: id.into(),
            created_s,
            stage: stage.into(),
            stage_index,
            needs: None,
            when: When::OnSuccess,
            allow_failure: false,
            interruptible: false,
            group: None,
        }
    }
}

/// When a pipeline job runs, GitLab's `when:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// When every job it waits for succeeded (or may fail).
    #[default]
    OnSuccess,
    /// When a job it waits for failed.
    OnFailure,
    /// Whatever the jobs it waits for did (clean-up).
    Always,
    /// When a person starts it.
    Manual,
}

impl When {
    pub const ALL: [When; 4] = [Self::OnSuccess, Self::OnFailure, Self::Always, Self::Manual];

    /// GitLab's spelling: `on_success`, `on_failure`, `always`, `manual`.
    pub fn name(self) -> &'static str {
        match self {
            Self::OnSuccess => "on_success",
            Self::OnFailure => "on_failure",
            Self::Always => "always",
            Self::Manual => "manual",
        }
    }

    /// Parses [`When::name`] (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(s))
    }

    /// [`When::parse`], or why not (the names it takes), for a reader's error.
    pub fn from_name(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|w| w.name()).collect();
            format!("{s:?} is not one of {}", names.join(", "))
        })
    }
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
            pipeline: None,
        }
    }

    pub fn start_s(&self) -> Option<i64> {
        self.wait_s.map(|w| self.submit_s + w)
    }

    pub fn end_s(&self) -> Option<i64> {
        Some(self.start_s()? + self.run_s?)
    }
}

/// Checks the rules every trace's pipelines keep, for each pipeline of `records`:
///
/// * every job has a `job_name`, unique within the pipeline, and is not submitted before
///   the pipeline was created;
/// * every name in `needs` is a job of the same pipeline, in the same stage or an
///   earlier one (GitLab's rule for `needs`);
/// * the jobs' dependencies have no cycle (the `needs` edges within one stage; edges of
///   the stage rule and to earlier stages cannot close one).
///
/// The error names the pipeline and the job's record id.
pub fn check_pipelines(records: &[JobRecord]) -> Result<(), DatasetError> {
    let mut pipelines: BTreeMap<&str, Vec<(&JobRecord, &PipelineRef)>> = BTreeMap::new();
    for r in records {
        if let Some(p) = &r.pipeline {
            pipelines.entry(p.id.as_str()).or_default().push((r, p));
        }
    }
    for (id, jobs) in pipelines {
        let fail = |job: &JobRecord, message: String| DatasetError::Pipeline {
            pipeline: id.to_string(),
            job: job.id.clone(),
            message,
        };
        let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(jobs.len());
        for (i, (r, p)) in jobs.iter().enumerate() {
            let name = r.job_name.as_deref().unwrap_or("");
            if name.is_empty() {
                return Err(fail(r, "has no job name".to_string()));
            }
            if let Some(j) = by_name.insert(name, i) {
                return Err(fail(
                    r,
                    format!("name {name:?} is also the name of job {}", jobs[j].0.id),
                ));
            }
            if r.submit_s < p.created_s {
                return Err(fail(
                    r,
                    format!(
                        "submitted at {} before its pipeline was created ({})",
                        r.submit_s, p.created_s
                    ),
                ));
            }
        }
        // Same-stage `needs` edges, for the cycle check.
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
        for (i, (r, p)) in jobs.iter().enumerate() {
            for need in p.needs.iter().flatten() {
                let Some(&j) = by_name.get(need.as_str()) else {
                    return Err(fail(
                        r,
                        format!("needs {need:?}, which is not in the pipeline"),
                    ));
                };
                let stage = jobs[j].1.stage_index;
                if stage > p.stage_index {
                    return Err(fail(
                        r,
                        format!(
                            "needs {need:?} of a later stage ({stage} > {})",
                            p.stage_index
                        ),
                    ));
                }
                if stage == p.stage_index {
                    parents[i].push(j);
                }
            }
        }
        if let Err(cycle) = crate::graph::depths(&parents) {
            let names: Vec<&str> = cycle
                .iter()
                .filter_map(|&i| jobs[i].0.job_name.as_deref())
                .collect();
            let first = cycle.first().map_or(jobs[0].0, |&i| jobs[i].0);
            return Err(fail(
                first,
                format!("its needs form a cycle: {}", names.join(" -> ")),
            ));
        }
    }
    Ok(())
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
