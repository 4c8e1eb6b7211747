//! The plain `JobRecord` CSV: this project's own interchange format.
//!
//! Header: [`COLUMNS`] (`id,tenant,project,job_name,branch,labels,slots,requested_s,
//! submit_s,wait_s,run_s,outcome,qos,queue`), then one `x_<name>` column per `extra` key.
//!
//! * An empty cell is `None` (so `Some("")` is written as, and read back as, `None`).
//! * `labels` are joined with `;` (labels must not contain `;`; empty labels are dropped).
//! * `outcome` is `success`, `failure`, `cancelled` or `unknown` (empty: unknown).
//! * `slots` empty means 1.
//! * An empty `x_` cell means the record has no such extra value.
//!
//! Reading needs only `id`, `tenant` and `submit_s`; other known columns are optional,
//! columns that are neither known nor `x_` are ignored. Files may be gzip (`.gz`,
//! detected by content when reading; by the `.gz` suffix when writing).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::csvin::CsvInput;
use crate::error::DatasetError;
use crate::record::{JobRecord, Outcome, TraceMeta};
use crate::{Trace, TraceFormat};

/// The fixed columns, in order.
pub const COLUMNS: [&str; 14] = [
    "id",
    "tenant",
    "project",
    "job_name",
    "branch",
    "labels",
    "slots",
    "requested_s",
    "submit_s",
    "wait_s",
    "run_s",
    "outcome",
    "qos",
    "queue",
];

/// Prefix of `extra` columns.
pub const EXTRA_PREFIX: &str = "x_";

/// The name an outcome has in this CSV.
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Cancelled => "cancelled",
        Outcome::Unknown => "unknown",
    }
}

/// Parses an outcome name (case-insensitive; empty is unknown).
pub fn parse_outcome(s: &str) -> Option<Outcome> {
    let s = s.trim();
    [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Cancelled,
        Outcome::Unknown,
    ]
    .into_iter()
    .find(|o| outcome_name(*o).eq_ignore_ascii_case(s))
    .or(if s.is_empty() {
        Some(Outcome::Unknown)
    } else {
        None
    })
}

#[derive(Debug, Default)]
struct Cols {
    id: usize,
    tenant: usize,
    submit: usize,
    project: Option<usize>,
    job_name: Option<usize>,
    branch: Option<usize>,
    labels: Option<usize>,
    slots: Option<usize>,
    requested: Option<usize>,
    wait: Option<usize>,
    run: Option<usize>,
    outcome: Option<usize>,
    qos: Option<usize>,
    queue: Option<usize>,
    extra: Vec<(usize, String)>,
}

/// Streaming reader of a `JobRecord` CSV, in file order. After a bad row it continues with
/// the next; after a read error it stops.
pub struct JobCsvReader {
    csv: CsvInput,
    cols: Cols,
    done: bool,
}

impl std::fmt::Debug for JobCsvReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCsvReader")
            .field("file", &self.csv.name)
            .field("line", &self.csv.line)
            .finish_non_exhaustive()
    }
}

