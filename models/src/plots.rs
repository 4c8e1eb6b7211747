//! Evaluation plots (SVG, plotters): predicted vs actual run time on log axes, and the
//! CDF of absolute errors for the model and each baseline.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::ModelError;

/// Font files tried, in order, for the plots' text unless `RUSTCI_PLOT_FONT` names the
/// one file to use. Debian's `fonts-dejavu-core` puts the first one there.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a sans-serif font for plotters once per process; false when none could be
/// read. plotters draws text with ab_glyph (no system font libraries), which knows only
/// registered fonts and fails on any text without one, SVG included; so every plot asks
/// this first and draws no text at all when it is false, rather than failing.
pub fn ensure_font() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let from_env = std::env::var("RUSTCI_PLOT_FONT").ok();
        let paths: Vec<&str> = match &from_env {
            Some(p) => vec![p.as_str()],
            None => FONT_CANDIDATES.to_vec(),
        };
        for path in paths {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            // plotters keeps fonts for the whole process ('static); one leak of one file.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
        false
    })
}

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
    let text = ensure_font();
    let root = SVGBackend::new(path, (720, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut builder = ChartBuilder::on(&root);
    if text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(44)
            .y_label_area_size(60);
    }
    let mut chart = builder
        .margin(12)
        .build_cartesian_2d((1.0f64..hi).log_scale(), (1.0f64..hi).log_scale())
        .map_err(|e| plot_err(path, e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("actual run time (s)")
            .y_desc("predicted run time (s)");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| plot_err(path, e))?;
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
    let text = ensure_font();
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut builder = ChartBuilder::on(&root);
    if text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(44)
            .y_label_area_size(50);
    }
    let mut chart = builder
        .margin(12)
        .build_cartesian_2d((1.0f64..hi * 1.2).log_scale(), 0.0f64..1.0)
        .map_err(|e| plot_err(path, e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("absolute error (s)")
            .y_desc("share of test jobs");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| plot_err(path, e))?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(path.to_path_buf())
}
