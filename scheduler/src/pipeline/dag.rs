//! A pipeline as a driver submits it, and the DAG it is checked into once.
//!
//! The stage rule (a job without `needs` needs every job of the earlier stages) is not
//! written as edges from every such job to every earlier job, which would be O(n²) for
//! wide stages. Each stage after the first gets one *gate* node: gate(k) needs gate(k-1)
//! and every job of stage k-1, and a stage-rule job of stage k needs gate(k) alone.
//! Edges stay O(jobs + explicit needs). Gates are never scheduled; they end when their
//! needs are resolved, with the outcome of the stages before them.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{stable_hash, JobSpec, Millis, PipelineId};
use crate::error::CoreError;
use crate::hash::IdMap;

/// When a job runs once its needs are resolved (GitLab's `when`; see the module docs of
/// [`crate::pipeline`] for every rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Only if every need succeeded (or failed with `allow_failure`).
    #[default]
    OnSuccess,
    /// Only if some need failed (without `allow_failure`).
    OnFailure,
    /// Whatever its needs did.
    Always,
    /// Waits for a person ([`crate::Event::PlayManual`]) once the `on_success` condition
    /// holds. A non-blocking manual job does not hold later stages back.
    Manual { blocking: bool },
}

/// What a newer pipeline of its concurrency group does to a pipeline (GitLab's
/// `workflow: auto_cancel: on_new_commit`; see the module docs of [`crate::pipeline`],
/// "Supersession"). The setting of the older pipeline decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoCancel {
    /// GitLab's default: the whole pipeline is cancelled, running jobs included, unless
    /// one of its jobs not marked `interruptible` has started; then nothing is.
    #[default]
    Conservative,
    /// Only its jobs marked `interruptible` are cancelled, running or not; the others
    /// go on, and what needs a cancelled job is decided as after any cancelled need.
    Interruptible,
    /// Nothing is cancelled (it still supersedes older pipelines of its group).
    None,
    /// Not GitLab's: every job that has not started, and the running ones marked
    /// `interruptible`; running jobs not so marked run on. The core's one rule before
    /// the modes; the simulator's replays use it (traces record neither the setting nor
    /// always `interruptible`), and so does a live submission that asks for
    /// supersession without naming a mode.
    UnstartedAndInterruptible,
}

/// One job of a [`PipelineSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineJob {
    /// Unique within the pipeline; errors name the job by it.
    pub name: String,
    /// Position of the job's stage; only the order of the numbers matters.
    #[serde(default)]
    pub stage: u32,
    /// `None`: every job of the earlier stages (GitLab without `needs`). `Some(vec![])`:
    /// nothing, the job is ready at once. Needs may name jobs of the same or earlier
    /// stages (GitLab allows same-stage needs since 14.2), never of later ones.
    #[serde(default)]
    pub needs: Option<Vec<String>>,
    #[serde(default)]
    pub when: When,
    /// A failure counts as a success for the job's dependents and for the pipeline.
    #[serde(default)]
    pub allow_failure: bool,
    /// Supersession may cancel the job while it runs.
    #[serde(default)]
    pub interruptible: bool,
    /// The job as the core schedules it. Its `submit_ms` is ignored: the job enters the
    /// queue when it becomes ready, and that instant is its submit time.
    pub spec: JobSpec,
}

/// A pipeline: jobs, their stages and needs. Checked by [`PipelineSpec::check`] (the core
/// does it on [`crate::Event::SubmitPipeline`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineSpec {
    pub id: PipelineId,
    /// Concurrency group (by default a hash of project and branch, chosen by the driver):
    /// a newer pipeline of the group supersedes the older ones. `None`: never superseded.
    #[serde(default)]
    pub group: Option<u64>,
    /// What a newer pipeline of the group does to this one.
    #[serde(default)]
    pub auto_cancel: AutoCancel,
    pub jobs: Vec<PipelineJob>,
}

/// A pipeline whose names, needs and stages were checked.
#[derive(Debug, Clone)]
pub struct CheckedPipeline {
    id: PipelineId,
    jobs: Vec<PipelineJob>,
    graph: Graph,
}

impl CheckedPipeline {
    pub fn id(&self) -> PipelineId {
        self.id
    }

    pub fn jobs(&self) -> &[PipelineJob] {
        &self.jobs
    }

    /// The length of the longest chain of needs, with `run_ms(i)` the run time of job
    /// `i`: no schedule finishes the pipeline sooner.
    pub fn critical_path_ms(&self, run_ms: impl Fn(usize) -> Millis) -> Millis {
        self.graph.ranks(run_ms).into_iter().max().unwrap_or(0)
    }
}

