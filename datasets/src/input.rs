//! Opening inputs: plain or gzip (detected by the magic bytes `1f 8b`), always streaming.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::error::DatasetError;

const BUF: usize = 256 * 1024;

/// A buffered, possibly gzip-decoded, input stream.
pub(crate) struct Input {
    pub reader: Box<dyn BufRead + Send>,
    /// The stream is gzip-decoded: read errors are reported as `DatasetError::Gzip`.
    pub gz: bool,
    /// The file name used in error messages.
    pub name: String,
}

impl Input {
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| DatasetError::Open {
            path: name.clone(),
            source,
        })?;
        Self::from_reader(file, name)
    }

    pub fn from_reader<R: Read + Send + 'static>(
        reader: R,
        name: String,
    ) -> Result<Self, DatasetError> {
        let mut raw = BufReader::with_capacity(BUF, reader);
        let head = raw
            .fill_buf()
            .map_err(|source| DatasetError::Io {
                at: crate::error::Location::new(name.clone(), Some(1)),
                source,
            })?
            .get(..2)
            .map(|b| b == [0x1f, 0x8b])
            .unwrap_or(false);
        if head {
            let decoder = MultiGzDecoder::new(raw);
            Ok(Self {
                reader: Box::new(BufReader::with_capacity(BUF, decoder)),
                gz: true,
                name,
            })
        } else {
            Ok(Self {
                reader: Box::new(raw),
                gz: false,
                name,
            })
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// Reads the first line of a (possibly gzip) file, for format sniffing. Invalid UTF-8 is
/// replaced; a read error is returned as is.
pub(crate) fn first_line(path: &Path) -> Result<String, DatasetError> {
    let mut input = Input::open(path)?;
    let mut line = Vec::new();
    // Bounded: a header line longer than 1 MiB is not a header we know.
    let mut limited = (&mut input.reader).take(1 << 20);
    limited.read_until(b'\n', &mut line).map_err(|source| {
        DatasetError::read(
            crate::error::Location::line(&input.name, 1),
            input.gz,
            source,
        )
    })?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// A file name ends with `suffix`, ignoring ASCII case.
pub(crate) fn name_ends_with(path: &Path, suffix: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            let (n, s) = (n.as_bytes(), suffix.as_bytes());
            n.len() >= s.len() && n[n.len() - s.len()..].eq_ignore_ascii_case(s)
        })
        .unwrap_or(false)
}

/// The column names of a CSV header line (BOM, spaces and quotes trimmed).
pub(crate) fn header_columns(first: &str) -> Vec<&str> {
    first
        .trim_start_matches('\u{feff}')
        .trim()
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect()
}

/// The files (not directories) directly in `dir`, unsorted.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let open = |source| DatasetError::Open {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(open)? {
        let p = entry.map_err(open)?.path();
        if p.is_file() {
            files.push(p);
        }
    }
    Ok(files)
}

/// The `*.swf` and `*.swf.gz` files directly in `dir`, sorted by name.
pub(crate) fn swf_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    files_of(dir, ".swf")
}

/// The `*.csv` and `*.csv.gz` files directly in `dir`, sorted by name.
pub(crate) fn csv_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    files_of(dir, ".csv")
}

/// The trace files a folder is read from: `*.csv`, `*.csv.gz` and `*.parquet` (a
/// folder of Parquet parts is how Spark, DuckDB and polars write one table), sorted by
/// name. Other files (Spark's `_SUCCESS`, checksums) are not the trace's.
pub(crate) fn trace_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files = csv_files(dir)?;
    files.extend(
        list_dir(dir)?
            .into_iter()
            .filter(|p| crate::is_parquet_name(p)),
    );
    files.sort();
    Ok(files)
}

/// The files directly in `dir` named `*{ext}` or `*{ext}.gz`, sorted by name.
fn files_of(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, DatasetError> {
    let gz = format!("{ext}.gz");
    let mut files: Vec<PathBuf> = list_dir(dir)?
        .into_iter()
        .filter(|p| name_ends_with(p, ext) || name_ends_with(p, &gz))
        .collect();
    files.sort();
    Ok(files)
}
