//! The soak's verdict, from the store (every job and its change log, read directly once
//! the replicas stopped) and from the jobs' own side-effect file:
//!
//! - every acknowledged job is in the store exactly once and succeeded (lost: 0);
//! - nothing appears that no client submitted, and no request id made two jobs;
//! - each job's change log reaches a terminal state once and never leaves it;
//! - the accepted completion came from the live lease: the finished version carries the
//!   job's highest fencing token, and a run under that token ended (side effect);
//! - no two runs of one job overlapped in time (a run killed with its runner ends at the
//!   kill; a run that never recorded its end and was not killed overlaps anything later);
//! - every job a killed runner held when it was killed finished on another one;
//! - completions sent with an older fencing token of a re-run job were refused
//!   ([`stale_completions`], while the service still runs).

use std::collections::{BTreeMap, HashMap};

use rustci_control::clients::client::Clients;
use rustci_control::pb::CompleteJobRequest;
use rustci_control::store::{JobFilter, JobState, Store, StoredJob};

use super::cluster::Killed;
use super::effects::{Effects, Run};
use super::load::{Key, Ledger, RPC_TIMEOUT};

/// How long after a runner's SIGKILL a completion it sent before dying may still be
/// committed.
const KILL_SLACK_MS: i64 = 1_000;

/// Every job and every change-log entry of a store.
pub fn read_store(store: &mut dyn Store) -> (Vec<StoredJob>, Vec<StoredJob>) {
    const PAGE: usize = 5_000;
    let mut jobs = Vec::new();
    loop {
        let after = jobs.last().map_or(0, |j: &StoredJob| j.id);
        let page = store
            .list_jobs(&JobFilter::default(), after, PAGE)
            .expect("listing the store's jobs");
        let done = page.len() < PAGE;
        jobs.extend(page);
        if done {
            break;
        }
    }
    let mut changes = Vec::new();
    loop {
        let after = changes.last().map_or(0, |j: &StoredJob| j.revision);
        let page = store
            .changes_since(after, None, PAGE)
            .expect("reading the store's change log");
        let done = page.len() < PAGE;
        changes.extend(page);
        if done {
            break;
        }
    }
    (jobs, changes)
}

fn runner_id(name: &str) -> &str {
    name.strip_prefix("runners/").unwrap_or(name)
}

/// What the stale-completion check sent and how the service answered.
#[derive(Debug, Default, Clone)]
pub struct StaleCompletions {
    pub sent: usize,
    pub refused: usize,
    pub accepted: Vec<String>,
}

