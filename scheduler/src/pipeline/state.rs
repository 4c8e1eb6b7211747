//! Running pipelines: the state of every job and gate, what a job's end sets off, and
//! supersession. Nothing here touches the queue or the runners: every step returns
//! [`Effect`]s that the scheduler applies (enqueue a job, take one out, tell the driver).

use std::collections::BTreeMap;

use crate::config::CriticalPathKey;
use crate::domain::{JobId, JobSpec, Millis, PipelineId, PoolMask, RunnerId};
use crate::error::CoreError;
use crate::hash::IdMap;
use crate::predictor::Estimate;

use super::dag::{AutoCancel, Dag, When};
use super::{CancelReason, CriticalPath, PipelineJobState, PipelineState, PipelineStats};

/// Where a job or gate of a running pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// Some need is not resolved yet.
    Created,
    /// In the core: waiting in a lane or running.
    Queued,
    /// A manual job waiting for a person.
    Manual,
    Ended(Terminal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terminal {
    Succeeded,
    Failed { allowed: bool },
    Cancelled,
    Skipped,
}

/// A resolved need as its dependents see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Succeeded, or failed with `allow_failure`.
    Success,
    Failed,
    Cancelled,
    Skipped,
}

impl Terminal {
    fn outcome(self) -> Outcome {
        match self {
            Terminal::Succeeded | Terminal::Failed { allowed: true } => Outcome::Success,
            Terminal::Failed { allowed: false } => Outcome::Failed,
            Terminal::Cancelled => Outcome::Cancelled,
            Terminal::Skipped => Outcome::Skipped,
        }
    }
}

// What a node has seen of its resolved needs, and one mark of its own.
const SAW_FAILED: u8 = 1;
const SAW_CANCELLED: u8 = 2;
/// An explicit need was skipped (a skipped job is neutral through a stage gate).
const SAW_SKIPPED: u8 = 4;
/// This non-blocking manual job already counts as resolved for its gate dependents.
const GATES_DONE: u8 = 8;

/// The mark a need's outcome leaves on a dependent.
pub(crate) fn seen(outcome: Outcome, dependent_is_gate: bool) -> u8 {
    match outcome {
        Outcome::Success => 0,
        Outcome::Failed => SAW_FAILED,
        Outcome::Cancelled => SAW_CANCELLED,
        Outcome::Skipped if dependent_is_gate => 0,
        Outcome::Skipped => SAW_SKIPPED,
    }
}

/// What happens to a node once all its needs are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Run,
    Manual,
    Skip,
    /// A gate ends with the outcome of the stages before it.
    Gate(Outcome),
}

/// The conditions (see the module docs of [`crate::pipeline`]); `when` is `None` for a
/// gate. One definition for the running pipelines and for the ETA projection.
pub(crate) fn decide(when: Option<When>, marks: u8) -> Verdict {
    let failed = marks & SAW_FAILED != 0;
    let cancelled = marks & SAW_CANCELLED != 0;
    let all_succeeded = marks & (SAW_FAILED | SAW_CANCELLED | SAW_SKIPPED) == 0;
    match when {
        None if failed => Verdict::Gate(Outcome::Failed),
        None if cancelled => Verdict::Gate(Outcome::Cancelled),
        None => Verdict::Gate(Outcome::Success),
        Some(When::OnSuccess) if all_succeeded => Verdict::Run,
        Some(When::OnFailure) if failed => Verdict::Run,
        Some(When::Always) => Verdict::Run,
        Some(When::Manual { .. }) if all_succeeded => Verdict::Manual,
        Some(_) => Verdict::Skip,
    }
}

/// What the scheduler must do after a pipeline step, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// The job is ready: put it in the queue now.
    Enqueue {
        spec: JobSpec,
        pools: PoolMask,
    },
    /// The job is cancelled; `queued`: the core holds it (waiting, or running on
    /// `runner`) and must take it out.
    Cancel {
        job: JobId,
        runner: Option<RunnerId>,
        reason: CancelReason,
        queued: bool,
    },
    Skip {
        job: JobId,
    },
    Manual {
        job: JobId,
    },
    Ended {
        pipeline: PipelineId,
        state: PipelineState,
    },
}

/// A queued job of a pipeline, as the core holds it: `None` while it waits; (runner,
/// start, estimated end) while it runs.
pub(crate) type Running = Option<(RunnerId, Millis, Millis)>;

