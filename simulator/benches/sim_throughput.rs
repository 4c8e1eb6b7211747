//! Simulator throughput: `cargo bench -p rustci-sim --bench sim_throughput`.
//!
//! 1. The full SDSC-BLUE log (243k jobs, 1,152 processors) under EASY.
//! 2. A synthetic CI workload of about 1M jobs on 10,000 runners under fair share.
//! 3. The synthetic week with pipelines (`[pipelines] enabled`) on the built-in fleet
//!    under critical path, without and with each pipeline's ETA at creation.
//!
//! Prints events/s, wall time and peak memory (VmHWM of this process, so the peak of
//! the whole bench including the trace in memory). Figures go to BENCHMARKS.md.

use std::time::Instant;

use rustci_datasets::synthetic::{generate, SyntheticConfig};
use rustci_datasets::testdata::dataset;
use rustci_datasets::{open_trace, TraceFormat};
use rustci_sim::fleet_file::FleetFile;
use rustci_sim::simulate::{simulate, RunSpec, ETA_LIMIT};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run(name: &str, records: &[rustci_datasets::JobRecord], fleet: &FleetFile, policy: &str) {
    run_with_eta(name, records, fleet, policy, ETA_LIMIT);
}

fn run_with_eta(
    name: &str,
    records: &[rustci_datasets::JobRecord],
    fleet: &FleetFile,
    policy: &str,
    eta_limit: usize,
) {
    let t = Instant::now();
    let out = simulate(RunSpec {
        workload_name: name.into(),
        eta_limit,
        ..RunSpec::new(records, fleet, policy).expect("policy")
    })
    .expect("simulate");
    let total = t.elapsed().as_secs_f64();
    let f = &out.facts;
    println!(
        "{name:<28} {policy:<10} jobs {:>9}  events {:>9}  engine {:>6.2} s  {:>10.0} events/s  run incl. prepare+results {:>6.2} s  peak RSS {:>6.0} MB",
        f.results.len(),
        f.events,
        f.wall_s,
        f.events as f64 / f.wall_s,
        total,
        peak_rss_mb()
    );
    let arrivals = out.engine.pipeline_job_arrivals;
    if arrivals > 0 {
        // The count before pipeline jobs' entries into the queue were events.
        let old = f.events - arrivals;
        println!(
            "{:<39} of which pipeline jobs queued {arrivals:>9}; without them {old:>9} events, {:>10.0} events/s",
            "",
            old as f64 / f.wall_s
        );
    }
}

fn main() {
    // cargo bench passes --bench; a filter argument selects one case.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |n: &str| filter.as_deref().is_none_or(|f| n.contains(f));

    if wants("sdsc-blue") {
        if let Some(path) = dataset("pwa_swf/SDSC-BLUE-2000-4.2-cln.swf.gz") {
            let t = Instant::now();
            let trace = open_trace(&path, Some(TraceFormat::Swf)).expect("open");
            let procs = trace.meta.max_procs.expect("MaxProcs");
            let records = trace.collect_records().expect("read");
            println!(
                "sdsc-blue: parsed {} records in {:.2} s",
                records.len(),
                t.elapsed().as_secs_f64()
            );
            run("sdsc-blue", &records, &FleetFile::processors(procs), "easy");
        }
    }
    if wants("synthetic-1m") {
        // jobs_per_day is per weekday; a week is 5 + 2 * weekend_factor weekdays.
        let base = SyntheticConfig::default();
        let weekdays = 5.0 + 2.0 * base.weekend_factor;
        let cfg = SyntheticConfig {
            jobs_per_day: 1_000_000.0 / weekdays,
            ..base
        };
        let t = Instant::now();
        let records = generate(&cfg).expect("generate");
        println!(
            "synthetic-1m: generated {} jobs in {:.2} s",
            records.len(),
            t.elapsed().as_secs_f64()
        );
        let mut fleet = FleetFile::default_ci().expect("default fleet");
        for (pool, n) in fleet.pools.iter_mut().zip([8_000u32, 500, 1_000, 500]) {
            pool.runners = n;
        }
        assert_eq!(fleet.total_runners(), 10_000);
        run("synthetic-1m (10k runners)", &records, &fleet, "fairshare");
    }
    if wants("synthetic-pipelines") {
        let mut cfg = SyntheticConfig::default();
        cfg.pipelines.enabled = true;
        let t = Instant::now();
        let records = generate(&cfg).expect("generate");
        println!(
            "synthetic-pipelines: generated {} jobs in {:.2} s",
            records.len(),
            t.elapsed().as_secs_f64()
        );
        let fleet = FleetFile::default_ci().expect("default fleet");
        run_with_eta(
            "synthetic-pipelines, no ETA",
            &records,
            &fleet,
            "critical-path",
            0,
        );
        run_with_eta(
            "synthetic-pipelines, ETA",
            &records,
            &fleet,
            "critical-path",
            ETA_LIMIT,
        );
    }
}
