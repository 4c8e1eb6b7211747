//! `rustci pipeline submit FILE`: a GitLab CI file read (the supported subset), every
//! keyword outside it reported, then submitted as one pipeline.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rustci_control::clients::ci_file::{self, Mode};
use rustci_control::clients::pipeline::{self, pipeline_json, Target};

use super::table::print_pipeline;
use crate::conn::Conn;
use crate::output::{print_json, Format};

pub const SUBMIT_EXAMPLES: &str = "\
Examples:
  rustci pipeline submit .gitlab-ci.yml --tenant team-a --project shop --ref main
  # Refuse the file if it uses keywords outside the supported subset:
  rustci pipeline submit .gitlab-ci.yml --project shop --ref main --strict --format json
  # Retrying with the same request id never makes a second pipeline:
  rustci pipeline submit .gitlab-ci.yml --project shop --ref main --request-id shop-main-1a2b3c
  # Read the file and show the jobs it makes, submitting nothing:
  rustci pipeline submit .gitlab-ci.yml --project shop --ref main --dry-run

The subset: stages; jobs with stage, script, before_script, after_script, needs (names
and `job:` mappings, `parallel: matrix` needs), tags (a runner must have all of them),
variables, when (on_success, on_failure, always, manual), allow_failure, parallel (N and
matrix), interruptible, timeout (the requested time), inherit; default: (before_script,
after_script, tags, interruptible, timeout); workflow: auto_cancel: on_new_commit.
Other keywords (rules, include, extends, trigger, services, artifacts, ...) are reported
on stderr by name with their line and job and left out; --strict refuses the file.
A file with an error (YAML, an unknown stage or need, a need on a later stage, a
cycle, over 4 MiB) is refused with its line or job, and nothing is submitted.";

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    conn: Conn,
    /// The GitLab CI file (`.gitlab-ci.yml`).
    file: PathBuf,
    /// Tenant; with an API key it must be the key's tenant or omitted.
    #[arg(long, env = "RUSTCI_TENANT")]
    tenant: Option<String>,
    /// The project: with the ref, a newer pipeline supersedes this one (auto-cancel).
    #[arg(long)]
    project: String,
    /// The git ref (branch or tag) the pipeline runs for.
    #[arg(long = "ref", value_name = "REF")]
    git_ref: String,
    /// Keywords outside the supported subset are errors, not warnings.
    #[arg(long)]
    strict: bool,
    /// Idempotency key (default: a new unique one). A repeat returns the first pipeline.
    #[arg(long)]
    request_id: Option<String>,
    /// Read the file and print the jobs it makes; submit nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub async fn run(a: SubmitArgs) -> Result<()> {
    let mode = if a.strict {
        Mode::Strict
    } else {
        Mode::Lenient
    };
    // Read and check everything before connecting: a bad file submits nothing.
    let def = ci_file::parse_file(&a.file, mode)?;
    let file = a.file.display();
    for w in &def.warnings {
        eprintln!("warning: {file}: {w}");
    }
    if a.dry_run {
        return match a.format {
            Format::Json => print_json(&serde_json::to_value(&def)?),
            Format::Table => {
                for j in &def.jobs {
                    outln!(
                        "{:<13} {:<27} labels [{}]",
                        crate::output::cell(&j.stage, 13),
                        crate::output::cell(&j.name, 27),
                        crate::output::printable(&j.labels.join(","))
                    );
                }
                Ok(())
            }
        };
    }
    let target = Target {
        request_id: a
            .request_id
            .unwrap_or_else(crate::submit::unique_request_id),
        tenant: a.tenant.unwrap_or_default(),
        project: a.project,
        git_ref: a.git_ref,
    };
    let req = pipeline::submit_request(&def, &target);
    let mut c = a.conn.connect().await?;
    let p = pipeline::submit(&mut c.pipelines, req).await?;
    match a.format {
        Format::Json => {
            let mut v = pipeline_json(&p);
            v["warnings"] = serde_json::to_value(&def.warnings)?;
            print_json(&v)
        }
        Format::Table => print_pipeline(&p, a.format),
    }
}
