//! Parquet through `rustci-sim`: `--jobs-out x.parquet` writes the run's jobs as
//! JobRecords (hand-worked waits on a tiny log: `cli.rs`); `--trace x.parquet` replays
//! them, and replaying a simulated history on the same fleet writes the same records
//! back; bad Parquet is a clear error.

mod common;
use common::{sim, stderr, write};

use rustci_datasets::parquet::read_parquet;
use rustci_datasets::JobRecord;

fn run_to(dir: &std::path::Path, trace: Option<&str>, out: &str) -> (Vec<JobRecord>, u64) {
    let out = dir.join(out);
    let mut args = vec!["run", "--policy", "fairshare", "--format", "json", "-q"];
    match trace {
        Some(t) => args.extend(["--trace", t]),
        None => args.extend(["--days", "0.5", "--jobs-per-day", "800", "--seed", "3"]),
    }
    let out_s = out.to_str().expect("utf-8");
    args.extend(["--jobs-out", out_s]);
    let o = sim(&args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let jobs = report["jobs"].as_u64().expect("jobs");
    (read_parquet(&out).expect("read jobs-out"), jobs)
}

#[test]
fn a_simulated_history_replays_to_the_same_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, jobs) = run_to(dir.path(), None, "first.parquet");
    assert_eq!(first.len() as u64, jobs, "one record per job that ran");
    assert!(
        first.iter().any(|r| r.pipeline.is_some()),
        "the synthetic workload has pipelines"
    );
    assert!(first
        .iter()
        .all(|r| r.wait_s.is_some() && r.run_s.is_some()));
    let first_path = dir.path().join("first.parquet");
    let (again, jobs_again) = run_to(
        dir.path(),
        Some(first_path.to_str().expect("utf-8")),
        "again.parquet",
    );
    assert_eq!(jobs_again, jobs);
    assert_eq!(again, first, "the replay of a simulated history is itself");

    // Asked for by name, whatever the file is called.
    let renamed = dir.path().join("history.bin");
    std::fs::copy(&first_path, &renamed).expect("copy");
    let o = sim(&[
        "run",
        "--trace",
        renamed.to_str().expect("utf-8"),
        "--trace-format",
        "parquet",
        "--policy",
        "fairshare",
        "--format",
        "json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(report["jobs"], jobs);
}

#[test]
fn a_trace_that_is_not_parquet_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(dir.path(), "jobs.parquet", "id,tenant,submit_s\n1,t,0\n");
    let o = sim(&["run", "--trace", &bad, "-q"]);
    assert!(!o.status.success());
    let msg = stderr(&o);
    assert!(msg.contains(&format!("{bad}: not a Parquet file")), "{msg}");
}
