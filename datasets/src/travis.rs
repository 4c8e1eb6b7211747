//! TravisTorrent per-project CSV extracts (one row per build, 62 TravisTorrent columns).
//!
//! Mapping to [`JobRecord`] (one record per build):
//!
//! | record | column |
//! |---|---|
//! | `id` | `tr_build_id` |
//! | `tenant`, `project` | `gh_project_name` |
//! | `branch` | `git_branch` (empty: none) |
//! | `labels` | `[gh_lang]`, lowercased (`ruby`, `java`, `javascript`) |
//! | `slots` | 1 |
//! | `submit_s` | `gh_build_started_at`, UTC, as Unix seconds (trace epoch 0) |
//! | `wait_s`, `requested_s`, `job_name` | none (the trace has no queue wait, limit or job name) |
//! | `run_s` | `tr_duration` rounded (empty: none; negative: error) |
//! | `outcome` | `tr_status`: passed success; failed, errored failure; canceled cancelled |
//! | `extra` | [`FEATURE_COLUMNS`] that hold a number (`gh_is_pr`: True 1, False 0) |
//! | `extra["tr_jobs_count"]` | ids in the `tr_jobs` list (`[1, 2]`), at least 1; 1 when empty (the build matrix, known when the build is created) |
//!
//! The upstream files are not sorted by build time, so [`open_travis`] reads a file whole
//! and sorts it (stably) by `submit_s`; [`crate::open_trace`] on a directory merges all
//! project files into one stream in submit order.

use std::path::Path;

use crate::csvin::{parse_duration, CsvInput};
use crate::error::DatasetError;
use crate::record::{JobRecord, Outcome, TraceMeta};
use crate::{Trace, TraceFormat};

/// Numeric columns copied into `JobRecord::extra` (under the same name) when present
/// and numeric.
pub const FEATURE_COLUMNS: [&str; 13] = [
    "git_diff_src_churn",
    "git_diff_test_churn",
    "gh_diff_files_added",
    "gh_diff_files_deleted",
    "gh_diff_files_modified",
    "gh_diff_tests_added",
    "gh_diff_tests_deleted",
    "gh_sloc",
    "gh_test_lines_per_kloc",
    "gh_team_size",
    "gh_num_commits_in_push",
    IS_PULL_REQUEST,
    "tr_log_num_tests_run",
];

/// The extra saying a build is a pull request's (1) or a push's (0).
pub const IS_PULL_REQUEST: &str = "gh_is_pr";

/// The extra holding the number of jobs in the build's matrix (from `tr_jobs`).
pub const JOBS_COUNT: &str = "tr_jobs_count";

/// Ids in a `tr_jobs` cell (`[24379924, 24379925]`), at least 1: a build has at least
/// one job, and an empty list means the trace did not record them.
pub fn jobs_count(cell: &str) -> f64 {
    let n = cell
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .filter(|id| !id.trim().is_empty())
        .count();
    n.max(1) as f64
}

struct Columns {
    id: usize,
    project: usize,
    started: usize,
    status: usize,
    duration: usize,
    branch: Option<usize>,
    lang: Option<usize>,
    jobs: Option<usize>,
    features: Vec<(usize, &'static str)>,
}

/// Streaming reader of one TravisTorrent CSV file (plain or gzip), in file order.
pub struct TravisReader {
    csv: CsvInput,
    cols: Columns,
    done: bool,
}

impl std::fmt::Debug for TravisReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TravisReader")
            .field("file", &self.csv.name)
            .field("line", &self.csv.line)
            .finish_non_exhaustive()
    }
}

