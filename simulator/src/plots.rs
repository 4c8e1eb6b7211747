//! Plots of one run (plotters, SVG and PNG): queue length and fleet size over time, the
//! wait CDF per QoS class, mean and p95 wait of the tenants that waited longest, the
//! pipelines' time-to-feedback CDF; and over sweep rows the cost vs p95 wait frontier per
//! policy ([`frontier_plot`]) and the time-to-feedback CDF per policy ([`ttf_cdf_svg`]).
//!
//! Text is drawn with the font [`rustci_models::plots::ensure_font`] registers; without
//! one the plots are drawn without any text (lines and bars only) instead of failing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use rustci_models::plots::ensure_font;
use thiserror::Error;

use crate::outcome::RunFacts;
use crate::report::Report;
use crate::simulate::Timeline;

/// Size of every plot, pixels.
const SIZE: (u32, u32) = (900, 500);

/// Colours of successive series.
const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// Points of one CDF line at most: enough for a smooth curve, small files.
const CDF_POINTS: usize = 400;

#[derive(Debug, Error)]
pub enum PlotError {
    #[error("drawing {what}: {reason}")]
    Draw { what: String, reason: String },
    #[error("creating {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn draw_err(what: &str, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// One plot of a run, by the id used for its file names and in the HTML report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPlot {
    Timeline,
    WaitCdf,
    TenantWaits,
    /// Pipelines' time to feedback (only for a run with pipelines).
    TtfCdf,
}

impl RunPlot {
    /// The plots of every run; a run with pipelines adds [`RunPlot::TtfCdf`]
    /// ([`RunPlotData::plots`]).
    pub const ALL: [RunPlot; 3] = [RunPlot::Timeline, RunPlot::WaitCdf, RunPlot::TenantWaits];

    /// File stem and HTML id.
    pub fn id(self) -> &'static str {
        match self {
            Self::Timeline => "timeline",
            Self::WaitCdf => "wait_cdf",
            Self::TenantWaits => "tenant_waits",
            Self::TtfCdf => "ttf_cdf",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Timeline => "Queue length and fleet size over time",
            Self::WaitCdf => "Wait CDF per QoS class",
            Self::TenantWaits => "Tenants with the longest mean wait",
            Self::TtfCdf => "Pipeline time to feedback CDF",
        }
    }
}

/// What the run plots are drawn from, gathered once.
#[derive(Debug, Clone)]
pub struct RunPlotData {
    /// (hours since the start, queued jobs, runners paid for, runners ready).
    timeline: Vec<(f64, f64, f64, f64)>,
    /// Per QoS class: ascending waits, seconds.
    waits: BTreeMap<String, Vec<f64>>,
    /// (tenant, mean wait, p95 wait), longest mean first.
    tenants: Vec<(String, f64, f64)>,
    /// With pipelines: their times to feedback, ascending, under the run's policy.
    ttfs: Option<BTreeMap<String, Vec<f64>>>,
}

impl RunPlotData {
    /// `top_tenants`: how many tenants the tenant plot shows.
    pub fn new(facts: &RunFacts, report: &Report, timeline: &Timeline, top_tenants: usize) -> Self {
        let t0 = timeline.samples.first().map_or(0.0, |s| s.t_s);
        let timeline = timeline
            .samples
            .iter()
            .map(|s| {
                (
                    (s.t_s - t0) / 3600.0,
                    s.queued as f64,
                    s.runners_paid as f64,
                    s.runners_ready as f64,
                )
            })
            .collect();
        let mut waits: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for q in &facts.qos {
            waits.entry(q.name.clone()).or_default();
        }
        for r in &facts.results {
            let w = r.wait_s();
            if w.is_finite() {
                waits.entry(r.qos.clone()).or_default().push(w.max(0.0));
            }
        }
        for v in waits.values_mut() {
            v.sort_by(f64::total_cmp);
        }
        let mut tenants: Vec<(String, f64, f64)> = report
            .tenants
            .iter()
            .map(|(name, t)| (name.clone(), t.wait_mean_s, t.wait_p95_s))
            .collect();
        tenants.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tenants.truncate(top_tenants.max(1));
        let ttfs = facts
            .pipelines
            .as_ref()
            .map(|p| BTreeMap::from([(facts.policy.clone(), p.sorted_ttfs())]));
        Self {
            timeline,
            waits,
            tenants,
            ttfs,
        }
    }

