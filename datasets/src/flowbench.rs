//! FlowBench workflow runs (Pegasus WMS, see `SOURCES.md` §8): per workflow a
//! `<workflow>.zip` of run CSVs (`<workflow>-runNNNN.csv`, one row per job, 45 columns)
//! and the DAG in `<workflow>.adj.json.gz` (or `.adj.json`): each job name mapped to the
//! names of its children.
//!
//! [`open_flowbench`] takes a folder (every `*.zip` in it, each with its adjacency file)
//! or one workflow zip. Each run is one pipeline; each row one job:
//!
//! | record | source |
//! |---|---|
//! | `id` | `<workflow>/runNNNN/<job name>` |
//! | `tenant`, `project` | the workflow (the zip's name without `.zip`) |
//! | `job_name` | the first column (its header is empty), unique in a run |
//! | `queue` | `kickstart_site`: `local` (the submit host runs auxiliary and transfer jobs) or `condorpool` (the workers) |
//! | `labels`, `branch`, `requested_s`, `qos` | none |
//! | `submit_s` | `submit`: when HTCondor got the job, Unix seconds (trace epoch 0) |
//! | `wait_s` | `execute_start - submit` (the upstream `queue_delay`) |
//! | `run_s` | `execute_end - execute_start` (the upstream `runtime`) |
//! | `outcome` | success when `kickstart_status` and `kickstart_executables_exitcode` are 0 (or empty), failure otherwise |
//! | `extra["anomaly_cpu"]`, `extra["anomaly_hdd"]` | `K` of an `anomaly_type` `cpu_K` or `hdd_K` (an injected limit), on the rows labelled with one |
//!
//! Why these columns: the job occupies a worker slot from `execute_start` to
//! `execute_end`. Pegasus runs a job's stage-in and stage-out inside that window (as
//! PegasusLite does), so it already holds the data movement; the pre- and post-scripts
//! run on the submit host, outside any worker slot. `submit` is when the job reached the
//! batch scheduler, which is the moment a CI scheduler would receive it; `ready` (when
//! the DAG released it) is a few seconds earlier (the upstream `wms_delay`, DAGMan's
//! own overhead).
//!
//! The [`PipelineRef`]: `id` `<workflow>/runNNNN`; `created_s` the run's earliest
//! `ready` or `submit`; `needs` the job's parents in the DAG (the children lists
//! inverted), sorted by name, `[]` for roots; `stage` "" (FlowBench has no stages) and
//! `stage_index` the job's depth (the longest path from a root, so every parent is at a
//! smaller index); `when` on_success; not allowed to fail; not interruptible; group
//! `None`.
//!
//! Every run must hold exactly the DAG's jobs. Timestamps are written as floats
//! (`1714094780.0`) and are rounded to whole seconds. Records come out sorted (stably) by
//! `submit_s`; runs were back to back, so a replay compresses their arrivals with
//! `--load`. Errors name the zip and entry (`somospie.zip/somospie-run0001.csv:12`) or
//! the adjacency file, and the job.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use crate::csvin::CsvInput;
use crate::error::{DatasetError, Location};
use crate::input::{self, Input};
use crate::record::{JobRecord, Outcome, PipelineRef, TraceMeta};
use crate::{Trace, TraceFormat};

/// Extra: `K` of an injected `cpu_K` anomaly (K advertised cores unusable).
pub const ANOMALY_CPU: &str = "anomaly_cpu";
/// Extra: `K` of an injected `hdd_K` anomaly (disk writes capped at K MB/s).
pub const ANOMALY_HDD: &str = "anomaly_hdd";

/// Largest run CSV read from a zip, bytes (the largest upstream one is 37 KB).
const MAX_ENTRY_BYTES: u64 = 256 << 20;

/// A workflow's job graph: names, parents and depths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// Parent indexes of each node, sorted by name.
    parents: Vec<Vec<usize>>,
    depth: Vec<u32>,
}

impl Dag {
    /// Builds the graph of `children` (each node's children; a child that is not a key
    /// is a node without children). `at` names the source in errors. Duplicate edges
    /// count once; a cycle is an error naming the jobs on it.
    pub fn from_children(
        children: &BTreeMap<String, Vec<String>>,
        at: &Location,
    ) -> Result<Self, DatasetError> {
        let mut names: Vec<String> = children.keys().cloned().collect();
        for kids in children.values() {
            names.extend(kids.iter().cloned());
        }
        names.sort();
        names.dedup();
        let index: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for (parent, list) in children {
            let p = index[parent];
            for child in list {
                parents[index[child]].push(p);
            }
        }
        for p in &mut parents {
            p.sort_unstable();
            p.dedup();
        }
        let depth = crate::graph::depths(&parents).map_err(|cycle| {
            let path: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
            DatasetError::Graph {
                at: at.clone(),
                message: format!("the job graph has a cycle: {}", path.join(" -> ")),
            }
        })?;
        Ok(Self {
            names,
            index,
            parents,
            depth,
        })
    }

