//! Training: a linear model (linfa) and a random forest (smartcore) on log run time,
//! blended and scaled on a later calibration slice, an upper quantile from that slice's
//! residuals (split conformal), and a failure-probability classifier (smartcore).
//!
//! Chronology: the first `1 - calibration_fraction` of the rows (submit order) fit the
//! models; the rest, which comes later in time, chooses the blend and the quantile. No
//! row ever helps predict an earlier one.

use linfa::traits::Fit;
use linfa::Dataset;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use crate::calibration::online_margins;
use crate::dataset::Prepared;
use crate::error::ModelError;
use crate::eval::coverage;
use crate::features::Baseline;
use crate::forest::FlatForest;

/// Training knobs as a user gives them; [`TrainParams::check`] turns them into a
/// [`TrainConfig`] once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainParams {
    pub trees: usize,
    pub max_depth: u16,
    pub min_samples_leaf: usize,
    /// The forest is fitted on at most this many of the most recent fitting rows.
    pub max_forest_rows: usize,
    /// The linear model likewise.
    pub max_linear_rows: usize,
    /// Share of the (latest) rows kept for calibration.
    pub calibration_fraction: f64,
    /// The upper quantile reported beside the point estimate (0.9 = P90).
    pub upper_quantile: f64,
    /// The scale the models learn on.
    pub target: Target,
    pub seed: u64,
}

/// The scale on which the linear model and the forest learn their correction to the
/// last-5 median. The square root weighs long jobs more than the log does, which suits
/// errors counted in seconds; the log suits relative errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Log,
    Sqrt,
}

impl Target {
    /// Every scale, the default first.
    pub const ALL: [Target; 2] = [Target::Sqrt, Target::Log];

    pub fn name(self) -> &'static str {
        match self {
            Target::Log => "log",
            Target::Sqrt => "sqrt",
        }
    }

    pub fn forward(self, seconds: f64) -> f64 {
        match self {
            Target::Log => seconds.max(0.0).ln_1p(),
            Target::Sqrt => seconds.max(0.0).sqrt(),
        }
    }
    pub fn inverse(self, z: f64) -> f64 {
        match self {
            Target::Log => z.max(0.0).exp_m1(),
            Target::Sqrt => z.max(0.0).powi(2),
        }
    }
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            trees: 24,
            max_depth: 12,
            min_samples_leaf: 4,
            max_forest_rows: 40_000,
            max_linear_rows: 200_000,
            calibration_fraction: 0.2,
            upper_quantile: 0.9,
            target: Target::Sqrt,
            seed: 7,
        }
    }
}

/// Checked training parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig(TrainParams);

impl TrainParams {
    pub fn check(self) -> Result<TrainConfig, ModelError> {
        let bad = |name, reason: &str| {
            Err(ModelError::InvalidParameter {
                name,
                reason: reason.to_string(),
            })
        };
        if self.trees == 0 || self.trees > 1000 {
            return bad("trees", "must be 1..=1000");
        }
        if self.max_depth == 0 || self.max_depth > 64 {
            return bad("max_depth", "must be 1..=64");
        }
        if self.min_samples_leaf == 0 {
            return bad("min_samples_leaf", "must be at least 1");
        }
        if self.max_forest_rows < 10 || self.max_linear_rows < 10 {
            return bad("max_forest_rows", "row caps must be at least 10");
        }
        if !(0.05..=0.5).contains(&self.calibration_fraction) {
            return bad("calibration_fraction", "must be in 0.05..=0.5");
        }
        if !(0.5..1.0).contains(&self.upper_quantile) {
            return bad("upper_quantile", "must be in 0.5..1");
        }
        Ok(TrainConfig(self))
    }
}

/// Standardised linear model: `intercept + sum(coef * (x - mean) / scale)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearPart {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub coef: Vec<f64>,
    pub intercept: f64,
}

