//! `DatasetError`: the one error type of this crate.
//!
//! Every error about file content names the file and, where known, the 1-based line:
//! `KTH.swf.gz:1234: field 4 (run time): "abc" is not an integer`.

use std::fmt;
use std::io;
use std::path::Path;

/// Where in an input an error happened: a file (as the caller named it) and, if known,
/// the 1-based line. Displays as `file:line` or `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: Option<u64>,
}

impl Location {
    pub fn new(file: impl Into<String>, line: Option<u64>) -> Self {
        Self {
            file: file.into(),
            line,
        }
    }

    pub fn file(path: &Path) -> Self {
        Self::new(path.display().to_string(), None)
    }

    pub fn line(file: &str, line: u64) -> Self {
        Self::new(file, Some(line))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file, line),
            None => f.write_str(&self.file),
        }
    }
}

/// Errors of trace readers, writers and the synthetic generator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file or directory could not be opened or listed.
    #[error("{path}: cannot open: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },

    /// Reading a plain (uncompressed) file failed.
    #[error("{at}: read error: {source}")]
    Io {
        at: Location,
        #[source]
        source: io::Error,
    },

    /// The gzip stream ended early or is damaged; `at.line` is the line being read.
    #[error("{at}: gzip stream truncated or corrupt: {source}")]
    Gzip {
        at: Location,
        #[source]
        source: io::Error,
    },

    /// Writing an output failed.
    #[error("{target}: write error: {source}")]
    Write {
        target: String,
        #[source]
        source: io::Error,
    },

    /// An SWF line (or CSV record) has the wrong number of fields.
    #[error("{at}: expected {expected} fields, found {found}")]
    FieldCount {
        at: Location,
        expected: usize,
        found: usize,
    },

    /// An SWF field that must be a number is not one.
    #[error("{at}: field {field} ({name}): {value:?} is not {expected}")]
    NotANumber {
        at: Location,
        /// 1-based SWF field number.
        field: usize,
        name: &'static str,
        value: String,
        /// "an integer" or "a number".
        expected: &'static str,
    },

    /// An SWF field is negative but not the "unknown" marker -1.
    #[error("{at}: field {field} ({name}) is negative ({value}); only -1 (unknown) is allowed")]
    Negative {
        at: Location,
        field: usize,
        name: &'static str,
        value: i64,
    },

    /// An SWF field holds a value this crate cannot use (e.g. submit time -1).
    #[error("{at}: field {field} ({name}): {message}")]
    BadField {
        at: Location,
        field: usize,
        name: &'static str,
        message: String,
    },

    /// A CSV cell holds a value that does not fit its column.
    #[error("{at}: column {column}: {message}")]
    BadValue {
        at: Location,
        column: String,
        message: String,
    },

    /// A CSV cell holds malformed JSON (GitHub Actions `job_details`).
    #[error("{at}: column {column}: invalid JSON: {source}")]
    Json {
        at: Location,
        column: String,
        #[source]
        source: serde_json::Error,
    },

    /// A required CSV column is absent from the header.
    #[error("{at}: missing column {column:?} in the header")]
    MissingColumn { at: Location, column: String },

    /// Any other CSV-level error (bad quoting, invalid UTF-8, ...).
    #[error("{at}: CSV error: {source}")]
    Csv {
        at: Location,
        #[source]
        source: csv::Error,
    },

    /// A job graph is not a DAG, or names jobs that are not there (a FlowBench adjacency
    /// file, a pipeline's `needs`).
    #[error("{at}: {message}")]
    Graph { at: Location, message: String },

    /// A pipeline's jobs break a rule of [`crate::record::PipelineRef`] (a `needs` name
    /// that is not in the pipeline, a repeated job name, a cycle).
    #[error("pipeline {pipeline}, job {job}: {message}")]
    Pipeline {
        pipeline: String,
        /// The job's record id.
        job: String,
        message: String,
    },

    /// A zip archive could not be read (FlowBench workflows).
    #[error("{path}: zip archive: {source}")]
    Zip {
        path: String,
        #[source]
        source: zip::result::ZipError,
    },

    /// A file given as Parquet is not one (no `PAR1` magic at its start and end).
    #[error("{path}: not a Parquet file: {message}")]
    NotParquet { path: String, message: String },

    /// A column a `JobRecord` Parquet file must have is absent.
    #[error("{path}: missing column {column:?} (a JobRecord Parquet file has at least id, tenant, submit_s)")]
    ParquetMissingColumn { path: String, column: String },

    /// A Parquet column has a type the schema does not allow.
    #[error("{path}: column {column:?}: expected {expected}, found {found}")]
    ColumnType {
        path: String,
        column: String,
        /// The schema's type (`Int64`, `String`, `List(String)`, ...).
        expected: String,
        /// The file's type, as polars names it.
        found: String,
    },

    /// A Parquet cell holds a value that does not fit its column (a null in a required
    /// column, an unknown outcome, a time beyond the clock). `row` counts from 0, as
    /// pandas and polars index rows.
    #[error("{path}: row index {row}, column {column:?}: {message}")]
    ParquetValue {
        path: String,
        row: u64,
        column: String,
        message: String,
    },

    /// polars could not read or write a Parquet file.
    #[cfg(feature = "parquet")]
    #[error("{path}: Parquet: {source}")]
    Parquet {
        path: String,
        #[source]
        source: polars::error::PolarsError,
    },

    /// `TraceFormat::from_str` got a name it does not know.
    #[error(
        "unknown trace format {0:?}; expected one of: swf, travis, gha, gitlab, flowbench, csv, parquet"
    )]
    UnknownFormat(String),

    /// `open_trace` could not use the path as a trace (empty directory, SWF in a directory, ...).
    #[error("{path}: {message}")]
    Unsupported { path: String, message: String },

    /// A `SyntheticConfig` (or other configuration) field is out of range.
    #[error("invalid configuration: {field}: {message}")]
    Config { field: String, message: String },
}

