//! The dashboard over HTTP (`rustci serve --http-listen ADDR`): a read-only JSON API
//! under `/api/v1/` ([`api`]), the job change stream as Server-Sent Events ([`stream`]),
//! and the pages ([`pages`]), beside the gRPC port and on the same [`Shared`] state.
//!
//! Every read and action calls the gRPC service's own method (`JobApi::list_jobs`,
//! `PipelineApi::get_pipeline`, `FleetApi::get_queue_stats`, ...) with the caller's
//! credentials as gRPC metadata ([`auth::Caller`]): authentication, tenant isolation,
//! paging and projections are the services' code, run once; this layer only maps query
//! strings to requests, replies to JSON (the CLI's `--format json` functions) and
//! statuses to HTTP codes ([`error`]).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::server::state::Shared;

pub mod api;
pub mod auth;
pub mod error;
pub mod pages;
pub mod stream;

/// Refuses a non-loopback `addr` without `--auth`, as the gRPC listener does: local
/// mode trusts the machine's own user only.
pub fn check_listen(addr: SocketAddr, with_auth: bool) -> Result<()> {
    if !with_auth && !addr.ip().is_loopback() {
        bail!(
            "refusing --http-listen {addr} without --auth: local mode (no authentication) only listens on loopback"
        );
    }
    Ok(())
}

/// Every route of the dashboard.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/jobs", get(api::jobs))
        .route("/api/v1/queue", get(api::queue))
        .route("/api/v1/jobs/{id}", get(api::job))
        .route("/api/v1/jobs/{id}/cancel", post(api::cancel_job))
        .route("/api/v1/pipelines", get(api::pipelines))
        .route("/api/v1/pipelines/{id}", get(api::pipeline))
        .route("/api/v1/runners", get(api::runners))
        .route("/api/v1/pools", get(api::pools))
        .route("/api/v1/tenants", get(api::tenants))
        .route("/api/v1/fleet", get(api::fleet))
        .route("/api/v1/model", get(api::model))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/{*rest}", get(api::not_found))
        .route("/assets/{file}", get(pages::asset))
        .route("/", get(pages::page))
        .route("/queue", get(pages::page))
        .route("/pipelines", get(pages::page))
        .route("/pipelines/{id}", get(pages::page))
        .route("/tenants", get(pages::page))
        .route("/model", get(pages::page))
        .with_state(shared)
}

/// Binds `addr` and serves the dashboard until the task is aborted or the server closes
/// (open event streams end with `Shared::closing`).
pub async fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --http-listen {addr}"))?;
    let bound = listener.local_addr()?;
    let mut closing = shared.closing.subscribe();
    let app = router(shared);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = closing.wait_for(|c| *c).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the dashboard's HTTP listener stopped");
        }
    });
    tracing::info!(addr = %bound, "dashboard serving over HTTP");
    Ok((bound, task))
}
