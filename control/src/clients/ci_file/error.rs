//! What can be wrong with a CI file: [`CiFileError`] says where (file, line, job),
//! [`Problem`] says what.

use std::fmt;

use thiserror::Error;

use super::Unsupported;

/// A CI file that cannot become a pipeline. Nothing of it should be submitted.
#[derive(Debug, Error)]
pub enum CiFileError {
    #[error("{file}: cannot read it: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: {bytes} bytes, over the limit of {limit} bytes for a CI file (refused before parsing)"
    )]
    TooLarge {
        file: String,
        bytes: u64,
        limit: u64,
    },
    #[error("{file}:{line}:{column}: YAML syntax error: {message}")]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}:{line}: {}{problem}", JobPrefix(job.as_deref()))]
    Invalid {
        file: String,
        line: usize,
        /// The job the problem is in, if it is in one.
        job: Option<String>,
        problem: Box<Problem>,
    },
    /// Strict mode: keywords outside the supported subset are errors.
    #[error("{file}: {} outside the supported subset (strict mode):{}", Count(unsupported.len()), List(unsupported))]
    Strict {
        file: String,
        unsupported: Vec<Unsupported>,
    },
}

impl CiFileError {
    /// The line the error is on, if it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Yaml { line, .. } | Self::Invalid { line, .. } => Some(*line),
            Self::Strict { unsupported, .. } => unsupported.first().map(|u| u.line),
            Self::Read { .. } | Self::TooLarge { .. } => None,
        }
    }

    /// The problem, for the errors that are a [`Problem`] at a line.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// What is wrong, at a line of a CI file ([`CiFileError::Invalid`]).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Problem {
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    #[error("collections nest deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("the document has more than {limit} nodes once anchors and references are expanded")]
    TooManyNodes { limit: usize },
    #[error("an alias refers to the anchor of a node that contains it")]
    RecursiveAlias,
    #[error("a mapping key must be a scalar")]
    ComplexKey,
    #[error("key {key:?} appears twice in this mapping (first at line {first_line})")]
    DuplicateKey { key: String, first_line: usize },
    #[error("`<<` merges a mapping or a list of mappings")]
    BadMerge,
    #[error("tag {tag} is not supported (only YAML's own tags and GitLab's !reference)")]
    UnknownTag { tag: String },
    #[error("`!reference` takes a list of names, such as `!reference [.setup, script]`")]
    ReferenceNotList,
    #[error("`!reference [{path}]`: {missing} does not exist")]
    BadReference { path: String, missing: String },
    #[error("`!reference` tags nest deeper than {limit} levels")]
    ReferenceTooDeep { limit: usize },
    #[error("the file holds more than one YAML document")]
    SeveralDocuments,
    #[error("the top level must be a mapping of keywords and jobs")]
    NotAMapping,
    #[error("top-level key {key:?} is not a keyword, and not a job: a job is a mapping")]
    NotAJob { key: String },
    #[error("`{keyword}` must be {expected}")]
    WrongType {
        keyword: String,
        expected: &'static str,
    },
    #[error("stage {stage:?} is not one of the pipeline's stages ({})", stages.join(", "))]
    UnknownStage { stage: String, stages: Vec<String> },
    #[error("the job has no `script`{}", if *extends { " (its `extends` is not supported, so a script from the template does not count)" } else { "" })]
    NoScript { extends: bool },
    #[error("the file defines no jobs (names starting with `.` are hidden templates, not jobs)")]
    NoJobs,
    #[error(
        "the pipeline has only jobs of the .pre and .post stages, which GitLab does not run alone"
    )]
    OnlyPrePost,
    #[error("the pipeline has {jobs} jobs once parallel jobs are expanded; the limit is {limit}")]
    TooManyJobs { jobs: usize, limit: usize },
    #[error("job name {job:?} is used twice (first at line {first_line})")]
    DuplicateJob { job: String, first_line: usize },
    #[error("needs {need:?}, which is no job of the pipeline")]
    UnknownNeed { need: String },
    #[error("(stage {stage:?}) needs {need:?} of the later stage {need_stage:?}")]
    NeedOnLaterStage {
        stage: String,
        need: String,
        need_stage: String,
    },
    #[error("needs itself")]
    NeedsItself,
    #[error("is on a cycle of needs: {}", cycle.join(" needs "))]
    NeedCycle { cycle: Vec<String> },
    #[error("`timeout: {text}` is not a duration (examples: `3600`, `90 minutes`, `1h 30m`)")]
    BadTimeout { text: String },
    #[error("`when: {value}` is not one of on_success, on_failure, always, manual, delayed")]
    BadWhen { value: String },
    #[error("`when: never` is only allowed inside `rules`")]
    WhenNever,
    #[error("`parallel` must be from 1 to {limit}, got {value}")]
    ParallelRange { value: String, limit: u32 },
    #[error("`parallel: matrix` makes {jobs} jobs; the limit is {limit}")]
    MatrixTooLarge { jobs: u64, limit: u32 },
    #[error(
        "variable name {name:?} must be letters, digits and underscores, not starting with a digit"
    )]
    BadVariableName { name: String },
    #[error("`$[[ matrix.{name} ]]`: the job has no matrix variable {name}")]
    UnknownMatrixVariable { name: String },
    /// A check of the scheduling core's that the ones above should have caught first.
    #[error("the scheduling core refuses the pipeline: {0}")]
    Core(rustci_scheduler::CoreError),
}

struct JobPrefix<'a>(Option<&'a str>);

impl fmt::Display for JobPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(job) => write!(f, "job {job:?}: "),
            None => Ok(()),
        }
    }
}

struct Count(usize);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 keyword"),
            n => write!(f, "{n} keywords"),
        }
    }
}

struct List<'a>(&'a [Unsupported]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for u in self.0 {
            write!(f, "\n  {u}")?;
        }
        Ok(())
    }
}

/// A [`Problem`] at a line (and in a job), before the file name is known to it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Located {
    pub line: usize,
    pub job: Option<String>,
    pub problem: Problem,
}

impl Located {
    pub fn at(line: usize, problem: Problem) -> Self {
        Self {
            line,
            job: None,
            problem,
        }
    }

    pub fn in_job(line: usize, job: &str, problem: Problem) -> Self {
        Self {
            line,
            job: Some(job.to_owned()),
            problem,
        }
    }

    pub fn into_error(self, file: &str) -> CiFileError {
        CiFileError::Invalid {
            file: file.to_owned(),
            line: self.line,
            job: self.job,
            problem: Box::new(self.problem),
        }
    }
}

/// Why a file was refused, before the file name is known to it.
#[derive(Debug)]
pub(super) enum Failure {
    Yaml {
        line: usize,
        column: usize,
        message: String,
    },
    Invalid(Located),
}

impl From<Located> for Failure {
    fn from(l: Located) -> Self {
        Failure::Invalid(l)
    }
}

impl Failure {
    pub fn into_error(self, file: &str) -> CiFileError {
        match self {
            Failure::Yaml {
                line,
                column,
                message,
            } => CiFileError::Yaml {
                file: file.to_owned(),
                line,
                column,
                message,
            },
            Failure::Invalid(l) => l.into_error(file),
        }
    }
}
