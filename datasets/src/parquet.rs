//! `JobRecord`s as Parquet (feature `parquet`, through polars): what pandas, polars,
//! DuckDB and Spark read. One row per record; the columns are [`COLUMNS`] (always all of
//! them, so every file rustci writes has one schema), then one `extra.<key>` Float64
//! column per `extra` key of the records written.
//!
//! | column | type | null | meaning |
//! |---|---|---|---|
//! | `id` | String | no | the trace's job id |
//! | `tenant` | String | no | who is charged |
//! | `project`, `job_name`, `branch` | String | yes | |
//! | `labels` | List(String) | no (`[]`) | runner labels the job requires |
//! | `slots` | UInt32 | no | slots (processors) the job occupies |
//! | `requested_s` | Int64 | yes | the user's run-time estimate, s |
//! | `submit_s` | Int64 | no | submit time, s |
//! | `wait_s`, `run_s` | Int64 | yes | recorded wait and run time, s |
//! | `outcome` | String | no | `success`, `failure`, `cancelled`, `skipped`, `manual`, `unknown` |
//! | `qos`, `queue` | String | yes | |
//! | `pipeline.id` | String | yes | null: the job has no pipeline (then every `pipeline.*` is null) |
//! | `pipeline.created_s` | Int64 | with `pipeline.id` | |
//! | `pipeline.stage` | String | with `pipeline.id` | |
//! | `pipeline.stage_index` | UInt32 | with `pipeline.id` | |
//! | `pipeline.needs` | List(String) | yes | null: every earlier stage (GitLab's rule); `[]`: none |
//! | `pipeline.when` | String | with `pipeline.id` | `on_success`, `on_failure`, `always`, `manual` |
//! | `pipeline.allow_failure`, `pipeline.interruptible` | Boolean | with `pipeline.id` | |
//! | `pipeline.group` | String | yes | concurrency group; null: project and branch |
//! | `extra.<key>` | Float64 | yes | null: the record has no such key |
//!
//! `extra` is one column per key rather than a map or a list of structs: a trace has a
//! handful of keys, the same for every record (TravisTorrent's churn and test counts), and
//! plain Float64 columns are what a notebook filters and plots without unpacking anything.
//!
//! Reading needs only `id`, `tenant` and `submit_s` (present, never null); every other
//! known column is optional (absent or null: `None`, no labels, 1 slot, `unknown`), and
//! columns neither known nor `extra.` are ignored (a simulated history's extra columns,
//! say). Types are checked against the schema before any row is read: a wrong one is
//! [`DatasetError::ColumnType`] naming the file, the column, the type expected and the one
//! found. Integer columns also take the other integer types polars reads (Int32, UInt32,
//! Int64), checked by value, so pandas' int64 `slots` is fine. Values are checked as the
//! CSV reader checks them (times on the clock, no control characters in names, known
//! outcomes); an error names the file, the row index (0-based, as pandas shows it) and
//! the column.
//!
//! The reader streams: it reads one row group at a time (the writer makes groups of
//! [`ROW_GROUP`] rows), so memory holds one group's columns and records, not the file.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use polars::prelude::*;

use crate::error::DatasetError;
use crate::jobcsv::{extra_keys, outcome_from_name, outcome_name};
use crate::record::{on_clock, printable, JobRecord, PipelineRef, TraceMeta, When};
use crate::{Trace, TraceFormat};

/// Rows per row group the writer makes (and so per read of the streaming reader).
pub const ROW_GROUP: usize = 65_536;

/// Prefix of the `extra` columns.
pub const EXTRA_PREFIX: &str = "extra.";

/// The type of a column of the schema, as the reader checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    TextList,
    /// Int64, or an integer type that widens to it.
    Int,
    /// UInt32, or an integer type checked by value.
    Count,
    Bool,
}

impl Kind {
    /// The type the writer uses, as errors name it.
    fn name(self) -> &'static str {
        match self {
            Self::Text => "String",
            Self::TextList => "List(String)",
            Self::Int => "Int64",
            Self::Count => "UInt32",
            Self::Bool => "Boolean",
        }
    }

    fn accepts(self, dt: &DataType) -> bool {
        match self {
            Self::Text => matches!(dt, DataType::String),
            Self::TextList => matches!(dt, DataType::List(inner) if **inner == DataType::String),
            Self::Int | Self::Count => {
                matches!(dt, DataType::Int64 | DataType::Int32 | DataType::UInt32)
            }
            Self::Bool => matches!(dt, DataType::Boolean),
        }
    }
}

