//! A CSV input with a header, error locations and typed cell helpers.

use std::path::Path;

use csv::StringRecord;

use crate::error::{DatasetError, Location};
use crate::input::Input;
use crate::record::on_clock;

pub(crate) struct CsvInput {
    rdr: csv::Reader<Input>,
    pub name: String,
    gz: bool,
    pub header: StringRecord,
    pub row: StringRecord,
    /// 1-based line where the current row starts.
    pub line: u64,
}

impl CsvInput {
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        Self::from_input(Input::open(path)?)
    }

    pub fn from_input(input: Input) -> Result<Self, DatasetError> {
        let name = input.name.clone();
        let gz = input.gz;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(256 * 1024)
            .from_reader(input);
        let header = rdr
            .headers()
            .map_err(|e| DatasetError::from_csv(&name, 1, gz, e))?
            .clone();
        Ok(Self {
            rdr,
            name,
            gz,
            header,
            row: StringRecord::new(),
            line: 1,
        })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h.trim() == name)
    }

    pub fn require(&self, name: &str) -> Result<usize, DatasetError> {
        self.column(name)
            .ok_or_else(|| DatasetError::MissingColumn {
                at: Location::line(&self.name, 1),
                column: name.to_string(),
            })
    }

    /// Reads the next row into `self.row`; `Ok(false)` at the end.
    pub fn next_row(&mut self) -> Result<bool, DatasetError> {
        let current = self.rdr.position().line();
        match self.rdr.read_record(&mut self.row) {
            Ok(more) => {
                if let Some(p) = self.row.position() {
                    self.line = p.line();
                }
                Ok(more)
            }
            Err(e) => Err(DatasetError::from_csv(&self.name, current, self.gz, e)),
        }
    }

    pub fn at(&self) -> Location {
        Location::line(&self.name, self.line)
    }

    /// The trimmed cell `i` of the current row ("" if absent).
    pub fn cell(&self, i: usize) -> &str {
        self.row.get(i).unwrap_or("").trim()
    }

    pub fn bad(&self, column: usize, message: String) -> DatasetError {
        DatasetError::BadValue {
            at: self.at(),
            column: self.header.get(column).unwrap_or("?").to_string(),
            message,
        }
    }

    /// A cell as a finite number; `None` when empty or not numeric (lenient, for features).
    pub fn feature(&self, i: usize) -> Option<f64> {
        parse_feature(self.cell(i))
    }
}

/// A finite number, or `True`/`False` as 1/0; `None` otherwise.
pub(crate) fn parse_feature(s: &str) -> Option<f64> {
    match s {
        "" => None,
        "True" | "true" | "TRUE" => Some(1.0),
        "False" | "false" | "FALSE" => Some(0.0),
        _ => s.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// A non-negative duration in seconds given as an integer or decimal ("281.0"), rounded.
/// `Ok(None)` when empty; `Err(message)` for text, a negative value, or one beyond the
/// clock ([`on_clock`], as the SWF and job CSV readers).
pub(crate) fn parse_duration(s: &str) -> Result<Option<i64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let v = s
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a number"))?;
    if v < 0.0 {
        return Err(format!("is negative ({s}); durations must be >= 0"));
    }
    // `as` saturates, so a value beyond i64 is refused as i64::MAX.
    on_clock(v.round() as i64).map(Some)
}