/// The needs of a checked pipeline: nodes are the jobs (in the spec's order) followed by
/// the stage gates.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    /// Jobs (the nodes before the gates).
    jobs: usize,
    /// Needs of node `v`: `need_list[need_at[v]..need_at[v + 1]]`.
    need_at: Vec<u32>,
    need_list: Vec<u32>,
    /// Dependents of node `v`, likewise.
    dep_at: Vec<u32>,
    dep_list: Vec<u32>,
    /// Every node after its needs.
    topo: Vec<u32>,
}

impl Graph {
    /// Jobs and gates.
    pub(crate) fn nodes(&self) -> usize {
        self.need_at.len() - 1
    }

    pub(crate) fn is_gate(&self, v: u32) -> bool {
        v as usize >= self.jobs
    }

    pub(crate) fn needs(&self, v: u32) -> &[u32] {
        let v = v as usize;
        &self.need_list[self.need_at[v] as usize..self.need_at[v + 1] as usize]
    }

    /// Every node, each after its needs.
    pub(crate) fn topo(&self) -> &[u32] {
        &self.topo
    }

    pub(crate) fn dependents(&self, v: u32) -> &[u32] {
        let v = v as usize;
        &self.dep_list[self.dep_at[v] as usize..self.dep_at[v + 1] as usize]
    }

    /// Per node, the longest path from it to the end of the pipeline: its own run time
    /// (0 for a gate) plus the heaviest chain of its dependents.
    pub(crate) fn ranks(&self, run_ms: impl Fn(usize) -> Millis) -> Vec<Millis> {
        let n = self.jobs;
        let mut rank = vec![0; self.nodes()];
        for &v in self.topo.iter().rev() {
            let tail = self
                .dependents(v)
                .iter()
                .map(|&d| rank[d as usize])
                .max()
                .unwrap_or(0);
            let own = if (v as usize) < n {
                run_ms(v as usize).max(0)
            } else {
                0
            };
            rank[v as usize] = own.saturating_add(tail);
        }
        rank
    }
}

/// What a running pipeline keeps of one of its jobs: no name, no needs (names only
/// matter to the errors of the check, needs are in the [`Graph`]).
#[derive(Debug, Clone)]
pub(crate) struct DagJob {
    pub spec: JobSpec,
    pub when: When,
    pub allow_failure: bool,
    pub interruptible: bool,
}

/// A checked pipeline as the core runs it.
#[derive(Debug)]
pub(crate) struct Dag {
    pub id: PipelineId,
    pub group: Option<u64>,
    pub auto_cancel: AutoCancel,
    pub jobs: Vec<DagJob>,
    /// Shared by the pipelines of one shape ([`GraphCache`]).
    pub graph: Arc<Graph>,
}

impl std::ops::Deref for Dag {
    type Target = Graph;

    fn deref(&self) -> &Graph {
        &self.graph
    }
}

/// How many shapes a [`GraphCache`] keeps (the first ones seen).
const SHAPES_KEPT: usize = 4_096;
/// Pipelines of more jobs are checked and built each time: copying and comparing their
/// shape costs about as much as building their graph, and such pipelines are few.
const SHAPE_JOBS_KEPT: usize = 1_000;

/// The graphs of the pipelines seen, by their shape (each job's name, stage and needs):
/// a driver that creates pipelines from a few templates has each shape checked and built
/// once. A shape is recognised by comparing it whole, never by its hash alone; a
/// pipeline the check refuses is never kept, so it is refused again with the same error.
#[derive(Debug, Default)]
pub(crate) struct GraphCache {
    by_hash: IdMap<u64, Vec<Known>>,
    kept: usize,
}

/// A shape seen, and its graph.
type Known = (Vec<Shape>, Arc<Graph>);

/// What the graph of a pipeline depends on, per job.
#[derive(Debug)]
struct Shape {
    name: String,
    stage: u32,
    needs: Option<Vec<String>>,
}

