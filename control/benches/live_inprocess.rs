//! The live scheduler's own cost, without gRPC: job lifecycles (submit, lease, complete)
//! against `Live` in this process, group commit of 32 jobs, embedded SQLite with
//! `--sync full`. `cargo bench -p rustci-control --bench live_inprocess`

use std::sync::Arc;
use std::time::Instant;

use rustci_control::server::live::{Completion, Live, LiveConfig, Submission, SystemClock};
use rustci_control::store::sqlite::{SqliteStore, SyncMode};

fn flush(live: &mut Live) {
    if let Some(pending) = live.take_pending() {
        let result = live
            .shared_store()
            .lock()
            .expect("store lock")
            .commit(&pending.batch);
        live.finish_flush(pending, result);
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path(), SyncMode::Full).expect("store");
    let config = LiveConfig {
        group_commit: true,
        ..LiveConfig::default()
    };
    let mut live = Live::open(config, Arc::new(SystemClock), Box::new(store)).expect("live");
    live.register_runner("w", "p", vec!["linux".into()], 1000)
        .expect("register");
    flush(&mut live);
    let n = 100_000u64;
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        for _ in 0..32 {
            live.submit(Submission {
                request_id: format!("r{i}"),
                tenant: format!("t{}", i % 4),
                labels: vec!["linux".into()],
                command: "true".into(),
                requested_ms: 1000,
                ..Default::default()
            })
            .expect("submit");
            i += 1;
        }
        flush(&mut live);
        for l in live.acquire("w", 1000).expect("acquire") {
            live.complete(
                "w",
                Completion {
                    job: l.job.id,
                    fencing_token: l.fencing_token,
                    success: true,
                    exit_code: 0,
                    reported_run_ms: None,
                },
            )
            .expect("complete");
        }
        flush(&mut live);
    }
    let s = t.elapsed().as_secs_f64();
    println!("{n} lifecycles in {s:.2} s = {:.0} lifecycles/s (in process, group commit of 32, sync full)", n as f64 / s);
}
