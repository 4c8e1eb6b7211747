//! The self-contained HTML report of one run: the summary table and every run plot as
//! inline SVG (no scripts, styles or images from anywhere else), so the one file can be
//! mailed or attached to a CI run and still show everything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::plots::{PlotError, RunPlotData};
use crate::report::Report;

#[derive(Debug, Error)]
pub enum HtmlError {
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".to_string(),
    }
}

/// A run page's start, through its `<h1>` of `title`.
fn run_head(title: &str) -> String {
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:960px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}figure{{margin:2em 0}}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
    h
}

/// The report as one HTML document.
pub fn render(report: &Report, plots: &RunPlotData) -> Result<String, HtmlError> {
    let mut h = run_head(&format!("rustci-sim report: {}", report.workload));
    let _ = writeln!(
        h,
        "<p>policy <b>{}</b>, predictor <b>{}</b>{}</p>",
        esc(&report.policy),
        esc(&report.predictor),
        report
            .autoscaler
            .as_ref()
            .map(|a| format!(", autoscaler <b>{}</b>", esc(&a.policy)))
            .unwrap_or_default()
    );
    h.push_str("<table id=\"summary\">\n<tr><th>figure</th><th>value</th></tr>\n");
    let rows: [(&str, String); 10] = [
        ("jobs", report.jobs.to_string()),
        ("runner-hours", num(Some(report.runner_hours), 1)),
        ("cost", num(Some(report.cost), 2)),
        ("wait mean (s)", num(report.wait_mean_s, 1)),
        ("wait p50 (s)", num(report.wait_p50_s, 1)),
        ("wait p95 (s)", num(report.wait_p95_s, 1)),
        ("wait p99 (s)", num(report.wait_p99_s, 1)),
        ("bounded slowdown, mean", num(report.bsld_mean, 2)),
        ("utilization", num(Some(report.utilization), 3)),
        ("Jain fairness (tenant bsld)", num(report.jain_fairness, 3)),
    ];
    let pipeline_rows: Vec<(&str, String)> = report
        .pipelines
        .as_ref()
        .map(|p| {
            vec![
                ("pipelines", p.count.to_string()),
                ("time to feedback mean (s)", num(p.ttf_mean_s, 1)),
                ("time to feedback p95 (s)", num(p.ttf_p95_s, 1)),
                (
                    "jobs cancelled by supersession",
                    p.superseded_jobs.to_string(),
                ),
                (
                    "runner-hours saved by supersession",
                    num(Some(p.saved_runner_hours), 2),
                ),
                ("ETA within 10%", num(p.eta_within_10pct, 3)),
            ]
        })
        .unwrap_or_default();
    for (k, v) in rows.into_iter().chain(pipeline_rows) {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>\n<table id=\"qos\">\n<tr><th>QoS class</th><th>jobs</th><th>wait mean (s)</th><th>wait p95 (s)</th><th>within target</th></tr>\n");
    for (name, q) in &report.qos {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            q.jobs,
            num(q.wait_mean_s, 1),
            num(q.wait_p95_s, 1),
            num(q.within_target.map(|x| x * 100.0), 1) + "%"
        );
    }
    h.push_str("</table>\n");
    for plot in plots.plots() {
        let svg = plots.svg(plot)?;
        let body = svg_body(&svg);
        let _ = write!(
            h,
            "<figure id=\"plot-{}\">\n<figcaption>{}</figcaption>\n{}\n</figure>\n",
            plot.id(),
            esc(plot.title()),
            body
        );
    }
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

/// Writes [`render`] to `path`.
pub fn write(path: &Path, report: &Report, plots: &RunPlotData) -> Result<(), HtmlError> {
    let html = render(report, plots)?;
    std::fs::write(path, html).map_err(|source| HtmlError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The report of `run --replications N`: the summary's headline figures with their 95%
/// intervals, the banded plots, and the summary JSON in full.
pub fn render_replicated(
    summary: &serde_json::Value,
    bands: &crate::plots::Bands,
) -> Result<String, HtmlError> {
    let workload = summary["workload"].as_str().unwrap_or("");
    let mut h = run_head(&format!(
        "rustci-sim report: {workload}, {} replications",
        summary["replications"]
    ));
    let _ = writeln!(
        h,
        "<p>{}; each figure is the mean over the replications with its 95% confidence interval \
         (Student's t; percentiles are taken per replication, then summarised).</p>",
        esc(summary["resampling"].as_str().unwrap_or(""))
    );
    h.push_str(
        "<table id=\"summary\">\n<tr><th>metric</th><th>mean</th><th>95% interval</th></tr>\n",
    );
    for line in crate::replicate::summary_table(summary).lines().skip(1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if let [name, mean, rest @ ..] = cells.as_slice() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                esc(mean),
                esc(&rest.join(" "))
            );
        }
    }
    h.push_str("</table>\n");
    for plot in crate::plots::Bands::PLOTS {
        let _ = write!(
            h,
            "<figure id=\"plot-{}\">\n<figcaption>{} (mean over the replications, 95% band)</figcaption>\n{}\n</figure>\n",
            plot.id(),
            esc(plot.title()),
            svg_body(&bands.svg(plot)?)
        );
    }
    let json = serde_json::to_string_pretty(summary).unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Summary (JSON)</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        esc(&json)
    );
    Ok(h)
}

