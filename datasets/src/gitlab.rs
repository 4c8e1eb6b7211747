//! GitLab CI exports: a jobs CSV (one row per job of a pipeline) and pipeline-level CSVs,
//! as in `gitlab_datadog/` (the DataDog/datadog-agent export; see `SOURCES.md` §7).
//!
//! [`open_gitlab`] takes the folder (every CSV in it whose header is a jobs header is
//! read, every one whose header is a pipelines header is joined) or one jobs file (the
//! pipeline files are then looked for next to it). Files are told apart by their header,
//! not their name: jobs files have `pipeline_id`, `job_id` and `stage`; pipeline files
//! have `pipeline_id` and `ref` but no `job_id`. Other CSVs (such as
//! `gitlab_critical_path.csv`) are ignored.
//!
//! Mapping of a job to [`JobRecord`]:
//!
//! | record | source |
//! |---|---|
//! | `id` | `job_id` |
//! | `project` | the path of `web_url` before `/-/` (`DataDog/datadog-agent`); none without it |
//! | `branch` | the pipeline's `ref` (joined on `pipeline_id`) |
//! | `tenant` | the ref's owner prefix before the first `/` (`aiuto/rtl`: `aiuto`; `dependabot/go_modules/...`: `dependabot`), else the ref itself (`main`, `7.74.x`): in this repository a branch prefix names the person or bot that pushes it, so fair share groups their pipelines; without a joined pipeline, the project (else `unknown`) |
//! | `job_name` | `job_name` (must be set and unique within its pipeline) |
//! | `labels`, `queue` | none: GitLab runner ids are not labels |
//! | `submit_s` | `created_at` of the job, Unix seconds (trace epoch 0) |
//! | `wait_s` | `started_at - created_at` (see below); none if the job never started |
//! | `run_s` | `duration` rounded, else `finished_at - started_at`; none if it never started |
//! | `outcome` | `status`: success; failed: failure; canceled: cancelled; skipped; manual; `created`, `pending`, `running` and the other unfinished states: unknown; anything else is an error |
//! | `extra["runner_id"]` | `runner_id` (written as a float upstream), when the job ran |
//! | `extra["queued_s"]` | `queued_duration`: seconds between the job becoming pending (its stage or needs done) and a runner taking it |
//! | `extra["finished_s"]` | `finished_at`, Unix seconds: for a cancelled job that never started, when it was cancelled |
//!
//! `wait_s` is `started_at - created_at`, not `queued_duration`: `JobRecord::start_s` is
//! `submit_s + wait_s`, so this keeps every job at its recorded start. The wait then
//! includes the time the job waited for earlier stages; the runner-queue part alone is
//! `extra["queued_s"]`. A job created well after its pipeline is a retry (the export
//! keeps only a job's last attempt), so it is submitted when it was retried.
//!
//! The [`PipelineRef`]:
//!
//! * `id`: `pipeline_id`; `created_s`: the pipeline's `created_at` (without a joined
//!   pipeline, its earliest job's `created_at`).
//! * `needs`: `None` (every job of the earlier stages). The export has no `needs:`, so
//!   the DAG is GitLab's rule without `needs`: a stage starts when the whole stage before
//!   it is done. The real pipelines use `needs:` widely (their jobs start long before the
//!   previous stage ends), so this approximation serialises them: a replay's critical
//!   path is the sum of the stages' longest jobs, longer than the recorded one.
//! * `stage_index`: the stage's position among the stages this pipeline uses, ordered by
//!   [`STAGE_ORDER`] (the `stages:` list of `.gitlab-ci.yml`, `.pre` first and `.post`
//!   appended last, as GitLab does). A stage not in that list (`dynamic_test`, `scan`) is
//!   placed by when its first job started in the same pipeline: just after the latest
//!   listed stage whose first job started earlier (after `.pre` if none did), and last
//!   before `.post` when none of its jobs started. The pipelines ran different config
//!   versions, so the recorded start is the best evidence of where such a stage sat.
//! * `when`: `manual` for jobs whose status is `manual` (nobody started them); otherwise
//!   `on_success`. A manual job someone did start is not told apart: the export records
//!   only its result.
//! * `allow_failure`: true for manual jobs (GitLab's default for `when: manual`) and for
//!   failed jobs of a pipeline whose status is `success` (GitLab lets a pipeline succeed
//!   past a failed job only if the job may fail); false otherwise.
//! * `interruptible`: false (not recorded); `group`: `None` (the project and branch).
//!
//! Records come out sorted (stably) by `submit_s`. Errors name the file, the line and
//! the job id.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::csvin::{parse_duration, CsvInput};
use crate::error::{DatasetError, Location};
use crate::record::{JobRecord, Outcome, PipelineRef, TraceMeta, When};
use crate::time::parse_timestamp;
use crate::{input, Trace, TraceFormat};