    /// The plots this run has: [`RunPlot::ALL`], and the time-to-feedback CDF when it
    /// had pipelines.
    pub fn plots(&self) -> Vec<RunPlot> {
        let mut all = RunPlot::ALL.to_vec();
        if self.ttfs.is_some() {
            all.push(RunPlot::TtfCdf);
        }
        all
    }

    fn draw<DB: DrawingBackend>(
        &self,
        plot: RunPlot,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> Result<(), PlotError> {
        let what = plot.id();
        let r = match plot {
            RunPlot::Timeline => draw_timeline(root, &self.timeline, text),
            RunPlot::WaitCdf => draw_cdf(root, &self.waits, WAIT_CDF, text),
            RunPlot::TtfCdf => match &self.ttfs {
                Some(t) => draw_cdf(root, t, TTF_CDF, text),
                None => Err("the run had no pipelines".to_string()),
            },
            RunPlot::TenantWaits => draw_tenants(root, &self.tenants, text),
        };
        r.map_err(|e| draw_err(what, e))?;
        root.present().map_err(|e| draw_err(what, e))
    }

    /// The plot as an SVG document.
    pub fn svg(&self, plot: RunPlot) -> Result<String, PlotError> {
        let text = ensure_font();
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
            self.draw(plot, &root, text)?;
        }
        Ok(buf)
    }

    /// Writes the plot as a PNG file.
    pub fn png(&self, plot: RunPlot, path: &Path) -> Result<(), PlotError> {
        let text = ensure_font();
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        self.draw(plot, &root, text)
    }

    /// Writes `DIR/<id>.svg` and `DIR/<id>.png` for every plot (creating `dir`); returns
    /// the files written.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for plot in self.plots() {
            let svg_path = dir.join(format!("{}.svg", plot.id()));
            std::fs::write(&svg_path, self.svg(plot)?).map_err(|source| PlotError::Io {
                path: svg_path.clone(),
                source,
            })?;
            files.push(svg_path);
            let png_path = dir.join(format!("{}.png", plot.id()));
            self.png(plot, &png_path)?;
            files.push(png_path);
        }
        Ok(files)
    }
}

/// Quantiles a CDF band is drawn at (shares 1/Q, 2/Q, ..., 1).
const BAND_QUANTILES: usize = 200;

/// The run plots of N replications with 95% confidence bands: the timeline's queue and
/// paid runners (per sample, the interval of the replications' values) and each QoS
/// class's wait CDF (per share, the interval of the replications' quantiles).
#[derive(Debug, Clone)]
pub struct Bands {
    /// (hours, queued (mean, low, high), runners paid for (mean, low, high)).
    timeline: Vec<(f64, [f64; 3], [f64; 3])>,
    /// Per class: (share, wait (mean, low, high)).
    waits: BTreeMap<String, Vec<(f64, [f64; 3])>>,
}

fn band(values: &[f64]) -> Option<[f64; 3]> {
    crate::interval::Estimate::of(values).map(|e| [e.mean, e.low, e.high])
}

impl Bands {
    /// From each replication's plot data (at least 2 for an interval; the samples are
    /// compared index by index, up to the shortest replication's).
    pub fn new(reps: &[RunPlotData]) -> Self {
        let len = reps.iter().map(|r| r.timeline.len()).min().unwrap_or(0);
        let timeline = (0..len)
            .filter_map(|i| {
                let at = |f: fn(&(f64, f64, f64, f64)) -> f64| {
                    reps.iter().map(|r| f(&r.timeline[i])).collect::<Vec<f64>>()
                };
                Some((
                    reps[0].timeline[i].0,
                    band(&at(|p| p.1))?,
                    band(&at(|p| p.2))?,
                ))
            })
            .collect();
        let mut waits = BTreeMap::new();
        if let Some(first) = reps.first() {
            for class in first.waits.keys() {
                let curve: Vec<(f64, [f64; 3])> = (1..=BAND_QUANTILES)
                    .filter_map(|k| {
                        let share = k as f64 / BAND_QUANTILES as f64;
                        let qs: Vec<f64> = reps
                            .iter()
                            .filter_map(|r| {
                                crate::report::percentile(r.waits.get(class)?, 100.0 * share)
                            })
                            .collect();
                        (qs.len() == reps.len()).then(|| band(&qs).map(|b| (share, b)))?
                    })
                    .collect();
                if !curve.is_empty() {
                    waits.insert(class.clone(), curve);
                }
            }
        }
        Self { timeline, waits }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        plot: RunPlot,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> Result<(), PlotError> {
        let r = match plot {
            RunPlot::Timeline => draw_timeline_band(root, &self.timeline, text),
            _ => draw_cdf_band(root, &self.waits, text),
        };
        r.map_err(|e| draw_err(plot.id(), e))?;
        root.present().map_err(|e| draw_err(plot.id(), e))
    }

    /// The banded plots: the timeline and the wait CDF.
    pub const PLOTS: [RunPlot; 2] = [RunPlot::Timeline, RunPlot::WaitCdf];

    /// The plot as an SVG document.
    pub fn svg(&self, plot: RunPlot) -> Result<String, PlotError> {
        let text = ensure_font();
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
            self.draw(plot, &root, text)?;
        }
        Ok(buf)
    }

