//! A tiny driver for pipelines: feeds timed inputs (pipelines, plays, skips, cancels),
//! runs started jobs for their scripted time with their scripted outcome, and applies
//! every decision, checking it against what it has seen: capacity, single start, no
//! start or end of a job that already ended, cancels of running jobs on their runner.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rustci_scheduler::*;

use super::join_all;

/// Something the driver feeds at a given time.
#[derive(Debug, Clone)]
pub enum Input {
    Pipeline(PipelineSpec),
    Play(u64),
    Skip(u64),
    Cancel(u64),
    CancelPipeline(u64),
}

/// How a job ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

/// Inputs in time order (the driver sorts them stably) and each job's run: (run time,
/// fails).
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub inputs: Vec<(Millis, Input)>,
    pub runs: BTreeMap<u64, (Millis, bool)>,
}

#[derive(Debug, Default)]
pub struct PipeRun {
    /// job -> (start, runner), the last start (a job starts once).
    pub starts: BTreeMap<u64, (Millis, RunnerId)>,
    /// job -> (when, how) it ended.
    pub ends: BTreeMap<u64, (Millis, End)>,
    /// Jobs that became Manual and were never played.
    pub manual: BTreeSet<u64>,
    pub played: BTreeSet<u64>,
    /// pipeline -> (when, state) it ended.
    pub pipelines: BTreeMap<u64, (Millis, PipelineState)>,
    /// Every decision, in order.
    pub decisions: Vec<(Millis, Decision)>,
    /// Inputs the core refused.
    pub refused: Vec<(Millis, CoreError)>,
}

impl PipeRun {
    pub fn start_of(&self, job: u64) -> Option<Millis> {
        self.starts.get(&job).map(|s| s.0)
    }
    pub fn end_of(&self, job: u64) -> Option<(Millis, End)> {
        self.ends.get(&job).copied()
    }
    pub fn pipeline(&self, p: u64) -> Option<(Millis, PipelineState)> {
        self.pipelines.get(&p).copied()
    }
}

