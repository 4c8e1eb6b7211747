//! The shared real traces parse completely with the counts SOURCES.md states. Each test
//! prints a visible `SKIPPED:` line and returns when its data is absent.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Instant;

use rustci_datasets::testdata::dataset;
use rustci_datasets::{open_trace, JobRecord, Outcome, TraceFormat};

fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

struct SwfExpect {
    file: &'static str,
    jobs: usize,
    max_procs: u32,
    unix_start: i64,
    /// (success, failure, cancelled, unknown)
    outcomes: (usize, usize, usize, usize),
}

const SWF_LOGS: [SwfExpect; 6] = [
    SwfExpect {
        file: "pwa_swf/SDSC-SP2-1998-4.2-cln.swf.gz",
        jobs: 59_715,
        max_procs: 128,
        unix_start: 893_466_664,
        outcomes: (43_117, 0, 16_598, 0),
    },
    SwfExpect {
        file: "pwa_swf/CTC-SP2-1996-3.1-cln.swf.gz",
        jobs: 77_222,
        max_procs: 338,
        unix_start: 835_823_160,
        outcomes: (60_553, 16_669, 0, 0),
    },
    SwfExpect {
        file: "pwa_swf/KTH-SP2-1996-2.1-cln.swf.gz",
        jobs: 28_476,
        max_procs: 100,
        unix_start: 843_480_031,
        outcomes: (20_530, 7_946, 0, 0),
    },
    SwfExpect {
        file: "pwa_swf/HPC2N-2002-2.2-cln.swf.gz",
        jobs: 202_871,
        max_procs: 240,
        unix_start: 1_027_839_845,
        outcomes: (201_993, 0, 0, 878),
    },
    SwfExpect {
        file: "pwa_swf/SDSC-BLUE-2000-4.2-cln.swf.gz",
        jobs: 243_306,
        max_procs: 1152,
        unix_start: 956_700_003,
        // SOURCES.md omits 2 jobs with status -1.
        outcomes: (195_586, 0, 47_718, 2),
    },
    SwfExpect {
        file: "pwa_swf/LANL-CM5-1994-4.1-cln.swf.gz",
        jobs: 122_060,
        max_procs: 1024,
        unix_start: 781_275_672,
        outcomes: (101_692, 20_368, 0, 0),
    },
];

fn outcome_counts(recs: &[JobRecord]) -> (usize, usize, usize, usize) {
    let n = |o: Outcome| recs.iter().filter(|r| r.outcome == o).count();
    (
        n(Outcome::Success),
        n(Outcome::Failure),
        n(Outcome::Cancelled),
        n(Outcome::Unknown),
    )
}

fn assert_sorted(recs: &[JobRecord], what: &str) {
    if let Some(i) = (1..recs.len()).find(|&i| recs[i - 1].submit_s > recs[i].submit_s) {
        panic!("{what}: record {i} ({}) is out of submit order", recs[i].id);
    }
}

#[test]
fn pwa_swf_logs_parse_completely() {
    for exp in &SWF_LOGS {
        let Some(path) = dataset(exp.file) else {
            continue;
        };
        let t = Instant::now();
        let trace = open_trace(&path, None).expect("open");
        assert_eq!(trace.format, TraceFormat::Swf);
        let meta = trace.meta.clone();
        let recs = trace.collect_records().expect("every line parses");
        let secs = t.elapsed().as_secs_f64();
        note(&format!("{}: {} jobs in {secs:.3} s", exp.file, recs.len()));
        assert_eq!(recs.len(), exp.jobs, "{}", exp.file);
        assert_eq!(meta.max_procs, Some(exp.max_procs), "{}", exp.file);
        assert_eq!(meta.unix_start, Some(exp.unix_start), "{}", exp.file);
        assert!(meta.installation.is_some(), "{}", exp.file);
        assert!(
            meta.header.iter().any(|(k, _)| k == "MaxJobs"),
            "{}",
            exp.file
        );
        assert_eq!(outcome_counts(&recs), exp.outcomes, "{}", exp.file);
        assert_sorted(&recs, exp.file);
        let ids: HashSet<&str> = recs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), recs.len(), "{}: ids are unique", exp.file);
        // Sizes never exceed the machine; slots 0 only where both counts are unknown.
        assert!(
            recs.iter().all(|r| r.slots <= exp.max_procs),
            "{}",
            exp.file
        );
    }
}

