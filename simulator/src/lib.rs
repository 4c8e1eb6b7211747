//! rustci-sim: a discrete-event simulator that replays job histories (or a synthetic CI
//! workload) against a fleet and a policy, on the same scheduling core as the live
//! service.
//!
//! Flow: a [`scenario::Scenario`] (records from [`rustci_datasets`], a fleet, a policy,
//! estimates) → [`simulate::simulate`]: [`workload::prepare`] (job specs, submission
//! order, skips), [`engine::run`] (events into [`rustci_scheduler::Scheduler`], decisions
//! applied), the run's facts → [`report::Report`].

pub mod clairvoyant;
pub mod engine;
pub mod fleet_file;
pub mod held_out;
pub mod html;
pub mod interval;
pub mod outcome;
pub mod plan;
pub mod plots;
pub mod replicate;
pub mod report;
pub mod scenario;
pub mod simulate;
pub mod sweep;
pub mod workload;
