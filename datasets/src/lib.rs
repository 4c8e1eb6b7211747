//! `rustci-datasets`: the job-history schema ([`JobRecord`]), readers for the traces the
//! project replays, and the seeded synthetic CI workload.
//!
//! | format | module | one record is |
//! |---|---|---|
//! | Standard Workload Format (Parallel Workloads Archive) | [`swf`] | an HPC job |
//! | TravisTorrent per-project CSV | [`travis`] | a Travis CI build |
//! | GitHub Actions runs CSV (GHAminer) | [`gha`] | a job of a workflow run |
//! | plain `JobRecord` CSV | [`jobcsv`] | a job (reader and writer) |
//! | synthetic CI workload | [`synthetic`] | a generated job |
//!
//! [`open_trace`] opens any of the file formats, gzip or not (gzip is detected by its
//! magic bytes and decoded while streaming), with the format given or inferred, and
//! also accepts a directory of CSV traces (e.g. the 145 TravisTorrent project files),
//! merged into one stream ordered by submit time.
//!
//! All readers report errors as [`DatasetError`], naming the file and the 1-based line.
//! No input makes them panic.
//!
//! Order of records: SWF and `JobRecord` CSV files stream in file order (the archive's SWF
//! logs are sorted by submit time); TravisTorrent and GitHub Actions files are read whole
//! and sorted by submit time (their files are not sorted), as are directories. Sorting
//! is stable, so ties keep file order.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub mod error;
pub mod gha;
pub mod jobcsv;
pub mod record;
pub mod swf;
pub mod synthetic;
pub mod testdata;
pub mod time;
pub mod travis;

mod csvin;
mod input;

pub use error::{DatasetError, Location};
pub use record::{JobRecord, Outcome, TraceMeta};

/// The trace formats [`open_trace`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// Standard Workload Format, see [`swf`].
    Swf,
    /// TravisTorrent CSV, see [`travis`].
    Travis,
    /// GitHub Actions runs CSV, see [`gha`].
    Gha,
    /// `JobRecord` CSV, see [`jobcsv`].
    Csv,
}

impl TraceFormat {
    pub const ALL: [TraceFormat; 4] = [Self::Swf, Self::Travis, Self::Gha, Self::Csv];

    /// The name `from_str` accepts: `swf`, `travis`, `gha`, `csv`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Swf => "swf",
            Self::Travis => "travis",
            Self::Gha => "gha",
            Self::Csv => "csv",
        }
    }

    /// Infers the format of a file: `.swf`/`.swf.gz` (or a first line starting with `;`)
    /// is SWF; a CSV header with `tr_build_id` is TravisTorrent, one with `id_build` and
    /// `job_details` is GitHub Actions; any other CSV is a `JobRecord` CSV.
    pub fn infer(path: &Path) -> Result<Self, DatasetError> {
        if input::name_ends_with(path, ".swf") || input::name_ends_with(path, ".swf.gz") {
            return Ok(Self::Swf);
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
        let columns: Vec<&str> = first
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        let has = |name: &str| columns.contains(&name);
        Ok(if has("tr_build_id") {
            Self::Travis
        } else if has("id_build") && has("job_details") {
            Self::Gha
        } else {
            Self::Csv
        })
    }
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
/// * A directory: every `*.csv` and `*.csv.gz` file in it (not recursive), sorted by name,
///   all of one format (TravisTorrent, GitHub Actions or `JobRecord` CSV), read and merged
///   into one stream ordered by submit time. SWF logs are not merged (their times are
///   relative to each log's own start).
pub fn open_trace(path: &Path, format: Option<TraceFormat>) -> Result<Trace, DatasetError> {
    if path.is_dir() {
        return open_dir(path, format);
    }
    let format = match format {
        Some(f) => f,
        None => TraceFormat::infer(path)?,
    };
    match format {
        TraceFormat::Swf => swf::open_swf(path),
        TraceFormat::Travis => travis::open_travis(path),
        TraceFormat::Gha => gha::open_gha(path),
        TraceFormat::Csv => jobcsv::open_jobcsv(path),
    }
}

fn open_dir(dir: &Path, format: Option<TraceFormat>) -> Result<Trace, DatasetError> {
    let dir_name = dir.display().to_string();
    let unsupported = |message: String| DatasetError::Unsupported {
        path: dir_name.clone(),
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|source| DatasetError::Open {
        path: dir_name.clone(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DatasetError::Open {
            path: dir_name.clone(),
            source,
        })?;
        let p = entry.path();
        if p.is_file()
            && (input::name_ends_with(&p, ".csv") || input::name_ends_with(&p, ".csv.gz"))
        {
            files.push(p);
        }
    }
    files.sort();
    let Some(first) = files.first() else {
        return Err(unsupported(
            "directory holds no *.csv or *.csv.gz trace files".to_string(),
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
        if this != fmt {
            return Err(unsupported(format!(
                "mixes trace formats: {} is {this}, {} is {fmt}",
                f.display(),
                first.display()
            )));
        }
    }
    let parts = read_files_parallel(&files, fmt)?;
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
        _ => jobcsv::open_jobcsv(path)?,
    };
    let meta = trace.meta.clone();
    Ok((meta, trace.collect_records()?))
}

/// Reads files on up to 4 threads; results (and the first error) in file order.
fn read_files_parallel(
    files: &[std::path::PathBuf],
    fmt: TraceFormat,
) -> Result<Vec<FilePart>, DatasetError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<FilePart, DatasetError>>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let result = read_one(path, fmt);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(files.len());
    for (slot, path) in slots.into_iter().zip(files) {
        let result = slot
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| DatasetError::Unsupported {
                path: path.display().to_string(),
                message: "reader thread failed".to_string(),
            })?;
        out.push(result?);
    }
    Ok(out)
}
