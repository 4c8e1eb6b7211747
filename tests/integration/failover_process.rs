//! Must-show "Failover with two replicas and Redis: kill the leader, the other takes over
//! within the lease time, nothing lost", with real processes: a private `redis-server`
//! and two `rustci serve` children on two loopback ports sharing one store (a `--data-dir`,
//! or a `--store mongodb://` database) and one `--redis`; on each store. Clients find the leader by asking both (the standby answers UNAVAILABLE).
//! The leader gets SIGKILL (no lease release, no graceful shutdown); the other process
//! must accept submits within the lease TTL + one renewal period (+ slack), serve every
//! acknowledged job with its request id, keep request-id idempotency and take new jobs.
//!
//! No runner here: the reference runner (`rustci runner --server URL`) takes exactly one
//! server address and, when that server is gone, retries the same address forever, so it
//! cannot follow a failover to the other replica. This test checks the job API only.

use crate::common;
use crate::stores::{on_both_stores, Backend, TestStore};
use crate::support_redis;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{tail, Procs};
use rustci_control::clients::client::{connect_lazy, Clients};
use rustci_control::pb::{GetJobRequest, GetQueueStatsRequest, Job, SubmitJobRequest};
use support_redis::RedisServer;
use tonic::Code;

const LEADER_LEASE_MS: u64 = 1500;
/// The coordinator renews (and a standby polls) every TTL/3.
const RENEW_MS: u64 = LEADER_LEASE_MS / 3;
const SLACK_MS: u64 = 1000;
const TENANT: &str = "team-a";
const JOBS: usize = 50;
/// Bound of a single RPC, so a hung call cannot outlive a polling deadline.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);

struct Replica {
    name: String,
    port: u16,
    clients: Clients,
}

fn submit_req(request_id: &str) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: request_id.into(),
        tenant: TENANT.into(),
        command: format!("echo {request_id}"),
        ..Default::default()
    }
}

