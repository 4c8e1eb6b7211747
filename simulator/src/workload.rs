//! Turning job records into the core's job specs: tenants, QoS classes, labels,
//! estimates, the order of submission, and what cannot be simulated (counted, not lost).

use std::collections::HashMap;

use rustci_datasets::record::{JobRecord, Outcome};
use rustci_scheduler::{
    HistoryKeys, JobId, JobSpec, LabelSet, Millis, QosId, TenantId, TenantSpec, MS_PER_S,
};

use crate::fleet_file::FleetFile;
use crate::outcome::Skipped;

/// A job ready for the engine: its spec, its real run time, and its record.
#[derive(Debug, Clone, PartialEq)]
pub struct SimJob {
    /// Index into the record list the job came from.
    pub record: usize,
    pub spec: JobSpec,
    pub run_ms: Millis,
    /// The trace says it failed: its end is reported to the core as [`Event::Fail`], so
    /// predictors learn the outcome.
    ///
    /// [`Event::Fail`]: rustci_scheduler::Event::Fail
    pub failed: bool,
}

/// The jobs to replay, in submission order, and the tenants they name.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub jobs: Vec<SimJob>,
    pub tenants: Vec<TenantSpec>,
    pub skipped: Skipped,
}

/// Prepares `records` for a run on `fleet`. `load` scales the arrival rate: submit
/// times are divided by it (2.0 = twice the load).
///
/// Submission order is submit time, then the record's numeric id when it has one (SWF
/// job numbers count submissions, and the pyss reference outputs list jobs in finishing
/// order), then input order. Jobs submitted in the same second keep that order in the
/// queue, which matters for reproducing other simulators' schedules.
pub fn prepare(records: &[JobRecord], fleet: &FleetFile, load: f64) -> Prepared {
    let label_names = fleet.label_names();
    let qos_names: Vec<&str> = fleet.qos.iter().map(|q| q.name.as_str()).collect();
    let default_qos = fleet.default_qos_index();
    let max_slots = fleet.pools.iter().map(|p| p.slots).max().unwrap_or(0);
    let mut tenants: Vec<TenantSpec> = Vec::new();
    let mut tenant_ids: HashMap<&str, TenantId> = HashMap::new();
    let weights: HashMap<&str, f64> = fleet
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t.weight))
        .collect();
    let mut skipped = Skipped::default();

    let mut order: Vec<(i64, Option<u64>, usize)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.submit_s, r.id.parse::<u64>().ok(), i))
        .collect();
    order.sort_unstable();

    let mut jobs = Vec::with_capacity(records.len());
    for (_, _, index) in order {
        let r = &records[index];
        let run_s = match r.run_s {
            None => {
                skipped.unknown_run_time += 1;
                continue;
            }
            Some(s) if s < 0 => {
                skipped.negative_run_time += 1;
                continue;
            }
            Some(s) => s,
        };
        if r.slots == 0 {
            skipped.unknown_slots += 1;
            continue;
        }
        let Ok(labels) = LabelSet::from_names(&label_names, &r.labels) else {
            skipped.unschedulable += 1;
            continue;
        };
        if r.slots > max_slots {
            skipped.unschedulable += 1;
            continue;
        }
        let tenant = *tenant_ids.entry(r.tenant.as_str()).or_insert_with(|| {
            tenants.push(TenantSpec {
                name: r.tenant.clone(),
                weight: weights.get(r.tenant.as_str()).copied().unwrap_or(1.0),
            });
            TenantId((tenants.len() - 1) as u32)
        });
        let qos = r
            .qos
            .as_deref()
            .and_then(|q| qos_names.iter().position(|n| *n == q))
            .unwrap_or(default_qos);
        let submit_ms = ((r.submit_s as f64 / load) * MS_PER_S as f64).round() as Millis;
        jobs.push(SimJob {
            record: index,
            spec: JobSpec {
                id: JobId(jobs.len() as u64),
                tenant,
                qos: QosId(qos as u8),
                priority: 0,
                labels,
                slots: r.slots,
                requested_ms: r.requested_s.filter(|&s| s > 0).map(|s| s * MS_PER_S),
                submit_ms,
                history: HistoryKeys::of(r.job_name.as_deref(), r.branch.as_deref()),
            },
            run_ms: run_s * MS_PER_S,
            failed: r.outcome == Outcome::Failure,
        });
    }
    Prepared {
        jobs,
        tenants,
        skipped,
    }
}