#[test]
fn sdsc_sp2_field_mapping() {
    let Some(path) = dataset("pwa_swf/SDSC-SP2-1998-4.2-cln.swf.gz") else {
        return;
    };
    let recs = open_trace(&path, None)
        .expect("open")
        .collect_records()
        .expect("valid");
    // First job line: `11 566129 5 28826 1 27758 -1 1 28800 -1 5 153 75 18180 3 -1 -1 -1`.
    let r = &recs[0];
    assert_eq!(r.id, "11");
    assert_eq!(
        (r.submit_s, r.wait_s, r.run_s),
        (566_129, Some(5), Some(28_826))
    );
    assert_eq!((r.slots, r.requested_s), (1, Some(28_800)));
    assert_eq!(r.tenant, "u153");
    assert_eq!(r.project.as_deref(), Some("g75"));
    assert_eq!(r.job_name.as_deref(), Some("app18180"));
    assert_eq!(r.queue.as_deref(), Some("q3"));
    assert_eq!(r.outcome, Outcome::Cancelled);
    // SOURCES.md: run time is -1 for 9% of jobs; 4,134 jobs ran longer than requested.
    // (Its "requested time positive for 90.4%" does not match the file: 59,649 of 59,715.)
    let no_run = recs.iter().filter(|r| r.run_s.is_none()).count() as f64 / recs.len() as f64;
    assert!((0.08..0.11).contains(&no_run), "{no_run}");
    let over = recs
        .iter()
        .filter(|r| matches!((r.run_s, r.requested_s), (Some(run), Some(req)) if run > req))
        .count();
    assert_eq!(over, 4_134);
    assert_eq!(
        recs.iter().filter(|r| r.requested_s.is_some()).count(),
        59_649
    );
}

#[test]
fn pyss_reference_outputs_parse() {
    for (file, jobs, procs) in [
        ("pyss_easy_reference/KTH-SP2_res_easy_backfill_scheduler_None_None.swf.gz", 28_481, 100),
        ("pyss_easy_reference/KTH-SP2_res_easy_plus_plus_scheduler_predictortsafrir_tsafrir.swf.gz", 28_481, 100),
        ("pyss_easy_reference/SDSC-SP2_res_easy_backfill_scheduler_None_None.swf.gz", 54_006, 128),
    ] {
        let Some(path) = dataset(file) else { continue };
        let trace = open_trace(&path, None).expect("open");
        assert_eq!(trace.meta.max_procs, Some(procs), "{file}");
        let recs = trace.collect_records().expect("valid");
        assert_eq!(recs.len(), jobs, "{file}");
        assert!(recs.iter().all(|r| r.wait_s.is_some() && r.slots > 0), "{file}");
    }
}

