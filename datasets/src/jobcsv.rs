//! The plain `JobRecord` CSV: this project's own interchange format.
//!
//! Header: [`COLUMNS`] (`id,tenant,project,job_name,branch,labels,slots,requested_s,
//! submit_s,wait_s,run_s,outcome,qos,queue`), then, when the trace has pipelines,
//! [`PIPELINE_COLUMNS`] (`pipeline_id,pipeline_created_s,stage,stage_index,needs,when,
//! allow_failure,interruptible,group`), then one `x_<name>` column per `extra` key.
//!
//! * An empty cell is `None` (so `Some("")` is written as, and read back as, `None`).
//! * `labels` are joined with `;` (labels must not contain `;`; empty labels are dropped).
//! * `outcome` is `success`, `failure`, `cancelled`, `skipped`, `manual` or `unknown`
//!   (empty: unknown).
//! * `slots` empty means 1.
//! * An empty `x_` cell means the record has no such extra value.
//! * Pipeline columns: an empty `pipeline_id` means the job has no pipeline (and then
//!   every other pipeline cell must be empty); otherwise `pipeline_created_s` and
//!   `stage_index` are required. `needs` is a JSON array of job names in one cell
//!   (names hold commas, brackets and quotes), `[]` for none and empty for GitLab's
//!   stage rule (`None`). `when` is `on_success` (also when empty), `on_failure`,
//!   `always` or `manual`; `allow_failure` and `interruptible` are `true` or `false`
//!   (empty: false); an empty `group` is `None`.
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
use crate::record::{on_clock, printable, JobRecord, Outcome, PipelineRef, TraceMeta, When};
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

/// The pipeline columns, in order, written after [`COLUMNS`] when a [`Layout`] has
/// pipelines.
pub const PIPELINE_COLUMNS: [&str; 9] = [
    "pipeline_id",
    "pipeline_created_s",
    "stage",
    "stage_index",
    "needs",
    "when",
    "allow_failure",
    "interruptible",
    "group",
];

/// Prefix of `extra` columns.
pub const EXTRA_PREFIX: &str = "x_";

/// The name an outcome has in this CSV.
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Cancelled => "cancelled",
        Outcome::Skipped => "skipped",
        Outcome::Manual => "manual",
        Outcome::Unknown => "unknown",
    }
}

/// Every outcome, in the order their names are listed in errors.
const OUTCOMES: [Outcome; 6] = [
    Outcome::Success,
    Outcome::Failure,
    Outcome::Cancelled,
    Outcome::Skipped,
    Outcome::Manual,
    Outcome::Unknown,
];

/// Parses an outcome name (case-insensitive; empty is unknown).
pub fn parse_outcome(s: &str) -> Option<Outcome> {
    let s = s.trim();
    OUTCOMES
        .into_iter()
        .find(|o| outcome_name(*o).eq_ignore_ascii_case(s))
        .or(if s.is_empty() {
            Some(Outcome::Unknown)
        } else {
            None
        })
}

/// [`parse_outcome`], or why not (the names it takes), for a reader's error.
pub fn outcome_from_name(s: &str) -> Result<Outcome, String> {
    parse_outcome(s).ok_or_else(|| {
        let names: Vec<&str> = OUTCOMES.iter().map(|o| outcome_name(*o)).collect();
        format!("{s:?} is not one of {}", names.join(", "))
    })
}

/// The pipeline columns of a header; `None` when it has no `pipeline_id`.
#[derive(Debug)]
struct PipelineCols {
    id: usize,
    created: Option<usize>,
    stage: Option<usize>,
    stage_index: Option<usize>,
    needs: Option<usize>,
    when: Option<usize>,
    allow_failure: Option<usize>,
    interruptible: Option<usize>,
    group: Option<usize>,
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
    pipeline: Option<PipelineCols>,
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
            pipeline: csv.column("pipeline_id").map(|id| PipelineCols {
                id,
                created: csv.column("pipeline_created_s"),
                stage: csv.column("stage"),
                stage_index: csv.column("stage_index"),
                needs: csv.column("needs"),
                when: csv.column("when"),
                allow_failure: csv.column("allow_failure"),
                interruptible: csv.column("interruptible"),
                group: csv.column("group"),
            }),
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

    /// A time or duration column (seconds): an integer the clock takes ([`on_clock`]).
    fn opt_time(&self, col: Option<usize>) -> Result<Option<i64>, DatasetError> {
        match (col, self.opt_i64(col)?) {
            (Some(i), Some(v)) => on_clock(v).map(Some).map_err(|m| self.csv.bad(i, m)),
            _ => Ok(None),
        }
    }

