//! Live scaling advice: the core's autoscaler over the pools registered so far
//! (`GetScalingAdvice`, `rustci serve --scale-hook`).

use rustci_scheduler::{
    AutoscaleConfig, Autoscaler, JobId, JobSpec, LabelSet, Millis, PoolId, PoolScaling,
    PredictiveSettings, ScalePolicy, Scheduler, TenantId,
};

use super::commit::{lock_store, SharedStore};
use super::config::LiveConfig;
use super::error::LiveError;
use super::names::{core_spec, known_labels, qos_index};
use crate::store::StoredJob;

/// How far back a new predictive autoscaler learns from stored jobs.
pub const SCALING_MEMORY_MS: Millis = 2 * 24 * 3_600_000;

/// The autoscaler, built on the first advice.
#[derive(Debug, Default)]
pub(super) struct Scaling {
    /// The core's autoscaler over the pools registered so far, with their number when
    /// it was built: pools only appear, and a new one rebuilds it (the predictive
    /// policy's learnt rates start over then).
    autoscaler: Option<(usize, Autoscaler)>,
}

impl Scaling {
    /// A job the core took: the autoscaler (if built) learns the arrival.
    pub(super) fn observe_submit(&mut self, core: &Scheduler, spec: &JobSpec, now: Millis) {
        if let Some((_, a)) = self.autoscaler.as_mut() {
            a.observe_submit(core, spec, now);
        }
    }

    /// (pool, current, desired, reason) per registered pool from the core's autoscaler
    /// ([`LiveConfig::autoscaler`]). The live service has no fleet file: every pool may
    /// grow without bound and shrink to zero, and under the static policy its size is
    /// the runners registered now. A new predictive autoscaler first learns the stored
    /// jobs of the last [`SCALING_MEMORY_MS`] from `store`.
    pub(super) fn advice(
        &mut self,
        now: Millis,
        core: &Scheduler,
        config: &LiveConfig,
        store: &SharedStore,
    ) -> Result<Vec<(String, u32, u32, String)>, LiveError> {
        let pools = core.config().pools().len();
        let policy = config.autoscaler;
        // Static keeps no memory and its size follows the registrations: build it anew.
        if policy == ScalePolicy::Static
            || self.autoscaler.as_ref().is_none_or(|(n, _)| *n != pools)
        {
            let checked = AutoscaleConfig {
                policy,
                interval_ms: 10_000,
                // The live clock is Unix milliseconds.
                epoch_ms: 0,
                pools: (0..pools)
                    .map(|p| PoolScaling {
                        runners: core.pool_capacity(PoolId(p as u16)).1,
                        min_runners: 0,
                        max_runners: u32::MAX,
                        idle_timeout_ms: config.scale_idle_timeout_ms,
                        warm_pool: Vec::new(),
                        scale_to_zero: false,
                        spot: None,
                    })
                    .collect(),
                predictive: PredictiveSettings::default(),
            }
            .check(core.config())?;
            let half_life_ms = checked.predictive().half_life_ms;
            let forecast = (policy == ScalePolicy::Predictive)
                .then(|| arrival_forecast(core, config, now, half_life_ms));
            let mut autoscaler = Autoscaler::new(checked, forecast);
            if policy == ScalePolicy::Predictive {
                seed(&mut autoscaler, core, config, store, now)?;
            }
            self.autoscaler = Some((pools, autoscaler));
        }
        let Some((_, autoscaler)) = self.autoscaler.as_mut() else {
            return Ok(Vec::new());
        };
        // Runners join by registering: none is known to be on its way.
        let provisioning = vec![0; pools];
        let names = core.config().pools();
        Ok(autoscaler
            .evaluate(now, core, &provisioning)
            .into_iter()
            .map(|d| {
                (
                    names[d.pool.0 as usize].name.clone(),
                    d.current,
                    d.desired,
                    d.reason,
                )
            })
            .collect())
    }
}

/// Predictive scaling's arrival forecast (rustci-models). With `--model DIR`, the
/// weekly profile of the model version in use covers the first day, blended into
/// what is learnt online; without one, the online learner alone, as in the simulator.
/// The live clock is Unix time, so the epoch is 0.
fn arrival_forecast(
    core: &Scheduler,
    config: &LiveConfig,
    now: Millis,
    half_life_ms: Millis,
) -> Box<dyn rustci_scheduler::ArrivalForecast> {
    let Some(model) = config.model.clone() else {
        return Box::new(rustci_models::arrivals::OnlineArrivals::new(
            0,
            half_life_ms,
            now,
        ));
    };
    // A trained pool key (a job label set) belongs to the first pool that can run
    // its jobs, as an arriving job does.
    let mut keys = vec![Vec::new(); core.config().pools().len()];
    if let Some(arrivals) = model.arrivals() {
        for key in arrivals.pools.keys() {
            let labels = rustci_models::arrivals::key_labels(key);
            let Ok(set) = LabelSet::from_names(core.config().labels(), labels) else {
                continue;
            };
            if let Some(pool) = core.eligible_pools(set, 1).iter().next() {
                if let Some(k) = keys.get_mut(pool.0 as usize) {
                    k.push(key.clone());
                }
            }
        }
    }
    Box::new(rustci_models::arrivals::ProfiledArrivals::new(
        model,
        keys,
        0,
        half_life_ms,
        now,
    ))
}

/// Teaches a new predictive autoscaler the jobs submitted in the last
/// [`SCALING_MEMORY_MS`] (from the store, so a restart or a new pool does not start it
/// from nothing): arrivals per pool, class mix and runner-time per job (the run time
/// of a finished job, the estimate of others).
fn seed(
    autoscaler: &mut Autoscaler,
    core: &Scheduler,
    config: &LiveConfig,
    store: &SharedStore,
    now: Millis,
) -> Result<(), LiveError> {
    let since = now - SCALING_MEMORY_MS;
    let snap = lock_store(store)?.load(since)?;
    let mut jobs: Vec<StoredJob> = snap
        .recently_finished
        .into_iter()
        .chain(snap.unfinished)
        .filter(|j| j.submit_ms >= since && j.submit_ms <= now)
        .collect();
    jobs.sort_by_key(|j| (j.submit_ms, j.id));
    for job in &jobs {
        let Some(labels) = known_labels(core, &job.labels) else {
            continue;
        };
        // A finished job's run; a waiting or running one's estimate from the core,
        // as a submission teaches it; else (cancelled before it ran, or parked) its
        // request.
        let run_ms = match (job.start_ms, job.end_ms) {
            (Some(s), Some(e)) if e >= s => e - s,
            _ => match core.estimate_of(JobId(job.id)) {
                Some(estimate) => estimate.point_ms,
                None => job
                    .requested_ms
                    .filter(|&r| r > 0)
                    .unwrap_or(config.default_estimate_ms),
            },
        };
        // The autoscaler reads no tenant.
        let spec = core_spec(
            job,
            TenantId(u32::MAX),
            qos_index(&config.qos, &job.qos),
            labels,
        );
        autoscaler.observe_job(core, &spec, run_ms, job.submit_ms);
    }
    Ok(())
}