    /// Writes `DIR/<id>.svg` and `DIR/<id>.png` of [`Bands::PLOTS`].
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for plot in Self::PLOTS {
            let svg_path = dir.join(format!("{}.svg", plot.id()));
            std::fs::write(&svg_path, self.svg(plot)?).map_err(|source| PlotError::Io {
                path: svg_path.clone(),
                source,
            })?;
            files.push(svg_path);
            let png_path = dir.join(format!("{}.png", plot.id()));
            {
                let text = ensure_font();
                let root = BitMapBackend::new(&png_path, SIZE).into_drawing_area();
                self.draw(plot, &root, text)?;
            }
            files.push(png_path);
        }
        Ok(files)
    }
}

fn draw_timeline_band<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pts: &[(f64, [f64; 3], [f64; 3])],
    text: bool,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let x_hi = pts.last().map_or(1.0, |p| p.0);
    let y_hi = pts.iter().fold(1.0f64, |m, p| m.max(p.1[2]).max(p.2[2]));
    let mut chart = timeline_chart(
        root,
        "Queue length and fleet size (mean, 95% band)",
        x_hi,
        y_hi,
        text,
    )?;
    type Y = fn(&(f64, [f64; 3], [f64; 3])) -> [f64; 3];
    let lines: [(&str, RGBColor, Y); 2] = [
        ("queued jobs", RED, |p| p.1),
        ("runners paid for", BLUE, |p| p.2),
    ];
    for (name, color, y) in lines {
        let mut outline: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, y(p)[1].max(0.0))).collect();
        outline.extend(pts.iter().rev().map(|p| (p.0, y(p)[2])));
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.25).filled(),
            )))
            .map_err(e)?;
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, y(p)[0])),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if text {
        legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(e)?;
    }
    Ok(())
}

fn draw_cdf_band<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &BTreeMap<String, Vec<(f64, [f64; 3])>>,
    text: bool,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let hi = series
        .values()
        .filter_map(|v| v.last())
        .fold(10.0f64, |m, p| m.max(p.1[2]))
        * 1.2;
    let mut chart = chart_builder(
        root,
        "Wait CDF per QoS class (mean quantile, 95% band)",
        text,
    )
    .build_cartesian_2d((1.0f64..hi).log_scale(), 0.0f64..1.0)
    .map_err(e)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(WAIT_CDF.x_desc).y_desc(WAIT_CDF.y_desc);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    for (i, (name, curve)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut outline: Vec<(f64, f64)> = curve.iter().map(|p| (p.1[1].max(1.0), p.0)).collect();
        outline.extend(curve.iter().rev().map(|p| (p.1[2].max(1.0), p.0)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.25).filled(),
            )))
            .map_err(e)?;
        chart
            .draw_series(LineSeries::new(
                curve.iter().map(|p| (p.1[0].max(1.0), p.0)),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if text {
        legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(e)?;
    }
    Ok(())
}

/// The error type of chart drawing on any backend, as text (each backend has its own).
type DrawResult = Result<(), String>;

fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &'b str,
    text: bool,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.margin(14);
    if text {
        b.caption(title, ("sans-serif", 20))
            .x_label_area_size(44)
            .y_label_area_size(60);
    }
    b
}

