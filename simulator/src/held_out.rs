//! How the scheduler should use a model, chosen by replay: `rustci retrain` hands over
//! the held-out (latest) part of its history with the model that did not train on it,
//! and every candidate planning estimate and correction ([`CANDIDATES`]) is replayed
//! under EASY++ on a machine; the lowest bounded slowdown of a typical day
//! ([`typical_day`]) is the choice stored in the artifact.

use rustci_datasets::record::TraceMeta;
use rustci_models::planning::{
    typical_day, CandidateFigure, HeldOutReplay, PlanChoice, CANDIDATES, REPLAY_LOADS,
};
use rustci_models::retrain::HeldOut;
use rustci_models::ModelHandle;

use crate::fleet_file::FleetFile;
use crate::interval::Estimate;
use crate::report::bounded_slowdown;
use crate::scenario::{PredictorSpec, Scenario, Workload};
use crate::simulate::SimError;

/// Replays `held` on `fleet` (described as `machine` in the choice) with every
/// candidate, in [`CANDIDATES`] order, at each of [`REPLAY_LOADS`]; `Ok(None)` when the
/// replay placed no job.
pub fn choose_usage(
    held: HeldOut<'_>,
    fleet: &FleetFile,
    machine: &str,
) -> Result<Option<PlanChoice>, SimError> {
    let workload = Workload {
        records: held.records.to_vec(),
        name: "held-out history".to_string(),
        seed: None,
        epoch_unix_s: held.unix_start.unwrap_or(0),
        meta: TraceMeta::default(),
        format: None,
    };
    let target = held.model.target;
    let handle = ModelHandle::new(held.model, "held-out");
    let mut figures = Vec::with_capacity(CANDIDATES.len());
    let mut jobs = 0;
    for usage in CANDIDATES {
        let spec = PredictorSpec::Model {
            handle: handle.clone(),
            plan_with: usage.plan_with,
            correction: usage.correction,
        };
        let mut sum = 0.0;
        let mut days = Vec::new();
        let mut each = Vec::with_capacity(REPLAY_LOADS.len());
        for load in REPLAY_LOADS {
            let mut scenario = Scenario::new(&workload, fleet, "easy++", &spec)?;
            scenario.history_fraction = Some(held.replay_from_fraction);
            scenario.load = load;
            let results = scenario.simulate(None, Vec::new())?.facts.results;
            jobs = results.len();
            // Days on the trace's own clock: a load divides submit times, so each
            // replay's offsets are scaled back before the replays are pooled.
            let first = results
                .iter()
                .map(|r| r.submit_s)
                .fold(f64::INFINITY, f64::min);
            let before = days.len();
            days.extend(results.iter().map(|r| {
                (
                    (r.submit_s - first) * load,
                    bounded_slowdown(r.wait_s(), r.run_s()),
                )
            }));
            // The report's bsld_mean: the mean over this replay's jobs.
            let replay = &days[before..];
            sum += replay.iter().map(|&(_, b)| b).sum::<f64>() / replay.len() as f64;
            each.push(typical_day(replay.iter().copied()));
        }
        figures.push(CandidateFigure {
            usage,
            target: Some(target),
            bsld_mean: sum / REPLAY_LOADS.len() as f64,
            bsld_typical_day: Some(typical_day(days)).filter(|d| d.is_finite()),
            bsld_typical_day_se: Estimate::of(&each).map(|e| e.standard_error()),
        });
    }
    Ok(PlanChoice::pick(
        figures,
        HeldOutReplay {
            jobs,
            from_submit_s: held.from_submit_s,
            machine: machine.to_string(),
            loads: REPLAY_LOADS.to_vec(),
        },
    ))
}
