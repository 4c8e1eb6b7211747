//! Traces with pipelines, on small hand-made files: GitLab exports and FlowBench
//! workflows map as documented (numbers worked by hand), bad input names the file, the
//! line and the job, and `check_pipelines` enforces the pipeline rules.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustci_datasets::gitlab::{read_pipelines, FINISHED_S, QUEUED_S, RUNNER_ID};
use rustci_datasets::time::parse_timestamp;
use rustci_datasets::{
    check_pipelines, open_trace, DatasetError, JobRecord, Outcome, PipelineRef, TraceFormat, When,
};

const JOBS_HEADER: &str = "pipeline_id,job_id,job_name,stage,status,duration,queued_duration,started_at,finished_at,created_at,coverage,runner_id,web_url\n";
const PIPELINES_HEADER: &str =
    "pipeline_id,status,ref,source,created_at,updated_at,duration,queued_duration,web_url\n";

/// 2026-01-13T00:00:00Z.
fn t0() -> i64 {
    parse_timestamp("2026-01-13T00:00:00Z").expect("timestamp")
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write temp file");
    path
}

fn job_line(pipeline: u64, id: u64, name: &str, stage: &str, status: &str, times: &str) -> String {
    format!("{pipeline},{id},{name},{stage},{status},{times},https://gl.example/g/p/-/jobs/{id}\n")
}

/// Two pipelines of `alice/feature`: 10 (succeeded) and 11, created a minute later.
fn gitlab_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut jobs = String::from(JOBS_HEADER);
    // duration, queued_duration, started_at, finished_at, created_at, coverage, runner_id
    for line in [
        job_line(10, 101, "lint", "lint", "success",
            "30.4,1.5,2026-01-13T00:00:10.000Z,2026-01-13T00:00:40.400Z,2026-01-13T00:00:01.200Z,,7.0"),
        job_line(10, 102, "\"build: [linux, \"\"x\"\"]\"", "binary_build", "failed",
            "59.6,2.0,2026-01-13T00:00:45.000Z,2026-01-13T00:01:44.600Z,2026-01-13T00:00:01.300Z,,7.0"),
        job_line(10, 103, "deploy", "deploy_packages", "manual", ",,,,2026-01-13T00:00:01.400Z,,"),
        job_line(10, 104, "scan-it", "scan", "success",
            "5,0.1,2026-01-13T00:00:50.000Z,2026-01-13T00:00:55.000Z,2026-01-13T00:00:01.500Z,,8.0"),
        job_line(11, 201, "lint", "lint", "canceled",
            ",,,2026-01-13T00:01:30.000Z,2026-01-13T00:01:00.000Z,,"),
        job_line(11, 202, "notify", ".post", "skipped", ",,,,2026-01-13T00:01:00.900Z,,"),
    ] {
        jobs.push_str(&line);
    }
    write(dir.path(), "gitlab_jobs.csv", &jobs);
    write(
        dir.path(),
        "gitlab_pipelines.csv",
        &format!(
            "{PIPELINES_HEADER}11,canceled,alice/feature,push,2026-01-13T00:00:59.000Z,2026-01-13T00:01:31.000Z,,,\n\
             10,success,alice/feature,push,2026-01-13T00:00:00.500Z,2026-01-13T00:05:00.000Z,300.0,1,\n"
        ),
    );
    // Not a GitLab file: ignored in the folder.
    write(
        dir.path(),
        "gitlab_critical_path.csv",
        "job_name,duration_count\nlint,1\n",
    );
    dir
}

fn pipe(r: &JobRecord) -> &PipelineRef {
    r.pipeline.as_ref().expect("pipeline")
}