/// The `stages:` list of DataDog/datadog-agent's `.gitlab-ci.yml` (read at commit
/// `0011c0e`, see `SOURCES.md`), with the implicit `.post` appended.
pub const STAGE_ORDER: [&str; 47] = [
    ".pre",
    "setup",
    "maintenance_jobs",
    "deps_build",
    "deps_fetch",
    "lint",
    "source_test",
    "source_test_stats",
    "software_composition_analysis",
    "binary_build",
    "package_deps_build",
    "kernel_matrix_testing_prepare",
    "kernel_matrix_testing_system_probe",
    "kernel_matrix_testing_security_agent",
    "kernel_matrix_testing_cleanup",
    "integration_test",
    "benchmarks",
    "package_build",
    "packaging",
    "pkg_metrics",
    "container_build",
    "container_scan",
    "check_deploy",
    "dev_container_deploy",
    "deploy_containers",
    "deploy_packages",
    "deploy_cws_instrumentation",
    "deploy_dca",
    "choco_build",
    "trigger_release",
    "install_script_deploy",
    "internal_image_deploy",
    "e2e_deploy",
    "install_script_testing",
    "e2e_pre_test",
    "e2e_init",
    "e2e",
    "e2e_cleanup",
    "e2e_k8s",
    "e2e_install_packages",
    "functional_test",
    "junit_upload",
    "internal_kubernetes_deploy",
    "post_rc_build",
    "check_merge",
    "notify",
    ".post",
];

/// Extra: the runner that ran the job.
pub const RUNNER_ID: &str = "runner_id";
/// Extra: seconds the job was pending before a runner took it (`queued_duration`).
pub const QUEUED_S: &str = "queued_s";
/// Extra: when the job finished or was cancelled, Unix seconds.
pub const FINISHED_S: &str = "finished_s";

/// One row of a pipeline-level file.
#[derive(Debug, Clone, PartialEq)]
pub struct GitlabPipeline {
    pub id: u64,
    /// `success`, `failed`, `canceled`, `running`, ...
    pub status: String,
    /// The branch or tag (`ref`).
    pub git_ref: String,
    /// What created it: `push`, `api`, `pipeline`, `web`, `schedule`, ...
    pub source: String,
    /// `created_at`, Unix seconds.
    pub created_s: i64,
    /// `updated_at` (the last update, not the finish), Unix seconds.
    pub updated_s: Option<i64>,
    /// `duration` in seconds (written `4811.0`); none when empty.
    pub duration_s: Option<f64>,
    /// `queued_duration` in seconds (`63` or `63.0`); none when empty.
    pub queued_s: Option<f64>,
}

/// What a CSV header says a GitLab file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Jobs,
    Pipelines,
}

/// The GitLab file kind of a header's column names, if it is one.
pub(crate) fn kind_of(columns: &[&str]) -> Option<FileKind> {
    let has = |name: &str| columns.contains(&name);
    if has("pipeline_id") && has("job_id") && has("stage") {
        Some(FileKind::Jobs)
    } else if has("pipeline_id") && has("ref") && !has("job_id") {
        Some(FileKind::Pipelines)
    } else {
        None
    }
}

/// The GitLab file kind of a CSV file (by its header), if it is one.
fn kind_of_file(path: &Path) -> Result<Option<FileKind>, DatasetError> {
    let first = input::first_line(path)?;
    Ok(kind_of(&input::header_columns(&first)))
}

