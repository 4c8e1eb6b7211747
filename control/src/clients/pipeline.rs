//! The client side of pipelines, behind `rustci pipeline`: a GitLab CI file read by
//! [`ci_file`] as a `SubmitPipelineRequest`, the submission retried under its request id,
//! paging through `ListPipelines`, and pipelines as JSON and as state names.

use std::time::Duration;

use tonic::Status;

use super::ci_file::{AutoCancel, JobDef, PipelineDef};
use super::client::{is_transient, time_json, AuthChannel, Backoff};
use crate::pb;
use crate::pb::pipeline_service_client::PipelineServiceClient;

/// Where a pipeline goes and its idempotency key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub request_id: String,
    /// Empty: the API key's tenant.
    pub tenant: String,
    pub project: String,
    pub git_ref: String,
}

/// The request that submits `def`: each job with its stage, needs, condition, tags as
/// labels, its variables exported before its scripts, and `timeout` as the requested
/// time; `workflow: auto_cancel: on_new_commit` as the request's `auto_cancel_mode`.
pub fn submit_request(def: &PipelineDef, target: &Target) -> pb::SubmitPipelineRequest {
    pb::SubmitPipelineRequest {
        request_id: target.request_id.clone(),
        tenant: target.tenant.clone(),
        project: target.project.clone(),
        git_ref: target.git_ref.clone(),
        auto_cancel: def.auto_cancel != AutoCancel::None,
        auto_cancel_mode: pb_auto_cancel(def.auto_cancel) as i32,
        jobs: def.jobs.iter().map(job_spec).collect(),
    }
}

/// The wire form of a supersession mode.
pub fn pb_auto_cancel(mode: AutoCancel) -> pb::AutoCancel {
    match mode {
        AutoCancel::Conservative => pb::AutoCancel::Conservative,
        AutoCancel::Interruptible => pb::AutoCancel::Interruptible,
        AutoCancel::None => pb::AutoCancel::None,
        AutoCancel::UnstartedAndInterruptible => pb::AutoCancel::WaitingAndInterruptible,
    }
}

fn job_spec(j: &JobDef) -> pb::PipelineJobSpec {
    use rustci_scheduler::When;
    let (when, manual_blocking) = match j.when {
        When::OnSuccess => (pb::When::OnSuccess, false),
        When::OnFailure => (pb::When::OnFailure, false),
        When::Always => (pb::When::Always, false),
        When::Manual { blocking } => (pb::When::Manual, blocking),
    };
    pb::PipelineJobSpec {
        name: j.name.clone(),
        stage: j.stage.clone(),
        stage_index: j.stage_index,
        needs: j.needs.as_ref().map(|names| pb::Needs {
            names: names.clone(),
        }),
        when: when as i32,
        manual_blocking,
        allow_failure: j.allow_failure,
        interruptible: j.interruptible,
        labels: j.labels.clone(),
        slots: 0,
        command: j.shell_command(),
        qos: String::new(),
        priority: 0,
        requested_ms: j.timeout_s.map_or(0, |s| s.saturating_mul(1000)),
    }
}

/// Tries of [`submit`] while the server is unreachable or restarting.
const SUBMIT_TRIES: u32 = 6;

/// Submits `req`, trying again with the same request id while the error is transient
/// (the server is down or restarting): the server answers a repeat with the pipeline
/// the first try made, so a retry never makes a second one. About 8 s in all.
pub async fn submit(
    c: &mut PipelineServiceClient<AuthChannel>,
    req: pb::SubmitPipelineRequest,
) -> Result<pb::Pipeline, Status> {
    let mut backoff = Backoff::between(Duration::from_millis(250), Duration::from_secs(4));
    let mut tries = 1;
    loop {
        match c.submit_pipeline(req.clone()).await {
            Ok(p) => return Ok(p.into_inner()),
            Err(s) if is_transient(&s) && tries < SUBMIT_TRIES => {
                tracing::warn!(code = ?s.code(), "submitting the pipeline, trying again: {}", s.message());
                backoff.wait().await;
                tries += 1;
            }
            Err(s) => return Err(s),
        }
    }
}

/// Which pipelines [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Empty: the caller's (every tenant's in local mode).
    pub tenant: String,
    pub state: pb::PipelineState,
    /// Empty: any.
    pub project: String,
    pub git_ref: String,
}