/// One running pipeline.
#[derive(Debug)]
pub(crate) struct Run {
    pub dag: Dag,
    /// Per job: eligible pools and the estimate made at submission (`Predictor::preview`).
    pub pools: Vec<PoolMask>,
    pub estimates: Vec<Estimate>,
    /// Per node: predicted length of the longest path from it to the end.
    pub rank: Vec<Millis>,
    /// The pipeline's critical path by the same estimates (the largest rank).
    pub critical_ms: Millis,
    pub created_ms: Millis,
    pub nodes: Vec<Node>,
    /// Per node: needs not resolved yet.
    pub unresolved: Vec<u32>,
    pub marks: Vec<u8>,
    /// Jobs in the core (waiting or running).
    active: u32,
    /// Set once the pipeline is cancelled or superseded.
    cancelled: Option<CancelReason>,
}

impl Run {
    pub fn when(&self, v: u32) -> Option<When> {
        self.dag.jobs.get(v as usize).map(|j| j.when)
    }

    /// Whether a manual job (in state Manual) counts as resolved for its dependents:
    /// only for gates, and only a non-blocking one.
    pub fn gates_done(&self, v: u32) -> bool {
        self.marks[v as usize] & GATES_DONE != 0
    }

    fn job_id(&self, v: u32) -> JobId {
        self.dag.jobs[v as usize].spec.id
    }

    /// Ends node `v` as `how` and resolves what depends on it, cascading.
    fn end(&mut self, v: u32, how: Terminal, scratch: &mut Scratch, fx: &mut Vec<Effect>) {
        if self.nodes[v as usize] == Node::Queued {
            self.active -= 1;
        }
        self.nodes[v as usize] = Node::Ended(how);
        scratch.work.clear();
        scratch.work.push((v, how.outcome(), false));
        self.cascade(scratch, fx);
    }

    /// Resolves the dependents of each `(node, outcome, gates only)` in `scratch.work`,
    /// and decides every node whose needs are then all resolved. Jobs that become ready
    /// are enqueued in the spec's order.
    fn cascade(&mut self, scratch: &mut Scratch, fx: &mut Vec<Effect>) {
        let Scratch { work, ready, .. } = scratch;
        ready.clear();
        self.resolve(work, Some((&mut *ready, &mut *fx)));
        self.enqueue(ready, fx);
    }

    /// Resolves the dependents of each `(node, outcome, gates only)` in `work`. With
    /// `decide`, a dependent whose last need just resolved is decided at once (and may
    /// push its own outcome); without it nothing is decided, for
    /// [`Pipelines::restore`], which decides every node in topological order itself.
    fn resolve(
        &mut self,
        work: &mut Vec<(u32, Outcome, bool)>,
        mut decide: Option<(&mut Vec<u32>, &mut Vec<Effect>)>,
    ) {
        while let Some((v, outcome, gates_only)) = work.pop() {
            let skip_gates = !gates_only && self.gates_done(v);
            for i in 0..self.dag.dependents(v).len() {
                let d = self.dag.dependents(v)[i];
                let gate = self.dag.is_gate(d);
                if (gates_only && !gate) || (skip_gates && gate) {
                    continue;
                }
                // Cancelled by supersession while its need still ran.
                if self.nodes[d as usize] != Node::Created {
                    continue;
                }
                self.marks[d as usize] |= seen(outcome, gate);
                self.unresolved[d as usize] -= 1;
                if self.unresolved[d as usize] == 0 {
                    if let Some((ready, fx)) = decide.as_mut() {
                        self.decide_node(d, work, ready, fx);
                    }
                }
            }
        }
    }

    /// How job `v` ended, a failure allowed or not by the job's own `allow_failure`
    /// (whatever the caller said: the pipeline's spec decides).
    fn terminal(&self, v: u32, how: Terminal) -> Terminal {
        match how {
            Terminal::Failed { .. } => Terminal::Failed {
                allowed: self.dag.jobs[v as usize].allow_failure,
            },
            other => other,
        }
    }

    /// Ready jobs go to the queue in the spec's order.
    fn enqueue(&self, ready: &mut [u32], fx: &mut Vec<Effect>) {
        ready.sort_unstable();
        for &v in ready.iter() {
            let i = v as usize;
            fx.push(Effect::Enqueue {
                spec: self.dag.jobs[i].spec.clone(),
                pools: self.pools[i],
            });
        }
    }