#[test]
fn gitlab_jobs_map_as_documented() {
    let dir = gitlab_dir();
    let trace = open_trace(dir.path(), None).expect("open");
    assert_eq!(trace.format, TraceFormat::Gitlab);
    let recs = trace.collect_records().expect("valid");
    let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["101", "102", "103", "104", "201", "202"]);
    check_pipelines(&recs).expect("rules");
    let t0 = t0();

    let lint = &recs[0];
    assert_eq!(lint.tenant, "alice");
    assert_eq!(lint.branch.as_deref(), Some("alice/feature"));
    assert_eq!(lint.project.as_deref(), Some("g/p"));
    assert_eq!(lint.job_name.as_deref(), Some("lint"));
    // Created 00:00:01.2, started 00:00:10, 30.4 s long.
    assert_eq!(
        (lint.submit_s, lint.wait_s, lint.run_s),
        (t0 + 1, Some(9), Some(30))
    );
    assert_eq!(lint.outcome, Outcome::Success);
    assert_eq!(lint.extra[RUNNER_ID], 7.0);
    assert_eq!(lint.extra[QUEUED_S], 1.5);
    assert_eq!(lint.extra[FINISHED_S], (t0 + 40) as f64);
    assert!(lint.labels.is_empty() && lint.queue.is_none());

    // Stages of pipeline 10: lint, binary_build, then scan (unlisted, its first job
    // started at 50 s, after binary_build's at 45 s), then deploy_packages.
    let stage = |i: usize| (pipe(&recs[i]).stage.as_str(), pipe(&recs[i]).stage_index);
    assert_eq!(stage(0), ("lint", 0));
    assert_eq!(stage(1), ("binary_build", 1));
    assert_eq!(stage(3), ("scan", 2));
    assert_eq!(stage(2), ("deploy_packages", 3));
    assert_eq!(stage(4), ("lint", 0));
    assert_eq!(stage(5), (".post", 1));

    let p = pipe(lint);
    assert_eq!((p.id.as_str(), p.created_s), ("10", t0));
    assert_eq!(p.needs, None);
    assert!(!p.allow_failure && !p.interruptible && p.group.is_none());
    assert_eq!(p.when, When::OnSuccess);

    // A failed job of a pipeline that succeeded may fail.
    let build = &recs[1];
    assert_eq!(build.job_name.as_deref(), Some("build: [linux, \"x\"]"));
    assert_eq!((build.outcome, build.run_s), (Outcome::Failure, Some(60)));
    assert!(pipe(build).allow_failure);

    let deploy = &recs[2];
    assert_eq!(deploy.outcome, Outcome::Manual);
    assert_eq!((deploy.wait_s, deploy.run_s), (None, None));
    assert_eq!(pipe(deploy).when, When::Manual);
    assert!(pipe(deploy).allow_failure);
    assert!(deploy.extra.is_empty());

    // Cancelled before it started: no wait or run, but the time it was cancelled.
    let cancelled = &recs[4];
    assert_eq!(cancelled.outcome, Outcome::Cancelled);
    assert_eq!((cancelled.wait_s, cancelled.run_s), (None, None));
    assert_eq!(cancelled.extra[FINISHED_S], (t0 + 90) as f64);
    assert_eq!(pipe(cancelled).created_s, t0 + 59);
    assert!(!pipe(cancelled).allow_failure);
    assert_eq!(recs[5].outcome, Outcome::Skipped);

    // The jobs file alone finds the pipelines file beside it.
    let alone = open_trace(&dir.path().join("gitlab_jobs.csv"), None)
        .expect("open")
        .collect_records()
        .expect("valid");
    assert_eq!(alone, recs);
}

#[test]
fn gitlab_jobs_without_their_pipeline_fall_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "jobs.csv",
        &format!(
            "{JOBS_HEADER}{}{}",
            job_line(
                5,
                2,
                "b",
                "lint",
                "success",
                "3,0,2026-01-13T00:00:09Z,2026-01-13T00:00:12Z,2026-01-13T00:00:07Z,,1"
            ),
            job_line(
                5,
                1,
                "a",
                ".pre",
                "success",
                "3,0,2026-01-13T00:00:05Z,2026-01-13T00:00:08Z,2026-01-13T00:00:04Z,,1"
            ),
        ),
    );
    let recs = open_trace(&path, None)
        .expect("open")
        .collect_records()
        .expect("valid");
    // No pipelines file: no branch, the project as tenant, the earliest job's creation.
    assert_eq!(recs[0].id, "1");
    assert!(recs.iter().all(|r| r.branch.is_none() && r.tenant == "g/p"));
    assert!(recs.iter().all(|r| pipe(r).created_s == t0() + 4));
    assert_eq!(
        (pipe(&recs[0]).stage_index, pipe(&recs[1]).stage_index),
        (0, 1)
    );
}

#[test]
fn gitlab_pipeline_files_take_ints_floats_and_empty_cells() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "p.csv",
        &format!(
            "{PIPELINES_HEADER}3,running,main,push,2026-01-13T00:00:00Z,2026-01-13T00:01:00Z,,63,u\n\
             2,success,main,api,2026-01-12T23:00:00Z,2026-01-13T00:00:00Z,4811.0,63.0,u\n"
        ),
    );
    let p = read_pipelines(&path).expect("valid");
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].id, p[0].duration_s, p[0].queued_s),
        (3, None, Some(63.0))
    );
    assert_eq!((p[1].duration_s, p[1].queued_s), (Some(4811.0), Some(63.0)));
    assert_eq!(p[1].source, "api");
    assert_eq!(p[0].updated_s, Some(t0() + 60));
}