/// Pipelines (with their jobs) matching `filter`, oldest first, paging through
/// `ListPipelines`: at most `limit` (0 = all). The flag says whether more were left.
pub async fn list(
    c: &mut PipelineServiceClient<AuthChannel>,
    filter: &ListFilter,
    limit: usize,
) -> Result<(Vec<pb::Pipeline>, bool), Status> {
    // The server's most per page when it sends the jobs along.
    const PAGE: usize = 100;
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let want = if limit == 0 {
            PAGE
        } else {
            (limit - out.len()).min(PAGE)
        };
        let page = c
            .list_pipelines(pb::ListPipelinesRequest {
                tenant: filter.tenant.clone(),
                state: filter.state as i32,
                project: filter.project.clone(),
                git_ref: filter.git_ref.clone(),
                page_size: want as i32,
                page_token,
                with_jobs: true,
            })
            .await?
            .into_inner();
        out.extend(page.pipelines);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            return Ok((out, false));
        }
        if limit > 0 && out.len() >= limit {
            return Ok((out, true));
        }
    }
}

/// `pipelines/N` for `N` or `pipelines/N`.
pub fn pipeline_name(n: &str) -> String {
    if n.starts_with("pipelines/") {
        n.to_owned()
    } else {
        format!("pipelines/{n}")
    }
}

/// Whether the pipeline has ended (every state but running).
pub fn ended(p: &pb::Pipeline) -> bool {
    p.state != pb::PipelineState::Running as i32
}

/// A pipeline's state as JSON names it: `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELLED`,
/// `BLOCKED` (ended with jobs behind a manual job nobody played).
pub fn state_json(state: i32) -> &'static str {
    use pb::PipelineState as S;
    match S::try_from(state) {
        Ok(S::Running) => "RUNNING",
        Ok(S::Succeeded) => "SUCCEEDED",
        Ok(S::Failed) => "FAILED",
        Ok(S::Cancelled) => "CANCELLED",
        Ok(S::Blocked) => "BLOCKED",
        Ok(S::Unspecified) | Err(_) => "STATE_UNSPECIFIED",
    }
}

/// A pipeline job's state as JSON names it: `CREATED` (a job it needs has not ended),
/// `WAITING` (queued), `MANUAL`, `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELLED`, `SKIPPED`.
pub fn job_state_json(state: i32) -> &'static str {
    use pb::PipelineJobState as S;
    match S::try_from(state) {
        Ok(S::Created) => "CREATED",
        Ok(S::Waiting) => "WAITING",
        Ok(S::Manual) => "MANUAL",
        Ok(S::Running) => "RUNNING",
        Ok(S::Succeeded) => "SUCCEEDED",
        Ok(S::Failed) => "FAILED",
        Ok(S::Cancelled) => "CANCELLED",
        Ok(S::Skipped) => "SKIPPED",
        Ok(S::Unspecified) | Err(_) => "STATE_UNSPECIFIED",
    }
}

/// Parses a pipeline state for a filter, either case (`canceled` too).
pub fn parse_state(s: &str) -> Option<pb::PipelineState> {
    use pb::PipelineState as S;
    Some(match s.to_ascii_lowercase().as_str() {
        "running" => S::Running,
        "succeeded" | "success" => S::Succeeded,
        "failed" => S::Failed,
        "cancelled" | "canceled" => S::Cancelled,
        "blocked" => S::Blocked,
        "any" | "" => S::Unspecified,
        _ => return None,
    })
}

/// A pipeline as JSON: `name`, `state` ([`state_json`]), `predicted_finish_time` (RFC
/// 3339; a running pipeline's projected end, an ended one's end, `null` when unknown),
/// `critical_path` (the names of the jobs on a running pipeline's critical path, first
/// to last; empty once it ended) and its length `critical_path_ms`, and `jobs`
/// ([`job_json`]) in the submitted order; times also as Unix ms.
pub fn pipeline_json(p: &pb::Pipeline) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "state": state_json(p.state),
        "tenant": p.tenant,
        "request_id": p.request_id,
        "project": p.project,
        "ref": p.git_ref,
        "create_time": time_json(p.create_ms),
        "end_time": time_json(p.end_ms),
        "predicted_finish_time": time_json(p.predicted_finish_time_ms),
        "create_ms": p.create_ms,
        "end_ms": p.end_ms,
        "predicted_finish_ms": p.predicted_finish_time_ms,
        "cancel_reason": p.cancel_reason,
        "critical_path": p.critical_path,
        "critical_path_ms": p.critical_path_ms,
        "jobs": p.jobs.iter().map(job_json).collect::<Vec<_>>(),
    })
}