    /// A name, label or class cell: [`printable`].
    fn check_text(&self, col: usize) -> Result<(), DatasetError> {
        printable(self.csv.cell(col))
            .map(|_| ())
            .map_err(|m| self.csv.bad(col, m))
    }

    fn record(&self) -> Result<JobRecord, DatasetError> {
        let c = &self.cols;
        let csv = &self.csv;
        let id = csv.cell(c.id);
        if id.is_empty() {
            return Err(csv.bad(c.id, "empty id".to_string()));
        }
        for col in [Some(c.id), Some(c.tenant), c.project, c.job_name, c.branch]
            .into_iter()
            .chain([c.qos, c.queue, c.labels])
            .flatten()
        {
            self.check_text(col)?;
        }
        let submit = self
            .opt_time(Some(c.submit))?
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
        rec.requested_s = self.opt_time(c.requested)?;
        rec.wait_s = self.opt_time(c.wait)?;
        rec.run_s = self.opt_time(c.run)?;
        if let Some(i) = c.outcome {
            let s = csv.cell(i);
            rec.outcome = outcome_from_name(s).map_err(|m| csv.bad(i, m))?;
        }
        rec.pipeline = self.pipeline()?;
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

impl JobCsvReader {
    fn flag(&self, col: Option<usize>) -> Result<bool, DatasetError> {
        let Some(i) = col else { return Ok(false) };
        match self.csv.cell(i) {
            "" => Ok(false),
            s if s.eq_ignore_ascii_case("true") => Ok(true),
            s if s.eq_ignore_ascii_case("false") => Ok(false),
            s => Err(self.csv.bad(i, format!("{s:?} is not true or false"))),
        }
    }

    fn pipeline(&self) -> Result<Option<PipelineRef>, DatasetError> {
        let Some(p) = &self.cols.pipeline else {
            return Ok(None);
        };
        let csv = &self.csv;
        let id = csv.cell(p.id);
        let others = [
            p.created,
            p.stage,
            p.stage_index,
            p.needs,
            p.when,
            p.allow_failure,
            p.interruptible,
            p.group,
        ];
        if id.is_empty() {
            if let Some(i) = others
                .into_iter()
                .flatten()
                .find(|&i| !csv.cell(i).is_empty())
            {
                return Err(csv.bad(i, "set, but pipeline_id is empty".to_string()));
            }
            return Ok(None);
        }
        let required = |col: Option<usize>, name: &str| {
            col.filter(|&i| !csv.cell(i).is_empty())
                .ok_or_else(|| DatasetError::BadValue {
                    at: csv.at(),
                    column: name.to_string(),
                    message: format!("empty or missing, but pipeline_id is {id:?}"),
                })
        };
        let created = required(p.created, "pipeline_created_s")?;
        let created_s = self
            .opt_time(Some(created))?
            .ok_or_else(|| csv.bad(created, "empty".to_string()))?;
        let index = required(p.stage_index, "stage_index")?;
        let s = csv.cell(index);
        let stage_index = s.parse::<u32>().map_err(|_| {
            csv.bad(
                index,
                format!("{s:?} is not a stage index (0 to {})", u32::MAX),
            )
        })?;
        let mut pipe = PipelineRef::new(
            id,
            created_s,
            self.opt_str(p.stage).unwrap_or_default(),
            stage_index,
        );
        if let Some(i) = p.needs.filter(|&i| !csv.cell(i).is_empty()) {
            let needs: Vec<String> =
                serde_json::from_str(csv.cell(i)).map_err(|source| DatasetError::Json {
                    at: csv.at(),
                    column: "needs".to_string(),
                    source,
                })?;
            pipe.needs = Some(needs);
        }
        if let Some(i) = p.when.filter(|&i| !csv.cell(i).is_empty()) {
            let s = csv.cell(i);
            pipe.when = When::from_name(s).map_err(|m| csv.bad(i, m))?;
        }
        pipe.allow_failure = self.flag(p.allow_failure)?;
        pipe.interruptible = self.flag(p.interruptible)?;
        pipe.group = self.opt_str(p.group);
        Ok(Some(pipe))
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
    // Boxed: with polars' zlib-rs backend (feature `parquet`) the encoder is 264 bytes.
    Gz(Box<GzEncoder<BufWriter<File>>>),
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

/// The columns a [`JobCsvWriter`] writes besides [`COLUMNS`]: the `extra` keys, and
/// whether the [`PIPELINE_COLUMNS`] are there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub extra_keys: Vec<String>,
    pub pipelines: bool,
}

impl Layout {
    /// The columns `records` need: every extra key, and the pipeline columns if any
    /// record has a pipeline.
    pub fn of(records: &[JobRecord]) -> Self {
        Self {
            extra_keys: extra_keys(records),
            pipelines: records.iter().any(|r| r.pipeline.is_some()),
        }
    }
}

/// Writes `JobRecord`s as CSV. The columns are fixed when the writer is made (a
/// [`Layout`]); writing a record with an extra key not among them, or with a pipeline
/// when the layout has no pipeline columns, is an error. Call [`JobCsvWriter::finish`]
/// to flush (and end the gzip stream).
pub struct JobCsvWriter {
    w: csv::Writer<Sink>,
    target: String,
    layout: Layout,
    row: Vec<String>,
}

impl std::fmt::Debug for JobCsvWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCsvWriter")
            .field("target", &self.target)
            .field("layout", &self.layout)
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
    pub fn create(path: &Path, layout: &Layout) -> Result<Self, DatasetError> {
        let target = path.display().to_string();
        let file = File::create(path).map_err(|source| DatasetError::Open {
            path: target.clone(),
            source,
        })?;
        let buf = BufWriter::with_capacity(256 * 1024, file);
        let sink = if crate::input::name_ends_with(path, ".gz") {
            Sink::Gz(Box::new(GzEncoder::new(buf, Compression::default())))
        } else {
            Sink::Plain(buf)
        };
        Self::with_sink(sink, target, layout)
    }

    /// Writes to any writer; `target` names it in errors.
    pub fn from_writer(
        w: Box<dyn Write + Send>,
        target: impl Into<String>,
        layout: &Layout,
    ) -> Result<Self, DatasetError> {
        Self::with_sink(Sink::Other(w), target.into(), layout)
    }

    fn with_sink(sink: Sink, target: String, layout: &Layout) -> Result<Self, DatasetError> {
        let pipeline_columns: &[&str] = if layout.pipelines {
            &PIPELINE_COLUMNS
        } else {
            &[]
        };
        let header: Vec<String> = COLUMNS
            .iter()
            .chain(pipeline_columns)
            .map(|c| c.to_string())
            .chain(
                layout
                    .extra_keys
                    .iter()
                    .map(|k| format!("{EXTRA_PREFIX}{k}")),
            )
            .collect();
        let mut w = Self {
            w: csv::WriterBuilder::new().from_writer(sink),
            target,
            layout: layout.clone(),
            row: Vec::with_capacity(header.len()),
        };
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

    fn invalid(&self, message: String) -> DatasetError {
        DatasetError::Write {
            target: self.target.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, message),
        }
    }

    pub fn write(&mut self, r: &JobRecord) -> Result<(), DatasetError> {
        if let Some(k) = r.extra.keys().find(|k| !self.layout.extra_keys.contains(k)) {
            return Err(self.invalid(format!(
                "record {}: extra key {k:?} has no column (the writer was made with {:?})",
                r.id, self.layout.extra_keys
            )));
        }
        if r.pipeline.is_some() && !self.layout.pipelines {
            return Err(self.invalid(format!(
                "record {}: has a pipeline, but the writer was made without pipeline columns",
                r.id
            )));
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
        if self.layout.pipelines {
            self.push_pipeline(r)?;
        }
        for k in &self.layout.extra_keys {
            self.row
                .push(r.extra.get(k).map(|v| v.to_string()).unwrap_or_default());
        }
        let res = self.w.write_record(&self.row);
        res.map_err(|e| self.csv_err(e))
    }

    fn push_pipeline(&mut self, r: &JobRecord) -> Result<(), DatasetError> {
        let Some(p) = &r.pipeline else {
            self.row
                .extend(std::iter::repeat_n(String::new(), PIPELINE_COLUMNS.len()));
            return Ok(());
        };
        if p.id.is_empty() {
            return Err(self.invalid(format!("record {}: empty pipeline id", r.id)));
        }
        let needs = match &p.needs {
            None => String::new(),
            Some(names) => serde_json::to_string(names)
                .map_err(|e| self.invalid(format!("record {}: needs: {e}", r.id)))?,
        };
        self.row.extend([
            p.id.clone(),
            p.created_s.to_string(),
            p.stage.clone(),
            p.stage_index.to_string(),
            needs,
            p.when.name().to_string(),
            p.allow_failure.to_string(),
            p.interruptible.to_string(),
            p.group.clone().unwrap_or_default(),
        ]);
        Ok(())
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

/// Writes `records` to `path` (gzip if `.gz`) with the columns they need
/// ([`Layout::of`]).
pub fn write_jobcsv(path: &Path, records: &[JobRecord]) -> Result<(), DatasetError> {
    let mut w = JobCsvWriter::create(path, &Layout::of(records))?;
    for r in records {
        w.write(r)?;
    }
    w.finish()
}