    fn decide_node(
        &mut self,
        d: u32,
        work: &mut Vec<(u32, Outcome, bool)>,
        ready: &mut Vec<u32>,
        fx: &mut Vec<Effect>,
    ) {
        match decide(self.when(d), self.marks[d as usize]) {
            Verdict::Gate(outcome) => {
                self.nodes[d as usize] = Node::Ended(match outcome {
                    Outcome::Failed => Terminal::Failed { allowed: false },
                    Outcome::Cancelled => Terminal::Cancelled,
                    Outcome::Success | Outcome::Skipped => Terminal::Succeeded,
                });
                work.push((d, outcome, false));
            }
            Verdict::Run => {
                self.nodes[d as usize] = Node::Queued;
                self.active += 1;
                ready.push(d);
            }
            Verdict::Skip => {
                self.nodes[d as usize] = Node::Ended(Terminal::Skipped);
                fx.push(Effect::Skip {
                    job: self.job_id(d),
                });
                work.push((d, Outcome::Skipped, false));
            }
            Verdict::Manual => {
                self.nodes[d as usize] = Node::Manual;
                fx.push(Effect::Manual {
                    job: self.job_id(d),
                });
                if self.when(d) == Some(When::Manual { blocking: false }) {
                    // GitLab: a non-blocking manual job does not hold later stages back.
                    self.marks[d as usize] |= GATES_DONE;
                    work.push((d, Outcome::Skipped, true));
                }
            }
        }
    }

    /// Cancels every job that has not ended, running ones too.
    fn cancel_all(
        &mut self,
        now: Millis,
        reason: CancelReason,
        running: &impl Fn(JobId) -> Option<Running>,
        stats: &mut PipelineStats,
        fx: &mut Vec<Effect>,
    ) {
        for v in 0..self.dag.jobs.len() as u32 {
            self.cancel_job(v, now, reason, running, stats, fx);
        }
        self.cancelled = Some(reason);
    }

    /// Cancels job `v` if it has not ended (its dependents are the caller's business);
    /// whether it did.
    fn cancel_job(
        &mut self,
        v: u32,
        now: Millis,
        reason: CancelReason,
        running: &impl Fn(JobId) -> Option<Running>,
        stats: &mut PipelineStats,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let job = self.job_id(v);
        let estimate = self.estimates[v as usize].point_ms;
        // (in the core, runner, estimated run time saved, run time lost)
        let (queued, runner, saved, lost) = match self.nodes[v as usize] {
            Node::Created | Node::Manual => (false, None, estimate, 0),
            Node::Queued => match running(job) {
                Some(None) => (true, None, estimate, 0),
                Some(Some((r, start, est_end))) => {
                    (true, Some(r), (est_end - now).max(0), (now - start).max(0))
                }
                // Not in the core: nothing to take out.
                None => (false, None, estimate, 0),
            },
            Node::Ended(_) => return false,
        };
        if self.nodes[v as usize] == Node::Queued {
            self.active -= 1;
        }
        self.nodes[v as usize] = Node::Ended(Terminal::Cancelled);
        fx.push(Effect::Cancel {
            job,
            runner,
            reason,
            queued,
        });
        if matches!(reason, CancelReason::Superseded { .. }) {
            stats.superseded_jobs += 1;
            stats.interrupted_jobs += u64::from(runner.is_some());
            stats.saved_run_ms += saved;
            stats.lost_run_ms += lost;
        }
        true
    }

    /// Whether a job not marked `interruptible` has started: running, or ended after
    /// it ran (succeeded or failed). What `auto_cancel: conservative` asks.
    fn started_uninterruptible(&self, running: &impl Fn(JobId) -> Option<Running>) -> bool {
        (0..self.dag.jobs.len() as u32).any(|v| {
            !self.dag.jobs[v as usize].interruptible
                && match self.nodes[v as usize] {
                    Node::Queued => matches!(running(self.job_id(v)), Some(Some(_))),
                    Node::Ended(Terminal::Succeeded | Terminal::Failed { .. }) => true,
                    _ => false,
                }
        })
    }

