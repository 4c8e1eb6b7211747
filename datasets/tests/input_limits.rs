//! Issue 13, items 7, 9 and 10 at the trace readers: times beyond the millisecond
//! clock, control characters in names, and a folder that mixes SWF with CSV are errors
//! that name the file, the line and the field, never a silent change.

use std::path::Path;

use rustci_datasets::record::MAX_TIME_S;
use rustci_datasets::{open_trace, DatasetError};

const SWF_HEADER: &str = "; MaxProcs: 4\n";
const CSV_HEADER: &str = "id,tenant,labels,slots,requested_s,submit_s,run_s,branch,qos\n";

fn swf_line(submit: &str, run: &str, req: &str) -> String {
    format!("1 {submit} -1 {run} 1 -1 -1 1 {req} -1 1 1 -1 -1 -1 -1 -1 -1\n")
}

fn read(path: &Path) -> Result<usize, DatasetError> {
    Ok(open_trace(path, None)?.collect_records()?.len())
}

#[track_caller]
fn refused(path: &Path, needles: &[&str]) -> String {
    let e = read(path).expect_err("must be refused").to_string();
    for n in needles {
        assert!(e.contains(n), "{e:?} should name {n:?}");
    }
    e
}

#[test]
fn swf_times_beyond_the_clock_name_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("big.swf");
    let max = MAX_TIME_S.to_string();
    std::fs::write(&p, format!("{SWF_HEADER}{}", swf_line("0", &max, &max))).expect("write");
    assert_eq!(read(&p).expect("the largest time is read"), 1);

    for (field, line) in [
        (
            "field 4 (run time)",
            swf_line("0", "9223372036854775807", "10"),
        ),
        (
            "field 2 (submit time)",
            swf_line("9223372036854775000", "10", "10"),
        ),
        (
            "field 9 (requested time)",
            swf_line("0", "10", "9223372036854775807"),
        ),
        (
            "field 4 (run time)",
            swf_line("0", &(MAX_TIME_S + 1).to_string(), "10"),
        ),
    ] {
        std::fs::write(
            &p,
            format!("{SWF_HEADER}{}", swf_line("0", "5", "5") + &line),
        )
        .expect("write");
        let e = refused(&p, &["big.swf:3", field]);
        assert!(e.contains("largest time"), "{e}");
    }
}

#[test]
fn csv_times_beyond_the_clock_name_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("jobs.csv");
    for (column, row) in [
        (
            "submit_s",
            "2,t,linux,1,,9223372036854775000,10,main,standard\n",
        ),
        (
            "submit_s",
            "2,t,linux,1,,-9223372036854775808,10,main,standard\n",
        ),
        (
            "run_s",
            "2,t,linux,1,,0,9223372036854775807,main,standard\n",
        ),
        (
            "requested_s",
            "2,t,linux,1,99999999999,0,10,main,standard\n",
        ),
    ] {
        let text = format!("{CSV_HEADER}1,t,linux,1,60,0,10,main,standard\n{row}");
        std::fs::write(&p, text).expect("write");
        refused(
            &p,
            &["jobs.csv:3", &format!("column {column}"), "largest time"],
        );
    }
}

/// The CI exports' durations (TravisTorrent's `tr_duration`, GitLab's `duration`, read
/// by one parser) are held to the same clock as the SWF and job CSV times.
#[test]
fn travis_durations_beyond_the_clock_name_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("travis.csv");
    let header = "tr_build_id,gh_project_name,gh_is_pr,gh_lang,git_branch,gh_build_started_at,tr_status,tr_duration\n";
    let row = |d: &str| format!("2,a/b,False,Ruby,master,2014-05-04 11:00:40,passed,{d}\n");
    let good = "1,a/b,False,Ruby,master,2014-05-04 11:00:31,passed,281.0\n";
    std::fs::write(
        &p,
        format!("{header}{good}{}", row(&MAX_TIME_S.to_string())),
    )
    .expect("write");
    assert_eq!(read(&p).expect("the largest duration is read"), 2);
    for d in [
        (MAX_TIME_S + 1).to_string(),
        "1e14".to_string(),
        "1e300".to_string(),
    ] {
        std::fs::write(&p, format!("{header}{good}{}", row(&d))).expect("write");
        refused(&p, &["travis.csv:3", "column tr_duration", "largest time"]);
    }
}

#[test]
fn csv_control_characters_name_the_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("jobs.csv");
    for (column, row) in [
        ("labels", "2,t,linux\u{0},1,,0,10,main,standard\n"),
        ("branch", "2,t,linux,1,,0,10,main\u{1b}[31m,standard\n"),
        ("tenant", "2,t\u{7},linux,1,,0,10,main,standard\n"),
        ("qos", "2,t,linux,1,,0,10,main,stan\u{0}dard\n"),
    ] {
        let text = format!("{CSV_HEADER}1,t,linux,1,60,0,10,main,standard\n{row}");
        std::fs::write(&p, text).expect("write");
        refused(
            &p,
            &[
                "jobs.csv:3",
                &format!("column {column}"),
                "control character",
            ],
        );
    }
}

#[test]
fn a_folder_mixing_swf_and_csv_names_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.csv"),
        format!("{CSV_HEADER}1,t,linux,1,60,0,10,main,standard\n"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("b.swf"),
        format!("{SWF_HEADER}{}", swf_line("0", "5", "5")),
    )
    .expect("write");
    refused(dir.path(), &["a.csv", "b.swf", "mixes trace formats"]);
    // Without the log the folder reads as before.
    std::fs::remove_file(dir.path().join("b.swf")).expect("rm");
    assert_eq!(read(dir.path()).expect("CSV folder"), 1);
}
