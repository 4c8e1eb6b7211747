//! Evaluation plots (SVG, plotters): predicted vs actual run time on log axes, and the
//! CDF of absolute errors for the model and each baseline.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::ModelError;

fn plot_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Scatter of predicted against actual seconds (both log scale), with the diagonal.
/// At most `max_points` evenly spaced points are drawn so files stay small.
pub fn predicted_vs_actual(
    path: &Path,
    title: &str,
    actual_s: &[f64],
    predicted_s: &[f64],
    max_points: usize,
) -> Result<PathBuf, ModelError> {
    let hi = actual_s
        .iter()
        .chain(predicted_s)
        .fold(10.0f64, |m, &v| m.max(v))
        * 1.2;
    let root = SVGBackend::new(path, (720, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0f64..hi).log_scale(), (1.0f64..hi).log_scale())
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("actual run time (s)")
        .y_desc("predicted run time (s)")
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let step = (actual_s.len() / max_points.max(1)).max(1);
    chart
        .draw_series(
            actual_s
                .iter()
                .zip(predicted_s)
                .step_by(step)
                .map(|(&a, &p)| Circle::new((a.max(1.0), p.max(1.0)), 2, BLUE.mix(0.35).filled())),
        )
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(LineSeries::new([(1.0, 1.0), (hi, hi)], RED.stroke_width(1)))
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(path.to_path_buf())
}

/// CDF of absolute error (seconds, log x axis), one line per named predictor.
pub fn error_cdf(
    path: &Path,
    title: &str,
    actual_s: &[f64],
    series: &[(&str, &[f64])],
) -> Result<PathBuf, ModelError> {
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    let mut curves = Vec::new();
    let mut hi = 10.0f64;
    for (name, pred) in series {
        let mut err: Vec<f64> = actual_s
            .iter()
            .zip(pred.iter())
            .map(|(a, p)| (a - p).abs().max(1.0))
            .collect();
        err.sort_by(f64::total_cmp);
        hi = hi.max(err.last().copied().unwrap_or(1.0));
        let n = err.len().max(1) as f64;
        let step = (err.len() / 400).max(1);
        let pts: Vec<(f64, f64)> = err
            .iter()
            .enumerate()
            .step_by(step)
            .map(|(i, &e)| (e, (i + 1) as f64 / n))
            .collect();
        curves.push((*name, pts));
    }
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(50)
        .build_cartesian_2d((1.0f64..hi * 1.2).log_scale(), 0.0f64..1.0)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("absolute error (s)")
        .y_desc("share of test jobs")
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(path.to_path_buf())
}