/// The timeline's white canvas and axes (hours, jobs / runners) up to `x_hi`, `y_hi`
/// (with headroom).
fn timeline_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_hi: f64,
    y_hi: f64,
    text: bool,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = chart_builder(root, title, text)
        .build_cartesian_2d(0.0..x_hi.max(1e-3), 0.0..y_hi * 1.1)
        .map_err(e)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("hours since the first submission")
            .y_desc("jobs / runners");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    Ok(chart)
}

fn draw_timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pts: &[(f64, f64, f64, f64)],
    text: bool,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let x_hi = pts.last().map_or(1.0, |p| p.0);
    let y_hi = pts.iter().fold(1.0f64, |m, p| m.max(p.1).max(p.2).max(p.3));
    let mut chart = timeline_chart(root, RunPlot::Timeline.title(), x_hi, y_hi, text)?;
    type Y = fn(&(f64, f64, f64, f64)) -> f64;
    let lines: [(&str, RGBColor, Y); 3] = [
        ("queued jobs", RED, |p| p.1),
        ("runners paid for", BLUE, |p| p.2),
        ("runners ready", GREEN, |p| p.3),
    ];
    for (name, color, y) in lines {
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, y(p))),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if text {
        legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(e)?;
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(pos)
        .draw()
}

/// Up to [`CDF_POINTS`] (value, share at or below it) points of an ascending slice,
/// values floored at `floor` for a log axis.
fn cdf_points(sorted: &[f64], floor: f64) -> Vec<(f64, f64)> {
    let n = sorted.len().max(1) as f64;
    let step = (sorted.len() / CDF_POINTS).max(1);
    let mut pts: Vec<(f64, f64)> = sorted
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, &v)| (v.max(floor), (i + 1) as f64 / n))
        .collect();
    if let Some(&last) = sorted.last() {
        pts.push((last.max(floor), 1.0));
    }
    pts
}

/// What a CDF plot says: its title, axis descriptions and what one value is.
struct CdfText {
    plot: RunPlot,
    x_desc: &'static str,
    y_desc: &'static str,
    unit: &'static str,
}

const WAIT_CDF: CdfText = CdfText {
    plot: RunPlot::WaitCdf,
    x_desc: "wait (s, waits under 1 s at 1 s)",
    y_desc: "share of the class's jobs",
    unit: "jobs",
};

const TTF_CDF: CdfText = CdfText {
    plot: RunPlot::TtfCdf,
    x_desc: "time to feedback (s; superseded pipelines left out)",
    y_desc: "share of the pipelines",
    unit: "pipelines",
};

/// One CDF curve per series (a QoS class's waits, a policy's times to feedback).
fn draw_cdf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &BTreeMap<String, Vec<f64>>,
    what: CdfText,
    text: bool,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    // Values span seconds to hours: a log axis, with values under a second drawn at 1 s.
    let hi = series
        .values()
        .filter_map(|v| v.last())
        .fold(10.0f64, |m, &v| m.max(v))
        * 1.2;
    let mut chart = chart_builder(root, what.plot.title(), text)
        .build_cartesian_2d((1.0f64..hi).log_scale(), 0.0f64..1.0)
        .map_err(e)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(what.x_desc).y_desc(what.y_desc);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    for (i, (name, v)) in series.iter().filter(|(_, v)| !v.is_empty()).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(cdf_points(v, 1.0), color.stroke_width(2)))
            .map_err(e)?
            .label(format!("{name} ({} {})", v.len(), what.unit))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if text {
        legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(e)?;
    }
    Ok(())
}