impl LinearPart {
    fn standardise(x: &[f64], rows: &[usize], width: usize) -> (Vec<f64>, Vec<f64>) {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0; width];
        for &r in rows {
            for (m, v) in mean.iter_mut().zip(&x[r * width..(r + 1) * width]) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; width];
        for &r in rows {
            for ((s, v), m) in var
                .iter_mut()
                .zip(&x[r * width..(r + 1) * width])
                .zip(&mean)
            {
                *s += (v - m) * (v - m);
            }
        }
        // A constant column gets scale 0 and no coefficient (it would make the least
        // squares problem singular).
        let scale = var
            .into_iter()
            .map(|v| {
                let s = (v / n).sqrt();
                if s > 1e-9 {
                    s
                } else {
                    0.0
                }
            })
            .collect();
        (mean, scale)
    }

    fn design(&self, x: &[f64], rows: &[usize], width: usize) -> (Array2<f64>, Vec<usize>) {
        let used: Vec<usize> = (0..width).filter(|&c| self.scale[c] > 0.0).collect();
        let mut a = Array2::zeros((rows.len(), used.len()));
        for (i, &r) in rows.iter().enumerate() {
            let row = &x[r * width..(r + 1) * width];
            for (j, &c) in used.iter().enumerate() {
                a[[i, j]] = (row[c] - self.mean[c]) / self.scale[c];
            }
        }
        (a, used)
    }

    pub fn raw(&self, row: &[f64]) -> f64 {
        let mut z = self.intercept;
        for (((v, m), s), c) in row.iter().zip(&self.mean).zip(&self.scale).zip(&self.coef) {
            if *s > 0.0 {
                z += c * (v - m) / s;
            }
        }
        z
    }
}

/// The smartcore forest, serialisable.
pub type Forest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// A trained run-time model (and failure classifier). Predictions are on ln(1 + seconds).
#[derive(Debug, Serialize, Deserialize)]
pub struct RunTimeModel {
    pub names: Vec<String>,
    pub extras: Vec<String>,
    /// Per feature: the training median that replaces a missing value.
    pub impute: Vec<f64>,
    pub linear: Option<LinearPart>,
    /// The smartcore forest, copied into flat arrays for fast inference.
    pub forest: Option<FlatForest>,
    /// Estimates never exceed the request (jobs in the training history rarely ran
    /// past theirs; on some SWF logs a third of the jobs did).
    pub cap_at_request: bool,
    /// Weight of the forest in the blend (log space); the linear model gets the rest.
    pub forest_weight: f64,
    /// Weights of the [`stack_inputs`] (blend, last-5 median, Tsafrir, branch median,
    /// keyed weighted median) in the point estimate (seconds).
    pub stack: [f64; STACK],
    /// Log-space margin of the upper quantile, by runs of the same job seen before:
    /// none, 1-4, 5 or more.
    pub upper_margin: [f64; 3],
    pub upper_quantile: f64,
    /// Whether keys with enough finished jobs use their own margin
    /// ([`crate::calibration`]) instead of `upper_margin`: chosen on the calibration
    /// slice, where the per-key margins must not under-cover. (On HPC logs a user's jobs
    /// that finish before the next submit are the short ones, so a key's residuals
    /// understate its spread: HPC2N covered 74%.)
    pub per_key_upper: bool,
    /// ln(1 + largest run time seen in training): predictions are clamped to twice it.
    pub max_log_run: f64,
    /// The largest training run time on the target scale.
    pub max_target: f64,
    pub target: Target,
    pub failure: Option<LinearPart>,
    /// What training left out and why (a model that could not be fitted, ...).
    pub notes: Vec<String>,
}

/// Inputs of the stack: the blend, the last-5 median, Tsafrir's value, the branch's
/// last-5 median, the keyed weighted median (`Baseline::keyed_s`). (The request is a
/// feature of the models but not a stack input: its weight, fitted on the calibration
/// slice, did not carry over to later jobs on HPC2N.)
pub const STACK: usize = 5;