    /// A newer pipeline of the group supersedes this one, as its `auto_cancel` says (see
    /// the module docs of [`crate::pipeline`], "Supersession"); whether it lost a job.
    fn supersede(
        &mut self,
        now: Millis,
        reason: CancelReason,
        running: &impl Fn(JobId) -> Option<Running>,
        stats: &mut PipelineStats,
        scratch: &mut Scratch,
        fx: &mut Vec<Effect>,
    ) -> bool {
        match self.dag.auto_cancel {
            AutoCancel::None => false,
            AutoCancel::UnstartedAndInterruptible => {
                for v in 0..self.dag.jobs.len() as u32 {
                    let runs_on = self.nodes[v as usize] == Node::Queued
                        && matches!(running(self.job_id(v)), Some(Some(_)));
                    if !runs_on || self.dag.jobs[v as usize].interruptible {
                        self.cancel_job(v, now, reason, running, stats, fx);
                    }
                }
                self.cancelled = Some(reason);
                true
            }
            AutoCancel::Conservative => {
                if self.started_uninterruptible(running) {
                    return false;
                }
                self.cancel_all(now, reason, running, stats, fx);
                true
            }
            AutoCancel::Interruptible => {
                // Every interruptible job first, then what needs them: a dependent that
                // is interruptible itself is already cancelled, not decided.
                scratch.work.clear();
                for v in 0..self.dag.jobs.len() as u32 {
                    if self.dag.jobs[v as usize].interruptible
                        && self.cancel_job(v, now, reason, running, stats, fx)
                    {
                        scratch.work.push((v, Outcome::Cancelled, false));
                    }
                }
                if scratch.work.is_empty() {
                    return false;
                }
                self.cancelled = Some(reason);
                self.cascade(scratch, fx);
                true
            }
        }
    }
}

/// A job of a pipeline being restored ([`Pipelines::restore`]), as the driver's store
/// has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restore {
    /// Neither started nor ended: decided again from its needs' ends.
    Open,
    /// The scheduler put it back in the core (it runs).
    InCore,
    Ended(Terminal),
}

/// Buffers a step reuses, so that a job's end or a pipeline's creation allocates
/// nothing of its own.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// `(node, outcome, gates only)` still to resolve the dependents of.
    work: Vec<(u32, Outcome, bool)>,
    /// Jobs that became ready in this step.
    ready: Vec<u32>,
    /// The older pipelines of a group a new one supersedes.
    older: Vec<PipelineId>,
}

/// Every running pipeline, and which pipeline each of their jobs belongs to.
#[derive(Debug, Default)]
pub(crate) struct Pipelines {
    /// Boxed: the map moves its values when it grows or shrinks.
    runs: BTreeMap<PipelineId, Box<Run>>,
    of_job: IdMap<JobId, (PipelineId, u32)>,
    /// Running pipelines of each concurrency group, oldest first.
    groups: IdMap<u64, Vec<PipelineId>>,
    stats: PipelineStats,
    scratch: Scratch,
}

impl Pipelines {
    pub fn is_running(&self, pipeline: PipelineId) -> bool {
        self.runs.contains_key(&pipeline)
    }

    /// Whether `job` belongs to a running pipeline.
    pub fn holds(&self, job: JobId) -> bool {
        self.of_job.contains_key(&job)
    }

