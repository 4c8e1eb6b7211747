//! GitLab's keywords read from the YAML tree: the top level (`stages`, `variables`,
//! `default`, `workflow`) and each job as a [`Template`], with `default:` and the global
//! variables applied as `inherit:` allows. Keywords outside the subset are recorded as
//! [`Unsupported`] where they appear.

use rustci_scheduler::When;

use super::duration;
use super::error::{Located, Problem};
use super::yaml::{Entry, Kind, Node};
use super::{AutoCancel, Unsupported, Variable};

/// GitLab's stages when the file has no `stages:` (`.pre` and `.post` are always first
/// and last).
pub(super) const DEFAULT_STAGES: [&str; 3] = ["build", "test", "deploy"];
/// A job's stage when it names none.
pub(super) const DEFAULT_STAGE: &str = "test";
/// GitLab's limit for `parallel: N` and for the jobs one `parallel: matrix` makes.
pub const MAX_PARALLEL: u32 = 200;
/// How deep lists may nest in a `script` (GitLab's limit; nesting comes from
/// `!reference` and anchors).
const MAX_SCRIPT_NESTING: usize = 10;

/// The file's keywords.
pub(super) struct Document {
    /// `.pre`, the stages, `.post`.
    pub stages: Vec<String>,
    pub auto_cancel: AutoCancel,
    pub jobs: Vec<Template>,
}

/// One job as written, before `parallel` makes it several.
pub(super) struct Template {
    pub name: String,
    pub line: usize,
    /// The stage and the line that names it (the job's line for the default stage).
    pub stage: (String, usize),
    pub before: Vec<String>,
    pub script: Vec<String>,
    pub after: Vec<String>,
    pub needs: Option<Vec<Need>>,
    pub tags: Vec<String>,
    /// Global ones first, then the job's own; a later one overrides an earlier one.
    pub variables: Vec<Variable>,
    pub when: When,
    pub allow_failure: bool,
    pub interruptible: bool,
    pub timeout_s: Option<i64>,
    pub parallel: Parallel,
    /// `trigger:` jobs: reported and left out of the pipeline.
    pub left_out: bool,
}

/// One entry of `needs:`.
pub(super) struct Need {
    pub job: String,
    pub line: usize,
    /// GitLab: ignored if the job is not in the pipeline.
    pub optional: bool,
    /// `parallel: matrix:` of the need: which instances of a matrix job.
    pub matrix: Option<Vec<MatrixRow>>,
}

/// One entry of a `parallel: matrix:` list: variables and their values, in order.
pub(super) type MatrixRow = Vec<(String, Vec<String>)>;

pub(super) enum Parallel {
    One,
    Count(u32),
    Matrix(Vec<MatrixRow>),
}

/// What `default:` (and the deprecated top-level `before_script`/`after_script`) give
/// jobs that do not set these keywords themselves.
#[derive(Default)]
struct Defaults {
    before: Option<Vec<String>>,
    after: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    interruptible: Option<bool>,
    timeout_s: Option<i64>,
}

/// Reads the top level of the document.
pub(super) fn read(root: &Node, warnings: &mut Vec<Unsupported>) -> Result<Document, Located> {
    let entries = match &root.kind {
        Kind::Map(entries) => entries,
        Kind::Null => return Err(Located::at(root.line, Problem::NoJobs)),
        _ => return Err(Located::at(root.line, Problem::NotAMapping)),
    };
    let mut r = Reader { warnings };
    let mut stages: Option<Vec<String>> = None;
    let mut globals: Vec<Variable> = Vec::new();
    let mut defaults = Defaults::default();
    let mut top_level = Defaults::default();
    let mut auto_cancel = AutoCancel::default();
    let mut jobs: Vec<&Entry> = Vec::new();
    for e in entries {
        let v = &e.value;
        match e.key.as_str() {
            "stages" => stages = Some(strings(v, "stages", None)?),
            "variables" => globals = r.variables(v, None, true)?,
            "default" => defaults = r.defaults(v)?,
            "workflow" => auto_cancel = r.workflow(v)?,
            "before_script" => top_level.before = Some(strings(v, "before_script", None)?),
            "after_script" => top_level.after = Some(strings(v, "after_script", None)?),
            k @ ("image" | "services" | "cache" | "include" | "types" | "spec") => {
                r.unsupported(k, None, e.line)
            }
            k if k.starts_with('.') => {}
            k => {
                if v.as_map().is_none() {
                    return Err(Located::at(e.line, Problem::NotAJob { key: k.to_owned() }));
                }
                jobs.push(e);
            }
        }
    }
    // `default:` wins over the deprecated top-level keywords.
    defaults.before = defaults.before.or(top_level.before);
    defaults.after = defaults.after.or(top_level.after);

    let mut all = vec![".pre".to_owned()];
    let listed = stages.unwrap_or_else(|| DEFAULT_STAGES.map(str::to_owned).to_vec());
    for s in listed {
        if s != ".pre" && s != ".post" && !all.contains(&s) {
            all.push(s);
        }
    }
    all.push(".post".to_owned());

    let jobs = jobs
        .into_iter()
        .map(|e| r.job(e, &defaults, &globals))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Document {
        stages: all,
        auto_cancel,
        jobs,
    })
}

