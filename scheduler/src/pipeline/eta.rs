//! The projected end of every running pipeline: its queued jobs where the projection put
//! them, then its jobs not ready yet, each no earlier than the projected end of its needs.
//!
//! The projection assumes every job succeeds: `on_success` and `always` jobs run,
//! `on_failure` jobs are skipped, manual jobs wait for a person (and what waits behind
//! them does not run). Jobs not ready yet are placed after every waiting job, across all
//! pipelines in the order they become ready (list scheduling), each by `place` (the
//! projection's placement). Cost: O((V + E) log V) over the running pipelines' nodes plus
//! a placement per job.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::domain::{JobId, Millis, PipelineId, PoolMask, RunnerId};

use super::state::{decide, seen, Node, Outcome, Pipelines, Run, Verdict};

/// A job to place: where it may run, its size and estimate, and its earliest start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    pub pools: PoolMask,
    pub slots: u32,
    pub point_ms: Millis,
    pub not_before: Millis,
}

/// (start, end, runner) of a placed job.
pub(crate) type Placed = (Millis, Millis, RunnerId);

#[derive(Debug, Default)]
pub(crate) struct PipelineProjection {
    /// Jobs not ready yet that are expected to run, in the order they were placed, with
    /// their slots; `None` when the projection cannot place them.
    pub later: Vec<(JobId, u32, Option<Placed>)>,
    /// Every running pipeline's projected end; `None` if a job it waits for cannot be
    /// placed (no runner takes it, or it waits beyond the projection's limit).
    pub ends: Vec<(PipelineId, Option<Millis>)>,
}

/// What a node's end means for its dependents in the projection.
#[derive(Debug, Clone, Copy)]
enum Res {
    Done(Millis, Outcome),
    /// It waits for a person: what needs it does not run.
    Stuck,
    /// Its end is not known.
    Unknown,
}

/// Which dependents a node's end reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    All,
    GatesOnly,
    NoGates,
}

const STUCK: u8 = 1;
const UNKNOWN: u8 = 2;

/// One pipeline's projection in progress.
struct Scratch<'a> {
    run: &'a Run,
    missing: Vec<u32>,
    ready: Vec<Millis>,
    marks: Vec<u8>,
    blocked: Vec<u8>,
    end: Option<Millis>,
    unknown: bool,
}

impl Scratch<'_> {
    /// Resolves `v`'s dependents that `reach` covers; those with nothing left to wait for
    /// go on the heap by the time they are ready.
    fn emit(
        &mut self,
        r: usize,
        v: u32,
        res: Res,
        reach: Reach,
        heap: &mut BinaryHeap<Reverse<(Millis, usize, u32)>>,
    ) {
        let run = self.run;
        for &d in run.dag.dependents(v) {
            let gate = run.dag.is_gate(d);
            let skip = match reach {
                Reach::All => false,
                Reach::GatesOnly => !gate,
                Reach::NoGates => gate,
            };
            if skip || run.nodes[d as usize] != Node::Created {
                continue;
            }
            let i = d as usize;
            match res {
                Res::Done(t, o) => {
                    self.marks[i] |= seen(o, gate);
                    self.ready[i] = self.ready[i].max(t);
                }
                Res::Stuck => self.blocked[i] |= STUCK,
                Res::Unknown => self.blocked[i] |= UNKNOWN,
            }
            self.missing[i] -= 1;
            if self.missing[i] == 0 {
                heap.push(Reverse((self.ready[i], r, d)));
            }
        }
    }

    fn reach_of(&self, v: u32) -> Reach {
        if self.run.gates_done(v) {
            Reach::NoGates
        } else {
            Reach::All
        }
    }
}

/// Projects every running pipeline at `now`. `queued_end(job)` is the projection's end of a
/// waiting or running job (`None` if it could not place it); `place` puts a job on the
/// projection's runners.
pub(crate) fn project(
    pipelines: &Pipelines,
    now: Millis,
    queued_end: impl Fn(JobId) -> Option<Millis>,
    mut place: impl FnMut(Ask) -> Option<Placed>,
) -> PipelineProjection {
    let mut runs: Vec<(PipelineId, Scratch<'_>)> = pipelines
        .runs()
        .map(|(&id, run)| {
            let nodes = run.nodes.len();
            (
                id,
                Scratch {
                    run,
                    missing: run.unresolved.clone(),
                    ready: vec![now; nodes],
                    marks: run.marks.clone(),
                    blocked: vec![0; nodes],
                    end: None,
                    unknown: false,
                },
            )
        })
        .collect();
    let mut heap = BinaryHeap::new();
    for (r, (_, s)) in runs.iter_mut().enumerate() {
        let run = s.run;
        for v in 0..run.dag.jobs.len() as u32 {
            let reach = s.reach_of(v);
            match run.nodes[v as usize] {
                Node::Queued => match queued_end(run.dag.jobs[v as usize].spec.id) {
                    Some(t) => {
                        s.end = s.end.max(Some(t));
                        s.emit(r, v, Res::Done(t, Outcome::Success), reach, &mut heap);
                    }
                    None => {
                        s.unknown = true;
                        s.emit(r, v, Res::Unknown, reach, &mut heap);
                    }
                },
                Node::Manual => s.emit(r, v, Res::Stuck, reach, &mut heap),
                Node::Created | Node::Ended(_) => {}
            }
        }
    }

    let mut later = Vec::new();
    while let Some(Reverse((t, r, v))) = heap.pop() {
        let s = &mut runs[r].1;
        let run = s.run;
        let i = v as usize;
        let res = if s.blocked[i] & UNKNOWN != 0 {
            s.unknown = true;
            Res::Unknown
        } else if s.blocked[i] & STUCK != 0 {
            Res::Stuck
        } else {
            match decide(run.when(v), s.marks[i]) {
                Verdict::Gate(o) => Res::Done(t, o),
                Verdict::Skip => Res::Done(t, Outcome::Skipped),
                Verdict::Run => {
                    let spec = &run.dag.jobs[i].spec;
                    let placed = place(Ask {
                        pools: run.pools[i],
                        slots: spec.slots,
                        point_ms: run.estimates[i].point_ms,
                        not_before: t,
                    });
                    later.push((spec.id, spec.slots, placed));
                    match placed {
                        Some((_, end, _)) => {
                            s.end = s.end.max(Some(end));
                            Res::Done(end, Outcome::Success)
                        }
                        None => {
                            s.unknown = true;
                            Res::Unknown
                        }
                    }
                }
                Verdict::Manual => {
                    if run.when(v) == Some(super::When::Manual { blocking: false }) {
                        s.emit(
                            r,
                            v,
                            Res::Done(t, Outcome::Skipped),
                            Reach::GatesOnly,
                            &mut heap,
                        );
                        s.emit(r, v, Res::Stuck, Reach::NoGates, &mut heap);
                    } else {
                        s.emit(r, v, Res::Stuck, Reach::All, &mut heap);
                    }
                    continue;
                }
            }
        };
        s.emit(r, v, res, Reach::All, &mut heap);
    }

    PipelineProjection {
        later,
        ends: runs
            .into_iter()
            .map(|(id, s)| (id, if s.unknown { None } else { s.end }))
            .collect(),
    }
}
