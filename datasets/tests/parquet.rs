//! `JobRecord` Parquet: rustci writes, rustci reads the same records (proptest over
//! arbitrary records, and a hand-built set with every optional field present and absent,
//! across row groups); bad files name the file, the column and the row.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use proptest::prelude::*;

mod records;
use records::record;
use rustci_datasets::parquet::{read_parquet, write_parquet, ParquetJobWriter, COLUMNS, ROW_GROUP};
use rustci_datasets::record::{PipelineRef, When};
use rustci_datasets::{open_trace, DatasetError, JobRecord, Outcome, TraceFormat};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn round_trip(records in proptest::collection::vec(record(), 0..30)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.parquet");
        write_parquet(&path, &records).expect("write");
        prop_assert_eq!(&read_parquet(&path).expect("read"), &records);
        let trace = open_trace(&path, None).expect("open");
        prop_assert_eq!(trace.format, TraceFormat::Parquet);
        prop_assert_eq!(trace.meta.max_jobs, Some(records.len() as u64));
        prop_assert_eq!(trace.collect_records().expect("read"), records);
    }
}

/// Every optional field both present and absent, `Some("")` apart from `None`, needs
/// `None` apart from `Some([])`, extra keys some records lack.
fn varied() -> Vec<JobRecord> {
    let mut bare = JobRecord::new("1", "", 0);
    bare.slots = 0;
    let mut full = JobRecord::new("2", "acme", 1_700_000_000);
    full.project = Some("acme/web".into());
    full.job_name = Some("build: [linux, \"x\"]".into());
    full.branch = Some(String::new());
    full.labels = vec!["linux".into(), "a;b".into(), "docker".into()];
    full.slots = u32::MAX;
    full.requested_s = Some(-1);
    full.wait_s = Some(0);
    full.run_s = Some(10_000_000_000);
    full.outcome = Outcome::Failure;
    full.qos = Some("urgent".into());
    full.queue = Some("q".into());
    full.extra = BTreeMap::from([("churn".into(), 2.5), ("tests".into(), -0.0)]);
    let mut p = PipelineRef::new("p1", 1_699_999_990, "build", 1);
    p.needs = Some(vec![]);
    p.when = When::Manual;
    p.allow_failure = true;
    p.group = Some("deploys".into());
    full.pipeline = Some(p);
    let mut staged = JobRecord::new("3", "acme", 1_700_000_001);
    staged.job_name = Some("test".into());
    staged.outcome = Outcome::Skipped;
    staged.extra = BTreeMap::from([("tests".into(), 1e300)]);
    let mut p = PipelineRef::new("p1", 1_699_999_990, "", 0);
    p.interruptible = true;
    p.when = When::Always;
    staged.pipeline = Some(p);
    let mut needs = JobRecord::new("4", "b", -5);
    needs.job_name = Some("deploy".into());
    let mut p = PipelineRef::new("p2", -6, "deploy", 2);
    p.needs = Some(vec!["build: [linux, \"x\"]".into(), "test".into()]);
    p.when = When::OnFailure;
    needs.pipeline = Some(p);
    vec![bare, full, staged, needs]
}

#[test]
fn hand_built_records_round_trip_across_row_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("varied.parquet");
    // Enough copies to fill two row groups and start a third, so the streaming reader
    // crosses group boundaries.
    let mut records = Vec::new();
    while records.len() < 2 * ROW_GROUP + 7 {
        for mut r in varied() {
            r.id = format!("{}-{}", r.id, records.len());
            records.push(r);
        }
    }
    write_parquet(&path, &records).expect("write");
    let back = read_parquet(&path).expect("read");
    assert_eq!(back.len(), records.len());
    assert_eq!(back, records);
    // -0.0 == 0.0 for `PartialEq`; the sign survives too.
    assert!(back[1].extra["tests"].is_sign_negative());
}