/// What the linear model and the forest correct (see `Baseline::last5_s`). The keyed
/// median as anchor was measured: TravisTorrent 403 s instead of 405, GitHub Actions
/// 2,841 instead of 2,831, SWF logs mixed (KTH better, LANL and CTC worse); not worth
/// a second anchor.
fn anchor_s(base: &Baseline) -> f64 {
    base.last5_s
}

fn stack_inputs(blend_s: f64, base: &Baseline) -> [f64; STACK] {
    [
        blend_s,
        base.last5_s,
        base.tsafrir_s,
        base.branch_s,
        base.keyed_s,
    ]
}

/// Non-negative weights minimising the absolute error of `sum(w_k * columns[k]) - y`:
/// iteratively reweighted least squares, dropping the most negative weight until none is.
fn lad_nonnegative(columns: &[Vec<f64>], y: &[f64]) -> [f64; STACK] {
    let k = columns.len();
    let n = y.len();
    let mut active: Vec<usize> = (0..k).collect();
    // Columns are scaled to mean 1 so that the normal equations stay well conditioned.
    let norm: Vec<f64> = columns
        .iter()
        .map(|c| (c.iter().sum::<f64>() / n.max(1) as f64).max(1e-9))
        .collect();
    loop {
        let m = active.len();
        let mut b = vec![0.0; m];
        let mut d = vec![1.0; n];
        for _ in 0..40 {
            let mut a = vec![vec![0.0; m + 1]; m];
            for i in 0..n {
                for (p, &cp) in active.iter().enumerate() {
                    let xp = columns[cp][i] / norm[cp];
                    for (q, &cq) in active.iter().enumerate() {
                        a[p][q] += d[i] * xp * columns[cq][i] / norm[cq];
                    }
                    a[p][m] += d[i] * xp * y[i];
                }
            }
            for (p, row) in a.iter_mut().enumerate() {
                row[p] += 1e-6 * (1.0 + row[p]);
            }
            match solve(a) {
                Some(sol) => b = sol,
                None => break,
            }
            for (i, di) in d.iter_mut().enumerate() {
                let fit: f64 = active
                    .iter()
                    .zip(&b)
                    .map(|(&c, w)| w * columns[c][i] / norm[c])
                    .sum();
                *di = 1.0 / (y[i] - fit).abs().max(1.0);
            }
        }
        let worst = b
            .iter()
            .enumerate()
            .filter(|(_, w)| **w < 0.0)
            .min_by(|x, y| x.1.total_cmp(y.1))
            .map(|(i, _)| i);
        match worst {
            Some(i) if m > 1 => {
                active.remove(i);
            }
            _ => {
                let mut out = [0.0; STACK];
                for (&c, w) in active.iter().zip(&b) {
                    out[c] = (w / norm[c]).max(0.0);
                }
                if out.iter().all(|w| *w == 0.0) {
                    out[0] = 1.0;
                }
                return out;
            }
        }
    }
}

