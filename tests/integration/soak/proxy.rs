//! A TCP front for the two replicas, as a load balancer with a readiness check is in a
//! real deployment: every new connection goes to the replica that answers GetQueueStats
//! (the leader; a standby answers UNAVAILABLE), and connections to a replica that stopped
//! answering as leader are cut, so clients reconnect to the new one. The reference runner
//! takes one server address and keeps its connection (`failover_process.rs`), so without
//! this it could not follow a failover.
//!
//! The proxy only routes: it never answers a gRPC call itself, and a client's call on a
//! cut connection fails like one to a dead server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustci_control::clients::client::{connect_lazy, Clients};
use rustci_control::pb::GetQueueStatsRequest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the replicas are asked who leads, and how long an answer may take.
const PROBE_EVERY: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_millis(700);
/// How long a new connection waits for a leader before it is closed.
const WAIT_FOR_LEADER: Duration = Duration::from_secs(2);

/// Probes in a row a leader may miss before its connections are cut.
const DEPOSE_AFTER: u32 = 3;

#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    /// The replica (index into the ports) that leads, as last probed.
    leader: watch::Receiver<Option<usize>>,
    /// Probes at which more than one replica answered as leader.
    pub both_answered: Arc<AtomicU64>,
    /// Changes of leader seen (a change to "none" included).
    pub leader_changes: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(replica_ports: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (tx, leader) = watch::channel(None);
        let both_answered = Arc::new(AtomicU64::new(0));
        let leader_changes = Arc::new(AtomicU64::new(0));
        let clients: Vec<Clients> = replica_ports
            .iter()
            .map(|p| connect_lazy(&format!("http://127.0.0.1:{p}"), None, None).expect("endpoint"))
            .collect();
        let probe = tokio::spawn(probe_loop(
            clients,
            tx,
            both_answered.clone(),
            leader_changes.clone(),
        ));
        let accept = tokio::spawn(accept_loop(listener, replica_ports, leader.clone()));
        Self {
            port,
            leader,
            both_answered,
            leader_changes,
            tasks: vec![probe, accept],
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until a replica leads (up to `timeout`).
    pub async fn wait_leader(&self, timeout: Duration) -> Option<usize> {
        let mut rx = self.leader.clone();
        let got = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        got.ok().and_then(|r| r.ok().and_then(|v| *v))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn probe_loop(
    clients: Vec<Clients>,
    tx: watch::Sender<Option<usize>>,
    both: Arc<AtomicU64>,
    changes: Arc<AtomicU64>,
) {
    let mut missed = 0;
    loop {
        let mut answering = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let mut fleet = c.fleet.clone();
            let r = tokio::time::timeout(
                PROBE_TIMEOUT,
                fleet.get_queue_stats(GetQueueStatsRequest {}),
            )
            .await;
            if matches!(r, Ok(Ok(_))) {
                answering.push(i);
            }
        }
        if answering.len() > 1 {
            both.fetch_add(1, Ordering::Relaxed);
        }
        // A leader that misses one probe (a busy machine) keeps its clients; one that
        // misses `DEPOSE_AFTER` in a row, or another replica answering alone, ends it.
        let before = *tx.borrow();
        let now = match answering[..] {
            [i] => {
                missed = 0;
                Some(i)
            }
            [] if before.is_some() && missed + 1 < DEPOSE_AFTER => {
                missed += 1;
                before
            }
            _ => {
                missed = 0;
                None
            }
        };
        if before != now {
            changes.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(now);
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    ports: Vec<u16>,
    leader: watch::Receiver<Option<usize>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let mut leader = leader.clone();
        let ports = ports.clone();
        tokio::spawn(async move {
            let to = {
                let waited =
                    tokio::time::timeout(WAIT_FOR_LEADER, leader.wait_for(Option::is_some)).await;
                match waited {
                    Ok(Ok(v)) => *v,
                    _ => None,
                }
            };
            let Some(to) = to else {
                return;
            };
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", ports[to])).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            forward(client, upstream, leader, to).await;
        });
    }
}

/// Copies both ways until either side closes or `to` stops leading.
async fn forward(
    mut client: TcpStream,
    mut upstream: TcpStream,
    mut leader: watch::Receiver<Option<usize>>,
    to: usize,
) {
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let deposed = leader.wait_for(|l| *l != Some(to));
    tokio::select! {
        _ = copy => {}
        _ = deposed => {}
    }
}
