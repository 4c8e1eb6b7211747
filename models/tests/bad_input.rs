//! Must-show 6: bad histories and bad artifacts end in a trained model or a `ModelError`
//! that names the problem, never a panic; retraining compares with the version in use.

use std::path::Path;

use rustci_datasets::{JobRecord, Outcome};
use rustci_models::artifact::current_path;
use rustci_models::dataset::prepare;
use rustci_models::eval::{evaluate_on, Metrics};
use rustci_models::retrain::{retrain, RetrainOptions, RetrainReport};
use rustci_models::{load_current, Artifact, ModelError, TrainParams};

mod common;
use common::Lcg;

/// `n` finished jobs from `users` users, one a minute; user `u` typically runs
/// `TYPICAL[u % 5]` seconds (+-30% noise) and requests twice that; ~10% fail.
fn history(n: usize, users: usize, seed: u64) -> Vec<JobRecord> {
    const TYPICAL: [f64; 5] = [60.0, 300.0, 900.0, 1800.0, 3600.0];
    let mut rng = Lcg(seed);
    (0..n)
        .map(|i| {
            let u = (rng.next() * users as f64) as usize % users;
            let typical = TYPICAL[u % TYPICAL.len()];
            let mut r = JobRecord::new(format!("j{i}"), format!("user{u}"), i as i64 * 60);
            r.wait_s = Some((rng.next() * 30.0) as i64);
            r.run_s = Some((typical * (0.7 + 0.6 * rng.next())).round() as i64);
            r.requested_s = Some(2 * typical as i64);
            r.job_name = Some(format!("app{}", u % 3));
            r.outcome = if rng.next() < 0.1 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            r
        })
        .collect()
}

fn options() -> RetrainOptions {
    RetrainOptions {
        config: TrainParams {
            trees: 8,
            ..TrainParams::default()
        }
        .check()
        .expect("valid parameters"),
        train_fraction: 0.7,
        force: false,
        plots: false,
        sources: vec!["synthetic".into()],
        unix_start: Some(0),
        target_mae_tolerance: None,
    }
}

fn run(
    records: &[JobRecord],
    dir: &Path,
    opts: &RetrainOptions,
) -> Result<RetrainReport, ModelError> {
    let mut stages = Vec::new();
    let r = retrain(records, dir, opts, &mut |s| stages.push(s));
    if let Ok(rep) = &r {
        assert!(!stages.is_empty(), "no progress reported");
        if rep.written {
            assert_eq!(stages.len() as u64, rustci_models::retrain::Stage::COUNT);
        }
    }
    r
}

/// Trains (and checks the artifact loads) or returns an error naming the problem.
fn trains_and_loads(records: &[JobRecord]) -> RetrainReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(records, dir.path(), &options()).unwrap_or_else(|e| panic!("retrain: {e}"));
    assert!(report.written, "{}", report.decision);
    let path = report.artifact.clone().expect("artifact path");
    assert!(path.is_file());
    let (cur, artifact) = load_current(dir.path()).expect("load the current version");
    assert_eq!(cur, path);
    assert_eq!(artifact.training.jobs, report.jobs);
    assert_eq!(artifact.features, report.features);
    assert!(report.evaluation.model.mae_s.is_finite());
    report
}

fn assert_not_enough(result: Result<RetrainReport, ModelError>, dir: &Path) -> String {
    let e = match result {
        Ok(r) => panic!(
            "expected an error, trained on {} jobs: {}",
            r.jobs, r.decision
        ),
        Err(e) => e,
    };
    assert!(matches!(e, ModelError::NotEnoughData(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("not enough history"), "{msg}");
    assert!(
        current_path(dir).expect("read CURRENT").is_none(),
        "an artifact was written"
    );
    msg
}

#[test]
fn missing_fields_still_train() {
    // No requested time, no labels, no job name, no outcome, and 1 in 5 run times missing.
    let mut recs = history(500, 5, 11);
    let mut missing = 0;
    for (i, r) in recs.iter_mut().enumerate() {
        r.requested_s = None;
        r.labels.clear();
        r.job_name = None;
        r.wait_s = None;
        r.outcome = Outcome::Unknown;
        if i % 5 == 2 {
            r.run_s = None;
            missing += 1;
        }
    }
    let report = trains_and_loads(&recs);
    assert_eq!(report.skipped_no_run_time, missing);
    assert_eq!(report.jobs, 500 - missing);
    assert!(report.evaluation.baselines.requested.is_none());
    // No outcome at all: no failure classifier, and training says why.
    assert!(report.evaluation.failure.is_none());
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("failure classifier")),
        "{:?}",
        report.notes
    );
}

