//! Load generator: full job lifecycles (SubmitJob → lease via AcquireJobs → CompleteJob)
//! over real gRPC on loopback against an in-process `rustci serve` (embedded SQLite).
//!
//! `cargo bench -p rustci-control --bench lifecycle [-- --seconds N --sync normal|full
//! --batch K --submitters N --rate R --timeline]`
//!
//! `--floor` measures only the round trip of a health check at `--rate` (default
//! 10,000/s): the latency floor of gRPC on this machine, without rustci's work.
//!
//! `--batch K` (K > 1) uses the batch calls: SubmitJobs with K jobs per call, and one
//! CompleteJobs per batch of leases a runner got.
//!
//! 1. Peak: closed-loop submitters as fast as they go, runners leasing in batches and
//!    completing each job; reports lifecycles per second.
//! 2. Latency: open-loop submissions at half of that peak (or `--rate R` jobs per
//!    second); reports submit-to-lease latency (from the SubmitJob call to the runner
//!    holding the lease) p50/p90/p95/p99/p99.9; `--timeline` adds them per half second
//!    of submission, where a stall shows as one row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;
use rustci_control::server::{start, ServeOptions};
use rustci_control::store::sqlite::SyncMode;
use tonic::transport::Channel;

const RUNNERS: usize = 4;
const SLOTS: u32 = 512;
/// Closed-loop submitters in phase 1 unless `--submitters N` says otherwise.
const SUBMITTERS: usize = 8;
const CHANNELS: usize = 4;

struct Shared {
    stop: AtomicBool,
    completed: AtomicU64,
    /// request_id → when its SubmitJob call started (latency phase only).
    sent: Mutex<HashMap<String, Instant>>,
    latencies: Mutex<Vec<Duration>>,
    /// (submitted at, submit-to-lease) of each job, for `--timeline`.
    timeline: Mutex<Vec<(Instant, Duration)>>,
    /// SubmitJob call durations (latency phase, unary calls): until the job is durable.
    acks: Mutex<Vec<Duration>>,
    measure: AtomicBool,
    batch: usize,
}

/// The floor of the stack: open-loop `grpc.health.v1.Health/Check` calls (no store, no
/// live state) at `rate` per second on the same channels and runtime; what any RPC of
/// this server costs in latency on this machine before rustci does anything.
async fn floor(chans: &[Channel], rate: f64, seconds: u64) {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let lat = Arc::new(Mutex::new(Vec::new()));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let calls = (rate * seconds as f64) as u64;
    let start_at = Instant::now();
    let cpu0 = cpu_time();
    open_loop(start_at, interval, calls, |n| {
        let mut client = HealthClient::new(chans[(n as usize) % CHANNELS].clone());
        let lat = lat.clone();
        async move {
            let t = Instant::now();
            if client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok()
            {
                lat.lock().expect("lock").push(t.elapsed());
            }
        }
    })
    .await;
    let elapsed = start_at.elapsed().as_secs_f64();
    let cpu = cpu_time()
        .zip(cpu0)
        .map(|(c1, c0)| (c1 - c0).as_secs_f64() / elapsed);
    let mut lat = lat.lock().expect("lock").clone();
    lat.sort();
    let ms = |p: f64| percentile(&lat, p).as_secs_f64() * 1e3;
    println!(
        "floor: {} health checks at {rate:.0}/s: round trip p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms; process CPU {:.2} cores",
        lat.len(),
        ms(50.0),
        ms(90.0),
        ms(99.0),
        ms(99.9),
        cpu.unwrap_or(f64::NAN)
    );
}

/// Open loop: the `n`th of `calls` calls is spawned at `start_at + n * interval` whether
/// or not the earlier ones were answered; returns when all were.
async fn open_loop<F, Fut>(start_at: Instant, interval: Duration, calls: u64, mut call: F)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut inflight = Vec::new();
    for n in 0..calls {
        tokio::time::sleep_until((start_at + interval.mul_f64(n as f64)).into()).await;
        inflight.push(tokio::spawn(call(n)));
        if inflight.len() > 4096 {
            for f in inflight.drain(..2048) {
                let _ = f.await;
            }
        }
    }
    for f in inflight {
        let _ = f.await;
    }
}

async fn channels(addr: std::net::SocketAddr) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..CHANNELS {
        out.push(
            Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect"),
        );
    }
    out
}

