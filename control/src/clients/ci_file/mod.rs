//! The GitLab CI file reader: a `.gitlab-ci.yml` (the common subset of GitLab's
//! keywords) into a [`PipelineDef`], the jobs and needs `rustci pipeline submit` sends.
//! Pure: [`parse`] takes the text and a file name for its messages; [`parse_file`] reads
//! a file after checking its size.
//!
//! # The subset
//!
//! Top level: `stages`, `variables`, `default` (`before_script`, `after_script`, `tags`,
//! `interruptible`, `timeout`), `workflow: auto_cancel: on_new_commit`, the deprecated
//! top-level `before_script`/`after_script` (as defaults), and jobs. A job: `stage`,
//! `script`, `before_script`, `after_script`, `needs`, `tags` (the job's labels),
//! `variables`, `when`, `allow_failure`, `parallel`, `interruptible`, `timeout`,
//! `inherit`. Everything else (`rules`, `include`, `extends`, `trigger`, `image`,
//! `services`, `artifacts`, `cache`, `only`/`except`, `environment`, `retry`, ... and
//! keys GitLab does not know) is recorded as an [`Unsupported`] with its keyword, line
//! and job, and what leaving it out means ("the job runs without these services");
//! [`Mode::Strict`] makes any of them an error. A `trigger:` job is left out of the
//! pipeline, and needs on it are dropped (each reported).
//!
//! # GitLab's rules, as read here
//!
//! From GitLab's CI/CD YAML reference (docs.gitlab.com/ci/yaml) unless said otherwise:
//! - Stages: `build, test, deploy` without `stages:`; `.pre` and `.post` are always first
//!   and last ([`PipelineDef::stages`] has them); a job's default stage is `test`, and a
//!   stage that is not listed is an error. Names starting with `.` are hidden jobs
//!   (templates, not run; usable through anchors and `!reference`). A pipeline with
//!   only `.pre`/`.post` jobs is refused, as GitLab does not run one.
//! - `default:` keywords apply to jobs that do not set them, as `inherit: default:`
//!   allows; global `variables` come before the job's own, as `inherit: variables:`
//!   allows, and a job's value overrides a global one.
//! - `needs`: names, or `{job:, optional:, artifacts:, parallel: matrix:}`. A job
//!   without `needs` needs all jobs of earlier stages; `needs: []` nothing; needs on
//!   the same stage are allowed (GitLab 14.2+), on a later stage refused. A need by
//!   base name on a parallel job means all its instances; `needs: parallel: matrix`
//!   selects the instances whose matrix values match (a row may name only some of the
//!   variables, GitLab MR 130957), with GitLab's matrix expressions
//!   `$[[ matrix.NAME ]]` (docs.gitlab.com/ci/yaml/matrix_expressions). An optional
//!   need on a job that is not in the pipeline is ignored. Unknown needs, needs on a
//!   later stage and duplicate job names are refused here with the job and line; the
//!   DAG is then checked by the core's own `PipelineSpec::check`, whose cycle error
//!   names a job on the cycle and spells it out.
//! - `parallel: N` (1 to 200) makes `name 1/N` ... `name N/N` with `CI_NODE_INDEX` and
//!   `CI_NODE_TOTAL`; `parallel: matrix` (at most 200 jobs) the product of each row's
//!   values, the first variable varying slowest, named `name: [v1, v2]` (GitLab MR
//!   39985), with the row's variables and `CI_NODE_INDEX`/`CI_NODE_TOTAL` set. `tags`
//!   may use the job's variables (`tags: [$ARCH]` picks a runner per matrix instance,
//!   as GitLab documents for matrix jobs).
//! - `when`: `on_success`, `on_failure`, `always`, `manual` (a manual job may fail
//!   unless it says `allow_failure: false`, which makes it blocking: the core's
//!   `When::Manual { blocking }`); `delayed` runs as `on_success` (reported); `never`
//!   outside `rules` is an error. `allow_failure: exit_codes:` is reported and read as
//!   `false`.
//! - `timeout` in GitLab's human form (`3600`, `90 minutes`, `1h 30m`) as seconds.
//! - `workflow: auto_cancel: on_new_commit` (`conservative`, the default,
//!   `interruptible` or `none`; GitLab MR 137892) is [`PipelineDef::auto_cancel`].
//! - Scripts: see `shell.rs` for how `before_script`, `script` and `after_script`
//!   become one `sh -c` command (after_script runs even when script failed, and its
//!   failure does not fail the job: GitLab issue 21008).
//!
//! # YAML
//!
//! saphyr-parser (YAML 1.2, maintained; it adds itself and `arraydeque` to the build)
//! gives events with positions; `yaml.rs` builds the tree. Anchors and aliases are
//! resolved, merge keys (`<<: *defaults`, which GitLab's YAML 1.1 reader takes) too, and
//! so is GitLab's `!reference [.job, key]`. Booleans may be spelled the YAML 1.1 way
//! (`yes`, `on`), as GitLab reads them. Scalars keep their text: `VERSION: 1.10` is
//! `"1.10"` (GitLab's reader would make it the number 1.1). A key repeated in one
//! mapping is an error (GitLab silently keeps the last one, which loses a job).
//!
//! # Limits
//!
//! A file over [`MAX_FILE_BYTES`] is refused before it is parsed (GitLab's own
//! `max_yaml_size_bytes` is 2 MB since GitLab MR 160826, 1 MB before). Collections nest
//! at most [`MAX_DEPTH`] levels (GitLab's `max_yaml_depth`, 100), a document holds
//! at most [`MAX_NODES`] nodes once aliases are expanded, and a pipeline at most
//! [`MAX_PIPELINE_JOBS`] jobs once `parallel` is expanded: the live API's limit per
//! pipeline, so that a file this reader accepts fits a `SubmitPipeline`.