impl GraphCache {
    /// The graph of `jobs` (of pipeline `pipeline`, named in errors), as
    /// [`Graph::build`] gives it.
    pub(crate) fn graph(
        &mut self,
        pipeline: PipelineId,
        jobs: &[PipelineJob],
    ) -> Result<Arc<Graph>, CoreError> {
        if jobs.len() > SHAPE_JOBS_KEPT {
            return Graph::build(pipeline, jobs).map(Arc::new);
        }
        let mut h = stable_hash("");
        let mut mix = |x: u64| h = (h ^ x).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
        for j in jobs {
            mix(stable_hash(&j.name));
            mix(u64::from(j.stage));
            match &j.needs {
                None => mix(0),
                Some(needs) => {
                    mix(needs.len() as u64 + 1);
                    needs.iter().for_each(|n| mix(stable_hash(n)));
                }
            }
        }
        let same = |shape: &[Shape]| {
            shape.len() == jobs.len()
                && shape
                    .iter()
                    .zip(jobs)
                    .all(|(s, j)| s.stage == j.stage && s.name == j.name && s.needs == j.needs)
        };
        if let Some((_, graph)) = self
            .by_hash
            .get(&h)
            .and_then(|shapes| shapes.iter().find(|(shape, _)| same(shape)))
        {
            return Ok(Arc::clone(graph));
        }
        let graph = Arc::new(Graph::build(pipeline, jobs)?);
        if self.kept < SHAPES_KEPT {
            self.kept += 1;
            let shape = jobs
                .iter()
                .map(|j| Shape {
                    name: j.name.clone(),
                    stage: j.stage,
                    needs: j.needs.clone(),
                })
                .collect();
            self.by_hash
                .entry(h)
                .or_default()
                .push((shape, Arc::clone(&graph)));
        }
        Ok(graph)
    }
}

impl PipelineSpec {
    /// Checks names, needs and stages, and builds the DAG. Refuses an empty pipeline,
    /// empty or duplicate job names, unknown or repeated needs, a need on a job of a later
    /// stage, and cycles, each with an error naming the pipeline and the job.
    pub fn check(self) -> Result<CheckedPipeline, CoreError> {
        let graph = Graph::build(self.id, &self.jobs)?;
        Ok(CheckedPipeline {
            id: self.id,
            jobs: self.jobs,
            graph,
        })
    }
}

