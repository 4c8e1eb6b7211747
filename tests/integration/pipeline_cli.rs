//! `rustci pipeline` with GitLab CI files, the binary against real servers over real
//! sockets. Must-show 1: `rustci serve` and two `rustci runner` processes with different
//! labels run a three-stage file end to end; what ran, where, how often and in which
//! order is checked from the jobs' own side effects and the job records, and every final
//! state against the table GitLab gives. Must-show 6: bad files (a YAML error, a cycle, a
//! need on a later stage, an unknown stage, 100 MB, an unsupported keyword under
//! `--strict`) are refused naming the line or the job, and nothing is submitted.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use rustci_control::pb;
use rustci_control::pb::pipeline_service_client::PipelineServiceClient;
use serde_json::Value;

use crate::common::{
    executions, free_port, local_server, owner_channel, register_r0, tail, wait_for, wait_ready,
    wait_runners, Procs, BIN,
};

/// Runs `rustci` with `args` off the async workers (a server may be in this process).
async fn cli(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .output()
            .expect("run rustci")
    })
    .await
    .expect("the rustci child")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The JSON `out` printed, which must have succeeded.
fn json_of(what: &str, out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", text(&out.stdout)))
}

fn submit_args(url: &str, file: &Path, git_ref: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&["pipeline", "submit"]);
    a.push(file.display().to_string());
    a.extend(args(&[
        "--server",
        url,
        "--tenant",
        "team",
        "--project",
        "shop",
        "--ref",
        git_ref,
    ]));
    a.extend(args(extra));
    a
}

/// The end-to-end file. Both runners' jobs record their start and end (`S`/`E`, the
/// job, the runner, the shell's pid, the time) through `default:` scripts; `after_script`
/// runs even when `script` failed, so failed jobs record their end too.
fn release_file(runs: &Path) -> String {
    format!(
        r#"# Three stages; a matrix build on two kinds of runner; tests that need the builds;
# a job that may fail; a failing job whose dependents are skipped; a clean-up job
# that always runs. `artifacts` is outside the subset: reported, left out.
stages: [build, test, deploy]

variables:
  APP: demo
  RUNS: "{runs}"

default:
  interruptible: true
  before_script:
    - echo "S $RUSTCI_JOB $RUSTCI_RUNNER $$ $(date +%s%N)" >> "$RUNS"
  after_script:
    - echo "E $RUSTCI_JOB $RUSTCI_RUNNER $$ $(date +%s%N)" >> "$RUNS"

build:
  stage: build
  parallel:
    matrix:
      - ARCH: [amd64, arm64]
  tags: [$ARCH]
  timeout: 10 minutes
  script:
    - echo "building $APP for $ARCH"
  artifacts:
    paths: [target/]

unit:
  stage: test
  needs: [build]
  tags: [amd64]
  script:
    - echo "unit tests of $APP"

integration:
  stage: test
  needs:
    - job: build
      parallel:
        matrix:
          - ARCH: arm64
  tags: [arm64]
  script:
    - echo "integration tests on arm64"
    - exit 1

lint:
  stage: test
  needs: []
  allow_failure: true
  tags: [amd64]
  script:
    - exit 3

publish:
  stage: deploy
  needs: [unit, integration]
  tags: [amd64]
  script:
    - echo "publishing $APP"

report:
  stage: deploy
  tags: [arm64]
  script:
    - echo report

cleanup:
  stage: deploy
  when: always
  tags: [amd64]
  script:
    - echo "cleaning up"
"#,
        runs = runs.display()
    )
}

/// What GitLab gives for `release_file`, and the runner each job that runs must run on
/// (`amd` has the label `amd64`, `arm` the label `arm64`).
const EXPECTED: [(&str, &str, Option<&str>); 8] = [
    ("build: [amd64]", "SUCCEEDED", Some("amd")),
    ("build: [arm64]", "SUCCEEDED", Some("arm")),
    ("unit", "SUCCEEDED", Some("amd")),
    // Its `exit 1` fails the pipeline.
    ("integration", "FAILED", Some("arm")),
    // `allow_failure`: failed, and the pipeline does not fail for it.
    ("lint", "FAILED", Some("amd")),
    // It needs `integration`, which failed.
    ("publish", "SKIPPED", None),
    // No `needs`: every job of the earlier stages, `integration` among them.
    ("report", "SKIPPED", None),
    // `when: always`.
    ("cleanup", "SUCCEEDED", Some("amd")),
];
const EXPECTED_PIPELINE: &str = "FAILED";

