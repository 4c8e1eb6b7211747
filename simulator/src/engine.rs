//! The discrete-event engine: feeds the core job submissions, finishes and runner joins
//! in (time, class, sequence) order, and applies the decisions it returns. No wall clock
//! inside; the same inputs give the same schedule.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rustci_scheduler::{CoreError, Decision, Event, JobId, Millis, PoolId, RunnerId, Scheduler};
use thiserror::Error;

use crate::workload::SimJob;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("the scheduler refused an event at t={at_ms} ms: {source}")]
    Core {
        at_ms: Millis,
        #[source]
        source: CoreError,
    },
    /// The core broke an invariant the engine checks (capacity, double start).
    #[error("invariant broken at t={at_ms} ms: {what}")]
    Invariant { at_ms: Millis, what: String },
}

/// Event classes at equal times, in the order they are delivered.
///
/// `FINISH_AT_ESTIMATE` comes first: a job that ends exactly at its estimated end has
/// already left the planning profile at that instant (pyss frees estimated slices by
/// time, whatever the event order), so delivering it first keeps the core's view the
/// same as pyss's. Other finishes come after submissions (pyss's `JobSubmissionEvent`
/// before `JobTerminationEvent`): a job that ends early is only known to have ended when
/// its termination is handled. Runner joins come before anything else at their time.
const RUNNER_JOIN: u8 = 0;
/// A running job reached its estimated end and runs on: its estimate grows first (pyss's
/// `JobPredictionIsOverEvent` comes before everything else at its time).
const ESTIMATE_EXPIRED: u8 = 1;
const FINISH_AT_ESTIMATE: u8 = 2;
const SUBMIT: u8 = 3;
const FINISH: u8 = 4;

#[derive(Debug, Clone, Copy)]
struct Pending {
    at: Millis,
    class: u8,
    seq: u64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Finish(u32),
    Expire(u32),
    Join(RunnerId, PoolId),
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.class, self.seq).cmp(&(o.at, o.class, o.seq))
    }
}

/// Pending events in (time, class, sequence) order; the sequence numbers events in the
/// order they were created, so ties within a class keep that order.
struct EventQueue {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

impl EventQueue {
    fn with_capacity(n: usize) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(n),
            seq: 0,
        }
    }

    fn push(&mut self, at: Millis, class: u8, kind: Kind) {
        self.heap.push(Reverse(Pending {
            at,
            class,
            seq: self.seq,
            kind,
        }));
        self.seq += 1;
    }
}

/// Where and when one job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub runner: RunnerId,
}

/// The engine's output.
#[derive(Debug, Clone, Default)]
pub struct EngineOutput {
    /// Per job (index of the job slice): where it ran; `None` if the core refused it
    /// (no eligible pool) or it never started.
    pub placements: Vec<Option<Placement>>,
    /// Jobs the core refused at submission because no pool can ever run them.
    pub refused: u64,
    pub events: u64,
    /// Every decision with its time, when asked for (parity tests compare these).
    pub decisions: Option<Vec<(Millis, Decision)>>,
}

/// Options of one engine run.
#[derive(Default)]
pub struct EngineOptions {
    pub record_decisions: bool,
    /// Called after every `progress_every` finished jobs with the count so far.
    pub progress: Option<Box<dyn FnMut(u64)>>,
    pub progress_every: u64,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("record_decisions", &self.record_decisions)
            .field("progress_every", &self.progress_every)
            .finish_non_exhaustive()
    }
}

