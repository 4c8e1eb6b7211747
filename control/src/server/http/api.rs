//! `/api/v1/`: the JSON reads (and the one action, cancel) of the dashboard. Each calls
//! the gRPC service method that answers the same question, with the caller's
//! credentials, and prints its reply with the CLI's `--format json` functions
//! (`clients::client::job_json`, `clients::pipeline::pipeline_json`, ...), so field
//! names, paging and permissions are those of `rustci jobs list --format json` and
//! `ListJobs`. Runners, tenants' fair share and the model have no gRPC read; they are
//! read from the live state here, once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tonic::Status;

use super::auth::Caller;
use super::error::{json_response, HttpError};
use crate::clients::client::{
    explanation_json, job_json, parse_state, queue_stats_json, scaling_advice_json,
};
use crate::clients::pipeline::{self, pipeline_json};
use crate::pb;
use crate::pb::fleet_service_server::FleetService;
use crate::pb::job_service_server::JobService;
use crate::pb::pipeline_service_server::PipelineService;
use crate::server::auth::Principal;
use crate::server::services::fleet::FleetApi;
use crate::server::services::jobs::JobApi;
use crate::server::services::pipelines::PipelineApi;
use crate::server::state::Shared;

type Answer = Result<Response, HttpError>;

/// A query string's parameters; one not in `allowed`, or given twice, is a 400 naming
/// it (a misspelt filter must not silently list everything).
pub fn params(raw: Option<&str>, allowed: &[&str]) -> Result<HashMap<String, String>, HttpError> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(HttpError::bad(
                &k,
                format!("unknown parameter; this route takes {}", allowed.join(", ")),
            ));
        }
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(HttpError::bad(&k, "given more than once"));
        }
    }
    Ok(out)
}

/// A page size parameter (absent: the service's default).
fn page_size(p: &HashMap<String, String>) -> Result<i32, HttpError> {
    match p.get("page_size") {
        None => Ok(0),
        Some(s) => s
            .parse::<i32>()
            .map_err(|_| HttpError::bad("page_size", format!("not a number: {s:?}"))),
    }
}

/// A path's id (`42`, or `jobs/42` as the JSON names it).
fn path_id(kind: &str, raw: &str) -> Result<u64, HttpError> {
    raw.strip_prefix(kind)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(raw)
        .parse::<u64>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| {
            HttpError::bad(
                "id",
                format!("expected a positive number, got {:?}", truncate(raw)),
            )
        })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn ok(v: &Value) -> Answer {
    Ok(json_response(StatusCode::OK, v))
}

/// `GET /api/v1/jobs?page_size=&page_token=&state=&tenant=`: `ListJobs`.
pub async fn jobs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = params(
        q.as_deref(),
        &["page_size", "page_token", "state", "tenant"],
    )?;
    let state = match p.get("state") {
        None => pb::JobState::Unspecified,
        Some(s) => parse_state(s).ok_or_else(|| {
            HttpError::bad(
                "state",
                format!(
                    "unknown job state {:?} (queued, running, succeeded, failed, cancelled, skipped, created, manual)",
                    truncate(s)
                ),
            )
        })?,
    };
    let req = pb::ListJobsRequest {
        page_size: page_size(&p)?,
        page_token: p.get("page_token").cloned().unwrap_or_default(),
        state: state as i32,
        tenant: p.get("tenant").cloned().unwrap_or_default(),
    };
    let caller = Caller::from_headers(&headers);
    let r = JobApi(shared)
        .list_jobs(caller.request(req))
        .await?
        .into_inner();
    ok(&json!({
        "jobs": r.jobs.iter().map(job_json).collect::<Vec<_>>(),
        "next_page_token": r.next_page_token,
    }))
}

/// `GET /api/v1/queue?page_size=&page_token=&tenant=`: the waiting jobs in the order
/// the scheduler will visit them (`JobApi::queue`), each with its `position` (0 = next;
/// `null`: parked until a pool has its labels), with ListJobs' paging and checks.
pub async fn queue(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = params(q.as_deref(), &["page_size", "page_token", "tenant"])?;
    let caller = Caller::from_headers(&headers);
    let (jobs, next) = JobApi(shared).queue(
        &caller.request(()),
        p.get("tenant").map(String::as_str).unwrap_or_default(),
        page_size(&p)?,
        p.get("page_token").map(String::as_str).unwrap_or_default(),
    )?;
    ok(&json!({
        "jobs": jobs
            .iter()
            .map(|(j, position)| {
                let mut v = job_json(j);
                v["position"] = json!(position);
                v
            })
            .collect::<Vec<_>>(),
        "next_page_token": next,
    }))
}

