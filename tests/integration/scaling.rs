//! Scaling advice over a real socket: GetScalingAdvice gives each pool's desired runners
//! from the core's autoscaler with its reason, and `--scale-hook` runs a command with the
//! new count when it changes.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::OwnerChannel;
use rustci_control::pb::fleet_service_client::FleetServiceClient;
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::*;
use rustci_control::server::live::ManualClock;
use rustci_control::server::{RunningServer, ServeOptions};
use rustci_datasets::JobRecord;
use rustci_scheduler::ScalePolicy;

const T0: i64 = 1_700_000_000_000;

async fn serve(
    dir: &Path,
    autoscaler: ScalePolicy,
    hook: Option<String>,
) -> (RunningServer, OwnerChannel) {
    serve_with(ServeOptions {
        data_dir: dir.to_path_buf(),
        autoscaler,
        scale_hook: hook,
        ..ServeOptions::default()
    })
    .await
}

/// `opts` on a virtual clock at `T0`, scale hooks checked every 20 ms.
async fn serve_with(opts: ServeOptions) -> (RunningServer, OwnerChannel) {
    common::serve_virtual(
        ServeOptions {
            scale_interval_ms: 20,
            ..opts
        },
        Arc::new(ManualClock::new(T0)),
    )
    .await
}

/// One runner of one slot in pool `lin`, then `jobs` one-slot jobs: one runs, the rest
/// wait.
async fn load(ch: &OwnerChannel, jobs: u64) {
    common::register_r0(ch).await;
    let mut api = JobServiceClient::new(ch.clone());
    for i in 1..=jobs {
        api.submit_job(SubmitJobRequest {
            request_id: format!("req-{i}"),
            tenant: "team".into(),
            labels: vec!["linux".into()],
            command: "true".into(),
            requested_ms: 60_000,
            ..Default::default()
        })
        .await
        .expect("submit");
    }
}

async fn advice(ch: &OwnerChannel) -> Vec<PoolAdvice> {
    FleetServiceClient::new(ch.clone())
        .get_scaling_advice(GetScalingAdviceRequest {})
        .await
        .expect("advice")
        .into_inner()
        .pools
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advice_asks_for_more_runners_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve(dir.path(), ScalePolicy::Reactive, None).await;
    load(&ch, 3).await;
    let pools = advice(&ch).await;
    assert_eq!(pools.len(), 1, "{pools:?}");
    let lin = &pools[0];
    assert_eq!(lin.pool, "lin");
    assert_eq!(lin.current_runners, 1);
    assert_eq!(
        lin.desired_runners, 3,
        "1 running + 2 waiting one-slot jobs"
    );
    assert!(lin.reason.starts_with("reactive:"), "{}", lin.reason);
    assert!(lin.reason.contains("3 slots"), "{}", lin.reason);
    srv.stop().await.expect("stop");

    // The static policy keeps the registered fleet whatever waits.
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve(dir.path(), ScalePolicy::Static, None).await;
    load(&ch, 3).await;
    let pools = advice(&ch).await;
    assert_eq!(pools[0].desired_runners, 1, "{pools:?}");
    assert!(pools[0].reason.starts_with("static"), "{}", pools[0].reason);
    srv.stop().await.expect("stop");
    // Predictive (online arrival forecast + Erlang C) covers at least the jobs waiting now.
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve(dir.path(), ScalePolicy::Predictive, None).await;
    load(&ch, 3).await;
    let pools = advice(&ch).await;
    assert_eq!(pools[0].desired_runners, 3, "1 busy + 2 waiting: {pools:?}");
    assert!(
        pools[0].reason.starts_with("predictive"),
        "{}",
        pools[0].reason
    );
    srv.stop().await.expect("stop");
}