fn runner_task(ch: Channel, name: String, shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = RunnerServiceClient::new(ch);
        while !shared.stop.load(Ordering::Relaxed) {
            let got = match client
                .acquire_jobs(AcquireJobsRequest {
                    name: name.clone(),
                    max_jobs: 256,
                    wait_ms: 50,
                })
                .await
            {
                Ok(r) => r.into_inner().leases,
                Err(_) => continue,
            };
            let now = Instant::now();
            if shared.measure.load(Ordering::Relaxed) {
                let mut sent = shared.sent.lock().expect("lock");
                let mut lat = shared.latencies.lock().expect("lock");
                for l in &got {
                    if let Some(t) = l.job.as_ref().and_then(|j| sent.remove(&j.request_id)) {
                        lat.push(now - t);
                        shared.timeline.lock().expect("lock").push((t, now - t));
                    }
                }
            }
            // Complete concurrently and go straight back to leasing, as a runner with
            // free slots does.
            let completions: Vec<CompleteJobRequest> = got
                .into_iter()
                .map(|l| CompleteJobRequest {
                    job: l.job.map(|j| j.name).unwrap_or_default(),
                    runner: name.clone(),
                    fencing_token: l.fencing_token,
                    success: true,
                    ..Default::default()
                })
                .collect();
            if completions.is_empty() {
                continue;
            }
            if shared.batch > 1 {
                let mut c = client.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Ok(r) = c.complete_jobs(CompleteJobsRequest { completions }).await {
                        let ok = r
                            .into_inner()
                            .results
                            .iter()
                            .filter(|r| r.code == 0)
                            .count();
                        shared.completed.fetch_add(ok as u64, Ordering::Relaxed);
                    }
                });
            } else {
                for done in completions {
                    let mut c = client.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if c.complete_job(done).await.is_ok() {
                            shared.completed.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        }
    })
}