/// `GET /api/v1/jobs/{id}`: `GetJob` (estimates and predicted start) with `ExplainJob`
/// as `explanation`.
pub async fn job(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let name = format!("jobs/{}", path_id("jobs", &id)?);
    let caller = Caller::from_headers(&headers);
    let api = JobApi(shared);
    let job = api
        .get_job(caller.request(pb::GetJobRequest { name: name.clone() }))
        .await?
        .into_inner();
    let explanation = api
        .explain_job(caller.request(pb::ExplainJobRequest { name }))
        .await?
        .into_inner();
    let mut v = job_json(&job);
    v["pipeline"] = json!(job.pipeline);
    v["stage"] = json!(job.stage);
    v["explanation"] = explanation_json(&explanation);
    ok(&v)
}

/// `POST /api/v1/jobs/{id}/cancel`: `CancelJob`, with its checks.
pub async fn cancel_job(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let name = format!("jobs/{}", path_id("jobs", &id)?);
    let caller = Caller::from_headers(&headers);
    caller.check_change(&headers)?;
    let job = JobApi(shared)
        .cancel_job(caller.request(pb::CancelJobRequest { name }))
        .await?
        .into_inner();
    ok(&job_json(&job))
}

/// `GET /api/v1/pipelines?page_size=&page_token=&state=&tenant=&project=&ref=`:
/// `ListPipelines` (without their jobs).
pub async fn pipelines(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = params(
        q.as_deref(),
        &[
            "page_size",
            "page_token",
            "state",
            "tenant",
            "project",
            "ref",
        ],
    )?;
    let state = match p.get("state") {
        None => pb::PipelineState::Unspecified,
        Some(s) => pipeline::parse_state(s).ok_or_else(|| {
            HttpError::bad(
                "state",
                format!(
                    "unknown pipeline state {:?} (running, succeeded, failed, cancelled, blocked)",
                    truncate(s)
                ),
            )
        })?,
    };
    let given = |k: &str| p.get(k).cloned().unwrap_or_default();
    let req = pb::ListPipelinesRequest {
        page_size: page_size(&p)?,
        page_token: given("page_token"),
        state: state as i32,
        tenant: given("tenant"),
        project: given("project"),
        git_ref: given("ref"),
        with_jobs: false,
    };
    let caller = Caller::from_headers(&headers);
    let r = PipelineApi(shared)
        .list_pipelines(caller.request(req))
        .await?
        .into_inner();
    ok(&json!({
        "pipelines": r.pipelines.iter().map(pipeline_json).collect::<Vec<_>>(),
        "next_page_token": r.next_page_token,
    }))
}

/// `GET /api/v1/pipelines/{id}`: `GetPipeline` (jobs by stage, critical path,
/// predicted finish).
pub async fn pipeline(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let name = format!("pipelines/{}", path_id("pipelines", &id)?);
    let caller = Caller::from_headers(&headers);
    let p = PipelineApi(shared)
        .get_pipeline(caller.request(pb::GetPipelineRequest { name }))
        .await?
        .into_inner();
    ok(&pipeline_json(&p))
}

/// The queue statistics (`GetQueueStats`, a tenant's key sees its own tenant's row
/// only) and the scaling advice (`GetScalingAdvice`).
async fn fleet_reads(shared: Arc<Shared>, caller: &Caller) -> Result<(Value, Value), HttpError> {
    let api = FleetApi(shared);
    let stats = api
        .get_queue_stats(caller.request(pb::GetQueueStatsRequest {}))
        .await?
        .into_inner();
    let advice = api
        .get_scaling_advice(caller.request(pb::GetScalingAdviceRequest {}))
        .await?
        .into_inner();
    Ok((queue_stats_json(&stats), scaling_advice_json(&advice)))
}

/// `GET /api/v1/fleet`: `{"stats": rustci fleet stats, "advice": rustci fleet advice}`.
pub async fn fleet(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    params(q.as_deref(), &[])?;
    let (stats, advice) = fleet_reads(shared, &Caller::from_headers(&headers)).await?;
    ok(&json!({ "stats": stats, "advice": advice }))
}

