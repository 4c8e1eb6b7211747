//! `rustci.v1.FleetService`: queue statistics and scaling advice.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::pb;
use crate::server::auth::Principal;
use crate::server::live::WaitStats;
use crate::server::state::Shared;

#[derive(Debug, Clone)]
pub struct FleetApi(pub Arc<Shared>);

fn wait_stats(s: &WaitStats) -> pb::WaitStats {
    pb::WaitStats {
        queued: s.queued,
        running: s.running,
        wait_p50_ms: s.wait_p50_ms,
        wait_p95_ms: s.wait_p95_ms,
        wait_p99_ms: s.wait_p99_ms,
        started_last_hour: s.started_last_hour,
    }
}

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for FleetApi {
    async fn get_queue_stats(
        &self,
        req: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::QueueStats>, Status> {
        let who = self.0.auth.authenticate(req.metadata())?;
        let stats = self.0.live()?.queue_stats();
        let tenants = stats
            .tenants
            .iter()
            .filter(|(t, _)| match &who {
                Principal::Tenant(me) => me == t,
                _ => true,
            })
            .map(|(t, s)| pb::TenantStats {
                tenant: t.clone(),
                stats: Some(wait_stats(s)),
            })
            .collect();
        Ok(Response::new(pb::QueueStats {
            pools: stats
                .pools
                .iter()
                .map(|p| pb::PoolStats {
                    pool: p.pool.clone(),
                    runners: p.runners,
                    busy_runners: p.busy_runners,
                    free_slots: p.free_slots,
                    stats: Some(wait_stats(&p.stats)),
                    classes: p
                        .classes
                        .iter()
                        .map(|c| pb::ClassStats {
                            qos: c.qos.clone(),
                            wait_target_ms: c.wait_target_ms,
                            stats: Some(wait_stats(&c.stats)),
                        })
                        .collect(),
                })
                .collect(),
            tenants,
            revision: stats.revision,
        }))
    }

    async fn get_scaling_advice(
        &self,
        req: Request<pb::GetScalingAdviceRequest>,
    ) -> Result<Response<pb::ScalingAdvice>, Status> {
        self.0.auth.authenticate(req.metadata())?;
        let advice = self.0.live()?.scaling_advice()?;
        Ok(Response::new(pb::ScalingAdvice {
            pools: advice
                .into_iter()
                .map(|(pool, current, desired, reason)| pb::PoolAdvice {
                    pool,
                    current_runners: current,
                    desired_runners: desired,
                    reason,
                })
                .collect(),
        }))
    }
}