impl JobCsvReader {
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        let csv = CsvInput::open(path)?;
        let cols = Cols {
            id: csv.require("id")?,
            tenant: csv.require("tenant")?,
            submit: csv.require("submit_s")?,
            project: csv.column("project"),
            job_name: csv.column("job_name"),
            branch: csv.column("branch"),
            labels: csv.column("labels"),
            slots: csv.column("slots"),
            requested: csv.column("requested_s"),
            wait: csv.column("wait_s"),
            run: csv.column("run_s"),
            outcome: csv.column("outcome"),
            qos: csv.column("qos"),
            queue: csv.column("queue"),
            extra: csv
                .header
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    h.trim()
                        .strip_prefix(EXTRA_PREFIX)
                        .map(|name| (i, name.to_string()))
                })
                .collect(),
        };
        Ok(Self {
            csv,
            cols,
            done: false,
        })
    }

    fn opt_str(&self, col: Option<usize>) -> Option<String> {
        col.map(|i| self.csv.cell(i))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn opt_i64(&self, col: Option<usize>) -> Result<Option<i64>, DatasetError> {
        let Some(i) = col else { return Ok(None) };
        let s = self.csv.cell(i);
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<i64>()
            .map(Some)
            .map_err(|_| self.csv.bad(i, format!("{s:?} is not an integer")))
    }

    fn record(&self) -> Result<JobRecord, DatasetError> {
        let c = &self.cols;
        let csv = &self.csv;
        let id = csv.cell(c.id);
        if id.is_empty() {
            return Err(csv.bad(c.id, "empty id".to_string()));
        }
        let submit = self
            .opt_i64(Some(c.submit))?
            .ok_or_else(|| csv.bad(c.submit, "empty submit time".to_string()))?;
        let mut rec = JobRecord::new(id, csv.cell(c.tenant), submit);
        rec.project = self.opt_str(c.project);
        rec.job_name = self.opt_str(c.job_name);
        rec.branch = self.opt_str(c.branch);
        rec.qos = self.opt_str(c.qos);
        rec.queue = self.opt_str(c.queue);
        if let Some(i) = c.labels {
            rec.labels = csv
                .cell(i)
                .split(';')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(i) = c.slots {
            let s = csv.cell(i);
            if !s.is_empty() {
                rec.slots = s.parse::<u32>().map_err(|_| {
                    csv.bad(i, format!("{s:?} is not a slot count (0 to {})", u32::MAX))
                })?;
            }
        }
        rec.requested_s = self.opt_i64(c.requested)?;
        rec.wait_s = self.opt_i64(c.wait)?;
        rec.run_s = self.opt_i64(c.run)?;
        if let Some(i) = c.outcome {
            let s = csv.cell(i);
            rec.outcome = parse_outcome(s).ok_or_else(|| {
                csv.bad(
                    i,
                    format!("{s:?} is not one of success, failure, cancelled, unknown"),
                )
            })?;
        }
        for (i, name) in &c.extra {
            let s = csv.cell(*i);
            if s.is_empty() {
                continue;
            }
            let v = s
                .parse::<f64>()
                .map_err(|_| csv.bad(*i, format!("{s:?} is not a number")))?;
            rec.extra.insert(name.clone(), v);
        }
        Ok(rec)
    }
}

impl Iterator for JobCsvReader {
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

/// Opens a `JobRecord` CSV as a streaming trace (file order; `TraceMeta` empty).
pub fn open_jobcsv(path: &Path) -> Result<Trace, DatasetError> {
    let reader = JobCsvReader::open(path)?;
    Ok(Trace::new(TraceMeta::default(), TraceFormat::Csv, reader))
}

/// Reads a whole `JobRecord` CSV, stopping at the first error.
pub fn read_jobcsv(path: &Path) -> Result<Vec<JobRecord>, DatasetError> {
    JobCsvReader::open(path)?.collect()
}

enum Sink {
    Plain(BufWriter<File>),
    Gz(GzEncoder<BufWriter<File>>),
    Other(Box<dyn Write + Send>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gz(w) => w.write(buf),
            Sink::Other(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gz(w) => w.flush(),
            Sink::Other(w) => w.flush(),
        }
    }
}

/// Writes `JobRecord`s as CSV. The `extra` columns are fixed when the writer is made;
/// writing a record with an extra key not among them is an error. Call
/// [`JobCsvWriter::finish`] to flush (and end the gzip stream).
pub struct JobCsvWriter {
    w: csv::Writer<Sink>,
    target: String,
    extra_keys: Vec<String>,
    row: Vec<String>,
}

impl std::fmt::Debug for JobCsvWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCsvWriter")
            .field("target", &self.target)
            .field("extra_keys", &self.extra_keys)
            .finish_non_exhaustive()
    }
}

/// The sorted union of the `extra` keys of `records`.
pub fn extra_keys<'a>(records: impl IntoIterator<Item = &'a JobRecord>) -> Vec<String> {
    let set: BTreeSet<&str> = records
        .into_iter()
        .flat_map(|r| r.extra.keys().map(String::as_str))
        .collect();
    set.into_iter().map(str::to_string).collect()
}

