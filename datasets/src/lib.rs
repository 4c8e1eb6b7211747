//! `rustci-datasets`: the job-history schema ([`JobRecord`]), readers for the traces the
//! project replays, and the seeded synthetic CI workload.
//!
//! | format | module | one record is |
//! |---|---|---|
//! | Standard Workload Format (Parallel Workloads Archive) | [`swf`] | an HPC job |
//! | TravisTorrent per-project CSV | [`travis`] | a Travis CI build |
//! | GitHub Actions runs CSV (GHAminer) | [`gha`] | a job of a workflow run |
//! | GitLab CI export: jobs CSV joined with pipeline CSVs | [`gitlab`] | a job of a pipeline (stage order, no `needs`) |
//! | FlowBench workflow runs: zipped run CSVs and the DAG's adjacency JSON | [`flowbench`] | a job of a workflow run (DAG `needs`) |
//! | plain `JobRecord` CSV | [`jobcsv`] | a job (reader and writer) |
//! | `JobRecord` Parquet (feature `parquet`, polars) | `parquet` | a job (reader and writer) |
//! | synthetic CI workload | [`synthetic`] | a generated job (optionally of a pipeline) |
//!
//! A job of a pipeline carries a [`PipelineRef`]: its pipeline, stage, `needs` and
//! conditions.
//!
//! [`open_trace`] opens any of the file formats, gzip or not (gzip is detected by its
//! magic bytes and decoded while streaming), with the format given or inferred, and
//! also accepts a directory: a GitLab export's folder, a folder of FlowBench workflows,
//! or a directory of CSV traces (e.g. the 145 TravisTorrent project files), merged into
//! one stream ordered by submit time.
//!
//! All readers report errors as [`DatasetError`], naming the file and the 1-based line.
//! No input makes them panic.
//!
//! Order of records: SWF and `JobRecord` CSV files stream in file order (the archive's SWF
//! logs are sorted by submit time); TravisTorrent, GitHub Actions, GitLab and FlowBench
//! traces are read whole and sorted by submit time (their files are not sorted), as are
//! directories. Sorting is stable, so ties keep file order.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub mod error;
pub mod flowbench;
pub mod gha;
pub mod gitlab;
pub mod jobcsv;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod record;
pub mod swf;
pub mod synthetic;
pub mod testdata;
pub mod time;
pub mod travis;

mod csvin;
mod graph;
mod input;
mod parallel;

pub use error::{DatasetError, Location};
pub use record::{check_pipelines, JobRecord, Outcome, PipelineRef, TraceMeta, When};

/// The trace formats [`open_trace`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// Standard Workload Format, see [`swf`].
    Swf,
    /// TravisTorrent CSV, see [`travis`].
    Travis,
    /// GitHub Actions runs CSV, see [`gha`].
    Gha,
    /// GitLab CI export (jobs and pipelines CSVs), see [`gitlab`].
    Gitlab,
    /// FlowBench workflow runs (zip and adjacency JSON), see [`flowbench`].
    Flowbench,
    /// `JobRecord` CSV, see [`jobcsv`].
    Csv,
    /// `JobRecord` Parquet, see `parquet` (feature `parquet`; without it, opening one is
    /// an error that says so).
    Parquet,
}

impl TraceFormat {
    pub const ALL: [TraceFormat; 7] = [
        Self::Swf,
        Self::Travis,
        Self::Gha,
        Self::Gitlab,
        Self::Flowbench,
        Self::Csv,
        Self::Parquet,
    ];

    /// The name `from_str` accepts: `swf`, `travis`, `gha`, `gitlab`, `flowbench`, `csv`,
    /// `parquet`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Swf => "swf",
            Self::Travis => "travis",
            Self::Gha => "gha",
            Self::Gitlab => "gitlab",
            Self::Flowbench => "flowbench",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    /// Infers the format of a file or directory.
    ///
    /// A file: `.parquet` (or one starting with Parquet's magic `PAR1`) is `JobRecord`
    /// Parquet; `.swf`/`.swf.gz` (or a first line starting with `;`) is SWF; `.zip` is a
    /// FlowBench workflow; a CSV header with `tr_build_id` is TravisTorrent, one with
    /// `id_build` and `job_details` is GitHub Actions, one with `pipeline_id`, `job_id`
    /// and `stage` is a GitLab jobs file; any other CSV is a `JobRecord` CSV (but a
    /// GitLab pipeline-level file, which has no jobs, is an error).
    ///
    /// A directory: FlowBench if it holds a `<workflow>.zip` with its
    /// `<workflow>.adj.json[.gz]`; GitLab if one of its CSVs is a GitLab jobs file;
    /// otherwise the format of its first CSV file by name.
    pub fn infer(path: &Path) -> Result<Self, DatasetError> {
        if path.is_dir() {
            return infer_dir(path);
        }
        if input::name_ends_with(path, ".swf") || input::name_ends_with(path, ".swf.gz") {
            return Ok(Self::Swf);
        }
        if input::name_ends_with(path, ".zip") {
            return Ok(Self::Flowbench);
        }
        if is_parquet_name(path) || has_parquet_magic(path) {
            return Ok(Self::Parquet);
        }
        let first = input::first_line(path)?;
        let first = first.trim_start_matches('\u{feff}').trim();
        if first.starts_with(';') {
            return Ok(Self::Swf);
        }
        if !first.contains(',')
            && !first.is_empty()
            && first.split_ascii_whitespace().all(|t| {
                t.trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.')
            })
        {
            return Ok(Self::Swf);
        }
        let columns = input::header_columns(first);
        let has = |name: &str| columns.contains(&name);
        Ok(if has("tr_build_id") {
            Self::Travis
        } else if has("id_build") && has("job_details") {
            Self::Gha
        } else {
            match gitlab::kind_of(&columns) {
                Some(gitlab::FileKind::Jobs) => Self::Gitlab,
                Some(gitlab::FileKind::Pipelines) => {
                    return Err(DatasetError::Unsupported {
                        path: path.display().to_string(),
                        message: "is a GitLab pipeline-level file (no jobs); open the jobs \
                                  file or its folder, or read it with gitlab::read_pipelines"
                            .to_string(),
                    })
                }
                None => Self::Csv,
            }
        })
    }
}