fn draw_tenants<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    tenants: &[(String, f64, f64)],
    text: bool,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let n = tenants.len().max(1);
    let y_hi = tenants.iter().fold(1.0f64, |m, t| m.max(t.1).max(t.2)) * 1.15;
    let mut chart = chart_builder(root, RunPlot::TenantWaits.title(), text)
        .build_cartesian_2d(0.0f64..n as f64, 0.0..y_hi)
        .map_err(e)?;
    let mut mesh = chart.configure_mesh();
    let name_at = |x: &f64| {
        let i = x.floor();
        if i < 0.0 || (x - i - 0.5).abs() > 1e-6 {
            return String::new();
        }
        tenants
            .get(i as usize)
            .map(|t| t.0.chars().take(14).collect())
            .unwrap_or_default()
    };
    if text {
        mesh.disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&name_at)
            .y_desc("wait (s)");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    // Each tenant gets one unit of x: the mean bar on the left half, the p95 on the right.
    type Bar = fn(&(String, f64, f64)) -> f64;
    let bars: [(&str, RGBColor, f64, Bar); 2] = [
        ("mean wait", BLUE, 0.1, |t| t.1),
        ("p95 wait", RED, 0.5, |t| t.2),
    ];
    for (name, color, offset, y) in bars {
        chart
            .draw_series(tenants.iter().enumerate().map(|(i, t)| {
                let x = i as f64 + offset;
                Rectangle::new([(x, 0.0), (x + 0.4, y(t))], color.mix(0.8).filled())
            }))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    if text {
        legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(e)?;
    }
    Ok(())
}

/// The pipeline time-to-feedback CDF of several runs as an SVG document, one curve per
/// series (a sweep's policies at one setting; the values ascending), as the run report
/// draws its own.
pub fn ttf_cdf_svg(series: &BTreeMap<String, Vec<f64>>) -> Result<String, PlotError> {
    let text = ensure_font();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        draw_cdf(&root, series, TTF_CDF, text)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|e| draw_err(RunPlot::TtfCdf.id(), e))?;
    }
    Ok(buf)
}

/// Cost vs p95 wait per policy over sweep rows `(policy, cost, p95 wait s)`: every point,
/// and per policy the frontier of points no cheaper point beats on p95. SVG or PNG by
/// `path`'s extension (`.png`, anything else SVG).
pub fn frontier_plot(rows: &[(String, f64, f64)], path: &Path) -> Result<(), PlotError> {
    frontier_plot_ci(rows, &[], path)
}

/// A frontier point `(cost, p95)` with its cost and p95 intervals.
type ErrorBar = ((f64, f64), [f64; 2], [f64; 2]);

/// A point's 95% intervals on the frontier: `(cost, p95 wait)`, each `[low, high]`.
pub type FrontierCi = Option<([f64; 2], [f64; 2])>;

/// [`frontier_plot`] with each point's 95% intervals (`cis[i]` of `rows[i]`; empty:
/// none) drawn as error bars, and the frontier's p95 interval as a band.
pub fn frontier_plot_ci(
    rows: &[(String, f64, f64)],
    cis: &[FrontierCi],
    path: &Path,
) -> Result<(), PlotError> {
    let png = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("png"));
    if !png {
        return std::fs::write(path, frontier_svg_ci(rows, cis)?).map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    let text = ensure_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw_frontier(&root, rows, cis, text)
        .and_then(|()| root.present().map_err(|e| e.to_string()))
        .map_err(|e| draw_err(&path.display().to_string(), e))
}

/// [`frontier_plot`] as an SVG document (the bytes it writes to an `.svg` path).
pub fn frontier_svg(rows: &[(String, f64, f64)]) -> Result<String, PlotError> {
    frontier_svg_ci(rows, &[])
}

/// [`frontier_plot_ci`] as an SVG document.
pub fn frontier_svg_ci(
    rows: &[(String, f64, f64)],
    cis: &[FrontierCi],
) -> Result<String, PlotError> {
    let text = ensure_font();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        draw_frontier(&root, rows, cis, text)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|e| draw_err("frontier", e))?;
    }
    Ok(buf)
}

/// Per policy, the points sorted by cost that improve on every cheaper point's p95.
pub fn frontier(rows: &[(String, f64, f64)]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (p, c, w) in rows {
        if c.is_finite() && w.is_finite() {
            by.entry(p.clone()).or_default().push((*c, *w));
        }
    }
    for pts in by.values_mut() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut best = f64::INFINITY;
        pts.retain(|&(_, w)| {
            let keep = w < best;
            best = best.min(w);
            keep
        });
    }
    by
}

