//! Turning job records into the core's job specs: tenants, QoS classes, labels,
//! estimates, the order of submission, and what cannot be simulated (counted, not lost).
//!
//! Records with a [`PipelineRef`] become [`SimPipeline`]s (see [`prepare`] for how a
//! recorded outcome is replayed); the others are independent jobs, as before pipelines.

use std::collections::{BTreeMap, HashMap};

use rustci_datasets::record::{self, JobRecord, Outcome, PipelineRef};
use rustci_scheduler::{
    AutoCancel, HistoryKeys, JobId, JobSpec, LabelSet, Millis, PipelineId, PipelineJob,
    PipelineSpec, QosId, TenantId, TenantSpec, When, MS_PER_S,
};

use crate::fleet_file::FleetFile;
use crate::outcome::Skipped;

/// A job ready for the engine: its spec, its real run time, and its record.
#[derive(Debug, Clone, PartialEq)]
pub struct SimJob {
    /// Index into the record list the job came from.
    pub record: usize,
    pub spec: JobSpec,
    pub run_ms: Millis,
    /// The trace says it failed: its end is reported to the core as [`Event::Fail`], so
    /// predictors learn the outcome.
    ///
    /// [`Event::Fail`]: rustci_scheduler::Event::Fail
    pub failed: bool,
    /// The pipeline (index into [`Prepared::pipelines`]) the job belongs to.
    pub pipeline: Option<u32>,
}

/// A pipeline ready for the engine: submitted whole at `created_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPipeline {
    /// The trace's pipeline id.
    pub name: String,
    pub created_ms: Millis,
    /// Its jobs' `spec.id`s index [`Prepared::jobs`]; `id` is its index in
    /// [`Prepared::pipelines`].
    pub spec: PipelineSpec,
    /// Jobs the trace recorded as skipped (or that cannot be replayed, see
    /// [`PipelineCounts::unreplayable_jobs`]): the engine skips them
    /// ([`rustci_scheduler::Event::Skip`]) as the pipeline is created.
    pub skips: Vec<JobId>,
    /// Recorded failures the replay lets the pipeline go past (later stages ran in the
    /// trace) but that still make the pipeline failed (see [`prepare`]).
    pub counted_failures: Vec<JobId>,
    /// Tenant and QoS class of its first job.
    pub tenant: TenantId,
    pub qos: QosId,
}

/// What preparing the pipelines found, for the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineCounts {
    /// Recorded cancelled (or unfinished) jobs that never ran and whose name ran nowhere
    /// else in the trace: no run time to replay, so they are skipped.
    pub unreplayable_jobs: u64,
    /// Cancelled or unfinished jobs given the median run time of their name.
    pub median_run_time_jobs: u64,
    /// Pipelines dropped because one of their jobs cannot run on the fleet (their
    /// records count as `skipped.unschedulable`).
    pub unschedulable: u64,
}

/// A job of the trace's past that the run's predictor learns from before the replay
/// starts (`--replay-from-fraction`): it is never scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    pub spec: JobSpec,
    pub run_ms: Millis,
    pub finished_ms: Millis,
    pub failed: bool,
}

/// The trace's past, learned from and not replayed (see [`prepare_split`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// In the order they finished.
    pub learned: Vec<Learned>,
    /// Records of the past (the first fraction by submit time).
    pub records: u64,
    /// Records after the cut that are not replayed either: the rest of a pipeline that
    /// began before the cut (replaying it would replay part of what was learned).
    pub cut_pipeline_records: u64,
}

/// The jobs to replay, and the tenants they name. `jobs[..independent]` are the
/// independent jobs in submission order (their ids are their indices, as before
/// pipelines existed); the pipelines' jobs follow, pipeline by pipeline.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub jobs: Vec<SimJob>,
    pub independent: usize,
    /// In creation order.
    pub pipelines: Vec<SimPipeline>,
    pub tenants: Vec<TenantSpec>,
    pub skipped: Skipped,
    pub pipeline_counts: PipelineCounts,
    /// With a history fraction, what the predictor learns before the replay.
    pub history: Option<History>,
}

impl Prepared {
    /// The earliest arrival: the first independent job's submission or the first
    /// pipeline's creation.
    pub fn start_ms(&self) -> Millis {
        let job = self.jobs[..self.independent]
            .first()
            .map(|j| j.spec.submit_ms);
        let pipe = self.pipelines.first().map(|p| p.created_ms);
        match (job, pipe) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        }
    }
}