/// Whether `path` is named as Parquet (`*.parquet`, any case): how writers choose the
/// format of a file they are given (`--jobs-out`, `rustci jobs export --out`) and how a
/// trace is first recognised.
pub fn is_parquet_name(path: &Path) -> bool {
    input::name_ends_with(path, ".parquet")
}

/// The bytes a Parquet file starts and ends with.
pub(crate) const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Whether `path` starts with [`PARQUET_MAGIC`] (no CSV or SWF file does).
fn has_parquet_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == PARQUET_MAGIC)
}

fn infer_dir(dir: &Path) -> Result<TraceFormat, DatasetError> {
    if !flowbench::workflows_in(dir)?.is_empty() {
        return Ok(TraceFormat::Flowbench);
    }
    let Some(first) = input::trace_files(dir)?.into_iter().next() else {
        return Err(DatasetError::Unsupported {
            path: dir.display().to_string(),
            message: "directory holds no trace: no *.csv, *.csv.gz or *.parquet files, no \
                      FlowBench <workflow>.zip with its <workflow>.adj.json.gz"
                .to_string(),
        });
    };
    let by_first = TraceFormat::infer(&first);
    // Only a folder whose first CSV is not TravisTorrent or GitHub Actions can be a
    // GitLab export (its CSVs are GitLab's or plain); this spares the 145 TravisTorrent
    // files a second read of their headers.
    if matches!(
        by_first,
        Ok(TraceFormat::Travis | TraceFormat::Gha | TraceFormat::Parquet)
    ) {
        return by_first;
    }
    let (jobs, _) = gitlab::files_in(dir)?;
    if !jobs.is_empty() {
        return Ok(TraceFormat::Gitlab);
    }
    by_first
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TraceFormat {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| DatasetError::UnknownFormat(s.to_string()))
    }
}

/// `--trace-format NAME` for the binaries (feature `clap`): the names [`TraceFormat::name`]
/// gives, which an unknown value's error lists.
#[cfg(feature = "clap")]
impl clap::ValueEnum for TraceFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// A boxed stream of records.
pub type RecordStream = Box<dyn Iterator<Item = Result<JobRecord, DatasetError>> + Send>;

/// An opened trace: its metadata and a stream of records. `Trace` is itself an iterator
/// over the records.
pub struct Trace {
    pub meta: TraceMeta,
    pub format: TraceFormat,
    pub records: RecordStream,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("meta", &self.meta)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Trace {
    pub fn new<I>(meta: TraceMeta, format: TraceFormat, records: I) -> Self
    where
        I: Iterator<Item = Result<JobRecord, DatasetError>> + Send + 'static,
    {
        Self {
            meta,
            format,
            records: Box::new(records),
        }
    }

    /// A trace over records already in memory.
    pub fn from_records(meta: TraceMeta, format: TraceFormat, records: Vec<JobRecord>) -> Self {
        Self::new(meta, format, records.into_iter().map(Ok))
    }

    /// All records, stopping at the first error.
    pub fn collect_records(self) -> Result<Vec<JobRecord>, DatasetError> {
        self.records.collect()
    }
}

impl Iterator for Trace {
    type Item = Result<JobRecord, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.records.next()
    }
}

