//! Flags that several subcommands share: the workload (`run`, `plan`; the synthetic part
//! also `generate`) and the autoscaler (`run`, `plan`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rustci_datasets::synthetic::SyntheticConfig;
use rustci_datasets::TraceFormat;
use rustci_scheduler::ScalePolicy;
use rustci_sim::scenario::{pipelines_unless_turned_off, WorkloadSpec};

/// A trace, or else the synthetic CI workload.
#[derive(Args, Debug)]
pub struct WorkloadArgs {
    /// Trace file or directory (SWF, TravisTorrent CSV, GitHub Actions CSV, JobRecord CSV
    /// or Parquet; gzip read directly). Without it, the synthetic CI workload runs.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Trace format; inferred from the name and header when omitted (`.parquet`: parquet).
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT")]
    pub trace_format: Option<TraceFormat>,
    #[command(flatten)]
    pub synthetic: SyntheticArgs,
}

impl WorkloadArgs {
    /// The trace, or the synthetic workload of the flags; checked when it is loaded.
    pub fn spec(&self) -> Result<WorkloadSpec> {
        Ok(match &self.trace {
            Some(path) => WorkloadSpec::Trace {
                path: path.clone(),
                format: self.trace_format,
            },
            None => WorkloadSpec::Synthetic(Box::new(self.synthetic.config()?)),
        })
    }
}

/// The synthetic CI workload's parameters.
#[derive(Args, Debug)]
pub struct SyntheticArgs {
    /// Synthetic workload parameters (TOML; every field optional, see the README). The
    /// workload has pipelines unless the file says `[pipelines] enabled = false`.
    #[arg(long, value_name = "FILE.toml")]
    pub synthetic: Option<PathBuf>,
    /// Seed of the synthetic workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of synthetic workload (default 7, or the --synthetic file's).
    #[arg(long)]
    pub days: Option<f64>,
    /// Mean synthetic jobs per weekday.
    #[arg(long)]
    pub jobs_per_day: Option<f64>,
}

impl SyntheticArgs {
    /// The generator's parameters: the file's (or the defaults), then the flags, with
    /// pipelines unless the file turns them off ([`pipelines_unless_turned_off`]). Not
    /// yet checked: [`WorkloadSpec::load`] does that.
    pub fn config(&self) -> Result<SyntheticConfig> {
        let mut cfg = match &self.synthetic {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                // Typed first, so that a bad field is reported with its line.
                let mut cfg = toml::from_str::<SyntheticConfig>(&text)
                    .with_context(|| format!("{}", path.display()))?;
                let table: toml::Table =
                    toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
                pipelines_unless_turned_off(&mut cfg, Some(&table));
                cfg
            }
            None => {
                let mut cfg = SyntheticConfig::default();
                pipelines_unless_turned_off(&mut cfg, None);
                cfg
            }
        };
        cfg.seed = self.seed;
        if let Some(d) = self.days {
            cfg.days = d;
        }
        if let Some(j) = self.jobs_per_day {
            cfg.jobs_per_day = j;
        }
        Ok(cfg)
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum AutoscalerArg {
    Static,
    Reactive,
    Predictive,
}

impl AutoscalerArg {
    pub fn policy(self) -> ScalePolicy {
        match self {
            Self::Static => ScalePolicy::Static,
            Self::Reactive => ScalePolicy::Reactive,
            Self::Predictive => ScalePolicy::Predictive,
        }
    }
}