    /// Number of jobs.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of edges (parent, child).
    pub fn edge_count(&self) -> usize {
        self.parents.iter().map(Vec::len).sum()
    }

    /// Job names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parents of job `name`, sorted by name; `None` if it is not in the graph.
    pub fn parents(&self, name: &str) -> Option<Vec<&str>> {
        let i = *self.index.get(name)?;
        Some(
            self.parents[i]
                .iter()
                .map(|&p| self.names[p].as_str())
                .collect(),
        )
    }

    /// The longest path from a root to job `name`, in edges.
    pub fn depth(&self, name: &str) -> Option<u32> {
        self.index.get(name).map(|&i| self.depth[i])
    }
}

/// Reads an adjacency file (JSON object: job name to its children's names; gzip or not).
pub fn read_dag(path: &Path) -> Result<Dag, DatasetError> {
    let mut input = Input::open(path)?;
    let mut text = Vec::new();
    input
        .read_to_end(&mut text)
        .map_err(|e| DatasetError::read(Location::file(path), input.gz, e))?;
    let children: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&text).map_err(|source| DatasetError::Json {
            at: Location::new(
                path.display().to_string(),
                (source.line() > 0).then_some(source.line() as u64),
            ),
            column: "adjacency".to_string(),
            source,
        })?;
    Dag::from_children(&children, &Location::file(path))
}