/// The jobs files and pipeline files of a folder, each sorted by name.
pub(crate) fn files_in(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DatasetError> {
    let (mut jobs, mut pipelines) = (Vec::new(), Vec::new());
    for f in input::csv_files(dir)? {
        match kind_of_file(&f)? {
            Some(FileKind::Jobs) => jobs.push(f),
            Some(FileKind::Pipelines) => pipelines.push(f),
            None => {}
        }
    }
    Ok((jobs, pipelines))
}

/// Reads one pipeline-level file, in file order.
pub fn read_pipelines(path: &Path) -> Result<Vec<GitlabPipeline>, DatasetError> {
    let mut csv = CsvInput::open(path)?;
    let id = csv.require("pipeline_id")?;
    let status = csv.require("status")?;
    let git_ref = csv.require("ref")?;
    let created = csv.require("created_at")?;
    let source = csv.column("source");
    let updated = csv.column("updated_at");
    let duration = csv.column("duration");
    let queued = csv.column("queued_duration");
    let mut out = Vec::new();
    while csv.next_row()? {
        let id_s = csv.cell(id);
        let pid = id_s
            .parse::<u64>()
            .map_err(|_| csv.bad(id, format!("{id_s:?} is not a pipeline id")))?;
        let what = format!("pipeline {pid}");
        let created_s = time_cell(&csv, created, &what)?
            .ok_or_else(|| csv.bad(created, format!("{what}: empty")))?;
        let updated_s = match updated {
            Some(i) => time_cell(&csv, i, &what)?,
            None => None,
        };
        let seconds = |col: Option<usize>| match col {
            Some(i) => seconds_cell(&csv, i, &what),
            None => Ok(None),
        };
        out.push(GitlabPipeline {
            id: pid,
            status: csv.cell(status).to_string(),
            git_ref: csv.cell(git_ref).to_string(),
            source: source.map(|i| csv.cell(i)).unwrap_or("").to_string(),
            created_s,
            updated_s,
            duration_s: seconds(duration)?,
            queued_s: seconds(queued)?,
        });
    }
    Ok(out)
}

/// A timestamp cell: `None` when empty; an error naming `what` when not a timestamp.
fn time_cell(csv: &CsvInput, i: usize, what: &str) -> Result<Option<i64>, DatasetError> {
    let s = csv.cell(i);
    if s.is_empty() {
        return Ok(None);
    }
    parse_timestamp(s)
        .map(Some)
        .ok_or_else(|| csv.bad(i, format!("{what}: {s:?} is not an ISO 8601 timestamp")))
}

/// A non-negative number of seconds, integer or float; `None` when empty.
fn seconds_cell(csv: &CsvInput, i: usize, what: &str) -> Result<Option<f64>, DatasetError> {
    let s = csv.cell(i);
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(csv.bad(
            i,
            format!("{what}: {s:?} is not a number of seconds (>= 0)"),
        )),
    }
}

/// The outcome of a GitLab job status; `None` for a word that is not one.
pub fn outcome_of(status: &str) -> Option<Outcome> {
    Some(match status {
        "success" => Outcome::Success,
        "failed" => Outcome::Failure,
        "canceled" | "cancelled" => Outcome::Cancelled,
        "skipped" => Outcome::Skipped,
        "manual" => Outcome::Manual,
        "created" | "waiting_for_resource" | "preparing" | "pending" | "running" | "scheduled" => {
            Outcome::Unknown
        }
        _ => return None,
    })
}

/// The tenant of a ref: its owner prefix before the first `/`, else the ref.
pub fn tenant_of_ref(git_ref: &str) -> &str {
    match git_ref.split_once('/') {
        Some((owner, _)) if !owner.is_empty() => owner,
        _ => git_ref,
    }
}

/// The project path of a GitLab job or pipeline URL (`https://host/group/name/-/jobs/1`).
fn project_of_url(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (_, path) = rest.split_once('/')?;
    let (project, _) = path.split_once("/-/")?;
    (!project.is_empty()).then_some(project)
}

/// A job as read, before its pipeline's stage order is known.
struct Row {
    rec: JobRecord,
    pipeline: u64,
    stage: String,
    started: Option<i64>,
    at: Location,
}