/// The fixed columns, in the order they are written, with their kinds.
pub const COLUMNS: [(&str, Kind); 23] = [
    ("id", Kind::Text),
    ("tenant", Kind::Text),
    ("project", Kind::Text),
    ("job_name", Kind::Text),
    ("branch", Kind::Text),
    ("labels", Kind::TextList),
    ("slots", Kind::Count),
    ("requested_s", Kind::Int),
    ("submit_s", Kind::Int),
    ("wait_s", Kind::Int),
    ("run_s", Kind::Int),
    ("outcome", Kind::Text),
    ("qos", Kind::Text),
    ("queue", Kind::Text),
    ("pipeline.id", Kind::Text),
    ("pipeline.created_s", Kind::Int),
    ("pipeline.stage", Kind::Text),
    ("pipeline.stage_index", Kind::Count),
    ("pipeline.needs", Kind::TextList),
    ("pipeline.when", Kind::Text),
    ("pipeline.allow_failure", Kind::Bool),
    ("pipeline.interruptible", Kind::Bool),
    ("pipeline.group", Kind::Text),
];

/// The columns a file must have.
pub const REQUIRED: [&str; 3] = ["id", "tenant", "submit_s"];

fn polars_err(path: &str) -> impl Fn(PolarsError) -> DatasetError + '_ {
    move |source| DatasetError::Parquet {
        path: path.to_string(),
        source,
    }
}

// ---------------------------------------------------------------------------------------
// Writing

/// Writes `JobRecord`s as Parquet, one row group per [`ROW_GROUP`] records. The `extra`
/// columns are fixed when the writer is made; a record with another key is an error. Call
/// [`ParquetJobWriter::finish`] to write the footer: a file without one is not Parquet.
pub struct ParquetJobWriter {
    w: BatchedWriter<Shared>,
    /// The file, also held by `w`, which never flushes it.
    file: Shared,
    target: String,
    extra_keys: Vec<String>,
}

impl std::fmt::Debug for ParquetJobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetJobWriter")
            .field("target", &self.target)
            .field("extra_keys", &self.extra_keys)
            .finish_non_exhaustive()
    }
}

impl ParquetJobWriter {
    /// Creates `path` for records whose `extra` keys are among `extra_keys`, their submit
    /// times counted from `unix_start` (the trace's epoch, kept in the file's metadata
    /// under [`UNIX_START_KEY`]; `None`: unknown).
    pub fn create(
        path: &Path,
        extra_keys: &[String],
        unix_start: Option<i64>,
    ) -> Result<Self, DatasetError> {
        let target = path.display().to_string();
        let file = File::create(path).map_err(|source| DatasetError::Open {
            path: target.clone(),
            source,
        })?;
        let schema = frame(&[], extra_keys)
            .map_err(polars_err(&target))?
            .schema()
            .as_ref()
            .clone();
        let file = Shared(Arc::new(Mutex::new(BufWriter::with_capacity(
            256 * 1024,
            file,
        ))));
        let w = ParquetWriter::new(file.clone())
            .with_compression(ParquetCompression::Zstd(None))
            .with_key_value_metadata(Some(file_metadata(&schema, unix_start)))
            .batched(&schema)
            .map_err(polars_err(&target))?;
        Ok(Self {
            w,
            file,
            target,
            extra_keys: extra_keys.to_vec(),
        })
    }

    /// Writes `records`, [`ROW_GROUP`] at a time.
    pub fn write_all(&mut self, records: &[JobRecord]) -> Result<(), DatasetError> {
        for r in records {
            if let Some(k) = r.extra.keys().find(|k| !self.extra_keys.contains(k)) {
                return Err(DatasetError::Write {
                    target: self.target.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "record {}: extra key {k:?} has no column (the writer was made \
                             with {:?})",
                            r.id, self.extra_keys
                        ),
                    ),
                });
            }
        }
        for chunk in records.chunks(ROW_GROUP) {
            let df = frame(chunk, &self.extra_keys).map_err(polars_err(&self.target))?;
            self.w.write_batch(&df).map_err(polars_err(&self.target))?;
        }
        Ok(())
    }

    /// Writes the footer and flushes the file.
    pub fn finish(self) -> Result<(), DatasetError> {
        self.w.finish().map_err(polars_err(&self.target))?;
        let mut file = self.file.clone();
        file.flush().map_err(|source| DatasetError::Write {
            target: self.target.clone(),
            source,
        })
    }
}

