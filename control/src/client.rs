//! Client side of `rustci.v1`: one channel to a server, the three service clients on it,
//! and the `authorization: Bearer <key>` header on every call when a key or runner token
//! is given. The key is marked sensitive and never logged or printed.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::pb::fleet_service_client::FleetServiceClient;
use crate::pb::job_service_client::JobServiceClient;
use crate::pb::runner_service_client::RunnerServiceClient;

/// Adds `authorization: Bearer <key>` to every request when it holds a key.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.0.is_some() {
            "<redacted>"
        } else {
            "<none>"
        };
        f.debug_tuple("Bearer").field(&shown).finish()
    }
}

impl Bearer {
    /// `None` or an empty key: no header.
    pub fn new(key: Option<&str>) -> Result<Self> {
        match key.filter(|k| !k.is_empty()) {
            None => Ok(Self(None)),
            Some(k) => {
                // The error must not echo the key.
                let mut v: MetadataValue<Ascii> = format!("Bearer {k}").parse().map_err(|_| {
                    anyhow::anyhow!(
                        "the API key or runner token has characters a header cannot carry"
                    )
                })?;
                v.set_sensitive(true);
                Ok(Self(Some(v)))
            }
        }
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel that authenticates every call.
pub type AuthChannel = InterceptedService<Channel, Bearer>;

/// The three service clients, sharing one HTTP/2 channel (cheap to clone).
#[derive(Debug, Clone)]
pub struct Clients {
    pub jobs: JobServiceClient<AuthChannel>,
    pub runners: RunnerServiceClient<AuthChannel>,
    pub fleet: FleetServiceClient<AuthChannel>,
}

impl Clients {
    pub fn new(channel: Channel, bearer: Bearer) -> Self {
        Self {
            jobs: JobServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            runners: RunnerServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            fleet: FleetServiceClient::with_interceptor(channel, bearer),
        }
    }
}

/// The endpoint of `server` (`http://host:port` or `https://host:port`; a bare
/// `host:port` means `http://`). With `https://`, `ca` is the PEM file of the CA that
/// signed the server's certificate.
pub fn endpoint(server: &str, ca: Option<&Path>) -> Result<Endpoint> {
    let uri = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    let tls = if let Some(rest) = uri.strip_prefix("https://") {
        Some(rest.to_string())
    } else if uri.starts_with("http://") {
        if ca.is_some() {
            bail!("--ca is only used with an https:// server, got {server:?}");
        }
        None
    } else {
        bail!("server {server:?}: expected http://HOST:PORT or https://HOST:PORT");
    };
    let mut ep = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("server address {server:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(rest) = tls {
        let host = rest
            .split('/')
            .next()
            .unwrap_or_default()
            .rsplit_once(':')
            .map_or(rest.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut cfg = ClientTlsConfig::new().domain_name(host);
        match ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading the CA file {}", path.display()))?;
                cfg = cfg.ca_certificate(Certificate::from_pem(pem));
            }
            None => bail!(
                "server {server:?} is https:// but no CA file was given (--ca FILE): this build trusts no roots by default"
            ),
        }
        ep = ep.tls_config(cfg).context("TLS configuration")?;
    }
    Ok(ep)
}

/// Connects now (fails if the server is unreachable).
pub async fn connect(server: &str, key: Option<&str>, ca: Option<&Path>) -> Result<Clients> {
    let ep = endpoint(server, ca)?;
    let bearer = Bearer::new(key)?;
    let channel = ep
        .connect()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    Ok(Clients::new(channel, bearer))
}

/// Connects on first use and reconnects after failures: calls fail with `UNAVAILABLE`
/// while the server is down. For long-lived clients such as runners.
pub fn connect_lazy(server: &str, key: Option<&str>, ca: Option<&Path>) -> Result<Clients> {
    let ep = endpoint(server, ca)?;
    let bearer = Bearer::new(key)?;
    Ok(Clients::new(ep.connect_lazy(), bearer))
}

/// Lower-case name of a job state ("queued", "leased", ...).
pub fn state_name(state: i32) -> &'static str {
    use crate::pb::JobState;
    match JobState::try_from(state) {
        Ok(JobState::Queued) => "queued",
        Ok(JobState::Leased) => "leased",
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Cancelled) => "cancelled",
        Ok(JobState::Unspecified) | Err(_) => "unspecified",
    }
}

/// Parses a lower-case state name.
pub fn parse_state(s: &str) -> Option<crate::pb::JobState> {
    use crate::pb::JobState;
    Some(match s.to_ascii_lowercase().as_str() {
        "queued" => JobState::Queued,
        "leased" | "running" => JobState::Leased,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "cancelled" | "canceled" => JobState::Cancelled,
        "any" | "" => JobState::Unspecified,
        _ => return None,
    })
}

/// A job as JSON: the wire fields, with the state as a lower-case word.
pub fn job_json(j: &crate::pb::Job) -> serde_json::Value {
    let wait_ms = (j.start_ms > 0).then(|| j.start_ms - j.submit_ms);
    serde_json::json!({
        "name": j.name,
        "tenant": j.tenant,
        "request_id": j.request_id,
        "labels": j.labels,
        "slots": j.slots,
        "command": j.command,
        "qos": j.qos,
        "priority": j.priority,
        "requested_ms": j.requested_ms,
        "state": state_name(j.state),
        "submit_ms": j.submit_ms,
        "start_ms": j.start_ms,
        "end_ms": j.end_ms,
        "wait_ms": wait_ms,
        "runner": j.runner,
        "exit_code": j.exit_code,
        "revision": j.revision,
        "attempts": j.attempts,
        "project": j.project,
        "job_name": j.job_name,
        "branch": j.branch,
    })
}

/// Retryable: the server is down or restarting, or the call timed out.
pub fn is_transient(s: &Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Aborted
            | tonic::Code::ResourceExhausted
    )
}