#[test]
fn zero_run_times_are_kept_and_negative_ones_skipped() {
    let mut recs = history(500, 5, 12);
    for (i, r) in recs.iter_mut().enumerate() {
        match i % 10 {
            3 => r.run_s = Some(0),
            7 => r.run_s = Some(-5),
            _ => {}
        }
    }
    let data = rustci_models::dataset::prepare(&recs, Some(0), vec![]);
    assert_eq!(data.skipped_no_run_time, 50);
    assert_eq!(data.run_s.iter().filter(|&&s| s == 0.0).count(), 50);
    assert!(data.run_s.iter().all(|&s| s >= 0.0));
    let report = trains_and_loads(&recs);
    assert_eq!((report.jobs, report.skipped_no_run_time), (450, 50));

    // Every run time zero: nothing to learn, but no panic either.
    let mut zeros = history(200, 3, 13);
    zeros.iter_mut().for_each(|r| r.run_s = Some(0));
    let dir = tempfile::tempdir().unwrap();
    match run(&zeros, dir.path(), &options()) {
        Ok(r) => {
            assert!(r.evaluation.model.mae_s.is_finite());
            load_current(dir.path()).unwrap();
            eprintln!(
                "all-zero history: trained, MAE {:.2} s",
                r.evaluation.model.mae_s
            );
        }
        Err(e) => eprintln!("all-zero history: {e}"),
    }
}

#[test]
fn one_tenant_only_trains() {
    let recs = history(300, 1, 14);
    assert!(recs.iter().all(|r| r.tenant == "user0"));
    let report = trains_and_loads(&recs);
    assert_eq!(report.jobs, 300);
}

#[test]
fn identical_jobs_train_or_fail_cleanly() {
    // Every job the same: constant features and target.
    let recs: Vec<JobRecord> = (0..100)
        .map(|i| {
            let mut r = JobRecord::new(i.to_string(), "only", i * 600);
            r.run_s = Some(120);
            r.wait_s = Some(0);
            r
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    match run(&recs, dir.path(), &options()) {
        Ok(r) => {
            assert!(r.evaluation.model.mae_s.is_finite());
            load_current(dir.path()).unwrap();
            eprintln!(
                "identical jobs: trained, MAE {:.2} s, notes {:?}",
                r.evaluation.model.mae_s, r.notes
            );
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    ModelError::Training { .. } | ModelError::NotEnoughData(_)
                ),
                "{e:?}"
            );
            eprintln!("identical jobs: {e}");
        }
    }
}

#[test]
fn too_little_history_is_not_enough_data() {
    let dir = tempfile::tempdir().unwrap();
    // Empty.
    let msg = assert_not_enough(run(&[], dir.path(), &options()), dir.path());
    assert!(msg.contains("empty"), "{msg}");
    // Fewer than 20 usable jobs.
    let msg = assert_not_enough(run(&history(15, 3, 1), dir.path(), &options()), dir.path());
    assert!(msg.contains("jobs"), "{msg}");
    // 25 jobs: 17 to train on after a 70% split, under the 20 needed.
    assert_not_enough(run(&history(25, 3, 2), dir.path(), &options()), dir.path());
    // Plenty of records, but none with a run time (or only negative ones).
    let mut none = history(200, 3, 3);
    for (i, r) in none.iter_mut().enumerate() {
        r.run_s = if i % 2 == 0 { None } else { Some(-1) };
    }
    let msg = assert_not_enough(run(&none, dir.path(), &options()), dir.path());
    assert!(msg.contains("0 jobs"), "{msg}");
    // Just enough: 40 jobs (28 to train on, 12 to test).
    trains_and_loads(&history(40, 2, 4));
}

