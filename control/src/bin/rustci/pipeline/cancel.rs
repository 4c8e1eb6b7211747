//! `rustci pipeline cancel pipelines/N`: cancel every job of a running pipeline.

use anyhow::Result;
use clap::Args;
use rustci_control::clients::pipeline::pipeline_name;
use rustci_control::pb;

use super::table::print_pipeline;
use crate::conn::Conn;
use crate::output::Format;

pub const CANCEL_EXAMPLES: &str = "\
Examples:
  rustci pipeline cancel pipelines/42
  rustci pipeline cancel 42 --format json

Jobs that wait are cancelled at once; running ones are stopped by their runners on
their next heartbeat. A pipeline that already ended is refused (FailedPrecondition).";

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    conn: Conn,
    /// pipelines/N or N.
    name: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub async fn run(a: CancelArgs) -> Result<()> {
    let mut c = a.conn.connect().await?;
    let p = c
        .pipelines
        .cancel_pipeline(pb::CancelPipelineRequest {
            name: pipeline_name(&a.name),
        })
        .await?
        .into_inner();
    print_pipeline(&p, a.format)
}
