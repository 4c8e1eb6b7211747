//! Bad input: every error names the file and the 1-based line; nothing panics.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use rustci_datasets::swf::SwfReader;
use rustci_datasets::{open_trace, DatasetError, JobRecord, TraceFormat};

const HEADER: &str = "; Version: 2.2\n; MaxProcs: 64\n; UnixStartTime: 1000\n;\n";

fn swf_line(i: u64) -> String {
    format!(
        "{i:6} {:8} {:5} {:6} {:3} -1 -1 {:3} {:6} -1 1 {:3} 1 -1 -1 -1 -1 -1\n",
        i * 37,
        i % 100,
        60 + i % 5000,
        1 + i % 64,
        1 + i % 64,
        7200,
        i % 50
    )
}

fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write temp file");
    path
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip finish")
}

/// All records up to the first error, and that error.
fn first_error(path: &Path, format: Option<TraceFormat>) -> (Vec<JobRecord>, DatasetError) {
    let trace = match open_trace(path, format) {
        Ok(t) => t,
        Err(e) => return (Vec::new(), e),
    };
    let mut ok = Vec::new();
    for r in trace {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => return (ok, e),
        }
    }
    panic!(
        "{}: expected an error, read {} records",
        path.display(),
        ok.len()
    );
}

fn assert_located(e: &DatasetError, path: &Path, line: u64) {
    let msg = e.to_string();
    let prefix = format!("{}:{line}: ", path.display());
    assert!(
        msg.starts_with(&prefix),
        "{msg:?} should start with {prefix:?}"
    );
    let loc = e.location().expect("error has a location");
    assert_eq!(loc.line, Some(line), "{msg}");
}

#[test]
fn truncated_gzip_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 30_000;
    let mut text = String::from(HEADER);
    for i in 1..=n {
        text.push_str(&swf_line(i));
    }
    let gz = gzip(text.as_bytes());
    let cut = &gz[..gz.len() / 2];
    let path = write_file(dir.path(), "cut.swf.gz", cut);

    let (ok, e) = first_error(&path, None);
    assert!(matches!(e, DatasetError::Gzip { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("gzip stream truncated or corrupt"), "{msg}");
    let header_lines = HEADER.lines().count() as u64;
    // The error is on the line after the last complete record.
    let line = header_lines + ok.len() as u64 + 1;
    assert_located(&e, &path, line);
    assert!(
        ok.len() > 1000 && ok.len() < n as usize,
        "{} records before the cut",
        ok.len()
    );
    assert_eq!(ok.last().map(|r| r.id.clone()), Some(ok.len().to_string()));

    // The stream stops after a read error.
    let mut reader = SwfReader::open(&path).expect("header is intact");
    let errors = reader.by_ref().filter(Result::is_err).count();
    assert_eq!(errors, 1);
    assert!(reader.next().is_none());
}

#[test]
fn corrupt_gzip_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from(HEADER);
    for i in 1..=5_000 {
        text.push_str(&swf_line(i));
    }
    let mut gz = gzip(text.as_bytes());
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let path = write_file(dir.path(), "bad.swf.gz", &gz);
    let results: Vec<_> = open_trace(&path, None).expect("header is intact").collect();
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!errors.is_empty(), "corruption must be reported");
    let msg = errors[0].to_string();
    assert!(msg.starts_with(&format!("{}:", path.display())), "{msg}");
    assert!(errors[0].location().and_then(|l| l.line).is_some(), "{msg}");
}

#[test]
fn gzip_detected_by_magic_not_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{HEADER}{}{}", swf_line(1), swf_line(2));
    let path = write_file(dir.path(), "plain-name.swf", &gzip(text.as_bytes()));
    let trace = open_trace(&path, None).expect("open");
    assert_eq!(trace.meta.max_procs, Some(64));
    assert_eq!(trace.collect_records().expect("valid").len(), 2);
}

