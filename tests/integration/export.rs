//! `rustci jobs export`: a running `rustci serve` (child process, real socket, each store)
//! finishes jobs through a reference runner; the export of its store as Parquet reads
//! back as exactly the history retrain reads from that store, JSON lines too, and
//! `rustci retrain --from FILE.parquet` learns from the export, also merged with the store
//! it came from (one clock).

use std::time::Duration;

use crate::common::{list_all, rustci, wait_for, Procs};
use crate::stores::{on_both_stores, Backend, TestStore};
use rustci_control::pb::*;
use rustci_datasets::{JobRecord, Outcome};

/// Jobs served: enough for retrain's train/test split, a fifth of them failing.
const JOBS: usize = 30;

on_both_stores!(export_as_parquet_reads_back_as_the_stores_history);

async fn export_as_parquet_reads_back_as_the_stores_history(backend: Backend, test: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(store) = TestStore::new(backend, test, &dir.path().join("data")).await else {
        return;
    };
    let mut procs = Procs::new();
    let c = store.serve_with_runner(&mut procs, dir.path()).await;
    for i in 0..JOBS {
        c.jobs
            .clone()
            .submit_job(SubmitJobRequest {
                request_id: format!("x-{i}"),
                tenant: if i % 2 == 0 { "alpha" } else { "beta" }.into(),
                labels: vec!["linux".into()],
                command: if i % 5 == 0 { "exit 3" } else { "true" }.into(),
                job_name: format!("job-{}", i % 3),
                ..Default::default()
            })
            .await
            .expect("submit");
    }
    wait_for(
        "every job to end",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let c = c.clone();
            async move {
                let mut ended = 0;
                for state in [JobState::Succeeded, JobState::Failed] {
                    ended += list_all(&c, "", state, 1000)
                        .await
                        .map_err(|s| s.to_string())?
                        .len();
                }
                if ended == JOBS {
                    Ok(())
                } else {
                    Err(format!("{ended} ended"))
                }
            }
        },
    )
    .await;
    let source = store.history_source();
    let history = store.history_of(JOBS).await;
    assert_eq!(
        history
            .iter()
            .filter(|r| r.outcome == Outcome::Failure)
            .count(),
        JOBS / 5,
        "{history:?}"
    );

    // The format from the name, and given.
    let by_name = dir.path().join("history.parquet");
    let given = dir.path().join("history.bin");
    let jsonl = dir.path().join("history.jsonl");
    for (out, format) in [(&by_name, None), (&given, Some("parquet")), (&jsonl, None)] {
        let out_s = out.to_str().expect("utf-8 path");
        let mut args = vec!["jobs", "export", "--from", &source, "--out", out_s];
        args.extend(format.iter().flat_map(|f| ["--format", *f]));
        let run = rustci(&args);
        assert!(
            run.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            String::from_utf8_lossy(&run.stderr).contains(&format!("wrote {JOBS} finished jobs")),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    for path in [&by_name, &given] {
        let back = rustci_datasets::parquet::read_parquet(path).expect("read the export");
        assert_eq!(back, history, "{}", path.display());
    }
    let lines: Vec<JobRecord> = std::fs::read_to_string(&jsonl)
        .expect("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one record per line"))
        .collect();
    assert_eq!(lines, history);

    // retrain learns from the export as from the store.
    let models = dir.path().join("models");
    let run = rustci([
        "retrain",
        "--from",
        by_name.to_str().expect("utf-8 path"),
        "--out",
        models.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ]);
    assert!(
        run.status.success(),
        "retrain --from the export: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON on stdout");
    assert_eq!(j["jobs"], JOBS, "{j}");

    // The export keeps the store's clock (Unix time) in its metadata, so the two merge.
    let run = rustci([
        "retrain",
        "--from",
        &source,
        "--from",
        by_name.to_str().expect("utf-8 path"),
        "--out",
        dir.path().join("merged").to_str().expect("utf-8 path"),
        "--format",
        "json",
    ]);
    assert!(
        run.status.success(),
        "retrain --from the store --from its export: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON on stdout");
    assert_eq!(j["jobs"], 2 * JOBS, "{j}");
    procs.assert_alive();
    drop(procs);
    store.finish().await;
}

/// A MongoDB source nobody answers at: `jobs export` and `retrain` name it in their
/// errors with its password hidden, as the store's own errors do.
#[test]
fn a_mongodb_password_stays_out_of_export_and_retrain_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri =
        "mongodb://u:s3cret@127.0.0.1:1/hist?serverSelectionTimeoutMS=300&connectTimeoutMS=300";
    let out = dir.path().join("h.parquet");
    let model = dir.path().join("model");
    let runs = [
        rustci(
            ["jobs", "export", "--from", uri, "--out"]
                .map(std::ffi::OsStr::new)
                .into_iter()
                .chain([out.as_os_str()]),
        ),
        rustci(
            ["retrain", "--from", uri, "--out"]
                .map(std::ffi::OsStr::new)
                .into_iter()
                .chain([model.as_os_str()]),
        ),
    ];
    for o in runs {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("mongodb://u:***@127.0.0.1:1/hist"), "{err}");
        assert!(!err.contains("s3cret"), "the password leaked: {err}");
    }
}
