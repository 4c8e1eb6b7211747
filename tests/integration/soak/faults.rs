//! The faults, their seeded schedule, and how long the service took to recover from each.
//!
//! The schedule is rounds of every fault kind the store allows, each round in a seeded
//! random order, with seeded gaps, targets and hold times: the same seed gives the same
//! sequence. Faults do not overlap: the next one waits until the service recovered from
//! the last (a fault it never recovers from fails the soak).

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cluster::{Cluster, LEADER_LEASE_MS, RUNNER_TTL_MS};
use super::effects::Effects;
use super::load::Load;
use crate::stores::Backend;

/// How long the service may take to recover from one fault before the soak fails.
const RECOVERY_LIMIT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL of the replica that leads; it is started again after a while.
    KillLeader,
    /// SIGKILL of the standby replica; started again.
    KillStandby,
    /// SIGKILL of a runner with jobs running; a new runner (new id) takes its place.
    KillRunner,
    /// SIGSTOP of the leader for longer than the leader lease, then SIGCONT.
    PauseLeader,
    /// SIGSTOP of a runner for longer than the runner lease TTL, then SIGCONT.
    PauseRunner,
    /// SIGKILL of redis-server (no persistence: the leader key is gone), started again.
    RestartRedis,
    /// SIGKILL of the MongoDB server (SecantusDB on disk), started again.
    RestartMongo,
    /// The SQLite store's file system (a tmpfs) filled up for a while, then freed.
    DiskFull,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::KillLeader => "kill -9 leader",
            Self::KillStandby => "kill -9 standby",
            Self::KillRunner => "kill -9 runner mid-job",
            Self::PauseLeader => "SIGSTOP leader past the leader lease",
            Self::PauseRunner => "SIGSTOP runner past the runner lease",
            Self::RestartRedis => "Redis restart",
            Self::RestartMongo => "MongoDB server restart",
            Self::DiskFull => "SQLite disk full",
        }
    }

    /// The kinds a soak on `kind` injects (`disk_full`: a tmpfs could be mounted).
    pub fn for_store(kind: Backend, disk_full: bool) -> Vec<Self> {
        let mut all = vec![
            Self::KillLeader,
            Self::KillStandby,
            Self::KillRunner,
            Self::PauseLeader,
            Self::PauseRunner,
            Self::RestartRedis,
        ];
        match kind {
            Backend::Mongo => all.push(Self::RestartMongo),
            Backend::Sqlite if disk_full => all.push(Self::DiskFull),
            Backend::Sqlite => {}
        }
        // `RUSTCI_SOAK_SKIP_FAULTS=pause-leader,...`: leave kinds out (to look at the
        // others while one is known to fail); said in the output.
        let skip = std::env::var("RUSTCI_SOAK_SKIP_FAULTS").unwrap_or_default();
        let skip: Vec<&str> = skip
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for s in &skip {
            assert!(
                all.iter()
                    .chain([&Self::RestartMongo, &Self::DiskFull])
                    .any(|k| k.key() == *s),
                "RUSTCI_SOAK_SKIP_FAULTS: unknown fault {s:?}"
            );
        }
        all.retain(|k| !skip.contains(&k.key()));
        all
    }

    /// The kind's name in `RUSTCI_SOAK_SKIP_FAULTS`.
    pub fn key(self) -> &'static str {
        match self {
            Self::KillLeader => "kill-leader",
            Self::KillStandby => "kill-standby",
            Self::KillRunner => "kill-runner",
            Self::PauseLeader => "pause-leader",
            Self::PauseRunner => "pause-runner",
            Self::RestartRedis => "restart-redis",
            Self::RestartMongo => "restart-mongodb",
            Self::DiskFull => "disk-full",
        }
    }
}

/// One planned fault.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    pub kind: FaultKind,
    /// Quiet time before it.
    pub gap: Duration,
    /// Which runner (modulo their number).
    pub pick: usize,
    /// How long a killed process stays down, or a pause or full disk lasts beyond its
    /// minimum.
    pub hold: Duration,
}

/// The seeded plan: `rounds` rounds of every kind in `kinds`.
pub fn schedule(seed: u64, kinds: &[FaultKind], rounds: usize) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17);
    let mut plan = Vec::new();
    for _ in 0..rounds {
        let mut round = kinds.to_vec();
        round.shuffle(&mut rng);
        for kind in round {
            plan.push(Planned {
                kind,
                gap: Duration::from_millis(rng.gen_range(1_000..4_000)),
                pick: rng.gen_range(0..1_000),
                hold: Duration::from_millis(rng.gen_range(500..2_500)),
            });
        }
    }
    plan
}

/// What happened at one fault.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: FaultKind,
    pub target: String,
    /// From the fault (for a full disk: from freeing it) until a job submitted after it
    /// was acknowledged, and until it finished.
    pub answered: Duration,
    pub completed: Duration,
    /// Runner faults: until every job the runner was running had finished elsewhere.
    pub requeued: Option<Duration>,
    /// Jobs the runner was running when it was killed or paused.
    pub jobs_on_runner: usize,
    pub note: String,
}

