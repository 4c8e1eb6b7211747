//! Pipelines of the synthetic workload: a template per repository, and the run of one
//! pipeline with GitLab's rules for which jobs run (see [`PipelineConfig`]).

use std::collections::HashMap;

use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{check, draw_run, poisson, Catalog, JobDef, Pending, SyntheticConfig};
use crate::error::DatasetError;
use crate::record::{Outcome, PipelineRef, When};

/// The stages of a template, in order. A pipeline's `stage_index` counts only the
/// stages it has (a pull request's has no `deploy`).
pub const PIPELINE_STAGES: [&str; 6] = ["lint", "build", "test", "integration", "deploy", ".post"];

/// The build matrix's variants, as GitLab names matrix jobs.
pub const BUILD_VARIANTS: [&str; 8] = [
    "build: [linux, amd64]",
    "build: [linux, arm64]",
    "build: [macos, arm64]",
    "build: [windows, amd64]",
    "build: [alpine, amd64]",
    "build: [linux, amd64, race]",
    "build: [linux, 386]",
    "build: [freebsd, amd64]",
];

/// Duration factors (relative to a definition's median) of the template's jobs.
const LINT: f64 = 0.3;
const BUILD: f64 = 1.0;
const TEST: f64 = 1.0;
const INTEGRATION: f64 = 2.0;
const DEPLOY: f64 = 0.7;
const CLEANUP: f64 = 0.1;
const NOTIFY: f64 = 0.05;

/// The `[pipelines]` table of the synthetic workload's configuration.
///
/// With `enabled`, each repository (a share `repo_share` of them) gets a pipeline
/// template, drawn once; every push of it runs a pipeline made from the template.
/// A template has these stages ([`PIPELINE_STAGES`]) and jobs:
///
/// | stage | job | needs | when | may fail |
/// |---|---|---|---|---|
/// | lint | `lint` | none | on_success | with `allow_failure_share` |
/// | build | `build: [os, arch]` × 1..=`max_matrix_width` ([`BUILD_VARIANTS`]) | none | on_success | no |
/// | test | `test` | every build (fan in) | on_success | no |
/// | integration | `integration` (a share `integration_share` of templates) | `test` | on_success | with `allow_failure_share` |
/// | deploy | `deploy` (a share `deploy_share` of templates; on `main` only) | `test` (and `integration`) | manual (a share `manual_deploy_share`) or on_success | manual ones, as GitLab |
/// | .post | `cleanup` (templates with integration tests) | the stage rule | always | no |
/// | .post | `notify-failure` | the stage rule | on_failure | no |
///
/// Which jobs run is decided as GitLab does, from the outcomes drawn for the jobs before
/// them: an on_success job runs when none of the jobs it waits for (its `needs`, or every
/// job of the earlier stages) failed without being allowed to, was cancelled or skipped,
/// or is a manual job that blocks (not allowed to fail) and was not started; otherwise it
/// is recorded `skipped` and never runs. on_failure runs only when one of them failed;
/// always runs whatever they did. A manual job that may run is started with probability
/// `manual_start_share`; otherwise it is recorded `manual`. Skipped and manual jobs have
/// no run time. Jobs other than `deploy` are interruptible (with `interruptible`).
///
/// Pushes: a push to `main` runs one pipeline. A push to a pull-request branch opens the
/// branch (`pr-<n>`, a new `n` each time) and is followed by more pushes to it: 1 +
/// Poisson(`pushes_per_branch_mean` − 1) in all, at exponential gaps of mean
/// `repush_gap_mean_s`, each running a pipeline, so a newer pipeline of the same branch
/// often arrives while the older one runs (supersession is the simulator's to apply; the
/// recorded outcomes are those of each pipeline run alone). A burst's pushes run one
/// pipeline each. Arrival rates are scaled so that `jobs_per_day` still counts jobs,
/// skipped and manual ones included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Pushes run pipelines. Default false: every push submits independent jobs, as
    /// before pipelines existed (the workload is then the same, byte for byte).
    pub enabled: bool,
    /// Share of repositories whose pushes run a pipeline (0..=1); the others submit
    /// independent jobs. Default 1.
    pub repo_share: f64,
    /// A template's build matrix has 1 to this many variants (1..=8). Default 4.
    pub max_matrix_width: u32,
    /// Share of templates with an integration-test stage and a clean-up job (0..=1).
    /// Default 0.5.
    pub integration_share: f64,
    /// Share of templates that deploy from `main` (0..=1). Default 0.5.
    pub deploy_share: f64,
    /// Share of deploying templates whose deploy is manual (0..=1). Default 0.5.
    pub manual_deploy_share: f64,
    /// Share of manual jobs someone starts (0..=1). Default 0.7.
    pub manual_start_share: f64,
    /// Share of templates whose lint and integration tests may fail (0..=1). Default 0.3.
    pub allow_failure_share: f64,
    /// Jobs other than deploys are interruptible. Default true.
    pub interruptible: bool,
    /// Mean number of pushes to a pull-request branch (1..=100). Default 3.
    pub pushes_per_branch_mean: f64,
    /// Mean seconds between two pushes to a pull-request branch (> 0). Default 1,200.
    pub repush_gap_mean_s: f64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            repo_share: 1.0,
            max_matrix_width: 4,
            integration_share: 0.5,
            deploy_share: 0.5,
            manual_deploy_share: 0.5,
            manual_start_share: 0.7,
            allow_failure_share: 0.3,
            interruptible: true,
            pushes_per_branch_mean: 3.0,
            repush_gap_mean_s: 1_200.0,
        }
    }
}