/// Whether pipelines of one concurrency group supersede each other in a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Supersede {
    /// A pipeline's group is its `PipelineRef::group`, else its project and branch.
    #[default]
    ByGroup,
    /// No pipeline has a group: none is superseded.
    Never,
}

/// Why a record cannot become a job spec.
enum Unfit {
    UnknownSlots,
    Unschedulable,
}

/// What turning records into specs needs of the fleet, and the tenants named so far.
struct Specs<'a> {
    label_names: Vec<String>,
    qos_names: Vec<&'a str>,
    default_qos: usize,
    max_slots: u32,
    weights: HashMap<&'a str, f64>,
    tenants: Vec<TenantSpec>,
    tenant_ids: HashMap<String, TenantId>,
}

impl<'a> Specs<'a> {
    fn new(fleet: &'a FleetFile) -> Self {
        Self {
            label_names: fleet.label_names(),
            qos_names: fleet.qos.iter().map(|q| q.name.as_str()).collect(),
            default_qos: fleet.default_qos_index(),
            max_slots: fleet.pools.iter().map(|p| p.slots).max().unwrap_or(0),
            weights: fleet
                .tenants
                .iter()
                .map(|t| (t.name.as_str(), t.weight))
                .collect(),
            tenants: Vec::new(),
            tenant_ids: HashMap::new(),
        }
    }

    /// The spec of record `r` as job `id`, or why the fleet cannot run it.
    fn spec(&mut self, r: &JobRecord, id: JobId, submit_ms: Millis) -> Result<JobSpec, Unfit> {
        if r.slots == 0 {
            return Err(Unfit::UnknownSlots);
        }
        let Ok(labels) = LabelSet::from_names(&self.label_names, &r.labels) else {
            return Err(Unfit::Unschedulable);
        };
        if r.slots > self.max_slots {
            return Err(Unfit::Unschedulable);
        }
        let tenant = match self.tenant_ids.get(r.tenant.as_str()) {
            Some(&t) => t,
            None => {
                self.tenants.push(TenantSpec {
                    name: r.tenant.clone(),
                    weight: self.weights.get(r.tenant.as_str()).copied().unwrap_or(1.0),
                });
                let t = TenantId((self.tenants.len() - 1) as u32);
                self.tenant_ids.insert(r.tenant.clone(), t);
                t
            }
        };
        let qos = r
            .qos
            .as_deref()
            .and_then(|q| self.qos_names.iter().position(|n| *n == q))
            .unwrap_or(self.default_qos);
        Ok(JobSpec {
            id,
            tenant,
            qos: QosId(qos as u8),
            priority: 0,
            labels,
            slots: r.slots,
            requested_ms: r.requested_s.filter(|&s| s > 0).map(|s| s * MS_PER_S),
            submit_ms,
            history: HistoryKeys::of(r.job_name.as_deref(), r.branch.as_deref()),
        })
    }
}

/// `s` seconds on the trace's clock, arrivals compressed by `load`, in milliseconds.
fn arrival_ms(s: i64, load: f64) -> Millis {
    ((s as f64 / load) * MS_PER_S as f64).round() as Millis
}

/// Prepares `records` for a run on `fleet`. `load` scales the arrival rate: submit
/// times (and pipelines' creation times) are divided by it (2.0 = twice the load).
///
/// Submission order of independent jobs is submit time, then the record's numeric id
/// when it has one (SWF job numbers count submissions, and the pyss reference outputs
/// list jobs in finishing order), then input order. Jobs submitted in the same second
/// keep that order in the queue, which matters for reproducing other simulators'
/// schedules.
///
/// Records with a [`PipelineRef`] are grouped by pipeline id into [`SimPipeline`]s
/// (jobs in record order), created at the pipeline's `created_s`; see [`pipelines`] for
/// how recorded outcomes are replayed.
pub fn prepare(
    records: &[JobRecord],
    fleet: &FleetFile,
    load: f64,
    supersede: Supersede,
) -> Prepared {
    prepare_split(records, fleet, load, supersede, None)
}

