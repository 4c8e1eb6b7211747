//! Whole real logs replay end to end: all six Parallel Workloads Archive logs under FCFS
//! and EASY, and every TravisTorrent project as a tenant on a labelled fleet. Every
//! record is either simulated or counted as skipped, and the reports are sane.

use rustci_datasets::open_trace;
use rustci_datasets::record::JobRecord;
use rustci_datasets::testdata::dataset;
use rustci_sim::fleet_file::FleetFile;
use rustci_sim::report::Report;
use rustci_sim::simulate::{simulate, RunSpec};

fn replay(name: &str, records: &[JobRecord], fleet: &FleetFile, policy: &str) -> Report {
    let out = simulate(RunSpec {
        workload_name: name.into(),
        ..RunSpec::new(records, fleet, policy).expect("policy")
    })
    .expect("simulate");
    let report = Report::from_facts(&out.facts);
    let s = &report.skipped;
    let skipped = s.unknown_run_time + s.negative_run_time + s.unknown_slots + s.unschedulable;
    assert_eq!(
        report.jobs + skipped,
        records.len() as u64,
        "{name} {policy}: a job was lost"
    );
    assert!(
        report.utilization > 0.0 && report.utilization <= 1.0 + 1e-9,
        "{name} {policy}: utilization {}",
        report.utilization
    );
    assert!(report.bsld_mean.expect("bsld") >= 1.0);
    eprintln!(
        "{name} {policy}: jobs {} skipped {skipped} wait mean {:.0} s p95 {:.0} s bsld {:.1} util {:.1}%",
        report.jobs,
        report.wait_mean_s.unwrap_or(0.0),
        report.wait_p95_s.unwrap_or(0.0),
        report.bsld_mean.unwrap_or(0.0),
        report.utilization * 100.0
    );
    report
}

#[test]
fn all_pwa_logs_under_fcfs_and_easy() {
    for log in [
        "KTH-SP2-1996-2.1",
        "SDSC-SP2-1998-4.2",
        "CTC-SP2-1996-3.1",
        "HPC2N-2002-2.2",
        "SDSC-BLUE-2000-4.2",
        "LANL-CM5-1994-4.1",
    ] {
        let Some(path) = dataset(&format!("pwa_swf/{log}-cln.swf.gz")) else {
            continue;
        };
        let trace = open_trace(&path, None).expect("open");
        let fleet = FleetFile::processors(trace.meta.max_procs.expect("MaxProcs"));
        let records = trace.collect_records().expect("read");
        let fcfs = replay(log, &records, &fleet, "fcfs");
        let easy = replay(log, &records, &fleet, "easy");
        // Backfilling never makes the average job wait longer on these logs.
        assert!(
            easy.wait_mean_s <= fcfs.wait_mean_s,
            "{log}: EASY {:?} > FCFS {:?}",
            easy.wait_mean_s,
            fcfs.wait_mean_s
        );
    }
}

#[test]
fn travistorrent_projects_as_tenants_on_a_labelled_fleet() {
    let Some(dir) = dataset("travistorrent_cesel/projects") else {
        return;
    };
    let records = open_trace(&dir, None)
        .expect("open")
        .collect_records()
        .expect("read");
    let fleet = FleetFile::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fleets/travis.toml"),
    )
    .expect("fleet");
    let report = replay("travistorrent", &records, &fleet, "fairshare");
    assert_eq!(report.tenants.len(), 145, "every project is a tenant");
    assert_eq!(report.skipped.unschedulable, 0, "every language has a pool");
    assert!(report.jain_fairness.is_some());
}