impl DatasetError {
    /// The location (file and line) the error refers to, if it has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Io { at, .. }
            | Self::Gzip { at, .. }
            | Self::FieldCount { at, .. }
            | Self::NotANumber { at, .. }
            | Self::Negative { at, .. }
            | Self::BadField { at, .. }
            | Self::BadValue { at, .. }
            | Self::Json { at, .. }
            | Self::MissingColumn { at, .. }
            | Self::Graph { at, .. }
            | Self::Csv { at, .. } => Some(at),
            _ => None,
        }
    }

    pub(crate) fn config(field: &str, message: impl Into<String>) -> Self {
        Self::Config {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A read error: gzip-decoded inputs report `Gzip`, plain ones `Io`.
    pub(crate) fn read(at: Location, gz: bool, source: io::Error) -> Self {
        if gz {
            Self::Gzip { at, source }
        } else {
            Self::Io { at, source }
        }
    }

    /// Maps a `csv::Error` to a located error; `line` is the reader's current line, used
    /// when the csv error carries no position.
    pub(crate) fn from_csv(file: &str, line: u64, gz: bool, err: csv::Error) -> Self {
        let pos_line = err.position().map(|p| p.line()).unwrap_or(line);
        let at = Location::line(file, pos_line);
        match err.into_kind() {
            csv::ErrorKind::Io(source) => Self::read(at, gz, source),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => Self::FieldCount {
                at,
                expected: expected_len as usize,
                found: len as usize,
            },
            kind => Self::Csv {
                at,
                source: csv::Error::from(kind_to_error(kind)),
            },
        }
    }
}

/// `csv::Error` has no public constructor from a kind; rebuild it via `io::Error` for the
/// rare kinds (UTF-8, serde) so the message survives.
fn kind_to_error(kind: csv::ErrorKind) -> io::Error {
    let message = match kind {
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        other => format!("{other:?}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, message)
}