/// The output file, shared between polars' writer (which never flushes it) and
/// [`ParquetJobWriter::finish`], which does.
#[derive(Clone)]
struct Shared(Arc<Mutex<BufWriter<File>>>);

impl Shared {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut w = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("a writer thread panicked"))?;
        f(&mut w)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.with(|w| w.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.with(|w| w.write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.with(|w| w.flush())
    }
}

/// The Arrow schema to write into the file's metadata: the oldest compatible types
/// (`large_string`, not `string_view`). polars writes its newest ones, and pandas (through
/// pyarrow) cannot turn a list of `string_view` into a column; the pages are the same
/// either way.
fn arrow_schema_of(schema: &Schema) -> KeyValueMetadata {
    file_metadata(schema, None)
}

/// The key of a `JobRecord` file's metadata that holds its trace's epoch (Unix seconds
/// at `submit_s` 0), so that histories on one clock can be merged (`rustci retrain
/// --from STORE --from export.parquet`) and others refused.
pub const UNIX_START_KEY: &str = "rustci.unix_start";

/// The file's key-value metadata: the Arrow schema, and the epoch when known.
fn file_metadata(schema: &Schema, unix_start: Option<i64>) -> KeyValueMetadata {
    let kv = polars_parquet::write::schema_to_metadata_key(&schema.to_arrow(CompatLevel::oldest()));
    let mut pairs = vec![(kv.key, kv.value.unwrap_or_default())];
    if let Some(t) = unix_start {
        pairs.push((UNIX_START_KEY.to_string(), t.to_string()));
    }
    KeyValueMetadata::from_static(pairs)
}

/// Writes `records` to `path` as Parquet, with one `extra.` column per key any of them
/// has; their clock's epoch unknown.
pub fn write_parquet(path: &Path, records: &[JobRecord]) -> Result<(), DatasetError> {
    write_trace_parquet(path, records, None)
}

/// [`write_parquet`] for records whose submit times count from `unix_start`.
pub fn write_trace_parquet(
    path: &Path,
    records: &[JobRecord],
    unix_start: Option<i64>,
) -> Result<(), DatasetError> {
    let mut w = ParquetJobWriter::create(path, &extra_keys(records), unix_start)?;
    w.write_all(records)?;
    w.finish()
}

fn text<'a>(name: &str, values: impl Iterator<Item = Option<&'a str>>) -> Column {
    Series::new(name.into(), values.collect::<Vec<_>>()).into_column()
}

fn text_list<'a>(
    name: &str,
    rows: usize,
    values: impl Iterator<Item = Option<&'a [String]>>,
) -> Column {
    let mut b = ListStringChunkedBuilder::new(name.into(), rows, rows * 2);
    for v in values {
        match v {
            Some(list) => b.append_values_iter(list.iter().map(String::as_str)),
            None => b.append_null(),
        }
    }
    b.finish().into_series().into_column()
}

fn int(name: &str, values: impl Iterator<Item = Option<i64>>) -> Column {
    Series::new(name.into(), values.collect::<Vec<_>>()).into_column()
}

