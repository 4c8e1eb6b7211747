//! Chronological evaluation: fit on the past, measure on the future, beside the plain
//! baselines every CI or HPC user already has.

use serde::{Deserialize, Serialize};

use crate::calibration::online_margins;
use crate::dataset::Prepared;
use crate::error::ModelError;
use crate::train::{Prediction, RunTimeModel, TrainConfig};

/// Error figures of one predictor on the test jobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    /// Mean absolute error, seconds.
    pub mae_s: f64,
    /// Median of |predicted - actual| / actual (actual floored at 1 s).
    pub median_ape: f64,
    /// Share of jobs that ran longer than predicted.
    pub under_rate: f64,
    /// Share of jobs that finished within the upper quantile (models only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_coverage: Option<f64>,
}

impl Metrics {
    pub fn of(actual: &[f64], point: &[f64], upper: Option<&[f64]>) -> Self {
        let n = actual.len();
        let nf = n.max(1) as f64;
        let mae_s = actual
            .iter()
            .zip(point)
            .map(|(a, p)| (a - p).abs())
            .sum::<f64>()
            / nf;
        let mut ape: Vec<f64> = actual
            .iter()
            .zip(point)
            .map(|(a, p)| (a - p).abs() / a.max(1.0))
            .collect();
        ape.sort_by(f64::total_cmp);
        let median_ape = ape.get(n / 2).copied().unwrap_or(0.0);
        let under_rate = actual.iter().zip(point).filter(|(a, p)| a > p).count() as f64 / nf;
        let upper_coverage = upper.map(|u| coverage(actual, u));
        Self {
            n,
            mae_s,
            median_ape,
            under_rate,
            upper_coverage,
        }
    }
}

/// Share of jobs that finished within their upper quantile (0 without jobs).
pub(crate) fn coverage(actual: &[f64], upper: &[f64]) -> f64 {
    actual.iter().zip(upper).filter(|(a, u)| a <= u).count() as f64 / actual.len().max(1) as f64
}

/// The baselines of the issue: the user's request, Tsafrir's last-two mean capped at the
/// request, and the median of the last five runs of the same job (a CI system's ETA).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    /// `None` when the trace has no requested times (CI builds).
    pub requested: Option<Metrics>,
    pub tsafrir: Metrics,
    pub last5_median: Metrics,
}

impl Baselines {
    /// The lowest MAE among the baselines.
    pub fn best_mae(&self) -> f64 {
        let mut m = self.tsafrir.mae_s.min(self.last5_median.mae_s);
        if let Some(r) = self.requested {
            m = m.min(r.mae_s);
        }
        m
    }
}

/// How well the failure classifier separates failures from the rest on the test jobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FailureMetrics {
    pub base_rate: f64,
    /// Brier score of the classifier, and of always predicting the training base rate.
    pub brier: f64,
    pub brier_base_rate: f64,
}

/// A chronological evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub train_jobs: usize,
    pub test_jobs: usize,
    pub model: Metrics,
    pub linear: Option<Metrics>,
    pub forest: Option<Metrics>,
    pub baselines: Baselines,
    pub failure: Option<FailureMetrics>,
}

/// The test rows' actual run times and the predictions of `model`, for plots.
#[derive(Debug, Clone, Default)]
pub struct TestPoints {
    pub actual_s: Vec<f64>,
    pub predicted_s: Vec<f64>,
    pub upper_s: Vec<f64>,
}

/// The baselines' estimates for `rows` of `data`: (requested, Tsafrir, last-5 median).
/// Requested is `None` when none of the rows has a request; jobs without one take the
/// Tsafrir fallback so that every baseline is measured on the same jobs.
pub(crate) fn baseline_columns(
    data: &Prepared,
    rows: &[usize],
) -> (Option<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let requested = rows
        .iter()
        .any(|&r| data.baseline_requested[r].is_some())
        .then(|| {
            rows.iter()
                .map(|&r| data.baseline_requested[r].unwrap_or(data.baseline_tsafrir[r]))
                .collect()
        });
    let ts = rows.iter().map(|&r| data.baseline_tsafrir[r]).collect();
    let l5 = rows.iter().map(|&r| data.baseline_last5[r]).collect();
    (requested, ts, l5)
}

