//! `JobRecord` CSV: writer and reader round-trip; synthetic workloads export.

use std::collections::BTreeMap;

use proptest::prelude::*;

mod records;
use records::record;
use rustci_datasets::jobcsv::{
    extra_keys, read_jobcsv, write_jobcsv, JobCsvWriter, Layout, COLUMNS,
};
use rustci_datasets::record::{PipelineRef, When};
use rustci_datasets::synthetic::{generate, SyntheticConfig};
use rustci_datasets::{open_trace, DatasetError, JobRecord, Outcome, TraceFormat};

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
    assert!(recs.iter().all(|r| r.pipeline.is_none()));
}

#[test]
fn records_without_pipelines_write_the_columns_of_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("j.csv");
    let mut r = JobRecord::new("1", "t", 5);
    r.extra.insert("cpu".into(), 2.0);
    write_jobcsv(&path, &[r]).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    let header = text.lines().next().expect("header");
    assert_eq!(header, format!("{},x_cpu", COLUMNS.join(",")));
}

#[test]
fn pipeline_cells_are_read_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.csv");
    std::fs::write(
        &path,
        concat!(
            "id,tenant,submit_s,job_name,pipeline_id,pipeline_created_s,stage,stage_index,needs,when,allow_failure,interruptible,group\n",
            "1,t,10,lint,p1,9,lint,0,[],,,,\n",
            "2,t,10,\"build: [linux, \"\"x\"\"]\",p1,9,build,1,,MANUAL,TRUE,false,deploys\n",
            "3,t,10,\"test\",p1,9,test,2,\"[\"\"build: [linux, \\\"\"x\\\"\"]\"\", \"\"lint\"\"]\",always,,,\n",
            "4,t,11,solo,,,,,,,,,\n",
        ),
    )
    .expect("write");
    let recs = read_jobcsv(&path).expect("read");
    let p = |i: usize| recs[i].pipeline.clone().expect("pipeline");
    assert_eq!(p(0).needs, Some(vec![]));
    assert_eq!(p(0).when, When::OnSuccess);
    assert_eq!(recs[1].job_name.as_deref(), Some("build: [linux, \"x\"]"));
    assert_eq!(p(1).needs, None);
    assert_eq!(p(1).when, When::Manual);
    assert!(p(1).allow_failure && !p(1).interruptible);
    assert_eq!(p(1).group.as_deref(), Some("deploys"));
    assert_eq!(
        p(2).needs,
        Some(vec![
            "build: [linux, \"x\"]".to_string(),
            "lint".to_string()
        ])
    );
    assert_eq!(
        (p(2).stage.as_str(), p(2).stage_index, p(2).created_s),
        ("test", 2, 9)
    );
    assert_eq!(p(2).when, When::Always);
    assert!(recs[3].pipeline.is_none());
}

#[test]
fn bad_pipeline_cells_name_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head =
        "id,tenant,submit_s,pipeline_id,pipeline_created_s,stage_index,needs,when,allow_failure\n";
    let cases = [
        ("1,t,1,p,1,0,[,,\n", "needs"),
        ("1,t,1,p,1,0,,sometimes,\n", "when"),
        ("1,t,1,p,1,0,,,maybe\n", "allow_failure"),
        ("1,t,1,p,,0,,,\n", "pipeline_created_s"),
        ("1,t,1,p,1,-1,,,\n", "stage_index"),
        ("1,t,1,,1,,,,\n", "pipeline_created_s"),
    ];
    for (row, column) in cases {
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, format!("{head}ok,t,0,,,,,,\n{row}")).expect("write");
        let e = read_jobcsv(&path).expect_err(row);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}:3: column {column}", path.display())),
            "{row}: {msg}"
        );
        assert!(matches!(
            e,
            DatasetError::BadValue { .. } | DatasetError::Json { .. }
        ));
    }
}

#[test]
fn writer_rejects_unknown_extra_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("j.csv");
    let layout = Layout {
        extra_keys: vec!["a".to_string()],
        pipelines: false,
    };
    let mut w = JobCsvWriter::create(&path, &layout).expect("create");
    let mut r = JobRecord::new("1", "t", 0);
    r.extra.insert("b".into(), 1.0);
    let e = w.write(&r).expect_err("b has no column");
    assert!(e.to_string().contains("\"b\""), "{e}");
    let mut r = JobRecord::new("2", "t", 0);
    r.pipeline = Some(PipelineRef::new("p", 0, "build", 0));
    let e = w.write(&r).expect_err("no pipeline columns");
    assert!(e.to_string().contains("record 2: has a pipeline"), "{e}");
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
