//! Standard Workload Format (SWF v2.2, Parallel Workloads Archive) reader and writer.
//!
//! A log is a header of `; Key: value` comment lines followed by one job per line with 18
//! whitespace-separated numeric fields (see [`FIELD_NAMES`]); `-1` means unknown. The
//! reader streams line by line (gzip is decoded on the fly) and allocates little per job.
//!
//! Mapping to [`JobRecord`]:
//!
//! | record | SWF |
//! |---|---|
//! | `id` | field 1 (job number), verbatim |
//! | `tenant` | `u<field 12>` (user id), `u?` if unknown |
//! | `project` | `g<field 13>` (group id) if known |
//! | `job_name` | `app<field 14>` (application id) if known |
//! | `queue` | `q<field 15>` if known |
//! | `submit_s` | field 2 (seconds after the header's `UnixStartTime`) |
//! | `wait_s`, `run_s` | fields 3, 4 |
//! | `slots` | field 5 (allocated processors) if > 0, else field 8 (requested) if > 0, else **0** |
//! | `requested_s` | field 9 if > 0 |
//! | `outcome` | field 11: 1 success, 0 failure, 5 cancelled, anything else unknown |
//! | `extra` | `avg_cpu_s` (6), `used_mem_kb` (7), `req_mem_kb` (10), `partition` (16), `preceding_job` (17), `think_time_s` (18), when not -1 |
//!
//! `slots == 0` marks a job whose processor count is unknown in both fields 5 and 8; such
//! records are still yielded (so counts match the archive) and consumers that need a size
//! (the simulator) skip and count them.
//!
//! Errors: a line with other than 18 fields, text in a numeric field, and a negative value
//! other than -1 are errors naming the file, line and field. After such an error the
//! reader continues with the next line; after a read (I/O or gzip) error it stops.
//! Fields 6, 7 and 10 (CPU time, memory) may be fractional, as several archive logs
//! write them so; every other field must be an integer.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use crate::error::{DatasetError, Location};
use crate::input::Input;
use crate::record::{on_clock, JobRecord, Outcome, TraceMeta};

/// Number of fields of an SWF job line.
pub const SWF_FIELDS: usize = 18;

/// Names of the 18 SWF fields, as used in error messages (field `i` is `FIELD_NAMES[i-1]`).
pub const FIELD_NAMES: [&str; SWF_FIELDS] = [
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average CPU time",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user id",
    "group id",
    "application id",
    "queue id",
    "partition id",
    "preceding job",
    "think time",
];

/// Streaming SWF reader: reads the header on construction, then yields one record per job.
pub struct SwfReader {
    reader: Box<dyn BufRead + Send>,
    name: String,
    gz: bool,
    /// Lines read so far (the 1-based number of the line in `buf`).
    line_no: u64,
    buf: Vec<u8>,
    /// The first job line, read while scanning the header.
    pending: bool,
    done: bool,
    meta: TraceMeta,
}