/// For jobs that ran under more than one lease, sends a failed completion with each
/// older fencing token (as the runner that held it); the service must refuse every one.
pub async fn stale_completions(
    clients: &Clients,
    effects: &Effects,
    max: usize,
) -> StaleCompletions {
    let mut out = StaleCompletions::default();
    for (job, runs) in effects.sorted() {
        if out.sent >= max {
            break;
        }
        let Some(newest) = runs.iter().map(|r| r.token).max() else {
            continue;
        };
        for r in runs.iter().filter(|r| r.token < newest) {
            let req = CompleteJobRequest {
                job: job.to_string(),
                runner: r.runner.clone(),
                fencing_token: r.token,
                success: false,
                exit_code: 86,
                ..Default::default()
            };
            // An unanswered call is retried: only an answer counts.
            for _ in 0..20 {
                let mut run = clients.runners.clone();
                match tokio::time::timeout(RPC_TIMEOUT, run.complete_job(req.clone())).await {
                    Ok(Ok(_)) => {
                        out.accepted
                            .push(format!("{job}: token {} of {} accepted", r.token, r.runner));
                        break;
                    }
                    Ok(Err(s)) if s.code() != tonic::Code::Unavailable => {
                        out.refused += 1;
                        break;
                    }
                    _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
            out.sent += 1;
        }
    }
    out
}

/// The counts and every broken invariant.
#[derive(Debug, Default)]
pub struct Verdict {
    pub acknowledged: usize,
    pub stored: usize,
    pub succeeded: usize,
    pub lost: usize,
    pub concurrent_runs: usize,
    pub runs: usize,
    /// Jobs that ran more than once (one after another: at least once delivery).
    pub rerun_jobs: usize,
    pub dead_runner_leases_requeued: usize,
    pub violations: Vec<String>,
}

pub fn verdict(
    ledger: &Ledger,
    effects: &Effects,
    killed: &[Killed],
    jobs: &[StoredJob],
    changes: &[StoredJob],
) -> Verdict {
    let mut v = Verdict {
        acknowledged: ledger.acked.len(),
        stored: jobs.len(),
        ..Verdict::default()
    };
    let bad = &mut v.violations;
    for c in &ledger.conflicting_acks {
        bad.push(format!("one request id acknowledged as two jobs: {c}"));
    }
    for l in &effects.malformed {
        bad.push(format!("malformed side-effect line {l:?}"));
    }
    for l in &effects.orphan_ends {
        bad.push(format!("side-effect end without its start {l:?}"));
    }

    // The store against what clients were told.
    let mut by_key: BTreeMap<Key, &StoredJob> = BTreeMap::new();
    for j in jobs {
        let key = (j.tenant.clone(), j.request_id.clone());
        if let Some(first) = by_key.insert(key.clone(), j) {
            bad.push(format!(
                "request {key:?} made two jobs: {} and {}",
                first.id, j.id
            ));
        }
        if !ledger.sent.contains_key(&key) {
            bad.push(format!("jobs/{} ({key:?}) was never submitted", j.id));
        }
    }
    let mut name_of_id: HashMap<String, &Key> = HashMap::new();
    for (key, ack) in &ledger.acked {
        name_of_id.insert(ack.name.clone(), key);
        match by_key.get(key) {
            None => {
                v.lost += 1;
                bad.push(format!(
                    "acknowledged {} ({key:?}) is not in the store",
                    ack.name
                ));
            }
            Some(j) if format!("jobs/{}", j.id) != ack.name => {
                bad.push(format!(
                    "{key:?} acknowledged as {} but stored as jobs/{}",
                    ack.name, j.id
                ));
            }
            Some(j) if j.state != JobState::Succeeded => {
                v.lost += 1;
                bad.push(format!("{} ended {}", ack.name, j.state.as_str()));
            }
            Some(_) => v.succeeded += 1,
        }
    }

    // Each job's change log.
    let mut versions: HashMap<u64, Vec<&StoredJob>> = HashMap::new();
    for c in changes {
        versions.entry(c.id).or_default().push(c);
    }
    let killed_at: HashMap<&str, u128> = killed.iter().map(|k| (k.id.as_str(), k.at_ns)).collect();
    for j in jobs {
        let name = format!("jobs/{}", j.id);
        let mut vs = versions.remove(&j.id).unwrap_or_default();
        vs.sort_by_key(|c| c.revision);
        if vs.last().map(|c| c.revision) != Some(j.revision) {
            bad.push(format!(
                "{name}: the change log does not end at its stored revision {}",
                j.revision
            ));
        }
        let mut terminal = 0;
        let mut was_finished = false;
        for c in &vs {
            if c.state.is_finished() && !was_finished {
                terminal += 1;
            }
            if was_finished && !c.state.is_finished() {
                bad.push(format!(
                    "{name}: left its terminal state (revision {} is {})",
                    c.revision,
                    c.state.as_str()
                ));
            }
            was_finished = c.state.is_finished();
        }
        if terminal != 1 {
            bad.push(format!("{name}: reached a terminal state {terminal} times"));
        }
        let newest = vs.iter().map(|c| c.fencing_token).max().unwrap_or(0);
        if j.state.is_finished() && j.fencing_token != newest {
            bad.push(format!(
                "{name}: finished under token {} though lease {newest} was handed out (a stale completion)",
                j.fencing_token
            ));
        }
        let lease_runner = vs
            .iter()
            .find(|c| c.state == JobState::Leased && c.fencing_token == newest)
            .and_then(|c| c.runner.as_deref());
        if j.state == JobState::Succeeded && lease_runner != j.runner.as_deref() {
            bad.push(format!(
                "{name}: finished by {:?}, but the live lease was {lease_runner:?}",
                j.runner
            ));
        }
        // Leases of killed runners went back to the queue. A job the runner finished
        // itself ended by the kill (its completion may still have been in flight, hence
        // the slack); one that ended on it later was never taken from it.
        for k in killed {
            let held = vs.iter().any(|c| {
                c.state == JobState::Leased
                    && c.runner.as_deref().map(runner_id) == Some(k.id.as_str())
            });
            if !held {
                continue;
            }
            if j.runner.as_deref().map(runner_id) != Some(k.id.as_str()) {
                v.dead_runner_leases_requeued += 1;
                continue;
            }
            let kill_ms = (k.at_ns / 1_000_000) as i64;
            match j.end_ms {
                Some(end) if j.state.is_finished() && end <= kill_ms + KILL_SLACK_MS => {}
                _ => bad.push(format!(
                    "{name}: still with runner {} after it was killed (ended at {:?} ms, killed at {kill_ms} ms)",
                    k.id, j.end_ms
                )),
            }
        }
        // Its runs, from its own side effects.
        let runs: &[Run] = effects.runs.get(&name).map_or(&[], |r| r.as_slice());
        if j.state == JobState::Succeeded {
            // The completion follows the run's end record: one the store took before the
            // live lease's run ended came from an older lease.
            let live_end = runs
                .iter()
                .filter(|r| r.token == j.fencing_token)
                .find_map(|r| r.end_ns);
            match (live_end, j.end_ms) {
                (Some(e), Some(end_ms)) if (end_ms as u128 + 5) * 1_000_000 < e => {
                    bad.push(format!(
                    "{name}: finished at {end_ms} ms, before its live lease's run ended at {} ms",
                    e / 1_000_000
                ))
                }
                (None, _) => bad.push(format!(
                    "{name}: succeeded under token {}, but no run under it ended (runs: {runs:?})",
                    j.fencing_token
                )),
                _ => {}
            }
        }
    }
    for (name, runs) in effects.sorted() {
        v.runs += runs.len();
        if !name_of_id.contains_key(name) {
            bad.push(format!("{name} ran, but no client was told of it"));
        }
        if runs.len() > 1 {
            v.rerun_jobs += 1;
        }
        let mut rs: Vec<&Run> = runs.iter().collect();
        rs.sort_by_key(|r| r.start_ns);
        for (i, a) in rs.iter().enumerate() {
            let end = a
                .end_ns
                .or_else(|| killed_at.get(runner_id(&a.runner)).copied());
            for b in &rs[i + 1..] {
                if end.is_none_or(|e| e > b.start_ns) {
                    v.concurrent_runs += 1;
                    bad.push(format!("{name} ran twice at once: {a:?} and {b:?}"));
                }
            }
        }
    }
    v
}