/// Writes [`render_replicated`] to `path`.
pub fn write_replicated(
    path: &Path,
    summary: &serde_json::Value,
    bands: &crate::plots::Bands,
) -> Result<(), HtmlError> {
    let html = render_replicated(summary, bands)?;
    std::fs::write(path, html).map_err(|source| HtmlError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The page of `sweep --replications N`: the frontier with error bars and bands, and
/// per point its cost and p95 wait as mean and 95% interval.
pub fn render_sweep_replicated(summaries: &[serde_json::Value], frontier_svg: &str) -> String {
    let mut h = String::new();
    h.push_str(SWEEP_HEAD);
    let reps = summaries
        .first()
        .map_or(0, |s| s["replications"].as_u64().unwrap_or(0));
    let _ = write!(
        h,
        "<p>Every point on the same {reps} replications ({}); figures are means with their 95% \
         confidence intervals (Student's t).</p>\n<figure id=\"plot-frontier\">\n<figcaption>Cost vs \
         p95 wait per policy (error bars and bands: 95% intervals)</figcaption>\n{}\n</figure>\n",
        esc(summaries.first().and_then(|s| s["resampling"].as_str()).unwrap_or("")),
        svg_body(frontier_svg)
    );
    h.push_str(
        "<table id=\"points\">\n<tr><th>point</th><th>policy</th><th>autoscaler</th><th>runners</th>\
         <th>load</th><th>cost [95% CI]</th><th>wait p95 s [95% CI]</th></tr>\n",
    );
    let ci = |s: &serde_json::Value, k: &str| {
        let v = num(s[k].as_f64(), 1);
        match s[format!("{k}_ci95")].as_array() {
            Some(a) => format!(
                "{v} [{}, {}]",
                num(a.first().and_then(serde_json::Value::as_f64), 1),
                num(a.get(1).and_then(serde_json::Value::as_f64), 1)
            ),
            None => v,
        }
    };
    for s in summaries {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s["point"],
            esc(s["policy"].as_str().unwrap_or("")),
            esc(s["autoscaler"].as_str().unwrap_or("")),
            s["total_runners"],
            s["load"],
            esc(&ci(s, "cost")),
            esc(&ci(s, "wait_p95_s"))
        );
    }
    h.push_str("</table>\n</body>\n</html>\n");
    h
}

/// Strips anything before an SVG document's `<svg` (plotters writes no XML prolog, but a
/// future one must not land mid-document).
fn svg_body(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// The start of a sweep's page, through its heading.
const SWEEP_HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
     <title>rustci-sim sweep</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1100px}\
     table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
     th:nth-child(2),td:nth-child(2),th:nth-child(3),td:nth-child(3){text-align:left}figure{margin:2em 0}</style>\n\
     </head>\n<body>\n<h1>rustci-sim sweep</h1>\n";

/// The sweep's HTML page: the cost vs p95 frontier (inline SVG, from `frontier_svg`), with
/// pipelines a time-to-feedback CDF per policy for each setting of the other axes
/// (`ttf_cdfs`: the setting and its SVG, from `plots::ttf_cdf_svg`; `ttf_left_out`
/// settings not drawn), and one table row per point, self-contained like the run report.
pub fn render_sweep(
    rows: &[crate::sweep::Row],
    frontier_svg: &str,
    ttf_cdfs: &[(String, String)],
    ttf_left_out: usize,
) -> String {
    let mut h = String::new();
    h.push_str(SWEEP_HEAD);
    let _ = write!(
        h,
        "<figure id=\"plot-frontier\">\n<figcaption>Cost vs p95 wait per policy</figcaption>\n{}\n</figure>\n",
        svg_body(frontier_svg)
    );
    for (i, (setting, svg)) in ttf_cdfs.iter().enumerate() {
        let _ = write!(
            h,
            "<figure id=\"plot-ttf-cdf-{i}\" class=\"ttf-cdf\">\n<figcaption>Pipeline time to feedback CDF per policy: {}</figcaption>\n{}\n</figure>\n",
            esc(setting),
            svg_body(svg)
        );
    }
    if ttf_left_out > 0 {
        let _ = writeln!(
            h,
            "<p>{ttf_left_out} more settings' time-to-feedback CDFs are not drawn; their figures are in sweep.csv.</p>"
        );
    }
    let pipelines = rows.iter().any(|r| r.pipelines.is_some());
    h.push_str(
        "<table id=\"points\">\n<tr><th>point</th><th>policy</th><th>autoscaler</th><th>runners</th>\
         <th>load</th><th>cost</th><th>runner-hours</th><th>wait p95 (s)</th><th>bsld</th>",
    );
    if pipelines {
        h.push_str("<th>time to feedback mean (s)</th><th>time to feedback p95 (s)</th>");
    }
    h.push_str("</tr>\n");
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            r.point,
            esc(&r.policy),
            esc(&r.autoscaler),
            r.total_runners,
            num(Some(r.load), 2),
            num(Some(r.cost), 2),
            num(Some(r.runner_hours), 1),
            num(r.wait_p95_s, 0),
            num(r.bsld_mean, 2)
        );
        if pipelines {
            let p = r.pipelines.as_ref();
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td>",
                num(p.and_then(|p| p.ttf_mean_s), 0),
                num(p.and_then(|p| p.ttf_p95_s), 0)
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n</body>\n</html>\n");
    h
}