/// Gaussian elimination with partial pivoting on an augmented `m x (m + 1)` matrix.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let m = a.len();
    for col in 0..m {
        let pivot = (col..m).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for row in a.iter_mut().skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                *v -= f * p;
            }
        }
    }
    let mut x = vec![0.0; m];
    for row in (0..m).rev() {
        let s: f64 = (row + 1..m).map(|c| a[row][c] * x[c]).sum();
        x[row] = (a[row][m] - s) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// How far below the target quantile the per-key margins may cover on the calibration
/// slice and still be used.
const PER_KEY_SLACK: f64 = 0.02;

fn bucket(same_job_runs: u64) -> usize {
    match same_job_runs {
        0 => 0,
        1..=4 => 1,
        _ => 2,
    }
}

/// The split-conformal `q` quantile of `v` (sorted in place): its ceil((n + 1) q)-th
/// smallest value, clamped to n; 0 when empty.
pub(crate) fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    // Split-conformal rank: ceil((n + 1) q), clamped to n.
    let k = (((v.len() + 1) as f64 * q).ceil() as usize).clamp(1, v.len());
    v[k - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl TrainConfig {
    pub fn params(&self) -> &TrainParams {
        &self.0
    }

    /// The same parameters learning on another scale (every scale is valid).
    pub fn with_target(self, target: Target) -> Self {
        Self(TrainParams { target, ..self.0 })
    }

    /// Trains on `rows` of `data` (indices in submit order).
    pub fn fit(
        &self,
        data: &Prepared,
        rows: std::ops::Range<usize>,
    ) -> Result<RunTimeModel, ModelError> {
        let p = &self.0;
        let width = data.width();
        let n = rows.len();
        if n < 20 {
            return Err(ModelError::NotEnoughData(format!(
                "{n} jobs with a run time; at least 20 are needed"
            )));
        }
        let cal_n = ((n as f64 * p.calibration_fraction) as usize).max(5);
        let fit_rows: Vec<usize> = (rows.start..rows.end - cal_n).collect();
        let cal_rows: Vec<usize> = (rows.end - cal_n..rows.end).collect();
        let mut notes = Vec::new();

        // Missing values -> training medians.
        let impute: Vec<f64> = (0..width)
            .map(|c| {
                let v: Vec<f64> = fit_rows
                    .iter()
                    .map(|&r| data.x[r * width + c])
                    .filter(|v| v.is_finite())
                    .collect();
                if v.is_empty() {
                    0.0
                } else {
                    median(v)
                }
            })
            .collect();
        let mut x = data.x.clone();
        for (i, v) in x.iter_mut().enumerate() {
            if !v.is_finite() {
                *v = impute[i % width];
            }
        }
        let y: Vec<f64> = data.run_s.iter().map(|s| s.max(0.0).ln_1p()).collect();
        let ty: Vec<f64> = data.run_s.iter().map(|&s| p.target.forward(s)).collect();
        let max_log_run = fit_rows.iter().map(|&r| y[r]).fold(0.0, f64::max);
        let max_target = p.target.forward(max_log_run.exp_m1());
        // Targets are corrections to the last-5 median (see `Baseline`), on the log scale.
        let anchor: Vec<f64> = (0..data.rows())
            .map(|r| p.target.forward(anchor_s(&data.baseline(r))))
            .collect();

        // Rows for a capped fit: the most recent ones. (Rows spread evenly over the
        // period were tried: better on TravisTorrent's forest, worse P90 coverage on
        // SDSC-BLUE, where the workload drifts.)
        let recent =
            |cap: usize| -> Vec<usize> { fit_rows[fit_rows.len().saturating_sub(cap)..].to_vec() };

        // Linear model (linfa, ordinary least squares on standardised features).
        let linear = {
            let lr = recent(p.max_linear_rows);
            let (mean, scale) = LinearPart::standardise(&x, &lr, width);
            let mut part = LinearPart {
                mean,
                scale,
                coef: vec![0.0; width],
                intercept: 0.0,
            };
            let (a, used) = part.design(&x, &lr, width);
            let t = Array1::from_iter(lr.iter().map(|&r| ty[r] - anchor[r]));
            match LinearRegression::new().fit(&Dataset::new(a, t)) {
                Ok(fitted) if fitted.params().iter().all(|c| c.is_finite()) => {
                    for (j, &c) in used.iter().enumerate() {
                        part.coef[c] = fitted.params()[j];
                    }
                    part.intercept = fitted.intercept();
                    Some(part)
                }
                Ok(_) => {
                    notes.push("linear model: non-finite coefficients, left out".to_string());
                    None
                }
                Err(e) => {
                    notes.push(format!("linear model: {e}, left out"));
                    None
                }
            }
        };

        // Random forest (smartcore) on the most recent rows.
        let forest = {
            let fr = recent(p.max_forest_rows);
            let mut flat = Vec::with_capacity(fr.len() * width);
            for &r in &fr {
                flat.extend_from_slice(&x[r * width..(r + 1) * width]);
            }
            let t: Vec<f64> = fr.iter().map(|&r| ty[r] - anchor[r]).collect();
            let m = DenseMatrix::new(fr.len(), width, flat, false).map_err(|e| {
                ModelError::Training {
                    model: "random forest",
                    reason: e.to_string(),
                }
            })?;
            let params = RandomForestRegressorParameters::default()
                .with_n_trees(p.trees)
                .with_max_depth(p.max_depth)
                .with_min_samples_leaf(p.min_samples_leaf)
                .with_m((width / 3).max(1))
                .with_seed(p.seed);
            match RandomForestRegressor::fit(&m, &t, params)
                .map_err(|e| e.to_string())
                .and_then(|f| FlatForest::from_smartcore(&f, width).map_err(|e| e.to_string()))
            {
                Ok(f) => Some(f),
                Err(e) => {
                    notes.push(format!("random forest: {e}, left out"));
                    None
                }
            }
        };
        if linear.is_none() && forest.is_none() {
            return Err(ModelError::Training {
                model: "run-time models",
                reason: notes.join("; "),
            });
        }

        let mut model = RunTimeModel {
            names: data.names.clone(),
            extras: data.extras.clone(),
            impute,
            linear,
            forest,
            forest_weight: 1.0,
            cap_at_request: {
                let with: Vec<(f64, f64)> = fit_rows
                    .iter()
                    .filter_map(|&r| data.baseline_requested[r].map(|q| (data.run_s[r], q)))
                    .collect();
                let over = with
                    .iter()
                    .filter(|(run, q)| *run > 1.05 * q + 60.0)
                    .count();
                !with.is_empty() && over * 50 < with.len()
            },
            stack: [1.0, 0.0, 0.0, 0.0, 0.0],
            upper_margin: [0.0; 3],
            upper_quantile: p.upper_quantile,
            per_key_upper: false,
            max_log_run,
            max_target,
            target: p.target,
            failure: None,
            notes,
        };

        // Calibration on the later slice. First the forest/linear blend (log scale), then
        // a stack: the least-absolute-error non-negative combination, in seconds, of the
        // blend and the plain baselines, since the log-scale models estimate a geometric
        // mean while a schedule and the MAE live in seconds. Then the upper margins.
        let (zl, zf) = model.raw_parts_rows(&x, width, &cal_rows, false)?;
        let actual: Vec<f64> = cal_rows.iter().map(|&r| data.run_s[r]).collect();
        let weights: &[f64] = match (&model.linear, &model.forest) {
            (Some(_), Some(_)) => &[0.0, 0.25, 0.5, 0.75, 1.0],
            (Some(_), None) => &[0.0],
            _ => &[1.0],
        };
        let mut best = (f64::INFINITY, 1.0);
        for &w in weights {
            let mae = cal_rows
                .iter()
                .enumerate()
                .map(|(i, &r)| {
                    (model.seconds(anchor[r] + w * zf[i] + (1.0 - w) * zl[i]) - actual[i]).abs()
                })
                .sum::<f64>();
            if mae < best.0 {
                best = (mae, w);
            }
        }
        model.forest_weight = best.1;
        let blend: Vec<f64> = cal_rows
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                model.seconds(
                    anchor[r] + model.forest_weight * zf[i] + (1.0 - model.forest_weight) * zl[i],
                )
            })
            .collect();
        let columns: Vec<Vec<f64>> = (0..STACK)
            .map(|k| {
                cal_rows
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| stack_inputs(blend[i], &data.baseline(r))[k])
                    .collect()
            })
            .collect();
        model.stack = lad_nonnegative(&columns, &actual);
        let mut residuals: [Vec<f64>; 3] = Default::default();
        let mut all = Vec::with_capacity(cal_rows.len());
        let points: Vec<f64> = cal_rows
            .iter()
            .enumerate()
            .map(|(i, &r)| model.stacked(blend[i], &data.baseline(r)))
            .collect();
        for (i, &r) in cal_rows.iter().enumerate() {
            let point = points[i].ln_1p();
            let res = y[r] - point;
            residuals[bucket(data.same_job_runs[r])].push(res);
            all.push(res);
        }
        let overall = quantile(&mut all, p.upper_quantile).max(0.0);
        for (b, mut res) in residuals.into_iter().enumerate() {
            model.upper_margin[b] = if res.len() >= 30 {
                quantile(&mut res, p.upper_quantile).max(0.0)
            } else {
                overall
            };
        }

        // Per-key margins, replayed online over the calibration slice (they start
        // empty, as they would at the test's start): used if they cover at least
        // `PER_KEY_SLACK` below the target there.
        let key_margins = online_margins(data, &cal_rows, &points, p.upper_quantile);
        let cover = |margins: &[Option<f64>]| {
            coverage(&actual, &model.uppers(data, &cal_rows, &points, margins))
        };
        let global_cover = cover(&vec![None; cal_rows.len()]);
        let per_key_cover = cover(&key_margins);
        model.per_key_upper = per_key_cover >= p.upper_quantile - PER_KEY_SLACK;
        model.notes.push(format!(
            "upper quantile: {} margins (calibration coverage per-key {:.3}, global {:.3})",
            if model.per_key_upper {
                "per-key"
            } else {
                "global"
            },
            per_key_cover,
            global_cover
        ));

        model.failure = fit_failure(&x, width, &fit_rows, &data.failed, &mut model.notes);
        Ok(model)
    }
}

