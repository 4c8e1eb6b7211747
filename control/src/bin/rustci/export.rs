//! `rustci jobs export`: a store's finished jobs as a history file, the records `rustci
//! retrain --from` learns from, in the formats notebooks and other tools read.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rustci_control::store::history::{read_history, redact};
use rustci_datasets::JobRecord;

pub const EXPORT_EXAMPLES: &str = "\
Examples:
  rustci jobs export --from ./rustci-data --out history.parquet
  rustci jobs export --from sqlite:./rustci-data/rustci.db --out history.csv
  rustci jobs export --from mongodb://127.0.0.1:27017/rustci --out history.jsonl
  rustci jobs export --from ./rustci-data --out h.bin --format parquet
  python3 -c 'import pandas; print(pandas.read_parquet(\"history.parquet\"))'";

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The store: a `rustci serve` data directory (or its database, `sqlite:PATH`), or a
    /// `mongodb://` URI. Read only; the server may keep running.
    #[arg(long, value_name = "DIR|sqlite:PATH|mongodb://...")]
    from: String,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// File format (default: from --out's name: `.parquet`, `.jsonl`, else CSV; `.gz`
    /// compresses CSV).
    #[arg(long, value_enum)]
    format: Option<ExportFormat>,
}

/// The history file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The JobRecord CSV (README, "JobRecord CSV").
    Csv,
    /// The JobRecord Parquet schema (README, "Parquet").
    Parquet,
    /// One JobRecord as JSON per line.
    Jsonl,
}

impl ExportFormat {
    fn of(path: &Path) -> Self {
        let name = path.to_string_lossy().to_ascii_lowercase();
        if rustci_datasets::is_parquet_name(path) {
            Self::Parquet
        } else if name.ends_with(".jsonl") {
            Self::Jsonl
        } else {
            Self::Csv
        }
    }
}

pub async fn run(args: ExportArgs) -> Result<()> {
    let records = read_history(&args.from)
        .await
        .with_context(|| format!("--from {}", redact(&args.from)))?;
    let format = args.format.unwrap_or_else(|| ExportFormat::of(&args.out));
    write(&args.out, format, &records).with_context(|| format!("--out {}", args.out.display()))?;
    eprintln!(
        "wrote {} finished jobs to {} ({format:?})",
        records.len(),
        args.out.display()
    );
    Ok(())
}

fn write(path: &Path, format: ExportFormat, records: &[JobRecord]) -> Result<()> {
    match format {
        ExportFormat::Csv => rustci_datasets::jobcsv::write_jobcsv(path, records)?,
        // The store keeps Unix time: its clock's epoch is 0.
        ExportFormat::Parquet => {
            rustci_datasets::parquet::write_trace_parquet(path, records, Some(0))?
        }
        ExportFormat::Jsonl => {
            let file = std::fs::File::create(path)?;
            let mut w = BufWriter::new(file);
            for r in records {
                serde_json::to_writer(&mut w, r)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
        }
    }
    Ok(())
}