impl std::fmt::Debug for SwfReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwfReader")
            .field("name", &self.name)
            .field("gz", &self.gz)
            .field("line_no", &self.line_no)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl SwfReader {
    /// Opens an SWF file, plain or gzip (detected by content), and reads its header.
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        Self::from_input(Input::open(path)?)
    }

    /// Reads SWF from any reader (gzip detected by content); `name` is used in errors.
    pub fn from_reader<R: Read + Send + 'static>(
        reader: R,
        name: impl Into<String>,
    ) -> Result<Self, DatasetError> {
        Self::from_input(Input::from_reader(reader, name.into())?)
    }

    fn from_input(input: Input) -> Result<Self, DatasetError> {
        let mut r = Self {
            reader: input.reader,
            name: input.name,
            gz: input.gz,
            line_no: 0,
            buf: Vec::with_capacity(256),
            pending: false,
            done: false,
            meta: TraceMeta::default(),
        };
        r.read_header()?;
        Ok(r)
    }

    /// Header facts; complete once the reader is constructed.
    pub fn meta(&self) -> &TraceMeta {
        &self.meta
    }

    /// The file name used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the next line into `buf`; `Ok(false)` at end of input.
    fn next_line(&mut self) -> Result<bool, DatasetError> {
        self.buf.clear();
        let at_line = self.line_no + 1;
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => Ok(false),
            Ok(_) => {
                self.line_no = at_line;
                Ok(true)
            }
            Err(source) => Err(DatasetError::read(
                Location::line(&self.name, at_line),
                self.gz,
                source,
            )),
        }
    }

    fn read_header(&mut self) -> Result<(), DatasetError> {
        while self.next_line()? {
            let line = trim_ascii(&self.buf);
            if line.is_empty() {
                continue;
            }
            if line[0] != b';' {
                self.pending = true;
                break;
            }
            if let Some((key, value)) = parse_header_pair(&line[1..]) {
                apply_header(&mut self.meta, &key, &value);
                self.meta.header.push((key, value));
            }
        }
        if self.meta.max_procs.is_none() {
            self.meta.max_procs = header_u32(&self.meta, "MaxNodes");
        }
        Ok(())
    }
}

impl Iterator for SwfReader {
    type Item = Result<JobRecord, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.pending {
                self.pending = false;
            } else {
                match self.next_line() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            let line = trim_ascii(&self.buf);
            if line.is_empty() || line[0] == b';' {
                continue;
            }
            return Some(parse_line(line, &self.name, self.line_no));
        }
    }
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// `Key: value` after the `;`. The key must be one word (letters, digits, `_`, `-`);
/// other comment lines (continuations, prose) are not pairs.
fn parse_header_pair(comment: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(comment);
    let (key, value) = text.split_once(':')?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    Some((key.to_string(), value.trim().to_string()))
}

fn apply_header(meta: &mut TraceMeta, key: &str, value: &str) {
    match key {
        "MaxProcs" => meta.max_procs = value.parse::<u32>().ok().filter(|&v| v > 0),
        "MaxJobs" => meta.max_jobs = value.parse::<u64>().ok(),
        "UnixStartTime" => meta.unix_start = value.parse::<i64>().ok(),
        "Installation" => meta.installation = Some(value.to_string()),
        _ => {}
    }
}

fn header_u32(meta: &TraceMeta, key: &str) -> Option<u32> {
    meta.header
        .iter()
        .filter(|(k, _)| k == key)
        .find_map(|(_, v)| v.parse::<u32>().ok().filter(|&v| v > 0))
}