mod duration;
mod error;
mod expand;
mod gitlab;
mod shell;
#[cfg(test)]
mod tests;
mod yaml;

use std::fmt;
use std::io::Read;
use std::path::Path;

use rustci_scheduler::When;
use serde::Serialize;

pub use error::{CiFileError, Problem};
use error::{Failure, Located};
pub use gitlab::MAX_PARALLEL;
pub use yaml::{MAX_DEPTH, MAX_NODES, MAX_REFERENCE_DEPTH};

/// The largest CI file read, in bytes (4 MiB: twice GitLab's default limit, so any file
/// GitLab takes is taken here).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The most jobs a pipeline may have (after `parallel` expansion): the live API's limit
/// per pipeline, for `SubmitPipeline` to refuse larger requests with this same constant.
pub const MAX_PIPELINE_JOBS: usize = 10_000;

/// Whether keywords outside the subset are warnings or errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Report them in [`PipelineDef::warnings`] and go on without them.
    #[default]
    Lenient,
    /// Refuse the file ([`CiFileError::Strict`] lists them all).
    Strict,
}

/// A CI file as a pipeline, ready to submit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineDef {
    /// `.pre`, the file's stages (or GitLab's default ones), `.post`.
    pub stages: Vec<String>,
    /// In the file's order; a parallel job's instances in GitLab's order.
    pub jobs: Vec<JobDef>,
    pub auto_cancel: AutoCancel,
    /// Keywords outside the subset, by line.
    pub warnings: Vec<Unsupported>,
}

/// One job of a [`PipelineDef`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobDef {
    /// GitLab's name: `build`, `test 2/3`, `build: [linux, amd64]`.
    pub name: String,
    pub stage: String,
    /// Position of the stage in [`PipelineDef::stages`].
    pub stage_index: u32,
    /// `None`: every job of the earlier stages. Otherwise instance names, each once.
    pub needs: Option<Vec<String>>,
    /// `before_script`, `script` and `after_script` as one command for `sh -c` (see
    /// [`JobDef::shell_command`] for the variables).
    pub command: String,
    /// The job's `tags`: a runner must have all of them.
    pub labels: Vec<String>,
    /// Global, then the job's, then matrix values and `CI_NODE_*`; each name once, with
    /// the value of its last definition.
    pub variables: Vec<Variable>,
    pub when: When,
    pub allow_failure: bool,
    pub interruptible: bool,
    /// `timeout`, the job's requested time.
    pub timeout_s: Option<i64>,
    /// The line of the job's name in the file.
    pub line: usize,
}

impl JobDef {
    /// The command to run: the variables exported (the job API has no environment of
    /// its own), then [`JobDef::command`].
    pub fn shell_command(&self) -> String {
        let mut out = shell::exports(&self.variables);
        out.push_str(&self.command);
        out
    }
}

