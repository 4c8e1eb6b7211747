//! Client side of `rustci.v1`: one channel to a server, the service clients on it,
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

use crate::local_token::{self, LocalToken};
use crate::pb::fleet_service_client::FleetServiceClient;
use crate::pb::job_service_client::JobServiceClient;
use crate::pb::pipeline_service_client::PipelineServiceClient;
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

/// The service clients, sharing one HTTP/2 channel (cheap to clone).
#[derive(Debug, Clone)]
pub struct Clients {
    pub jobs: JobServiceClient<AuthChannel>,
    pub runners: RunnerServiceClient<AuthChannel>,
    pub fleet: FleetServiceClient<AuthChannel>,
    pub pipelines: PipelineServiceClient<AuthChannel>,
}

impl Clients {
    pub fn new(channel: Channel, bearer: Bearer) -> Self {
        Self {
            jobs: JobServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            runners: RunnerServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            fleet: FleetServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            pipelines: PipelineServiceClient::with_interceptor(channel, bearer),
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
    let bearer = bearer_for(&ep, key)?;
    let channel = ep
        .connect()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    Ok(Clients::new(channel, bearer))
}

/// The credentials for `ep`: `key` when given; else, for a server on this machine
/// (loopback), this user's local-mode token when there is one (`crate::local_token`).
/// The token never goes to another host: it only opens this user's own servers.
pub fn bearer_for(ep: &Endpoint, key: Option<&str>) -> Result<Bearer> {
    if key.is_some_and(|k| !k.is_empty()) {
        return Bearer::new(key);
    }
    let host = ep.uri().host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Bearer::new(None);
    }
    owner_bearer()
}

/// This user's local-mode token as credentials; none when the user has no token (or no
/// config directory): the server then says what is missing.
pub fn owner_bearer() -> Result<Bearer> {
    let token = match local_token::default_path() {
        Ok(path) => local_token::read(&path)?,
        Err(_) => None,
    };
    Bearer::new(token.as_ref().map(LocalToken::secret))
}

/// Connects on first use and reconnects after failures: calls fail with `UNAVAILABLE`
/// while the server is down. For long-lived clients such as runners.
pub fn connect_lazy(server: &str, key: Option<&str>, ca: Option<&Path>) -> Result<Clients> {
    let ep = endpoint(server, ca)?;
    let bearer = bearer_for(&ep, key)?;
    Ok(Clients::new(ep.connect_lazy(), bearer))
}

/// Jobs of `tenant` ("" = the caller's; all in local mode) in `state` (`Unspecified` =
/// any), oldest first, paging through `ListJobs`: at most `limit` (0 = all). The flag
/// says whether more were left.
pub async fn list_jobs(
    c: &mut Clients,
    tenant: &str,
    state: crate::pb::JobState,
    limit: usize,
) -> Result<(Vec<crate::pb::Job>, bool), Status> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let want = if limit == 0 {
            1000
        } else {
            (limit - out.len()).min(1000)
        };
        let page = c
            .jobs
            .list_jobs(crate::pb::ListJobsRequest {
                tenant: tenant.to_string(),
                state: state as i32,
                page_size: want as i32,
                page_token,
            })
            .await?
            .into_inner();
        out.extend(page.jobs);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            return Ok((out, false));
        }
        if limit > 0 && out.len() >= limit {
            return Ok((out, true));
        }
    }
}

/// Lower-case name of a job state for tables ("queued", "running" for a leased job, ...).
pub fn state_name(state: i32) -> &'static str {
    use crate::pb::JobState;
    match JobState::try_from(state) {
        Ok(JobState::Queued) => "queued",
        Ok(JobState::Leased) => "running",
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Cancelled) => "cancelled",
        Ok(JobState::Skipped) => "skipped",
        Ok(JobState::Created) => "created",
        Ok(JobState::Manual) => "manual",
        Ok(JobState::Unspecified) | Err(_) => "unspecified",
    }
}

/// A job's state as JSON output names it (`submit`, `jobs list|get|watch|cancel|explain
/// --format json`): `QUEUED`, `RUNNING` (leased to a runner), `SUCCEEDED`, `FAILED`,
/// `CANCELLED`, `SKIPPED`, and for pipeline jobs held back `CREATED` (a need has not
/// ended) and `MANUAL` (waits for a person).
pub fn state_json(state: i32) -> &'static str {
    use crate::pb::JobState;
    match JobState::try_from(state) {
        Ok(JobState::Queued) => "QUEUED",
        Ok(JobState::Leased) => "RUNNING",
        Ok(JobState::Succeeded) => "SUCCEEDED",
        Ok(JobState::Failed) => "FAILED",
        Ok(JobState::Cancelled) => "CANCELLED",
        Ok(JobState::Skipped) => "SKIPPED",
        Ok(JobState::Created) => "CREATED",
        Ok(JobState::Manual) => "MANUAL",
        Ok(JobState::Unspecified) | Err(_) => "STATE_UNSPECIFIED",
    }
}