/// Parses an ASCII integer (optional leading `-`), `None` on anything else or overflow.
fn parse_int(tok: &[u8]) -> Option<i64> {
    let (neg, digits) = match tok {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, tok),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

struct Fields<'a> {
    tok: [&'a [u8]; SWF_FIELDS],
    file: &'a str,
    line: u64,
}

impl Fields<'_> {
    fn at(&self) -> Location {
        Location::line(self.file, self.line)
    }

    /// Integer field `i` (1-based): `None` for -1, error for text or other negatives.
    fn int(&self, i: usize) -> Result<Option<i64>, DatasetError> {
        let tok = self.tok[i - 1];
        let v = parse_int(tok).ok_or_else(|| DatasetError::NotANumber {
            at: self.at(),
            field: i,
            name: FIELD_NAMES[i - 1],
            value: String::from_utf8_lossy(tok).into_owned(),
            expected: "an integer",
        })?;
        match v {
            -1 => Ok(None),
            v if v < 0 => Err(DatasetError::Negative {
                at: self.at(),
                field: i,
                name: FIELD_NAMES[i - 1],
                value: v,
            }),
            v => Ok(Some(v)),
        }
    }

    /// A field that must be known (not -1).
    fn known(&self, i: usize) -> Result<i64, DatasetError> {
        self.int(i)?.ok_or_else(|| DatasetError::BadField {
            at: self.at(),
            field: i,
            name: FIELD_NAMES[i - 1],
            message: "unknown (-1), but every job needs one".to_string(),
        })
    }

    /// A time or duration field (seconds): [`Fields::int`], on the clock ([`on_clock`]).
    fn time(&self, i: usize) -> Result<Option<i64>, DatasetError> {
        self.int(i)?.map(|v| self.on_clock(i, v)).transpose()
    }

    /// `v`, the value of time field `i`, if the millisecond clock can hold it.
    fn on_clock(&self, i: usize, v: i64) -> Result<i64, DatasetError> {
        on_clock(v).map_err(|message| DatasetError::BadField {
            at: self.at(),
            field: i,
            name: FIELD_NAMES[i - 1],
            message,
        })
    }

    /// A field that may be fractional (CPU time, memory).
    fn num(&self, i: usize) -> Result<Option<f64>, DatasetError> {
        let tok = self.tok[i - 1];
        if let Some(v) = parse_int(tok) {
            return match v {
                -1 => Ok(None),
                v if v < 0 => Err(DatasetError::Negative {
                    at: self.at(),
                    field: i,
                    name: FIELD_NAMES[i - 1],
                    value: v,
                }),
                v => Ok(Some(v as f64)),
            };
        }
        let v = std::str::from_utf8(tok)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| DatasetError::NotANumber {
                at: self.at(),
                field: i,
                name: FIELD_NAMES[i - 1],
                value: String::from_utf8_lossy(tok).into_owned(),
                expected: "a number",
            })?;
        if v == -1.0 {
            Ok(None)
        } else if v < 0.0 {
            Err(DatasetError::BadField {
                at: self.at(),
                field: i,
                name: FIELD_NAMES[i - 1],
                message: format!("is negative ({v}); only -1 (unknown) is allowed"),
            })
        } else {
            Ok(Some(v))
        }
    }

    fn slots(&self, i: usize, v: Option<i64>) -> Result<Option<u32>, DatasetError> {
        match v {
            Some(v) if v > 0 => u32::try_from(v)
                .map(Some)
                .map_err(|_| DatasetError::BadField {
                    at: self.at(),
                    field: i,
                    name: FIELD_NAMES[i - 1],
                    message: format!("{v} processors is out of range"),
                }),
            _ => Ok(None),
        }
    }
}

/// Parses one SWF job line (already known not to be a comment). `file` and `line` are
/// used in errors.
pub fn parse_line(line: &[u8], file: &str, line_no: u64) -> Result<JobRecord, DatasetError> {
    let mut tok: [&[u8]; SWF_FIELDS] = [&[]; SWF_FIELDS];
    let mut n = 0;
    for t in line
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
    {
        if n < SWF_FIELDS {
            tok[n] = t;
        }
        n += 1;
    }
    if n != SWF_FIELDS {
        return Err(DatasetError::FieldCount {
            at: Location::line(file, line_no),
            expected: SWF_FIELDS,
            found: n,
        });
    }
    let f = Fields {
        tok,
        file,
        line: line_no,
    };
    f.known(1)?;
    let submit = f.on_clock(2, f.known(2)?)?;
    let wait = f.time(3)?;
    let run = f.time(4)?;
    let alloc = f.int(5)?;
    let avg_cpu = f.num(6)?;
    let used_mem = f.num(7)?;
    let req_procs = f.int(8)?;
    let req_time = f.time(9)?;
    let req_mem = f.num(10)?;
    let status = f.int(11)?;
    let user = f.int(12)?;
    let group = f.int(13)?;
    let app = f.int(14)?;
    let queue = f.int(15)?;
    let partition = f.int(16)?;
    let preceding = f.int(17)?;
    let think = f.int(18)?;

    let slots = match f.slots(5, alloc)? {
        Some(s) => s,
        None => f.slots(8, req_procs)?.unwrap_or(0),
    };
    let tenant = match user {
        Some(u) => format!("u{u}"),
        None => "u?".to_string(),
    };
    let mut rec = JobRecord::new(String::from_utf8_lossy(tok[0]).into_owned(), tenant, submit);
    rec.project = group.map(|g| format!("g{g}"));
    rec.job_name = app.map(|a| format!("app{a}"));
    rec.queue = queue.map(|q| format!("q{q}"));
    rec.wait_s = wait;
    rec.run_s = run;
    rec.slots = slots;
    rec.requested_s = req_time.filter(|&r| r > 0);
    rec.outcome = match status {
        Some(1) => Outcome::Success,
        Some(0) => Outcome::Failure,
        Some(5) => Outcome::Cancelled,
        _ => Outcome::Unknown,
    };
    let extras = [
        ("avg_cpu_s", avg_cpu),
        ("used_mem_kb", used_mem),
        ("req_mem_kb", req_mem),
        ("partition", partition.map(|v| v as f64)),
        ("preceding_job", preceding.map(|v| v as f64)),
        ("think_time_s", think.map(|v| v as f64)),
    ];
    for (k, v) in extras {
        if let Some(v) = v {
            rec.extra.insert(k.to_string(), v);
        }
    }
    Ok(rec)
}

