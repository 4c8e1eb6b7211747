//! `rustci.v1.RunnerService`: runners register, heartbeat, long-poll for leases, report
//! the end of their jobs and drain. Callers hold a runner token (or local mode).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::wire::{parse_job_name, parse_runner_name, to_pb_job};
use crate::pb;
use crate::server::auth::Principal;
use crate::server::live::{limits, Completion};
use crate::server::state::Shared;
use crate::server::status::invalid;
use crate::store::StoredRunner;

/// A runner's report that a job ended, checked: the runner's name and the completion.
/// `prefix` is prepended to the field names (`completions[3].` in a batch).
fn completion(prefix: &str, r: &pb::CompleteJobRequest) -> Result<(String, Completion), Status> {
    let field = |name: &str| format!("{prefix}{name}");
    let job = parse_job_name(&field("job"), &r.job)?;
    let runner = parse_runner_name(&field("runner"), &r.runner)?;
    if r.fencing_token == 0 {
        return Err(invalid(
            &field("fencing_token"),
            "is required (the token of the lease)",
        ));
    }
    // The runner's own timing (`ended_ms - started_ms`, its clock): both 0 is "not said";
    // otherwise both must be set and in order.
    let reported_run_ms = match (r.started_ms, r.ended_ms) {
        (0, 0) => None,
        (s, _) if s <= 0 => {
            return Err(invalid(
                &field("started_ms"),
                format!("must be a positive Unix time in ms when ended_ms is set, got {s}"),
            ))
        }
        (_, e) if e <= 0 => {
            return Err(invalid(
                &field("ended_ms"),
                format!("must be a positive Unix time in ms when started_ms is set, got {e}"),
            ))
        }
        (s, e) if e < s => {
            return Err(invalid(
                &field("ended_ms"),
                format!("{e} is before started_ms {s}"),
            ))
        }
        (s, e) => Some(e - s),
    };
    Ok((
        runner,
        Completion {
            job,
            fencing_token: r.fencing_token,
            success: r.success,
            exit_code: r.exit_code,
            reported_run_ms,
        },
    ))
}

fn to_pb_runner(r: &StoredRunner, heartbeat_interval_ms: i64) -> pb::Runner {
    pb::Runner {
        name: format!("runners/{}", r.id),
        pool: r.pool.clone(),
        labels: r.labels.clone(),
        slots: r.slots,
        draining: r.draining,
        last_heartbeat_ms: r.last_heartbeat_ms,
        heartbeat_interval_ms,
    }
}

fn require_runner(p: &Principal) -> Result<(), Status> {
    match p {
        Principal::Runner | Principal::Local => Ok(()),
        Principal::Tenant(_) => Err(Status::permission_denied(
            "tenant API keys cannot use the runner API",
        )),
        Principal::Operator => Err(Status::permission_denied(
            "operator tokens cannot use the runner API",
        )),
    }
}

#[derive(Debug, Clone)]
pub struct RunnerApi(pub Arc<Shared>);