/// The records as one data frame of the schema.
fn frame(records: &[JobRecord], extra_keys: &[String]) -> PolarsResult<DataFrame> {
    let n = records.len();
    let pipe = || records.iter().map(|r| r.pipeline.as_ref());
    let mut cols = vec![
        text("id", records.iter().map(|r| Some(r.id.as_str()))),
        text("tenant", records.iter().map(|r| Some(r.tenant.as_str()))),
        text("project", records.iter().map(|r| r.project.as_deref())),
        text("job_name", records.iter().map(|r| r.job_name.as_deref())),
        text("branch", records.iter().map(|r| r.branch.as_deref())),
        text_list("labels", n, records.iter().map(|r| Some(&r.labels[..]))),
        Series::new(
            "slots".into(),
            records.iter().map(|r| r.slots).collect::<Vec<u32>>(),
        )
        .into_column(),
        int("requested_s", records.iter().map(|r| r.requested_s)),
        int("submit_s", records.iter().map(|r| Some(r.submit_s))),
        int("wait_s", records.iter().map(|r| r.wait_s)),
        int("run_s", records.iter().map(|r| r.run_s)),
        text(
            "outcome",
            records.iter().map(|r| Some(outcome_name(r.outcome))),
        ),
        text("qos", records.iter().map(|r| r.qos.as_deref())),
        text("queue", records.iter().map(|r| r.queue.as_deref())),
        text("pipeline.id", pipe().map(|p| p.map(|p| p.id.as_str()))),
        int("pipeline.created_s", pipe().map(|p| p.map(|p| p.created_s))),
        text(
            "pipeline.stage",
            pipe().map(|p| p.map(|p| p.stage.as_str())),
        ),
        Series::new(
            "pipeline.stage_index".into(),
            pipe()
                .map(|p| p.map(|p| p.stage_index))
                .collect::<Vec<Option<u32>>>(),
        )
        .into_column(),
        text_list(
            "pipeline.needs",
            n,
            pipe().map(|p| p.and_then(|p| p.needs.as_deref())),
        ),
        text("pipeline.when", pipe().map(|p| p.map(|p| p.when.name()))),
        Series::new(
            "pipeline.allow_failure".into(),
            pipe()
                .map(|p| p.map(|p| p.allow_failure))
                .collect::<Vec<Option<bool>>>(),
        )
        .into_column(),
        Series::new(
            "pipeline.interruptible".into(),
            pipe()
                .map(|p| p.map(|p| p.interruptible))
                .collect::<Vec<Option<bool>>>(),
        )
        .into_column(),
        text(
            "pipeline.group",
            pipe().map(|p| p.and_then(|p| p.group.as_deref())),
        ),
    ];
    for k in extra_keys {
        cols.push(
            Series::new(
                format!("{EXTRA_PREFIX}{k}").into(),
                records
                    .iter()
                    .map(|r| r.extra.get(k).copied())
                    .collect::<Vec<Option<f64>>>(),
            )
            .into_column(),
        );
    }
    DataFrame::new(n, cols)
}

// ---------------------------------------------------------------------------------------
// Reading

/// Streaming reader of a `JobRecord` Parquet file, in file order, one row group at a
/// time. After an error it stops.
pub struct ParquetJobReader {
    path: PathBuf,
    name: String,
    metadata: FileMetadataRef,
    /// The known columns the file has (index into [`COLUMNS`]) and the extra keys.
    present: Vec<usize>,
    extra: Vec<String>,
    /// Row groups as (first row, rows).
    groups: Vec<(usize, usize)>,
    next_group: usize,
    buf: std::vec::IntoIter<JobRecord>,
    done: bool,
}

impl std::fmt::Debug for ParquetJobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetJobReader")
            .field("file", &self.name)
            .field("next_group", &self.next_group)
            .finish_non_exhaustive()
    }
}