/// A Unix time in milliseconds as an RFC 3339 UTC timestamp; `null` when unset (0).
pub fn time_json(unix_ms: i64) -> serde_json::Value {
    if unix_ms > 0 {
        rustci_datasets::time::format_utc_ms(unix_ms).into()
    } else {
        serde_json::Value::Null
    }
}

/// Parses a state name, either case; `running` is a leased job.
pub fn parse_state(s: &str) -> Option<crate::pb::JobState> {
    use crate::pb::JobState;
    Some(match s.to_ascii_lowercase().as_str() {
        "queued" => JobState::Queued,
        "leased" | "running" => JobState::Leased,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "cancelled" | "canceled" => JobState::Cancelled,
        "skipped" => JobState::Skipped,
        "created" => JobState::Created,
        "manual" => JobState::Manual,
        "any" | "" => JobState::Unspecified,
        _ => return None,
    })
}

/// A job as JSON: the wire fields, the state as [`state_json`] names it, and the submit,
/// start and end times both as RFC 3339 timestamps (`submit_time`, ...; `null` when
/// unset) and as Unix milliseconds (`submit_ms`, ...; 0 when unset).
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
        "state": state_json(j.state),
        "submit_time": time_json(j.submit_ms),
        "start_time": time_json(j.start_ms),
        "end_time": time_json(j.end_ms),
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
        "predicted_run_ms": j.predicted_run_ms,
        "predicted_run_upper_ms": j.predicted_run_upper_ms,
        "predicted_start_unix_ms": j.predicted_start_unix_ms,
        "reported_run_ms": j.reported_run_ms,
    })
}

/// An explanation as JSON (`rustci jobs explain --format json`, the dashboard's
/// `/api/v1/jobs/{id}`).
pub fn explanation_json(e: &crate::pb::Explanation) -> serde_json::Value {
    serde_json::json!({
        "name": e.name,
        "state": state_json(e.state),
        "reason": e.reason,
        "message": e.message,
        "blocking_job": e.blocking_job,
        "runner": e.runner,
        "at_ms": e.at_ms,
        "queue_position": e.queue_position,
        "needs": e.needs.iter().map(|n| serde_json::json!({
            "name": n.name,
            "job": n.job,
            "state": state_json(n.state),
            "end_ms": n.end_ms,
        })).collect::<Vec<_>>(),
    })
}