fn fit_failure(
    x: &[f64],
    width: usize,
    rows: &[usize],
    failed: &[bool],
    notes: &mut Vec<String>,
) -> Option<LinearPart> {
    let rows = &rows[rows.len().saturating_sub(30_000)..];
    let positives = rows.iter().filter(|&&r| failed[r]).count();
    if positives * 100 < rows.len() || positives == rows.len() {
        notes.push(format!(
            "failure classifier: {positives} failures in {} jobs, too few of one class; left out",
            rows.len()
        ));
        return None;
    }
    let (mean, scale) = LinearPart::standardise(x, rows, width);
    let mut part = LinearPart {
        mean,
        scale,
        coef: vec![0.0; width],
        intercept: 0.0,
    };
    let (a, used) = part.design(x, rows, width);
    let flat: Vec<f64> = a.iter().copied().collect();
    let m = DenseMatrix::new(rows.len(), used.len(), flat, false).ok()?;
    let labels: Vec<i32> = rows.iter().map(|&r| i32::from(failed[r])).collect();
    let params = LogisticRegressionParameters::default().with_alpha(1.0);
    match LogisticRegression::fit(&m, &labels, params) {
        Ok(lr) => {
            use smartcore::linalg::basic::arrays::Array;
            for (j, &c) in used.iter().enumerate() {
                part.coef[c] = *lr.coefficients().get((0, j));
            }
            part.intercept = *lr.intercept().get((0, 0));
            Some(part)
        }
        Err(e) => {
            notes.push(format!("failure classifier: {e}; left out"));
            None
        }
    }
}