fn swf_with_bad_line(bad: &str, at_job: u64) -> String {
    let mut text = String::from(HEADER);
    for i in 1..at_job {
        text.push_str(&swf_line(i));
    }
    text.push_str(bad);
    text.push('\n');
    text.push_str(&swf_line(at_job + 1));
    text
}

#[test]
fn line_with_17_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = swf_with_bad_line("9 100 0 50 4 -1 -1 4 600 -1 1 3 1 -1 -1 -1 -1", 9);
    let path = write_file(dir.path(), "x.swf", text.as_bytes());
    let (ok, e) = first_error(&path, None);
    assert_eq!(ok.len(), 8);
    let line = HEADER.lines().count() as u64 + 9;
    assert_located(&e, &path, line);
    assert_eq!(
        e.to_string(),
        format!("{}:{line}: expected 18 fields, found 17", path.display())
    );
}

#[test]
fn text_in_a_number_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = swf_with_bad_line("3 100 0 abc 4 -1 -1 4 600 -1 1 3 1 -1 -1 -1 -1 -1", 3);
    let path = write_file(dir.path(), "KTH.swf.gz", &gzip(text.as_bytes()));
    let (_, e) = first_error(&path, None);
    let line = HEADER.lines().count() as u64 + 3;
    assert_eq!(
        e.to_string(),
        format!(
            "{}:{line}: field 4 (run time): \"abc\" is not an integer",
            path.display()
        )
    );
}

#[test]
fn negative_run_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = swf_with_bad_line("5 100 0 -5 4 -1 -1 4 600 -1 1 3 1 -1 -1 -1 -1 -1", 5);
    let path = write_file(dir.path(), "x.swf", text.as_bytes());
    let (_, e) = first_error(&path, None);
    let line = HEADER.lines().count() as u64 + 5;
    assert!(
        matches!(
            e,
            DatasetError::Negative {
                field: 4,
                value: -5,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}:{line}: field 4 (run time) is negative (-5); only -1 (unknown) is allowed",
            path.display()
        )
    );
}

#[test]
fn negative_processors_and_reader_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = swf_with_bad_line("5 100 0 50 -3 -1 -1 4 600 -1 1 3 1 -1 -1 -1 -1 -1", 5);
    let path = write_file(dir.path(), "x.swf", text.as_bytes());
    let results: Vec<_> = open_trace(&path, None).expect("open").collect();
    // 4 good, 1 bad, 1 good after it: a bad line does not end the stream.
    assert_eq!(results.len(), 6);
    let e = results[4].as_ref().expect_err("line 5 is bad");
    assert!(
        e.to_string()
            .contains("field 5 (allocated processors) is negative (-3)"),
        "{e}"
    );
    assert!(results[5].is_ok());
}

#[test]
fn lenient_whitespace_comments_and_blank_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{HEADER}{}   \t\r\n\n; a comment in the middle\n{}",
        swf_line(1).trim_end(),
        swf_line(2)
    );
    let path = write_file(dir.path(), "ws.swf", text.as_bytes());
    let recs = open_trace(&path, None)
        .expect("open")
        .collect_records()
        .expect("valid");
    assert_eq!(recs.len(), 2);
}

#[test]
fn missing_file_names_the_path() {
    let e = open_trace(Path::new("/nonexistent/dir/log.swf"), None).expect_err("missing");
    let msg = e.to_string();
    assert!(
        msg.starts_with("/nonexistent/dir/log.swf: cannot open"),
        "{msg}"
    );
}

#[test]
fn format_names() {
    assert_eq!("swf".parse::<TraceFormat>().expect("swf"), TraceFormat::Swf);
    assert_eq!(
        " Travis ".parse::<TraceFormat>().expect("travis"),
        TraceFormat::Travis
    );
    assert_eq!("gha".parse::<TraceFormat>().expect("gha"), TraceFormat::Gha);
    assert_eq!("CSV".parse::<TraceFormat>().expect("csv"), TraceFormat::Csv);
    assert_eq!(
        "Parquet".parse::<TraceFormat>().expect("parquet"),
        TraceFormat::Parquet
    );
    let e = "orc".parse::<TraceFormat>().expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "unknown trace format \"orc\"; expected one of: swf, travis, gha, gitlab, flowbench, csv, parquet"
    );
}