fn draw_frontier<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[(String, f64, f64)],
    cis: &[FrontierCi],
    text: bool,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let finite = || rows.iter().filter(|r| r.1.is_finite() && r.2.is_finite());
    let (mut x_lo, mut x_hi, mut y_hi) = (f64::INFINITY, 0.0f64, 1.0f64);
    for r in finite() {
        x_lo = x_lo.min(r.1);
        x_hi = x_hi.max(r.1);
        y_hi = y_hi.max(r.2);
    }
    let ci_of = |r: &(String, f64, f64)| -> FrontierCi {
        let i = rows.iter().position(|x| std::ptr::eq(x, r))?;
        cis.get(i).copied().flatten()
    };
    for (c, w) in cis.iter().flatten() {
        if c[0].is_finite() && c[1].is_finite() && w[1].is_finite() {
            x_lo = x_lo.min(c[0]);
            x_hi = x_hi.max(c[1]);
            y_hi = y_hi.max(w[1]);
        }
    }
    if !x_lo.is_finite() {
        x_lo = 0.0;
    }
    let pad = ((x_hi - x_lo) * 0.05).max(1.0);
    let mut chart = chart_builder(root, "Cost vs p95 wait per policy", text)
        .build_cartesian_2d((x_lo - pad).max(0.0)..x_hi + pad, 0.0..y_hi * 1.1)
        .map_err(e)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("cost").y_desc("p95 wait (s)");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    for (i, (policy, front)) in frontier(rows).into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                finite()
                    .filter(|r| r.0 == policy)
                    .map(|r| Circle::new((r.1, r.2), 3, color.mix(0.4).filled())),
            )
            .map_err(e)?;
        // Error bars (cost and p95 intervals) at every point, and the frontier's p95
        // interval as a band.
        let bars: Vec<ErrorBar> = finite()
            .filter(|r| r.0 == policy)
            .filter_map(|r| ci_of(r).map(|(c, w)| ((r.1, r.2), c, w)))
            .collect();
        chart
            .draw_series(bars.iter().flat_map(|&((x, y), c, w)| {
                [
                    PathElement::new(vec![(c[0], y), (c[1], y)], color.mix(0.6)),
                    PathElement::new(vec![(x, w[0]), (x, w[1])], color.mix(0.6)),
                ]
            }))
            .map_err(e)?;
        let band: Vec<(f64, [f64; 2])> = front
            .iter()
            .filter_map(|&(x, y)| bars.iter().find(|b| b.0 == (x, y)).map(|b| (x, b.2)))
            .collect();
        if band.len() == front.len() && band.len() > 1 {
            let mut outline: Vec<(f64, f64)> = band.iter().map(|b| (b.0, b.1[0])).collect();
            outline.extend(band.iter().rev().map(|b| (b.0, b.1[1])));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    color.mix(0.15).filled(),
                )))
                .map_err(e)?;
        }
        chart
            .draw_series(LineSeries::new(front, color.stroke_width(2)))
            .map_err(e)?
            .label(policy)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if text {
        legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_keeps_only_improving_points() {
        let rows = vec![
            ("a".to_string(), 10.0, 100.0),
            ("a".to_string(), 20.0, 120.0),
            ("a".to_string(), 30.0, 50.0),
            ("b".to_string(), 5.0, f64::NAN),
            ("b".to_string(), 15.0, 80.0),
        ];
        let f = frontier(&rows);
        assert_eq!(f["a"], vec![(10.0, 100.0), (30.0, 50.0)]);
        assert_eq!(f["b"], vec![(15.0, 80.0)]);
    }

    #[test]
    fn frontier_plot_writes_svg_and_png() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows: Vec<(String, f64, f64)> = (0..12)
            .map(|i| {
                let policy = if i % 2 == 0 { "reactive" } else { "predictive" };
                (
                    policy.to_string(),
                    10.0 + i as f64,
                    600.0 / (1.0 + i as f64),
                )
            })
            .collect();
        let svg = dir.path().join("frontier.svg");
        frontier_plot(&rows, &svg).expect("svg");
        let text = std::fs::read_to_string(&svg).expect("read svg");
        assert!(text.trim_start().starts_with("<svg") && text.trim_end().ends_with("</svg>"));
        assert!(text.contains("<polyline") || text.contains("<path"));
        // The in-memory SVG (embedded in sweep.html) is the file's bytes.
        assert_eq!(frontier_svg(&rows).expect("svg string"), text);
        let png = dir.path().join("frontier.png");
        frontier_plot(&rows, &png).expect("png");
        let bytes = std::fs::read(&png).expect("read png");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000);
        // No rows at all still gives an (empty) chart rather than an error.
        frontier_plot(&[], &dir.path().join("empty.svg")).expect("empty");
    }
}