/// The error of opening and reading `path`.
fn error_of(path: &Path, format: Option<TraceFormat>) -> DatasetError {
    match open_trace(path, format).and_then(|t| t.collect_records()) {
        Ok(recs) => panic!(
            "{}: read {} records, expected an error",
            path.display(),
            recs.len()
        ),
        Err(e) => e,
    }
}

fn assert_message(e: &DatasetError, prefix: &str, contains: &str) {
    let msg = e.to_string();
    assert!(
        msg.starts_with(prefix),
        "{msg:?} should start with {prefix:?}"
    );
    assert!(
        msg.contains(contains),
        "{msg:?} should contain {contains:?}"
    );
}

#[test]
fn gitlab_bad_input_names_file_line_and_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = job_line(
        1,
        7,
        "a",
        "lint",
        "success",
        "3,0,2026-01-13T00:00:05Z,2026-01-13T00:00:08Z,2026-01-13T00:00:04Z,,1",
    );
    let cases = [
        (
            job_line(
                1,
                8,
                "b",
                "lint",
                "success",
                "3,0,2026-01-13T00:00:05Z,2026-01-13T00:00:08Z,yesterday,,1",
            ),
            "column created_at: job 8: \"yesterday\" is not an ISO 8601 timestamp",
        ),
        (
            job_line(
                1,
                8,
                "b",
                "lint",
                "success",
                "3,0,2026-01-13T25:00:05Z,2026-01-13T00:00:08Z,2026-01-13T00:00:04Z,,1",
            ),
            "column started_at: job 8: \"2026-01-13T25:00:05Z\"",
        ),
        (
            job_line(
                1,
                8,
                "b",
                "lint",
                "exploded",
                "3,0,2026-01-13T00:00:05Z,2026-01-13T00:00:08Z,2026-01-13T00:00:04Z,,1",
            ),
            "column status: job 8: unknown status \"exploded\"",
        ),
        (
            job_line(
                1,
                8,
                "b",
                "lint",
                "success",
                "-3,0,2026-01-13T00:00:05Z,2026-01-13T00:00:08Z,2026-01-13T00:00:04Z,,1",
            ),
            "column duration: job 8: is negative",
        ),
        (
            job_line(
                1,
                8,
                "b",
                "lint",
                "success",
                "3,0,2026-01-13T00:00:05Z,2026-01-13T00:00:08Z,2026-01-13T00:00:04Z,,r1",
            ),
            "column runner_id: job 8: \"r1\"",
        ),
        (
            job_line(
                1,
                8,
                "a",
                "lint",
                "success",
                "3,0,2026-01-13T00:00:05Z,2026-01-13T00:00:08Z,2026-01-13T00:00:04Z,,1",
            ),
            "column job_name: job 8: name \"a\" is already used in pipeline 1",
        ),
    ];
    for (bad, message) in cases {
        let path = write(
            dir.path(),
            "gitlab_jobs.csv",
            &format!("{JOBS_HEADER}{good}{bad}"),
        );
        let e = error_of(&path, None);
        assert_message(&e, &format!("{}:3: ", path.display()), message);
        assert_eq!(e.location().and_then(|l| l.line), Some(3), "{e}");
    }

    let path = write(
        dir.path(),
        "gitlab_jobs.csv",
        &format!("{}\n{}", JOBS_HEADER.replace(",duration,", ",dur,"), good),
    );
    let e = error_of(&path, Some(TraceFormat::Gitlab));
    assert_message(
        &e,
        &format!("{}:1: ", path.display()),
        "missing column \"duration\"",
    );

    let pipelines = write(
        dir.path(),
        "gitlab_pipelines.csv",
        &format!("{PIPELINES_HEADER}4,success,main,push,2026-01-13T00:00:00Z,later,1,1,u\n"),
    );
    let path = write(
        dir.path(),
        "gitlab_jobs.csv",
        &format!("{JOBS_HEADER}{good}"),
    );
    let e = error_of(&path, None);
    assert_message(
        &e,
        &format!("{}:2: ", pipelines.display()),
        "column updated_at: pipeline 4: \"later\" is not an ISO 8601 timestamp",
    );
}