#[test]
fn the_schema_is_the_documented_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v.parquet");
    write_parquet(&path, &varied()).expect("write");
    let df = ParquetReader::new(std::fs::File::open(&path).expect("open"))
        .finish()
        .expect("polars reads it");
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut expected: Vec<String> = COLUMNS.iter().map(|(c, _)| c.to_string()).collect();
    expected.extend(["extra.churn".to_string(), "extra.tests".to_string()]);
    assert_eq!(names, expected);
    let dtype = |c: &str| df.column(c).expect(c).dtype().clone();
    assert_eq!(dtype("submit_s"), DataType::Int64);
    assert_eq!(dtype("slots"), DataType::UInt32);
    assert_eq!(dtype("labels"), DataType::List(Box::new(DataType::String)));
    assert_eq!(dtype("pipeline.allow_failure"), DataType::Boolean);
    assert_eq!(dtype("extra.churn"), DataType::Float64);
    // A job without a pipeline has every pipeline column null.
    let pid = df.column("pipeline.id").expect("pipeline.id");
    assert_eq!(pid.null_count(), 1);
    assert_eq!(df.column("pipeline.when").expect("when").null_count(), 1);
}

#[test]
fn writer_rejects_an_extra_key_without_a_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.parquet");
    let mut w = ParquetJobWriter::create(&path, &["churn".to_string()], None).expect("create");
    let mut r = JobRecord::new("1", "t", 0);
    r.extra.insert("other".into(), 1.0);
    let e = w.write_all(&[r]).expect_err("unknown key");
    assert!(e.to_string().contains("\"other\""), "{e}");
}

/// Writes `df` with polars itself, as another tool would.
fn write_frame(path: &Path, mut df: DataFrame) {
    let f = std::fs::File::create(path).expect("create");
    ParquetWriter::new(f).finish(&mut df).expect("write");
}

fn frame(cols: Vec<Column>) -> DataFrame {
    DataFrame::new_infer_height(cols).expect("frame")
}

fn err(path: &Path) -> DatasetError {
    match open_trace(path, None) {
        Err(e) => e,
        Ok(t) => t.collect_records().expect_err("bad input must fail"),
    }
}

#[test]
fn a_missing_required_column_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nosubmit.parquet");
    write_frame(
        &path,
        frame(vec![
            Column::new("id".into(), ["1"]),
            Column::new("tenant".into(), ["t"]),
        ]),
    );
    let e = err(&path);
    assert!(
        matches!(&e, DatasetError::ParquetMissingColumn { column, .. } if column == "submit_s"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains("missing column \"submit_s\""), "{msg}");
}

#[test]
fn a_column_of_the_wrong_type_is_named_with_both_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("FILE.parquet");
    write_frame(
        &path,
        frame(vec![
            Column::new("id".into(), ["1"]),
            Column::new("tenant".into(), ["t"]),
            Column::new("submit_s".into(), ["10"]),
        ]),
    );
    let e = err(&path);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: column \"submit_s\": expected Int64, found String",
            path.display()
        )
    );
    // Optional columns are checked too, and so are extra columns.
    let path = dir.path().join("labels.parquet");
    write_frame(
        &path,
        frame(vec![
            Column::new("id".into(), ["1"]),
            Column::new("tenant".into(), ["t"]),
            Column::new("submit_s".into(), [10i64]),
            Column::new("labels".into(), ["linux"]),
            Column::new("extra.churn".into(), ["high"]),
        ]),
    );
    assert!(err(&path)
        .to_string()
        .ends_with("column \"labels\": expected List(String), found String"));
}

#[test]
fn a_null_in_a_required_column_names_column_and_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nulls.parquet");
    write_frame(
        &path,
        frame(vec![
            Column::new("id".into(), ["1", "2", "3"]),
            Column::new("tenant".into(), [Some("t"), Some("t"), None]),
            Column::new("submit_s".into(), [1i64, 2, 3]),
        ]),
    );
    let e = err(&path);
    assert!(
        matches!(&e, DatasetError::ParquetValue { row: 2, column, .. } if column == "tenant"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: row index 2, column \"tenant\": null in a required column",
            path.display()
        )
    );
}