/// Per component (linear, forest): point predictions in seconds, `None` if left out.
pub type Components = (Option<Vec<f64>>, Option<Vec<f64>>);

/// A prediction in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub point_s: f64,
    pub upper_s: f64,
}

impl RunTimeModel {
    fn seconds(&self, z: f64) -> f64 {
        self.target
            .inverse(z.clamp(0.0, 2.0 * self.max_target.max(1.0)))
    }

    /// Replaces missing values of a feature vector with the training medians.
    pub(crate) fn impute_row(&self, row: &mut [f64]) {
        for (v, m) in row.iter_mut().zip(&self.impute) {
            if !v.is_finite() {
                *v = *m;
            }
        }
    }

    /// Linear and forest log-space outputs for rows of an imputed matrix.
    fn raw_parts_rows(
        &self,
        x: &[f64],
        width: usize,
        rows: &[usize],
        skip_unused: bool,
    ) -> Result<(Vec<f64>, Vec<f64>), ModelError> {
        let zl: Vec<f64> = match &self.linear {
            Some(l) => rows
                .iter()
                .map(|&r| l.raw(&x[r * width..(r + 1) * width]))
                .collect(),
            None => vec![0.0; rows.len()],
        };
        let zf = match &self.forest {
            Some(f) if self.forest_weight > 0.0 || !skip_unused => {
                let predict = |rows: &[usize]| -> Vec<f64> {
                    rows.iter()
                        .map(|&r| f.predict(&x[r * width..(r + 1) * width]))
                        .collect()
                };
                // Two halves on two threads for big batches (this machine has two cores).
                if rows.len() >= 20_000 {
                    let (a, b) = rows.split_at(rows.len() / 2);
                    std::thread::scope(|scope| {
                        let first = scope.spawn(|| predict(a));
                        let mut second = predict(b);
                        let mut out = first.join().unwrap_or_else(|_| {
                            a.iter()
                                .map(|&r| f.predict(&x[r * width..(r + 1) * width]))
                                .collect()
                        });
                        out.append(&mut second);
                        out
                    })
                } else {
                    predict(rows)
                }
            }
            _ => vec![0.0; rows.len()],
        };
        Ok((zl, zf))
    }