/// A CI/CD variable of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    pub name: String,
    pub value: String,
    /// GitLab's `expand`: `$OTHER` in the value is replaced by that variable's value.
    pub expand: bool,
}

impl Variable {
    pub fn new(name: &str, value: &str, expand: bool) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            expand,
        }
    }
}

/// GitLab's `workflow: auto_cancel: on_new_commit` (`conservative`, `interruptible`,
/// `none`): the core's supersession modes, one to one.
pub use rustci_scheduler::AutoCancel;

/// A keyword outside the supported subset, where it is and what leaving it out means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsupported {
    /// As written, with its parents for nested ones: `image`, `default:cache`,
    /// `needs:project`, `when:delayed`.
    pub keyword: String,
    /// The job it is in; `None` at the top level, in `default:` or `workflow:`.
    pub job: Option<String>,
    pub line: usize,
    /// What the pipeline does without it.
    pub effect: &'static str,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        if let Some(job) = &self.job {
            write!(f, "job {job:?}: ")?;
        }
        write!(f, "`{}` is not supported: {}", self.keyword, self.effect)
    }
}

/// Reads a CI file: refuses it unread if it is over [`MAX_FILE_BYTES`], then [`parse`]s
/// it. Messages name the file as `path` is written.
pub fn parse_file(path: &Path, mode: Mode) -> Result<PipelineDef, CiFileError> {
    let file = path.display().to_string();
    let read = |source| CiFileError::Read {
        file: file.clone(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read)?;
    let bytes = f.metadata().map_err(read)?.len();
    if bytes > MAX_FILE_BYTES {
        return Err(CiFileError::TooLarge {
            file,
            bytes,
            limit: MAX_FILE_BYTES,
        });
    }
    // A file that grows while it is read, or a device with no size, stops at the limit.
    let mut data = Vec::with_capacity(bytes as usize);
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(read)?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(CiFileError::TooLarge {
            file,
            bytes: data.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    let text = match String::from_utf8(data) {
        Ok(t) => t,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            return Err(CiFileError::Invalid {
                file,
                line,
                job: None,
                problem: Box::new(Problem::NotUtf8),
            });
        }
    };
    parse(&file, &text, mode)
}

/// Parses the text of a CI file; `file` names it in messages.
pub fn parse(file: &str, text: &str, mode: Mode) -> Result<PipelineDef, CiFileError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(CiFileError::TooLarge {
            file: file.to_owned(),
            bytes: text.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    let mut warnings = Vec::new();
    let result = read(text, &mut warnings);
    warnings.sort_by_key(|w| w.line);
    if mode == Mode::Strict && !warnings.is_empty() {
        // The unsupported keywords first: they may be why the rest failed (a job whose
        // script was to come from `extends`).
        return Err(CiFileError::Strict {
            file: file.to_owned(),
            unsupported: warnings,
        });
    }
    let (stages, jobs, auto_cancel) = result.map_err(|e| e.into_error(file))?;
    Ok(PipelineDef {
        stages,
        jobs,
        auto_cancel,
        warnings,
    })
}

type Parts = (Vec<String>, Vec<JobDef>, AutoCancel);

fn read(text: &str, warnings: &mut Vec<Unsupported>) -> Result<Parts, Failure> {
    let docs = yaml::load(text)?;
    let root = match docs.as_slice() {
        [] => return Err(Located::at(1, Problem::NoJobs).into()),
        [root] => root,
        // A header (`spec:` for inputs) and then the configuration.
        [header, root]
            if header
                .as_map()
                .is_some_and(|m| m.iter().all(|e| e.key == "spec")) =>
        {
            if let Some(e) = header.as_map().and_then(<[_]>::first) {
                warnings.push(Unsupported {
                    keyword: "spec".to_owned(),
                    job: None,
                    line: e.line,
                    effect: "inputs are not interpolated",
                });
            }
            root
        }
        [_, second, ..] => return Err(Located::at(second.line, Problem::SeveralDocuments).into()),
    };
    let doc = gitlab::read(root, warnings)?;
    let jobs = expand::jobs(&doc, warnings)?;
    Ok((doc.stages, jobs, doc.auto_cancel))
}