impl JobCsvWriter {
    /// Creates `path` (gzip if it ends in `.gz`) and writes the header.
    pub fn create(path: &Path, extra_keys: &[String]) -> Result<Self, DatasetError> {
        let target = path.display().to_string();
        let file = File::create(path).map_err(|source| DatasetError::Open {
            path: target.clone(),
            source,
        })?;
        let buf = BufWriter::with_capacity(256 * 1024, file);
        let sink = if crate::input::name_ends_with(path, ".gz") {
            Sink::Gz(GzEncoder::new(buf, Compression::default()))
        } else {
            Sink::Plain(buf)
        };
        Self::with_sink(sink, target, extra_keys)
    }

    /// Writes to any writer; `target` names it in errors.
    pub fn from_writer(
        w: Box<dyn Write + Send>,
        target: impl Into<String>,
        extra_keys: &[String],
    ) -> Result<Self, DatasetError> {
        Self::with_sink(Sink::Other(w), target.into(), extra_keys)
    }

    fn with_sink(sink: Sink, target: String, extra_keys: &[String]) -> Result<Self, DatasetError> {
        let mut w = Self {
            w: csv::WriterBuilder::new().from_writer(sink),
            target,
            extra_keys: extra_keys.to_vec(),
            row: Vec::with_capacity(COLUMNS.len() + extra_keys.len()),
        };
        let header: Vec<String> = COLUMNS
            .iter()
            .map(|c| c.to_string())
            .chain(extra_keys.iter().map(|k| format!("{EXTRA_PREFIX}{k}")))
            .collect();
        w.w.write_record(&header).map_err(|e| w.csv_err(e))?;
        Ok(w)
    }

    fn csv_err(&self, e: csv::Error) -> DatasetError {
        let source = match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            other => io::Error::other(format!("{other:?}")),
        };
        DatasetError::Write {
            target: self.target.clone(),
            source,
        }
    }

    pub fn write(&mut self, r: &JobRecord) -> Result<(), DatasetError> {
        if let Some(k) = r.extra.keys().find(|k| !self.extra_keys.contains(k)) {
            return Err(DatasetError::Write {
                target: self.target.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "record {}: extra key {k:?} has no column (the writer was made with {:?})",
                        r.id, self.extra_keys
                    ),
                ),
            });
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let num = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        self.row.clear();
        self.row.extend([
            r.id.clone(),
            r.tenant.clone(),
            opt(&r.project),
            opt(&r.job_name),
            opt(&r.branch),
            r.labels.join(";"),
            r.slots.to_string(),
            num(r.requested_s),
            r.submit_s.to_string(),
            num(r.wait_s),
            num(r.run_s),
            outcome_name(r.outcome).to_string(),
            opt(&r.qos),
            opt(&r.queue),
        ]);
        for k in &self.extra_keys {
            self.row
                .push(r.extra.get(k).map(|v| v.to_string()).unwrap_or_default());
        }
        let res = self.w.write_record(&self.row);
        res.map_err(|e| self.csv_err(e))
    }

    /// Flushes everything and ends a gzip stream.
    pub fn finish(self) -> Result<(), DatasetError> {
        let target = self.target.clone();
        let werr = |source: io::Error| DatasetError::Write {
            target: target.clone(),
            source,
        };
        let sink = self
            .w
            .into_inner()
            .map_err(|e| werr(io::Error::other(e.error().to_string())))?;
        match sink {
            Sink::Plain(mut w) => w.flush().map_err(werr),
            Sink::Gz(w) => w.finish().and_then(|mut b| b.flush()).map_err(werr),
            Sink::Other(mut w) => w.flush().map_err(werr),
        }
    }
}

/// Writes `records` to `path` (gzip if `.gz`) with every extra key as a column.
pub fn write_jobcsv(path: &Path, records: &[JobRecord]) -> Result<(), DatasetError> {
    let mut w = JobCsvWriter::create(path, &extra_keys(records))?;
    for r in records {
        w.write(r)?;
    }
    w.finish()
}
