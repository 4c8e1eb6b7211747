//! Times reading a trace from its own files (e.g. TravisTorrent's 145 gzip CSVs) against
//! reading the same records from one Parquet file written by this crate, and prints the
//! sizes. BENCHMARKS.md, "Parquet against gzip CSV".
//!
//! `cargo run --release -p rustci-datasets --features parquet --example parquet_vs_csv --
//! <trace> <out.parquet> [repetitions]`

use std::path::Path;
use std::time::Instant;

use rustci_datasets::parquet::{read_parquet, write_parquet};
use rustci_datasets::{open_trace, JobRecord};

fn bytes(path: &Path) -> std::io::Result<u64> {
    if !path.is_dir() {
        return Ok(std::fs::metadata(path)?.len());
    }
    let mut total = 0;
    for e in std::fs::read_dir(path)? {
        let e = e?;
        if e.file_type()?.is_file() {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(trace), Some(out)) = (args.first(), args.get(1)) else {
        return Err("usage: parquet_vs_csv <trace> <out.parquet> [repetitions]".into());
    };
    let reps: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let (trace, out) = (Path::new(trace), Path::new(out));
    let read_trace = || -> Result<Vec<JobRecord>, Box<dyn std::error::Error>> {
        Ok(open_trace(trace, None)?.collect_records()?)
    };
    let records = read_trace()?;
    let t = Instant::now();
    write_parquet(out, &records)?;
    let write_s = t.elapsed().as_secs_f64();
    let (mut csv_s, mut pq_s) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        let a = read_trace()?;
        csv_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b = read_parquet(out)?;
        pq_s.push(t.elapsed().as_secs_f64());
        if a != b || b != records {
            return Err("the Parquet file reads back other records".into());
        }
    }
    println!(
        "{} records; trace {} bytes, Parquet {} bytes (written in {write_s:.3} s)",
        records.len(),
        bytes(trace)?,
        bytes(out)?
    );
    println!(
        "read trace:   median {:.3} s, min {:.3} s over {reps}",
        median(csv_s.clone()),
        csv_s.iter().copied().fold(f64::INFINITY, f64::min)
    );
    println!(
        "read Parquet: median {:.3} s, min {:.3} s over {reps}",
        median(pq_s.clone()),
        pq_s.iter().copied().fold(f64::INFINITY, f64::min)
    );
    Ok(())
}
