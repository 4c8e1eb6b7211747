//! From job templates to the pipeline's jobs: `parallel` expanded into instances with
//! GitLab's names and variables, stages numbered, `needs` resolved to instance names,
//! and the DAG checked by the scheduling core's own rules.

use std::collections::{HashMap, HashSet};

use rustci_scheduler::domain::{
    HistoryKeys, JobId, JobSpec, LabelSet, PipelineId, QosId, TenantId,
};
use rustci_scheduler::{AutoCancel, CoreError, PipelineJob, PipelineSpec};

use super::error::{Located, Problem};
use super::gitlab::{Document, MatrixRow, Need, Parallel, Template};
use super::{shell, JobDef, Unsupported, Variable, MAX_PIPELINE_JOBS};

/// One job of the pipeline before its needs are resolved.
struct Instance<'t> {
    template: &'t Template,
    name: String,
    stage_index: u32,
    /// The values of its `parallel: matrix` row.
    matrix: Vec<(String, String)>,
    /// `CI_NODE_INDEX` and `CI_NODE_TOTAL` for parallel jobs.
    node: Option<(usize, usize)>,
}

pub(super) fn jobs(
    doc: &Document,
    warnings: &mut Vec<Unsupported>,
) -> Result<Vec<JobDef>, Located> {
    let stage_of: HashMap<&str, u32> = doc
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as u32))
        .collect();

    let mut instances: Vec<Instance> = Vec::new();
    // Instance name -> its index; base name -> the indices of a parallel job's instances.
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut left_out: HashMap<&str, usize> = HashMap::new();
    for t in &doc.jobs {
        if t.left_out {
            left_out.insert(&t.name, t.line);
            continue;
        }
        let (stage, stage_line) = &t.stage;
        let Some(&stage_index) = stage_of.get(stage.as_str()) else {
            return Err(Located::in_job(
                *stage_line,
                &t.name,
                Problem::UnknownStage {
                    stage: stage.clone(),
                    stages: doc.stages.clone(),
                },
            ));
        };
        let first = instances.len();
        for (name, matrix, node) in expand(t) {
            if instances.len() >= MAX_PIPELINE_JOBS {
                let more: usize = doc
                    .jobs
                    .iter()
                    .filter(|t| !t.left_out)
                    .map(|t| count(&t.parallel))
                    .sum();
                return Err(Located::in_job(
                    t.line,
                    &t.name,
                    Problem::TooManyJobs {
                        jobs: more,
                        limit: MAX_PIPELINE_JOBS,
                    },
                ));
            }
            if let Some(&other) = by_name.get(&name) {
                return Err(Located::in_job(
                    t.line,
                    &name,
                    Problem::DuplicateJob {
                        job: name.clone(),
                        first_line: instances[other].template.line,
                    },
                ));
            }
            by_name.insert(name.clone(), instances.len());
            instances.push(Instance {
                template: t,
                name,
                stage_index,
                matrix,
                node,
            });
        }
        if !matches!(t.parallel, Parallel::One) {
            by_base.insert(&t.name, (first..instances.len()).collect());
        }
    }
    if instances.is_empty() {
        let line = doc.jobs.first().map_or(1, |t| t.line);
        return Err(Located::at(line, Problem::NoJobs));
    }
    let last = doc.stages.len() as u32 - 1;
    if instances
        .iter()
        .all(|i| i.stage_index == 0 || i.stage_index == last)
    {
        return Err(Located::at(
            instances[0].template.line,
            Problem::OnlyPrePost,
        ));
    }

    let names = Names {
        instances: &instances,
        by_name: &by_name,
        by_base: &by_base,
        left_out: &left_out,
    };
    let mut jobs = Vec::with_capacity(instances.len());
    for inst in &instances {
        let needs = match &inst.template.needs {
            None => None,
            Some(list) => Some(names.resolve(inst, list, warnings)?),
        };
        jobs.push(job_def(inst, &doc.stages, needs));
    }
    core_check(&jobs)?;
    Ok(jobs)
}

/// The instances of a template.
/// An instance's name, matrix values, and node index and total.
type Made = (String, Vec<(String, String)>, Option<(usize, usize)>);

fn expand(t: &Template) -> Vec<Made> {
    match &t.parallel {
        Parallel::One => vec![(t.name.clone(), Vec::new(), None)],
        Parallel::Count(n) => {
            let n = *n as usize;
            (1..=n)
                .map(|i| (format!("{} {i}/{n}", t.name), Vec::new(), Some((i, n))))
                .collect()
        }
        Parallel::Matrix(rows) => {
            let combos: Vec<Vec<(String, String)>> = rows.iter().flat_map(product).collect();
            let total = combos.len();
            combos
                .into_iter()
                .enumerate()
                .map(|(i, combo)| (matrix_name(&t.name, &combo), combo, Some((i + 1, total))))
                .collect()
        }
    }
}