#[test]
fn travistorrent_directory() {
    let Some(dir) = dataset("travistorrent_cesel/projects") else {
        return;
    };
    let t = Instant::now();
    let trace = open_trace(&dir, None).expect("open dir");
    assert_eq!(trace.format, TraceFormat::Travis);
    assert_eq!(trace.meta.unix_start, Some(0));
    let recs = trace.collect_records().expect("valid");
    note(&format!(
        "TravisTorrent: {} builds in {:.3} s",
        recs.len(),
        t.elapsed().as_secs_f64()
    ));
    assert_eq!(recs.len(), 278_774);
    assert_eq!(recs.iter().filter(|r| r.run_s.is_none()).count(), 204);
    assert_eq!(recs.iter().filter(|r| r.run_s == Some(0)).count(), 286);
    assert_eq!(recs.iter().filter_map(|r| r.run_s).max(), Some(3_621_826));
    let ids: HashSet<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 278_774);
    assert_sorted(&recs, "TravisTorrent");
    // 204,239 passed; 48,910 failed + 24,878 errored; 747 canceled.
    assert_eq!(outcome_counts(&recs), (204_239, 73_788, 747, 0));
    let mut langs: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &recs {
        assert_eq!(r.labels.len(), 1, "{}", r.id);
        *langs.entry(r.labels[0].as_str()).or_default() += 1;
    }
    assert_eq!(
        langs.into_iter().collect::<Vec<_>>(),
        [("java", 131_098), ("javascript", 1_074), ("ruby", 146_602)]
    );
    let tenants: HashSet<&str> = recs.iter().map(|r| r.tenant.as_str()).collect();
    assert_eq!(tenants.len(), 145);
    // 2011-08-29 to 2016-08-31 (UTC).
    let first = recs.first().map(|r| r.submit_s).unwrap_or_default();
    let last = recs.last().map(|r| r.submit_s).unwrap_or_default();
    assert_eq!(
        &rustci_datasets::time::format_utc(first)[..10],
        "2011-08-29"
    );
    assert_eq!(&rustci_datasets::time::format_utc(last)[..10], "2016-08-31");
    assert!(recs.iter().all(|r| r.slots == 1 && r.wait_s.is_none()));
    assert!(recs.iter().all(|r| r.extra.contains_key("gh_sloc")));
}

#[test]
fn travistorrent_single_file() {
    let Some(path) = dataset("travistorrent_cesel/projects/BuildCraft.csv.gz") else {
        return;
    };
    let trace = open_trace(&path, None).expect("open");
    assert_eq!(trace.format, TraceFormat::Travis);
    let recs = trace.collect_records().expect("valid");
    assert_eq!(recs.len(), 2054); // MANIFEST.csv
    assert_sorted(&recs, "BuildCraft");
    assert!(recs.iter().all(|r| r.tenant == "BuildCraft/BuildCraft"));
    let first = rustci_datasets::time::format_utc(recs[0].submit_s);
    assert_eq!(first, "2014-05-04T11:00:31Z"); // MANIFEST first_gh_build_started_at
}

#[test]
fn github_actions_files() {
    let Some(dir) = dataset("gha_build_duration") else {
        return;
    };
    let trace = open_trace(&dir, None).expect("open dir");
    assert_eq!(trace.format, TraceFormat::Gha);
    let recs = trace.collect_records().expect("valid");
    assert_eq!(recs.len(), 15_914);
    assert_sorted(&recs, "GHA");
    let runs: HashSet<&str> = recs.iter().filter_map(|r| r.id.split('/').next()).collect();
    // 6,826 runs, 8 of which have an empty `job_details` list (no jobs).
    assert_eq!(runs.len(), 6_818);
    let repos: HashSet<&str> = recs.iter().map(|r| r.tenant.as_str()).collect();
    assert_eq!(repos.len(), 5);
    assert!(recs
        .iter()
        .all(|r| r.labels.is_empty() && r.job_name.is_some()));
    // Every job started after its run was created.
    assert!(recs.iter().all(|r| r.wait_s.unwrap_or(0) >= 0));
    let with_wait = recs.iter().filter(|r| r.wait_s.is_some()).count();
    assert!(with_wait > 15_000, "{with_wait}");

    let mut per_file = 0;
    for entry in std::fs::read_dir(&dir).expect("list") {
        let path = entry.expect("entry").path();
        let trace = open_trace(&path, None).expect("open file");
        assert_eq!(trace.format, TraceFormat::Gha, "{}", path.display());
        per_file += trace.collect_records().expect("valid").len();
    }
    assert_eq!(per_file, 15_914);
}