const TRAVIS_HEADER: &str = "tr_build_id,gh_project_name,gh_is_pr,gh_lang,git_branch,gh_build_started_at,tr_status,tr_duration,gh_sloc,tr_log_num_tests_run\n";

#[test]
fn travis_negative_duration_and_bad_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = "1,a/b,False,Ruby,master,2014-05-04 11:00:31,passed,281.0,100,\n";
    let text = format!(
        "{TRAVIS_HEADER}{good}2,a/b,True,Ruby,master,2014-05-04 11:00:40,failed,-5,100,3\n"
    );
    let path = write_file(dir.path(), "p.csv", text.as_bytes());
    let (_, e) = first_error(&path, None);
    assert_located(&e, &path, 3);
    assert!(e.to_string().contains("column tr_duration"), "{e}");
    assert!(e.to_string().contains("negative"), "{e}");

    let text =
        format!("{TRAVIS_HEADER}{good}2,a/b,True,Ruby,master,2014-05-04 1100,failed,5,100,3\n");
    let path = write_file(dir.path(), "q.csv.gz", &gzip(text.as_bytes()));
    let (_, e) = first_error(&path, None);
    assert_located(&e, &path, 3);
    assert!(e.to_string().contains("column gh_build_started_at"), "{e}");

    // Valid rows: mapping and sorting.
    let text =
        format!("{TRAVIS_HEADER}2,a/b,True,Java,dev,2014-05-04 11:00:40,canceled,,,\n{good}");
    let path = write_file(dir.path(), "r.csv", text.as_bytes());
    let trace = open_trace(&path, None).expect("open");
    assert_eq!(trace.format, TraceFormat::Travis);
    let recs = trace.collect_records().expect("valid");
    assert_eq!(recs[0].id, "1");
    assert_eq!(recs[0].submit_s, 1_399_201_231);
    assert_eq!(recs[0].run_s, Some(281));
    assert_eq!(recs[0].labels, vec!["ruby".to_string()]);
    assert_eq!(recs[0].extra.get("gh_is_pr"), Some(&0.0));
    assert_eq!(recs[0].extra.get("tr_log_num_tests_run"), None);
    assert_eq!(recs[1].run_s, None);
    assert_eq!(recs[1].outcome, rustci_datasets::Outcome::Cancelled);
    assert_eq!(recs[1].extra.get("gh_is_pr"), Some(&1.0));
}

#[test]
fn travis_row_with_wrong_field_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{TRAVIS_HEADER}1,a/b,False,Ruby,master,2014-05-04 11:00:31,passed,281.0,100,\n1,2,3\n"
    );
    let path = write_file(dir.path(), "p.csv", text.as_bytes());
    let (_, e) = first_error(&path, None);
    assert_located(&e, &path, 3);
    assert!(e.to_string().contains("expected 10 fields, found 3"), "{e}");
}

#[test]
fn gha_malformed_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = r#"[{""job_name"": ""build"", ""job_start"": ""2025-08-27T16:15:31Z"", ""job_end"": ""2025-08-27T16:33:13Z"", ""job_duration"": 1062.0, ""job_result"": ""success"", ""steps"": []}]"#;
    let text = format!(
        "repo,id_build,branch,created_at,workflow_name,job_details,total_jobs\n\
         o/r,11,main,2025-08-27T16:15:27Z,CI,\"{good}\",1\n\
         o/r,12,main,2025-08-27T16:20:00Z,CI,\"[{{\"\"job_name\"\": \",1\n"
    );
    let path = write_file(dir.path(), "runs.csv", text.as_bytes());
    let (_, e) = first_error(&path, None);
    assert!(matches!(e, DatasetError::Json { .. }), "{e:?}");
    assert_located(&e, &path, 3);
    assert!(e.to_string().contains("column job_details"), "{e}");

    // The good row alone maps as documented.
    let text = format!(
        "repo,id_build,branch,created_at,workflow_name,job_details,total_jobs\n\
         o/r,11,main,2025-08-27T16:15:27Z,CI,\"{good}\",1\n"
    );
    let path = write_file(dir.path(), "ok.csv", text.as_bytes());
    let trace = open_trace(&path, None).expect("open");
    assert_eq!(trace.format, TraceFormat::Gha);
    let recs = trace.collect_records().expect("valid");
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.id, "11/0");
    assert_eq!(r.job_name.as_deref(), Some("CI/build"));
    assert_eq!(
        (r.submit_s, r.wait_s, r.run_s),
        (1_756_311_327, Some(4), Some(1062))
    );
    assert_eq!(r.extra.get("total_jobs"), Some(&1.0));
}

