//! The scheduler's side of pipelines: the events that concern them, and the effects
//! `crate::pipeline::state` decides, applied to the queue and the runners.

use super::{Decision, EntryState, JobEntry, Scheduler};
use crate::domain::PoolMask;
use crate::domain::{JobId, JobSpec, Millis, PipelineId};
use crate::error::CoreError;
use crate::hash::IdMap;
use crate::pipeline::state::{Effect, Pipelines, Restore, Running, Terminal};
use crate::pipeline::{
    CancelReason, CriticalPath, Dag, DagJob, PipelineJobState, PipelineSpec, PipelineStats,
    RestoredJob,
};
use crate::predictor::Estimate;

/// Where a job is in the core: `None` if the core does not hold it; `Some(None)` while
/// it waits; `Some(Some((runner, start, estimated end)))` while it runs.
fn running_in(jobs: &IdMap<JobId, JobEntry>) -> impl Fn(JobId) -> Option<Running> + '_ {
    move |job| jobs.get(&job).map(JobEntry::running)
}

impl Scheduler {
    /// The state of a job of a running pipeline; `None` for a job in no running pipeline.
    pub fn pipeline_job_state(&self, job: JobId) -> Option<PipelineJobState> {
        self.pipelines.job_state(job, running_in(&self.jobs))
    }

    /// The critical path of a running pipeline at `now`, by the estimates made at its
    /// submission (see the module docs of [`crate::pipeline`], "Critical path now");
    /// `None` if the pipeline is not running. Pure: it reads the core only.
    pub fn critical_path(&self, pipeline: PipelineId, now: Millis) -> Option<CriticalPath> {
        self.pipelines
            .critical_path(pipeline, now, running_in(&self.jobs))
    }

    pub fn is_pipeline_running(&self, pipeline: PipelineId) -> bool {
        self.pipelines.is_running(pipeline)
    }

    /// Counts over every pipeline this scheduler has seen (supersession's savings too).
    pub fn pipeline_stats(&self) -> PipelineStats {
        self.pipelines.stats()
    }

    /// Pipeline jobs that have entered the queue so far: a job becoming ready (or a
    /// manual job played) is its arrival, as a submission is an independent job's.
    pub fn pipeline_jobs_queued(&self) -> u64 {
        self.pipeline_jobs_queued
    }

    pub(crate) fn pipelines(&self) -> &Pipelines {
        &self.pipelines
    }

    /// A pipeline and the skips its trace recorded, as [`Scheduler::handle_all`] takes
    /// [`super::Event::SubmitPipeline`] followed by an [`super::Event::Skip`] per job of
    /// `skips`, with the same decisions; the spec is borrowed (a replay submits the same
    /// specs again and again: the core copies what it keeps, the jobs' specs and
    /// conditions, never their names).
    pub fn handle_pipeline(
        &mut self,
        now: Millis,
        spec: &PipelineSpec,
        skips: &[JobId],
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        self.check_time(now)?;
        self.last_now = now;
        let mut result = self.submit_pipeline(now, spec, out);
        if result.is_ok() {
            for &job in skips {
                if let Err(e) = self.skip_event(now, job, out) {
                    result = Err(e);
                    break;
                }
            }
        }
        self.schedule(now, out);
        result
    }

    /// [`super::Event::SubmitPipeline`]: everything is checked before anything changes.
    pub(super) fn submit_pipeline(
        &mut self,
        now: Millis,
        spec: &PipelineSpec,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        let (dag, pools, estimates) = self.dag_of(now, spec)?;
        self.pipeline_step(now, out, |p, jobs, fx| {
            p.admit(dag, pools, estimates, now, running_in(jobs), fx);
            Ok(())
        })
    }

