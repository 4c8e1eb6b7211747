//! Must-show 3: two replicas of `rustci serve` (in process, real gRPC on loopback)
//! sharing one store (a SQLite data directory, or a MongoDB database) and one Redis. Clients find the leader by trying
//! both (the standby answers UNAVAILABLE). The leader is killed without releasing its
//! lease; the standby takes over within the lease TTL (+ one renewal period), serves
//! every acknowledged job, accepts new submits, and a watcher connected to it saw every
//! change, before and after the failover.

use crate::stores::{on_both_stores, Backend, TestStore};
use crate::support_redis;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::{owner_channel, OwnerChannel};
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::{
    GetJobRequest, Job, JobEvent, ListJobsRequest, SubmitJobRequest, WatchJobsRequest,
};
use rustci_control::server::{start, RunningServer, ServeOptions};
use support_redis::RedisServer;
use tokio_stream::StreamExt;
use tonic::{Code, Status, Streaming};

const LEADER_LEASE_MS: u64 = 1500;
const TENANT: &str = "team-a";

async fn replica(redis: &RedisServer, store: &TestStore) -> RunningServer {
    start(store.serve_options(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        redis: Some(redis.url()),
        leader_lease_ms: LEADER_LEASE_MS,
        ..ServeOptions::default()
    }))
    .await
    .expect("replica starts")
}

async fn client(srv: &RunningServer) -> JobServiceClient<OwnerChannel> {
    let ch = owner_channel(srv.addr).await;
    JobServiceClient::new(ch)
}

/// Which of `clients` serves, polling until `within`; every other must answer UNAVAILABLE.
async fn find_leader(clients: &mut [JobServiceClient<OwnerChannel>], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = Vec::new();
        for (i, c) in clients.iter_mut().enumerate() {
            let r = c
                .list_jobs(ListJobsRequest {
                    tenant: TENANT.into(),
                    page_size: 1,
                    ..Default::default()
                })
                .await;
            match r {
                Ok(_) => leaders.push(i),
                Err(s) if s.code() == Code::Unavailable => {}
                Err(s) => panic!("replica {i}: unexpected {s:?}"),
            }
        }
        assert!(
            leaders.len() <= 1,
            "two replicas serve at once: {leaders:?}"
        );
        if let [i] = leaders[..] {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no replica serves within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn submit_req(request_id: &str) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: request_id.into(),
        tenant: TENANT.into(),
        command: format!("echo {request_id}"),
        ..Default::default()
    }
}

/// Reads `watch` until `done` holds on the latest version of each job seen.
async fn watch_until(
    watch: &mut Streaming<JobEvent>,
    seen: &mut HashMap<String, Job>,
    done: impl Fn(&HashMap<String, Job>) -> bool,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(seen) {
        let ev = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("watcher: timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("watcher: stream ended waiting for {what}"))
            .unwrap_or_else(|s: Status| panic!("watcher: {s:?} waiting for {what}"));
        let job = ev.job.expect("event has a job");
        assert_eq!(ev.revision, job.revision);
        seen.insert(job.name.clone(), job);
    }
}

on_both_stores!(standby_takes_over_a_killed_leader_and_loses_nothing);

async fn standby_takes_over_a_killed_leader_and_loses_nothing(backend: Backend, test: &str) {
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let mut servers = [
        Some(replica(&redis, &store).await),
        Some(replica(&redis, &store).await),
    ];
    let mut clients = Vec::new();
    for s in servers.iter().flatten() {
        clients.push(client(s).await);
    }
    let leader = find_leader(&mut clients, Duration::from_secs(10)).await;
    let standby = 1 - leader;

    // A watcher on the standby, from the beginning of time: history from the shared
    // store, then live changes fanned out through Redis.
    let mut watch = clients[standby]
        .watch_jobs(WatchJobsRequest {
            tenant: TENANT.into(),
            from_revision: 0,
            pipeline: String::new(),
        })
        .await
        .expect("a standby accepts watchers")
        .into_inner();
    let mut seen = HashMap::new();

    let mut acked: Vec<Job> = Vec::new();
    for i in 0..20 {
        let job = clients[leader]
            .submit_job(submit_req(&format!("before-{i}")))
            .await
            .expect("the leader accepts submits")
            .into_inner();
        acked.push(job);
    }
    let err = clients[standby]
        .submit_job(submit_req("to-the-standby"))
        .await
        .expect_err("the standby refuses submits");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let names: Vec<String> = acked.iter().map(|j| j.name.clone()).collect();
    watch_until(
        &mut watch,
        &mut seen,
        |s| names.iter().all(|n| s.contains_key(n)),
        "the jobs submitted to the leader",
    )
    .await;

    // Kill the leader: its coordinator stops renewing without releasing the lease, and
    // its gRPC server goes away.
    let mut dead = servers[leader].take().expect("leader");
    let coordinator = dead.coordinator.take().expect("coordinated");
    coordinator.kill();
    let killed = Instant::now();
    drop(coordinator);
    tokio::time::timeout(Duration::from_secs(10), dead.stop())
        .await
        .expect("the killed leader's server stops")
        .expect("stop");

    // The standby takes over within the lease TTL plus one renewal period (+ slack for
    // rebuilding its state from the store and for this polling).
    let first = acked[0].name.clone();
    let took = loop {
        match clients[standby]
            .get_job(GetJobRequest {
                name: first.clone(),
            })
            .await
        {
            Ok(_) => break killed.elapsed(),
            Err(s) if s.code() == Code::Unavailable => {}
            Err(s) => panic!("survivor: unexpected {s:?}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the standby never took over"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = writeln!(
        std::io::stderr(),
        "failover ({backend:?}): the standby served {} ms after the leader was killed (leader lease TTL {LEADER_LEASE_MS} ms)",
        took.as_millis()
    );
    let bound = Duration::from_millis(LEADER_LEASE_MS + LEADER_LEASE_MS / 3 + 500);
    assert!(took <= bound, "takeover took {took:?} (bound {bound:?})");

    // Nothing acknowledged is lost.
    let survivor = &mut clients[standby];
    crate::common::assert_nothing_lost(survivor, &acked).await;
    // A retried submit finds its job (idempotency holds across the failover)...
    let again = survivor
        .submit_job(submit_req("before-3"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(again.name, acked[3].name);
    // ...and new submits get new jobs.
    let max_old = acked.iter().map(|j| j.revision).max().unwrap_or(0);
    let mut after = Vec::new();
    for i in 0..5 {
        let job = survivor
            .submit_job(submit_req(&format!("after-{i}")))
            .await
            .expect("the new leader accepts submits")
            .into_inner();
        assert!(!names.contains(&job.name), "{} reused", job.name);
        assert!(job.revision > max_old);
        after.push(job.name);
    }
    // The watcher that was on the standby keeps streaming on the new leader.
    watch_until(
        &mut watch,
        &mut seen,
        |s| after.iter().all(|n| s.contains_key(n)),
        "the jobs submitted after the failover",
    )
    .await;

    // A graceful stop waits for open calls: end the watch stream first.
    drop(watch);
    drop(clients);
    if let Some(s) = servers[standby].take() {
        tokio::time::timeout(Duration::from_secs(10), s.stop())
            .await
            .expect("the survivor stops")
            .expect("stop");
    }
    store.finish().await;
}