struct JobColumns {
    pipeline: usize,
    job: usize,
    name: usize,
    stage: usize,
    status: usize,
    created: usize,
    started: usize,
    duration: usize,
    finished: Option<usize>,
    queued: Option<usize>,
    runner: Option<usize>,
    url: Option<usize>,
}

fn read_job_rows(path: &Path, out: &mut Vec<Row>) -> Result<(), DatasetError> {
    let mut csv = CsvInput::open(path)?;
    let c = JobColumns {
        pipeline: csv.require("pipeline_id")?,
        job: csv.require("job_id")?,
        name: csv.require("job_name")?,
        stage: csv.require("stage")?,
        status: csv.require("status")?,
        created: csv.require("created_at")?,
        started: csv.require("started_at")?,
        duration: csv.require("duration")?,
        finished: csv.column("finished_at"),
        queued: csv.column("queued_duration"),
        runner: csv.column("runner_id"),
        url: csv.column("web_url"),
    };
    while csv.next_row()? {
        out.push(job_row(&csv, &c)?);
    }
    Ok(())
}

fn job_row(csv: &CsvInput, c: &JobColumns) -> Result<Row, DatasetError> {
    let job_id = csv.cell(c.job);
    if job_id.is_empty() {
        return Err(csv.bad(c.job, "empty job id".to_string()));
    }
    let what = format!("job {job_id}");
    let bad = |col: usize, m: &str| csv.bad(col, format!("{what}: {m}"));
    let pipe_s = csv.cell(c.pipeline);
    let pipeline = pipe_s
        .parse::<u64>()
        .map_err(|_| bad(c.pipeline, &format!("{pipe_s:?} is not a pipeline id")))?;
    let name = csv.cell(c.name);
    if name.is_empty() {
        return Err(bad(c.name, "empty job name"));
    }
    let status = csv.cell(c.status);
    let outcome = outcome_of(status).ok_or_else(|| {
        bad(
            c.status,
            &format!(
                "unknown status {status:?} (expected success, failed, canceled, skipped, \
                 manual, or an unfinished state such as running)"
            ),
        )
    })?;
    let submit = time_cell(csv, c.created, &what)?.ok_or_else(|| bad(c.created, "empty"))?;
    let started = time_cell(csv, c.started, &what)?;
    let finished = match c.finished {
        Some(i) => time_cell(csv, i, &what)?,
        None => None,
    };
    let duration = parse_duration(csv.cell(c.duration)).map_err(|m| bad(c.duration, &m))?;

    let mut rec = JobRecord::new(job_id, "", submit);
    rec.project = c
        .url
        .and_then(|i| project_of_url(csv.cell(i)))
        .map(str::to_string);
    rec.job_name = Some(name.to_string());
    rec.outcome = outcome;
    rec.wait_s = started.map(|s| s - submit).filter(|&w| w >= 0);
    rec.run_s = duration.or_else(|| match (started, finished) {
        (Some(s), Some(f)) if f >= s => Some(f - s),
        _ => None,
    });
    if let Some(i) = c.runner {
        if let Some(v) = seconds_cell(csv, i, &what)? {
            rec.extra.insert(RUNNER_ID.to_string(), v);
        }
    }
    if let Some(i) = c.queued {
        if let Some(v) = seconds_cell(csv, i, &what)? {
            rec.extra.insert(QUEUED_S.to_string(), v);
        }
    }
    if let Some(f) = finished {
        rec.extra.insert(FINISHED_S.to_string(), f as f64);
    }
    Ok(Row {
        rec,
        pipeline,
        stage: csv.cell(c.stage).to_string(),
        started,
        at: csv.at(),
    })
}

