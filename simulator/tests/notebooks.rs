//! The analysis notebooks in `notebooks/` run headless on data made here (a small
//! replicated sweep, run reports of three policies with their jobs as Parquet, and
//! replicated reports), so they cannot rot; pandas reads rustci's Parquet with the rows
//! and columns rustci wrote; and the committed notebooks carry no outputs.
//!
//! Without Python and its packages (nbconvert, nbformat, ipykernel, pandas, pyarrow,
//! matplotlib)
//! the run is skipped with a visible `SKIPPED:` line, unless `RUSTCI_REQUIRE_NOTEBOOKS=1`
//! (set by `.ci/run`), which makes it a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn notebooks() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 2,
        "expected at least two notebooks in {}",
        dir.display()
    );
    v
}

fn sim(args: &[&str]) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_rustci-sim"))
        .args(args)
        .output()
        .expect("run rustci-sim");
    assert!(
        o.status.success(),
        "rustci-sim {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

#[test]
fn committed_notebooks_have_no_outputs() {
    for nb in notebooks() {
        let text = std::fs::read_to_string(&nb).expect("read notebook");
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", nb.display()));
        let cells = v["cells"].as_array().expect("cells");
        for (i, c) in cells.iter().enumerate() {
            if c["cell_type"] == "code" {
                assert_eq!(
                    c["outputs"],
                    serde_json::json!([]),
                    "{} cell {i}: outputs are committed (clear them)",
                    nb.display()
                );
                assert!(c["execution_count"].is_null(), "{} cell {i}", nb.display());
            }
        }
    }
}

fn python_ready() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import nbconvert, nbformat, ipykernel, pandas, pyarrow, matplotlib",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The rows and columns pandas (through pyarrow) reads from a Parquet file.
fn pandas_shape(path: &Path) -> (usize, Vec<String>) {
    let o = Command::new("python3")
        .args([
            "-c",
            "import json, sys, pandas\n\
             df = pandas.read_parquet(sys.argv[1])\n\
             print(json.dumps([len(df), [str(c) for c in df.columns]]))",
        ])
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        o.status.success(),
        "pandas.read_parquet({}): {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("rows and columns as JSON")
}

#[test]
fn notebooks_execute_on_a_fresh_sweep() {
    if !python_ready() {
        if std::env::var("RUSTCI_REQUIRE_NOTEBOOKS").as_deref() == Ok("1") {
            panic!("python3 with nbconvert, nbformat, ipykernel, pandas, pyarrow, matplotlib not found and RUSTCI_REQUIRE_NOTEBOOKS=1");
        }
        // Not `eprintln!`: libtest captures that; a skip must be visible.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: notebooks need python3 with nbconvert, nbformat, ipykernel, pandas, pyarrow, matplotlib"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("runs")).expect("mkdir");
    std::fs::create_dir_all(data.join("replicated")).expect("mkdir");

    // The built-in fleet cut down so that jobs wait and the policies differ: 3 sizes x 2
    // policies x 2 loads over one synthetic day (~1800 jobs; well under a second each).
    let fleet = String::from_utf8(sim(&["fleet"]))
        .expect("utf-8")
        .lines()
        .map(|l| match l {
            "runners = 220" => "runners = 10",
            "runners = 30" => "runners = 3",
            "runners = 20" => "runners = 2",
            "runners = 6" => "runners = 1",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        fleet.contains("runners = 10"),
        "the built-in fleet changed: {fleet}"
    );
    let fleet_path = dir.path().join("fleet.toml");
    std::fs::write(&fleet_path, fleet).expect("fleet");
    std::fs::write(
        dir.path().join("grid.toml"),
        "fleet = \"fleet.toml\"\nscale = [1.0, 2.0, 4.0]\npolicy = [\"fairshare\", \"fcfs\"]\n\
         load = [1.0, 1.5]\n\n[workload]\nsynthetic = { seed = 1, days = 1, jobs_per_day = 1500 }\n",
    )
    .expect("grid");
    let grid = dir.path().join("grid.toml");
    sim(&[
        "sweep",
        "--grid",
        &grid.display().to_string(),
        "--out",
        &data.display().to_string(),
        "--replications",
        "3",
        "--quiet",
    ]);
    assert!(
        data.join("sweep.csv").exists(),
        "the sweep wrote no sweep.csv"
    );
    let fleet_arg = fleet_path.display().to_string();
    let run = |policy: &str, more: &[&str]| {
        let mut args = vec![
            "run",
            "--fleet",
            &fleet_arg,
            "--days",
            "1",
            "--jobs-per-day",
            "1500",
            "--policy",
            policy,
            "--quiet",
            "--format",
            "json",
        ];
        args.extend(more);
        sim(&args)
    };
    let mut written = Vec::new();
    for policy in ["fairshare", "fcfs", "qos"] {
        let out = data.join("runs").join(format!("{policy}.json"));
        let jobs = data.join("runs").join(format!("{policy}.parquet"));
        run(
            policy,
            &[
                "--output",
                &out.display().to_string(),
                "--jobs-out",
                &jobs.display().to_string(),
            ],
        );
        // What rustci wrote: its own reader's rows, and the schema's columns (the
        // synthetic workload has no extra keys).
        let records = rustci_datasets::parquet::read_parquet(&jobs).expect("rustci reads it");
        assert!(records.iter().all(|r| r.extra.is_empty()));
        let columns: Vec<String> = rustci_datasets::parquet::COLUMNS
            .iter()
            .map(|(c, _)| c.to_string())
            .collect();
        written.push((jobs, records.len(), columns));
        let replicated = data.join("replicated").join(format!("{policy}.json"));
        run(
            policy,
            &[
                "--replications",
                "3",
                "--output",
                &replicated.display().to_string(),
            ],
        );
    }
    let sweep_csv = std::fs::read_to_string(data.join("sweep.csv")).expect("sweep.csv");
    let sweep_columns: Vec<String> = sweep_csv
        .lines()
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    let sweep_rows = sweep_csv.lines().count() - 1;
    assert_eq!(sweep_rows, 12, "3 scales x 2 policies x 2 loads");
    written.push((data.join("sweep.parquet"), sweep_rows, sweep_columns));
    for (path, rows, columns) in &written {
        assert_eq!(
            pandas_shape(path),
            (*rows, columns.clone()),
            "{}",
            path.display()
        );
    }

    let executed = dir.path().join("executed");
    let o = Command::new("python3")
        .args([
            "-m",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=120",
            "--output-dir",
        ])
        .arg(&executed)
        .args(notebooks())
        .env("RUSTCI_NOTEBOOK_DATA", &data)
        // The executed copies go to `executed`; nothing is written next to the sources.
        .env("MPLBACKEND", "Agg")
        .output()
        .expect("run nbconvert");
    assert!(
        o.status.success(),
        "nbconvert failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for nb in notebooks() {
        let name = nb.file_name().expect("name");
        let run = executed.join(name);
        let text =
            std::fs::read_to_string(&run).unwrap_or_else(|e| panic!("{}: {e}", run.display()));
        assert!(
            text.contains("\"output_type\""),
            "{}: executed without any output",
            run.display()
        );
        assert!(
            !text.contains("\"output_type\": \"error\""),
            "{}",
            run.display()
        );
    }
}