    pub fn runs(&self) -> impl Iterator<Item = (&PipelineId, &Run)> {
        self.runs.iter().map(|(id, run)| (id, &**run))
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    fn node(&self, job: JobId) -> Option<(&Run, u32)> {
        let &(p, v) = self.of_job.get(&job)?;
        Some((self.runs.get(&p)?, v))
    }

    /// A pipeline job's key under critical-path order, queued at `ready` (see the
    /// module docs, "Critical-path order"): (primary, tie-break), lower first. `None`
    /// for a job in no pipeline.
    pub fn critical_path_key(
        &self,
        job: JobId,
        ready: Millis,
        rule: CriticalPathKey,
    ) -> Option<(i64, i64)> {
        let (run, v) = self.node(job)?;
        let rank = run.rank[v as usize];
        // The instant the job must start for its pipeline to end by `created + critical
        // path` (by the estimates made at submission).
        let latest_start = run
            .created_ms
            .saturating_add(run.critical_ms)
            .saturating_sub(rank);
        Some(match rule {
            CriticalPathKey::OldestPipeline => (run.created_ms, -rank),
            CriticalPathKey::CappedLatestStart => (latest_start.min(ready), -rank),
            CriticalPathKey::BoundedLatestStart => (
                latest_start
                    .min(ready)
                    .max(ready.saturating_sub(run.critical_ms)),
                -rank,
            ),
            // The rule as it was before aging: ties by queue time alone.
            CriticalPathKey::LatestStart => (latest_start, 0),
        })
    }

    /// The state of a job of a running pipeline (`running(job)` tells a queued job's
    /// place in the core).
    pub fn job_state(
        &self,
        job: JobId,
        running: impl Fn(JobId) -> Option<Running>,
    ) -> Option<PipelineJobState> {
        let (run, v) = self.node(job)?;
        Some(match run.nodes[v as usize] {
            Node::Created => PipelineJobState::Created,
            Node::Manual => PipelineJobState::Manual,
            Node::Queued => match running(job) {
                Some(Some(_)) => PipelineJobState::Running,
                _ => PipelineJobState::Waiting,
            },
            Node::Ended(Terminal::Succeeded) => PipelineJobState::Succeeded,
            Node::Ended(Terminal::Failed { allowed }) => PipelineJobState::Failed { allowed },
            Node::Ended(Terminal::Cancelled) => PipelineJobState::Cancelled,
            Node::Ended(Terminal::Skipped) => PipelineJobState::Skipped,
        })
    }

    /// The critical path of a running pipeline at `now` (see the module docs of
    /// [`crate::pipeline`], "Critical path now"); `None` if it is not running.
    pub fn critical_path(
        &self,
        pipeline: PipelineId,
        now: Millis,
        running: impl Fn(JobId) -> Option<Running>,
    ) -> Option<CriticalPath> {
        let run = self.runs.get(&pipeline)?;
        let jobs = run.dag.jobs.len();
        // What each job still has to run (`None`: it will not run, or it ended).
        let own: Vec<Option<Millis>> = (0..jobs as u32)
            .map(|v| {
                let i = v as usize;
                let estimate = run.estimates[i].point_ms.max(0);
                match run.nodes[i] {
                    Node::Ended(_) => None,
                    Node::Manual => Some(estimate),
                    Node::Queued => match running(run.job_id(v)) {
                        Some(Some((_, _, est_end))) => Some((est_end - now).max(0)),
                        _ => Some(estimate),
                    },
                    Node::Created => match decide(run.when(v), run.marks[i]) {
                        Verdict::Run | Verdict::Manual => Some(estimate),
                        Verdict::Skip | Verdict::Gate(_) => None,
                    },
                }
            })
            .collect();
        let ranks = run
            .dag
            .ranks(|i| own.get(i).copied().flatten().unwrap_or(0));
        let mut at =
            (0..ranks.len()).fold(0, |best, v| if ranks[v] > ranks[best] { v } else { best });
        let mut path = Vec::new();
        loop {
            if own.get(at).copied().flatten().is_some() {
                path.push(run.job_id(at as u32));
            }
            let next = run.dag.dependents(at as u32).iter().copied().fold(
                None::<u32>,
                |best, d| match best {
                    Some(b) if ranks[b as usize] >= ranks[d as usize] => Some(b),
                    _ => Some(d),
                },
            );
            match next {
                Some(d) => at = d as usize,
                None => break,
            }
        }
        Some(CriticalPath {
            jobs: path,
            remaining_ms: ranks.iter().copied().max().unwrap_or(0),
            job_remaining_ms: (0..jobs)
                .map(|i| if own[i].is_some() { ranks[i] } else { 0 })
                .collect(),
        })
    }

    /// Takes in a checked pipeline at `now` (its jobs' ids, specs and pools already
    /// checked by the scheduler; `estimates` from `Predictor::preview`): supersedes the
    /// older pipelines of its group, then decides every job without needs.
    pub fn admit(
        &mut self,
        dag: Dag,
        pools: Vec<PoolMask>,
        estimates: Vec<Estimate>,
        now: Millis,
        running: impl Fn(JobId) -> Option<Running>,
        fx: &mut Vec<Effect>,
    ) {
        let id = dag.id;
        if let Some(group) = dag.group {
            // A copy: ending an older pipeline takes it out of its group's list.
            let mut older = std::mem::take(&mut self.scratch.older);
            older.clear();
            older.extend_from_slice(self.groups.get(&group).map_or(&[], Vec::as_slice));
            for &p in &older {
                let Some(run) = self.runs.get_mut(&p) else {
                    continue;
                };
                if run.cancelled.is_some() {
                    continue; // already superseded, waiting for jobs that may not stop
                }
                let reason = CancelReason::Superseded { by: id };
                if run.supersede(
                    now,
                    reason,
                    &running,
                    &mut self.stats,
                    &mut self.scratch,
                    fx,
                ) {
                    self.stats.superseded += 1;
                    self.end_if_done(p, fx);
                }
            }
            self.scratch.older = older;
            // Nothing supersedes a pipeline whose setting is `none`.
            if dag.auto_cancel != AutoCancel::None {
                self.groups.entry(group).or_default().push(id);
            }
        }

        let mut run = self.new_run(dag, pools, estimates, now, None);
        let nodes = run.nodes.len();
        // Roots are decided like any node whose needs are resolved: a `work` item per
        // root would need a fake need, so decide them directly, in the spec's order.
        let Scratch { work, ready, .. } = &mut self.scratch;
        work.clear();
        ready.clear();
        for v in 0..nodes as u32 {
            if run.unresolved[v as usize] == 0 {
                run.decide_node(v, work, ready, fx);
            }
        }
        // Enqueue the ready roots first, then cascade from skips and manual jobs (which
        // enqueue their own ready jobs after them).
        run.enqueue(ready, fx);
        run.cascade(&mut self.scratch, fx);
        self.runs.insert(id, run);
        self.end_if_done(id, fx);
    }

    /// A pipeline's run with every node Created, its jobs known by id (counted as
    /// submitted); its group is the caller's business.
    fn new_run(
        &mut self,
        dag: Dag,
        pools: Vec<PoolMask>,
        estimates: Vec<Estimate>,
        created_ms: Millis,
        cancelled: Option<CancelReason>,
    ) -> Box<Run> {
        let ranks = dag.ranks(|i| estimates[i].point_ms);
        let critical_ms = ranks.iter().copied().max().unwrap_or(0);
        let nodes = dag.nodes();
        let unresolved: Vec<u32> = (0..nodes as u32)
            .map(|v| dag.needs(v).len() as u32)
            .collect();
        for (i, j) in dag.jobs.iter().enumerate() {
            self.of_job.insert(j.spec.id, (dag.id, i as u32));
        }
        self.stats.submitted += 1;
        Box::new(Run {
            dag,
            pools,
            estimates,
            rank: ranks,
            critical_ms,
            created_ms,
            nodes: vec![Node::Created; nodes],
            unresolved,
            marks: vec![0; nodes],
            active: 0,
            cancelled,
        })
    }

    /// Rebuilds a pipeline a driver had running before a restart, created at
    /// `created_ms` (cancelled or superseded if `cancelled`), from what its store has of
    /// each job (`jobs`, in the spec's order): ended jobs keep their end, jobs the
    /// scheduler put back in the core are running, and every other job whose needs all
    /// ended is decided again (the conditions depend only on the needs' ends, so it is
    /// decided as it was: a ready job is enqueued again, a manual one is manual again).
    /// Older pipelines of its group are not superseded again: the driver restores them
    /// too, oldest first. Unlike [`Pipelines::admit`], nothing is decided twice for a
    /// job the store has ended.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        dag: Dag,
        pools: Vec<PoolMask>,
        estimates: Vec<Estimate>,
        created_ms: Millis,
        cancelled: Option<CancelReason>,
        jobs: &[Restore],
        fx: &mut Vec<Effect>,
    ) {
        let id = dag.id;
        if let Some(group) = dag.group.filter(|_| dag.auto_cancel != AutoCancel::None) {
            self.groups.entry(group).or_default().push(id);
        }
        let mut run = self.new_run(dag, pools, estimates, created_ms, cancelled);
        let Scratch { work, ready, .. } = &mut self.scratch;
        work.clear();
        ready.clear();
        // Every node comes after its needs: once reached, its needs are all settled.
        for i in 0..run.dag.topo().len() {
            let v = run.dag.topo()[i];
            match jobs.get(v as usize).copied() {
                Some(Restore::Ended(how)) => {
                    let how = run.terminal(v, how);
                    run.nodes[v as usize] = Node::Ended(how);
                    work.push((v, how.outcome(), false));
                }
                Some(Restore::InCore) => {
                    run.nodes[v as usize] = Node::Queued;
                    run.active += 1;
                }
                // An open job or a gate.
                _ if run.unresolved[v as usize] == 0 => run.decide_node(v, work, ready, fx),
                _ => {}
            }
            run.resolve(work, None);
        }
        run.enqueue(ready, fx);
        self.runs.insert(id, run);
        self.end_if_done(id, fx);
    }