/// Opens a trace file or directory.
///
/// * `format`: `None` infers it per file ([`TraceFormat::infer`]).
/// * A file: SWF and `JobRecord` CSV stream lazily (errors arrive as items); TravisTorrent
///   and GitHub Actions files are read and sorted by submit time here (errors are returned
///   here).
/// * GitLab and FlowBench traces (a folder, or a jobs file or a workflow zip) are read
///   whole by [`gitlab::open_gitlab`] and [`flowbench::open_flowbench`].
/// * Any other directory: every `*.csv` and `*.csv.gz` file in it (not recursive), sorted
///   by name, all of one format (TravisTorrent, GitHub Actions or `JobRecord` CSV), read
///   and merged into one stream ordered by submit time. SWF logs are not merged (their
///   times are relative to each log's own start).
pub fn open_trace(path: &Path, format: Option<TraceFormat>) -> Result<Trace, DatasetError> {
    if path.is_dir() {
        refuse_swf_beside_others(path)?;
    }
    let inferred = match format {
        Some(f) => f,
        None => TraceFormat::infer(path)?,
    };
    match inferred {
        TraceFormat::Gitlab => gitlab::open_gitlab(path),
        TraceFormat::Flowbench => flowbench::open_flowbench(path),
        _ if path.is_dir() => open_dir(path, format),
        TraceFormat::Swf => swf::open_swf(path),
        TraceFormat::Travis => travis::open_travis(path),
        TraceFormat::Gha => gha::open_gha(path),
        TraceFormat::Csv => jobcsv::open_jobcsv(path),
        TraceFormat::Parquet => open_parquet(path),
    }
}

#[cfg(feature = "parquet")]
fn open_parquet(path: &Path) -> Result<Trace, DatasetError> {
    parquet::open_parquet(path)
}

#[cfg(not(feature = "parquet"))]
fn open_parquet(path: &Path) -> Result<Trace, DatasetError> {
    Err(DatasetError::Unsupported {
        path: path.display().to_string(),
        message: "this build reads no Parquet (rustci-datasets without its `parquet` feature)"
            .to_string(),
    })
}

/// A folder's trace is read from its CSVs (or FlowBench zips); an SWF log next to them
/// would be left out without a word, and SWF logs cannot be merged (each counts time
/// from its own start). So a folder that mixes them is an error naming both files:
/// which to replay is the user's choice, not a guess.
fn refuse_swf_beside_others(dir: &Path) -> Result<(), DatasetError> {
    let Some(swf) = input::swf_files(dir)?.into_iter().next() else {
        return Ok(());
    };
    let other = input::trace_files(dir)?.into_iter().next().or_else(|| {
        flowbench::workflows_in(dir)
            .ok()
            .and_then(|w| w.into_iter().next())
    });
    match other {
        Some(other) => Err(DatasetError::Unsupported {
            path: dir.display().to_string(),
            message: format!(
                "mixes trace formats: {} is an SWF log, {} is not; an SWF log is opened \
                 alone (give its path), and the folder's other files without it",
                swf.display(),
                other.display()
            ),
        }),
        None => Ok(()),
    }
}

fn open_dir(dir: &Path, format: Option<TraceFormat>) -> Result<Trace, DatasetError> {
    let dir_name = dir.display().to_string();
    let unsupported = |message: String| DatasetError::Unsupported {
        path: dir_name.clone(),
        message,
    };
    let files = input::trace_files(dir)?;
    let Some(first) = files.first() else {
        return Err(unsupported(
            "directory holds no *.csv, *.csv.gz or *.parquet trace files".to_string(),
        ));
    };
    let fmt = match format {
        Some(f) => f,
        None => TraceFormat::infer(first)?,
    };
    if fmt == TraceFormat::Swf {
        return Err(unsupported(
            "SWF logs cannot be merged from a directory; open one log at a time".to_string(),
        ));
    }
    for f in &files {
        let this = match format {
            Some(f) => f,
            None => TraceFormat::infer(f)?,
        };
        if matches!(this, TraceFormat::Gitlab | TraceFormat::Flowbench) {
            return Err(unsupported(format!(
                "{} is a {this} file; a {this} trace is opened by its folder or file alone",
                f.display()
            )));
        }
        if this != fmt {
            return Err(unsupported(format!(
                "mixes trace formats: {} is {this}, {} is {fmt}",
                f.display(),
                first.display()
            )));
        }
    }
    let parts = parallel::map_in_order(&files, |f| read_one(f, fmt))?;
    let mut meta = parts.first().map(|(m, _)| m.clone()).unwrap_or_default();
    let mut all = Vec::with_capacity(parts.iter().map(|(_, r)| r.len()).sum());
    for (_, records) in parts {
        all.extend(records);
    }
    all.sort_by_key(|r| r.submit_s);
    meta.header = vec![
        ("Directory".to_string(), dir_name.clone()),
        ("Files".to_string(), files.len().to_string()),
        ("Format".to_string(), fmt.to_string()),
    ];
    meta.max_jobs = Some(all.len() as u64);
    Ok(Trace::from_records(meta, fmt, all))
}

type FilePart = (TraceMeta, Vec<JobRecord>);

fn read_one(path: &Path, fmt: TraceFormat) -> Result<FilePart, DatasetError> {
    let trace = match fmt {
        TraceFormat::Travis => travis::open_travis(path)?,
        TraceFormat::Gha => gha::open_gha(path)?,
        TraceFormat::Parquet => open_parquet(path)?,
        _ => jobcsv::open_jobcsv(path)?,
    };
    let meta = trace.meta.clone();
    Ok((meta, trace.collect_records()?))
}