/// A FlowBench workflow `wf` in `dir`: the DAG a -> b, a -> c, b -> d, c -> d and the
/// given runs (`(entry name, rows)`), each row `name,anomaly,ready,submit,start,end`.
fn flowbench_dir(dir: &Path, adjacency: &str, runs: &[(&str, &[&str])]) -> PathBuf {
    write(dir, "wf.adj.json", adjacency);
    let zip_path = dir.join("wf.zip");
    let file = std::fs::File::create(&zip_path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, rows) in runs {
        zip.start_file(*name, options).expect("entry");
        let mut text = String::from(
            ",anomaly_type,ready,submit,execute_start,execute_end,kickstart_site,kickstart_status,kickstart_executables_exitcode\n",
        );
        for row in *rows {
            text.push_str(row);
            text.push('\n');
        }
        zip.write_all(text.as_bytes()).expect("write entry");
    }
    zip.finish().expect("finish zip");
    zip_path
}

const DIAMOND: &str = r#"{"a": ["b", "c"], "b": ["d"], "c": ["d", "d"], "d": []}"#;

const RUN_1: [&str; 4] = [
    "a,None,100.0,101.0,103.0,110.0,local,0,0",
    "b,cpu_2,111.0,112.0,112.0,130.0,condorpool,0,0",
    "c,None,111.0,113.0,115.0,125.0,condorpool,0,0",
    "d,hdd_10,131.0,131.0,140.0,141.0,condorpool,0,1",
];

#[test]
fn flowbench_runs_map_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_2 = [
        "d,None,531.0,531.0,540.0,541.0,condorpool,0,0",
        "a,None,499.0,500.0,503.0,510.0,local,0,0",
        "b,None,511.0,512.0,512.0,530.0,condorpool,,",
        "c,None,511.0,513.0,515.0,525.0,condorpool,0,0",
    ];
    let zip = flowbench_dir(
        dir.path(),
        DIAMOND,
        &[("wf-run0002.csv", &run_2), ("wf-run0001.csv", &RUN_1)],
    );
    // The folder and the zip alone read the same.
    let trace = open_trace(dir.path(), None).expect("open");
    assert_eq!(trace.format, TraceFormat::Flowbench);
    let recs = trace.collect_records().expect("valid");
    assert_eq!(
        open_trace(&zip, None)
            .expect("open")
            .collect_records()
            .expect("valid"),
        recs
    );
    check_pipelines(&recs).expect("rules");
    let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "wf/run0001/a",
            "wf/run0001/b",
            "wf/run0001/c",
            "wf/run0001/d",
            "wf/run0002/a",
            "wf/run0002/b",
            "wf/run0002/c",
            "wf/run0002/d"
        ]
    );
    let c = &recs[2];
    assert_eq!(
        (c.tenant.as_str(), c.project.as_deref()),
        ("wf", Some("wf"))
    );
    assert_eq!(c.job_name.as_deref(), Some("c"));
    // Submitted at 113, started at 115, ended at 125.
    assert_eq!((c.submit_s, c.wait_s, c.run_s), (113, Some(2), Some(10)));
    assert_eq!(c.queue.as_deref(), Some("condorpool"));
    let p = pipe(c);
    assert_eq!(
        (p.id.as_str(), p.created_s, p.stage.as_str()),
        ("wf/run0001", 100, "")
    );
    assert_eq!(
        (p.stage_index, p.needs.clone()),
        (1, Some(vec!["a".to_string()]))
    );
    assert_eq!(pipe(&recs[0]).needs, Some(vec![]));
    let d = pipe(&recs[3]);
    assert_eq!(d.needs, Some(vec!["b".to_string(), "c".to_string()]));
    assert_eq!(d.stage_index, 2);
    assert_eq!(pipe(&recs[4]).created_s, 499);
    // Exit code 1 is a failure; empty codes are not.
    assert_eq!(recs[3].outcome, Outcome::Failure);
    assert_eq!(recs[5].outcome, Outcome::Success);
    assert_eq!(recs[1].extra.get("anomaly_cpu"), Some(&2.0));
    assert_eq!(recs[3].extra.get("anomaly_hdd"), Some(&10.0));
    assert!(recs[2].extra.is_empty());
}

