//! A job as a client submits it, and the checked form the live driver takes: every field
//! within its limits and the defaults worked out once (one slot, the `standard` class, no
//! requested time for 0, no project, job name or branch for empty text).

use rustci_scheduler::{Millis, QosSpec};

use super::error::{invalid, LiveError};
use super::limits::{self, check_id, check_labels, check_slots};
use crate::store::{JobState, StoredJob};

/// The QoS class of a submission that names none.
pub const DEFAULT_QOS: &str = "standard";

/// What a client submits; [`Submission::check`] makes it a [`CheckedSubmission`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submission {
    pub request_id: String,
    pub tenant: String,
    pub labels: Vec<String>,
    /// 0: one slot.
    pub slots: u32,
    pub command: String,
    /// Empty: [`DEFAULT_QOS`].
    pub qos: String,
    pub priority: i32,
    /// 0: none (the predictor's default estimate).
    pub requested_ms: i64,
    pub project: String,
    pub job_name: String,
    pub branch: String,
}

/// A submission that passed [`Submission::check`], with its defaults resolved; only
/// `check` makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSubmission {
    request_id: String,
    tenant: String,
    labels: Vec<String>,
    slots: u32,
    command: String,
    qos: String,
    priority: i32,
    requested_ms: Option<Millis>,
    project: Option<String>,
    job_name: Option<String>,
    branch: Option<String>,
}

impl Submission {
    /// Checks every field against [`limits`] and the QoS `classes` the server knows,
    /// without changing anything (a batch checks all its requests before submitting
    /// any). The error names the first field that is wrong.
    pub fn check(self, classes: &[QosSpec]) -> Result<CheckedSubmission, LiveError> {
        check_id("request_id", &self.request_id)?;
        if self
            .request_id
            .starts_with(super::pipelines::PIPELINE_REQUEST_PREFIX)
        {
            return Err(invalid(
                "request_id",
                format!(
                    "the prefix {:?} is kept for the jobs of pipelines",
                    super::pipelines::PIPELINE_REQUEST_PREFIX
                ),
            ));
        }
        check_id("tenant", &self.tenant)?;
        check_labels(&self.labels)?;
        let slots = check_slots(self.slots)?;
        if self.command.trim().is_empty() {
            return Err(invalid("command", "is required (a shell command to run)"));
        }
        // Any control character but newline and tab is either a mistake (NUL ends the
        // string `sh -c` sees) or terminal escapes aimed at whoever lists the job.
        limits::check_controls("command", &self.command, limits::COMMAND_CONTROLS)?;
        if self.command.len() > limits::COMMAND_LEN {
            return Err(invalid(
                "command",
                format!(
                    "at most {} bytes, got {}",
                    limits::COMMAND_LEN,
                    self.command.len()
                ),
            ));
        }
        let qos = if self.qos.is_empty() {
            DEFAULT_QOS.to_string()
        } else {
            self.qos
        };
        if !classes.iter().any(|q| q.name == qos) {
            let names: Vec<&str> = classes.iter().map(|q| q.name.as_str()).collect();
            return Err(invalid(
                "qos",
                format!("unknown class {qos:?}; known: {}", names.join(", ")),
            ));
        }
        if !(0..=limits::REQUESTED_MS).contains(&self.requested_ms) {
            return Err(invalid(
                "requested_ms",
                format!(
                    "must be 0..={}, got {}",
                    limits::REQUESTED_MS,
                    self.requested_ms
                ),
            ));
        }
        for (field, v) in [
            ("project", &self.project),
            ("job_name", &self.job_name),
            ("branch", &self.branch),
        ] {
            if v.len() > limits::TEXT_LEN {
                return Err(invalid(
                    field,
                    format!("at most {} bytes", limits::TEXT_LEN),
                ));
            }
            limits::check_text(field, v)?;
        }
        let given = |v: String| (!v.is_empty()).then_some(v);
        Ok(CheckedSubmission {
            request_id: self.request_id,
            tenant: self.tenant,
            labels: self.labels,
            slots,
            command: self.command,
            qos,
            priority: self.priority,
            requested_ms: (self.requested_ms > 0).then_some(self.requested_ms),
            project: given(self.project),
            job_name: given(self.job_name),
            branch: given(self.branch),
        })
    }
}

