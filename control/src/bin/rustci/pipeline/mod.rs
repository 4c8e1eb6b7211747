//! `rustci pipeline`: a GitLab CI file submitted as a pipeline; pipelines read, listed,
//! watched and cancelled. One module per subcommand; `table.rs` is how a pipeline reads
//! on a terminal.

mod cancel;
mod get;
mod list;
mod submit;
mod table;
mod watch;

use anyhow::Result;
use clap::Subcommand;

pub const PIPELINE_EXAMPLES: &str = "\
Examples:
  rustci pipeline submit .gitlab-ci.yml --tenant team-a --project shop --ref main
  rustci pipeline watch pipelines/42
  rustci pipeline get pipelines/42 --format json
  rustci pipeline list --state running --project shop --ref main
  rustci pipeline cancel pipelines/42";

#[derive(Debug, Subcommand)]
pub enum PipelineCmd {
    /// Submit a GitLab CI file as a pipeline.
    #[command(after_help = submit::SUBMIT_EXAMPLES)]
    Submit(submit::SubmitArgs),
    /// Show a pipeline: its state, predicted finish and every job by stage.
    #[command(after_help = get::GET_EXAMPLES)]
    Get(get::GetArgs),
    /// List pipelines, oldest first.
    #[command(after_help = list::LIST_EXAMPLES)]
    List(list::ListArgs),
    /// Follow a pipeline until it ends.
    #[command(after_help = watch::WATCH_EXAMPLES)]
    Watch(watch::WatchArgs),
    /// Cancel every job of a running pipeline.
    #[command(after_help = cancel::CANCEL_EXAMPLES)]
    Cancel(cancel::CancelArgs),
}

pub async fn run(cmd: PipelineCmd) -> Result<()> {
    match cmd {
        PipelineCmd::Submit(a) => submit::run(a).await,
        PipelineCmd::Get(a) => get::run(a).await,
        PipelineCmd::List(a) => list::run(a).await,
        PipelineCmd::Watch(a) => watch::run(a).await,
        PipelineCmd::Cancel(a) => cancel::run(a).await,
    }
}