/// Orders the stages one pipeline uses (see the module docs); `first_start` is each
/// stage's earliest job start, if any job of it started. Returns the stage names in
/// order.
pub fn order_stages(first_start: &BTreeMap<String, Option<i64>>) -> Vec<String> {
    let listed = |s: &str| STAGE_ORDER.iter().position(|l| *l == s);
    let post = STAGE_ORDER.len() - 1;
    // Sort key: (listed position to follow, 0 for the listed stage itself / 1 for an
    // unlisted one placed after it, its first start, name).
    let mut keyed: Vec<((usize, u8, i64), &String)> = first_start
        .iter()
        .map(|(stage, start)| {
            let key = match (listed(stage), start) {
                (Some(p), _) => (p, 0, 0),
                (None, Some(t)) => {
                    let after = first_start
                        .iter()
                        .filter_map(|(s, st)| Some((listed(s)?, (*st)?)))
                        .filter(|&(p, st)| p < post && st < *t)
                        .map(|(p, _)| p)
                        .max()
                        .unwrap_or(0);
                    (after, 1, *t)
                }
                (None, None) => (post - 1, 1, i64::MAX),
            };
            (key, stage)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, s)| s.clone()).collect()
}

/// Reads GitLab jobs files joined with pipeline files: one record per job, sorted
/// (stably) by submit time.
pub fn read_jobs(
    jobs: &[PathBuf],
    pipelines: &[GitlabPipeline],
) -> Result<Vec<JobRecord>, DatasetError> {
    let mut rows = Vec::new();
    for f in jobs {
        read_job_rows(f, &mut rows)?;
    }
    let mut by_id: HashMap<u64, &GitlabPipeline> = HashMap::new();
    for p in pipelines {
        by_id.entry(p.id).or_insert(p);
    }

    // Per pipeline: its stages' first starts and its earliest job; and where each
    // (pipeline, job name) was seen.
    let mut first_start: HashMap<u64, BTreeMap<String, Option<i64>>> = HashMap::new();
    let mut earliest: HashMap<u64, i64> = HashMap::new();
    let mut names: HashMap<(u64, &str), &Location> = HashMap::new();
    for row in &rows {
        let e = earliest.entry(row.pipeline).or_insert(row.rec.submit_s);
        *e = (*e).min(row.rec.submit_s);
        let first = first_start
            .entry(row.pipeline)
            .or_default()
            .entry(row.stage.clone())
            .or_insert(None);
        if let Some(t) = row.started {
            *first = Some(first.map_or(t, |f| f.min(t)));
        }
        let name = row.rec.job_name.as_deref().unwrap_or("");
        if let Some(earlier) = names.insert((row.pipeline, name), &row.at) {
            return Err(DatasetError::BadValue {
                at: row.at.clone(),
                column: "job_name".to_string(),
                message: format!(
                    "job {}: name {name:?} is already used in pipeline {} (at {earlier}); \
                     names must be unique within a pipeline",
                    row.rec.id, row.pipeline
                ),
            });
        }
    }
    drop(names);
    let order: HashMap<u64, HashMap<String, u32>> = first_start
        .iter()
        .map(|(&id, stages)| {
            let index = order_stages(stages)
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, i as u32))
                .collect();
            (id, index)
        })
        .collect();

    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Row {
            mut rec,
            pipeline,
            stage,
            ..
        } = row;
        let joined = by_id.get(&pipeline).copied();
        let created_s = match joined {
            Some(p) => p.created_s,
            None => earliest.get(&pipeline).copied().unwrap_or(rec.submit_s),
        };
        match joined {
            Some(p) => {
                rec.tenant = tenant_of_ref(&p.git_ref).to_string();
                rec.branch = (!p.git_ref.is_empty()).then(|| p.git_ref.clone());
            }
            None => rec.tenant = rec.project.clone().unwrap_or_else(|| "unknown".to_string()),
        }
        let stage_index = order
            .get(&pipeline)
            .and_then(|o| o.get(&stage))
            .copied()
            .unwrap_or(0);
        let mut pipe = PipelineRef::new(pipeline.to_string(), created_s, stage, stage_index);
        let pipeline_succeeded = joined.is_some_and(|p| p.status == "success");
        pipe.when = if rec.outcome == Outcome::Manual {
            When::Manual
        } else {
            When::OnSuccess
        };
        pipe.allow_failure = rec.outcome == Outcome::Manual
            || (rec.outcome == Outcome::Failure && pipeline_succeeded);
        rec.pipeline = Some(pipe);
        out.push(rec);
    }
    out.sort_by_key(|r| r.submit_s);
    Ok(out)
}