impl CheckedSubmission {
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The idempotency key within the tenant.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn qos(&self) -> &str {
        &self.qos
    }

    pub fn requested_ms(&self) -> Option<Millis> {
        self.requested_ms
    }

    /// The first field in which `job` (made earlier under the same request id) differs
    /// from this submission, if any. Labels are a set: their order does not count.
    pub(super) fn differs_from(&self, job: &StoredJob) -> Option<&'static str> {
        let set = |l: &[String]| {
            let mut l = l.to_vec();
            l.sort_unstable();
            l.dedup();
            l
        };
        [
            ("command", self.command == job.command),
            ("labels", set(&self.labels) == set(&job.labels)),
            ("slots", self.slots == job.slots),
            ("qos", self.qos == job.qos),
            ("priority", self.priority == job.priority),
            ("requested_ms", self.requested_ms == job.requested_ms),
            ("project", self.project == job.project),
            ("job_name", self.job_name == job.job_name),
            ("branch", self.branch == job.branch),
        ]
        .into_iter()
        .find_map(|(field, same)| (!same).then_some(field))
    }

    /// The job it becomes: queued since `now`, numbered `id`, at `revision`.
    pub(super) fn into_job(self, id: u64, now: Millis, revision: u64) -> StoredJob {
        StoredJob {
            id,
            request_id: self.request_id,
            tenant: self.tenant,
            labels: self.labels,
            slots: self.slots,
            command: self.command,
            qos: self.qos,
            priority: self.priority,
            requested_ms: self.requested_ms,
            project: self.project,
            job_name: self.job_name,
            branch: self.branch,
            state: JobState::Queued,
            submit_ms: now,
            start_ms: None,
            end_ms: None,
            runner: None,
            fencing_token: 0,
            lease_expires_ms: None,
            exit_code: None,
            attempts: 0,
            revision,
            reported_run_ms: None,
            pipeline: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<QosSpec> {
        crate::server::live::config::LiveConfig::default().qos
    }

    fn valid() -> Submission {
        Submission {
            request_id: "r1".into(),
            tenant: "t".into(),
            command: "true".into(),
            ..Submission::default()
        }
    }

    #[test]
    fn defaults_are_worked_out_once() {
        let c = valid().check(&classes()).expect("valid");
        assert_eq!(c.slots(), 1);
        assert_eq!(c.qos(), DEFAULT_QOS);
        assert_eq!(c.requested_ms(), None);
        let job = c.into_job(7, 1_000, 3);
        assert_eq!((job.id, job.submit_ms, job.revision), (7, 1_000, 3));
        assert_eq!((job.project, job.job_name, job.branch), (None, None, None));
        assert_eq!(job.state, JobState::Queued);

        let c = Submission {
            slots: 4,
            qos: "batch".into(),
            requested_ms: 60_000,
            branch: "main".into(),
            ..valid()
        }
        .check(&classes())
        .expect("valid");
        assert_eq!(
            (c.slots(), c.qos(), c.requested_ms()),
            (4, "batch", Some(60_000))
        );
        assert_eq!(c.into_job(1, 0, 1).branch.as_deref(), Some("main"));
    }

    #[test]
    fn the_first_wrong_field_is_named() {
        let field = |s: Submission| match s.check(&classes()) {
            Err(LiveError::InvalidArgument { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        };
        assert_eq!(
            field(Submission {
                request_id: String::new(),
                ..valid()
            }),
            "request_id"
        );
        assert_eq!(
            field(Submission {
                slots: limits::SLOTS + 1,
                ..valid()
            }),
            "slots"
        );
        assert_eq!(
            field(Submission {
                qos: "gold".into(),
                ..valid()
            }),
            "qos"
        );
        assert_eq!(
            field(Submission {
                requested_ms: -1,
                ..valid()
            }),
            "requested_ms"
        );
        assert_eq!(
            field(Submission {
                branch: "b".repeat(limits::TEXT_LEN + 1),
                ..valid()
            }),
            "branch"
        );
        // Both wrong: the earlier field in the request is the one named.
        assert_eq!(
            field(Submission {
                tenant: String::new(),
                qos: "gold".into(),
                ..valid()
            }),
            "tenant"
        );
    }
}