/// Refuses a file that is not Parquet (too short, or without `PAR1` at both ends) with
/// an error that says so, before polars sees it.
fn check_magic(path: &Path, name: &str) -> Result<(), DatasetError> {
    let not = |message: String| DatasetError::NotParquet {
        path: name.to_string(),
        message,
    };
    let mut f = File::open(path).map_err(|source| DatasetError::Open {
        path: name.to_string(),
        source,
    })?;
    let io = |source| DatasetError::Io {
        at: crate::Location::new(name, None),
        source,
    };
    let len = f.metadata().map_err(io)?.len();
    if len < 12 {
        return Err(not(format!(
            "{len} bytes, shorter than the smallest Parquet file"
        )));
    }
    let mut head = [0u8; 4];
    f.read_exact(&mut head).map_err(io)?;
    if &head != crate::PARQUET_MAGIC {
        return Err(not(format!(
            "it does not start with \"PAR1\" (starts with {head:?})"
        )));
    }
    let mut tail = [0u8; 4];
    f.seek(SeekFrom::End(-4)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    if &tail != crate::PARQUET_MAGIC {
        return Err(not(
            "it does not end with \"PAR1\" (truncated, or its writer never finished)".to_string(),
        ));
    }
    Ok(())
}

impl ParquetJobReader {
    /// Opens `path`, reads its footer and checks its schema.
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        let name = path.display().to_string();
        check_magic(path, &name)?;
        let file = File::open(path).map_err(|source| DatasetError::Open {
            path: name.clone(),
            source,
        })?;
        let mut reader = ParquetReader::new(file);
        let metadata = reader.get_metadata().map_err(polars_err(&name))?.clone();
        let schema = reader.schema().map_err(polars_err(&name))?;
        let mut present = Vec::new();
        let mut extra = Vec::new();
        for (i, &(col, kind)) in COLUMNS.iter().enumerate() {
            let Some(field) = schema.get(col) else {
                if REQUIRED.contains(&col) {
                    return Err(DatasetError::ParquetMissingColumn {
                        path: name,
                        column: col.to_string(),
                    });
                }
                continue;
            };
            let dt = DataType::from_arrow_field(field);
            if !kind.accepts(&dt) {
                return Err(DatasetError::ColumnType {
                    path: name,
                    column: col.to_string(),
                    expected: kind.name().to_string(),
                    found: format!("{dt:?}"),
                });
            }
            present.push(i);
        }
        for (col, field) in schema.iter() {
            let Some(key) = col.strip_prefix(EXTRA_PREFIX) else {
                continue;
            };
            let dt = DataType::from_arrow_field(field);
            if !matches!(
                dt,
                DataType::Float64 | DataType::Float32 | DataType::Int64 | DataType::Int32
            ) {
                return Err(DatasetError::ColumnType {
                    path: name,
                    column: col.to_string(),
                    expected: "Float64".to_string(),
                    found: format!("{dt:?}"),
                });
            }
            extra.push(key.to_string());
        }
        let mut groups = Vec::with_capacity(metadata.row_groups.len());
        let mut first = 0;
        for g in &metadata.row_groups {
            groups.push((first, g.num_rows()));
            first += g.num_rows();
        }
        Ok(Self {
            path: path.to_path_buf(),
            name,
            metadata,
            present,
            extra,
            groups,
            next_group: 0,
            buf: Vec::new().into_iter(),
            done: false,
        })
    }

    /// Rows in the file, from its footer.
    pub fn rows(&self) -> usize {
        self.metadata.num_rows
    }

    /// The trace's epoch the writer kept ([`UNIX_START_KEY`]); `None` when it wrote
    /// none (or not a number).
    pub fn unix_start(&self) -> Option<i64> {
        self.metadata
            .key_value_metadata
            .as_ref()?
            .iter()
            .find(|kv| kv.key == UNIX_START_KEY)?
            .value
            .as_deref()?
            .parse()
            .ok()
    }

    fn read_group(&self, (first, rows): (usize, usize)) -> Result<Vec<JobRecord>, DatasetError> {
        let file = File::open(&self.path).map_err(|source| DatasetError::Open {
            path: self.name.clone(),
            source,
        })?;
        let mut columns: Vec<String> = self
            .present
            .iter()
            .map(|&i| COLUMNS[i].0.to_string())
            .collect();
        columns.extend(self.extra.iter().map(|k| format!("{EXTRA_PREFIX}{k}")));
        let mut reader = ParquetReader::new(file)
            .with_columns(Some(columns))
            .with_slice(Some((first, rows)));
        reader.set_metadata(self.metadata.clone());
        let df = reader.finish().map_err(polars_err(&self.name))?;
        Rows::new(self, &df, first)?.records()
    }
}