impl PipelineConfig {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks every field; the error names the first bad one (`pipelines.<field>`).
    pub fn validate(&self) -> Result<(), DatasetError> {
        for (field, v) in [
            ("pipelines.repo_share", self.repo_share),
            ("pipelines.integration_share", self.integration_share),
            ("pipelines.deploy_share", self.deploy_share),
            ("pipelines.manual_deploy_share", self.manual_deploy_share),
            ("pipelines.manual_start_share", self.manual_start_share),
            ("pipelines.allow_failure_share", self.allow_failure_share),
        ] {
            check(v.is_finite() && (0.0..=1.0).contains(&v), field, || {
                format!("{v} must be in [0, 1]")
            })?;
        }
        check(
            (1..=BUILD_VARIANTS.len() as u32).contains(&self.max_matrix_width),
            "pipelines.max_matrix_width",
            || {
                format!(
                    "{} must be in 1..={}",
                    self.max_matrix_width,
                    BUILD_VARIANTS.len()
                )
            },
        )?;
        check(
            self.pushes_per_branch_mean.is_finite()
                && (1.0..=100.0).contains(&self.pushes_per_branch_mean),
            "pipelines.pushes_per_branch_mean",
            || format!("{} must be in [1, 100]", self.pushes_per_branch_mean),
        )?;
        check(
            self.repush_gap_mean_s.is_finite() && self.repush_gap_mean_s > 0.0,
            "pipelines.repush_gap_mean_s",
            || format!("{} must be finite and > 0", self.repush_gap_mean_s),
        )
    }
}

/// One job of a template.
struct TemplateJob {
    /// Its definition in the catalog (name, durations, labels).
    def: usize,
    /// Index into [`PIPELINE_STAGES`].
    stage: usize,
    /// Template jobs it needs; `None`: every job of the earlier stages.
    needs: Option<Vec<usize>>,
    when: When,
    allow_failure: bool,
    interruptible: bool,
    /// Only in pipelines of `main`.
    main_only: bool,
}

/// A repository's pipeline template: its jobs in stage order (a job's needs come before
/// it).
pub(super) struct Template {
    jobs: Vec<TemplateJob>,
}

impl Template {
    /// Jobs in a pipeline of `main` (or of another branch).
    fn jobs_on(&self, main: bool) -> usize {
        self.jobs.iter().filter(|j| main || !j.main_only).count()
    }
}