struct Reader<'w> {
    warnings: &'w mut Vec<Unsupported>,
}

impl Reader<'_> {
    fn unsupported(&mut self, keyword: &str, job: Option<&str>, line: usize) {
        self.warnings.push(Unsupported {
            keyword: keyword.to_owned(),
            job: job.map(str::to_owned),
            line,
            effect: effect(keyword),
        });
    }

    fn defaults(&mut self, node: &Node) -> Result<Defaults, Located> {
        let entries = map(node, "default", None)?;
        let mut d = Defaults::default();
        for e in entries {
            let v = &e.value;
            match e.key.as_str() {
                "before_script" => d.before = Some(strings(v, "default:before_script", None)?),
                "after_script" => d.after = Some(strings(v, "default:after_script", None)?),
                "tags" => d.tags = Some(strings(v, "default:tags", None)?),
                "interruptible" => {
                    d.interruptible = Some(boolean(v, "default:interruptible", None)?)
                }
                "timeout" => d.timeout_s = Some(timeout(v, None)?),
                k => self.unsupported(&format!("default:{k}"), None, e.line),
            }
        }
        Ok(d)
    }

    fn workflow(&mut self, node: &Node) -> Result<AutoCancel, Located> {
        let mut mode = AutoCancel::default();
        for e in map(node, "workflow", None)? {
            match e.key.as_str() {
                "auto_cancel" => {
                    for a in map(&e.value, "workflow:auto_cancel", None)? {
                        match a.key.as_str() {
                            "on_new_commit" => {
                                mode = match text(
                                    &a.value,
                                    "workflow:auto_cancel:on_new_commit",
                                    None,
                                )? {
                                    "conservative" => AutoCancel::Conservative,
                                    "interruptible" => AutoCancel::Interruptible,
                                    "none" => AutoCancel::None,
                                    _ => {
                                        return Err(wrong(
                                            &a.value,
                                            "workflow:auto_cancel:on_new_commit",
                                            None,
                                            "conservative, interruptible or none",
                                        ))
                                    }
                                }
                            }
                            "on_job_failure" => {
                                match text(&a.value, "workflow:auto_cancel:on_job_failure", None)? {
                                    "none" => {}
                                    "all" => self.unsupported(
                                        "workflow:auto_cancel:on_job_failure",
                                        None,
                                        a.line,
                                    ),
                                    _ => {
                                        return Err(wrong(
                                            &a.value,
                                            "workflow:auto_cancel:on_job_failure",
                                            None,
                                            "none or all",
                                        ))
                                    }
                                }
                            }
                            k => {
                                self.unsupported(&format!("workflow:auto_cancel:{k}"), None, a.line)
                            }
                        }
                    }
                }
                k => self.unsupported(&format!("workflow:{k}"), None, e.line),
            }
        }
        Ok(mode)
    }

    fn job(
        &mut self,
        entry: &Entry,
        defaults: &Defaults,
        globals: &[Variable],
    ) -> Result<Template, Located> {
        let name = entry.key.as_str();
        let job = Some(name);
        if name == "pages" {
            // GitLab publishes this job's `public` artifacts as the project's site.
            self.unsupported("pages", job, entry.line);
        }
        let mut stage = None;
        let (mut before, mut script, mut after, mut tags) = (None, None, None, None);
        let mut needs = None;
        let mut variables = Vec::new();
        let mut when = None;
        let mut allow_failure = None;
        let (mut interruptible, mut timeout_s) = (None, None);
        let mut parallel = Parallel::One;
        let mut inherit = Inherit::default();
        let (mut left_out, mut extends, mut delayed) = (false, false, false);
        let mut start_in = None;
        for e in map(&entry.value, name, None)? {
            let v = &e.value;
            match e.key.as_str() {
                "stage" => stage = Some((text(v, "stage", job)?.to_owned(), e.line)),
                "script" => script = Some(strings(v, "script", job)?),
                "before_script" => before = Some(strings(v, "before_script", job)?),
                "after_script" => after = Some(strings(v, "after_script", job)?),
                "tags" => tags = Some(strings(v, "tags", job)?),
                "variables" => variables = self.variables(v, job, false)?,
                "needs" => needs = Some(self.needs(v, name)?),
                "when" => {
                    let (w, is_delayed) = parse_when(v, name)?;
                    when = Some(w);
                    if is_delayed {
                        delayed = true;
                        self.unsupported("when:delayed", job, e.line);
                    }
                }
                "start_in" => start_in = Some(e.line),
                "allow_failure" => allow_failure = Some(self.allow_failure(v, name)?),
                "interruptible" => interruptible = Some(boolean(v, "interruptible", job)?),
                "timeout" => timeout_s = Some(timeout(v, job)?),
                "parallel" => parallel = parallel_of(v, name)?,
                "inherit" => inherit = Inherit::read(v, name)?,
                k => {
                    match k {
                        "trigger" => left_out = true,
                        "extends" => extends = true,
                        _ => {}
                    }
                    self.unsupported(k, job, e.line);
                }
            }
        }
        if let (Some(line), false) = (start_in, delayed) {
            self.unsupported("start_in", job, line);
        }
        let script = match script {
            Some(s) => s,
            None if left_out => Vec::new(),
            None => {
                return Err(Located::in_job(
                    entry.line,
                    name,
                    Problem::NoScript { extends },
                ))
            }
        };
        let when = when.unwrap_or(When::OnSuccess);
        // GitLab: a manual job may fail unless it says otherwise, and one that may not
        // blocks the stages after it.
        let manual = matches!(when, When::Manual { .. });
        let allow_failure = allow_failure.unwrap_or(manual);
        let when = if manual {
            When::Manual {
                blocking: !allow_failure,
            }
        } else {
            when
        };
        let from_default = |key: &str| inherit.default.allows(key);
        let pick = |own: Option<Vec<String>>, key: &str, dflt: &Option<Vec<String>>| {
            own.or_else(|| from_default(key).then(|| dflt.clone()).flatten())
                .unwrap_or_default()
        };
        let mut all_variables: Vec<Variable> = globals
            .iter()
            .filter(|v| inherit.variables.allows(&v.name))
            .cloned()
            .collect();
        all_variables.extend(variables);
        Ok(Template {
            name: name.to_owned(),
            line: entry.line,
            stage: stage.unwrap_or_else(|| (DEFAULT_STAGE.to_owned(), entry.line)),
            before: pick(before, "before_script", &defaults.before),
            script,
            after: pick(after, "after_script", &defaults.after),
            needs,
            tags: pick(tags, "tags", &defaults.tags),
            variables: all_variables,
            when,
            allow_failure,
            interruptible: interruptible
                .or(from_default("interruptible")
                    .then_some(defaults.interruptible)
                    .flatten())
                .unwrap_or(false),
            timeout_s: timeout_s.or(from_default("timeout")
                .then_some(defaults.timeout_s)
                .flatten()),
            parallel,
            left_out,
        })
    }

    /// `variables:`: `NAME: value` or `NAME: {value:, expand:, description:, options:}`
    /// (`description` and `options` only matter to GitLab's run-pipeline form).
    fn variables(
        &mut self,
        node: &Node,
        job: Option<&str>,
        global: bool,
    ) -> Result<Vec<Variable>, Located> {
        let mut out = Vec::new();
        for e in map(node, "variables", job)? {
            check_variable_name(&e.key, e.line, job)?;
            let (value, expand) = match &e.value.kind {
                Kind::Null => (String::new(), true),
                Kind::Scalar { text, .. } => (text.clone(), true),
                Kind::Map(fields) => {
                    let mut value = String::new();
                    let mut expand = true;
                    for f in fields {
                        match f.key.as_str() {
                            "value" => value = scalar_text(&f.value, "variables:value", job)?,
                            "expand" => expand = boolean(&f.value, "variables:expand", job)?,
                            "description" | "options" if global => {}
                            k => self.unsupported(&format!("variables:{k}"), job, f.line),
                        }
                    }
                    (value, expand)
                }
                _ => {
                    return Err(wrong(
                        &e.value,
                        &format!("variables:{}", e.key),
                        job,
                        "a string or a mapping with `value`",
                    ))
                }
            };
            out.push(Variable {
                name: e.key.clone(),
                value,
                expand,
            });
        }
        Ok(out)
    }

    fn needs(&mut self, node: &Node, job: &str) -> Result<Vec<Need>, Located> {
        let items = match &node.kind {
            Kind::Seq(items) => items,
            _ => {
                return Err(wrong(
                    node,
                    "needs",
                    Some(job),
                    "a list of job names or `job:` mappings",
                ))
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match &item.kind {
                Kind::Scalar { text, .. } => out.push(Need {
                    job: text.clone(),
                    line: item.line,
                    optional: false,
                    matrix: None,
                }),
                Kind::Map(fields) => {
                    let mut need = Need {
                        job: String::new(),
                        line: item.line,
                        optional: false,
                        matrix: None,
                    };
                    let mut elsewhere = false;
                    for f in fields {
                        match f.key.as_str() {
                            "job" => need.job = text(&f.value, "needs:job", Some(job))?.to_owned(),
                            "optional" => {
                                need.optional = boolean(&f.value, "needs:optional", Some(job))?
                            }
                            // Which artifacts to fetch: there are none to fetch here.
                            "artifacts" => {
                                boolean(&f.value, "needs:artifacts", Some(job))?;
                            }
                            "parallel" => {
                                let Parallel::Matrix(rows) = parallel_of(&f.value, job)? else {
                                    return Err(wrong(
                                        &f.value,
                                        "needs:parallel",
                                        Some(job),
                                        "a mapping with `matrix`",
                                    ));
                                };
                                need.matrix = Some(rows);
                            }
                            k @ ("project" | "pipeline" | "ref") => {
                                elsewhere = true;
                                self.unsupported(&format!("needs:{k}"), Some(job), f.line);
                            }
                            k => self.unsupported(&format!("needs:{k}"), Some(job), f.line),
                        }
                    }
                    if elsewhere {
                        continue;
                    }
                    if need.job.is_empty() {
                        return Err(wrong(item, "needs:job", Some(job), "a job name"));
                    }
                    out.push(need);
                }
                _ => {
                    return Err(wrong(
                        item,
                        "needs",
                        Some(job),
                        "a list of job names or `job:` mappings",
                    ))
                }
            }
        }
        Ok(out)
    }

    /// `allow_failure: true|false` or `{exit_codes: ...}`, which is read as `false`.
    fn allow_failure(&mut self, node: &Node, job: &str) -> Result<bool, Located> {
        if let Some(b) = node.as_bool() {
            return Ok(b);
        }
        match node.as_map() {
            Some(fields) if fields.iter().all(|f| f.key == "exit_codes") => {
                if let Some(f) = fields.first() {
                    self.unsupported("allow_failure:exit_codes", Some(job), f.line);
                }
                Ok(false)
            }
            _ => Err(wrong(
                node,
                "allow_failure",
                Some(job),
                "true, false or `exit_codes:`",
            )),
        }
    }
}

