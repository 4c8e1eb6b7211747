//! Redis coordination (`rustci_control::server::coord`) against a real `redis-server` started by
//! the test: one leader at a time, takeover after a crash within the lease TTL, a leader
//! whose lease was taken steps down, graceful release, and job events fanned out to the
//! other replica.

use crate::support_redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustci_control::server::auth::Auth;
use rustci_control::server::coord::{self, CoordConfig, Coordinator, OpenLive};
use rustci_control::server::live::{Clock, Live, LiveConfig, Submission, SystemClock};
use rustci_control::server::state::Shared;
use rustci_control::store::sqlite::{SqliteStore, SyncMode};
use rustci_control::store::ReadOnlyStore;
use support_redis::RedisServer;
use tonic::Code;

const TTL: Duration = Duration::from_millis(600);

struct Replica {
    coord: Coordinator,
    shared: Arc<Shared>,
}

async fn replica(redis: &RedisServer, data: &std::path::Path) -> Replica {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let live = coord::standby_live(LiveConfig::default(), clock.clone()).expect("standby live");
    let shared = Shared::new(
        live,
        Auth::local(
            rustci_control::local_token::load_or_create(&data.join("local.token")).expect("token"),
        ),
    );
    *shared.history.lock().expect("history lock") = Some(ReadOnlyStore::new(Box::new(
        SqliteStore::open(data, SyncMode::Normal).expect("store"),
    )));
    let dir = data.to_path_buf();
    let open_live: OpenLive = Arc::new(move || {
        let store = SqliteStore::open(&dir, SyncMode::Normal)?;
        Ok(Live::open(
            LiveConfig::default(),
            clock.clone(),
            Box::new(store),
        )?)
    });
    let config = CoordConfig {
        lease_ttl: TTL,
        ..CoordConfig::new(redis.url())
    };
    let coord = Coordinator::start(config, shared.clone(), open_live)
        .await
        .expect("coordinator starts");
    Replica { coord, shared }
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Waits until exactly one of `rs` leads; returns its index.
async fn one_leader(rs: &[&Replica], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let leaders: Vec<usize> = (0..rs.len()).filter(|&i| rs[i].coord.is_leader()).collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let [i] = leaders[..] {
            return i;
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_takeover_after_a_crash() {
    let Some(redis) = RedisServer::start("one_leader_at_a_time_and_takeover_after_a_crash") else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let a = replica(&redis, data.path()).await;
    let b = replica(&redis, data.path()).await;
    let first = one_leader(&[&a, &b], Duration::from_secs(5)).await;
    // Stable: for several TTLs (many renewals and polls), never two leaders, never none.
    let until = Instant::now() + TTL * 3;
    while Instant::now() < until {
        assert_eq!(one_leader(&[&a, &b], Duration::ZERO).await, first);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (leader, standby) = if first == 0 { (&a, &b) } else { (&b, &a) };
    let err = standby.shared.live().expect_err("a standby refuses work");
    assert_eq!(err.code(), Code::Unavailable);
    drop(leader.shared.live().expect("the leader serves"));

    // Crash: the leader's tasks end without stepping down or releasing the lease.
    leader.coord.kill();
    let killed = Instant::now();
    assert!(
        standby
            .coord
            .wait_leader(true, TTL + TTL / 3 + Duration::from_secs(2))
            .await,
        "the standby did not take over"
    );
    let took = killed.elapsed();
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "takeover after a crash: {} ms (lease TTL {} ms)",
        took.as_millis(),
        TTL.as_millis()
    );
    assert!(
        took <= TTL + TTL / 3 + Duration::from_millis(300),
        "takeover took {took:?}, more than TTL + one poll period"
    );
    drop(standby.shared.live().expect("the new leader serves"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_was_taken_steps_down() {
    let Some(redis) = RedisServer::start("a_leader_whose_lease_was_taken_steps_down") else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let a = replica(&redis, data.path()).await;
    assert!(a.coord.wait_leader(true, Duration::from_secs(5)).await);
    let key = a.coord.config().leader_key();
    let mut conn = redis_conn(&redis).await;

    // Someone else's value in the key: the next renewal returns 0 and A stops serving.
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("intruder")
        .arg("PX")
        .arg(TTL.as_millis() as u64)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let stolen = Instant::now();
    assert!(
        a.coord
            .wait_leader(false, TTL / 3 + Duration::from_millis(300))
            .await,
        "A kept serving on a lease that is not its own"
    );
    assert!(
        stolen.elapsed() < TTL,
        "stepped down only after {:?}",
        stolen.elapsed()
    );
    assert_eq!(
        a.shared.live().expect_err("standby").code(),
        Code::Unavailable
    );

    // Once the intruder's key expires, a replica wins it again. Now a second replica:
    // DEL the key and let B take it; A, which was leader again, must step down.
    assert!(
        a.coord.wait_leader(true, TTL * 3).await,
        "A did not win the free lease"
    );
    let b = replica(&redis, data.path()).await;
    assert!(!b.coord.is_leader());
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    let deadline = Instant::now() + TTL * 3;
    // Whoever wins the race for the free key, within a renewal period exactly one
    // replica serves and it is the one named in Redis.
    loop {
        let holder: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        let a_leads = a.coord.is_leader();
        let b_leads = b.coord.is_leader();
        let settled = match holder.as_deref() {
            Some(h) if h == b.coord.replica_id() => b_leads && !a_leads,
            Some(h) if h == a.coord.replica_id() => a_leads && !b_leads,
            _ => false,
        };
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no settled leader after DEL: holder {holder:?}, a {a_leads}, b {b_leads}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_hands_over_without_waiting_for_the_ttl() {
    let Some(redis) =
        RedisServer::start("graceful_shutdown_hands_over_without_waiting_for_the_ttl")
    else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let a = replica(&redis, data.path()).await;
    assert!(a.coord.wait_leader(true, Duration::from_secs(5)).await);
    let b = replica(&redis, data.path()).await;
    let shared_a = a.shared.clone();
    let stopped = Instant::now();
    a.coord.shutdown().await;
    assert_eq!(
        shared_a.live().expect_err("stopped").code(),
        Code::Unavailable
    );
    assert!(
        b.coord
            .wait_leader(true, TTL / 3 + Duration::from_millis(300))
            .await,
        "B did not take over a released lease within one poll period"
    );
    assert!(stopped.elapsed() < TTL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_events_reach_the_other_replica() {
    let Some(redis) = RedisServer::start("job_events_reach_the_other_replica") else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let a = replica(&redis, data.path()).await;
    assert!(a.coord.wait_leader(true, Duration::from_secs(5)).await);
    let b = replica(&redis, data.path()).await;
    assert!(a.coord.wait_subscribed(Duration::from_secs(5)).await);
    assert!(b.coord.wait_subscribed(Duration::from_secs(5)).await);
    let mut on_a = a.shared.events.subscribe();
    let mut on_b = b.shared.events.subscribe();

    let mut submitted = Vec::new();
    for i in 0..5 {
        let job = a
            .shared
            .live()
            .expect("leader")
            .submit(Submission {
                request_id: format!("fanout-{i}"),
                tenant: "team-a".into(),
                command: "true".into(),
                ..Submission::default()
            })
            .expect("submit");
        submitted.push(job);
    }
    for (name, rx) in [("leader", &mut on_a), ("standby", &mut on_b)] {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.len() < submitted.len() {
            let j = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{name}: only {got:?} arrived"))
                .expect("events");
            if !got.contains(&j.revision) {
                got.push(j.revision);
            }
        }
        let want: Vec<u64> = submitted.iter().map(|j| j.revision).collect();
        assert_eq!(got, want, "{name}: events in commit order");
    }
    // And the payload is the whole job.
    let j = b
        .shared
        .changes_since(0, Some("team-a"), 100)
        .expect("standby history");
    assert_eq!(j.len(), submitted.len());
    assert_eq!(j[0], submitted[0]);
}
