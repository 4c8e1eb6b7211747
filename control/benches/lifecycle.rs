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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustci_control::clients::client::{Bearer, Clients};
use rustci_control::clients::loadgen::{open_loop, percentile, Load, LoadConfig, Until};
use rustci_control::server::{start, ServeOptions};
use rustci_control::store::sqlite::SyncMode;
use tonic::transport::Channel;

const RUNNERS: usize = 4;
const SLOTS: u32 = 512;
/// Closed-loop submitters in phase 1 unless `--submitters N` says otherwise.
const SUBMITTERS: usize = 8;
const CHANNELS: usize = 4;

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
    let late = open_loop(start_at, interval, calls, |n| {
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
        "floor: {} health checks at {rate:.0}/s ({late} sent late): round trip p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms; process CPU {:.2} cores",
        lat.len(),
        ms(50.0),
        ms(90.0),
        ms(99.0),
        ms(99.9),
        cpu.unwrap_or(f64::NAN)
    );
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
    let batch: usize = arg("--batch")
        .and_then(|b| b.parse().ok())
        .unwrap_or(1)
        .clamp(1, 1000);
    let n_submitters: usize = arg("--submitters")
        .and_then(|s| s.parse().ok())
        .unwrap_or(SUBMITTERS)
        .max(1);
    let clients: Vec<Clients> = chans
        .iter()
        .map(|c| Clients::new(c.clone(), Bearer::default()))
        .collect();
    let load = Arc::new(
        Load::start(
            LoadConfig {
                tenants: (0..4).map(|t| format!("t{t}")).collect(),
                runners: RUNNERS,
                slots: SLOTS,
                batch,
                run_id: "bench".into(),
                idle_limit: rustci_control::clients::loadgen::IDLE_LIMIT,
                pipeline: None,
            },
            clients.clone(),
            clients,
        )
        .await
        .expect("runners"),
    );

    // Phase 1: peak, closed loop; CPU and commits are read over the same window as the
    // load generator counts lifecycles in.
    let warmup = Duration::from_secs(1);
    let peak_phase = tokio::spawn({
        let load = load.clone();
        async move {
            load.closed_loop(
                n_submitters,
                Until::For {
                    warmup,
                    measure: Duration::from_secs(seconds),
                },
                false,
            )
            .await
        }
    });
    tokio::time::sleep(warmup).await;
    let (cpu0, flush0) = (cpu_time(), rustci_control::server::flush::stats());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, flush1) = (cpu_time(), rustci_control::server::flush::stats());
    let peak_report = peak_phase.await.expect("peak phase");
    let (done, elapsed) = (peak_report.lifecycles, peak_report.seconds);
    let peak = peak_report.lifecycles_per_s;
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
    load.settle(Duration::from_millis(300), Duration::from_secs(30))
        .await;

    // Phase 2: latency at half the peak (or --rate), open loop.
    let rate = arg("--rate")
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or(peak / 2.0)
        .max(1.0);
    let (cpu0, flush0) = (cpu_time(), rustci_control::server::flush::stats());
    let r = load.open_loop(rate, (rate * seconds as f64) as u64).await;
    let (cpu1, flush1) = (cpu_time(), rustci_control::server::flush::stats());
    let ms = |us: u64| us as f64 / 1e3;
    println!(
        "latency at {rate:.0} submits/s, {} jobs: submit-to-lease p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        r.samples.len(),
        ms(r.submit_to_lease_p50_us),
        ms(r.submit_to_lease_p99_us),
        ms(r.submit_to_lease_max_us),
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let commits = flush1.commits - flush0.commits;
        println!(
            "  process CPU {:.2} cores; {commits} commits of {:.1} job versions, {:.2} ms each",
            (c1 - c0).as_secs_f64() / r.seconds.max(1e-9),
            (flush1.versions - flush0.versions) as f64 / commits.max(1) as f64,
            (flush1.commit_nanos - flush0.commit_nanos) as f64 / 1e6 / commits.max(1) as f64,
        );
    }
    println!(
        "  p90 {:.3} ms, p95 {:.3} ms, p99.9 {:.3} ms",
        ms(r.submit_to_lease_p90_us),
        ms(r.submit_to_lease_p95_us),
        ms(r.submit_to_lease_p999_us),
    );
    if args.iter().any(|a| a == "--timeline") {
        // Percentiles per half second of submission: stalls show up as single rows.
        let mut by_slot: std::collections::BTreeMap<u128, Vec<Duration>> = Default::default();
        for &(t, d) in &r.samples {
            by_slot.entry(t.as_millis() / 500).or_default().push(d);
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
    println!(
        "  longest commit {:.1} ms",
        rustci_control::server::flush::stats().max_commit_nanos as f64 / 1e6
    );
    println!(
        "  submit call answered (durable) p50 {:.3} ms, p99 {:.3} ms; {} calls sent late",
        ms(r.submit_answered_p50_us),
        ms(r.submit_answered_p99_us),
        r.late_calls,
    );
    if let Ok(load) = Arc::try_unwrap(load) {
        load.stop().await;
    }
    srv.stop().await.expect("stop");
}