/// `inherit:`: which `default:` keywords and global variables a job takes.
#[derive(Default)]
struct Inherit {
    default: Filter,
    variables: Filter,
}

#[derive(Default)]
enum Filter {
    #[default]
    All,
    None,
    Only(Vec<String>),
}

impl Filter {
    fn allows(&self, name: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::None => false,
            Filter::Only(names) => names.iter().any(|n| n == name),
        }
    }

    fn read(node: &Node, keyword: &str, job: &str) -> Result<Filter, Located> {
        if let Some(b) = node.as_bool() {
            return Ok(if b { Filter::All } else { Filter::None });
        }
        match &node.kind {
            Kind::Seq(_) => Ok(Filter::Only(strings(node, keyword, Some(job))?)),
            _ => Err(wrong(
                node,
                keyword,
                Some(job),
                "true, false or a list of names",
            )),
        }
    }
}

impl Inherit {
    fn read(node: &Node, job: &str) -> Result<Inherit, Located> {
        let mut inherit = Inherit::default();
        for e in map(node, "inherit", Some(job))? {
            match e.key.as_str() {
                "default" => inherit.default = Filter::read(&e.value, "inherit:default", job)?,
                "variables" => {
                    inherit.variables = Filter::read(&e.value, "inherit:variables", job)?
                }
                _ => {
                    return Err(wrong(
                        &e.value,
                        &format!("inherit:{}", e.key),
                        Some(job),
                        "`default` or `variables`",
                    ))
                }
            }
        }
        Ok(inherit)
    }
}