#[test]
fn jobcsv_bad_cell_names_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "id,tenant,submit_s,run_s\na,t,0,5\nb,t,1,abc\n";
    let path = write_file(dir.path(), "jobs.csv", text.as_bytes());
    let (ok, e) = first_error(&path, None);
    assert_eq!(ok.len(), 1);
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: column run_s: \"abc\" is not an integer",
            path.display()
        )
    );
    let path = write_file(dir.path(), "nohdr.csv", b"a,b,c\n1,2,3\n");
    let e = open_trace(&path, None).expect_err("missing columns");
    assert!(e.to_string().contains("missing column \"id\""), "{e}");
}

#[test]
fn directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open_trace(dir.path(), None).expect_err("empty");
    assert!(e.to_string().contains("no *.csv"), "{e}");

    write_file(dir.path(), "a.csv", b"id,tenant,submit_s\nx,t,5\ny,t,1\n");
    write_file(
        dir.path(),
        "b.csv.gz",
        &gzip(b"id,tenant,submit_s\nz,u,3\n"),
    );
    write_file(dir.path(), "notes.txt", b"ignored");
    let trace = open_trace(dir.path(), None).expect("open dir");
    assert_eq!(trace.format, TraceFormat::Csv);
    let ids: Vec<String> = trace
        .collect_records()
        .expect("valid")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["y", "z", "x"]);

    write_file(dir.path(), "c.csv", TRAVIS_HEADER.as_bytes());
    let e = open_trace(dir.path(), None).expect_err("mixed");
    assert!(e.to_string().contains("mixes trace formats"), "{e}");
    let e = open_trace(dir.path(), Some(TraceFormat::Swf)).expect_err("swf dir");
    assert!(e.to_string().contains("SWF"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes never panic the SWF reader, plain or gzip, and every error it
    /// reports carries the file name.
    #[test]
    fn swf_reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), gz in any::<bool>()) {
        let bytes = if gz { gzip(&data) } else { data };
        match SwfReader::from_reader(std::io::Cursor::new(bytes), "fuzz.swf") {
            Ok(reader) => {
                for r in reader.take(1000) {
                    if let Err(e) = r {
                        prop_assert!(e.to_string().starts_with("fuzz.swf:"), "{}", e);
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.swf"), "{}", e),
        }
    }

    /// Lines made of SWF-like tokens never panic and errors name the line.
    #[test]
    fn swf_token_lines_never_panic(
        lines in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    Just("-1".to_string()),
                    Just("-5".to_string()),
                    Just("x".to_string()),
                    Just("1.5".to_string()),
                    Just("99999999999999999999".to_string()),
                    Just(";".to_string()),
                    (0u32..100_000).prop_map(|v| v.to_string()),
                ],
                0..22,
            ),
            1..20,
        )
    ) {
        let text: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
        let reader = SwfReader::from_reader(std::io::Cursor::new(text.into_bytes()), "t.swf")
            .expect("plain text header never fails");
        for r in reader {
            if let Err(e) = r {
                let line = e.location().and_then(|l| l.line).expect("line");
                prop_assert!(line >= 1 && line <= lines.len() as u64);
            }
        }
    }
}
