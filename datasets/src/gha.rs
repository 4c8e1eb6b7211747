//! GitHub Actions workflow-run CSVs (GHAminer, 58 columns, one row per run) with the
//! per-job list in the `job_details` JSON column.
//!
//! Mapping to [`JobRecord`] (one record per job of a run):
//!
//! | record | source |
//! |---|---|
//! | `id` | `<id_build>/<index>`, index 0-based in `job_details` |
//! | `tenant`, `project` | `repo` |
//! | `job_name` | `<workflow_name>/<job_name>` |
//! | `branch` | `branch` (empty: none) |
//! | `labels` | none: the trace records no runner labels |
//! | `slots` | 1 |
//! | `submit_s` | run `created_at` as Unix seconds (trace epoch 0) |
//! | `wait_s` | `job_start - created_at`; none if unknown or negative |
//! | `run_s` | `job_duration` (rounded), else `job_end - job_start`; none if neither is a non-negative number (skipped jobs have `-1`) |
//! | `outcome` | `job_result`: success; failure, timed_out, startup_failure: failure; cancelled, skipped: cancelled; else unknown |
//! | `extra` | [`FEATURE_COLUMNS`] of the run that hold a number |
//!
//! Timestamps are ISO 8601 (`2025-08-27T16:15:27Z`; offsets are honoured). A file is read
//! whole and sorted (stably) by `submit_s` (upstream files are newest first).

use std::path::Path;

use serde::Deserialize;

use crate::csvin::CsvInput;
use crate::error::DatasetError;
use crate::record::{JobRecord, Outcome, TraceMeta};
use crate::time::parse_timestamp;
use crate::{Trace, TraceFormat};

/// Run-level numeric columns copied into every job's `extra` when numeric.
pub const FEATURE_COLUMNS: [&str; 9] = [
    "gh_lines_added",
    "gh_lines_deleted",
    "gh_files_modified",
    "gh_src_churn",
    "gh_test_churn",
    "tests_total",
    "total_jobs",
    "workflow_size",
    "dependencies_count",
];

#[derive(Debug, Deserialize)]
struct GhaJob {
    #[serde(default)]
    job_name: Option<String>,
    #[serde(default)]
    job_start: Option<String>,
    #[serde(default)]
    job_end: Option<String>,
    #[serde(default)]
    job_duration: Option<serde_json::Value>,
    #[serde(default)]
    job_result: Option<String>,
}

/// The outcome of a GitHub Actions job conclusion.
pub fn outcome_of(result: Option<&str>) -> Outcome {
    match result {
        Some("success") => Outcome::Success,
        Some("failure" | "timed_out" | "startup_failure") => Outcome::Failure,
        Some("cancelled" | "skipped") => Outcome::Cancelled,
        _ => Outcome::Unknown,
    }
}

/// Metadata of GitHub Actions traces: Unix-second times (epoch 0).
pub fn gha_meta() -> TraceMeta {
    TraceMeta {
        unix_start: Some(0),
        installation: Some("GitHub Actions".to_string()),
        ..TraceMeta::default()
    }
}

/// Reads one GitHub Actions runs file (plain or gzip): every job of every run, sorted
/// (stably) by submit time.
pub fn read_gha(path: &Path) -> Result<Vec<JobRecord>, DatasetError> {
    let mut csv = CsvInput::open(path)?;
    let repo = csv.require("repo")?;
    let id_build = csv.require("id_build")?;
    let created = csv.require("created_at")?;
    let details = csv.require("job_details")?;
    let branch = csv.column("branch");
    let workflow = csv.column("workflow_name");
    let features: Vec<(usize, &'static str)> = FEATURE_COLUMNS
        .iter()
        .filter_map(|&c| csv.column(c).map(|i| (i, c)))
        .collect();

    let mut out = Vec::new();
    while csv.next_row()? {
        let run_id = csv.cell(id_build);
        if run_id.is_empty() {
            return Err(csv.bad(id_build, "empty run id".to_string()));
        }
        let tenant = csv.cell(repo);
        if tenant.is_empty() {
            return Err(csv.bad(repo, "empty repository".to_string()));
        }
        let created_s = csv.cell(created);
        let submit = parse_timestamp(created_s).ok_or_else(|| {
            csv.bad(
                created,
                format!("{created_s:?} is not an ISO 8601 timestamp"),
            )
        })?;
        let json = csv.cell(details);
        let jobs: Vec<GhaJob> = if json.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(json).map_err(|source| DatasetError::Json {
                at: csv.at(),
                column: "job_details".to_string(),
                source,
            })?
        };
        let branch = branch
            .map(|i| csv.cell(i))
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        let workflow = workflow.map(|i| csv.cell(i)).unwrap_or("");
        let extra: std::collections::BTreeMap<String, f64> = features
            .iter()
            .filter_map(|&(i, name)| csv.feature(i).map(|v| (name.to_string(), v)))
            .collect();

        for (index, job) in jobs.iter().enumerate() {
            let bad = |m: String| csv.bad(details, format!("job {index}: {m}"));
            let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, DatasetError> {
                match v.as_deref().map(str::trim) {
                    None | Some("") | Some("N/A") => Ok(None),
                    Some(s) => parse_timestamp(s)
                        .map(Some)
                        .ok_or_else(|| bad(format!("{field} {s:?} is not an ISO 8601 timestamp"))),
                }
            };
            let start = time("job_start", &job.job_start)?;
            let end = time("job_end", &job.job_end)?;
            // Negative durations occur on skipped jobs (end before start): unknown.
            let duration = match &job.job_duration {
                Some(serde_json::Value::Number(n)) => n
                    .as_f64()
                    .filter(|v| v.is_finite() && (0.0..=1e12).contains(v))
                    .map(|v| v.round() as i64),
                _ => None,
            };
            let name = job.job_name.as_deref().unwrap_or("").trim();
            let name = if name.is_empty() {
                format!("job{index}")
            } else {
                name.to_string()
            };

            let mut rec = JobRecord::new(format!("{run_id}/{index}"), tenant, submit);
            rec.project = Some(tenant.to_string());
            rec.job_name = Some(if workflow.is_empty() {
                name
            } else {
                format!("{workflow}/{name}")
            });
            rec.branch = branch.clone();
            rec.wait_s = start.map(|s| s - submit).filter(|&w| w >= 0);
            rec.run_s = duration.or_else(|| match (start, end) {
                (Some(s), Some(e)) if e >= s => Some(e - s),
                _ => None,
            });
            rec.outcome = outcome_of(job.job_result.as_deref());
            rec.extra = extra.clone();
            out.push(rec);
        }
    }
    out.sort_by_key(|r| r.submit_s);
    Ok(out)
}

/// Opens one GitHub Actions runs file as a trace sorted by submit time.
pub fn open_gha(path: &Path) -> Result<Trace, DatasetError> {
    let records = read_gha(path)?;
    let mut meta = gha_meta();
    meta.max_jobs = Some(records.len() as u64);
    Ok(Trace::from_records(meta, TraceFormat::Gha, records))
}