/// Opens an SWF file as a [`crate::Trace`] (streaming, in file order).
pub fn open_swf(path: &Path) -> Result<crate::Trace, DatasetError> {
    let reader = SwfReader::open(path)?;
    let meta = reader.meta().clone();
    Ok(crate::Trace::new(meta, crate::TraceFormat::Swf, reader))
}

/// One SWF output line. Unknown values are `None` and written as `-1`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwfJob {
    /// Field 1.
    pub job_number: u64,
    /// Field 2, seconds after the log's `UnixStartTime`.
    pub submit_s: i64,
    /// Field 3.
    pub wait_s: Option<i64>,
    /// Field 4.
    pub run_s: Option<i64>,
    /// Field 5 (allocated processors).
    pub procs: Option<u32>,
    /// Field 6.
    pub avg_cpu_s: Option<f64>,
    /// Field 7.
    pub used_mem_kb: Option<f64>,
    /// Field 8.
    pub requested_procs: Option<u32>,
    /// Field 9 (requested time, the user's estimate).
    pub requested_s: Option<i64>,
    /// Field 10.
    pub requested_mem_kb: Option<f64>,
    /// Field 11 (1 completed, 0 failed, 5 cancelled).
    pub status: Option<i64>,
    /// Field 12.
    pub user: Option<i64>,
    /// Field 13.
    pub group: Option<i64>,
    /// Field 14.
    pub app: Option<i64>,
    /// Field 15.
    pub queue: Option<i64>,
    /// Field 16.
    pub partition: Option<i64>,
    /// Field 17.
    pub preceding_job: Option<i64>,
    /// Field 18.
    pub think_time_s: Option<i64>,
}