/// Which records a history fraction leaves to replay: `(past, replayed)` masks. The
/// past is the first `round(n * fraction)` records by submit time (a stable sort, as
/// `rustci retrain --history-fraction` cuts its training data); a pipeline with any
/// record in the past is not replayed at all.
fn split_masks(records: &[JobRecord], fraction: f64) -> (Vec<bool>, Vec<bool>) {
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| records[i].submit_s);
    let keep = ((records.len() as f64 * fraction).round() as usize).min(records.len());
    let mut past = vec![false; records.len()];
    for &i in &order[..keep] {
        past[i] = true;
    }
    let cut: std::collections::HashSet<&str> = records
        .iter()
        .zip(&past)
        .filter(|(_, &p)| p)
        .filter_map(|(r, _)| r.pipeline.as_ref().map(|p| p.id.as_str()))
        .collect();
    let replayed = records
        .iter()
        .zip(&past)
        .map(|(r, &p)| {
            !p && r
                .pipeline
                .as_ref()
                .is_none_or(|x| !cut.contains(x.id.as_str()))
        })
        .collect();
    (past, replayed)
}

/// [`prepare`], with `history_fraction`: the trace's past (see [`split_masks`]) is not
/// replayed but learned ([`Prepared::history`]): each of its jobs with a known run time
/// that was not cancelled, skipped or manual is observed as finished at its recorded
/// end, in the order of those ends, before the replay starts. A model trained with
/// `rustci retrain --history-fraction F` on the same trace has seen exactly those
/// records; nothing of the replayed part reaches a predictor before it is replayed.
pub fn prepare_split(
    records: &[JobRecord],
    fleet: &FleetFile,
    load: f64,
    supersede: Supersede,
    history_fraction: Option<f64>,
) -> Prepared {
    let mut specs = Specs::new(fleet);
    let mut skipped = Skipped::default();
    let (past, replayed) = match history_fraction {
        Some(f) => split_masks(records, f),
        None => (Vec::new(), vec![true; records.len()]),
    };

    let mut order: Vec<(i64, Option<u64>, usize)> = records
        .iter()
        .enumerate()
        .filter(|(i, r)| r.pipeline.is_none() && replayed[*i])
        .map(|(i, r)| (r.submit_s, r.id.parse::<u64>().ok(), i))
        .collect();
    order.sort_unstable();

    let mut jobs = Vec::with_capacity(records.len());
    for (_, _, index) in order {
        let r = &records[index];
        let run_s = match r.run_s {
            None => {
                skipped.unknown_run_time += 1;
                continue;
            }
            Some(s) if s < 0 => {
                skipped.negative_run_time += 1;
                continue;
            }
            Some(s) => s,
        };
        let id = JobId(jobs.len() as u64);
        let spec = match specs.spec(r, id, arrival_ms(r.submit_s, load)) {
            Ok(spec) => spec,
            Err(Unfit::UnknownSlots) => {
                skipped.unknown_slots += 1;
                continue;
            }
            Err(Unfit::Unschedulable) => {
                skipped.unschedulable += 1;
                continue;
            }
        };
        jobs.push(SimJob {
            record: index,
            spec,
            run_ms: run_s * MS_PER_S,
            failed: r.outcome == Outcome::Failure,
            pipeline: None,
        });
    }
    let independent = jobs.len();
    let (pipelines, pipeline_counts) = pipelines(
        records,
        &replayed,
        &mut specs,
        load,
        supersede,
        &mut jobs,
        &mut skipped,
    );
    let history = history_fraction.map(|_| {
        let mut learned: Vec<(Millis, usize, Learned)> = Vec::new();
        for (i, r) in records.iter().enumerate().filter(|(i, _)| past[*i]) {
            let Some(run_s) = r.run_s.filter(|&s| s >= 0) else {
                continue;
            };
            if matches!(
                r.outcome,
                Outcome::Cancelled | Outcome::Skipped | Outcome::Manual
            ) {
                continue;
            }
            let id = JobId((jobs.len() + learned.len()) as u64);
            let Ok(spec) = specs.spec(r, id, arrival_ms(r.submit_s, load)) else {
                continue;
            };
            let end_s = r.end_s().unwrap_or(r.submit_s + run_s);
            let finished_ms = arrival_ms(end_s, load);
            learned.push((
                finished_ms,
                i,
                Learned {
                    spec,
                    run_ms: run_s * MS_PER_S,
                    finished_ms,
                    failed: r.outcome == Outcome::Failure,
                },
            ));
        }
        learned.sort_by_key(|(t, i, _)| (*t, *i));
        History {
            learned: learned.into_iter().map(|(_, _, l)| l).collect(),
            records: past.iter().filter(|&&p| p).count() as u64,
            cut_pipeline_records: past
                .iter()
                .zip(&replayed)
                .filter(|(&p, &r)| !p && !r)
                .count() as u64,
        }
    });
    Prepared {
        jobs,
        independent,
        pipelines,
        tenants: specs.tenants,
        skipped,
        pipeline_counts,
        history,
    }
}