    fn stacked(&self, blend_s: f64, base: &Baseline) -> f64 {
        let inputs = stack_inputs(blend_s, base);
        let v: f64 = self.stack.iter().zip(inputs).map(|(w, c)| w * c).sum();
        // Where jobs are stopped at their request, planning beyond it only wastes the
        // machine.
        let cap = match base.requested_s {
            Some(r) if self.cap_at_request => r.max(1.0),
            _ => f64::INFINITY,
        };
        v.clamp(1.0, self.seconds(f64::INFINITY)).min(cap)
    }

    fn finish(&self, zl: f64, zf: f64, same_job_runs: u64, base: &Baseline) -> Prediction {
        let z = self.target.forward(anchor_s(base))
            + self.forest_weight * zf
            + (1.0 - self.forest_weight) * zl;
        let point_s = self.stacked(self.seconds(z), base);
        let upper_s = self.upper_at(
            point_s,
            self.upper_margin[bucket(same_job_runs)],
            base.requested_s,
        );
        Prediction { point_s, upper_s }
    }

    /// The upper quantile of a job predicted at `point_s`, `margin` above it on the log
    /// scale (the global margin, or a key's own from [`crate::calibration`]); capped like
    /// the point, never below it.
    pub fn upper_at(&self, point_s: f64, margin: f64, requested_s: Option<f64>) -> f64 {
        (point_s.ln_1p() + margin)
            .min(2.0 * self.max_log_run.max(1.0))
            .exp_m1()
            .min(match requested_s {
                Some(r) if self.cap_at_request => r,
                _ => f64::INFINITY,
            })
            .max(point_s)
    }

    /// The upper quantile of row `r` of `data` predicted at `point_s`: `key_margin` above
    /// it (a key's own, [`crate::calibration`]) or else the global margin for the runs of
    /// the same job seen before, as [`RunTimeModel::predict_rows`] gives it.
    pub(crate) fn upper_of_row(
        &self,
        data: &Prepared,
        r: usize,
        point_s: f64,
        key_margin: Option<f64>,
    ) -> f64 {
        let margin = key_margin.unwrap_or(self.upper_margin[bucket(data.same_job_runs[r])]);
        self.upper_at(point_s, margin, data.baseline_requested[r])
    }