/// Runs `jobs` (in submission order) on the runners `runners` (id, pool, slots), which
/// join at `start_ms`.
pub fn run(
    scheduler: &mut Scheduler,
    jobs: &[SimJob],
    runners: &[(RunnerId, PoolId, u32)],
    start_ms: Millis,
    mut options: EngineOptions,
) -> Result<EngineOutput, EngineError> {
    let mut queue = EventQueue::with_capacity(runners.len() + 1024);
    for &(r, p, _) in runners {
        queue.push(start_ms, RUNNER_JOIN, Kind::Join(r, p));
    }
    // Capacity as the engine sees it, to check the core: used slots per runner.
    let max_runner = runners
        .iter()
        .map(|r| r.0 .0 as usize + 1)
        .max()
        .unwrap_or(0);
    let mut used = vec![0u32; max_runner];
    let mut capacity = vec![0u32; max_runner];
    for &(r, _, slots) in runners {
        capacity[r.0 as usize] = slots;
    }

    let mut out = EngineOutput {
        placements: vec![None; jobs.len()],
        decisions: options.record_decisions.then(Vec::new),
        ..EngineOutput::default()
    };
    let mut decisions = Vec::new();
    let mut batch: Vec<u32> = Vec::new();
    // The class each job's finish is due in: an estimate corrected to the real end turns
    // a FINISH into a FINISH_AT_ESTIMATE, and the stale entry is skipped.
    let mut finish_class: Vec<u8> = vec![FINISH; jobs.len()];
    let mut next = 0usize;
    let mut finished = 0u64;
    let every = options.progress_every.max(1);

    loop {
        let next_submit = jobs.get(next).map(|j| (j.spec.submit_ms, SUBMIT));
        let take_heap = match (queue.heap.peek(), next_submit) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Reverse(p)), Some(s)) => (p.at, p.class) < s,
        };
        let (now, event) = if take_heap {
            let Some(Reverse(p)) = queue.heap.pop() else {
                break;
            };
            match p.kind {
                Kind::Join(runner, pool) => (p.at, Event::RunnerJoined { runner, pool }),
                Kind::Expire(i) => {
                    out.events += 1;
                    let job = &jobs[i as usize];
                    let Some(pl) = out.placements[i as usize] else {
                        continue;
                    };
                    match scheduler.extend_estimate(p.at, job.spec.id) {
                        Ok(Some(new_end)) if new_end < pl.end_ms => {
                            queue.push(new_end, ESTIMATE_EXPIRED, Kind::Expire(i));
                        }
                        Ok(Some(new_end)) if new_end == pl.end_ms => {
                            finish_class[i as usize] = FINISH_AT_ESTIMATE;
                            queue.push(new_end, FINISH_AT_ESTIMATE, Kind::Finish(i));
                        }
                        Ok(_) => {}
                        Err(source) => {
                            return Err(EngineError::Core {
                                at_ms: p.at,
                                source,
                            })
                        }
                    }
                    continue;
                }
                Kind::Finish(i) if p.class != finish_class[i as usize] => continue,
                Kind::Finish(i) => {
                    batch.clear();
                    batch.push(i);
                    // Jobs that end at their estimate all leave the plan at this instant
                    // together (pyss's profile frees them by time): one pass sees them all.
                    if p.class == FINISH_AT_ESTIMATE {
                        while let Some(Reverse(q)) = queue.heap.peek() {
                            if q.at != p.at || q.class != FINISH_AT_ESTIMATE {
                                break;
                            }
                            if let Some(Reverse(Pending {
                                kind: Kind::Finish(j),
                                ..
                            })) = queue.heap.pop()
                            {
                                batch.push(j);
                            }
                        }
                    }
                    for &i in &batch {
                        let job = &jobs[i as usize];
                        if let Some(pl) = out.placements[i as usize] {
                            used[pl.runner.0 as usize] -= job.spec.slots;
                        }
                        finished += 1;
                        if finished.is_multiple_of(every) {
                            if let Some(cb) = options.progress.as_mut() {
                                cb(finished);
                            }
                        }
                    }
                    out.events += batch.len() as u64 - 1;
                    (
                        p.at,
                        Event::Finish {
                            job: jobs[i as usize].spec.id,
                        },
                    )
                }
            }
        } else {
            let job = &jobs[next];
            next += 1;
            (job.spec.submit_ms, Event::Submit(job.spec.clone()))
        };
        out.events += 1;
        decisions.clear();
        let result = if batch.len() > 1 && matches!(event, Event::Finish { .. }) {
            let events = batch.iter().map(|&i| Event::Finish {
                job: jobs[i as usize].spec.id,
            });
            scheduler.handle_all(now, events, &mut decisions)
        } else {
            scheduler.handle(now, event, &mut decisions)
        };
        batch.clear();
        match result {
            Ok(()) => {}
            Err(CoreError::NoEligiblePool { .. }) => {
                out.refused += 1;
                continue;
            }
            Err(source) => return Err(EngineError::Core { at_ms: now, source }),
        }
        for &d in &decisions {
            if let Some(log) = out.decisions.as_mut() {
                log.push((now, d));
            }
            match d {
                Decision::Start {
                    job: JobId(id),
                    runner,
                    expected_end_ms,
                } => {
                    let i = id as usize;
                    let Some(job) = jobs.get(i) else {
                        return Err(EngineError::Invariant {
                            at_ms: now,
                            what: format!("start of unknown job {id}"),
                        });
                    };
                    if out.placements[i].is_some() {
                        return Err(EngineError::Invariant {
                            at_ms: now,
                            what: format!("job {id} started twice"),
                        });
                    }
                    let r = runner.0 as usize;
                    if r >= used.len() || used[r] + job.spec.slots > capacity[r] {
                        return Err(EngineError::Invariant {
                            at_ms: now,
                            what: format!("runner {r} over capacity starting job {id}"),
                        });
                    }
                    used[r] += job.spec.slots;
                    let end_ms = now + job.run_ms;
                    out.placements[i] = Some(Placement {
                        start_ms: now,
                        end_ms,
                        runner,
                    });
                    let class = if end_ms == expected_end_ms {
                        FINISH_AT_ESTIMATE
                    } else {
                        FINISH
                    };
                    finish_class[i] = class;
                    if end_ms > expected_end_ms {
                        queue.push(expected_end_ms, ESTIMATE_EXPIRED, Kind::Expire(id as u32));
                    }
                    queue.push(end_ms, class, Kind::Finish(id as u32));
                }
                Decision::Requeue { job, .. } => {
                    return Err(EngineError::Invariant {
                        at_ms: now,
                        what: format!("job {job} requeued, but runners never fail in this engine"),
                    });
                }
            }
        }
    }
    Ok(out)
}