/// `when:` and whether it was `delayed` (read as `on_success`).
fn parse_when(node: &Node, job: &str) -> Result<(When, bool), Located> {
    let value = text(node, "when", Some(job))?;
    Ok(match value {
        "on_success" => (When::OnSuccess, false),
        "on_failure" => (When::OnFailure, false),
        "always" => (When::Always, false),
        // `blocking` follows `allow_failure` once that is known.
        "manual" => (When::Manual { blocking: false }, false),
        "delayed" => (When::OnSuccess, true),
        "never" => return Err(Located::in_job(node.line, job, Problem::WhenNever)),
        _ => {
            return Err(Located::in_job(
                node.line,
                job,
                Problem::BadWhen {
                    value: value.to_owned(),
                },
            ))
        }
    })
}

/// `parallel: N` or `parallel: matrix: [...]`.
fn parallel_of(node: &Node, job: &str) -> Result<Parallel, Located> {
    if let Some(fields) = node.as_map() {
        let mut rows = None;
        for f in fields {
            if f.key != "matrix" {
                return Err(wrong(
                    node,
                    "parallel",
                    Some(job),
                    "a number or a mapping with `matrix`",
                ));
            }
            rows = Some(matrix(&f.value, job)?);
        }
        return rows.map(Parallel::Matrix).ok_or_else(|| {
            wrong(
                node,
                "parallel",
                Some(job),
                "a number or a mapping with `matrix`",
            )
        });
    }
    let Some(t) = node.as_text() else {
        return Err(wrong(
            node,
            "parallel",
            Some(job),
            "a number or a mapping with `matrix`",
        ));
    };
    match t.parse::<u32>() {
        Ok(n) if (1..=MAX_PARALLEL).contains(&n) => Ok(Parallel::Count(n)),
        _ => Err(Located::in_job(
            node.line,
            job,
            Problem::ParallelRange {
                value: t.to_owned(),
                limit: MAX_PARALLEL,
            },
        )),
    }
}