/// A job of a pipeline as JSON: `name`, `stage`, `state` ([`job_state_json`]), `needs`
/// (the names it needs; with `needs_stages` it needs every job of the earlier stages
/// and the list is empty), `job` (`jobs/N` for `rustci jobs`), runner and times.
pub fn job_json(j: &pb::PipelineJob) -> serde_json::Value {
    serde_json::json!({
        "name": j.name,
        "stage": j.stage,
        "stage_index": j.stage_index,
        "state": job_state_json(j.state),
        "needs": j.needs,
        "needs_stages": j.needs_stages,
        "allow_failure": j.allow_failure,
        "on_critical_path": j.on_critical_path,
        "remaining_path_ms": j.remaining_path_ms,
        "job": j.job,
        "runner": j.runner,
        "start_time": time_json(j.start_ms),
        "end_time": time_json(j.end_ms),
        "start_ms": j.start_ms,
        "end_ms": j.end_ms,
        "exit_code": j.exit_code,
        "attempts": j.attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ci_file::{self, Mode};

    const FILE: &str = "\
workflow:
  auto_cancel:
    on_new_commit: none
variables:
  APP: demo
build:
  stage: build
  parallel:
    matrix:
      - ARCH: [amd64, arm64]
  tags: [$ARCH]
  timeout: 10 minutes
  script: [echo \"$APP $ARCH\"]
test:
  needs: [{job: build, parallel: {matrix: [{ARCH: arm64}]}}]
  interruptible: true
  script: [exit 1]
deploy:
  stage: deploy
  when: manual
  allow_failure: false
  script: [echo deploy]
cleanup:
  stage: deploy
  when: always
  script: [echo cleanup]
";

    #[test]
    fn a_file_becomes_the_request_job_by_job() {
        let def = ci_file::parse("f.yml", FILE, Mode::Strict).expect("valid");
        let target = Target {
            request_id: "r1".into(),
            tenant: "team".into(),
            project: "shop".into(),
            git_ref: "main".into(),
        };
        let req = submit_request(&def, &target);
        assert_eq!(
            (
                req.request_id.as_str(),
                req.tenant.as_str(),
                req.project.as_str(),
                req.git_ref.as_str(),
                req.auto_cancel
            ),
            ("r1", "team", "shop", "main", false)
        );
        let names: Vec<&str> = req.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "build: [amd64]",
                "build: [arm64]",
                "test",
                "deploy",
                "cleanup"
            ]
        );
        let arm = &req.jobs[1];
        assert_eq!(arm.labels, ["arm64"]);
        assert_eq!(arm.requested_ms, 600_000);
        assert_eq!((arm.stage.as_str(), arm.stage_index), ("build", 1));
        assert!(arm.needs.is_none(), "no needs: the earlier stages");
        assert!(
            arm.command.contains("export ARCH='arm64'"),
            "{}",
            arm.command
        );
        assert!(
            arm.command.contains("export APP=\"demo\""),
            "{}",
            arm.command
        );
        let test = &req.jobs[2];
        assert_eq!(
            test.needs.as_ref().map(|n| n.names.clone()),
            Some(vec!["build: [arm64]".to_owned()])
        );
        assert!(test.interruptible);
        assert_eq!(test.requested_ms, 0, "no timeout: no requested time");
        assert_eq!(
            (req.jobs[3].when, req.jobs[3].manual_blocking),
            (pb::When::Manual as i32, true)
        );
        assert!(!req.jobs[3].allow_failure);
        assert_eq!(req.jobs[4].when, pb::When::Always as i32);

        assert_eq!(req.auto_cancel_mode, pb::AutoCancel::None as i32);
        for (mode, want) in [
            ("interruptible", pb::AutoCancel::Interruptible),
            ("conservative", pb::AutoCancel::Conservative),
        ] {
            let file = FILE.replace("on_new_commit: none", &format!("on_new_commit: {mode}"));
            let def = ci_file::parse("f.yml", &file, Mode::Strict).expect("valid");
            let req = submit_request(&def, &target);
            assert!(req.auto_cancel);
            assert_eq!(req.auto_cancel_mode, want as i32, "{mode}");
        }
    }

    #[test]
    fn states_and_names_for_scripts() {
        assert_eq!(pipeline_name("7"), "pipelines/7");
        assert_eq!(pipeline_name("pipelines/7"), "pipelines/7");
        for (s, want) in [
            ("RUNNING", pb::PipelineState::Running),
            ("canceled", pb::PipelineState::Cancelled),
            ("Failed", pb::PipelineState::Failed),
        ] {
            assert_eq!(parse_state(s), Some(want), "{s}");
        }
        assert_eq!(parse_state("done"), None);
        let p = pb::Pipeline {
            name: "pipelines/7".into(),
            state: pb::PipelineState::Failed as i32,
            predicted_finish_time_ms: 1_700_000_000_000,
            jobs: vec![pb::PipelineJob {
                name: "publish".into(),
                stage: "deploy".into(),
                needs: vec!["unit".into()],
                state: pb::PipelineJobState::Skipped as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(ended(&p));
        let v = pipeline_json(&p);
        assert_eq!(v["state"], "FAILED");
        assert_eq!(v["predicted_finish_time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["end_time"], serde_json::Value::Null);
        assert_eq!(v["jobs"][0]["state"], "SKIPPED");
        assert_eq!(v["jobs"][0]["needs"], serde_json::json!(["unit"]));
    }
}
