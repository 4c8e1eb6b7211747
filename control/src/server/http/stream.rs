//! `/api/v1/stream`: the job change log as Server-Sent Events, from `WatchJobs` itself
//! (same history read, same live feed, same tenant filter). Each committed job version
//! is an event `job` whose id is its revision, so a client that lost the connection (or
//! whose server restarted) resumes where it was with `Last-Event-ID` (the browser's
//! `EventSource` sends it by itself) or `?from=REV`. A revision the log no longer holds
//! gets, as from `WatchJobs`, FAILED_PRECONDITION: here an event `reload` carrying its
//! message, after which the stream ends (the client re-reads the lists and starts again
//! from their revision).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::Code;

use super::api::params;
use super::auth::Caller;
use super::error::{error_json, HttpError};
use crate::clients::client::job_json;
use crate::clients::pipeline::state_json;
use crate::pb;
use crate::pb::job_service_server::JobService;
use crate::server::services::jobs::JobApi;
use crate::server::state::Shared;

/// `GET /api/v1/stream?from=REV&pipeline=ID&tenant=T`.
pub async fn stream(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, HttpError> {
    let p = params(q.as_deref(), &["from", "pipeline", "tenant"])?;
    let revision = |name: &str, s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| HttpError::bad(name, format!("not a revision: {:?}", s)))
    };
    // The browser's reconnection wins over the revision the page first asked from.
    let from_revision = match (headers.get("last-event-id"), p.get("from")) {
        (Some(h), _) => revision(
            "Last-Event-ID",
            h.to_str()
                .map_err(|_| HttpError::bad("Last-Event-ID", "not text"))?,
        )?,
        (None, Some(f)) => revision("from", f)?,
        (None, None) => 0,
    };
    let pipeline = match p.get("pipeline") {
        None => String::new(),
        Some(id) => format!("pipelines/{}", id.strip_prefix("pipelines/").unwrap_or(id)),
    };
    let req = pb::WatchJobsRequest {
        from_revision,
        tenant: p.get("tenant").cloned().unwrap_or_default(),
        pipeline,
    };
    let caller = Caller::from_headers(&headers);
    // Authentication and bad filters fail here, as an HTTP status, before the stream.
    let events = JobApi(shared)
        .watch_jobs(caller.request(req))
        .await?
        .into_inner();
    let mut ended = false;
    let sse = events.map_while(move |item| {
        if ended {
            return None;
        }
        Some(Ok::<_, std::convert::Infallible>(match item {
            Ok(ev) => job_event(&ev),
            Err(status) => {
                ended = true;
                let kind = if status.code() == Code::FailedPrecondition {
                    "reload"
                } else {
                    "error"
                };
                Event::default()
                    .event(kind)
                    .data(error_json(&status).to_string())
            }
        }))
    });
    Ok(Sse::new(sse)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// One `WatchJobs` event as an SSE `job` event: `{"revision", "job" (as `rustci jobs
/// watch --format json`), "pipeline", "pipeline_state"}`.
fn job_event(ev: &pb::JobEvent) -> Event {
    let job = ev.job.clone().unwrap_or_default();
    let data = json!({
        "revision": ev.revision,
        "job": job_json(&job),
        "pipeline": job.pipeline,
        "pipeline_state": state_json(ev.pipeline_state),
    });
    Event::default()
        .id(ev.revision.to_string())
        .event("job")
        .data(data.to_string())
}
