//! The steady load: submitters for several tenants at a fixed rate (open loop: a slow
//! server does not slow the offered load), each job 0-2 s of work recorded in the
//! side-effect file. Every submit carries a request id; the ledger keeps what was sent
//! and what the service acknowledged, and unacknowledged submits are retried with the
//! same request id (the service's idempotency makes that safe).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustci_control::clients::client::{connect_lazy, Clients};
use rustci_control::pb::{GetJobRequest, JobState, SubmitJobRequest};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::effects;

/// Bound of one call, so a call to a paused server cannot hang a submitter.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_IN_FLIGHT: usize = 256;
/// The tenant of the recovery probes.
pub const PROBE_TENANT: &str = "probe";

/// (tenant, request id): a job as the client knows it.
pub type Key = (String, String);

#[derive(Debug, Clone)]
pub struct Sent {
    pub command: String,
}

#[derive(Debug, Clone)]
pub struct Ack {
    pub name: String,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub sent: BTreeMap<Key, Sent>,
    pub acked: BTreeMap<Key, Ack>,
    /// Sent, not (yet) acknowledged: retried.
    pub unacked: VecDeque<Key>,
    /// Failed submit calls (each retry counts).
    pub failed_calls: u64,
    /// Acknowledgements that named another job than an earlier one for the same key.
    pub conflicting_acks: Vec<String>,
}

impl Ledger {
    fn ack(&mut self, key: &Key, name: String) {
        if let Some(a) = self.acked.get(key) {
            if a.name != name {
                self.conflicting_acks
                    .push(format!("{key:?}: first {}, then {name}", a.name));
            }
            return;
        }
        self.acked.insert(key.clone(), Ack { name });
    }
}

#[derive(Debug, Clone)]
pub struct Load {
    pub clients: Clients,
    pub ledger: Arc<Mutex<Ledger>>,
    effects_file: PathBuf,
    in_flight: Arc<Semaphore>,
}

impl Load {
    pub fn new(server: &str, effects_file: PathBuf) -> Self {
        Self {
            clients: connect_lazy(server, None, None).expect("client endpoint"),
            ledger: Arc::default(),
            effects_file,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Records a new job of `work_ms` in the ledger as sent; returns its key.
    fn record(&self, tenant: &str, request_id: &str, work_ms: u64) -> Key {
        let key = (tenant.to_string(), request_id.to_string());
        let command = effects::command(&self.effects_file, work_ms);
        self.ledger
            .lock()
            .expect("ledger")
            .sent
            .insert(key.clone(), Sent { command });
        key
    }

    /// Records and sends a new job of `work_ms`; returns whether it was acknowledged.
    pub async fn submit_new(&self, tenant: &str, request_id: &str, work_ms: u64) -> Option<String> {
        let key = self.record(tenant, request_id, work_ms);
        self.submit(&key).await
    }

    /// Sends (again) the job of `key`; acknowledged: its name.
    pub async fn submit(&self, key: &Key) -> Option<String> {
        let command = self.ledger.lock().expect("ledger").sent[key]
            .command
            .clone();
        let req = SubmitJobRequest {
            request_id: key.1.clone(),
            tenant: key.0.clone(),
            labels: vec!["linux".into()],
            command,
            ..Default::default()
        };
        let mut jobs = self.clients.jobs.clone();
        let res = tokio::time::timeout(RPC_TIMEOUT, jobs.submit_job(req)).await;
        let mut l = self.ledger.lock().expect("ledger");
        match res {
            Ok(Ok(job)) => {
                let name = job.into_inner().name;
                l.ack(key, name.clone());
                Some(name)
            }
            _ => {
                l.failed_calls += 1;
                if !l.acked.contains_key(key) {
                    l.unacked.push_back(key.clone());
                }
                None
            }
        }
    }

    /// Submits at `rate` jobs/s over `tenants` tenants until stopped; job lengths are
    /// drawn from `seed`. Each tick also retries a few unacknowledged submits.
    pub fn start(&self, rate: f64, tenants: usize, seed: u64) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let began = Instant::now();
            let mut n: u64 = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let due = (began.elapsed().as_secs_f64() * rate) as u64;
                while n < due {
                    let tenant = format!("tenant-{}", n as usize % tenants);
                    let id = format!("load-{n}");
                    let work_ms = rng.gen_range(0..=2_000);
                    n += 1;
                    let Ok(permit) = me.in_flight.clone().try_acquire_owned() else {
                        // Saturated: the job is sent later, as a retry.
                        let key = me.record(&tenant, &id, work_ms);
                        me.ledger.lock().expect("ledger").unacked.push_back(key);
                        continue;
                    };
                    let me = me.clone();
                    tokio::spawn(async move {
                        me.submit_new(&tenant, &id, work_ms).await;
                        drop(permit);
                    });
                }
                me.retry_some(16);
            }
        })
    }

    /// Retries up to `max` unacknowledged submits in the background.
    fn retry_some(&self, max: usize) {
        for _ in 0..max {
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                return;
            };
            let Some(key) = self.ledger.lock().expect("ledger").unacked.pop_front() else {
                return;
            };
            let me = self.clone();
            tokio::spawn(async move {
                if !me.ledger.lock().expect("ledger").acked.contains_key(&key) {
                    me.submit(&key).await;
                }
                drop(permit);
            });
        }
    }

    /// Retries every unacknowledged submit until each is acknowledged or `timeout`.
    pub async fn ack_all(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let pending: Vec<Key> = {
                let mut l = self.ledger.lock().expect("ledger");
                let keys: Vec<Key> = l.sent.keys().cloned().collect();
                l.unacked.clear();
                keys.into_iter()
                    .filter(|k| !l.acked.contains_key(k))
                    .collect()
            };
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{} submits never acknowledged", pending.len()));
            }
            for chunk in pending.chunks(64) {
                let mut calls = tokio::task::JoinSet::new();
                for k in chunk {
                    let (me, k) = (self.clone(), k.clone());
                    calls.spawn(async move { me.submit(&k).await });
                }
                while calls.join_next().await.is_some() {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A job of the probe tenant submitted now (retried with its request id until
    /// acknowledged), then polled until it finished: (acknowledged, finished) after
    /// `since`, or an error after `timeout`.
    pub async fn probe(
        &self,
        id: &str,
        since: Instant,
        timeout: Duration,
    ) -> Result<(Duration, Duration), String> {
        let deadline = since + timeout;
        let key = (PROBE_TENANT.to_string(), id.to_string());
        let mut name = self.submit_new(PROBE_TENANT, id, 0).await;
        while name.is_none() {
            if Instant::now() > deadline {
                return Err(format!("probe {id}: no submit acknowledged in {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            name = self.submit(&key).await;
        }
        let answered = since.elapsed();
        let name = name.unwrap_or_default();
        loop {
            if self.finished(&name).await == Some(true) {
                return Ok((answered, since.elapsed()));
            }
            if Instant::now() > deadline {
                return Err(format!("probe {id} ({name}) not finished in {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether job `name` finished, as the service says (`None`: no answer).
    pub async fn finished(&self, name: &str) -> Option<bool> {
        let mut jobs = self.clients.jobs.clone();
        let r = tokio::time::timeout(
            RPC_TIMEOUT,
            jobs.get_job(GetJobRequest {
                name: name.to_string(),
            }),
        )
        .await;
        let job = r.ok()?.ok()?.into_inner();
        Some(matches!(
            JobState::try_from(job.state),
            Ok(JobState::Succeeded | JobState::Failed | JobState::Cancelled)
        ))
    }
}