fn job(request_id: String, n: u64) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id,
        tenant: format!("t{}", n % 4),
        labels: vec!["linux".into()],
        command: "true".into(),
        requested_ms: 1_000,
        ..Default::default()
    }
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`
/// (`None` elsewhere): both sides of the benchmark live in this process.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    // The server's default durability unless told otherwise.
    let sync = match arg("--sync").as_deref() {
        Some("normal") => SyncMode::Normal,
        _ => SyncMode::Full,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        sync,
        policy: "fairshare".into(),
        lease_ttl_ms: 60_000,
        ..ServeOptions::default()
    })
    .await
    .expect("server");
    let chans = channels(srv.addr).await;
    if args.iter().any(|a| a == "--floor") {
        let rate = arg("--rate")
            .and_then(|r| r.parse().ok())
            .unwrap_or(10_000.0);
        floor(&chans, rate, seconds).await;
        srv.stop().await.expect("stop");
        return;
    }
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        sent: Mutex::new(HashMap::new()),
        latencies: Mutex::new(Vec::new()),
        timeline: Mutex::new(Vec::new()),
        acks: Mutex::new(Vec::new()),
        measure: AtomicBool::new(false),
        batch: arg("--batch")
            .and_then(|b| b.parse().ok())
            .unwrap_or(1)
            .clamp(1, 1000),
    });
    let batch = shared.batch;
    let n_submitters: usize = arg("--submitters")
        .and_then(|s| s.parse().ok())
        .unwrap_or(SUBMITTERS)
        .max(1);
    let mut reg = RunnerServiceClient::new(chans[0].clone());
    let mut runners = Vec::new();
    for i in 0..RUNNERS {
        reg.register_runner(RegisterRunnerRequest {
            runner_id: format!("bench-{i}"),
            pool: "bench".into(),
            labels: vec!["linux".into()],
            slots: SLOTS,
        })
        .await
        .expect("register");
        runners.push(runner_task(
            chans[i % CHANNELS].clone(),
            format!("runners/bench-{i}"),
            shared.clone(),
        ));
    }

    // Phase 1: peak, closed loop.
    let seq = Arc::new(AtomicU64::new(0));
    let mut submitters = Vec::new();
    let peak_stop = Arc::new(AtomicBool::new(false));
    for s in 0..n_submitters {
        let mut client = JobServiceClient::new(chans[s % CHANNELS].clone());
        let (seq, stop) = (seq.clone(), peak_stop.clone());
        submitters.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = seq.fetch_add(batch as u64, Ordering::Relaxed);
                let reqs: Vec<SubmitJobRequest> = (n..n + batch as u64)
                    .map(|i| job(format!("p{i}"), i))
                    .collect();
                if batch > 1 {
                    let _ = client
                        .submit_jobs(SubmitJobsRequest { requests: reqs })
                        .await;
                } else {
                    for r in reqs {
                        let _ = client.submit_job(r).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    let c0 = shared.completed.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (cpu0, flush0) = (cpu_time(), rustci_control::flush::stats());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let done = shared.completed.load(Ordering::Relaxed) - c0;
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, flush1) = (cpu_time(), rustci_control::flush::stats());
    peak_stop.store(true, Ordering::Relaxed);
    for s in submitters {
        let _ = s.await;
    }
    let peak = done as f64 / elapsed;
    println!("peak: {done} lifecycles in {elapsed:.1} s = {peak:.0} lifecycles/s ({n_submitters} submitters, {RUNNERS} runners x {SLOTS} slots, sync {sync:?}, batch {batch})");
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let cpu = (c1 - c0).as_secs_f64();
        let commits = flush1.commits - flush0.commits;
        println!(
            "  process CPU {cpu:.1} s ({:.2} cores), {:.0} us per lifecycle (both sides); {commits} commits of {:.1} job versions, {:.2} ms each",
            cpu / elapsed,
            cpu * 1e6 / done.max(1) as f64,
            (flush1.versions - flush0.versions) as f64 / commits.max(1) as f64,
            (flush1.commit_nanos - flush0.commit_nanos) as f64 / 1e6 / commits.max(1) as f64,
        );
    }

    // Let the backlog drain.
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = shared.completed.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if shared.completed.load(Ordering::Relaxed) == before || Instant::now() > drain_deadline {
            break;
        }
    }

    // Phase 2: latency at half the peak, open loop.
    let rate = arg("--rate")
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or(peak / 2.0)
        .max(1.0);
    // One call per `batch` jobs, at `rate` jobs per second.
    let interval = Duration::from_secs_f64(batch as f64 / rate);
    shared.measure.store(true, Ordering::Relaxed);
    let mut clients: Vec<JobServiceClient<Channel>> = chans
        .iter()
        .map(|c| JobServiceClient::new(c.clone()))
        .collect();
    let start_at = Instant::now();
    let (cpu0, flush0) = (cpu_time(), rustci_control::flush::stats());
    let calls = (rate * seconds as f64 / batch as f64) as u64;
    open_loop(start_at, interval, calls, |n| {
        let mut client = clients[(n as usize) % CHANNELS].clone();
        let shared = shared.clone();
        let reqs: Vec<SubmitJobRequest> = (0..batch as u64)
            .map(|i| job(format!("l{}", n * batch as u64 + i), n * batch as u64 + i))
            .collect();
        async move {
            {
                let now = Instant::now();
                let mut sent = shared.sent.lock().expect("lock");
                for r in &reqs {
                    sent.insert(r.request_id.clone(), now);
                }
            }
            if reqs.len() > 1 {
                let t = Instant::now();
                if client
                    .submit_jobs(SubmitJobsRequest { requests: reqs })
                    .await
                    .is_ok()
                {
                    shared.acks.lock().expect("lock").push(t.elapsed());
                }
            } else {
                for r in reqs {
                    let t = Instant::now();
                    if client.submit_job(r).await.is_ok() {
                        shared.acks.lock().expect("lock").push(t.elapsed());
                    }
                }
            }
        }
    })
    .await;
    let elapsed = start_at.elapsed().as_secs_f64();
    let (cpu1, flush1) = (cpu_time(), rustci_control::flush::stats());
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.stop.store(true, Ordering::Relaxed);
    for r in runners {
        let _ = r.await;
    }
    clients.clear();
    let mut lat = shared.latencies.lock().expect("lock").clone();
    lat.sort();
    println!(
        "latency at {rate:.0} submits/s, {} jobs: submit-to-lease p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        lat.len(),
        percentile(&lat, 50.0).as_secs_f64() * 1e3,
        percentile(&lat, 99.0).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let commits = flush1.commits - flush0.commits;
        println!(
            "  process CPU {:.2} cores; {commits} commits of {:.1} job versions, {:.2} ms each",
            (c1 - c0).as_secs_f64() / elapsed,
            (flush1.versions - flush0.versions) as f64 / commits.max(1) as f64,
            (flush1.commit_nanos - flush0.commit_nanos) as f64 / 1e6 / commits.max(1) as f64,
        );
    }
    println!(
        "  p90 {:.3} ms, p95 {:.3} ms, p99.9 {:.3} ms",
        percentile(&lat, 90.0).as_secs_f64() * 1e3,
        percentile(&lat, 95.0).as_secs_f64() * 1e3,
        percentile(&lat, 99.9).as_secs_f64() * 1e3,
    );
    if args.iter().any(|a| a == "--timeline") {
        // Percentiles per half second of submission: stalls show up as single rows.
        let mut by_slot: std::collections::BTreeMap<u128, Vec<Duration>> = Default::default();
        for &(t, d) in shared.timeline.lock().expect("lock").iter() {
            by_slot
                .entry((t - start_at).as_millis() / 500)
                .or_default()
                .push(d);
        }
        for (slot, mut v) in by_slot {
            v.sort();
            println!(
                "  t={:>5.1} s: {} jobs, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                slot as f64 / 2.0,
                v.len(),
                percentile(&v, 50.0).as_secs_f64() * 1e3,
                percentile(&v, 99.0).as_secs_f64() * 1e3,
                v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            );
        }
    }
    let mut acks = shared.acks.lock().expect("lock").clone();
    println!(
        "  longest commit {:.1} ms",
        rustci_control::flush::stats().max_commit_nanos as f64 / 1e6
    );
    if !acks.is_empty() {
        acks.sort();
        println!(
            "  submit call answered (durable) p50 {:.3} ms, p99 {:.3} ms",
            percentile(&acks, 50.0).as_secs_f64() * 1e3,
            percentile(&acks, 99.0).as_secs_f64() * 1e3,
        );
    }
    srv.stop().await.expect("stop");
}