/// Queue statistics as JSON (`rustci fleet stats --format json`, `/api/v1/fleet`).
pub fn queue_stats_json(s: &crate::pb::QueueStats) -> serde_json::Value {
    let ws = |w: &Option<crate::pb::WaitStats>| {
        let w = (*w).unwrap_or_default();
        serde_json::json!({
            "queued": w.queued, "running": w.running,
            "wait_p50_ms": w.wait_p50_ms, "wait_p95_ms": w.wait_p95_ms,
            "wait_p99_ms": w.wait_p99_ms, "started_last_hour": w.started_last_hour,
        })
    };
    serde_json::json!({
        "revision": s.revision,
        "pools": s.pools.iter().map(|p| serde_json::json!({
            "pool": p.pool, "runners": p.runners, "busy_runners": p.busy_runners,
            "free_slots": p.free_slots,
            "stats": ws(&p.stats),
            "classes": p.classes.iter().map(|c| serde_json::json!({
                "qos": c.qos, "wait_target_ms": c.wait_target_ms,
                "p95_within_target": p95_within_target(c),
                "stats": ws(&c.stats),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "tenants": s.tenants.iter().map(|t| serde_json::json!({
            "tenant": t.tenant, "stats": ws(&t.stats),
        })).collect::<Vec<_>>(),
    })
}

/// Whether a class's p95 wait of the last hour in a pool is within its target; `None`
/// when none of its jobs started there in the hour (no wait to judge).
pub fn p95_within_target(c: &crate::pb::ClassStats) -> Option<bool> {
    let w = c.stats.unwrap_or_default();
    (w.started_last_hour > 0).then_some(w.wait_p95_ms <= c.wait_target_ms)
}

/// Scaling advice as JSON (`rustci fleet advice --format json`, `/api/v1/fleet`): one
/// object per pool.
pub fn scaling_advice_json(a: &crate::pb::ScalingAdvice) -> serde_json::Value {
    serde_json::Value::Array(
        a.pools
            .iter()
            .map(|p| {
                serde_json::json!({
                    "pool": p.pool, "current_runners": p.current_runners,
                    "desired_runners": p.desired_runners, "reason": p.reason,
                })
            })
            .collect(),
    )
}

/// Now on this machine's clock, Unix milliseconds (for "in 3m" against the server's
/// predicted starts, which are Unix milliseconds too).
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A duration for people: `850ms`, `42s`, `4m12s`, `6m`, `1h05m`, `2d03h`. Coarser
/// units drop the finer ones: an estimate is not that precise.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let s = ms / 1_000;
    let (big, small, units) = match s {
        0..=59 => return format!("{s}s"),
        60..=3_599 => (s / 60, s % 60, ("m", "s")),
        3_600..=86_399 => (s / 3_600, s % 3_600 / 60, ("h", "m")),
        _ => (s / 86_400, s % 86_400 / 3_600, ("d", "h")),
    };
    if small == 0 {
        format!("{big}{}", units.0)
    } else {
        format!("{big}{}{small:02}{}", units.0, units.1)
    }
}

/// The run-time estimate of a job for a table: `4m12s (p90 6m)`, the upper quantile
/// only when it says more than the point; `-` when the answer carried none.
pub fn estimate_text(j: &crate::pb::Job) -> String {
    match (j.predicted_run_ms, j.predicted_run_upper_ms) {
        (0, _) => "-".into(),
        (p, u) if u > p => format!("{} (p90 {})", human_duration(p), human_duration(u)),
        (p, _) => human_duration(p),
    }
}

/// A Unix time for people, in UTC: `10:42:05Z` on the day of `now_ms`, else
/// `2025-03-01 10:42Z`.
pub fn clock_text(unix_ms: i64, now_ms: i64) -> String {
    let day = |ms: i64| ms.div_euclid(86_400_000);
    let (d, in_day) = (day(unix_ms), unix_ms.rem_euclid(86_400_000) / 1_000);
    let (h, m, s) = (in_day / 3_600, in_day % 3_600 / 60, in_day % 60);
    if d == day(now_ms) {
        return format!("{h:02}:{m:02}:{s:02}Z");
    }
    let (y, mo, da) = rustci_datasets::time::civil_from_days(d);
    format!("{y:04}-{mo:02}-{da:02} {h:02}:{m:02}Z")
}

/// When a job starts, for a table: a queued job's predicted start as `in 3m
/// (10:42:05Z)` (`in 2d03h` on another day, `now` once due), a started job's real start
/// as a time, `-` unknown.
pub fn start_text(j: &crate::pb::Job, now_ms: i64) -> String {
    let at = j.predicted_start_unix_ms;
    if at <= 0 {
        return "-".into();
    }
    if state_name(j.state) != "queued" {
        return clock_text(at, now_ms);
    }
    if at <= now_ms {
        return format!("now ({})", clock_text(at, now_ms));
    }
    let rel = format!("in {}", human_duration(at - now_ms));
    if at.div_euclid(86_400_000) == now_ms.div_euclid(86_400_000) {
        format!("{rel} ({})", clock_text(at, now_ms))
    } else {
        // Another day: the date would not fit a table cell; the distance says enough.
        rel
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [
            (0, "0ms"),
            (850, "850ms"),
            (10_000, "10s"),
            (252_000, "4m12s"),
            (360_000, "6m"),
            (305_000, "5m05s"),
            (3_900_000, "1h05m"),
            (7_200_000, "2h"),
            (183_600_000, "2d03h"),
            (-5, "0ms"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn clock_times_are_utc() {
        // 2023-11-14 22:13:20 UTC
        let t = 1_700_000_000_000;
        assert_eq!(clock_text(t, t + 1_000), "22:13:20Z");
        assert_eq!(clock_text(t, t + 86_400_000), "2023-11-14 22:13Z");
        assert_eq!(clock_text(0, 86_400_000), "1970-01-01 00:00Z");
        assert_eq!(clock_text(951_782_400_000, 0), "2000-02-29 00:00Z");
    }

    #[test]
    fn etas_for_a_table() {
        let now = 1_700_000_000_000;
        let mut j = pb::Job {
            state: pb::JobState::Queued as i32,
            predicted_run_ms: 252_000,
            predicted_run_upper_ms: 360_000,
            predicted_start_unix_ms: now + 180_000,
            ..Default::default()
        };
        assert_eq!(estimate_text(&j), "4m12s (p90 6m)");
        assert_eq!(start_text(&j, now), "in 3m (22:16:20Z)");
        j.predicted_start_unix_ms = now + 86_400_000;
        assert_eq!(start_text(&j, now), "in 1d");
        j.predicted_start_unix_ms = now - 1;
        assert_eq!(start_text(&j, now), "now (22:13:19Z)");
        j.state = pb::JobState::Leased as i32;
        assert_eq!(start_text(&j, now), "22:13:19Z");
        j.predicted_run_upper_ms = j.predicted_run_ms;
        assert_eq!(estimate_text(&j), "4m12s");
        j.predicted_start_unix_ms = 0;
        j.predicted_run_ms = 0;
        assert_eq!(
            (estimate_text(&j), start_text(&j, now)),
            ("-".into(), "-".into())
        );
    }
}

/// Capped exponential backoff.
#[derive(Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// 100 ms, doubling up to 5 s.
    pub(crate) fn new() -> Self {
        Self::between(Duration::from_millis(100), Duration::from_secs(5))
    }
    pub(crate) fn between(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}