/// The templates of every repository (`None`: the repository submits independent jobs),
/// drawn after the catalog; their jobs' definitions are added to it.
pub(super) fn build_templates(
    cfg: &SyntheticConfig,
    cat: &mut Catalog,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<Option<Template>>>, DatasetError> {
    let pc = &cfg.pipelines;
    let label_pick = WeightedIndex::new(cfg.label_sets.iter().map(|s| s.weight))
        .map_err(|e| DatasetError::config("label_sets", e.to_string()))?;
    let mut out = Vec::with_capacity(cat.tenants.len());
    for t in 0..cat.tenants.len() {
        let mut repos = Vec::with_capacity(cat.tenants[t].repos.len());
        for r in 0..cat.tenants[t].repos.len() {
            if rng.gen::<f64>() >= pc.repo_share {
                repos.push(None);
                continue;
            }
            let may_fail = rng.gen::<f64>() < pc.allow_failure_share;
            let width = rng.gen_range(1..=pc.max_matrix_width as usize);
            let integration = rng.gen::<f64>() < pc.integration_share;
            let deploy = rng.gen::<f64>() < pc.deploy_share;
            let manual = rng.gen::<f64>() < pc.manual_deploy_share;
            let mut jobs: Vec<TemplateJob> = Vec::new();
            let mut add =
                |name: &'static str, factor: f64, stage: usize, needs, rng: &mut ChaCha8Rng| {
                    let mut def = JobDef::draw(cfg, (t, r), name, factor, 1.0, rng);
                    def.label_set = label_pick.sample(rng);
                    cat.defs.push(def);
                    jobs.push(TemplateJob {
                        def: cat.defs.len() - 1,
                        stage,
                        needs,
                        when: When::OnSuccess,
                        allow_failure: false,
                        interruptible: pc.interruptible,
                        main_only: false,
                    });
                    jobs.len() - 1
                };
            let lint = add("lint", LINT, 0, Some(vec![]), rng);
            let builds: Vec<usize> = BUILD_VARIANTS[..width]
                .iter()
                .map(|&v| add(v, BUILD, 1, Some(vec![]), rng))
                .collect();
            let test = add("test", TEST, 2, Some(builds), rng);
            let mut last = vec![test];
            let mut flaky = vec![lint];
            if integration {
                let i = add("integration", INTEGRATION, 3, Some(vec![test]), rng);
                flaky.push(i);
                last.push(i);
            }
            let deploy_job = deploy.then(|| add("deploy", DEPLOY, 4, Some(last), rng));
            let cleanup = integration.then(|| add("cleanup", CLEANUP, 5, None, rng));
            let notify = add("notify-failure", NOTIFY, 5, None, rng);
            for i in flaky {
                jobs[i].allow_failure = may_fail;
            }
            if let Some(d) = deploy_job {
                let job = &mut jobs[d];
                job.main_only = true;
                job.interruptible = false;
                if manual {
                    job.when = When::Manual;
                    job.allow_failure = true;
                }
            }
            if let Some(c) = cleanup {
                jobs[c].when = When::Always;
            }
            jobs[notify].when = When::OnFailure;
            repos.push(Some(Template { jobs }));
        }
        out.push(repos);
    }
    Ok(out)
}

/// Expected jobs one arrival (a push, with the pushes that follow it on a pull-request
/// branch) of repository `(t, r)` submits.
pub(super) fn jobs_per_arrival(
    cfg: &SyntheticConfig,
    cat: &Catalog,
    templates: &[Vec<Option<Template>>],
    (t, r): (usize, usize),
) -> f64 {
    match templates
        .get(t)
        .and_then(|repos| repos.get(r))
        .and_then(Option::as_ref)
    {
        Some(tpl) => {
            let main = cfg.main_branch_share;
            main * tpl.jobs_on(true) as f64
                + (1.0 - main) * cfg.pipelines.pushes_per_branch_mean * tpl.jobs_on(false) as f64
        }
        None => cat.tenants[t].repos[r]
            .defs
            .iter()
            .map(|&d| cat.defs[d].p)
            .sum(),
    }
}

/// Where a pending job sits: its pipeline (numbered in creation order), its template job
/// and its stage index in that pipeline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pipeline: u32,
    job: u16,
    stage: u8,
}

/// Runs pipelines: counts pipelines and pull-request branches.
pub(super) struct Runner<'a> {
    cfg: &'a SyntheticConfig,
    cat: &'a Catalog,
    qos: &'a WeightedIndex<f64>,
    horizon: i64,
    pipelines: u32,
    branches: u32,
}

impl<'a> Runner<'a> {
    pub(super) fn new(
        cfg: &'a SyntheticConfig,
        cat: &'a Catalog,
        qos: &'a WeightedIndex<f64>,
    ) -> Self {
        Self {
            cfg,
            cat,
            qos,
            horizon: cfg.horizon_s(),
            pipelines: 0,
            branches: 0,
        }
    }

    /// One arrival at `t`: a push to `main`, or a pull-request branch and its pushes (a
    /// burst's push runs a single pipeline). Returns the jobs submitted.
    pub(super) fn push(
        &mut self,
        t: i64,
        tpl: &Template,
        burst: bool,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<Pending>,
    ) -> u64 {
        if rng.gen::<f64>() < self.cfg.main_branch_share {
            return self.run(t, tpl, 0, rng, out);
        }
        self.branches += 1;
        let branch = self.branches;
        if burst {
            return self.run(t, tpl, branch, rng, out);
        }
        let pushes = 1 + poisson(self.cfg.pipelines.pushes_per_branch_mean - 1.0, rng);
        let mut at = t as f64;
        let mut n = 0;
        for _ in 0..pushes {
            if at >= self.horizon as f64 {
                break;
            }
            n += self.run(at as i64, tpl, branch, rng, out);
            let u: f64 = rng.gen();
            at += -self.cfg.pipelines.repush_gap_mean_s * (1.0 - u).ln();
        }
        n
    }