fn logs(procs: &Procs, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            let t = procs.log_of(n).map(|p| tail(&p, 30)).unwrap_or_default();
            format!("--- {n} ---\n{t}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until something listens on `port` (the child process is up), failing early if
/// a child died.
fn wait_listening(procs: &mut Procs, port: u16, timeout: Duration) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        procs.assert_alive();
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The index of the replica that serves GetQueueStats, polling until `within`; every
/// other replica must answer UNAVAILABLE, and never two serve at once.
async fn find_leader(procs: &mut Procs, replicas: &[Replica], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = Vec::new();
        let mut states = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            let mut fleet = r.clients.fleet.clone();
            let res =
                tokio::time::timeout(RPC_TIMEOUT, fleet.get_queue_stats(GetQueueStatsRequest {}))
                    .await;
            match res {
                Ok(Ok(_)) => leaders.push(i),
                Ok(Err(s)) if s.code() == Code::Unavailable => {
                    states.push(format!("{}: {}", r.name, s.message()));
                }
                Ok(Err(s)) => panic!("{}: unexpected {s:?}", r.name),
                Err(_) => states.push(format!("{}: timed out", r.name)),
            }
        }
        assert!(
            leaders.len() <= 1,
            "two replicas serve at once: {leaders:?}"
        );
        if let [i] = leaders[..] {
            return i;
        }
        procs.assert_alive();
        assert!(
            Instant::now() < deadline,
            "no replica serves within {within:?}: {states:?}\n{}",
            logs(procs, &["replica-0", "replica-1"])
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_replica(
    procs: &mut Procs,
    i: usize,
    redis: &RedisServer,
    store: &TestStore,
    logs: &Path,
) -> Replica {
    let name = format!("replica-{i}");
    let port = common::free_port();
    let lease = LEADER_LEASE_MS.to_string();
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let mut args = vec!["--redis", &redis_url, "--leader-lease-ms", &lease];
    args.extend(store.serve_args());
    procs.server(
        &name,
        port,
        store.data_dir(),
        &args,
        &logs.join(format!("{name}.log")),
    );
    let clients =
        connect_lazy(&format!("http://127.0.0.1:{port}"), None, None).expect("client endpoint");
    Replica {
        name,
        port,
        clients,
    }
}

on_both_stores!(killed_leader_process_is_replaced_within_the_lease_and_nothing_is_lost);

async fn killed_leader_process_is_replaced_within_the_lease_and_nothing_is_lost(
    backend: Backend,
    test: &str,
) {
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let mut procs = Procs::new();
    let replicas = vec![
        start_replica(&mut procs, 0, &redis, &store, dir.path()),
        start_replica(&mut procs, 1, &redis, &store, dir.path()),
    ];
    for r in &replicas {
        wait_listening(&mut procs, r.port, Duration::from_secs(20));
    }
    let leader = find_leader(&mut procs, &replicas, Duration::from_secs(20)).await;
    let standby = 1 - leader;
    let (leader_name, standby_name) = (
        replicas[leader].name.clone(),
        replicas[standby].name.clone(),
    );

    // The standby refuses work while the leader holds the lease.
    let err = replicas[standby]
        .clients
        .jobs
        .clone()
        .submit_job(submit_req("to-the-standby"))
        .await
        .expect_err("the standby refuses submits");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    // Every job the leader acknowledges must survive its death.
    let mut acked: Vec<Job> = Vec::with_capacity(JOBS);
    let mut jobs = replicas[leader].clients.jobs.clone();
    for i in 0..JOBS {
        let job = jobs
            .submit_job(submit_req(&format!("before-{i}")))
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "the leader refused submit {i}: {s:?}\n{}",
                    logs(&procs, &[&leader_name])
                )
            })
            .into_inner();
        assert_eq!(job.request_id, format!("before-{i}"));
        acked.push(job);
    }
    let names: Vec<String> = acked.iter().map(|j| j.name.clone()).collect();

    // SIGKILL the leader process: it neither releases the lease nor shuts down.
    let killed = Instant::now();
    procs.kill9(&leader_name);

    // The survivor accepts a submit within TTL + one renewal period + slack. The probe
    // keeps one request id, so a call that timed out after committing is not a second job.
    let bound = Duration::from_millis(LEADER_LEASE_MS + RENEW_MS + SLACK_MS);
    let give_up = Duration::from_secs(15);
    let mut survivor = replicas[standby].clients.jobs.clone();
    let (took, probe) = loop {
        let res = tokio::time::timeout(
            RPC_TIMEOUT,
            survivor.submit_job(submit_req("takeover-probe")),
        )
        .await;
        match res {
            Ok(Ok(job)) => break (killed.elapsed(), job.into_inner()),
            Ok(Err(s)) if s.code() == Code::Unavailable => {}
            Ok(Err(s)) => panic!(
                "survivor: unexpected {s:?}\n{}",
                logs(&procs, &[&standby_name])
            ),
            Err(_) => {}
        }
        procs.assert_alive();
        assert!(
            killed.elapsed() < give_up,
            "the survivor did not take over within {give_up:?}\n{}",
            logs(&procs, &[&standby_name])
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = writeln!(
        std::io::stderr(),
        "failover (processes, {backend:?}): {standby_name} accepted a submit {} ms after {leader_name} was SIGKILLed \
         (lease TTL {LEADER_LEASE_MS} ms, renewal every {RENEW_MS} ms, bound {} ms)",
        took.as_millis(),
        bound.as_millis()
    );
    assert!(
        took <= bound,
        "takeover took {took:?} (bound {bound:?})\n{}",
        logs(&procs, &[&standby_name])
    );
    assert!(
        !names.contains(&probe.name),
        "the probe reused {}",
        probe.name
    );

    // Nothing acknowledged is lost: same job, same request id, same command.
    crate::common::assert_nothing_lost(&mut survivor, &acked).await;

    // Idempotency holds across the failover: a retried submit finds its job.
    for j in &acked {
        let again = survivor
            .submit_job(submit_req(&j.request_id))
            .await
            .unwrap_or_else(|s| panic!("resubmitting {}: {s:?}", j.request_id))
            .into_inner();
        assert_eq!(again.name, j.name, "resubmitted {}", j.request_id);
    }

    // New submits get new jobs, readable afterwards.
    let max_old = acked.iter().map(|j| j.revision).max().unwrap_or(0);
    for i in 0..5 {
        let job = survivor
            .submit_job(submit_req(&format!("after-{i}")))
            .await
            .expect("the new leader accepts submits")
            .into_inner();
        assert!(!names.contains(&job.name), "{} reused", job.name);
        assert_ne!(job.name, probe.name, "{} reused", job.name);
        assert!(
            job.revision > max_old,
            "{} revision {}",
            job.name,
            job.revision
        );
        let got = survivor
            .get_job(GetJobRequest {
                name: job.name.clone(),
            })
            .await
            .expect("reading a new job")
            .into_inner();
        assert_eq!(got.request_id, format!("after-{i}"));
    }
    procs.assert_alive();
    drop(procs);
    drop(redis);
    store.finish().await;
}