#[test]
fn other_tools_integer_widths_are_taken_and_checked_by_value() {
    // pandas writes every integer column as int64; slots must still fit a u32.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pandas.parquet");
    write_frame(
        &path,
        frame(vec![
            Column::new("id".into(), ["1", "2"]),
            Column::new("tenant".into(), ["t", "t"]),
            Column::new("submit_s".into(), [1i32, 2]),
            Column::new("slots".into(), [4i64, 1]),
            Column::new("outcome".into(), [Some("SUCCESS"), None]),
            Column::new("extra.tests".into(), [Some(3i64), None]),
            Column::new("unrelated".into(), ["x", "y"]),
        ]),
    );
    let recs = read_parquet(&path).expect("read");
    assert_eq!(recs[0].slots, 4);
    assert_eq!(recs[0].submit_s, 1);
    assert_eq!(recs[0].outcome, Outcome::Success);
    assert_eq!(recs[1].outcome, Outcome::Unknown);
    assert_eq!(recs[0].extra, BTreeMap::from([("tests".to_string(), 3.0)]));
    assert!(recs[1].extra.is_empty());

    let path = dir.path().join("negative.parquet");
    write_frame(
        &path,
        frame(vec![
            Column::new("id".into(), ["1"]),
            Column::new("tenant".into(), ["t"]),
            Column::new("submit_s".into(), [1i64]),
            Column::new("slots".into(), [-1i64]),
        ]),
    );
    let msg = err(&path).to_string();
    assert!(
        msg.contains("row index 0, column \"slots\": -1 is not 0 to"),
        "{msg}"
    );
}

#[test]
fn bad_values_name_row_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, Vec<Column>, &str)> = vec![
        (
            "outcome",
            vec![Column::new("outcome".into(), ["success", "exploded"])],
            "row index 1, column \"outcome\": \"exploded\" is not one of",
        ),
        (
            "clock",
            vec![Column::new("run_s".into(), [Some(1i64), Some(i64::MAX)])],
            "row index 1, column \"run_s\": 9223372036854775807 s is beyond",
        ),
        (
            "control",
            vec![Column::new("job_name".into(), ["ok", "bad\u{1b}[31m"])],
            "row index 1, column \"job_name\": control character U+001B",
        ),
        (
            "orphan",
            vec![
                Column::new("pipeline.id".into(), [Some("p"), None]),
                Column::new("pipeline.created_s".into(), [Some(0i64), None]),
                Column::new("pipeline.stage_index".into(), [Some(0i64), None]),
                Column::new("pipeline.stage".into(), [Some("build"), Some("test")]),
            ],
            "row index 1, column \"pipeline.stage\": set, but pipeline.id is null",
        ),
        (
            "nocreated",
            vec![
                Column::new("pipeline.id".into(), ["p", "p"]),
                Column::new("pipeline.stage_index".into(), [0i64, 0]),
                Column::new("pipeline.created_s".into(), [Some(0i64), None]),
            ],
            "row index 1, column \"pipeline.created_s\": null or missing, but pipeline.id is \"p\"",
        ),
    ];
    for (name, extra, expected) in cases {
        let path = dir.path().join(format!("{name}.parquet"));
        let mut cols = vec![
            Column::new("id".into(), ["1", "2"]),
            Column::new("tenant".into(), ["t", "t"]),
            Column::new("submit_s".into(), [1i64, 2]),
        ];
        cols.extend(extra);
        write_frame(&path, frame(cols));
        let msg = err(&path).to_string();
        assert!(
            msg.starts_with(&path.display().to_string()) && msg.contains(expected),
            "{name}: {msg}"
        );
    }
}