#[test]
fn flowbench_bad_input_names_file_line_and_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_time = [RUN_1[0], "b,None,111.0,soon,112.0,130.0,condorpool,0,0"];
    flowbench_dir(dir.path(), DIAMOND, &[("wf-run0001.csv", &bad_time)]);
    let e = error_of(dir.path(), None);
    let entry = format!("{}/wf-run0001.csv", dir.path().join("wf.zip").display());
    assert_message(
        &e,
        &format!("{entry}:3: "),
        "column submit: job \"b\": \"soon\" is not a Unix time in seconds",
    );

    let unknown = [RUN_1[0], "e,None,1,1,1,1,local,0,0"];
    flowbench_dir(dir.path(), DIAMOND, &[("wf-run0001.csv", &unknown)]);
    assert_message(
        &error_of(dir.path(), None),
        &format!("{entry}:3: "),
        "job \"e\" is not in the workflow's adjacency file",
    );

    let backwards = [RUN_1[0], "b,None,111.0,112.0,112.0,100.0,condorpool,0,0"];
    flowbench_dir(dir.path(), DIAMOND, &[("wf-run0001.csv", &backwards)]);
    assert_message(
        &error_of(dir.path(), None),
        &format!("{entry}:3: "),
        "times out of order",
    );

    flowbench_dir(dir.path(), DIAMOND, &[("wf-run0001.csv", &RUN_1[..3])]);
    let e = error_of(dir.path(), None);
    assert_message(&e, &entry, "run wf/run0001 lacks job \"d\"");

    let cycle = r#"{"a": ["b"], "b": ["d"], "c": [], "d": ["b", "c"]}"#;
    flowbench_dir(dir.path(), cycle, &[("wf-run0001.csv", &RUN_1)]);
    let adjacency = dir.path().join("wf.adj.json");
    let e = error_of(dir.path(), None);
    assert!(matches!(e, DatasetError::Graph { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the job graph has a cycle: b -> d -> b",
            adjacency.display()
        )
    );

    flowbench_dir(
        dir.path(),
        "{\n\"a\": [\"b\",\n}",
        &[("wf-run0001.csv", &RUN_1)],
    );
    let e = error_of(dir.path(), None);
    assert_message(&e, &format!("{}:3: ", adjacency.display()), "invalid JSON");

    std::fs::remove_file(&adjacency).expect("remove");
    let e = error_of(&dir.path().join("wf.zip"), None);
    assert_message(
        &e,
        &dir.path().join("wf.zip").display().to_string(),
        "has no adjacency file",
    );

    write(dir.path(), "wf.adj.json", DIAMOND);
    write(dir.path(), "wf.zip", "not a zip");
    let e = error_of(dir.path(), None);
    assert!(matches!(e, DatasetError::Zip { .. }), "{e:?}");
}

fn job(id: &str, name: &str, stage_index: u32, needs: Option<&[&str]>) -> JobRecord {
    let mut r = JobRecord::new(id, "t", 10);
    r.job_name = Some(name.to_string());
    let mut p = PipelineRef::new("p1", 5, format!("s{stage_index}"), stage_index);
    p.needs = needs.map(|n| n.iter().map(|s| s.to_string()).collect());
    r.pipeline = Some(p);
    r
}

#[test]
fn check_pipelines_names_the_job_that_breaks_a_rule() {
    let ok = vec![
        job("1", "lint", 0, Some(&[])),
        job("2", "build", 0, Some(&["lint"])),
        job("3", "test", 1, None),
        job("4", "deploy", 2, Some(&["build", "test"])),
    ];
    check_pipelines(&ok).expect("valid");
    let broken = |edit: &dyn Fn(&mut Vec<JobRecord>)| {
        let mut v = ok.clone();
        edit(&mut v);
        check_pipelines(&v).expect_err("broken").to_string()
    };
    assert_eq!(
        broken(&|v| v[3] = job("4", "deploy", 2, Some(&["package"]))),
        "pipeline p1, job 4: needs \"package\", which is not in the pipeline"
    );
    assert_eq!(
        broken(&|v| v[1] = job("2", "build", 0, Some(&["test"]))),
        "pipeline p1, job 2: needs \"test\" of a later stage (1 > 0)"
    );
    assert_eq!(
        broken(&|v| v[0] = job("1", "lint", 0, Some(&["build"]))),
        "pipeline p1, job 1: its needs form a cycle: lint -> build -> lint"
    );
    assert_eq!(
        broken(&|v| v[2].job_name = Some("lint".to_string())),
        "pipeline p1, job 3: name \"lint\" is also the name of job 1"
    );
    assert_eq!(
        broken(&|v| v[2].job_name = None),
        "pipeline p1, job 3: has no job name"
    );
    assert_eq!(
        broken(&|v| v[2].submit_s = 4),
        "pipeline p1, job 3: submitted at 4 before its pipeline was created (5)"
    );
    // Jobs without a pipeline, and other pipelines' names, are not looked at.
    let mut mixed = ok.clone();
    mixed.push(JobRecord::new("5", "t", 0));
    let mut other = job("6", "lint", 0, Some(&[]));
    if let Some(p) = &mut other.pipeline {
        p.id = "p2".to_string();
    }
    mixed.push(other);
    check_pipelines(&mixed).expect("valid");
}