impl Graph {
    /// The checks of [`PipelineSpec::check`], on the jobs of pipeline `pipeline`.
    pub(crate) fn build(pipeline: PipelineId, jobs: &[PipelineJob]) -> Result<Graph, CoreError> {
        let n = jobs.len();
        if n == 0 {
            return Err(CoreError::EmptyPipeline { pipeline });
        }
        // Names hashed with the core's fast hasher (the map is only looked up).
        let mut index: IdMap<&str, u32> = IdMap::with_capacity_and_hasher(n, Default::default());
        for (i, j) in jobs.iter().enumerate() {
            if j.name.is_empty() {
                return Err(CoreError::UnnamedJob { pipeline, index: i });
            }
            if index.insert(j.name.as_str(), i as u32).is_some() {
                return Err(CoreError::DuplicateJobName {
                    pipeline,
                    job: j.name.clone(),
                });
            }
        }
        let index = |name: &str| index.get(name).copied();

        // Stages by position; gate k (for stage positions k >= 1) is node n + k - 1.
        let mut stages: Vec<u32> = jobs.iter().map(|j| j.stage).collect();
        stages.sort_unstable();
        stages.dedup();
        let position = |stage: u32| stages.partition_point(|&s| s < stage);
        let gate = |k: usize| (n + k - 1) as u32;
        let nodes = n + stages.len() - 1;

        let mut need_at = Vec::with_capacity(nodes + 1);
        let mut need_list = Vec::with_capacity(nodes + n);
        // Which job last listed each need, to find a need listed twice in O(1); then,
        // per stage position, where its jobs go in the gate rows.
        let mut listed_by = vec![u32::MAX; n];
        need_at.push(0);
        for (i, j) in jobs.iter().enumerate() {
            match &j.needs {
                None => {
                    let k = position(j.stage);
                    if k >= 1 {
                        need_list.push(gate(k));
                    }
                }
                Some(names) => {
                    for name in names {
                        let Some(d) = index(name.as_str()) else {
                            return Err(CoreError::UnknownNeed {
                                pipeline,
                                job: j.name.clone(),
                                need: name.clone(),
                            });
                        };
                        let need_stage = jobs[d as usize].stage;
                        if need_stage > j.stage {
                            return Err(CoreError::NeedOnLaterStage {
                                pipeline,
                                job: j.name.clone(),
                                stage: j.stage,
                                need: name.clone(),
                                need_stage,
                            });
                        }
                        if listed_by[d as usize] == i as u32 {
                            return Err(CoreError::DuplicateNeed {
                                pipeline,
                                job: j.name.clone(),
                                need: name.clone(),
                            });
                        }
                        listed_by[d as usize] = i as u32;
                        need_list.push(d);
                    }
                }
            }
            need_at.push(need_list.len() as u32);
        }
        // Gate k needs gate k - 1 (k >= 2) and the jobs of stage k - 1 in the spec's
        // order: count the jobs per stage, lay out the rows, then fill them in one walk.
        let slot = &mut listed_by[..stages.len()];
        slot.fill(0);
        for j in jobs {
            slot[position(j.stage)] += 1;
        }
        for k in 1..stages.len() {
            if k >= 2 {
                need_list.push(gate(k - 1));
            }
            let count = slot[k - 1];
            slot[k - 1] = need_list.len() as u32;
            need_list.resize(need_list.len() + count as usize, 0);
            need_at.push(need_list.len() as u32);
        }
        let last = stages.len() - 1;
        for (i, j) in jobs.iter().enumerate() {
            let k = position(j.stage);
            if k < last {
                need_list[slot[k] as usize] = i as u32;
                slot[k] += 1;
            }
        }

        // Dependents: the needs turned around (counting sort keeps them in node order).
        let mut dep_at = vec![0u32; nodes + 1];
        for &d in &need_list {
            dep_at[d as usize + 1] += 1;
        }
        for v in 0..nodes {
            dep_at[v + 1] += dep_at[v];
        }
        let mut fill = dep_at.clone();
        let mut dep_list = vec![0u32; need_list.len()];
        for v in 0..nodes {
            for &d in &need_list[need_at[v] as usize..need_at[v + 1] as usize] {
                dep_list[fill[d as usize] as usize] = v as u32;
                fill[d as usize] += 1;
            }
        }

        let mut dag = Graph {
            jobs: n,
            need_at,
            need_list,
            dep_at,
            dep_list,
            topo: Vec::with_capacity(nodes),
        };

        // Kahn's algorithm; nodes left over lie on or behind a cycle.
        let mut missing: Vec<u32> = (0..nodes as u32)
            .map(|v| dag.needs(v).len() as u32)
            .collect();
        dag.topo
            .extend((0..nodes as u32).filter(|&v| missing[v as usize] == 0));
        let mut next = 0;
        while next < dag.topo.len() {
            let v = dag.topo[next];
            next += 1;
            for i in dag.dep_at[v as usize]..dag.dep_at[v as usize + 1] {
                let d = dag.dep_list[i as usize];
                missing[d as usize] -= 1;
                if missing[d as usize] == 0 {
                    dag.topo.push(d);
                }
            }
        }
        if dag.topo.len() < nodes {
            return Err(cycle_error(pipeline, jobs, &dag, &missing));
        }
        Ok(dag)
    }
}

/// The error for a DAG with a cycle: walking from a node Kahn's algorithm left over,
/// always to a need it left over too, must come back to a node already seen. Needs only
/// point to the same or earlier stages, so a cycle holds jobs of one stage, never gates.
/// It is reported from its first job in the spec's order.
fn cycle_error(
    pipeline: PipelineId,
    jobs: &[PipelineJob],
    dag: &Graph,
    missing: &[u32],
) -> CoreError {
    let name = |v: u32| {
        jobs.get(v as usize)
            .map_or_else(|| format!("(stage gate {v})"), |j| j.name.clone())
    };
    let left = |v: u32| missing[v as usize] > 0;
    let start = (0..missing.len() as u32).find(|&v| left(v)).unwrap_or(0);
    let mut walk = vec![start];
    let mut seen_at: HashMap<u32, usize> = HashMap::new();
    seen_at.insert(start, 0);
    let mut v = start;
    let begin = loop {
        let Some(&u) = dag.needs(v).iter().find(|&&u| left(u)) else {
            // Cannot happen (a left-over node has a left-over need); name what we have.
            break 0;
        };
        if let Some(&at) = seen_at.get(&u) {
            break at;
        }
        seen_at.insert(u, walk.len());
        walk.push(u);
        v = u;
    };
    let mut cycle: Vec<u32> = walk[begin..].to_vec();
    if let Some(first) = (0..cycle.len()).min_by_key(|&i| cycle[i]) {
        cycle.rotate_left(first);
    }
    let job = name(cycle[0]);
    let mut names: Vec<String> = cycle.iter().map(|&v| name(v)).collect();
    names.push(job.clone());
    CoreError::NeedCycle {
        pipeline,
        job,
        cycle: names,
    }
}