#[test]
fn a_file_that_is_not_parquet_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("jobs.parquet");
    std::fs::write(&csv, "id,tenant,submit_s\n1,t,0\n").expect("write");
    let e = err(&csv);
    assert!(matches!(e, DatasetError::NotParquet { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}: not a Parquet file", csv.display())),
        "{msg}"
    );

    // A Parquet file cut short (its writer never finished): the footer is gone.
    let whole = dir.path().join("whole.parquet");
    write_parquet(&whole, &varied()).expect("write");
    let bytes = std::fs::read(&whole).expect("read");
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let msg = err(&cut).to_string();
    assert!(
        msg.contains("not a Parquet file") && msg.contains("does not end with"),
        "{msg}"
    );

    // Asked for Parquet explicitly, a CSV is refused the same way.
    let plain = dir.path().join("jobs.csv");
    std::fs::write(&plain, "id,tenant,submit_s\n1,t,0\n").expect("write");
    let e = open_trace(&plain, Some(TraceFormat::Parquet)).expect_err("not parquet");
    assert!(matches!(e, DatasetError::NotParquet { .. }), "{e:?}");
}

#[test]
fn parquet_is_inferred_by_extension_and_by_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let named = dir.path().join("history.bin");
    write_parquet(&named, &varied()).expect("write");
    assert_eq!(
        TraceFormat::infer(&named).expect("infer"),
        TraceFormat::Parquet
    );
    assert_eq!(
        "parquet".parse::<TraceFormat>().expect("name"),
        TraceFormat::Parquet
    );
}

/// A folder of Parquet parts (as Spark, DuckDB and polars write a table) opens as one
/// trace, by submit time across the parts; Spark's `_SUCCESS` is not a part. A folder
/// that mixes Parquet and CSV is refused, naming both.
#[test]
fn a_folder_of_parquet_parts_is_one_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = varied();
    let (early, late): (Vec<JobRecord>, Vec<JobRecord>) = records
        .iter()
        .cloned()
        .partition(|r| r.submit_s < 1_700_000_000);
    assert!(!early.is_empty() && !late.is_empty());
    // The later jobs in the part whose name sorts first.
    write_parquet(&dir.path().join("part-0.parquet"), &late).expect("write");
    write_parquet(&dir.path().join("part-1.parquet"), &early).expect("write");
    std::fs::write(dir.path().join("_SUCCESS"), "").expect("write");
    let trace = open_trace(dir.path(), None).expect("open the folder");
    assert_eq!(trace.format, TraceFormat::Parquet);
    let mut want = records.clone();
    want.sort_by_key(|r| r.submit_s);
    let got = trace.collect_records().expect("read");
    assert_eq!(
        got.iter().map(|r| &r.id).collect::<Vec<_>>(),
        want.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    assert_eq!(got.len(), records.len());

    std::fs::write(dir.path().join("more.csv"), "id,tenant,submit_s\n9,t,0\n").expect("write");
    let msg = match open_trace(dir.path(), None) {
        Ok(_) => panic!("a folder mixing CSV and Parquet was opened"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("mixes trace formats")
            && msg.contains("more.csv")
            && msg.contains("part-0.parquet"),
        "{msg}"
    );
}

/// A file keeps its trace's epoch (`rustci.unix_start` in its metadata) for whoever merges
/// it with other histories; a file written without one has none.
#[test]
fn the_trace_epoch_travels_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dated = dir.path().join("dated.parquet");
    rustci_datasets::parquet::write_trace_parquet(&dated, &varied(), Some(1_600_000_000))
        .expect("write");
    let trace = open_trace(&dated, None).expect("open");
    assert_eq!(trace.meta.unix_start, Some(1_600_000_000));
    assert_eq!(trace.collect_records().expect("read"), varied());
    let undated = dir.path().join("undated.parquet");
    write_parquet(&undated, &varied()).expect("write");
    assert_eq!(
        open_trace(&undated, None).expect("open").meta.unix_start,
        None
    );
}