/// A `matrix:` list: each entry a mapping of variables to a value or a list of values.
/// The jobs it makes (the sum over entries of the product of their list lengths) are
/// counted here, before anything is expanded.
fn matrix(node: &Node, job: &str) -> Result<Vec<MatrixRow>, Located> {
    const EXPECTED: &str = "a list of mappings of variables to values or lists of values";
    let Kind::Seq(items) = &node.kind else {
        return Err(wrong(node, "parallel:matrix", Some(job), EXPECTED));
    };
    let mut rows = Vec::with_capacity(items.len());
    let mut jobs: u64 = 0;
    for item in items {
        let Some(fields) = item.as_map() else {
            return Err(wrong(item, "parallel:matrix", Some(job), EXPECTED));
        };
        if fields.is_empty() {
            return Err(wrong(item, "parallel:matrix", Some(job), EXPECTED));
        }
        let mut row = Vec::with_capacity(fields.len());
        let mut product: u64 = 1;
        for f in fields {
            check_variable_name(&f.key, f.line, Some(job))?;
            let values: Vec<String> = match &f.value.kind {
                Kind::Scalar { text, .. } => vec![text.clone()],
                Kind::Seq(vs) if !vs.is_empty() => vs
                    .iter()
                    .map(|v| v.as_text().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| wrong(&f.value, "parallel:matrix", Some(job), EXPECTED))?,
                _ => return Err(wrong(&f.value, "parallel:matrix", Some(job), EXPECTED)),
            };
            product = product.saturating_mul(values.len() as u64);
            row.push((f.key.clone(), values));
        }
        jobs = jobs.saturating_add(product);
        if jobs > u64::from(MAX_PARALLEL) {
            return Err(Located::in_job(
                node.line,
                job,
                Problem::MatrixTooLarge {
                    jobs,
                    limit: MAX_PARALLEL,
                },
            ));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(wrong(node, "parallel:matrix", Some(job), EXPECTED));
    }
    Ok(rows)
}

/// A string or a list of strings, lists nested up to GitLab's ten levels flattened.
fn strings(node: &Node, keyword: &str, job: Option<&str>) -> Result<Vec<String>, Located> {
    let mut out = Vec::new();
    flatten(node, keyword, job, 0, &mut out)?;
    Ok(out)
}

fn flatten(
    node: &Node,
    keyword: &str,
    job: Option<&str>,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), Located> {
    match &node.kind {
        Kind::Scalar { text, .. } => out.push(text.clone()),
        Kind::Seq(items) if depth < MAX_SCRIPT_NESTING => {
            for item in items {
                flatten(item, keyword, job, depth + 1, out)?;
            }
        }
        _ => return Err(wrong(node, keyword, job, "a string or a list of strings")),
    }
    Ok(())
}

fn timeout(node: &Node, job: Option<&str>) -> Result<i64, Located> {
    let t = scalar_text(node, "timeout", job)?;
    duration::seconds(&t).ok_or_else(|| Located {
        line: node.line,
        job: job.map(str::to_owned),
        problem: Problem::BadTimeout { text: t },
    })
}

fn check_variable_name(name: &str, line: usize, job: Option<&str>) -> Result<(), Located> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if ok {
        return Ok(());
    }
    Err(Located {
        line,
        job: job.map(str::to_owned),
        problem: Problem::BadVariableName {
            name: name.to_owned(),
        },
    })
}

