//! The `rustci-sim` binary as a user runs it: reports, per-job outputs, and clear errors
//! that name the file and line for bad input.

use std::io::Write;
use std::process::Command;

mod common;
use common::{sim, stderr, write};

const HEADER: &str = "; MaxProcs: 2\n";

fn swf_line(id: u32, submit: i64, run: &str, procs: u32, req: i64) -> String {
    format!("{id} {submit} -1 {run} {procs} -1 -1 {procs} {req} -1 1 1 -1 -1 -1 -1 -1 -1\n")
}

#[test]
fn synthetic_run_prints_a_json_report() {
    let o = sim(&[
        "run",
        "--days",
        "0.25",
        "--policy",
        "fairshare",
        "--format",
        "json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    for key in [
        "jobs",
        "makespan_s",
        "wait_mean_s",
        "wait_p50_s",
        "wait_p95_s",
        "wait_p99_s",
        "bsld_mean",
        "utilization",
        "runner_hours",
        "jain_fairness",
        "events",
        "events_per_s",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    assert!(r["jobs"].as_u64().expect("jobs") > 1000);
    let within = r["qos"]["standard"]["within_target"]
        .as_f64()
        .expect("within_target");
    assert!((0.0..=1.0).contains(&within));
    assert!(r["bsld_mean"].as_f64().expect("bsld") >= 1.0);
}

/// Two processors. Job 1 takes both for 10 s; jobs 2 and 3 (one each) wait for it:
/// waits 10 - 1 = 9 and 10 - 2 = 8.
fn tiny_swf(dir: &std::path::Path) -> String {
    write(
        dir,
        "tiny.swf",
        &format!(
            "{HEADER}{}{}{}",
            swf_line(1, 0, "10", 2, 10),
            swf_line(2, 1, "5", 1, 5),
            swf_line(3, 2, "5", 1, 5)
        ),
    )
}

#[test]
fn swf_out_has_the_simulated_waits_by_job_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = tiny_swf(dir.path());
    let out = dir.path().join("out.swf");
    let report = dir.path().join("report.json");
    let jobs = dir.path().join("jobs.csv");
    let o = sim(&[
        "run",
        "--trace",
        &trace,
        "--trace-format",
        "swf",
        "--processors",
        "2",
        "--policy",
        "easy",
        "--swf-out",
        out.to_str().expect("utf8"),
        "--output",
        report.to_str().expect("utf8"),
        "--jobs-out",
        jobs.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let waits: Vec<(String, String)> = std::fs::read_to_string(&out)
        .expect("swf out")
        .lines()
        .filter(|l| !l.starts_with(';'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 18, "{l}");
            (f[0].to_string(), f[2].to_string())
        })
        .collect();
    assert_eq!(
        waits,
        vec![
            ("1".into(), "0".into()),
            ("2".into(), "9".into()),
            ("3".into(), "8".into())
        ]
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert!((r["wait_mean_s"].as_f64().expect("mean") - 17.0 / 3.0).abs() < 1e-9);
    let csv = std::fs::read_to_string(&jobs).expect("jobs csv");
    assert!(
        csv.starts_with("id,tenant,qos,submit_s,start_s,end_s,wait_s,run_s,slots,pool,runner\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4);
}

#[test]
fn bad_swf_lines_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = swf_line(1, 0, "10", 1, 10);
    let cases = [
        (
            "short.swf",
            format!("{HEADER}{good}2 1 -1 5 1 -1 -1 1 5 -1 1 1 -1 -1 -1 -1 -1\n"),
            "short.swf:3",
        ),
        (
            "text.swf",
            format!("{HEADER}{good}{}", swf_line(2, 1, "abc", 1, 5)),
            "text.swf:3",
        ),
        (
            "negative.swf",
            format!("{HEADER}{good}{}", swf_line(2, 1, "-5", 1, 5)),
            "negative.swf:3",
        ),
    ];
    for (name, text, location) in cases {
        let trace = write(dir.path(), name, &text);
        let o = sim(&["run", "--trace", &trace, "--trace-format", "swf", "-q"]);
        assert!(!o.status.success(), "{name} was accepted");
        let err = stderr(&o);
        assert!(err.contains(location), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn truncated_gzip_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from(HEADER);
    for i in 1..=20_000 {
        text.push_str(&swf_line(i, i64::from(i), "10", 1, 10));
    }
    let mut gz = flate2_gzip(text.as_bytes());
    gz.truncate(gz.len() / 2);
    let path = dir.path().join("cut.swf.gz");
    std::fs::File::create(&path)
        .expect("create")
        .write_all(&gz)
        .expect("write");
    let o = sim(&["run", "--trace", path.to_str().expect("utf8"), "-q"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("cut.swf.gz:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// gzip by the system's `gzip`, so the test needs no compression crate of its own.
fn flate2_gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("feed gzip");
    child.wait_with_output().expect("gzip output").stdout
}

#[test]
fn bad_fleet_files_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "zero.toml",
            "[[pool]]\nname = \"a\"\nrunners = 0\n",
            "pool[0] (a).runners",
        ),
        (
            "neg.toml",
            "[[pool]]\nname = \"a\"\nrunners = 1\nprovisioning_delay_s = -5\n",
            "pool[0] (a).provisioning_delay_s",
        ),
        (
            "typo.toml",
            "[[pool]]\nname = \"a\"\nrunners = 1\nslot = 2\n",
            "unknown field `slot`",
        ),
        (
            "qos.toml",
            "[[pool]]\nname = \"a\"\nrunners = 1\n[[qos]]\nname = \"x\"\nwait_target_s = 0\n",
            "qos[0] (x).wait_target_s",
        ),
    ];
    for (name, text, needle) in cases {
        let fleet = write(dir.path(), name, text);
        let o = sim(&["run", "--days", "0.01", "--fleet", &fleet, "-q"]);
        assert!(!o.status.success(), "{name} was accepted");
        let err = stderr(&o);
        assert!(err.contains(needle) && err.contains(name), "{name}: {err}");
    }
    let o = sim(&["run", "--days", "0.01", "--policy", "lottery", "-q"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown policy"), "{}", stderr(&o));
}

#[test]
fn help_has_examples() {
    let o = sim(&["run", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Examples:") && help.contains("--swf-out"),
        "{help}"
    );
}

#[test]
fn trace_format_takes_a_reader_name_in_any_case_and_lists_them_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = write(
        dir.path(),
        "tiny.txt",
        &format!(
            "{HEADER}{}{}",
            swf_line(1, 0, "10", 2, 10),
            swf_line(2, 1, "5", 1, 5)
        ),
    );
    // The same run whether the format is inferred (a `;` header) or given, in any case.
    let report = |format: &[&str]| {
        let mut args = vec!["run", "--trace", &trace, "--format", "json", "-q"];
        args.extend(format);
        let o = sim(&args);
        assert!(o.status.success(), "{format:?}: {}", stderr(&o));
        let mut r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
        let r = r.as_object_mut().expect("object");
        r.remove("wall_s");
        r.remove("events_per_s");
        r.clone()
    };
    let inferred = report(&[]);
    assert_eq!(inferred["jobs"], 2);
    assert_eq!(report(&["--trace-format", "swf"]), inferred);
    assert_eq!(report(&["--trace-format", "SWF"]), inferred);

    // An unknown name is refused before anything runs, by every command that reads traces,
    // naming the flag, the value and every format there is.
    for args in [
        vec!["run", "--trace", &trace, "--trace-format", "pbs"],
        vec![
            "plan",
            "--trace",
            &trace,
            "--trace-format",
            "pbs",
            "--target",
            "standard:p95<=60",
        ],
    ] {
        let o = sim(&args);
        assert!(!o.status.success(), "{args:?} was accepted");
        let err = stderr(&o);
        assert!(
            err.contains("--trace-format") && err.contains("pbs"),
            "{err}"
        );
        for f in rustci_datasets::TraceFormat::ALL {
            assert!(err.contains(f.name()), "{f} not listed: {err}");
        }
    }
}

#[test]
fn jobs_out_parquet_has_the_simulated_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = tiny_swf(dir.path());
    let out = dir.path().join("jobs.parquet");
    let o = sim(&[
        "run",
        "--trace",
        &trace,
        "--policy",
        "fcfs",
        "--jobs-out",
        out.to_str().expect("utf-8"),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = rustci_datasets::parquet::read_parquet(&out).expect("read");
    // (id, submit, wait, run, slots)
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.id.as_str(), r.submit_s, r.wait_s, r.run_s, r.slots))
        .collect();
    assert_eq!(
        got,
        [
            ("1", 0, Some(0), Some(10), 2),
            ("2", 1, Some(9), Some(5), 1),
            ("3", 2, Some(8), Some(5), 1),
        ]
    );
    // The trace's own fields stay: SWF status 1 is a success, the request is kept.
    assert!(records
        .iter()
        .all(|r| r.outcome == rustci_datasets::Outcome::Success));
    assert_eq!(records[0].requested_s, Some(10));
}
