//! A stored job as a history record ([`JobRecord`], the one history schema of
//! rustci-datasets): what the stores' history queries and `rustci retrain` read.
//!
//! # Which jobs
//!
//! Jobs in state `succeeded`, `failed` or `cancelled` that have both a start and an end
//! (a skipped pipeline job never starts):
//! a job cancelled before it ever started (no start) has no run to learn from and is left
//! out, as are queued and leased jobs.
//!
//! # Mapping to [`JobRecord`]
//!
//! Times are stored in milliseconds of the server's clock (Unix time); records have whole
//! seconds, rounded to the nearest (halves up), trace epoch 0.
//!
//! | record | stored job (`jobs` row / document) |
//! |---|---|
//! | `id` | `id` (the number of `jobs/{id}`), as text |
//! | `tenant` | `tenant` |
//! | `project`, `job_name`, `branch` | the same fields (missing or empty: none) |
//! | `labels` | `labels`, as submitted |
//! | `slots` | `slots` |
//! | `requested_s` | `requested_ms` / 1000, rounded (missing or 0: none) |
//! | `submit_s` | `submit_ms` / 1000, rounded |
//! | `wait_s` | (`start_ms` − `submit_ms`) / 1000, rounded |
//! | `run_s` | (`end_ms` − `start_ms`) / 1000, rounded |
//! | `outcome` | `state`: succeeded success; failed failure; cancelled cancelled |
//! | `qos` | `qos` (empty: none) |
//! | `queue` | `runner`: the runner that held the job last (none if never leased) |
//! | `extra` | empty |
//! | `pipeline` | a pipeline job's `pipeline`: its id as text, stage, needs, `when`, `allow_failure`, `interruptible`; `created_s` is the job's `submit_ms` (the pipeline's creation), and the record's `submit_s` is the job's `ready_ms` (when its needs ended and it was queued) |
//!
//! Durations are rounded on their own, so `start_s()`/`end_s()` of a record are within a
//! second of the stored start and end. `start_ms` is the start of the job's *last* lease:
//! a job requeued after its runner was lost waits from its submission to its last start
//! (the lost attempts count as wait; `attempts` says how many leases it had, and the
//! record does not carry it).

use rustci_datasets::record::{JobRecord, Outcome, PipelineRef, When as RecordWhen};
use rustci_scheduler::When;

use super::{JobState, StoredJob};

/// Milliseconds to whole seconds, to the nearest (halves up), without overflow.
pub fn ms_to_s(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) >= 500)
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref().filter(|s| !s.is_empty()).cloned()
}

impl StoredJob {
    /// The job as a history record ([module docs](self) for the mapping), or `None` if it
    /// has not finished or lacks a start or an end.
    pub fn history_record(&self) -> Option<JobRecord> {
        let outcome = match self.state {
            JobState::Succeeded => Outcome::Success,
            JobState::Failed => Outcome::Failure,
            JobState::Cancelled => Outcome::Cancelled,
            JobState::Skipped => Outcome::Skipped,
            JobState::Queued | JobState::Leased => return None,
        };
        let (start, end) = (self.start_ms?, self.end_ms?);
        // A pipeline job was submitted when it entered the queue (its needs ended), as
        // the traces record it; its pipeline was created at its `submit_ms`.
        let submit_ms = self
            .pipeline
            .as_ref()
            .and_then(|p| p.ready_ms)
            .unwrap_or(self.submit_ms);
        let mut r = JobRecord::new(self.id.to_string(), self.tenant.clone(), ms_to_s(submit_ms));
        r.project = non_empty(&self.project);
        r.job_name = non_empty(&self.job_name);
        r.branch = non_empty(&self.branch);
        r.labels = self.labels.clone();
        r.slots = self.slots;
        r.requested_s = self.requested_ms.filter(|&ms| ms != 0).map(ms_to_s);
        r.wait_s = Some(ms_to_s(start.saturating_sub(submit_ms)));
        r.run_s = Some(ms_to_s(end.saturating_sub(start)));
        r.outcome = outcome;
        r.qos = Some(self.qos.clone()).filter(|q| !q.is_empty());
        r.queue = non_empty(&self.runner);
        r.pipeline = self.pipeline.as_ref().map(|p| PipelineRef {
            id: p.pipeline.to_string(),
            created_s: ms_to_s(self.submit_ms),
            stage: p.stage.clone(),
            stage_index: p.stage_index,
            needs: p.needs.clone(),
            when: match p.when {
                When::OnSuccess => RecordWhen::OnSuccess,
                When::OnFailure => RecordWhen::OnFailure,
                When::Always => RecordWhen::Always,
                When::Manual { .. } => RecordWhen::Manual,
            },
            allow_failure: p.allow_failure,
            interruptible: p.interruptible,
            // The live service groups a pipeline by its project and ref, the default.
            group: None,
        });
        Some(r)
    }
}

/// Records of `jobs` (finished ones only), ordered by (submit time in ms, job id).
pub(crate) fn sorted_records(mut jobs: Vec<(i64, u64, JobRecord)>) -> Vec<JobRecord> {
    jobs.sort_unstable_by_key(|&(submit_ms, id, _)| (submit_ms, id));
    jobs.into_iter().map(|(_, _, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_the_nearest_second() {
        assert_eq!(
            [0, 499, 500, 1_499, 1_500, -1, -500, -501].map(ms_to_s),
            [0, 0, 1, 1, 2, 0, 0, -1]
        );
        assert_eq!(ms_to_s(i64::MAX), i64::MAX / 1000 + 1);
        assert_eq!(ms_to_s(i64::MIN), i64::MIN / 1000 - 1);
    }
}