#[tonic::async_trait]
impl pb::runner_service_server::RunnerService for RunnerApi {
    async fn register_runner(
        &self,
        req: Request<pb::RegisterRunnerRequest>,
    ) -> Result<Response<pb::Runner>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let r = req.into_inner();
        let (interval, runner) = self
            .0
            .change(move |live| {
                let interval = live.config().lease_ttl_ms / 3;
                let runner = live.register_runner(&r.runner_id, &r.pool, r.labels, r.slots)?;
                Ok((interval, runner))
            })
            .await?;
        tracing::info!(runner = %runner.id, pool = %runner.pool, "runner registered");
        Ok(Response::new(to_pb_runner(&runner, interval)))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let name = parse_runner_name("name", &req.get_ref().name)?;
        let (lease_expires_ms, draining, cancelled) = self.0.live()?.heartbeat(&name)?;
        Ok(Response::new(pb::HeartbeatResponse {
            lease_expires_ms,
            draining,
            cancelled_jobs: cancelled.iter().map(|j| format!("jobs/{j}")).collect(),
        }))
    }

    async fn acquire_jobs(
        &self,
        req: Request<pb::AcquireJobsRequest>,
    ) -> Result<Response<pb::AcquireJobsResponse>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let r = req.into_inner();
        let name = parse_runner_name("name", &r.name)?;
        let max = match r.max_jobs {
            0 => 1,
            n if n <= 1000 => n as usize,
            n => return Err(invalid("max_jobs", format!("at most 1000, got {n}"))),
        };
        if !(0..=60_000).contains(&r.wait_ms) {
            return Err(invalid(
                "wait_ms",
                format!("must be 0..=60000, got {}", r.wait_ms),
            ));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(r.wait_ms as u64);
        loop {
            let (leases, notify) = {
                let mut live = self.0.live()?;
                (live.acquire(&name, max)?, live.runner_notify(&name))
            };
            if !leases.is_empty() || tokio::time::Instant::now() >= deadline {
                self.0.metrics.leased.add(leases.len() as u64);
                let leases = leases
                    .iter()
                    .map(|l| pb::Lease {
                        job: Some(to_pb_job(&l.job)),
                        fencing_token: l.fencing_token,
                        expires_ms: l.expires_ms,
                    })
                    .collect();
                return Ok(Response::new(pb::AcquireJobsResponse { leases }));
            }
            let Some(notify) = notify else {
                return Err(Status::not_found(format!("runners/{name} not found")));
            };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn complete_job(
        &self,
        req: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let (runner, c) = completion("", &req.into_inner())?;
        let done = self
            .0
            .change(move |live| Ok(live.complete(&runner, c)?))
            .await?;
        self.0.metrics.completed.inc();
        Ok(Response::new(to_pb_job(&done)))
    }

    async fn complete_jobs(
        &self,
        req: Request<pb::CompleteJobsRequest>,
    ) -> Result<Response<pb::CompleteJobsResponse>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let completions = req.into_inner().completions;
        if completions.is_empty() || completions.len() > limits::BATCH {
            return Err(invalid(
                "completions",
                format!(
                    "1 to {} completions, got {}",
                    limits::BATCH,
                    completions.len()
                ),
            ));
        }
        let refused = |s: Status| pb::CompleteResult {
            job: None,
            code: s.code() as i32,
            message: s.message().to_string(),
        };
        // Checked before taking the live state's lock.
        let parsed: Vec<_> = completions
            .iter()
            .enumerate()
            .map(|(i, r)| completion(&format!("completions[{i}]."), r))
            .collect();
        let results = self
            .0
            .change(move |live| {
                let mut results = Vec::with_capacity(parsed.len());
                for p in parsed {
                    let result = match p {
                        Err(s) => refused(s),
                        Ok((runner, c)) => match live.complete(&runner, c) {
                            Ok(done) => pb::CompleteResult {
                                job: Some(to_pb_job(&done)),
                                code: 0,
                                message: String::new(),
                            },
                            Err(e) => refused(Status::from(e)),
                        },
                    };
                    results.push(result);
                }
                Ok(results)
            })
            .await?;
        self.0
            .metrics
            .completed
            .add(results.iter().filter(|r| r.code == 0).count() as u64);
        Ok(Response::new(pb::CompleteJobsResponse { results }))
    }

    async fn drain_runner(
        &self,
        req: Request<pb::DrainRunnerRequest>,
    ) -> Result<Response<pb::Runner>, Status> {
        require_runner(&self.0.auth.authenticate(req.metadata())?)?;
        let name = parse_runner_name("name", &req.get_ref().name)?;
        let (interval, r) = self
            .0
            .change(move |live| {
                let interval = live.config().lease_ttl_ms / 3;
                let r = live.drain(&name)?;
                Ok((interval, r))
            })
            .await?;
        Ok(Response::new(to_pb_runner(&r, interval)))
    }
}