    /// [`Self::upper_of_row`] for each of `rows` at its point, with its key's margin if
    /// it has one.
    pub(crate) fn uppers(
        &self,
        data: &Prepared,
        rows: &[usize],
        points: &[f64],
        key_margins: &[Option<f64>],
    ) -> Vec<f64> {
        rows.iter()
            .zip(points)
            .zip(key_margins)
            .map(|((&r, &point), &m)| self.upper_of_row(data, r, point, m))
            .collect()
    }

    /// One job's prediction from its feature vector (missing values are imputed in place),
    /// the runs of the same job seen before and its baselines.
    pub fn predict_one(&self, row: &mut [f64], same_job_runs: u64, base: &Baseline) -> Prediction {
        self.impute_row(row);
        let zl = self.linear.as_ref().map_or(0.0, |l| l.raw(row));
        let zf = match &self.forest {
            Some(f) if self.forest_weight > 0.0 => f.predict(row),
            _ => 0.0,
        };
        self.finish(zl, zf, same_job_runs, base)
    }

    /// Linear and forest outputs for rows of `data` (imputed here).
    fn raw_parts_of(
        &self,
        data: &Prepared,
        rows: &[usize],
        skip_unused: bool,
    ) -> Result<(Vec<f64>, Vec<f64>), ModelError> {
        let width = data.width();
        let mut x = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            let start = x.len();
            x.extend_from_slice(data.row(r));
            self.impute_row(&mut x[start..]);
        }
        let idx: Vec<usize> = (0..rows.len()).collect();
        self.raw_parts_rows(&x, width, &idx, skip_unused)
    }

    /// Predictions for many rows of `data` at once. Their upper quantiles use the
    /// global margins: per-key margins need the jobs' finishes in time order
    /// (`eval::evaluate_on`, `ModelPredictor`).
    pub fn predict_rows(
        &self,
        data: &Prepared,
        rows: &[usize],
    ) -> Result<Vec<Prediction>, ModelError> {
        let (zl, zf) = self.raw_parts_of(data, rows, true)?;
        Ok(self.finish_rows(data, rows, &zl, &zf))
    }

    /// Predictions for `rows` of `data` from their components' outputs; a forest the
    /// blend does not use contributes exactly 0 (as `raw_parts_rows` skipping it).
    fn finish_rows(
        &self,
        data: &Prepared,
        rows: &[usize],
        zl: &[f64],
        zf: &[f64],
    ) -> Vec<Prediction> {
        let use_forest = self.forest_weight > 0.0;
        rows.iter()
            .enumerate()
            .map(|(i, &r)| {
                let zf = if use_forest { zf[i] } else { 0.0 };
                self.finish(zl[i], zf, data.same_job_runs[r], &data.baseline(r))
            })
            .collect()
    }

    /// Predictions for rows of `data` and each component's point predictions (seconds,
    /// before the stack): (linear, forest), `None` for a component training left out.
    /// One pass of the components serves both.
    pub fn predict_rows_with_components(
        &self,
        data: &Prepared,
        rows: &[usize],
    ) -> Result<(Vec<Prediction>, Components), ModelError> {
        let (zl, zf) = self.raw_parts_of(data, rows, false)?;
        let preds = self.finish_rows(data, rows, &zl, &zf);
        let secs = |z: Vec<f64>| {
            z.into_iter()
                .zip(rows)
                .map(|(z, &r)| self.seconds(z + self.target.forward(anchor_s(&data.baseline(r)))))
                .collect()
        };
        Ok((
            preds,
            (
                self.linear.as_ref().map(|_| secs(zl)),
                self.forest.as_ref().map(|_| secs(zf)),
            ),
        ))
    }

    /// Probability that the job fails, when a classifier could be trained.
    pub fn failure_probability(&self, row: &[f64]) -> Option<f64> {
        let f = self.failure.as_ref()?;
        let z = f.raw(row);
        Some(1.0 / (1.0 + (-z).exp()))
    }
}