fn count(p: &Parallel) -> usize {
    match p {
        Parallel::One => 1,
        Parallel::Count(n) => *n as usize,
        Parallel::Matrix(rows) => rows
            .iter()
            .map(|r| r.iter().map(|(_, v)| v.len()).product::<usize>())
            .sum(),
    }
}

/// Every combination of a row's values, the first variable varying slowest (GitLab's
/// order).
fn product(row: &MatrixRow) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (var, values) in row {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((var.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    out
}

/// GitLab's name for a matrix instance: `build: [linux, amd64]`.
fn matrix_name(base: &str, combo: &[(String, String)]) -> String {
    let values: Vec<&str> = combo.iter().map(|(_, v)| v.as_str()).collect();
    format!("{base}: [{}]", values.join(", "))
}

struct Names<'a, 't> {
    instances: &'a [Instance<'t>],
    by_name: &'a HashMap<String, usize>,
    by_base: &'a HashMap<&'t str, Vec<usize>>,
    left_out: &'a HashMap<&'t str, usize>,
}

impl Names<'_, '_> {
    /// A job's `needs:` as instance names, in order, each once.
    fn resolve(
        &self,
        inst: &Instance,
        list: &[Need],
        warnings: &mut Vec<Unsupported>,
    ) -> Result<Vec<String>, Located> {
        let mut out: Vec<usize> = Vec::with_capacity(list.len());
        let mut seen: HashSet<usize> = HashSet::with_capacity(list.len());
        for need in list {
            let found = self.find(inst, need)?;
            let Some(found) = found else {
                if self.left_out.contains_key(need.job.as_str()) {
                    warnings.push(Unsupported {
                        keyword: "needs".to_owned(),
                        job: Some(inst.name.clone()),
                        line: need.line,
                        effect: "the need on a `trigger` job, which is left out, is dropped",
                    });
                }
                continue;
            };
            for i in found {
                let target = &self.instances[i];
                if target.stage_index > inst.stage_index {
                    return Err(Located::in_job(
                        need.line,
                        &inst.name,
                        Problem::NeedOnLaterStage {
                            stage: inst.template.stage.0.clone(),
                            need: target.name.clone(),
                            need_stage: target.template.stage.0.clone(),
                        },
                    ));
                }
                if target.name == inst.name {
                    return Err(Located::in_job(need.line, &inst.name, Problem::NeedsItself));
                }
                if seen.insert(i) {
                    out.push(i);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|i| self.instances[i].name.clone())
            .collect())
    }

    /// The instances a need names; `None` for an optional need on a job that is not in
    /// the pipeline, or a need on a left-out job.
    fn find(&self, inst: &Instance, need: &Need) -> Result<Option<Vec<usize>>, Located> {
        let unknown = |name: String| {
            Located::in_job(need.line, &inst.name, Problem::UnknownNeed { need: name })
        };
        let Some(rows) = &need.matrix else {
            if let Some(all) = self.by_base.get(need.job.as_str()) {
                return Ok(Some(all.clone()));
            }
            if let Some(&i) = self.by_name.get(&need.job) {
                return Ok(Some(vec![i]));
            }
            if need.optional || self.left_out.contains_key(need.job.as_str()) {
                return Ok(None);
            }
            return Err(unknown(need.job.clone()));
        };
        let Some(all) = self.by_base.get(need.job.as_str()) else {
            if self.left_out.contains_key(need.job.as_str()) {
                return Ok(None);
            }
            // Not a parallel job: `needs: parallel: matrix` selects nothing of it; the
            // message names the first instance asked for.
            if need.optional {
                return Ok(None);
            }
            let first = rows
                .first()
                .map(|row| substitute(row, inst, need))
                .transpose()?
                .and_then(|row| product(&row).into_iter().next())
                .unwrap_or_default();
            return Err(unknown(matrix_name(&need.job, &first)));
        };
        let mut out = Vec::new();
        for row in rows {
            let row = substitute(row, inst, need)?;
            for combo in product(&row) {
                let mut matched = false;
                for &i in all {
                    let values = &self.instances[i].matrix;
                    if combo.iter().all(|c| values.contains(c)) {
                        matched = true;
                        out.push(i);
                    }
                }
                if !matched && !need.optional {
                    return Err(unknown(matrix_name(&need.job, &combo)));
                }
            }
        }
        Ok(Some(out))
    }
}

/// GitLab's matrix expressions in `needs: parallel: matrix`: `$[[ matrix.NAME ]]` is
/// the value of the needing job's own matrix variable NAME (a 1:1 mapping between two
/// matrix jobs).
fn substitute(row: &MatrixRow, inst: &Instance, need: &Need) -> Result<MatrixRow, Located> {
    row.iter()
        .map(|(var, values)| {
            let values = values
                .iter()
                .map(|v| expression(v, inst, need.line))
                .collect::<Result<_, _>>()?;
            Ok((var.clone(), values))
        })
        .collect()
}

fn expression(value: &str, inst: &Instance, line: usize) -> Result<String, Located> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("$[[") {
        let Some(len) = rest[start..].find("]]") else {
            break;
        };
        let inner = rest[start + 3..start + len].trim();
        let Some(name) = inner.strip_prefix("matrix.") else {
            break;
        };
        let name = name.trim();
        let Some((_, v)) = inst.matrix.iter().find(|(k, _)| k == name) else {
            return Err(Located::in_job(
                line,
                &inst.name,
                Problem::UnknownMatrixVariable {
                    name: name.to_owned(),
                },
            ));
        };
        out.push_str(&rest[..start]);
        out.push_str(v);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn job_def(inst: &Instance, stages: &[String], needs: Option<Vec<String>>) -> JobDef {
    let t = inst.template;
    let mut variables: Vec<Variable> =
        Vec::with_capacity(t.variables.len() + inst.matrix.len() + 2);
    let mut set = |v: Variable| match variables.iter_mut().find(|o| o.name == v.name) {
        Some(old) => *old = v,
        None => variables.push(v),
    };
    for v in &t.variables {
        set(v.clone());
    }
    for (name, value) in &inst.matrix {
        // Matrix values are taken as written: GitLab does not expand them.
        set(Variable::new(name, value, false));
    }
    if let Some((index, total)) = inst.node {
        set(Variable::new("CI_NODE_INDEX", &index.to_string(), false));
        set(Variable::new("CI_NODE_TOTAL", &total.to_string(), false));
    }
    JobDef {
        name: inst.name.clone(),
        stage: stages[inst.stage_index as usize].clone(),
        stage_index: inst.stage_index,
        needs,
        command: shell::compose(&t.before, &t.script, &t.after),
        labels: t
            .tags
            .iter()
            .map(|tag| with_variables(tag, &variables))
            .collect(),
        variables,
        when: t.when,
        allow_failure: t.allow_failure,
        interruptible: t.interruptible,
        timeout_s: t.timeout_s,
        line: t.line,
    }
}

/// A tag with the job's variables in it replaced (`tags: [$ARCH]` on a matrix job
/// selects a runner per instance, as GitLab documents for `parallel: matrix`).
/// References to variables the job does not have stay as written.
fn with_variables(text: &str, variables: &[Variable]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match variables
            .iter()
            .find(|v| !name.is_empty() && v.name == name)
        {
            Some(v) => {
                out.push_str(&v.value);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The core's own checks of a pipeline's DAG (`PipelineSpec::check`), so that a file this
/// reader accepts is one the core accepts; the cycle check is the one not made above.
fn core_check(jobs: &[JobDef]) -> Result<(), Located> {
    let spec = PipelineSpec {
        id: PipelineId(0),
        group: None,
        auto_cancel: AutoCancel::default(),
        jobs: jobs
            .iter()
            .enumerate()
            .map(|(i, j)| PipelineJob {
                name: j.name.clone(),
                stage: j.stage_index,
                needs: j.needs.clone(),
                when: j.when,
                allow_failure: j.allow_failure,
                interruptible: j.interruptible,
                spec: JobSpec {
                    id: JobId(i as u64),
                    tenant: TenantId(0),
                    qos: QosId(0),
                    priority: 0,
                    labels: LabelSet::EMPTY,
                    slots: 1,
                    requested_ms: None,
                    submit_ms: 0,
                    history: HistoryKeys::default(),
                },
            })
            .collect(),
    };
    let line_of = |name: &str| jobs.iter().find(|j| j.name == name).map_or(1, |j| j.line);
    match spec.check() {
        Ok(_) => Ok(()),
        Err(CoreError::NeedCycle { job, cycle, .. }) => Err(Located::in_job(
            line_of(&job),
            &job,
            Problem::NeedCycle { cycle },
        )),
        Err(e) => Err(Located::at(1, Problem::Core(e))),
    }
}