impl TravisReader {
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        let csv = CsvInput::open(path)?;
        let cols = Columns {
            id: csv.require("tr_build_id")?,
            project: csv.require("gh_project_name")?,
            started: csv.require("gh_build_started_at")?,
            status: csv.require("tr_status")?,
            duration: csv.require("tr_duration")?,
            branch: csv.column("git_branch"),
            lang: csv.column("gh_lang"),
            jobs: csv.column("tr_jobs"),
            features: FEATURE_COLUMNS
                .iter()
                .filter_map(|&c| csv.column(c).map(|i| (i, c)))
                .collect(),
        };
        Ok(Self {
            csv,
            cols,
            done: false,
        })
    }

    fn record(&self) -> Result<JobRecord, DatasetError> {
        let c = &self.cols;
        let csv = &self.csv;
        let id = csv.cell(c.id);
        if id.is_empty() {
            return Err(csv.bad(c.id, "empty build id".to_string()));
        }
        let project = csv.cell(c.project);
        if project.is_empty() {
            return Err(csv.bad(c.project, "empty project name".to_string()));
        }
        let started = csv.cell(c.started);
        let submit = crate::time::parse_timestamp(started).ok_or_else(|| {
            csv.bad(
                c.started,
                format!("{started:?} is not a timestamp (expected YYYY-MM-DD HH:MM:SS, UTC)"),
            )
        })?;
        let mut rec = JobRecord::new(id, project, submit);
        rec.project = Some(project.to_string());
        rec.branch = c
            .branch
            .map(|i| csv.cell(i))
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        if let Some(lang) = c.lang.map(|i| csv.cell(i)).filter(|l| !l.is_empty()) {
            rec.labels.push(lang.to_lowercase());
        }
        rec.run_s = parse_duration(csv.cell(c.duration)).map_err(|m| csv.bad(c.duration, m))?;
        rec.outcome = match csv.cell(c.status) {
            "passed" => Outcome::Success,
            "failed" | "errored" => Outcome::Failure,
            "canceled" | "cancelled" => Outcome::Cancelled,
            _ => Outcome::Unknown,
        };
        if let Some(i) = c.jobs {
            rec.extra
                .insert(JOBS_COUNT.to_string(), jobs_count(csv.cell(i)));
        }
        for &(i, name) in &c.features {
            if let Some(v) = csv.feature(i) {
                rec.extra.insert(name.to_string(), v);
            }
        }
        Ok(rec)
    }
}

impl Iterator for TravisReader {
    type Item = Result<JobRecord, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.csv.next_row() {
            Ok(true) => Some(self.record()),
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Metadata of TravisTorrent traces: Unix-second times (epoch 0).
pub fn travis_meta() -> TraceMeta {
    TraceMeta {
        unix_start: Some(0),
        installation: Some("TravisTorrent".to_string()),
        ..TraceMeta::default()
    }
}

/// Reads one TravisTorrent file whole, sorted (stably) by submit time.
pub fn read_travis(path: &Path) -> Result<Vec<JobRecord>, DatasetError> {
    let mut all = TravisReader::open(path)?.collect::<Result<Vec<_>, _>>()?;
    all.sort_by_key(|r| r.submit_s);
    Ok(all)
}

/// Opens one TravisTorrent file as a trace sorted by submit time (errors are returned here).
pub fn open_travis(path: &Path) -> Result<Trace, DatasetError> {
    let records = read_travis(path)?;
    let mut meta = travis_meta();
    meta.max_jobs = Some(records.len() as u64);
    Ok(Trace::from_records(meta, TraceFormat::Travis, records))
}

/// Opens a directory of TravisTorrent project files (`*.csv`, `*.csv.gz`), all projects
/// merged in submit order. Same as `open_trace(dir, Some(TraceFormat::Travis))`.
pub fn open_travis_dir(dir: &Path) -> Result<Trace, DatasetError> {
    crate::open_trace(dir, Some(TraceFormat::Travis))
}

#[cfg(test)]
mod tests {
    use super::jobs_count;

    #[test]
    fn jobs_are_counted_from_the_list() {
        assert_eq!(jobs_count("[24379924]"), 1.0);
        assert_eq!(jobs_count("[1, 2, 3]"), 3.0);
        assert_eq!(jobs_count("[]"), 1.0);
        assert_eq!(jobs_count(""), 1.0);
    }
}