/// The adjacency file of a workflow zip: `<workflow>.adj.json.gz` or `.adj.json` beside
/// it, if one exists.
pub fn adjacency_of(zip: &Path) -> Option<PathBuf> {
    let stem = workflow_of(zip)?;
    ["adj.json.gz", "adj.json"]
        .iter()
        .map(|ext| zip.with_file_name(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// The workflow name of a zip: its file name without `.zip`.
fn workflow_of(zip: &Path) -> Option<&str> {
    let name = zip.file_name()?.to_str()?;
    let stem = &name[..name.len().checked_sub(4)?];
    input::name_ends_with(zip, ".zip").then_some(stem)
}

/// The `*.zip` files in `dir` that have an adjacency file beside them, sorted.
pub fn workflows_in(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut zips: Vec<PathBuf> = input::list_dir(dir)?
        .into_iter()
        .filter(|p| input::name_ends_with(p, ".zip") && adjacency_of(p).is_some())
        .collect();
    zips.sort();
    Ok(zips)
}

/// The run name of an entry: `run0001` of `eht-difmap-run0001.csv` (the part from the
/// last `-run` followed by digits), else the entry's stem.
fn run_of(entry: &str) -> &str {
    let base = entry.rsplit('/').next().unwrap_or(entry);
    let stem = base.strip_suffix(".csv").unwrap_or(base);
    match stem.rfind("-run") {
        Some(i)
            if stem.len() > i + 4 && stem.as_bytes()[i + 4..].iter().all(u8::is_ascii_digit) =>
        {
            &stem[i + 1..]
        }
        _ => stem,
    }
}

/// A Unix time written as a (float) number of seconds, rounded.
fn time_cell(csv: &CsvInput, i: usize, job: &str) -> Result<i64, DatasetError> {
    let s = csv.cell(i);
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() < 1e15 => Ok(v.round() as i64),
        _ => Err(csv.bad(
            i,
            format!("job {job:?}: {s:?} is not a Unix time in seconds"),
        )),
    }
}

struct Columns {
    name: usize,
    ready: usize,
    submit: usize,
    start: usize,
    end: usize,
    site: Option<usize>,
    anomaly: Option<usize>,
    status: Option<usize>,
    exitcode: Option<usize>,
}

/// Reads one run CSV into records of pipeline `pipeline`.
fn read_run(
    input: Input,
    workflow: &str,
    pipeline: &str,
    dag: &Dag,
    out: &mut Vec<JobRecord>,
) -> Result<(), DatasetError> {
    let mut csv = CsvInput::from_input(input)?;
    let c = Columns {
        name: csv.require("")?,
        ready: csv.require("ready")?,
        submit: csv.require("submit")?,
        start: csv.require("execute_start")?,
        end: csv.require("execute_end")?,
        site: csv.column("kickstart_site"),
        anomaly: csv.column("anomaly_type"),
        status: csv.column("kickstart_status"),
        exitcode: csv.column("kickstart_executables_exitcode"),
    };
    let first = out.len();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut created = i64::MAX;
    while csv.next_row()? {
        let name = csv.cell(c.name);
        if name.is_empty() {
            return Err(csv.bad(c.name, "empty job name".to_string()));
        }
        let Some(parents) = dag.parents(name) else {
            return Err(csv.bad(
                c.name,
                format!("job {name:?} is not in the workflow's adjacency file"),
            ));
        };
        if let Some(line) = seen.insert(name.to_string(), csv.line) {
            return Err(csv.bad(
                c.name,
                format!("job {name:?} appears twice in the run (also line {line})"),
            ));
        }
        let ready = time_cell(&csv, c.ready, name)?;
        let submit = time_cell(&csv, c.submit, name)?;
        let start = time_cell(&csv, c.start, name)?;
        let end = time_cell(&csv, c.end, name)?;
        if start < submit || end < start {
            return Err(csv.bad(
                c.start,
                format!(
                    "job {name:?}: times out of order (submit {submit}, execute_start \
                     {start}, execute_end {end})"
                ),
            ));
        }
        created = created.min(ready).min(submit);

        let mut rec = JobRecord::new(format!("{pipeline}/{name}"), workflow, submit);
        rec.project = Some(workflow.to_string());
        rec.job_name = Some(name.to_string());
        rec.queue = c
            .site
            .map(|i| csv.cell(i))
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        rec.wait_s = Some(start - submit);
        rec.run_s = Some(end - start);
        let code = |col: Option<usize>| col.map(|i| csv.cell(i)).unwrap_or("");
        let codes = [code(c.status), code(c.exitcode)];
        rec.outcome = if codes
            .iter()
            .all(|s| s.is_empty() || s.parse::<f64>() == Ok(0.0))
        {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        if let Some(anomaly) = c.anomaly.map(|i| csv.cell(i)) {
            let k = |prefix: &str| {
                anomaly
                    .strip_prefix(prefix)
                    .and_then(|k| k.parse::<f64>().ok())
            };
            if let Some(k) = k("cpu_") {
                rec.extra.insert(ANOMALY_CPU.to_string(), k);
            } else if let Some(k) = k("hdd_") {
                rec.extra.insert(ANOMALY_HDD.to_string(), k);
            }
        }
        let depth = dag.depth(name).unwrap_or(0);
        let mut pipe = PipelineRef::new(pipeline, 0, "", depth);
        pipe.needs = Some(parents.into_iter().map(str::to_string).collect());
        rec.pipeline = Some(pipe);
        out.push(rec);
    }
    if let Some(missing) = dag.names().iter().find(|n| !seen.contains_key(*n)) {
        return Err(DatasetError::Graph {
            at: Location::file(Path::new(&csv.name)),
            message: format!(
                "run {pipeline} lacks job {missing:?} of the workflow's DAG ({} of {} jobs)",
                seen.len(),
                dag.len()
            ),
        });
    }
    for rec in &mut out[first..] {
        if let Some(p) = &mut rec.pipeline {
            p.created_s = created;
        }
    }
    Ok(())
}

/// Reads one workflow: every run CSV of `zip`, with the DAG of `adjacency`. Records in
/// run order (entries sorted by name), then row order; not sorted by time.
pub fn read_workflow(zip: &Path, adjacency: &Path) -> Result<Vec<JobRecord>, DatasetError> {
    let zip_name = zip.display().to_string();
    let workflow = workflow_of(zip)
        .ok_or_else(|| DatasetError::Unsupported {
            path: zip_name.clone(),
            message: "is not a <workflow>.zip".to_string(),
        })?
        .to_string();
    let dag = read_dag(adjacency)?;
    let file = File::open(zip).map_err(|source| DatasetError::Open {
        path: zip_name.clone(),
        source,
    })?;
    let zip_err = |source| DatasetError::Zip {
        path: zip_name.clone(),
        source,
    };
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    let mut entries: Vec<(String, usize)> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(zip_err)?;
        if !entry.is_dir() {
            entries.push((entry.name().map_err(zip_err)?.to_string(), i));
        }
    }
    entries.sort();
    let mut out = Vec::new();
    let mut runs: HashMap<String, String> = HashMap::new();
    for (name, i) in entries {
        let entry_name = format!("{zip_name}/{name}");
        if !name.ends_with(".csv") {
            return Err(DatasetError::Unsupported {
                path: entry_name,
                message: "is not a run CSV (<workflow>-runNNNN.csv)".to_string(),
            });
        }
        let pipeline = format!("{workflow}/{}", run_of(&name));
        if let Some(other) = runs.insert(pipeline.clone(), name.clone()) {
            return Err(DatasetError::Unsupported {
                path: entry_name,
                message: format!("run {pipeline} is also in entry {other}"),
            });
        }
        let mut entry = archive.by_index(i).map_err(zip_err)?;
        let mut bytes = Vec::with_capacity(entry.size().min(MAX_ENTRY_BYTES) as usize);
        (&mut entry)
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DatasetError::Io {
                at: Location::file(Path::new(&entry_name)),
                source: e,
            })?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(DatasetError::Unsupported {
                path: entry_name,
                message: format!("is larger than {MAX_ENTRY_BYTES} bytes"),
            });
        }
        let input = Input::from_reader(Cursor::new(bytes), entry_name)?;
        read_run(input, &workflow, &pipeline, &dag, &mut out)?;
    }
    Ok(out)
}