impl Iterator for ParquetJobReader {
    type Item = Result<JobRecord, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            let Some(&group) = self.groups.get(self.next_group) else {
                self.done = true;
                return None;
            };
            self.next_group += 1;
            match self.read_group(group) {
                Ok(records) => self.buf = records.into_iter(),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// A list cell's items (null items are refused when the record is built).
type TextList = Vec<Option<String>>;

/// One row group's columns, as plain vectors, and where its rows are in the file.
struct Rows<'a> {
    name: &'a str,
    first: usize,
    len: usize,
    text: Vec<(&'static str, Vec<Option<&'a str>>)>,
    ints: Vec<(&'static str, Vec<Option<i64>>)>,
    bools: Vec<(&'static str, Vec<Option<bool>>)>,
    lists: Vec<(&'static str, Vec<Option<TextList>>)>,
    extra: Vec<(String, Vec<Option<f64>>)>,
}

impl<'a> Rows<'a> {
    fn new(
        reader: &'a ParquetJobReader,
        df: &'a DataFrame,
        first: usize,
    ) -> Result<Self, DatasetError> {
        let name = reader.name.as_str();
        let err = polars_err(name);
        let mut rows = Rows {
            name,
            first,
            len: df.height(),
            text: Vec::new(),
            ints: Vec::new(),
            bools: Vec::new(),
            lists: Vec::new(),
            extra: Vec::new(),
        };
        for &i in &reader.present {
            let (col, kind) = COLUMNS[i];
            let s = df.column(col).map_err(&err)?.as_materialized_series();
            match kind {
                Kind::Text => rows
                    .text
                    .push((col, s.str().map_err(&err)?.into_iter().collect())),
                Kind::Int | Kind::Count => {
                    let s = s.cast(&DataType::Int64).map_err(&err)?;
                    rows.ints
                        .push((col, s.i64().map_err(&err)?.into_iter().collect()));
                }
                Kind::Bool => rows
                    .bools
                    .push((col, s.bool().map_err(&err)?.into_iter().collect())),
                Kind::TextList => {
                    let mut v = Vec::with_capacity(s.len());
                    for item in s.list().map_err(&err)?.amortized_iter() {
                        v.push(match item {
                            None => None,
                            Some(inner) => Some(
                                inner
                                    .as_ref()
                                    .str()
                                    .map_err(&err)?
                                    .into_iter()
                                    .map(|x| x.map(str::to_string))
                                    .collect(),
                            ),
                        });
                    }
                    rows.lists.push((col, v));
                }
            }
        }
        for key in &reader.extra {
            let col = format!("{EXTRA_PREFIX}{key}");
            let s = df.column(&col).map_err(&err)?.as_materialized_series();
            let s = s.cast(&DataType::Float64).map_err(&err)?;
            rows.extra
                .push((key.clone(), s.f64().map_err(&err)?.into_iter().collect()));
        }
        Ok(rows)
    }

    fn bad(&self, row: usize, column: &str, message: impl Into<String>) -> DatasetError {
        DatasetError::ParquetValue {
            path: self.name.to_string(),
            row: (self.first + row) as u64,
            column: column.to_string(),
            message: message.into(),
        }
    }

    /// A text cell, [`printable`].
    fn text(&self, row: usize, col: &str) -> Result<Option<&'a str>, DatasetError> {
        let Some((_, v)) = self.text.iter().find(|(c, _)| *c == col) else {
            return Ok(None);
        };
        v[row]
            .map(|s| printable(s).map_err(|m| self.bad(row, col, m)))
            .transpose()
    }

    fn required_text(&self, row: usize, col: &str) -> Result<&'a str, DatasetError> {
        self.text(row, col)?
            .ok_or_else(|| self.bad(row, col, "null in a required column"))
    }

    fn int(&self, row: usize, col: &str) -> Option<i64> {
        self.ints
            .iter()
            .find(|(c, _)| *c == col)
            .and_then(|(_, v)| v[row])
    }

    /// A time or duration (seconds) the clock takes.
    fn time(&self, row: usize, col: &str) -> Result<Option<i64>, DatasetError> {
        self.int(row, col)
            .map(|v| on_clock(v).map_err(|m| self.bad(row, col, m)))
            .transpose()
    }

    fn count(&self, row: usize, col: &str) -> Result<Option<u32>, DatasetError> {
        self.int(row, col)
            .map(|v| {
                u32::try_from(v)
                    .map_err(|_| self.bad(row, col, format!("{v} is not 0 to {}", u32::MAX)))
            })
            .transpose()
    }

    fn flag(&self, row: usize, col: &str) -> bool {
        self.bools
            .iter()
            .find(|(c, _)| *c == col)
            .and_then(|(_, v)| v[row])
            .unwrap_or(false)
    }

    fn list(&self, row: usize, col: &str) -> Result<Option<Vec<String>>, DatasetError> {
        let Some((_, v)) = self.lists.iter().find(|(c, _)| *c == col) else {
            return Ok(None);
        };
        let Some(items) = &v[row] else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(s) = item else {
                return Err(self.bad(row, col, "null item in the list"));
            };
            out.push(printable(s).map_err(|m| self.bad(row, col, m))?.to_string());
        }
        Ok(Some(out))
    }

    fn records(&self) -> Result<Vec<JobRecord>, DatasetError> {
        (0..self.len).map(|row| self.record(row)).collect()
    }

    fn record(&self, row: usize) -> Result<JobRecord, DatasetError> {
        let id = self.required_text(row, "id")?;
        if id.is_empty() {
            return Err(self.bad(row, "id", "empty id"));
        }
        let tenant = self.required_text(row, "tenant")?;
        let submit = self
            .time(row, "submit_s")?
            .ok_or_else(|| self.bad(row, "submit_s", "null in a required column"))?;
        let own = |s: Option<&str>| s.map(str::to_string);
        let mut r = JobRecord::new(id, tenant, submit);
        r.project = own(self.text(row, "project")?);
        r.job_name = own(self.text(row, "job_name")?);
        r.branch = own(self.text(row, "branch")?);
        r.labels = self.list(row, "labels")?.unwrap_or_default();
        r.slots = self.count(row, "slots")?.unwrap_or(1);
        r.requested_s = self.time(row, "requested_s")?;
        r.wait_s = self.time(row, "wait_s")?;
        r.run_s = self.time(row, "run_s")?;
        if let Some(s) = self.text(row, "outcome")? {
            r.outcome = outcome_from_name(s).map_err(|m| self.bad(row, "outcome", m))?;
        }
        r.qos = own(self.text(row, "qos")?);
        r.queue = own(self.text(row, "queue")?);
        r.pipeline = self.pipeline(row)?;
        for (key, v) in &self.extra {
            if let Some(x) = v[row] {
                r.extra.insert(key.clone(), x);
            }
        }
        Ok(r)
    }

    fn pipeline(&self, row: usize) -> Result<Option<PipelineRef>, DatasetError> {
        const OTHERS: [&str; 8] = [
            "pipeline.created_s",
            "pipeline.stage",
            "pipeline.stage_index",
            "pipeline.needs",
            "pipeline.when",
            "pipeline.allow_failure",
            "pipeline.interruptible",
            "pipeline.group",
        ];
        let Some(id) = self.text(row, "pipeline.id")? else {
            let set = |col: &str| {
                self.text.iter().any(|(c, v)| *c == col && v[row].is_some())
                    || self.int(row, col).is_some()
                    || self
                        .bools
                        .iter()
                        .any(|(c, v)| *c == col && v[row].is_some())
                    || self
                        .lists
                        .iter()
                        .any(|(c, v)| *c == col && v[row].is_some())
            };
            if let Some(col) = OTHERS.into_iter().find(|c| set(c)) {
                return Err(self.bad(row, col, "set, but pipeline.id is null"));
            }
            return Ok(None);
        };
        let needed = |col: &str| {
            self.bad(
                row,
                col,
                format!("null or missing, but pipeline.id is {id:?}"),
            )
        };
        let created_s = self
            .time(row, "pipeline.created_s")?
            .ok_or_else(|| needed("pipeline.created_s"))?;
        let stage_index = self
            .count(row, "pipeline.stage_index")?
            .ok_or_else(|| needed("pipeline.stage_index"))?;
        let stage = self.text(row, "pipeline.stage")?.unwrap_or("");
        let mut p = PipelineRef::new(id, created_s, stage, stage_index);
        p.needs = self.list(row, "pipeline.needs")?;
        if let Some(s) = self.text(row, "pipeline.when")? {
            p.when = When::from_name(s).map_err(|m| self.bad(row, "pipeline.when", m))?;
        }
        p.allow_failure = self.flag(row, "pipeline.allow_failure");
        p.interruptible = self.flag(row, "pipeline.interruptible");
        p.group = self.text(row, "pipeline.group")?.map(str::to_string);
        Ok(Some(p))
    }
}

/// Opens a `JobRecord` Parquet file as a streaming trace (file order).
pub fn open_parquet(path: &Path) -> Result<Trace, DatasetError> {
    let reader = ParquetJobReader::open(path)?;
    let meta = TraceMeta {
        max_jobs: Some(reader.rows() as u64),
        unix_start: reader.unix_start(),
        ..TraceMeta::default()
    };
    Ok(Trace::new(meta, TraceFormat::Parquet, reader))
}

/// Reads a whole `JobRecord` Parquet file, stopping at the first error.
pub fn read_parquet(path: &Path) -> Result<Vec<JobRecord>, DatasetError> {
    ParquetJobReader::open(path)?.collect()
}

// ---------------------------------------------------------------------------------------
// Tables

/// The type of a table's column, as the program that made the table knows it (not as
/// its cells happen to read: a float column whose values are all whole numbers stays
/// Float64 on every run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Float,
    Bool,
    Text,
}

