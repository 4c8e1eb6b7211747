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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::server::state::Shared;

pub mod api;
pub mod auth;
pub mod error;
pub mod pages;
pub mod stream;

/// Whether the dashboard is served over TLS: its sign-in cookie is then `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Https(pub bool);

/// Every route of the dashboard.
pub fn router(shared: Arc<Shared>, https: Https) -> Router {
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
        .layer(Extension(https))
        .with_state(shared)
}

/// Binds `addr` and serves the dashboard until the task is aborted or the server closes
/// (open event streams end with `Shared::closing`); over TLS with `tls` (the gRPC port's
/// `--tls-cert` and `--tls-key`), so that keys and cookies never cross the network in
/// clear text when the gRPC port does not either.
pub async fn spawn(
    addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<&(PathBuf, PathBuf)>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    // Read before binding: a bad certificate is an error of `serve`, not of a connection.
    let acceptor = tls.map(|(cert, key)| tls_acceptor(cert, key)).transpose()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --http-listen {addr}"))?;
    let bound = listener.local_addr()?;
    let mut closing = shared.closing.subscribe();
    let app = router(shared, Https(acceptor.is_some()));
    if let Some(acceptor) = acceptor {
        let connections = closing.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = serve_tls(listener, acceptor, app, connections) => {}
                _ = closing.wait_for(|c| *c) => {}
            }
        });
        tracing::info!(addr = %bound, "dashboard serving over HTTPS");
        return Ok((bound, task));
    }
    if !bound.ip().is_loopback() {
        tracing::warn!(addr = %bound, "the dashboard serves plain HTTP off loopback: API keys and the sign-in cookie cross the network in clear text (give --tls-cert and --tls-key, or put a TLS proxy in front)");
    }
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

/// The TLS configuration from PEM files: the certificate chain and its private key.
fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate chain {}", cert.display()))?;
    if certs.is_empty() {
        bail!("{}: no PEM certificate in it", cert.display());
    }
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading the private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the TLS certificate {} and key {} do not make a usable pair",
                cert.display(),
                key_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections and serves each over TLS (HTTP/1) on a task of its own; a
/// handshake that fails or stalls (a plain-text client, a scanner) ends only its
/// connection, a client must send its headers within 30 s, and when the server closes
/// every connection ends after the request it is serving (as `axum::serve`'s graceful
/// shutdown does on the plain-HTTP path), so nothing holds the state after `stop`.
async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    closing: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "the dashboard's listener could not accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "dashboard TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "dashboard TLS handshake timed out");
                        return;
                    }
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .http1_only();
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            let mut conn = std::pin::pin!(conn);
            // The guard `wait_for` answers with is dropped before the select's arm runs.
            let closed = async move {
                let _ = closing.wait_for(|c| *c).await;
            };
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = closed => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "dashboard connection ended with an error");
            }
        });
    }
}
