//! `rustci pipeline get pipelines/N`: one pipeline and its jobs.

use anyhow::Result;
use clap::Args;
use rustci_control::clients::pipeline::pipeline_name;
use rustci_control::pb;

use super::table::print_pipeline;
use crate::conn::Conn;
use crate::output::Format;

pub const GET_EXAMPLES: &str = "\
Examples:
  rustci pipeline get pipelines/42
  rustci pipeline get 42 --format json";

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    conn: Conn,
    /// pipelines/N or N.
    name: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub async fn run(a: GetArgs) -> Result<()> {
    let mut c = a.conn.connect().await?;
    let p = c
        .pipelines
        .get_pipeline(pb::GetPipelineRequest {
            name: pipeline_name(&a.name),
        })
        .await?
        .into_inner();
    print_pipeline(&p, a.format)
}