fn map<'n>(node: &'n Node, keyword: &str, job: Option<&str>) -> Result<&'n [Entry], Located> {
    node.as_map()
        .ok_or_else(|| wrong(node, keyword, job, "a mapping"))
}

fn text<'n>(node: &'n Node, keyword: &str, job: Option<&str>) -> Result<&'n str, Located> {
    node.as_text()
        .ok_or_else(|| wrong(node, keyword, job, "a string"))
}

/// A scalar's text; null is the empty string.
fn scalar_text(node: &Node, keyword: &str, job: Option<&str>) -> Result<String, Located> {
    if node.is_null() {
        return Ok(String::new());
    }
    text(node, keyword, job).map(str::to_owned)
}

fn boolean(node: &Node, keyword: &str, job: Option<&str>) -> Result<bool, Located> {
    node.as_bool()
        .ok_or_else(|| wrong(node, keyword, job, "true or false"))
}

fn wrong(node: &Node, keyword: &str, job: Option<&str>, expected: &'static str) -> Located {
    Located {
        line: node.line,
        job: job.map(str::to_owned),
        problem: Problem::WrongType {
            keyword: keyword.to_owned(),
            expected,
        },
    }
}

/// What leaving out a keyword outside the subset means for the pipeline.
fn effect(keyword: &str) -> &'static str {
    let last = keyword.rsplit(':').next().unwrap_or(keyword);
    match keyword {
        "when:delayed" | "start_in" => "the job runs as `when: on_success`, without the delay",
        "allow_failure:exit_codes" => "any failure fails the job, as with `allow_failure: false`",
        "workflow:rules" => "the pipeline always runs, with every job",
        "workflow:name" => "the pipeline keeps its default name",
        "workflow:auto_cancel:on_job_failure" => {
            "a failed job does not cancel the pipeline's other jobs"
        }
        "needs:project" | "needs:pipeline" | "needs:ref" => {
            "the need on another pipeline's job is dropped"
        }
        "include" => "the included files are not read: their jobs and keywords are missing",
        "spec" => "inputs are not interpolated",
        "types" => "the deprecated `types` is not read as `stages`",
        _ => match last {
            "rules" | "only" | "except" => {
                "the job is always in the pipeline: its conditions are not evaluated"
            }
            "extends" => "the job gets none of the keywords of the jobs it extends",
            "trigger" => {
                "the job is left out of the pipeline; jobs that need it do not wait for it"
            }
            "image" => "the job runs in the runner's own environment, without this image",
            "services" => "the job runs without these services",
            "artifacts" | "dependencies" => "no artifacts are kept or passed between jobs",
            "cache" => "nothing is cached between jobs",
            "environment" | "release" | "pages" => "no deployment or release is recorded",
            "retry" => "a failed job is not retried",
            "coverage" => "no coverage is read from the log",
            "resource_group" => "jobs of the resource group may run at the same time",
            "hooks" | "id_tokens" | "secrets" | "identity" => "the job runs without it",
            "manual_confirmation" => "the manual job is played without a confirmation",
            _ => "not a keyword of the supported subset; ignored",
        },
    }
}
