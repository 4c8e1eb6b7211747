//! The jobs' own record of what ran: each job's command appends `S JOB TOKEN RUNNER NS`
//! when it starts and `E JOB TOKEN RUNNER NS` when its work is done (one `echo >>` each,
//! a single O_APPEND write, so lines of concurrent jobs never interleave).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The shell command of a job that works for `work_ms`, recording itself in `file`.
pub fn command(file: &Path, work_ms: u64) -> String {
    let f = file.display();
    let rec = |tag: &str| {
        format!(
            "echo \"{tag} $RUSTCI_JOB $RUSTCI_FENCING_TOKEN $RUSTCI_RUNNER $(date +%s%N)\" >> {f}"
        )
    };
    format!(
        "{}; sleep {}.{:03}; {}",
        rec("S"),
        work_ms / 1000,
        work_ms % 1000,
        rec("E")
    )
}

/// One run of a job: the lease it ran under, on which runner, when.
#[derive(Debug, Clone)]
pub struct Run {
    pub token: u64,
    pub runner: String,
    pub start_ns: u128,
    pub end_ns: Option<u128>,
}

/// Reads the file as it grows; keeps every run by job name.
#[derive(Debug)]
pub struct Effects {
    path: PathBuf,
    offset: u64,
    partial: String,
    pub runs: HashMap<String, Vec<Run>>,
    /// Lines that are not a record (a torn or foreign write).
    pub malformed: Vec<String>,
    /// `E` lines without their `S`.
    pub orphan_ends: Vec<String>,
}

impl Effects {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
            runs: HashMap::new(),
            malformed: Vec::new(),
            orphan_ends: Vec::new(),
        }
    }

    /// Reads what was appended since the last call.
    pub fn refresh(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else {
            return;
        };
        self.offset += n as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let Some(last_nl) = self.partial.rfind('\n') else {
            return;
        };
        let complete: String = self.partial.drain(..=last_nl).collect();
        for line in complete.lines() {
            self.line(line);
        }
    }

    fn line(&mut self, line: &str) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let parsed = match f[..] {
            [tag @ ("S" | "E"), job, token, runner, ns] => token
                .parse::<u64>()
                .ok()
                .zip(ns.parse::<u128>().ok())
                .map(|(t, n)| (tag, job, t, runner, n)),
            _ => None,
        };
        let Some((tag, job, token, runner, ns)) = parsed else {
            self.malformed.push(line.to_string());
            return;
        };
        let runs = self.runs.entry(job.to_string()).or_default();
        if tag == "S" {
            runs.push(Run {
                token,
                runner: runner.to_string(),
                start_ns: ns,
                end_ns: None,
            });
        } else if let Some(r) = runs
            .iter_mut()
            .rev()
            .find(|r| r.token == token && r.end_ns.is_none())
        {
            r.end_ns = Some(ns);
        } else {
            self.orphan_ends.push(line.to_string());
        }
    }

    /// Jobs running on `runner` (`runners/ID`) now: started, not ended.
    pub fn running_on(&self, runner: &str) -> Vec<String> {
        let mut jobs: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, runs)| {
                runs.iter()
                    .any(|r| r.runner == runner && r.end_ns.is_none())
            })
            .map(|(j, _)| j.clone())
            .collect();
        jobs.sort();
        jobs
    }

    /// Runs by job, sorted by job name (for stable reports).
    pub fn sorted(&self) -> BTreeMap<&str, &Vec<Run>> {
        self.runs.iter().map(|(j, r)| (j.as_str(), r)).collect()
    }
}