/// Injects `p`, restores what it took away and measures the recovery. `n` numbers the
/// probe jobs.
pub async fn inject(
    c: &mut Cluster,
    load: &Load,
    effects: &mut Effects,
    p: Planned,
    n: usize,
) -> Result<Outcome, String> {
    let target: String;
    let mut note = String::new();
    // The probe starts with the fault (while the killed process is still down or the
    // paused one stopped): recovery is measured from the fault, not from the repair.
    let probe_id = format!("probe-{n}");
    let start_probe = |from: Instant| {
        let (load, id) = (load.clone(), probe_id.clone());
        tokio::spawn(async move { load.probe(&id, from, RECOVERY_LIMIT).await })
    };
    let probe;
    let mut runner_jobs: Vec<String> = Vec::new();
    let measured_from: Instant;
    match p.kind {
        FaultKind::KillLeader | FaultKind::KillStandby | FaultKind::PauseLeader => {
            let Some(leader) = c.proxy().wait_leader(RECOVERY_LIMIT).await else {
                return Err("no leader before the fault".into());
            };
            let i = if p.kind == FaultKind::KillStandby {
                1 - leader
            } else {
                leader
            };
            target = format!("replica-{i}");
            measured_from = Instant::now();
            probe = start_probe(measured_from);
            if p.kind == FaultKind::PauseLeader {
                c.signal_replica(i, "STOP");
                tokio::time::sleep(Duration::from_millis(LEADER_LEASE_MS + 1_000) + p.hold).await;
                c.signal_replica(i, "CONT");
            } else {
                tokio::task::block_in_place(|| c.kill_replica(i));
                tokio::time::sleep(p.hold).await;
                tokio::task::block_in_place(|| c.start_replica(i));
            }
        }
        FaultKind::KillRunner | FaultKind::PauseRunner => {
            let i = p.pick % c.runners.len();
            let id = c.runners[i].id.clone();
            target = id.clone();
            effects.refresh();
            measured_from = Instant::now();
            probe = start_probe(measured_from);
            if p.kind == FaultKind::KillRunner {
                tokio::task::block_in_place(|| c.kill_runner(i));
                effects.refresh();
                runner_jobs = effects.running_on(&format!("runners/{id}"));
            } else {
                c.signal_runner(i, "STOP");
                effects.refresh();
                runner_jobs = effects.running_on(&format!("runners/{id}"));
                tokio::time::sleep(Duration::from_millis(RUNNER_TTL_MS + 1_000) + p.hold).await;
                c.signal_runner(i, "CONT");
            }
        }
        FaultKind::RestartRedis => {
            target = "redis-server".into();
            measured_from = Instant::now();
            probe = start_probe(measured_from);
            tokio::task::block_in_place(|| c.kill_redis());
            tokio::time::sleep(p.hold).await;
            tokio::task::block_in_place(|| c.start_redis());
        }
        FaultKind::RestartMongo => {
            target = "SecantusDB".into();
            measured_from = Instant::now();
            probe = start_probe(measured_from);
            tokio::task::block_in_place(|| c.kill_mongo());
            tokio::time::sleep(p.hold).await;
            tokio::task::block_in_place(|| c.start_mongo());
        }
        FaultKind::DiskFull => {
            let fs = c.tmpfs.as_ref().ok_or("no tmpfs to fill")?;
            target = "data dir tmpfs".into();
            let filler = fs.dir.join("soak-filler");
            let written = tokio::task::block_in_place(|| fs.fill(&filler));
            let failed_before = load.ledger.lock().expect("ledger").failed_calls;
            tokio::time::sleep(Duration::from_secs(2) + p.hold).await;
            let failed = load.ledger.lock().expect("ledger").failed_calls - failed_before;
            std::fs::remove_file(&filler).map_err(|e| format!("removing the filler: {e}"))?;
            note = format!(
                "filled {} MB; {failed} submit calls failed while full",
                written >> 20
            );
            measured_from = Instant::now();
            probe = start_probe(measured_from);
        }
    }
    let (answered, completed) = probe
        .await
        .map_err(|e| format!("{} ({target}): the probe panicked: {e}", p.kind.name()))?
        .map_err(|e| format!("{} ({target}): {e}", p.kind.name()))?;
    let mut requeued = None;
    if matches!(p.kind, FaultKind::KillRunner | FaultKind::PauseRunner) {
        let deadline = measured_from + RECOVERY_LIMIT;
        let mut left = runner_jobs.clone();
        while !left.is_empty() {
            let mut still = Vec::new();
            for j in left {
                if load.finished(&j).await != Some(true) {
                    still.push(j);
                }
            }
            left = still;
            if Instant::now() > deadline {
                return Err(format!(
                    "{} ({target}): jobs {left:?} not finished {RECOVERY_LIMIT:?} after it",
                    p.kind.name()
                ));
            }
            if !left.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        requeued = Some(measured_from.elapsed());
    }
    c.assert_alive();
    Ok(Outcome {
        kind: p.kind,
        target,
        answered,
        completed,
        requeued,
        jobs_on_runner: runner_jobs.len(),
        note,
    })
}
