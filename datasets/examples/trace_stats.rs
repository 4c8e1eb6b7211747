//! Opens a trace (file or directory) and prints record count, errors and elapsed time.
//!
//! `cargo run --release -p rustci-datasets --example trace_stats -- <path> [swf|travis|gha|gitlab|flowbench|csv]`
//! or `... -- --synthetic <jobs_per_day> <days>` to time the generator.

use std::path::Path;
use std::time::Instant;

use rustci_datasets::synthetic::{generate, SyntheticConfig};
use rustci_datasets::{open_trace, TraceFormat};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--synthetic") {
        let cfg = SyntheticConfig {
            jobs_per_day: args
                .get(1)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(20_000.0),
            days: args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(7.0),
            ..SyntheticConfig::default()
        };
        let t = Instant::now();
        let jobs = generate(&cfg)?;
        println!(
            "synthetic: {} jobs (expected {:.0}) in {:.3} s",
            jobs.len(),
            cfg.expected_jobs(),
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let Some(path) = args.first() else {
        return Err(
            "usage: trace_stats <path> [format] | --synthetic [jobs_per_day] [days]".into(),
        );
    };
    let format = args.get(1).map(|s| s.parse::<TraceFormat>()).transpose()?;
    let t = Instant::now();
    let trace = open_trace(Path::new(path), format)?;
    println!(
        "format {}, meta {:?}",
        trace.format, trace.meta.installation
    );
    let (mut ok, mut errors, mut no_run) = (0u64, 0u64, 0u64);
    for r in trace {
        match r {
            Ok(r) => {
                ok += 1;
                no_run += u64::from(r.run_s.is_none());
            }
            Err(e) => {
                errors += 1;
                if errors <= 5 {
                    println!("error: {e}");
                }
            }
        }
    }
    println!(
        "{ok} records ({no_run} without run time), {errors} errors, {:.3} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