/// The workflow zips `path` stands for: every `*.zip` of a folder (each must have its
/// adjacency file), or the one zip given.
fn inputs(path: &Path) -> Result<Vec<(PathBuf, PathBuf)>, DatasetError> {
    let zips = if path.is_dir() {
        let mut zips: Vec<PathBuf> = input::list_dir(path)?
            .into_iter()
            .filter(|p| input::name_ends_with(p, ".zip"))
            .collect();
        zips.sort();
        if zips.is_empty() {
            return Err(DatasetError::Unsupported {
                path: path.display().to_string(),
                message: "holds no FlowBench workflow (<workflow>.zip)".to_string(),
            });
        }
        zips
    } else {
        vec![path.to_path_buf()]
    };
    zips.into_iter()
        .map(|zip| {
            let adjacency = adjacency_of(&zip).ok_or_else(|| DatasetError::Unsupported {
                path: zip.display().to_string(),
                message: format!(
                    "has no adjacency file beside it ({}.adj.json.gz or .adj.json)",
                    workflow_of(&zip).unwrap_or("<workflow>")
                ),
            })?;
            Ok((zip, adjacency))
        })
        .collect()
}

/// Reads FlowBench workflows (a folder of them, or one zip): every job of every run,
/// sorted (stably) by submit time. Workflows are read on up to 4 threads.
pub fn read_flowbench(path: &Path) -> Result<Vec<JobRecord>, DatasetError> {
    let workflows = inputs(path)?;
    let parts = crate::parallel::map_in_order(&workflows, |(zip, adj)| read_workflow(zip, adj))?;
    let mut all: Vec<JobRecord> = parts.into_iter().flatten().collect();
    all.sort_by_key(|r| r.submit_s);
    Ok(all)
}

/// Metadata of FlowBench traces: Unix-second times (epoch 0).
pub fn flowbench_meta() -> TraceMeta {
    TraceMeta {
        unix_start: Some(0),
        installation: Some("FlowBench (Pegasus WMS)".to_string()),
        ..TraceMeta::default()
    }
}

/// Opens FlowBench workflows as a trace sorted by submit time.
pub fn open_flowbench(path: &Path) -> Result<Trace, DatasetError> {
    let records = read_flowbench(path)?;
    let mut meta = flowbench_meta();
    meta.max_jobs = Some(records.len() as u64);
    Ok(Trace::from_records(meta, TraceFormat::Flowbench, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&str, &[&str])]) -> Result<Dag, DatasetError> {
        let children = edges
            .iter()
            .map(|(p, c)| (p.to_string(), c.iter().map(|s| s.to_string()).collect()))
            .collect();
        Dag::from_children(&children, &Location::file(Path::new("adj.json")))
    }

    #[test]
    fn depth_is_the_longest_path_and_parents_are_inverted_children() {
        let d = dag(&[("a", &["b", "c", "c"]), ("b", &["c"]), ("c", &["d"])]).expect("dag");
        assert_eq!((d.len(), d.edge_count()), (4, 4));
        assert_eq!(d.depth("a"), Some(0));
        assert_eq!(d.depth("c"), Some(2));
        assert_eq!(d.depth("d"), Some(3));
        assert_eq!(d.parents("c"), Some(vec!["a", "b"]));
        assert_eq!(d.parents("a"), Some(vec![]));
        assert_eq!(d.parents("z"), None);
    }

    #[test]
    fn a_cycle_is_named() {
        let e = dag(&[
            ("root", &["a"]),
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
        ])
        .expect_err("cycle");
        assert_eq!(
            e.to_string(),
            "adj.json: the job graph has a cycle: a -> b -> c -> a"
        );
        let e = dag(&[("x", &["x"])]).expect_err("self loop");
        assert!(e.to_string().ends_with("x -> x"), "{e}");
    }

    #[test]
    fn run_names() {
        assert_eq!(run_of("eht-difmap-run0001.csv"), "run0001");
        assert_eq!(run_of("dir/somospie-run0507.csv"), "run0507");
        assert_eq!(run_of("other.csv"), "other");
        assert_eq!(run_of("x-runner.csv"), "x-runner");
        assert_eq!(
            workflow_of(Path::new("/d/eht_difmap.zip")),
            Some("eht_difmap")
        );
        assert_eq!(workflow_of(Path::new("/d/x.csv")), None);
    }
}
