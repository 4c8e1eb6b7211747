//! `rustci pipeline list`: pipelines by state, project and ref, oldest first.

use anyhow::{Context, Result};
use clap::Args;
use rustci_control::clients::client::{clock_text, now_unix_ms};
use rustci_control::clients::pipeline::{self, pipeline_json, ListFilter};
use rustci_control::pb;

use super::table::state_name;
use crate::conn::Conn;
use crate::output::{cell, print_json, Format};

pub const LIST_EXAMPLES: &str = "\
Examples:
  rustci pipeline list
  rustci pipeline list --state running --project shop --ref main
  rustci pipeline list --state failed --limit 0 --format json";

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: Conn,
    /// Tenant (default: the key's tenant; all tenants in local mode).
    #[arg(long, env = "RUSTCI_TENANT")]
    tenant: Option<String>,
    /// running, succeeded, failed, cancelled, blocked, either case (default: any).
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    project: Option<String>,
    #[arg(long = "ref", value_name = "REF")]
    git_ref: Option<String>,
    /// At most this many pipelines; 0 = all (default: all with --format json, 100 as a
    /// table).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Pipelines `list` shows as a table unless `--limit` says otherwise.
const TABLE_LIMIT: usize = 100;

const HEADER: &str =
    "NAME            STATE      PROJECT        REF            JOBS  CREATED               FINISH";

pub async fn run(a: ListArgs) -> Result<()> {
    let state = match a.state.as_deref() {
        None => pb::PipelineState::Unspecified,
        Some(s) => pipeline::parse_state(s).with_context(|| {
            format!("--state: expected running, succeeded, failed, cancelled or blocked, got {s:?}")
        })?,
    };
    let filter = ListFilter {
        tenant: a.tenant.unwrap_or_default(),
        state,
        project: a.project.unwrap_or_default(),
        git_ref: a.git_ref.unwrap_or_default(),
    };
    let limit = a.limit.unwrap_or(match a.format {
        Format::Json => 0,
        Format::Table => TABLE_LIMIT,
    });
    let mut c = a.conn.connect().await?;
    let (found, more) = pipeline::list(&mut c.pipelines, &filter, limit).await?;
    match a.format {
        Format::Json => print_json(&serde_json::Value::Array(
            found.iter().map(pipeline_json).collect(),
        )),
        Format::Table => {
            let now = now_unix_ms();
            outln!("{HEADER}");
            for p in &found {
                let finish = match (p.end_ms, p.predicted_finish_time_ms) {
                    (0, 0) => "-".to_owned(),
                    (0, at) => format!("~{}", clock_text(at, now)),
                    (end, _) => clock_text(end, now),
                };
                outln!(
                    "{:<15} {:<10} {:<14} {:<14} {:>4}  {:<21} {}",
                    cell(&p.name, 15),
                    state_name(p.state),
                    cell(&p.project, 14),
                    cell(&p.git_ref, 14),
                    p.jobs.len(),
                    clock_text(p.create_ms, now),
                    finish
                );
            }
            if more {
                eprintln!("(the first {limit} pipelines; --limit 0 lists them all)");
            }
            Ok(())
        }
    }
}