/// Runs `script` on `runners` (id, pool) joined at t=0. Panics on a broken invariant.
pub fn drive_pipelines(sched: &mut Scheduler, runners: &[(u32, u16)], script: &Script) -> PipeRun {
    let mut free = join_all(sched, runners);
    let mut slots: BTreeMap<u64, u32> = BTreeMap::new();
    for (_, input) in &script.inputs {
        if let Input::Pipeline(p) = input {
            for j in &p.jobs {
                slots.insert(j.spec.id.0, j.spec.slots);
            }
        }
    }
    // (time, 0 = a job ends / 1 = an input, sequence, job or input index)
    let mut events: BinaryHeap<Reverse<(Millis, u8, u64, usize)>> = BinaryHeap::new();
    for (i, (t, _)) in script.inputs.iter().enumerate() {
        events.push(Reverse((*t, 1, i as u64, i)));
    }
    let mut seq = script.inputs.len() as u64;
    // job -> (runner, sequence of its finish event)
    let mut running: BTreeMap<u64, (RunnerId, u64)> = BTreeMap::new();
    let mut run = PipeRun::default();
    let mut out = Vec::new();
    while let Some(Reverse((now, class, s, payload))) = events.pop() {
        out.clear();
        let (event, ended) = if class == 0 {
            let job = payload as u64;
            if running.get(&job).map(|r| r.1) != Some(s) {
                continue; // cancelled while it ran
            }
            let (runner, _) = running.remove(&job).expect("running");
            *free.get_mut(&runner.0).expect("runner") += slots[&job];
            let fails = script.runs.get(&job).is_some_and(|r| r.1);
            let end = if fails { End::Failed } else { End::Succeeded };
            let event = if fails {
                Event::Fail { job: JobId(job) }
            } else {
                Event::Finish { job: JobId(job) }
            };
            (event, Some((job, end)))
        } else {
            match &script.inputs[payload].1 {
                Input::Pipeline(p) => (Event::SubmitPipeline(p.clone()), None),
                Input::Play(j) => (Event::PlayManual { job: JobId(*j) }, None),
                Input::Skip(j) => (Event::Skip { job: JobId(*j) }, None),
                Input::Cancel(j) => (Event::Cancel { job: JobId(*j) }, None),
                Input::CancelPipeline(p) => (
                    Event::CancelPipeline {
                        pipeline: PipelineId(*p),
                    },
                    None,
                ),
            }
        };
        let input = (class == 1).then(|| script.inputs[payload].1.clone());
        match sched.handle(now, event, &mut out) {
            Ok(()) => {}
            Err(e) if class == 1 => {
                run.refused.push((now, e));
                continue;
            }
            Err(e) => panic!("core error at {now}: {e}"),
        }
        if let Some((job, end)) = ended {
            assert!(
                run.ends.insert(job, (now, end)).is_none(),
                "job {job} ended twice"
            );
        }
        // What an accepted input did to its job.
        match input {
            Some(Input::Play(j)) => {
                assert!(run.manual.remove(&j), "played job {j} was not manual");
                run.played.insert(j);
            }
            Some(Input::Skip(j)) if !run.ends.contains_key(&j) => {
                assert!(!running.contains_key(&j), "skipped job {j} was running");
                run.manual.remove(&j);
                run.ends.insert(j, (now, End::Skipped));
            }
            Some(Input::Cancel(j)) if !run.ends.contains_key(&j) => {
                if let Some((r, _)) = running.remove(&j) {
                    *free.get_mut(&r.0).expect("runner") += slots[&j];
                }
                run.manual.remove(&j);
                run.ends.insert(j, (now, End::Cancelled));
            }
            _ => {}
        }
        for &d in &out {
            run.decisions.push((now, d));
            match d {
                Decision::Start { job, runner, .. } => {
                    let j = job.0;
                    assert!(!run.ends.contains_key(&j), "job {j} started after it ended");
                    assert!(
                        run.starts.insert(j, (now, runner)).is_none(),
                        "job {j} started twice"
                    );
                    let f = free.get_mut(&runner.0).expect("known runner");
                    assert!(
                        *f >= slots[&j],
                        "runner {runner} over capacity with job {j}"
                    );
                    *f -= slots[&j];
                    let run_ms = script.runs.get(&j).map_or(1, |r| r.0);
                    events.push(Reverse((now + run_ms, 0, seq, j as usize)));
                    running.insert(j, (runner, seq));
                    seq += 1;
                }
                Decision::Cancel { job, runner, .. } => {
                    let j = job.0;
                    match runner {
                        Some(r) => {
                            let (on, _) = running.remove(&j).expect("cancelled job was running");
                            assert_eq!(on, r, "job {j} cancelled on the wrong runner");
                            *free.get_mut(&r.0).expect("runner") += slots[&j];
                        }
                        None => assert!(
                            !running.contains_key(&j),
                            "running job {j} cancelled without its runner"
                        ),
                    }
                    run.manual.remove(&j);
                    assert!(
                        run.ends.insert(j, (now, End::Cancelled)).is_none(),
                        "job {j} ended twice"
                    );
                }
                Decision::Skip { job } => {
                    let j = job.0;
                    assert!(!run.starts.contains_key(&j), "skipped job {j} had started");
                    assert!(
                        run.ends.insert(j, (now, End::Skipped)).is_none(),
                        "job {j} ended twice"
                    );
                }
                Decision::Manual { job } => {
                    assert!(run.manual.insert(job.0), "job {job} manual twice");
                }
                Decision::PipelineEnded { pipeline, state } => {
                    assert!(
                        run.pipelines.insert(pipeline.0, (now, state)).is_none(),
                        "pipeline {pipeline} ended twice"
                    );
                }
                Decision::Requeue { .. } => panic!("no runner is lost here: {d:?}"),
            }
        }
    }
    run
}