/// `GET /api/v1/pools`: each pool's statistics with its scaling advice (`advice`:
/// `current_runners`, `desired_runners`, `reason`).
pub async fn pools(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    params(q.as_deref(), &[])?;
    let (stats, advice) = fleet_reads(shared, &Caller::from_headers(&headers)).await?;
    let mut pools = stats["pools"].as_array().cloned().unwrap_or_default();
    for p in &mut pools {
        let name = p["pool"].clone();
        p["advice"] = advice
            .as_array()
            .and_then(|a| a.iter().find(|a| a["pool"] == name))
            .cloned()
            .unwrap_or(Value::Null);
    }
    ok(&json!({ "pools": pools }))
}

/// The caller of a read that has no gRPC counterpart; runner tokens read the job API
/// no more here than over gRPC.
fn reader(shared: &Shared, headers: &HeaderMap) -> Result<Principal, HttpError> {
    Ok(dashboard_caller(shared, headers)?)
}

/// The caller a page or API request comes from: a tenant key or an operator token (a
/// runner token authenticates but may not use the dashboard).
pub(super) fn dashboard_caller(shared: &Shared, headers: &HeaderMap) -> Result<Principal, Status> {
    match Caller::from_headers(headers).authenticate(&shared.auth)? {
        Principal::Runner => Err(Status::permission_denied(
            "runner tokens cannot use the dashboard",
        )),
        p => Ok(p),
    }
}

/// `GET /api/v1/runners`: the registered runners.
pub async fn runners(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    params(q.as_deref(), &[])?;
    reader(&shared, &headers)?;
    let runners = shared.live()?.runners();
    ok(&json!({
        "runners": runners.iter().map(|r| json!({
            "name": format!("runners/{}", r.id),
            "pool": r.pool,
            "labels": r.labels,
            "slots": r.slots,
            "draining": r.draining,
            "last_heartbeat_ms": r.last_heartbeat_ms,
        })).collect::<Vec<_>>(),
    }))
}

/// `GET /api/v1/tenants`: each tenant's fair-share usage (decayed slot-seconds) against
/// its weight, both also as shares of all tenants'; a tenant's key sees its own row.
pub async fn tenants(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    params(q.as_deref(), &[])?;
    let who = reader(&shared, &headers)?;
    let (shares, half_life_ms) = {
        let live = shared.live()?;
        (
            live.fair_share(),
            live.config().policy.fair_share_half_life_ms,
        )
    };
    let total_usage: f64 = shares.iter().map(|s| s.usage).sum();
    let total_weight: f64 = shares.iter().map(|s| s.weight).sum();
    let share = |x: f64, total: f64| if total > 0.0 { x / total } else { 0.0 };
    ok(&json!({
        "half_life_ms": half_life_ms,
        "tenants": shares
            .iter()
            .filter(|s| match &who {
                Principal::Tenant(me) => *me == s.tenant,
                _ => true,
            })
            .map(|s| json!({
                "tenant": s.tenant,
                "weight": s.weight,
                "usage_slot_s": s.usage,
                "weight_share": share(s.weight, total_weight),
                "usage_share": share(s.usage, total_usage),
            }))
            .collect::<Vec<_>>(),
    }))
}

/// `GET /api/v1/model`: the run-time model version in use (`null`: the built-in
/// estimator) and its last evaluation against the baselines, when loaded from a model
/// directory.
pub async fn model(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    params(q.as_deref(), &[])?;
    reader(&shared, &headers)?;
    let handle = shared.live()?.config().model.clone();
    let evaluation = crate::server::locking::lock(&shared.model_evaluation)
        .map(|e| e.clone())
        .unwrap_or_default();
    ok(&match handle {
        None => json!({ "version": null, "usage": null, "evaluation": null }),
        Some(h) => {
            let (usage, stored) = h.usage();
            json!({
                "version": h.version_name(),
                "usage": usage.to_string(),
                "usage_from_artifact": stored,
                "evaluation": evaluation,
            })
        }
    })
}

/// Any other `/api/v1/` path: 404 as JSON.
pub async fn not_found(Path(rest): Path<String>) -> HttpError {
    HttpError(Status::not_found(format!(
        "no route /api/v1/{}",
        truncate(&rest)
    )))
}