/// The upper quantiles of `rows` (submit order) at their `point`s: with per-key margins
/// learned online from the test jobs that finished
/// ([`crate::calibration::online_margins`]) when the model chose them, else (and for
/// keys with too few residuals) the model's own.
fn per_key_upper(data: &Prepared, model: &RunTimeModel, rows: &[usize], point: &[f64]) -> Vec<f64> {
    let margins = if model.per_key_upper {
        online_margins(data, rows, point, model.upper_quantile)
    } else {
        vec![None; rows.len()]
    };
    model.uppers(data, rows, point, &margins)
}

/// What `model` predicts for rows `test` of `data`, walked in order as
/// [`evaluate_on`] does (per-key margins learn from the jobs that finished), without
/// the components, baselines and failure scores an evaluation adds.
pub fn test_points(
    data: &Prepared,
    model: &RunTimeModel,
    test: std::ops::Range<usize>,
) -> Result<TestPoints, ModelError> {
    let rows: Vec<usize> = test.collect();
    let point: Vec<f64> = model
        .predict_rows(data, &rows)?
        .iter()
        .map(|p| p.point_s)
        .collect();
    Ok(TestPoints {
        actual_s: rows.iter().map(|&r| data.run_s[r]).collect(),
        upper_s: per_key_upper(data, model, &rows, &point),
        predicted_s: point,
    })
}

/// Measures `model` (and the baselines) on rows `test` of `data`.
pub fn evaluate_on(
    data: &Prepared,
    model: &RunTimeModel,
    train_jobs: usize,
    test: std::ops::Range<usize>,
) -> Result<(Evaluation, TestPoints), ModelError> {
    let rows: Vec<usize> = test.clone().collect();
    let (preds, (lin, forest)): (Vec<Prediction>, _) =
        model.predict_rows_with_components(data, &rows)?;
    let actual: Vec<f64> = rows.iter().map(|&r| data.run_s[r]).collect();
    let point: Vec<f64> = preds.iter().map(|p| p.point_s).collect();
    let upper = per_key_upper(data, model, &rows, &point);

    let linear = lin.map(|p| Metrics::of(&actual, &p, None));
    let forest = forest.map(|p| Metrics::of(&actual, &p, None));

    let (requested, ts, l5) = baseline_columns(data, &rows);
    let baselines = Baselines {
        requested: requested.map(|v| Metrics::of(&actual, &v, None)),
        tsafrir: Metrics::of(&actual, &ts, None),
        last5_median: Metrics::of(&actual, &l5, None),
    };

    let failure = model.failure.as_ref().map(|_| {
        let train_rate = {
            let n = train_jobs.max(1);
            data.failed[..train_jobs.min(data.rows())]
                .iter()
                .filter(|&&f| f)
                .count() as f64
                / n as f64
        };
        let mut brier = 0.0;
        let mut brier0 = 0.0;
        let mut fails = 0usize;
        let mut row = Vec::with_capacity(data.width());
        for &r in &rows {
            row.clear();
            row.extend_from_slice(data.row(r));
            model.impute_row(&mut row);
            let p = model.failure_probability(&row).unwrap_or(train_rate);
            let y = f64::from(u8::from(data.failed[r]));
            fails += usize::from(data.failed[r]);
            brier += (p - y) * (p - y);
            brier0 += (train_rate - y) * (train_rate - y);
        }
        let n = rows.len().max(1) as f64;
        FailureMetrics {
            base_rate: fails as f64 / n,
            brier: brier / n,
            brier_base_rate: brier0 / n,
        }
    });

    Ok((
        Evaluation {
            train_jobs,
            test_jobs: rows.len(),
            model: Metrics::of(&actual, &point, Some(&upper)),
            linear,
            forest,
            baselines,
            failure,
        },
        TestPoints {
            actual_s: actual,
            predicted_s: point,
            upper_s: upper,
        },
    ))
}

/// Trains on the first `train_fraction` of `data` and evaluates on the rest.
pub fn chronological(
    config: &TrainConfig,
    data: &Prepared,
    train_fraction: f64,
) -> Result<(RunTimeModel, Evaluation, TestPoints), ModelError> {
    if !(0.1..=0.95).contains(&train_fraction) {
        return Err(ModelError::InvalidParameter {
            name: "train_fraction",
            reason: "must be in 0.1..=0.95".into(),
        });
    }
    let n = data.rows();
    let split = (n as f64 * train_fraction) as usize;
    if split < 20 || n - split < 5 {
        return Err(ModelError::NotEnoughData(format!(
            "{n} jobs with a run time; a chronological split needs at least 20 to train on and 5 to test"
        )));
    }
    let model = config.fit(data, 0..split)?;
    let (eval, points) = evaluate_on(data, &model, split, split..n)?;
    Ok((model, eval, points))
}
