//! Issue 16's chaos soak: a steady load of short jobs from several tenants, run by
//! reference runners, on two `rustci serve --redis` replicas sharing one store, while
//! faults hit at seeded random times (`faults.rs`: SIGKILL of the leader, the standby and
//! a runner mid-job; SIGSTOP of the leader or a runner past its lease; Redis restarts; a
//! MongoDB server restart; a full disk under the SQLite store). Then `check.rs` judges
//! from the store and from each job's own side effects: nothing acknowledged is lost,
//! nothing ran twice at once, no stale completion was taken.
//!
//! Each store is soaked for 120 s (`RUSTCI_SOAK_SECONDS`), at least one fault of every
//! kind. Both tests are ignored in the normal test run (they take minutes and root, for
//! the disk-full fault's tmpfs); `.ci/run` runs them after it, and `scripts/soak.sh`
//! runs them for 600 s by default (the figures of RELIABILITY.md).
//! Knobs: `RUSTCI_SOAK_SEED` (printed at start; the same seed gives the same fault
//! schedule and job lengths), `RUSTCI_SOAK_RATE` (jobs/s), `RUSTCI_SOAK_REPORT_DIR`
//! (writes `soak-STORE.json` there). The MongoDB soak starts its own SecantusDB with
//! on-disk storage, so that a restart keeps the data; it is skipped visibly when
//! SecantusDB is not installed, unless `RUSTCI_REQUIRE_MONGODB=1`.

mod check;
mod cluster;
mod effects;
mod faults;
mod load;
mod proxy;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use rustci_control::pb::JobState;
use rustci_control::server::open_store;
use rustci_scheduler::stats::nearest_rank;

use crate::common::list_all;
use crate::stores::Backend;
use cluster::Cluster;
use effects::Effects;
use faults::{FaultKind, Outcome};
use load::{Load, PROBE_TENANT};

/// The two soaks share the machine's cores: one at a time.
static ONE_SOAK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TENANTS: usize = 4;
const RUNNERS: usize = 4;
const SLOTS: u32 = 64;