/// Metadata of GitLab traces: Unix-second times (epoch 0).
pub fn gitlab_meta() -> TraceMeta {
    TraceMeta {
        unix_start: Some(0),
        installation: Some("GitLab CI".to_string()),
        ..TraceMeta::default()
    }
}

/// The jobs files and pipeline files `path` stands for: a folder's, or one jobs file
/// with the pipeline files next to it.
fn inputs(path: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DatasetError> {
    let unsupported = |message: String| DatasetError::Unsupported {
        path: path.display().to_string(),
        message,
    };
    if path.is_dir() {
        let (jobs, pipelines) = files_in(path)?;
        if jobs.is_empty() {
            return Err(unsupported(
                "holds no GitLab jobs CSV (a header with pipeline_id, job_id and stage)"
                    .to_string(),
            ));
        }
        return Ok((jobs, pipelines));
    }
    match kind_of_file(path)? {
        Some(FileKind::Jobs) => {}
        Some(FileKind::Pipelines) => {
            return Err(unsupported(
                "is a GitLab pipeline-level file (no jobs); open the jobs file or its folder, \
                 or read it with gitlab::read_pipelines"
                    .to_string(),
            ))
        }
        None => {
            return Err(DatasetError::MissingColumn {
                at: Location::line(&path.display().to_string(), 1),
                column: "job_id".to_string(),
            })
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (_, pipelines) = files_in(&dir)?;
    Ok((vec![path.to_path_buf()], pipelines))
}

/// Reads a GitLab export (a folder, or a jobs file with its pipeline files beside it):
/// one record per job, sorted (stably) by submit time.
pub fn read_gitlab(path: &Path) -> Result<Vec<JobRecord>, DatasetError> {
    let (jobs, pipeline_files) = inputs(path)?;
    let mut pipelines = Vec::new();
    for f in &pipeline_files {
        pipelines.extend(read_pipelines(f)?);
    }
    read_jobs(&jobs, &pipelines)
}

/// Opens a GitLab export as a trace sorted by submit time.
pub fn open_gitlab(path: &Path) -> Result<Trace, DatasetError> {
    let records = read_gitlab(path)?;
    let mut meta = gitlab_meta();
    meta.max_jobs = Some(records.len() as u64);
    Ok(Trace::from_records(meta, TraceFormat::Gitlab, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(v: &[(&str, Option<i64>)]) -> Vec<String> {
        let map = v.iter().map(|(s, t)| (s.to_string(), *t)).collect();
        order_stages(&map)
    }

    #[test]
    fn unlisted_stages_follow_the_latest_listed_stage_started_before_them() {
        let got = stages(&[
            (".post", Some(50)),
            ("lint", Some(10)),
            ("e2e", Some(40)),
            ("dynamic_test", Some(45)),
            (".pre", Some(0)),
            ("binary_build", Some(30)),
        ]);
        assert_eq!(
            got,
            [
                ".pre",
                "lint",
                "binary_build",
                "e2e",
                "dynamic_test",
                ".post"
            ]
        );
        // Started before every listed stage but .pre: right after .pre.
        let got = stages(&[(".pre", Some(5)), ("scan", Some(1)), ("lint", Some(10))]);
        assert_eq!(got, [".pre", "scan", "lint"]);
        // Never started: last before .post, whatever the listed stages did.
        let got = stages(&[
            (".post", None),
            ("dynamic_test", None),
            ("notify", Some(99)),
            ("lint", None),
        ]);
        assert_eq!(got, ["lint", "notify", "dynamic_test", ".post"]);
    }

    #[test]
    fn refs_and_urls() {
        assert_eq!(tenant_of_ref("aiuto/rtl"), "aiuto");
        assert_eq!(tenant_of_ref("dependabot/go_modules/x"), "dependabot");
        assert_eq!(tenant_of_ref("main"), "main");
        assert_eq!(tenant_of_ref("/odd"), "/odd");
        assert_eq!(
            project_of_url("https://gitlab.ddbuild.io/DataDog/datadog-agent/-/jobs/1"),
            Some("DataDog/datadog-agent")
        );
        assert_eq!(project_of_url("https://host/-/jobs/1"), None);
        assert_eq!(project_of_url(""), None);
    }
}