/// The forecast rate in a predictive reason ("predictive: 6.0 jobs/h forecast (SOURCE)").
fn forecast(reason: &str) -> (f64, String) {
    let rate = reason
        .strip_prefix("predictive: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no forecast rate in {reason:?}"));
    let source = reason
        .split_once("forecast (")
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| panic!("no forecast source in {reason:?}"));
    (rate, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_advice_remembers_stored_arrivals_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve(dir.path(), ScalePolicy::Predictive, None).await;
    load(&ch, 3).await;
    let before = advice(&ch).await;
    let (rate, source) = forecast(&before[0].reason);
    assert_eq!(source, "online-arrivals", "{}", before[0].reason);
    assert!(
        rate > 0.0,
        "the three submits are seen: {}",
        before[0].reason
    );
    srv.stop().await.expect("stop");

    // After a restart the autoscaler starts anew, but learns the stored submits: the same
    // forecast, not zero.
    let (srv, ch) = serve(dir.path(), ScalePolicy::Predictive, None).await;
    let after = advice(&ch).await;
    let (again, _) = forecast(&after[0].reason);
    assert!(
        (again - rate).abs() < 1e-6 * rate.max(1.0),
        "before {rate} jobs/h, after the restart {again}: {}",
        after[0].reason
    );
    assert_eq!(after[0].desired_runners, 3, "1 busy + 2 waiting: {after:?}");
    srv.stop().await.expect("stop");
}

/// Two weeks of `linux` jobs, `per_hour` an hour around the clock, each running 60 s.
fn steady_history(per_hour: i64) -> Vec<JobRecord> {
    (0..14 * 24 * per_hour)
        .map(|i| {
            let mut r = JobRecord::new(format!("{i}"), format!("u{}", i % 3), i * 3600 / per_hour);
            r.labels = vec!["linux".into()];
            r.requested_s = Some(600);
            r.wait_s = Some(0);
            r.run_s = Some(50 + i % 20);
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_advice_starts_from_the_models_arrival_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    common::retrain_into(&models, &steady_history(6));
    let (srv, ch) = serve_with(ServeOptions {
        data_dir: dir.path().join("data"),
        autoscaler: ScalePolicy::Predictive,
        model_dir: Some(models),
        ..ServeOptions::default()
    })
    .await;
    common::register_r0(&ch).await;
    // Nothing submitted yet: the trained profile alone says 6 jobs an hour.
    let pools = advice(&ch).await;
    let (rate, source) = forecast(&pools[0].reason);
    assert_eq!(source, "model profile + online", "{}", pools[0].reason);
    assert!((rate - 6.0).abs() < 0.05, "{}", pools[0].reason);
    srv.stop().await.expect("stop");
}

/// Reads `KEY=VALUE` lines.
fn env_file(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_hook_runs_with_the_new_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("hook.env");
    // Written to a temporary file and renamed: the test never reads half a file.
    let hook = format!(
        "env | grep '^RUSTCI_' > '{out}.tmp' && mv '{out}.tmp' '{out}'",
        out = out.display()
    );
    let (srv, ch) = serve(&dir.path().join("data"), ScalePolicy::Reactive, Some(hook)).await;
    load(&ch, 3).await;

    // The hook may first see an earlier count (0 before the jobs came); it converges.
    let deadline = Instant::now() + Duration::from_secs(20);
    let env = loop {
        if let Some(env) = env_file(&out) {
            if env.get("RUSTCI_DESIRED").map(String::as_str) == Some("3") {
                break env;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the hook did not report RUSTCI_DESIRED=3 in time; last: {:?}",
            env_file(&out)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(env.get("RUSTCI_POOL").map(String::as_str), Some("lin"));
    assert_eq!(env.get("RUSTCI_CURRENT").map(String::as_str), Some("1"));
    let reason = env.get("RUSTCI_REASON").cloned().unwrap_or_default();
    assert!(reason.starts_with("reactive:"), "{reason}");
    srv.stop().await.expect("stop");
}

/// A hook that fails is logged, and the service keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_scale_hook_is_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch) = serve(dir.path(), ScalePolicy::Reactive, Some("exit 3".into())).await;
    load(&ch, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pools = advice(&ch).await;
    assert_eq!(pools[0].desired_runners, 2, "{pools:?}");
    srv.stop().await.expect("stop");
}
