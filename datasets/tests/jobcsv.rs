//! `JobRecord` CSV: writer and reader round-trip; synthetic workloads export.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rustci_datasets::jobcsv::{extra_keys, read_jobcsv, write_jobcsv, JobCsvWriter};
use rustci_datasets::synthetic::{generate, SyntheticConfig};
use rustci_datasets::{open_trace, JobRecord, Outcome, TraceFormat};

/// Text that survives a CSV cell: non-empty, no surrounding whitespace, but may hold
/// commas, quotes, `;` and inner spaces.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_./,;\" -]{1,12}"
        .prop_map(|s| s.trim().to_string())
        .prop_filter("non-empty after trim", |s| !s.is_empty())
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Cancelled),
        Just(Outcome::Unknown),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64 / 100.0),
    ]
}

prop_compose! {
    fn record()(
        id in text(),
        tenant in text(),
        project in opt_text(),
        job_name in opt_text(),
        branch in opt_text(),
        labels in proptest::collection::vec("[a-z0-9-]{1,8}", 0..4),
        slots in any::<u32>(),
        requested_s in proptest::option::of(any::<i64>()),
        submit_s in any::<i64>(),
        wait_s in proptest::option::of(-10i64..1_000_000),
        run_s in proptest::option::of(0i64..10_000_000),
        outcome in outcome(),
        qos in opt_text(),
        queue in opt_text(),
        extra in proptest::collection::btree_map("[a-z_]{1,6}", finite(), 0..4),
    ) -> JobRecord {
        JobRecord {
            id, tenant, project, job_name, branch, labels, slots, requested_s, submit_s,
            wait_s, run_s, outcome, qos, queue, extra,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(records in proptest::collection::vec(record(), 0..30), gz in any::<bool>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(if gz { "jobs.csv.gz" } else { "jobs.csv" });
        write_jobcsv(&path, &records).expect("write");
        let back = read_jobcsv(&path).expect("read");
        prop_assert_eq!(&back, &records);
        // Format inference sees a JobRecord CSV (not Travis or GHA).
        let trace = open_trace(&path, None).expect("open");
        prop_assert_eq!(trace.format, TraceFormat::Csv);
        prop_assert_eq!(trace.collect_records().expect("read"), records);
    }
}

#[test]
fn empty_cells_are_none_and_optional_columns_may_be_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("j.csv");
    std::fs::write(
        &path,
        "submit_s,id,tenant,labels,x_cpu,outcome,other\n10,a,t,linux; docker,,FAILURE,zzz\n11,b,t,,2.5,,\n",
    )
    .expect("write");
    let recs = read_jobcsv(&path).expect("read");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].labels, ["linux", "docker"]);
    assert_eq!(recs[0].outcome, Outcome::Failure);
    assert!(recs[0].extra.is_empty());
    assert_eq!(recs[0].slots, 1);
    assert_eq!(recs[0].run_s, None);
    assert_eq!(recs[1].extra, BTreeMap::from([("cpu".to_string(), 2.5)]));
    assert_eq!(recs[1].outcome, Outcome::Unknown);
    assert!(recs[1].labels.is_empty());
}

#[test]
fn writer_rejects_unknown_extra_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("j.csv");
    let mut w = JobCsvWriter::create(&path, &["a".to_string()]).expect("create");
    let mut r = JobRecord::new("1", "t", 0);
    r.extra.insert("b".into(), 1.0);
    let e = w.write(&r).expect_err("b has no column");
    assert!(e.to_string().contains("\"b\""), "{e}");
}

#[test]
fn synthetic_workload_exports_and_reads_back() {
    let cfg = SyntheticConfig {
        seed: 5,
        days: 1.0,
        jobs_per_day: 2_000.0,
        ..SyntheticConfig::default()
    };
    let jobs = generate(&cfg).expect("generate");
    assert!(extra_keys(&jobs).is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("synthetic.csv.gz");
    write_jobcsv(&path, &jobs).expect("write");
    assert_eq!(read_jobcsv(&path).expect("read"), jobs);
}
