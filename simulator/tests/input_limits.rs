//! Issue 13, items 7, 8 and 10, as a user runs `rustci-sim`: times that would overflow
//! the millisecond clock, fleets beyond the documented limit, a fleet on which no job can
//! run and an unknown QoS class are errors that name the file, line and field, said once
//! (no `X: X`), instead of a wrapped clock, gigabytes of memory or a silent change.

mod common;
use common::{sim, stderr, write};

const CSV_HEADER: &str = "id,tenant,labels,slots,requested_s,submit_s,run_s,qos\n";

const ONE_POOL: &str = "[[pool]]\nname = \"linux\"\nlabels = [\"linux\"]\nrunners = 2\n";

/// A failed run's stderr; the run must have failed.
#[track_caller]
fn fails(args: &[&str]) -> String {
    let o = sim(args);
    let e = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {e}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[track_caller]
fn names(e: &str, needles: &[&str]) {
    for n in needles {
        assert!(e.contains(n), "{e:?} should name {n:?}");
    }
}

#[test]
fn a_huge_swf_run_time_names_file_line_and_field_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = write(
        dir.path(),
        "huge.swf",
        "; MaxProcs: 2\n\
         1 0 -1 10 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n\
         2 5 -1 9223372036854775807 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n",
    );
    let e = fails(&["run", "--trace", &trace, "-q"]);
    names(&e, &["huge.swf:3", "field 4 (run time)"]);
    assert_eq!(e.matches("largest time").count(), 1, "said once: {e}");
    assert_eq!(e.matches("huge.swf").count(), 1, "the path once: {e}");
    assert!(!e.contains("went backwards"), "{e}");
}

#[test]
fn a_csv_submit_time_near_i64_max_names_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = write(
        dir.path(),
        "late.csv",
        &format!("{CSV_HEADER}1,t,linux,1,60,0,10,standard\n2,t,linux,1,60,9223372036854775000,10,standard\n"),
    );
    let e = fails(&["run", "--trace", &trace, "-q"]);
    names(&e, &["late.csv:3", "column submit_s", "largest time"]);
}

#[test]
fn loads_beyond_the_clock_are_refused() {
    for load in ["1e-300", "1e300", "0", "NaN"] {
        let e = fails(&["run", "--days", "0.05", "--load", load, "-q"]);
        names(&e, &["--load", "between 0.001 and 1000"]);
    }
}

#[test]
fn fleets_beyond_the_limit_are_refused_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, field) in [
        (
            "[[pool]]\nname = \"a\"\nrunners = 4000000000\n",
            "pool[0] (a).runners",
        ),
        (
            "[[pool]]\nname = \"a\"\nrunners = 60000\n[[pool]]\nname = \"b\"\nrunners = 60000\n",
            "pool.runners",
        ),
        (
            "[[pool]]\nname = \"a\"\nrunners = 1\nmax_runners = 100001\n",
            "pool[0] (a).max_runners",
        ),
        (
            "[[pool]]\nname = \"a\"\nrunners = 1\nslots = 4000000000\n",
            "pool[0] (a).slots",
        ),
    ] {
        let fleet = write(dir.path(), "big.toml", text);
        let e = fails(&["run", "--days", "0.05", "--fleet", &fleet, "-q"]);
        names(&e, &["big.toml", field, "at most"]);
    }
    let e = fails(&["run", "--days", "0.05", "--processors", "4000000000", "-q"]);
    names(&e, &["--processors", "1 to 1000000"]);
}

#[test]
fn a_grid_scale_and_a_max_scale_beyond_the_limit_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grid = write(dir.path(), "grid.toml", "scale = [1, 1e30]\n");
    let e = fails(&[
        "sweep",
        "--grid",
        &grid,
        "--out",
        &dir.path().join("out").display().to_string(),
    ]);
    names(&e, &["grid.toml", "scale[1]", "at most 100000"]);

    let fleet = write(dir.path(), "fleet.toml", ONE_POOL);
    let e = fails(&[
        "plan",
        "--fleet",
        &fleet,
        "--days",
        "0.05",
        "--target",
        "standard:p95<=10",
        "--max-scale",
        "1e30",
        "-q",
    ]);
    names(&e, &["--max-scale", "at most 100000"]);
}

#[test]
fn a_fleet_on_which_no_job_can_run_is_an_error_naming_the_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = write(
        dir.path(),
        "mac.toml",
        "[[pool]]\nname = \"mac\"\nlabels = [\"macos\"]\nrunners = 2\n",
    );
    let trace = write(
        dir.path(),
        "jobs.csv",
        &format!("{CSV_HEADER}1,t,linux,1,60,0,10,standard\n2,t,linux;docker,1,60,5,10,standard\n"),
    );
    let e = fails(&["run", "--trace", &trace, "--fleet", &fleet, "-q"]);
    names(
        &e,
        &[
            "no job can run on this fleet",
            "2 unschedulable",
            "[linux] (1 jobs)",
            "[docker, linux] (1 jobs)",
            "mac [macos]",
        ],
    );
}

#[test]
fn an_unknown_qos_class_is_an_error_naming_job_value_and_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = write(dir.path(), "fleet.toml", ONE_POOL);
    let trace = write(
        dir.path(),
        "jobs.csv",
        &format!("{CSV_HEADER}1,t,linux,1,60,0,10,standard\nj2,t,linux,1,60,5,10,platinum\n"),
    );
    let e = fails(&["run", "--trace", &trace, "--fleet", &fleet, "-q"]);
    names(
        &e,
        &[
            "jobs.csv",
            "job j2",
            "\"platinum\"",
            "urgent, standard, batch",
        ],
    );
}

#[test]
fn a_toml_error_is_printed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = write(dir.path(), "broken.toml", "[[pool]\nname = 1\n");
    let e = fails(&["run", "--days", "0.05", "--fleet", &fleet, "-q"]);
    assert_eq!(e.matches("invalid table header").count(), 1, "{e}");
}
