//! A pipeline for people: a header line (state, project and ref, times) and its jobs
//! grouped by stage in the stages' order; or the pipeline as JSON for scripts.

use anyhow::Result;
use rustci_control::clients::client::{clock_text, human_duration, now_unix_ms};
use rustci_control::clients::pipeline::{pipeline_json, state_json};
use rustci_control::pb;

use crate::output::{cell, print_json, printable, Format};

pub fn print_pipeline(p: &pb::Pipeline, format: Format) -> Result<()> {
    match format {
        Format::Json => print_json(&pipeline_json(p)),
        Format::Table => {
            for line in lines(p, now_unix_ms()) {
                outln!("{line}");
            }
            Ok(())
        }
    }
}

/// A pipeline's state for a table (lower case).
pub fn state_name(state: i32) -> String {
    state_json(state).to_ascii_lowercase()
}

/// A job's state for a table: lower case, a failure its pipeline allows marked so.
pub fn job_state(j: &pb::PipelineJob) -> String {
    let s = rustci_control::clients::pipeline::job_state_json(j.state).to_ascii_lowercase();
    if j.allow_failure && j.state == pb::PipelineJobState::Failed as i32 {
        format!("{s} (allowed)")
    } else {
        s
    }
}

/// The header: name, state, project@ref, creation, and the end or its prediction.
pub fn header(p: &pb::Pipeline, now_ms: i64) -> String {
    let mut h = format!(
        "{}  {}  {}@{}  created {}",
        printable(&p.name),
        state_name(p.state),
        printable(&p.project),
        printable(&p.git_ref),
        clock_text(p.create_ms, now_ms)
    );
    if p.end_ms > 0 {
        h.push_str(&format!(
            "  ended {} (took {})",
            clock_text(p.end_ms, now_ms),
            human_duration(p.end_ms - p.create_ms)
        ));
    } else if p.predicted_finish_time_ms > 0 {
        let at = p.predicted_finish_time_ms;
        let when = if at <= now_ms {
            "now".to_owned()
        } else {
            format!("in {}", human_duration(at - now_ms))
        };
        h.push_str(&format!(
            "  predicted finish {when} ({})",
            clock_text(at, now_ms)
        ));
    }
    if p.critical_path_ms > 0 {
        h.push_str(&format!(
            "  critical path {} (* below)",
            human_duration(p.critical_path_ms)
        ));
    }
    if !p.cancel_reason.is_empty() {
        h.push_str(&format!("  ({})", printable(&p.cancel_reason)));
    }
    h
}

const JOBS_HEADER: &str =
    "STAGE         JOB                         STATE              RUNNER            TIME     CP  NEEDS";

/// The header, then one line per job, stage by stage (the submitted order within one).
pub fn lines(p: &pb::Pipeline, now_ms: i64) -> Vec<String> {
    let mut jobs: Vec<&pb::PipelineJob> = p.jobs.iter().collect();
    jobs.sort_by_key(|j| j.stage_index);
    // The first stage's jobs "need the earlier stages" too: none.
    let first_stage = jobs.first().map_or(0, |j| j.stage_index);
    let mut out = Vec::with_capacity(jobs.len() + 2);
    out.push(header(p, now_ms));
    out.push(JOBS_HEADER.to_owned());
    let mut last_stage = None;
    for j in jobs {
        // The stage's name once, on its first job.
        let stage = if last_stage == Some(j.stage_index) {
            ""
        } else {
            &j.stage
        };
        last_stage = Some(j.stage_index);
        let took = match (j.start_ms, j.end_ms) {
            (0, _) => "-".to_owned(),
            (s, 0) => human_duration(now_ms - s),
            (s, e) => human_duration(e - s),
        };
        let needs = if j.needs_stages && j.stage_index > first_stage {
            "(earlier stages)".to_owned()
        } else if j.needs.is_empty() {
            "-".to_owned()
        } else {
            j.needs.join(", ")
        };
        // "*": on the running pipeline's critical path.
        let on_path = if j.on_critical_path { "*" } else { "" };
        out.push(format!(
            "{:<13} {:<27} {:<18} {:<17} {:<8} {:<3} {}",
            cell(stage, 13),
            cell(&j.name, 27),
            job_state(j),
            cell(j.runner.strip_prefix("runners/").unwrap_or(&j.runner), 17),
            took,
            on_path,
            cell(&needs, 60)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_grouped_by_stage_in_the_stages_order() {
        let job =
            |name: &str, stage: &str, index: u32, state: pb::PipelineJobState| pb::PipelineJob {
                name: name.into(),
                stage: stage.into(),
                stage_index: index,
                state: state as i32,
                ..Default::default()
            };
        let now = 1_700_000_000_000;
        let p = pb::Pipeline {
            name: "pipelines/3".into(),
            project: "shop".into(),
            git_ref: "main".into(),
            state: pb::PipelineState::Running as i32,
            create_ms: now - 60_000,
            predicted_finish_time_ms: now + 120_000,
            jobs: vec![
                pb::PipelineJob {
                    needs_stages: true,
                    ..job("deploy", "deploy", 3, pb::PipelineJobState::Created)
                },
                pb::PipelineJob {
                    needs_stages: true,
                    ..job("build", "build", 1, pb::PipelineJobState::Succeeded)
                },
                pb::PipelineJob {
                    allow_failure: true,
                    needs: vec!["build".into()],
                    ..job("lint", "test", 2, pb::PipelineJobState::Failed)
                },
                pb::PipelineJob {
                    on_critical_path: true,
                    ..job("unit", "test", 2, pb::PipelineJobState::Running)
                },
            ],
            critical_path: vec!["unit".into(), "deploy".into()],
            critical_path_ms: 90_000,
            ..Default::default()
        };
        let l = lines(&p, now);
        assert_eq!(
            l[0],
            "pipelines/3  running  shop@main  created 22:12:20Z  predicted finish in 2m (22:15:20Z)  critical path 1m30s (* below)"
        );
        let firsts: Vec<&str> = l[2..].iter().map(|r| &r[..23]).collect();
        assert_eq!(
            firsts,
            [
                "build         build    ",
                "test          lint     ",
                "              unit     ",
                "deploy        deploy   "
            ]
        );
        assert!(l[3].contains("failed (allowed)"), "{}", l[3]);
        assert!(l[3].ends_with("build"), "{}", l[3]);
        assert!(
            l[2].ends_with(" -"),
            "the first stage needs nothing: {}",
            l[2]
        );
        assert!(l[5].ends_with("(earlier stages)"), "{}", l[5]);
        let marks: Vec<bool> = l[2..].iter().map(|r| r.contains(" *   ")).collect();
        assert_eq!(marks, [false, false, true, false], "only unit is marked");
    }
}