    /// Rebuilds a pipeline a driver ran before a restart (see the module docs of
    /// [`crate::pipeline`], "Restart"): `jobs` gives each job of `spec`, in its order, as
    /// the driver's store has it; `created_ms` is the pipeline's creation and `cancelled`
    /// says whether it was cancelled or superseded. Running jobs are put back on their
    /// runners (the runners must have rejoined; a job its runner cannot hold waits in the
    /// queue again), ended jobs stay ended, every other job whose needs all ended is
    /// decided again: the decisions (skips, manual jobs, the pipeline's end if nothing is
    /// left) are appended to `out`, ready jobs are queued. No pass runs: the driver runs
    /// one once everything is restored. A driver restores the pipelines of a group
    /// oldest first; none supersedes another again.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_pipeline(
        &mut self,
        now: Millis,
        spec: &PipelineSpec,
        created_ms: Millis,
        cancelled: Option<CancelReason>,
        jobs: &[RestoredJob],
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        self.check_time(now)?;
        if jobs.len() != spec.jobs.len() {
            return Err(CoreError::RestoreMismatch {
                pipeline: spec.id,
                states: jobs.len(),
                jobs: spec.jobs.len(),
            });
        }
        let (dag, pools, estimates) = self.dag_of(now, spec)?;
        self.last_now = now;
        let mut states = Vec::with_capacity(jobs.len());
        for (job, restored) in dag.jobs.iter().zip(jobs) {
            states.push(match *restored {
                RestoredJob::Open => Restore::Open,
                RestoredJob::Running { runner, start_ms } => {
                    let spec = JobSpec {
                        submit_ms: start_ms,
                        ..job.spec.clone()
                    };
                    // Before the pipeline holds the job (`submit` refuses its jobs).
                    match self.restore_running(spec, runner, start_ms) {
                        Ok(_) => Restore::InCore,
                        Err(_) => Restore::Open,
                    }
                }
                RestoredJob::Succeeded => Restore::Ended(Terminal::Succeeded),
                // Allowed or not: the pipeline's spec says (`Run::terminal`).
                RestoredJob::Failed => Restore::Ended(Terminal::Failed { allowed: false }),
                RestoredJob::Cancelled => Restore::Ended(Terminal::Cancelled),
                RestoredJob::Skipped => Restore::Ended(Terminal::Skipped),
            });
        }
        self.pipeline_step(now, out, |p, _, fx| {
            p.restore(dag, pools, estimates, created_ms, cancelled, &states, fx);
            Ok(())
        })
    }

    /// A checked spec as the core runs it: its DAG (jobs submitted at `now`), each job's
    /// pools and estimate. Nothing changes when it fails.
    fn dag_of(
        &mut self,
        now: Millis,
        spec: &PipelineSpec,
    ) -> Result<(Dag, Vec<PoolMask>, Vec<Estimate>), CoreError> {
        let pipeline = spec.id;
        if self.pipelines.is_running(pipeline) {
            return Err(CoreError::DuplicatePipeline(pipeline));
        }
        let graph = self.pipeline_graphs.graph(pipeline, &spec.jobs)?;
        let mut jobs = Vec::with_capacity(spec.jobs.len());
        let mut pools = Vec::with_capacity(spec.jobs.len());
        let mut estimates = Vec::with_capacity(spec.jobs.len());
        let mut ids = std::mem::take(&mut self.pipeline_ids);
        ids.clear();
        for job in &spec.jobs {
            // The pipeline is created now; each job is queued when it becomes ready.
            let job_spec = JobSpec {
                submit_ms: now,
                ..job.spec.clone()
            };
            let id = job_spec.id;
            let checked = if self.pipelines.holds(id) || ids.insert(id, ()).is_some() {
                Err(CoreError::DuplicateJob(id))
            } else {
                self.check_job(&job_spec)
            };
            match checked {
                Ok(p) => pools.push(p),
                Err(e) => {
                    self.pipeline_ids = ids;
                    return Err(CoreError::PipelineJob {
                        pipeline,
                        job: job.name.clone(),
                        source: Box::new(e),
                    });
                }
            }
            estimates.push(self.preview(&job_spec));
            jobs.push(DagJob {
                spec: job_spec,
                when: job.when,
                allow_failure: job.allow_failure,
                interruptible: job.interruptible,
            });
        }
        self.pipeline_ids = ids;
        let dag = Dag {
            id: pipeline,
            group: spec.group,
            auto_cancel: spec.auto_cancel,
            jobs,
            graph,
        };
        Ok((dag, pools, estimates))
    }

    /// [`super::Event::CancelPipeline`].
    pub(super) fn cancel_pipeline(
        &mut self,
        now: Millis,
        pipeline: PipelineId,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        self.pipeline_step(now, out, |p, jobs, fx| {
            p.cancel(pipeline, now, running_in(jobs), fx)
        })
    }

    /// [`super::Event::PlayManual`].
    pub(super) fn play_manual(
        &mut self,
        now: Millis,
        job: JobId,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        self.pipeline_step(now, out, |p, _, fx| p.play(job, fx))
    }

    /// [`super::Event::Skip`]: a waiting job leaves the queue; a running one cannot be
    /// skipped.
    pub(super) fn skip_event(
        &mut self,
        now: Millis,
        job: JobId,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        match self.pipelines.is_unstarted(job) {
            None => return Err(CoreError::NotInPipeline(job)),
            Some(true) => {}
            Some(false) => match self.jobs.get(&job).map(|e| &e.state) {
                Some(EntryState::Running { .. }) => return Err(CoreError::AlreadyStarted(job)),
                Some(EntryState::Pending { .. }) => self.cancel(now, job)?,
                None => return Ok(()), // it already ended
            },
        }
        self.pipeline_job_ended(now, job, Terminal::Skipped, out);
        Ok(())
    }

    /// [`super::Event::Cancel`]: a job the core holds, or a pipeline job that has not
    /// been queued (Created or Manual).
    pub(super) fn cancel_event(
        &mut self,
        now: Millis,
        job: JobId,
        out: &mut Vec<Decision>,
    ) -> Result<(), CoreError> {
        let unstarted =
            !self.jobs.contains_key(&job) && self.pipelines.is_unstarted(job) == Some(true);
        if !unstarted {
            self.cancel(now, job)?;
        }
        self.pipeline_job_ended(now, job, Terminal::Cancelled, out);
        Ok(())
    }

    /// A job ended (finished, failed, cancelled or skipped; already out of the core): if
    /// it belongs to a pipeline, the pipeline moves on. Nothing for an independent job.
    pub(super) fn pipeline_job_ended(
        &mut self,
        now: Millis,
        job: JobId,
        how: Terminal,
        out: &mut Vec<Decision>,
    ) {
        let mut fx = std::mem::take(&mut self.pipeline_fx);
        self.pipelines.job_ended(job, how, &mut fx);
        self.apply_effects(now, &mut fx, out);
        self.pipeline_fx = fx;
    }

    /// Runs `step` on the pipelines, then applies what it decided.
    fn pipeline_step(
        &mut self,
        now: Millis,
        out: &mut Vec<Decision>,
        step: impl FnOnce(
            &mut Pipelines,
            &IdMap<JobId, JobEntry>,
            &mut Vec<Effect>,
        ) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let mut fx = std::mem::take(&mut self.pipeline_fx);
        let stepped = step(&mut self.pipelines, &self.jobs, &mut fx);
        if stepped.is_ok() {
            self.apply_effects(now, &mut fx, out);
        }
        fx.clear();
        self.pipeline_fx = fx;
        stepped
    }

    /// Applies what a pipeline step decided, in order (and empties `fx`).
    fn apply_effects(&mut self, now: Millis, fx: &mut Vec<Effect>, out: &mut Vec<Decision>) {
        for effect in fx.drain(..) {
            match effect {
                Effect::Enqueue { mut spec, pools } => {
                    spec.submit_ms = now;
                    self.pipeline_jobs_queued += 1;
                    self.admit(spec, pools);
                }
                Effect::Cancel {
                    job,
                    runner,
                    reason,
                    queued,
                } => {
                    if queued {
                        // `queued` was read from the core in this very step, so `cancel`
                        // finds the job (it fails only for an unknown one).
                        let _ = self.cancel(now, job);
                    }
                    out.push(Decision::Cancel {
                        job,
                        runner,
                        reason,
                    });
                }
                Effect::Skip { job } => out.push(Decision::Skip { job }),
                Effect::Manual { job } => out.push(Decision::Manual { job }),
                Effect::Ended { pipeline, state } => {
                    out.push(Decision::PipelineEnded { pipeline, state })
                }
            }
        }
    }
}