impl SwfJob {
    /// The SWF line of a record, inverting the reader's mapping where it can: `u<n>`,
    /// `g<n>`, `app<n>`, `q<n>` give back user, group, application and queue ids, `extra`
    /// gives back fields 6, 7, 10, 16-18, and the outcome gives the status. `slots` is
    /// written as both allocated (5) and requested (8) processors, unless it is 0.
    pub fn from_record(rec: &JobRecord, job_number: u64) -> Self {
        let id_of = |s: Option<&str>, prefix: &str| -> Option<i64> {
            s?.strip_prefix(prefix)?
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
        };
        let extra_f = |k: &str| {
            rec.extra
                .get(k)
                .copied()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let extra_i = |k: &str| extra_f(k).map(|v| v.round() as i64);
        let procs = (rec.slots > 0).then_some(rec.slots);
        Self {
            job_number,
            submit_s: rec.submit_s,
            wait_s: rec.wait_s,
            run_s: rec.run_s,
            procs,
            avg_cpu_s: extra_f("avg_cpu_s"),
            used_mem_kb: extra_f("used_mem_kb"),
            requested_procs: procs,
            requested_s: rec.requested_s,
            requested_mem_kb: extra_f("req_mem_kb"),
            status: match rec.outcome {
                Outcome::Success => Some(1),
                Outcome::Failure => Some(0),
                // SWF has no "never ran"; 5 (cancelled) with run time -1 is how its
                // logs record a job cancelled before it started.
                Outcome::Cancelled | Outcome::Skipped | Outcome::Manual => Some(5),
                Outcome::Unknown => None,
            },
            user: id_of(Some(&rec.tenant), "u"),
            group: id_of(rec.project.as_deref(), "g"),
            app: id_of(rec.job_name.as_deref(), "app"),
            queue: id_of(rec.queue.as_deref(), "q"),
            partition: extra_i("partition"),
            preceding_job: extra_i("preceding_job"),
            think_time_s: extra_i("think_time_s"),
        }
    }
}

fn opt_i(v: Option<i64>) -> i64 {
    v.filter(|&v| v >= 0).unwrap_or(-1)
}

fn opt_u(v: Option<u32>) -> i64 {
    v.map(i64::from).unwrap_or(-1)
}

struct OptF(Option<f64>);

impl std::fmt::Display for OptF {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) if v.is_finite() && v >= 0.0 => {
                if v.fract() == 0.0 && v < 1e15 {
                    write!(f, "{}", v as i64)
                } else {
                    write!(f, "{v:.2}")
                }
            }
            _ => f.write_str("-1"),
        }
    }
}

/// Writes one 18-field SWF job line (with a trailing newline); unknowns are `-1`.
pub fn write_swf_line<W: Write + ?Sized>(w: &mut W, job: &SwfJob) -> io::Result<()> {
    writeln!(
        w,
        "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
        job.job_number,
        job.submit_s,
        opt_i(job.wait_s),
        opt_i(job.run_s),
        opt_u(job.procs),
        OptF(job.avg_cpu_s),
        OptF(job.used_mem_kb),
        opt_u(job.requested_procs),
        opt_i(job.requested_s),
        OptF(job.requested_mem_kb),
        job.status.filter(|&s| s >= 0).unwrap_or(-1),
        opt_i(job.user),
        opt_i(job.group),
        opt_i(job.app),
        opt_i(job.queue),
        opt_i(job.partition),
        opt_i(job.preceding_job),
        opt_i(job.think_time_s),
    )
}