    /// A job of a pipeline ended: `how` is `Succeeded`, `Failed` (allowed or not is the
    /// job's `allow_failure`), `Cancelled` or `Skipped`. The scheduler has already taken
    /// it out of the core if it was there. Nothing happens for a job in no running
    /// pipeline or one that already ended.
    pub fn job_ended(&mut self, job: JobId, how: Terminal, fx: &mut Vec<Effect>) {
        let Some(&(p, v)) = self.of_job.get(&job) else {
            return;
        };
        let Some(run) = self.runs.get_mut(&p) else {
            return;
        };
        if matches!(run.nodes[v as usize], Node::Ended(_)) {
            return;
        }
        let how = run.terminal(v, how);
        run.end(v, how, &mut self.scratch, fx);
        self.end_if_done(p, fx);
    }

    /// Whether a job of a running pipeline has not started: Created or Manual
    /// (`Some(false)` for a queued or ended one, `None` for a job in no pipeline).
    pub fn is_unstarted(&self, job: JobId) -> Option<bool> {
        let (run, v) = self.node(job)?;
        Some(matches!(
            run.nodes[v as usize],
            Node::Created | Node::Manual
        ))
    }

    /// A person plays a manual job: it is ready now.
    pub fn play(&mut self, job: JobId, fx: &mut Vec<Effect>) -> Result<(), CoreError> {
        let &(p, v) = self.of_job.get(&job).ok_or(CoreError::NotManual(job))?;
        let run = self.runs.get_mut(&p).ok_or(CoreError::NotManual(job))?;
        if run.nodes[v as usize] != Node::Manual {
            return Err(CoreError::NotManual(job));
        }
        run.nodes[v as usize] = Node::Queued;
        run.active += 1;
        run.enqueue(&mut [v], fx);
        Ok(())
    }