    /// One pipeline of `tpl` on `branch` (0 = main) created at `t`, its outcomes decided
    /// as the module docs say. Returns the jobs submitted.
    fn run(
        &mut self,
        t: i64,
        tpl: &Template,
        branch: u32,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<Pending>,
    ) -> u64 {
        let main = branch == 0;
        let pipeline = self.pipelines;
        self.pipelines += 1;
        let qos = self.qos.sample(rng) as u16;
        let present: Vec<bool> = tpl.jobs.iter().map(|j| main || !j.main_only).collect();
        // Stage indexes counting only the stages this pipeline has.
        let mut has_stage = [false; PIPELINE_STAGES.len()];
        for (j, _) in tpl.jobs.iter().zip(&present).filter(|(_, p)| **p) {
            has_stage[j.stage] = true;
        }
        let stage_index = |s: usize| has_stage[..s].iter().filter(|h| **h).count() as u8;
        let mut outcome: Vec<Option<Outcome>> = vec![None; tpl.jobs.len()];
        let first = out.len();
        for (i, job) in tpl.jobs.iter().enumerate() {
            if !present[i] {
                continue;
            }
            let waits_for: Vec<usize> = match &job.needs {
                Some(needs) => needs.clone(),
                None => (0..i)
                    .filter(|&k| present[k] && tpl.jobs[k].stage < job.stage)
                    .collect(),
            };
            let (mut blocked, mut failed) = (false, false);
            for &k in &waits_for {
                let before = &tpl.jobs[k];
                match outcome[k] {
                    Some(Outcome::Failure) if !before.allow_failure => {
                        blocked = true;
                        failed = true;
                    }
                    Some(Outcome::Cancelled | Outcome::Skipped) => blocked = true,
                    Some(Outcome::Manual) if !before.allow_failure => blocked = true,
                    _ => {}
                }
            }
            let runs = match job.when {
                When::OnSuccess => !blocked,
                When::OnFailure => failed,
                When::Always => true,
                When::Manual => {
                    !blocked && rng.gen::<f64>() < self.cfg.pipelines.manual_start_share
                }
            };
            let (run, result) = if runs {
                draw_run(self.cfg, &self.cat.defs[job.def], rng)
            } else if job.when == When::Manual && !blocked {
                (0, Outcome::Manual)
            } else {
                (0, Outcome::Skipped)
            };
            outcome[i] = Some(result);
            out.push(Pending {
                submit: t,
                def: job.def as u32,
                branch,
                run,
                outcome: result,
                qos,
                pipeline: Some(Place {
                    pipeline,
                    job: i as u16,
                    stage: stage_index(job.stage),
                }),
            });
        }
        (out.len() - first) as u64
    }
}

/// Names pipelines `p0000001`, ... in the order their first jobs come.
#[derive(Debug, Default)]
pub(super) struct Names {
    ids: HashMap<u32, String>,
}

impl Names {
    /// The [`PipelineRef`] of a pending job of definition `def` at `place`.
    pub(super) fn pipeline_ref(
        &mut self,
        place: Place,
        created_s: i64,
        templates: &[Vec<Option<Template>>],
        cat: &Catalog,
        def: &JobDef,
    ) -> Option<PipelineRef> {
        let next = self.ids.len() + 1;
        let id = self
            .ids
            .entry(place.pipeline)
            .or_insert_with(|| format!("p{next:07}"))
            .clone();
        let tpl = templates.get(def.tenant)?.get(def.project)?.as_ref()?;
        let job = tpl.jobs.get(usize::from(place.job))?;
        let mut p = PipelineRef::new(
            id,
            created_s,
            PIPELINE_STAGES[job.stage],
            u32::from(place.stage),
        );
        p.needs = job.needs.as_ref().map(|needs| {
            needs
                .iter()
                .map(|&k| cat.defs[tpl.jobs[k].def].name.to_string())
                .collect()
        });
        p.when = job.when;
        p.allow_failure = job.allow_failure;
        p.interruptible = job.interruptible;
        Some(p)
    }
}