/// A directory holding one trained version; returns (dir, artifact file, its bytes).
fn trained_dir() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&history(300, 5, 21), dir.path(), &options()).expect("retrain");
    let path = report.artifact.expect("artifact written");
    let bytes = std::fs::read(&path).expect("read the artifact");
    // The file loads, and what it loads writes a loadable file again.
    let a = Artifact::from_bytes(&path, &bytes).expect("parse the artifact");
    let again = a.to_bytes().expect("serialise");
    let b = Artifact::from_bytes(&path, &again).expect("parse the re-serialised artifact");
    assert_eq!((&a.features, &a.training), (&b.features, &b.training));
    (dir, path, bytes)
}

fn load_err(path: &Path, bytes: &[u8]) -> ModelError {
    std::fs::write(path, bytes).expect("write the probe file");
    match Artifact::load(path) {
        Ok(_) => panic!("{}: damaged artifact loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn damaged_or_foreign_artifacts_are_refused() {
    let (dir, path, good) = trained_dir();
    let probe = dir.path().join("probe.model");

    // (a) Truncated by a few bytes.
    let e = load_err(&probe, &good[..good.len() - 3]);
    assert!(matches!(e, ModelError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("truncated"), "{e}");

    // (b) One byte of the body changed (same length).
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
    let e = load_err(&probe, &flipped);
    assert!(e.to_string().contains("checksum"), "{e}");

    // (c) Foreign files: a PNG, plain JSON, an empty file, the body without its header.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    let nl = good.iter().position(|&b| b == b'\n').unwrap();
    for (what, bytes) in [
        ("png", &png[..]),
        ("json", &b"{\"model\": {\"stack\": [1, 0, 0]}}\n"[..]),
        ("empty", &b""[..]),
        ("body only", &good[nl + 1..]),
        ("other header", &b"rustci-model x\n{}"[..]),
    ] {
        let e = load_err(&probe, bytes);
        assert!(matches!(e, ModelError::Corrupt { .. }), "{what}: {e:?}");
        assert!(
            e.to_string().contains("not a usable rustci model"),
            "{what}: {e}"
        );
    }

    // (d) A schema from the future.
    let header = std::str::from_utf8(&good[..nl]).unwrap();
    let version = format!(" {} ", rustci_models::artifact::SCHEMA_VERSION);
    let future = header.replacen(&version, " 999 ", 1);
    assert_ne!(future, header);
    let mut bytes = future.into_bytes();
    bytes.extend_from_slice(&good[nl..]);
    let e = load_err(&probe, &bytes);
    assert!(
        matches!(
            e,
            ModelError::SchemaVersion {
                found: 999,
                expected: rustci_models::artifact::SCHEMA_VERSION,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("999"), "{e}");

    // A missing file is an I/O error naming it.
    let e = Artifact::load(&dir.path().join("v999999.model")).unwrap_err();
    assert!(matches!(e, ModelError::Io { .. }), "{e:?}");

    // (e) CURRENT pointing at garbage, or at a file that is not there.
    load_current(dir.path()).unwrap();
    let current = dir.path().join("CURRENT");
    std::fs::write(&current, b"\0\x01garbage\xff\n").unwrap();
    let e = load_current(dir.path()).unwrap_err();
    // Not text: refused while reading it.
    assert!(
        matches!(e, ModelError::Io { .. } | ModelError::Corrupt { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("CURRENT"), "{e}");
    for text in ["garbage\n", "../../etc/passwd\n", "v12x.model\n", ""] {
        std::fs::write(&current, text).unwrap();
        let e = load_current(dir.path()).unwrap_err();
        assert!(matches!(e, ModelError::Corrupt { .. }), "{text:?}: {e:?}");
        assert!(e.to_string().contains("not a usable rustci model"), "{e}");
    }
    std::fs::write(&current, b"v000042.model\n").unwrap();
    let e = load_current(dir.path()).unwrap_err();
    assert!(matches!(e, ModelError::Io { .. }), "{e:?}");
    // CURRENT naming a damaged version.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    std::fs::write(
        &current,
        format!("{}\n", path.file_name().unwrap().to_str().unwrap()),
    )
    .unwrap();
    let e = load_current(dir.path()).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // No CURRENT at all.
    let empty = tempfile::tempdir().unwrap();
    let e = load_current(empty.path()).unwrap_err();
    assert!(matches!(e, ModelError::NoArtifact { .. }), "{e:?}");

    // A retrain over an unusable current version replaces it and says so.
    let report = run(&history(300, 5, 22), dir.path(), &options()).unwrap();
    assert!(report.written, "{}", report.decision);
    let cur = report.current.expect("current version seen");
    assert!(cur.model.is_none() && cur.problem.is_some());
    assert!(report.decision.contains("unusable"), "{}", report.decision);
    load_current(dir.path()).unwrap();
}

/// Shuffles the run times of the first 70% of `recs` between jobs: a model trained on
/// that part learns noise, while the last 30% (its test jobs) stay real.
fn spoil_training_part(recs: &mut [JobRecord]) {
    let cut = recs.len() * 7 / 10;
    let mut rng = Lcg(99);
    for i in (1..cut).rev() {
        let j = (rng.next() * (i + 1) as f64) as usize;
        let rj = recs[j].run_s;
        recs[j].run_s = recs[i].run_s;
        recs[i].run_s = rj;
    }
}

fn compared(report: &RetrainReport) -> (usize, f64, f64) {
    let cur = report
        .current
        .clone()
        .expect("compared with the current version");
    assert!(cur.problem.is_none() && !cur.same_history, "{cur:?}");
    let (cur_m, new_m) = (
        cur.model.expect("current version measured"),
        cur.new_model_same_jobs.expect("new version measured"),
    );
    assert_eq!((cur_m.n, new_m.n), (cur.compared_on, cur.compared_on));
    (cur.compared_on, new_m.mae_s, cur_m.mae_s)
}

#[test]
fn retrain_compares_with_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let all = history(1100, 5, 31);
    let old = &all[..500];
    let opts = options();
    let forced_opts = RetrainOptions {
        force: true,
        ..options()
    };
    let in_use = || load_current(dir.path()).unwrap().0;

    let first = run(old, dir.path(), &opts).unwrap();
    assert!(
        first.written && first.current.is_none(),
        "{}",
        first.decision
    );
    let v1 = first.artifact.unwrap();

    // The same history again: nothing new to compare on; kept unless forced.
    let same = run(old, dir.path(), &opts).unwrap();
    assert_eq!(same.fingerprint, first.fingerprint);
    assert_eq!(
        same.evaluation, first.evaluation,
        "training is deterministic"
    );
    let cur = same
        .current
        .clone()
        .expect("the current version was looked at");
    eprintln!("same history: {}", same.decision);
    assert_eq!(cur.path, v1);
    assert!(cur.same_history && cur.problem.is_none());
    assert!(cur.model.is_none() && cur.compared_on == 0);
    assert!(
        !same.written && same.artifact.is_none(),
        "{}",
        same.decision
    );
    assert!(same.decision.contains("same history"), "{}", same.decision);
    assert_eq!(in_use(), v1);
    let forced_same = run(old, dir.path(), &forced_opts).unwrap();
    assert!(forced_same.written, "{}", forced_same.decision);
    assert!(
        forced_same.decision.contains("forced"),
        "{}",
        forced_same.decision
    );
    let v2 = forced_same.artifact.unwrap();
    assert_ne!(v2, v1);
    assert_eq!(in_use(), v2);

    // 300 newer jobs, but the part the new model trains on is noise: measured on the new
    // test jobs the current version never saw, the new one is worse and is not written...
    let mut worse = all[..800].to_vec();
    spoil_training_part(&mut worse);
    let third = run(&worse, dir.path(), &opts).unwrap();
    let (jobs, new_mae, cur_mae) = compared(&third);
    eprintln!("worse history: {}", third.decision);
    assert_eq!(jobs, 800 - 800 * 7 / 10);
    assert!(new_mae > cur_mae);
    assert!(
        !third.written && third.artifact.is_none(),
        "{}",
        third.decision
    );
    assert!(
        third.decision.contains("kept current"),
        "{}",
        third.decision
    );
    assert_eq!(in_use(), v2);
    // ... unless forced.
    let forced = run(&worse, dir.path(), &forced_opts).unwrap();
    compared(&forced);
    assert!(forced.written, "{}", forced.decision);
    assert!(forced.decision.contains("forced"), "{}", forced.decision);
    let (v3, a) = load_current(dir.path()).unwrap();
    assert_eq!(Some(&v3), forced.artifact.as_ref());
    assert_eq!(a.training.fingerprint, forced.fingerprint);

    // The real history, grown by 300 more jobs: compared on the 300 jobs newer than the
    // version in use, and written exactly when it is no worse there.
    let grown = run(&all, dir.path(), &opts).unwrap();
    let (jobs, new_mae, cur_mae) = compared(&grown);
    eprintln!("grown history: {}", grown.decision);
    assert_eq!(jobs, 300);
    assert_eq!(grown.written, new_mae <= cur_mae, "{}", grown.decision);
    assert_eq!(grown.written, grown.artifact.is_some());
    assert_eq!(&in_use(), grown.artifact.as_ref().unwrap_or(&v3));
}

/// The version in use is measured as the new one is: both walk the whole test split, so
/// each key's own P90 margin has learnt from the same finished jobs by the time the
/// compared jobs (those the version in use never saw) come.
#[test]
fn both_versions_are_compared_with_equally_warm_margins() {
    let dir = tempfile::tempdir().unwrap();
    let all = history(1100, 5, 31);
    assert!(run(&all[..1000], dir.path(), &options()).unwrap().written);
    let (_, in_use) = load_current(dir.path()).unwrap();
    assert!(
        in_use.model.per_key_upper,
        "this test needs per-key margins"
    );
    let grown = run(&all, dir.path(), &options()).unwrap();
    let (jobs, _, _) = compared(&grown);
    assert_eq!(jobs, 100);
    let split = grown.evaluation.train_jobs;
    assert_eq!(split, 770);

    let data = prepare(&all, Some(0), in_use.model.extras.clone());
    let measure = |from: usize| {
        let (_, walk) = evaluate_on(&data, &in_use.model, split, from..all.len()).unwrap();
        let o = 1000 - from;
        Metrics::of(
            &walk.actual_s[o..],
            &walk.predicted_s[o..],
            Some(&walk.upper_s[o..]),
        )
    };
    let (warm, cold) = (measure(split), measure(1000));
    assert_ne!(
        warm.upper_coverage, cold.upper_coverage,
        "margins matter here"
    );
    assert_eq!(grown.current.and_then(|c| c.model), Some(warm));
}

/// A history with no job newer than the current version's (an older or smaller export)
/// cannot be compared fairly: the version in use stays unless forced.
#[test]
fn older_smaller_history_does_not_replace_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let all = history(800, 5, 31);
    assert!(run(&all, dir.path(), &options()).unwrap().written);
    let smaller = run(&all[..100], dir.path(), &options()).unwrap();
    eprintln!("smaller, older history: {}", smaller.decision);
    assert!(!smaller.written, "{}", smaller.decision);
}

/// A loaded model is bit-identical to the one that was saved (serde_json's
/// `float_roundtrip`).
#[test]
fn artifact_bytes_round_trip_exactly() {
    let (_dir, path, bytes) = trained_dir();
    let a = Artifact::from_bytes(&path, &bytes).unwrap();
    assert!(
        a.to_bytes().unwrap() == bytes,
        "reloaded artifact serialises differently"
    );
}
