//! The predicted finish of a `SubmitPipeline` answer (`Live::accept_pipeline`, then
//! `Live::submitted_finish` once durable): answers share a projection only if it was made
//! after their pipeline was submitted, and give what a projection made then gives.

use std::sync::Arc;

use rustci_control::server::live::{
    Live, LiveConfig, ManualClock, PipelineJobSubmission, PipelineSubmission,
};
use rustci_control::store::sqlite::{SqliteStore, SyncMode};
use rustci_control::store::PipelineStatus;
use rustci_scheduler::PolicyConfig;

const T0: i64 = 1_700_000_000_000;

fn open(dir: &tempfile::TempDir) -> Live {
    let config = LiveConfig {
        policy: PolicyConfig::named("fairshare").expect("policy"),
        ..LiveConfig::default()
    };
    let mut store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("store");
    rustci_control::store::Store::take_over(&mut store).expect("take the store over");
    Live::open(config, Arc::new(ManualClock::new(T0)), Box::new(store)).expect("live")
}

/// Two stages of one job each, on `linux`, a minute asked for each.
fn two_stages(request_id: &str) -> PipelineSubmission {
    let job = |name: &str, stage_index: u32| PipelineJobSubmission {
        name: name.into(),
        stage: ["build", "test"][stage_index as usize].into(),
        stage_index,
        labels: vec!["linux".into()],
        command: format!("make {name}"),
        requested_ms: 60_000,
        ..PipelineJobSubmission::default()
    };
    PipelineSubmission {
        request_id: request_id.into(),
        tenant: "acme".into(),
        project: "shop".into(),
        git_ref: "main".into(),
        jobs: vec![job("build", 0), job("test", 1)],
        ..PipelineSubmission::default()
    }
}

/// One runner slot: p1's build runs, p2's waits for it, each test waits for its build.
/// Answered after both were accepted, p1 and p2 get what one projection made then
/// gives (the second answer reuses the first's); p2 ends after p1. p3, accepted after
/// that projection was made, is not answered from it (it is not in it) but from a new
/// one, and ends after p2.
#[test]
fn answers_share_a_projection_made_after_their_submission() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut live = open(&dir);
    live.register_runner("w1", "lin", vec!["linux".into()], 1)
        .expect("register");
    let p1 = live.accept_pipeline(two_stages("p1")).expect("p1");
    let p2 = live.accept_pipeline(two_stages("p2")).expect("p2");
    for p in [&p1, &p2] {
        assert_eq!(p.pipeline.state, PipelineStatus::Running);
        assert_eq!(p.predicted_finish_ms, None, "not projected when accepted");
    }
    let (id1, id2) = (p1.pipeline.id, p2.pipeline.id);

    let f1 = live.submitted_finish(id1).expect("p1 finish");
    let f2 = live.submitted_finish(id2).expect("p2 finish");
    assert_eq!(f1, live.pipeline(id1).expect("p1").predicted_finish_ms);
    assert_eq!(f2, live.pipeline(id2).expect("p2").predicted_finish_ms);
    let (f1, f2) = (f1.expect("p1 is placed"), f2.expect("p2 is placed"));
    assert!(
        f1 > T0 && f2 > f1,
        "p2 waits for p1 on the one slot: {f1} {f2}"
    );

    let p3 = live.accept_pipeline(two_stages("p3")).expect("p3");
    let id3 = p3.pipeline.id;
    let f3 = live.submitted_finish(id3).expect("p3 finish");
    assert_eq!(f3, live.pipeline(id3).expect("p3").predicted_finish_ms);
    assert!(
        f3.is_some_and(|f3| f3 > f2),
        "p3 comes after p2: {f3:?} {f2}"
    );

    // The in-process call projects at once; a repeat answers with the first pipeline.
    let p4 = live.submit_pipeline(two_stages("p4")).expect("p4");
    assert!(p4.predicted_finish_ms.is_some_and(|f4| f4 > f2));
    let again = live.accept_pipeline(two_stages("p1")).expect("p1 again");
    assert_eq!(again.pipeline.id, id1);
    assert_eq!(
        again.predicted_finish_ms,
        live.pipeline(id1).expect("p1").predicted_finish_ms
    );
}