/// The line of the first occurrence of `needle` in `text` (1-based).
fn line_of(text: &str, needle: &str) -> usize {
    1 + text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the file"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_file_runs_end_to_end_on_two_runners_as_gitlab_would_run_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut procs = Procs::new();
    let server_log = dir.path().join("server.log");
    procs.server("server", port, &dir.path().join("data"), &[], &server_log);
    let c = wait_ready(&url, None, Duration::from_secs(60)).await;
    for (id, label) in [("amd", "amd64"), ("arm", "arm64")] {
        procs.runner(
            id,
            &url,
            id,
            label,
            2,
            None,
            &[],
            &dir.path().join(format!("{id}.log")),
        );
    }
    wait_runners(&c, "amd", 1, Duration::from_secs(30)).await;
    wait_runners(&c, "arm", 1, Duration::from_secs(30)).await;

    let runs = dir.path().join("runs.log");
    let file = dir.path().join(".gitlab-ci.yml");
    let body = release_file(&runs);
    std::fs::write(&file, &body).expect("write the CI file");

    // Submit: the unsupported keyword is a warning naming its line and job.
    let out = cli(submit_args(&url, &file, "main", &["--format", "json"])).await;
    let submitted = json_of("pipeline submit", &out);
    let warning = format!(
        "{}: line {}: job \"build\": `artifacts` is not supported",
        file.display(),
        line_of(&body, "artifacts:")
    );
    assert!(
        text(&out.stderr).contains(&warning),
        "stderr should say {warning:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(submitted["warnings"][0]["keyword"], "artifacts");
    let name = submitted["name"].as_str().expect("name").to_owned();
    assert!(name.starts_with("pipelines/"), "{name}");
    assert_eq!(submitted["state"], "RUNNING");
    let names: Vec<&str> = submitted["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().expect("job name"))
        .collect();
    let want: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(names, want);

    // Wait for the end with `watch`: one JSON line per change, ending with the
    // pipeline's; `--exit-status` fails for a failed pipeline.
    let watch = tokio::process::Command::new(BIN)
        .args(["pipeline", "watch", &name, "--server", &url])
        .args(["--format", "json", "--exit-status", "--poll-ms", "500"])
        .kill_on_drop(true)
        .output();
    let watched = tokio::time::timeout(Duration::from_secs(120), watch)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "watch did not end in 120 s; server log:\n{}",
                tail(&server_log, 30)
            )
        })
        .expect("run watch");
    assert!(!watched.status.success(), "the pipeline failed");
    assert!(
        text(&watched.stderr).contains(&format!("{name} ended FAILED")),
        "{}",
        text(&watched.stderr)
    );
    let lines: Vec<Value> = text(&watched.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("watch line {l:?}: {e}")))
        .collect();
    let last = lines.last().expect("watch printed something");
    assert_eq!(
        (&last["event"], &last["pipeline_state"]),
        (&Value::from("pipeline"), &Value::from(EXPECTED_PIPELINE))
    );
    let mut seen_last: HashMap<&str, &str> = HashMap::new();
    for l in lines.iter().filter(|l| l["event"] == "job") {
        let job = l["job"]["name"].as_str().expect("job name");
        seen_last.insert(job, l["job"]["state"].as_str().expect("state"));
    }
    for (job, state, _) in EXPECTED {
        assert_eq!(
            seen_last.get(job),
            Some(&state),
            "watch's last line of {job}"
        );
    }

    // The final states, as GitLab gives them.
    let got = json_of(
        "pipeline get",
        &cli(args(&[
            "pipeline", "get", &name, "--server", &url, "--format", "json",
        ]))
        .await,
    );
    assert_eq!(got["state"], EXPECTED_PIPELINE);
    assert_eq!(got["predicted_finish_time"], got["end_time"]);
    assert!(got["end_time"].is_string(), "{got}");
    let jobs: Vec<&Value> = got["jobs"].as_array().expect("jobs").iter().collect();
    let states: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap_or(""),
                j["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let want: Vec<(&str, &str)> = EXPECTED.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(states, want, "final states");

    // The job records: at most one run each, on the runner with the job's tags.
    let mut records: BTreeMap<String, Value> = BTreeMap::new();
    for (j, (job, _, runner)) in jobs.iter().zip(EXPECTED) {
        let id = j["job"].as_str().expect("jobs/N");
        let r = json_of(
            "jobs get",
            &cli(args(&[
                "jobs", "get", id, "--server", &url, "--format", "json",
            ]))
            .await,
        );
        let attempts = r["attempts"].as_u64().expect("attempts");
        match runner {
            Some(runner) => {
                assert_eq!(attempts, 1, "{job} ran once");
                assert_eq!(r["runner"], format!("runners/{runner}"), "{job}");
                assert_eq!(j["runner"], r["runner"], "{job}");
            }
            None => {
                assert_eq!(attempts, 0, "{job} never ran");
                assert_eq!(r["start_ms"], 0, "{job}");
            }
        }
        records.insert(job.to_owned(), r);
    }

    // The side effects say the same: each job that ran ran once, where the record says.
    let execs = executions(&runs);
    let mut by_job: HashMap<&str, Vec<&crate::common::Execution>> = HashMap::new();
    for e in &execs {
        by_job.entry(e.job.as_str()).or_default().push(e);
    }
    let job_of = |name: &str| -> String {
        jobs.iter()
            .find(|j| j["name"] == name)
            .and_then(|j| j["job"].as_str())
            .expect("job")
            .to_owned()
    };
    for (job, _, runner) in EXPECTED {
        let id = job_of(job);
        let ran = by_job.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        match runner {
            Some(runner) => {
                assert_eq!(ran.len(), 1, "{job} ({id}) ran {} times", ran.len());
                assert_eq!(ran[0].tag, format!("runners/{runner}"), "{job}");
                assert!(ran[0].end_ns.is_some(), "{job} recorded its end");
            }
            None => assert!(ran.is_empty(), "{job} ({id}) should not have run"),
        }
    }

    // After its needs: by the server's clock (lease after the needs' completions) and
    // by the jobs' own (first line after the needs' last).
    let stage_of = |name: &str| -> u64 {
        jobs.iter()
            .find(|j| j["name"] == name)
            .and_then(|j| j["stage_index"].as_u64())
            .expect("stage")
    };
    for j in &jobs {
        let job = j["name"].as_str().expect("name");
        let ran = EXPECTED.iter().any(|e| e.0 == job && e.2.is_some());
        if !ran {
            continue;
        }
        let needs: Vec<String> = if j["needs_stages"] == true {
            jobs.iter()
                .filter(|o| o["stage_index"].as_u64() < Some(stage_of(job)))
                .map(|o| o["name"].as_str().expect("name").to_owned())
                .collect()
        } else {
            j["needs"]
                .as_array()
                .expect("needs")
                .iter()
                .map(|n| n.as_str().expect("need").to_owned())
                .collect()
        };
        let start = records[job]["start_ms"].as_i64().expect("start");
        let first = by_job[job_of(job).as_str()][0].start_ns;
        for need in &needs {
            let end = records[need]["end_ms"].as_i64().expect("end");
            assert!(
                end > 0 && start >= end,
                "{job} started at {start} before {need} ended at {end}"
            );
            let need_end = by_job[job_of(need).as_str()][0].end_ns.expect("end");
            assert!(
                first >= need_end,
                "{job} ran before {need} ended (side effects)"
            );
        }
    }

    // `list` filters; `cancel` of an ended pipeline is refused.
    let listed = json_of(
        "pipeline list",
        &cli(args(&[
            "pipeline",
            "list",
            "--server",
            &url,
            "--format",
            "json",
            "--state",
            "failed",
            "--project",
            "shop",
            "--ref",
            "main",
        ]))
        .await,
    );
    let listed_names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(listed_names, [name.as_str()]);
    assert_eq!(
        listed[0]["jobs"].as_array().map(Vec::len),
        Some(EXPECTED.len())
    );
    let other_ref = json_of(
        "pipeline list --ref other",
        &cli(args(&[
            "pipeline", "list", "--server", &url, "--format", "json", "--ref", "other",
        ]))
        .await,
    );
    assert_eq!(other_ref, serde_json::json!([]));
    let refused = cli(args(&["pipeline", "cancel", &name, "--server", &url])).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("FailedPrecondition"),
        "{}",
        text(&refused.stderr)
    );

    // Cancelling a running pipeline cancels its running job and what waits behind it.
    let slow = dir.path().join("slow.yml");
    std::fs::write(
        &slow,
        "long:\n  stage: build\n  tags: [amd64]\n  script: [sleep 60]\nafter:\n  stage: test\n  tags: [amd64]\n  script: [echo never]\n",
    )
    .expect("write");
    let p = json_of(
        "submit slow",
        &cli(submit_args(&url, &slow, "slow", &["--format", "json"])).await,
    );
    let slow_name = p["name"].as_str().expect("name").to_owned();
    let long_job = p["jobs"][0]["job"].as_str().expect("job").to_owned();
    wait_for(
        "the long job to run",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let mut jobs = c.jobs.clone();
            let long_job = long_job.clone();
            async move {
                let j = jobs
                    .get_job(pb::GetJobRequest { name: long_job })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                if j.state == pb::JobState::Leased as i32 {
                    Ok(())
                } else {
                    Err(format!("{j:?}"))
                }
            }
        },
    )
    .await;
    let cancelled = json_of(
        "pipeline cancel",
        &cli(args(&[
            "pipeline", "cancel", &slow_name, "--server", &url, "--format", "json",
        ]))
        .await,
    );
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(cancelled["jobs"][1]["state"], "CANCELLED");
    let ended = crate::common::wait_job_state(
        &c.jobs,
        &long_job,
        pb::JobState::Cancelled,
        "the running job cancelled",
        Duration::from_secs(30),
        Duration::from_millis(100),
    )
    .await;
    assert!(ended.end_ms > 0, "{ended:?}");
    procs.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gitlab_files_are_refused_with_their_line_or_job_and_nothing_is_submitted() {
    let (dir, srv, url) = local_server().await;
    let ch = owner_channel(srv.addr).await;
    // A runner for the jobs' labels: the files below are refused for what is in them.
    register_r0(&ch).await;

    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write");
        p
    };
    let yaml = "build:\n  tags: [linux]\n  script: [\"make\"\ntest:\n  script: [make test]\n";
    let cycle = "stages: [build]\na:\n  stage: build\n  tags: [linux]\n  needs: [b]\n  script: [echo a]\nb:\n  stage: build\n  tags: [linux]\n  needs: [a]\n  script: [echo b]\n";
    let later = "build:\n  stage: build\n  tags: [linux]\n  needs: [unit]\n  script: [make]\nunit:\n  stage: test\n  tags: [linux]\n  script: [make test]\n";
    let stage = "stages: [build, test]\nbuild:\n  stage: build\n  tags: [linux]\n  script: [make]\nqa:\n  stage: qa\n  tags: [linux]\n  script: [make qa]\n";
    let rules = "build:\n  stage: build\n  tags: [linux]\n  script: [make]\n  rules:\n    - if: $CI_COMMIT_BRANCH\n";
    let huge = dir.path().join("huge.yml");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(100 * 1024 * 1024))
        .expect("a 100 MB file");
    let cases: Vec<(std::path::PathBuf, Vec<&str>, Vec<String>)> = vec![
        (
            write("yaml.yml", yaml),
            vec![],
            vec![":4:".into(), "YAML syntax error".into()],
        ),
        (
            write("cycle.yml", cycle),
            vec![],
            vec![
                "job \"a\"".into(),
                "is on a cycle of needs: a needs b needs a".into(),
            ],
        ),
        (
            write("later.yml", later),
            vec![],
            vec![
                format!(":{}: job \"build\"", line_of(later, "needs: [unit]")),
                "needs \"unit\" of the later stage \"test\"".into(),
            ],
        ),
        (
            write("stage.yml", stage),
            vec![],
            vec![
                format!(":{}: job \"qa\"", line_of(stage, "stage: qa")),
                "stage \"qa\" is not one of the pipeline's stages".into(),
            ],
        ),
        (
            huge.clone(),
            vec![],
            vec!["104857600 bytes, over the limit of 4194304 bytes".into()],
        ),
        (
            write("rules.yml", rules),
            vec!["--strict"],
            vec![
                "outside the supported subset (strict mode)".into(),
                format!(
                    "line {}: job \"build\": `rules` is not supported",
                    line_of(rules, "rules:")
                ),
            ],
        ),
    ];
    for (file, extra, want) in &cases {
        let out = cli(submit_args(&url, file, "main", extra)).await;
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", file.display());
        assert!(
            out.stdout.is_empty(),
            "{}: {}",
            file.display(),
            text(&out.stdout)
        );
        assert!(
            err.contains(&file.display().to_string()),
            "names the file: {err}"
        );
        for w in want {
            assert!(
                err.contains(w.as_str()),
                "{}: wanted {w:?} in {err}",
                file.display()
            );
        }
    }

    // Nothing was submitted: ListPipelines is empty, through the API and the CLI.
    let mut pipes = PipelineServiceClient::new(ch.clone());
    let all = pipes
        .list_pipelines(pb::ListPipelinesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(all.pipelines.is_empty(), "{:?}", all.pipelines);
    let listed = json_of(
        "pipeline list",
        &cli(args(&[
            "pipeline", "list", "--server", &url, "--format", "json",
        ]))
        .await,
    );
    assert_eq!(listed, serde_json::json!([]));

    // Without --strict the unsupported keyword is a warning and the file is submitted,
    // once however often the same request id is sent. (The runner registers again: it
    // never heartbeats, and a slow machine may have passed its lease TTL by now.)
    register_r0(&ch).await;
    let rules_file = dir.path().join("rules.yml");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let out = cli(submit_args(
            &url,
            &rules_file,
            "main",
            &["--request-id", "rules-1", "--format", "json"],
        ))
        .await;
        assert!(
            text(&out.stderr).contains(&format!(
                "warning: {}: line 5: job \"build\": `rules` is not supported",
                rules_file.display()
            )),
            "{}",
            text(&out.stderr)
        );
        seen.push(json_of("submit rules.yml", &out)["name"].clone());
    }
    assert_eq!(seen[0], seen[1], "one pipeline for one request id");
    let all = pipes
        .list_pipelines(pb::ListPipelinesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(all.pipelines.len(), 1);
    drop(srv);
}