    /// Cancels a whole pipeline, running jobs included.
    pub fn cancel(
        &mut self,
        pipeline: PipelineId,
        now: Millis,
        running: impl Fn(JobId) -> Option<Running>,
        fx: &mut Vec<Effect>,
    ) -> Result<(), CoreError> {
        let run = self
            .runs
            .get_mut(&pipeline)
            .ok_or(CoreError::UnknownPipeline(pipeline))?;
        run.cancel_all(
            now,
            CancelReason::PipelineCancelled,
            &running,
            &mut self.stats,
            fx,
        );
        self.end_if_done(pipeline, fx);
        Ok(())
    }

    /// Ends `pipeline` if none of its jobs is in the core: nothing more can happen to it
    /// without a person. Jobs still Created wait behind a manual job never played; they
    /// are skipped. Unplayed manual jobs stay manual.
    fn end_if_done(&mut self, pipeline: PipelineId, fx: &mut Vec<Effect>) {
        let Some(run) = self.runs.get(&pipeline) else {
            return;
        };
        if run.active > 0 {
            return;
        }
        let Some(mut run) = self.runs.remove(&pipeline) else {
            return;
        };
        let (mut failed, mut cancelled, mut blocked) = (false, run.cancelled.is_some(), false);
        for v in 0..run.dag.jobs.len() as u32 {
            let job = run.job_id(v);
            match run.nodes[v as usize] {
                Node::Created => {
                    run.nodes[v as usize] = Node::Ended(Terminal::Skipped);
                    fx.push(Effect::Skip { job });
                    blocked = true;
                }
                Node::Manual if run.when(v) == Some(When::Manual { blocking: true }) => {
                    blocked = true;
                }
                Node::Ended(Terminal::Failed { allowed: false }) => failed = true,
                Node::Ended(Terminal::Cancelled) => cancelled = true,
                _ => {}
            }
            self.of_job.remove(&job);
        }
        if let Some(group) = run.dag.group {
            if let Some(list) = self.groups.get_mut(&group) {
                list.retain(|&p| p != pipeline);
                if list.is_empty() {
                    self.groups.remove(&group);
                }
            }
        }
        // GitLab's precedence: a superseded pipeline in which a job had failed is
        // reported failed (as in the DataDog trace), one with a cancelled job cancelled.
        let state = if failed {
            self.stats.failed += 1;
            PipelineState::Failed
        } else if cancelled {
            self.stats.cancelled += 1;
            PipelineState::Cancelled
        } else if blocked {
            self.stats.blocked += 1;
            PipelineState::Blocked
        } else {
            self.stats.succeeded += 1;
            PipelineState::Succeeded
        };
        fx.push(Effect::Ended { pipeline, state });
    }
}