/// Writes a header: `; Version: 2.2`, then every pair of `meta.header` (if empty, the
/// typed fields of `meta`: `UnixStartTime`, `MaxJobs`, `MaxProcs`, `Installation`), then
/// `extra` pairs (e.g. `("Note", "simulated by rustci")`).
pub fn write_swf_header<W: Write + ?Sized>(
    w: &mut W,
    meta: &TraceMeta,
    extra: &[(String, String)],
) -> io::Result<()> {
    let one_line = |s: &str| s.replace(['\n', '\r'], " ");
    if !meta.header.iter().any(|(k, _)| k == "Version") {
        writeln!(w, "; Version: 2.2")?;
    }
    if meta.header.is_empty() {
        if let Some(i) = &meta.installation {
            writeln!(w, "; Installation: {}", one_line(i))?;
        }
        if let Some(v) = meta.max_jobs {
            writeln!(w, "; MaxJobs: {v}")?;
        }
        if let Some(v) = meta.unix_start {
            writeln!(w, "; UnixStartTime: {v}")?;
        }
        if let Some(v) = meta.max_procs {
            writeln!(w, "; MaxProcs: {v}")?;
        }
    }
    for (k, v) in meta.header.iter().chain(extra) {
        writeln!(w, "; {}: {}", one_line(k), one_line(v))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_cases() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"12a"), None);
        assert_eq!(parse_int(b"1.0"), None);
    }

    #[test]
    fn maps_a_line() {
        let line = b"   11   566129      5  28826    1  27758.5    -1    1  28800    -1  5 153  75 18180  3 -1 -1 -1\r";
        let r = parse_line(trim_ascii(line), "x.swf", 7).expect("valid line");
        assert_eq!(r.id, "11");
        assert_eq!(r.tenant, "u153");
        assert_eq!(r.project.as_deref(), Some("g75"));
        assert_eq!(r.job_name.as_deref(), Some("app18180"));
        assert_eq!(r.queue.as_deref(), Some("q3"));
        assert_eq!(
            (r.submit_s, r.wait_s, r.run_s),
            (566_129, Some(5), Some(28_826))
        );
        assert_eq!((r.slots, r.requested_s), (1, Some(28_800)));
        assert_eq!(r.outcome, Outcome::Cancelled);
        assert_eq!(r.extra.get("avg_cpu_s"), Some(&27_758.5));
        assert_eq!(r.extra.len(), 1);
    }

    #[test]
    fn slots_fallback_and_unknowns() {
        let r = parse_line(
            b"1 0 -1 -1 -1 -1 -1 16 0 -1 -1 -1 -1 -1 -1 -1 -1 -1",
            "x",
            1,
        )
        .expect("valid");
        assert_eq!(
            (r.slots, r.requested_s, r.wait_s, r.run_s),
            (16, None, None, None)
        );
        assert_eq!(r.tenant, "u?");
        assert_eq!(r.outcome, Outcome::Unknown);
        let r = parse_line(
            b"1 0 -1 -1 0 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1",
            "x",
            1,
        )
        .expect("valid");
        assert_eq!(r.slots, 0);
    }

    #[test]
    fn errors_name_field() {
        let e = parse_line(b"1 0 0 -5 1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1", "x.swf", 9)
            .expect_err("negative run time");
        assert_eq!(
            e.to_string(),
            "x.swf:9: field 4 (run time) is negative (-5); only -1 (unknown) is allowed"
        );
        let e = parse_line(
            b"1 0 0 abc 1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1",
            "K.swf.gz",
            1234,
        )
        .expect_err("text");
        assert_eq!(
            e.to_string(),
            "K.swf.gz:1234: field 4 (run time): \"abc\" is not an integer"
        );
        let e = parse_line(b"1 0 0 1 -3 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1", "x", 2)
            .expect_err("negative procs");
        assert!(
            e.to_string()
                .contains("field 5 (allocated processors) is negative (-3)"),
            "{e}"
        );
        let e = parse_line(b"1 0 0 1 1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1 7", "x", 3)
            .expect_err("19 fields");
        assert_eq!(e.to_string(), "x:3: expected 18 fields, found 19");
    }

    #[test]
    fn header_pairs() {
        assert_eq!(
            parse_header_pair(b" MaxProcs: 1152 "),
            Some(("MaxProcs".into(), "1152".into()))
        );
        assert_eq!(
            parse_header_pair(b" Queue:  0  interactive    "),
            Some(("Queue".into(), "0  interactive".into()))
        );
        assert_eq!(parse_header_pair(b"         user=68 and (job>=58)"), None);
        assert_eq!(parse_header_pair(b"       The filters used: x"), None);
        assert_eq!(parse_header_pair(b""), None);
    }

    #[test]
    fn writer_round_trip() {
        let line = b"11 566129 5 28826 1 27758.50 -1 1 28800 -1 5 153 75 18180 3 -1 -1 -1";
        let r = parse_line(line, "x", 1).expect("valid");
        let mut out = Vec::new();
        write_swf_line(&mut out, &SwfJob::from_record(&r, 11)).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out).trim_end(),
            String::from_utf8_lossy(line)
        );
        let again = parse_line(trim_ascii(&out), "x", 1).expect("valid");
        assert_eq!(again, r);
    }
}