/// The median run time of each job name among the jobs that ran to an end (succeeded
/// or failed), seconds (the lower median of an even count).
fn median_run_times(records: &[JobRecord]) -> HashMap<&str, i64> {
    let mut runs: HashMap<&str, Vec<i64>> = HashMap::new();
    for r in records {
        if let (Some(name), Some(run), Outcome::Success | Outcome::Failure) =
            (r.job_name.as_deref(), r.run_s, r.outcome)
        {
            if run >= 0 {
                runs.entry(name).or_default().push(run);
            }
        }
    }
    runs.into_iter()
        .map(|(name, mut v)| {
            v.sort_unstable();
            (name, v[(v.len() - 1) / 2])
        })
        .collect()
}

/// A pipeline's records: (index in the records, its `PipelineRef`), in record order.
type Members<'r> = Vec<(usize, &'r PipelineRef)>;

/// The pipelines of `records`, their jobs appended to `jobs`. How a recorded outcome is
/// replayed:
///
/// * a job that ran (success or failure, with a run time) runs its recorded run time
///   and ends as recorded (a failure as `Event::Fail`);
/// * `skipped`: skipped by the engine when its pipeline is created (`Event::Skip`);
/// * `manual`: a manual job (blocking unless it may fail), never played;
/// * `cancelled` (and unfinished states): the trace cut its run short or never started
///   it, but the replay decides supersession itself, so the job gets a full run time:
///   the median run time of the jobs of the same name that ran to an end anywhere in
///   the trace (at least its recorded partial run). A name that never ran to an end:
///   its recorded partial run if it has one, else the job is skipped and counted
///   ([`PipelineCounts::unreplayable_jobs`]).
/// * A failed job of a pipeline in which a later stage still ran (GitLab: the real DAG's
///   `needs` let it go on, or the job was retried) is allowed to fail for its
///   dependents, so the replay goes on as the trace did, but its failure still makes the
///   pipeline failed ([`SimPipeline::counted_failures`]). Without that, the stage rule
///   would skip every later stage of such a pipeline.
///
/// A pipeline is dropped (its records counted unschedulable or of unknown slots) when
/// one of its jobs cannot run on the fleet. The concurrency group is the
/// `PipelineRef::group`, else the project and branch (a pipeline without a branch has
/// no group: FlowBench's runs of a workflow do not replace each other).
fn pipelines(
    records: &[JobRecord],
    replayed: &[bool],
    specs: &mut Specs<'_>,
    load: f64,
    supersede: Supersede,
    jobs: &mut Vec<SimJob>,
    skipped: &mut Skipped,
) -> (Vec<SimPipeline>, PipelineCounts) {
    let mut by_id: BTreeMap<&str, Members<'_>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate().filter(|(i, _)| replayed[*i]) {
        if let Some(p) = &r.pipeline {
            by_id.entry(p.id.as_str()).or_default().push((i, p));
        }
    }
    let mut counts = PipelineCounts::default();
    if by_id.is_empty() {
        return (Vec::new(), counts);
    }
    let mut order: Vec<(i64, &str, Members<'_>)> = by_id
        .into_iter()
        .map(|(id, members)| (members[0].1.created_s, id, members))
        .collect();
    order.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let medians = median_run_times(records);
    let mut groups: HashMap<String, u64> = HashMap::new();
    let mut out: Vec<SimPipeline> = Vec::with_capacity(order.len());
    for (created_s, name, members) in order {
        let created_ms = arrival_ms(created_s, load);
        let base = jobs.len();
        let index = out.len() as u32;
        let ran = |r: &JobRecord| {
            r.run_s.is_some() && matches!(r.outcome, Outcome::Success | Outcome::Failure)
        };
        let last_ran_stage = members
            .iter()
            .filter(|(i, _)| ran(&records[*i]))
            .map(|(_, p)| p.stage_index)
            .max();
        let mut pjobs = Vec::with_capacity(members.len());
        let mut skips = Vec::new();
        let mut counted_failures = Vec::new();
        let mut unfit = None;
        let mut medianed = 0;
        let mut unreplayable = 0;
        for (k, &(i, p)) in members.iter().enumerate() {
            let r = &records[i];
            let id = JobId((base + k) as u64);
            let spec = match specs.spec(r, id, created_ms) {
                Ok(spec) => spec,
                Err(e) => {
                    unfit = Some(e);
                    break;
                }
            };
            let recorded = r.run_s.filter(|&s| s >= 0);
            let median = r.job_name.as_deref().and_then(|n| medians.get(n)).copied();
            let mut skip = false;
            let run_s = match r.outcome {
                Outcome::Skipped => {
                    skip = true;
                    0
                }
                Outcome::Manual => 0,
                Outcome::Success | Outcome::Failure if recorded.is_some() => recorded.unwrap_or(0),
                _ => match (recorded, median) {
                    (partial, Some(m)) => {
                        medianed += 1;
                        m.max(partial.unwrap_or(0))
                    }
                    (Some(partial), None) => partial,
                    (None, None) => {
                        unreplayable += 1;
                        skip = true;
                        0
                    }
                },
            };
            let failed = r.outcome == Outcome::Failure;
            let allowed_here =
                failed && !p.allow_failure && last_ran_stage.is_some_and(|s| s > p.stage_index);
            if allowed_here {
                counted_failures.push(id);
            }
            if skip {
                skips.push(id);
            }
            let when = match (r.outcome, p.when) {
                (Outcome::Manual, _) | (_, record::When::Manual) => When::Manual {
                    blocking: !p.allow_failure,
                },
                (_, record::When::OnSuccess) => When::OnSuccess,
                (_, record::When::OnFailure) => When::OnFailure,
                (_, record::When::Always) => When::Always,
            };
            pjobs.push((
                PipelineJob {
                    name: r.job_name.clone().unwrap_or_else(|| r.id.clone()),
                    stage: p.stage_index,
                    needs: p.needs.clone(),
                    when,
                    allow_failure: p.allow_failure || allowed_here,
                    interruptible: p.interruptible,
                    spec,
                },
                i,
                run_s,
                failed,
            ));
        }
        if let Some(e) = unfit {
            let n = members.len() as u64;
            match e {
                Unfit::UnknownSlots => skipped.unknown_slots += n,
                Unfit::Unschedulable => skipped.unschedulable += n,
            }
            counts.unschedulable += 1;
            continue;
        }
        counts.median_run_time_jobs += medianed;
        counts.unreplayable_jobs += unreplayable;
        let first = &records[members[0].0];
        let group = match supersede {
            Supersede::Never => None,
            Supersede::ByGroup => {
                let key = match (&members[0].1.group, &first.branch) {
                    (Some(g), _) => Some(format!("group\u{0}{g}")),
                    (None, Some(b)) => Some(format!(
                        "ref\u{0}{}\u{0}{b}",
                        first.project.as_deref().unwrap_or("")
                    )),
                    (None, None) => None,
                };
                key.map(|k| {
                    let n = groups.len() as u64;
                    *groups.entry(k).or_insert(n)
                })
            }
        };
        let (tenant, qos) = pjobs.first().map_or((TenantId(0), QosId(0)), |(j, ..)| {
            (j.spec.tenant, j.spec.qos)
        });
        let mut spec_jobs = Vec::with_capacity(pjobs.len());
        for (job, record, run_s, failed) in pjobs {
            jobs.push(SimJob {
                record,
                spec: job.spec.clone(),
                run_ms: run_s * MS_PER_S,
                failed,
                pipeline: Some(index),
            });
            spec_jobs.push(job);
        }
        out.push(SimPipeline {
            name: name.to_string(),
            created_ms,
            spec: PipelineSpec {
                id: PipelineId(u64::from(index)),
                group,
                // The traces do not record `workflow: auto_cancel` (nor always
                // `interruptible`): what has not started and what is interruptible.
                auto_cancel: AutoCancel::UnstartedAndInterruptible,
                jobs: spec_jobs,
            },
            skips,
            counted_failures,
            tenant,
            qos,
        });
    }
    (out, counts)
}