#[derive(Debug, Clone, Copy)]
struct Params {
    seconds: u64,
    seed: u64,
    rate: f64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

fn params(kind: Backend) -> Params {
    let clock_seed = crate::common::now_ns() as u64;
    Params {
        seconds: env_or("RUSTCI_SOAK_SECONDS", 120),
        seed: env_or("RUSTCI_SOAK_SEED", clock_seed),
        // SecantusDB (Python, every commit fsynced) takes far fewer commits per second
        // than SQLite.
        rate: env_or(
            "RUSTCI_SOAK_RATE",
            match kind {
                Backend::Sqlite => 100.0,
                Backend::Mongo => 20.0,
            },
        ),
    }
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes of load and faults: .ci/run runs it (120 s per store), scripts/soak.sh for longer"]
async fn chaos_soak_on_sqlite() {
    soak(Backend::Sqlite, "chaos_soak_on_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes of load and faults: .ci/run runs it (120 s per store), scripts/soak.sh for longer"]
async fn chaos_soak_on_mongodb() {
    soak(Backend::Mongo, "chaos_soak_on_mongodb").await;
}

async fn soak(kind: Backend, test: &str) {
    if !crate::support_redis::installed_or_skip(test) {
        return;
    }
    let mongo_bin = match kind {
        Backend::Sqlite => None,
        Backend::Mongo => match cluster::secantus_or_skip(test) {
            Some(b) => Some(b),
            None => return,
        },
    };
    let _one = ONE_SOAK.lock().await;
    let p = params(kind);
    let store = kind.name();
    say(&format!(
        "soak {store}: seed {} (RUSTCI_SOAK_SEED={} repeats the schedule), {} s, {} jobs/s from {TENANTS} tenants, {RUNNERS} runners x {SLOTS} slots",
        p.seed, p.seed, p.seconds, p.rate
    ));
    let keep = std::env::var_os("RUSTCI_SOAK_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .prefix("rustci-soak-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("tempdir");
    if keep {
        say(&format!(
            "soak {store}: logs kept in {}",
            dir.path().display()
        ));
    }
    let mut c = Cluster::start(kind, dir.path(), mongo_bin, RUNNERS, SLOTS).await;
    let load = Load::new(&c.proxy().url(), c.effects.clone());
    let mut effects = Effects::new(&c.effects);
    let fail = |c: &Cluster, what: String| fail(c, store, p.seed, &what);

    // Up and running before the first fault.
    if let Err(e) = load
        .probe("probe-start", Instant::now(), Duration::from_secs(120))
        .await
    {
        fail(&c, e);
    }
    let kinds = FaultKind::for_store(kind, c.tmpfs.is_some());
    say(&format!(
        "soak {store}: faults {}",
        kinds.iter().map(|k| k.key()).collect::<Vec<_>>().join(", ")
    ));
    let plan = faults::schedule(p.seed, &kinds, 10_000);
    let loader = load.start(p.rate, TENANTS, p.seed);
    let began = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (n, f) in plan.iter().enumerate() {
        // At least one fault of every kind, however short the soak.
        if began.elapsed() >= Duration::from_secs(p.seconds) && n >= kinds.len() {
            break;
        }
        tokio::time::sleep(f.gap).await;
        c.assert_alive();
        match faults::inject(&mut c, &load, &mut effects, *f, n).await {
            Ok(o) => {
                say(&format!(
                    "soak {store} [{:>5.1} s] {} ({}): answered after {} ms, a new job done after {} ms{}{}",
                    began.elapsed().as_secs_f64(),
                    o.kind.name(),
                    o.target,
                    o.answered.as_millis(),
                    o.completed.as_millis(),
                    o.requeued.map_or(String::new(), |d| format!(
                        ", its {} running jobs done elsewhere after {} ms",
                        o.jobs_on_runner,
                        d.as_millis()
                    )),
                    if o.note.is_empty() { String::new() } else { format!("; {}", o.note) }
                ));
                outcomes.push(o);
            }
            Err(e) => fail(&c, e),
        }
    }
    let soaked = began.elapsed();
    loader.abort();

    // Drain: every submit acknowledged, every job finished.
    if let Err(e) = load.ack_all(Duration::from_secs(120)).await {
        fail(&c, e);
    }
    // Open jobs must keep finishing: no progress for a minute fails the soak.
    const STALL: Duration = Duration::from_secs(60);
    let tenants: Vec<String> = (0..TENANTS)
        .map(|t| format!("tenant-{t}"))
        .chain([PROBE_TENANT.to_string()])
        .collect();
    let mut last_progress = (usize::MAX, Instant::now());
    loop {
        let mut open = Vec::new();
        let mut unanswered = false;
        for t in &tenants {
            for s in [JobState::Queued, JobState::Leased] {
                match list_all(&load.clients, t, s, 1_000).await {
                    Ok(jobs) => open.extend(jobs),
                    Err(_) => unanswered = true,
                }
            }
        }
        if open.is_empty() && !unanswered {
            break;
        }
        if open.len() < last_progress.0 {
            last_progress = (open.len(), Instant::now());
        }
        if last_progress.1.elapsed() > STALL {
            // Judged below from the store: each one is an acknowledged job that never
            // finished (lost).
            say(&format!(
                "soak {store}: {} jobs still open, none finished in the last {STALL:?} after the load stopped, e.g. {}",
                open.len(),
                open.iter().take(5).map(|j| j.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
            break;
        }
        c.assert_alive();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    effects.refresh();
    let stale = check::stale_completions(&load.clients, &effects, 1_000).await;
    let both_answered = c
        .proxy()
        .both_answered
        .load(std::sync::atomic::Ordering::Relaxed);
    let leader_changes = c
        .proxy()
        .leader_changes
        .load(std::sync::atomic::Ordering::Relaxed);

    // The store itself, with the replicas stopped.
    c.stop_services();
    let mut st = tokio::task::block_in_place(|| open_store(&c.serve_options()))
        .unwrap_or_else(|e| panic!("opening the {store} store: {e:#}"));
    let (jobs, changes) = tokio::task::block_in_place(|| check::read_store(st.as_mut()));
    let ledger = load.ledger.lock().expect("ledger");
    let v = check::verdict(&ledger, &effects, &c.killed_runners, &jobs, &changes);

    let mut summary = summarize(
        store,
        p,
        soaked,
        &outcomes,
        &v,
        &stale,
        &ledger,
        both_answered,
    );
    summary["leader_changes_seen_by_the_proxy"] = leader_changes.into();
    say(&format!("soak {store} summary: {summary}"));
    if let Ok(d) = std::env::var("RUSTCI_SOAK_REPORT_DIR") {
        let path = std::path::Path::new(&d).join(format!("soak-{store}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&summary).expect("json"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    let mut problems = v.violations.clone();
    problems.extend(
        stale
            .accepted
            .iter()
            .map(|s| format!("stale completion accepted: {s}")),
    );
    assert!(
        problems.is_empty(),
        "soak {store} (seed {}): {} violations, the first ones:\n{}",
        p.seed,
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(v.lost, 0);
    assert_eq!(v.concurrent_runs, 0);
    assert!(
        stale.sent == 0 || stale.refused == stale.sent,
        "stale completions: {stale:?}"
    );
}

fn fail(c: &Cluster, store: &str, seed: u64, what: &str) -> ! {
    panic!("soak {store} (seed {seed}): {what}\n{}", c.logs())
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// p50 (nearest rank, as every report of the project) and max, in ms.
fn p50_max(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    match (nearest_rank(&v, 50.0), v.last()) {
        (Some(p50), Some(max)) => serde_json::json!({ "p50_ms": p50, "max_ms": max }),
        _ => serde_json::Value::Null,
    }
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    store: &str,
    p: Params,
    soaked: Duration,
    outcomes: &[Outcome],
    v: &check::Verdict,
    stale: &check::StaleCompletions,
    ledger: &load::Ledger,
    both_answered: u64,
) -> serde_json::Value {
    let mut by_kind: BTreeMap<FaultKind, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        by_kind.entry(o.kind).or_default().push(o);
    }
    let faults: Vec<serde_json::Value> = by_kind
        .iter()
        .map(|(k, os)| {
            serde_json::json!({
                "kind": k.name(),
                "count": os.len(),
                "answered": p50_max(os.iter().map(|o| ms(o.answered)).collect()),
                "new_job_done": p50_max(os.iter().map(|o| ms(o.completed)).collect()),
                "runner_jobs_done_elsewhere": p50_max(os.iter().filter_map(|o| o.requeued.map(ms)).collect()),
                "notes": os.iter().filter(|o| !o.note.is_empty()).map(|o| o.note.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "store": store,
        "seed": p.seed,
        "rate_jobs_per_s": p.rate,
        "tenants": TENANTS,
        "runners": RUNNERS,
        "slots_per_runner": SLOTS,
        "seconds_soaked": soaked.as_secs_f64(),
        "faults_injected": outcomes.len(),
        "faults": faults,
        "jobs_submitted": ledger.sent.len(),
        "jobs_acknowledged": v.acknowledged,
        "jobs_in_store": v.stored,
        "succeeded": v.succeeded,
        "lost": v.lost,
        "run_concurrently_twice": v.concurrent_runs,
        "runs": v.runs,
        "jobs_run_more_than_once": v.rerun_jobs,
        "dead_runner_leases_requeued": v.dead_runner_leases_requeued,
        "stale_completions_sent": stale.sent,
        "stale_completions_refused": stale.refused,
        "failed_submit_calls": ledger.failed_calls,
        "probes_with_two_leaders_answering": both_answered,
        "violations": v.violations.len(),
    })
}