/// Writes a CSV table (a header line, then rows; the text `rustci-sim sweep` writes as
/// `sweep.csv`) to `path` as Parquet, each column typed `kind_of(its name)` (Int64,
/// Float64, Boolean, String); an empty cell is null. `name` names the table in errors; a
/// cell that is not of its column's kind is an error naming the column and line.
pub fn write_csv_table(
    path: &Path,
    name: &str,
    csv_text: &str,
    kind_of: &dyn Fn(&str) -> ColumnKind,
) -> Result<(), DatasetError> {
    let target = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_text.as_bytes());
    let at = |line: u64| crate::Location::new(name, Some(line));
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| DatasetError::from_csv(name, 1, false, e))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| DatasetError::from_csv(name, i as u64 + 2, false, e))?;
        if row.len() != header.len() {
            return Err(DatasetError::FieldCount {
                at: at(i as u64 + 2),
                expected: header.len(),
                found: row.len(),
            });
        }
        for (col, cell) in cells.iter_mut().zip(row.iter()) {
            col.push(cell.to_string());
        }
    }
    let rows = cells.first().map_or(0, Vec::len);
    let columns = header
        .iter()
        .zip(&cells)
        .map(|(h, col)| typed_column(h, col, kind_of(h), &at))
        .collect::<Result<Vec<Column>, DatasetError>>()?;
    let mut df = DataFrame::new(rows, columns).map_err(polars_err(&target))?;
    let file = File::create(path).map_err(|source| DatasetError::Open {
        path: target.clone(),
        source,
    })?;
    let mut w = BufWriter::new(file);
    let schema = df.schema().as_ref().clone();
    ParquetWriter::new(&mut w)
        .with_key_value_metadata(Some(arrow_schema_of(&schema)))
        .finish(&mut df)
        .map_err(polars_err(&target))?;
    w.flush()
        .map_err(|source| DatasetError::Write { target, source })
}

