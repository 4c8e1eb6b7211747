//! GetQueueStats per pool and per pool and QoS class over a real socket, on a virtual
//! clock so that every wait is exact (the dashboard's overview and `rustci fleet stats`
//! show these rows).

use crate::common;

use crate::common::OwnerChannel;
use rustci_control::pb::fleet_service_client::FleetServiceClient;
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::pipeline_service_client::PipelineServiceClient;
use rustci_control::pb::runner_service_client::RunnerServiceClient;
use rustci_control::pb::*;

const T0: i64 = 1_700_000_000_000;

fn submit(id: &str, qos: &str, label: &str) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: id.into(),
        tenant: "team".into(),
        labels: vec![label.into()],
        command: "true".into(),
        requested_ms: 10_000,
        qos: qos.into(),
        ..Default::default()
    }
}

async fn stats(ch: &OwnerChannel) -> QueueStats {
    FleetServiceClient::new(ch.clone())
        .get_queue_stats(GetQueueStatsRequest {})
        .await
        .expect("GetQueueStats")
        .into_inner()
}

/// (qos, target, queued, running, started, p50, p95) of each class of `pool`.
fn classes(s: &QueueStats, pool: &str) -> Vec<(String, i64, u64, u64, u64, i64, i64)> {
    let p = s
        .pools
        .iter()
        .find(|p| p.pool == pool)
        .unwrap_or_else(|| panic!("pool {pool} in {s:?}"));
    p.classes
        .iter()
        .map(|c| {
            let w = c.stats.unwrap_or_default();
            (
                c.qos.clone(),
                c.wait_target_ms,
                w.queued,
                w.running,
                w.started_last_hour,
                w.wait_p50_ms,
                w.wait_p95_ms,
            )
        })
        .collect()
}

/// One runner, one slot, the default classes (urgent 60 s, standard 300 s, batch 1800 s):
/// urgent `u1` starts at once; standard `s1` waits 400 s for it (over its target), batch
/// `b1` 410 s (within); urgent `u2` then waits behind `b1`. A pipeline on a second pool
/// waits from when its needs end: its test job waits 0 s, not the 100 s its build ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_stats_break_each_pool_down_by_qos_class_against_its_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, ch, clock) = common::serve_virtual_at(dir.path(), T0).await;
    let mut jobs = JobServiceClient::new(ch.clone());
    let mut run = RunnerServiceClient::new(ch.clone());
    common::register_r0(&ch).await;
    run.register_runner(RegisterRunnerRequest {
        runner_id: "m0".into(),
        pool: "mac".into(),
        labels: vec!["macos".into()],
        slots: 1,
    })
    .await
    .expect("register m0");

    for (id, qos) in [("u1", "urgent"), ("s1", "standard"), ("b1", "batch")] {
        jobs.submit_job(submit(id, qos, "linux"))
            .await
            .expect("submit");
    }
    let pipeline = |jobs: Vec<PipelineJobSpec>| SubmitPipelineRequest {
        request_id: "p1".into(),
        tenant: "team".into(),
        project: "shop".into(),
        git_ref: "main".into(),
        jobs,
        ..Default::default()
    };
    let spec = |name: &str, stage: &str, stage_index: u32| PipelineJobSpec {
        name: name.into(),
        stage: stage.into(),
        stage_index,
        labels: vec!["macos".into()],
        command: format!("make {name}"),
        requested_ms: 100_000,
        qos: "standard".into(),
        ..Default::default()
    };
    PipelineServiceClient::new(ch.clone())
        .submit_pipeline(pipeline(vec![
            spec("build", "build", 0),
            spec("test", "test", 1),
        ]))
        .await
        .expect("submit pipeline");

    let first = stats(&ch).await;
    let lin = classes(&first, "lin");
    assert_eq!(
        lin,
        [
            ("urgent".into(), 60_000, 0, 1, 1, 0, 0),
            ("standard".into(), 300_000, 1, 0, 0, 0, 0),
            ("batch".into(), 1_800_000, 1, 0, 0, 0, 0),
        ],
        "u1 runs (it waited 0 ms); s1 and b1 wait"
    );
    // u1's running row counts once; a queued job counts in the pool that could run it.
    let lin_total = first.pools.iter().find(|p| p.pool == "lin").expect("lin");
    let w = lin_total.stats.unwrap_or_default();
    assert_eq!((w.queued, w.running, w.started_last_hour), (2, 1, 1));
    assert_eq!((lin_total.runners, lin_total.busy_runners), (1, 1));

    // 100 s on, the pipeline's build ends: its test job is ready, and starts, now.
    clock.set(T0 + 100_000);
    let build = common::lease_one(&mut run, "m0").await;
    assert_eq!(
        build.job.as_ref().map(|j| j.job_name.as_str()),
        Some("build")
    );
    common::complete_ok(&mut run, "m0", &build).await;
    // 400 s on, u1 ends: s1 (submitted before b1; one tenant's jobs go in order under
    // fair share) starts, after 400 s.
    clock.set(T0 + 400_000);
    let u1 = common::lease_one(&mut run, "r0").await;
    common::complete_ok(&mut run, "r0", &u1).await;
    // 10 s on, s1 ends: b1 starts after 410 s; u2 arrives behind it.
    clock.set(T0 + 410_000);
    let s1 = common::lease_one(&mut run, "r0").await;
    common::complete_ok(&mut run, "r0", &s1).await;
    jobs.submit_job(submit("u2", "urgent", "linux"))
        .await
        .expect("submit u2");

    let now = stats(&ch).await;
    assert_eq!(
        classes(&now, "lin"),
        [
            ("urgent".into(), 60_000, 1, 0, 1, 0, 0),
            ("standard".into(), 300_000, 0, 0, 1, 400_000, 400_000),
            ("batch".into(), 1_800_000, 0, 1, 1, 410_000, 410_000),
        ]
    );
    let lin_total = now.pools.iter().find(|p| p.pool == "lin").expect("lin");
    let w = lin_total.stats.unwrap_or_default();
    // The pool's own waits are over all classes: 0, 400 and 410 s.
    assert_eq!(
        (
            w.queued,
            w.running,
            w.started_last_hour,
            w.wait_p50_ms,
            w.wait_p95_ms
        ),
        (1, 1, 3, 400_000, 410_000)
    );
    // The pipeline's test job entered the queue when build ended, and started then.
    assert_eq!(
        classes(&now, "mac")[1],
        ("standard".into(), 300_000, 0, 1, 2, 0, 0),
        "build and test each waited 0 s from when they were ready"
    );
    let mac = now.pools.iter().find(|p| p.pool == "mac").expect("mac");
    assert_eq!((mac.runners, mac.busy_runners), (1, 1));

    // The JSON of `rustci fleet stats` and /api/v1/fleet judges each class's p95.
    let json = rustci_control::clients::client::queue_stats_json(&now);
    let judged: Vec<(String, serde_json::Value)> = json["pools"][0]["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| {
            (
                c["qos"].as_str().unwrap_or("").to_string(),
                c["p95_within_target"].clone(),
            )
        })
        .collect();
    assert_eq!(json["pools"][0]["pool"], "lin");
    assert_eq!(
        judged,
        [
            ("urgent".to_string(), serde_json::json!(true)),
            ("standard".to_string(), serde_json::json!(false)),
            ("batch".to_string(), serde_json::json!(true)),
        ]
    );

    srv.stop().await.expect("stop");
}