/// A column of CSV cells as `kind`; an empty cell is null.
fn typed_column(
    name: &str,
    cells: &[String],
    kind: ColumnKind,
    at: &dyn Fn(u64) -> crate::Location,
) -> Result<Column, DatasetError> {
    fn parse<T: std::str::FromStr>(
        name: &str,
        cells: &[String],
        what: &'static str,
        at: &dyn Fn(u64) -> crate::Location,
    ) -> Result<Vec<Option<T>>, DatasetError> {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if c.is_empty() {
                    return Ok(None);
                }
                c.parse::<T>()
                    .map(Some)
                    .map_err(|_| DatasetError::BadValue {
                        at: at(i as u64 + 2),
                        column: name.to_string(),
                        message: format!("expected {what}, got {c:?}"),
                    })
            })
            .collect()
    }
    let series = match kind {
        ColumnKind::Int => Series::new(name.into(), parse::<i64>(name, cells, "an integer", at)?),
        ColumnKind::Float => Series::new(name.into(), parse::<f64>(name, cells, "a number", at)?),
        ColumnKind::Bool => Series::new(
            name.into(),
            parse::<bool>(name, cells, "true or false", at)?,
        ),
        ColumnKind::Text => Series::new(
            name.into(),
            cells
                .iter()
                .map(|c| (!c.is_empty()).then_some(c.as_str()))
                .collect::<Vec<_>>(),
        ),
    };
    Ok(series.into_column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_tables_get_the_types_their_writer_declares() {
        use ColumnKind::*;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        // `cost` holds only whole numbers here, and is Float64 all the same.
        write_csv_table(
            &path,
            "t.csv",
            "point,cost,policy,ok,none\n0,2,fcfs,true,\n1,,\"qos, x\",false,\n",
            &|c| match c {
                "point" => Int,
                "policy" => Text,
                "ok" => Bool,
                _ => Float,
            },
        )
        .expect("write");
        let df = ParquetReader::new(File::open(&path).expect("open"))
            .finish()
            .expect("read");
        let dt = |c: &str| df.column(c).expect(c).dtype().clone();
        assert_eq!(dt("point"), DataType::Int64);
        assert_eq!(dt("cost"), DataType::Float64);
        assert_eq!(dt("policy"), DataType::String);
        assert_eq!(dt("ok"), DataType::Boolean);
        assert_eq!(dt("none"), DataType::Float64);
        assert_eq!(df.column("cost").expect("cost").null_count(), 1);
        assert_eq!(df.column("none").expect("none").null_count(), 2);
        let policy = df.column("policy").expect("policy");
        assert_eq!(policy.str().expect("str").get(1), Some("qos, x"));

        // A cell that is not of its column's kind names the column and the line.
        let err = write_csv_table(&path, "t.csv", "point\n0\n1.5\n", &|_| Int)
            .expect_err("1.5 is no integer")
            .to_string();
        assert!(
            err.contains("t.csv") && err.contains("3") && err.contains("point"),
            "{err}"
        );
        assert!(err.contains("1.5"), "{err}");
    }

    #[test]
    fn every_fixed_column_has_a_name() {
        assert!(COLUMNS.iter().all(|(c, _)| !c.is_empty()));
        let names: std::collections::BTreeSet<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
        assert_eq!(names.len(), COLUMNS.len(), "column names repeat");
    }
}
