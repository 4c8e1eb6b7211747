//! Chronological evaluation of the run-time model on traces, beside the baselines.
//!
//! `cargo run --release -p rustci-models --example eval_traces -- TRACE...`

use std::path::Path;
use std::time::Instant;

use rustci_datasets::open_trace;
use rustci_models::dataset::prepare;
use rustci_models::eval::chronological;
use rustci_models::features::choose_extras;
use rustci_models::TrainParams;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut params = TrainParams::default();
    if std::env::var("TARGET").as_deref() == Ok("log") {
        params.target = rustci_models::train::Target::Log;
    }
    let config = params.check()?;
    for arg in std::env::args().skip(1) {
        let t0 = Instant::now();
        let trace = open_trace(Path::new(&arg), None)?;
        let unix_start = trace.meta.unix_start.or(Some(0));
        let records = trace.collect::<Result<Vec<_>, _>>()?;
        let extras = choose_extras(records.iter());
        let data = prepare(&records, unix_start, extras);
        let t1 = Instant::now();
        let (model, e, _) = chronological(&config, &data, 0.7)?;
        let b = &e.baselines;
        println!(
            "{arg}\n  jobs {} test {} | prep {:.1}s fit+eval {:.1}s | w_forest {} stack {:.2?}\n  model MAE {:.0} (lin {:.0}, forest {:.0}) P90 cov {:.3} under {:.2} mdape {:.2}\n  requested {:?} tsafrir {:.0} last5 {:.0}  => vs best baseline {:+.1}%",
            e.train_jobs + e.test_jobs,
            e.test_jobs,
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64(),
            model.forest_weight,
            model.stack,
            e.model.mae_s,
            e.linear.map_or(f64::NAN, |m| m.mae_s),
            e.forest.map_or(f64::NAN, |m| m.mae_s),
            e.model.upper_coverage.unwrap_or(f64::NAN),
            e.model.under_rate,
            e.model.median_ape,
            b.requested.map(|m| m.mae_s.round()),
            b.tsafrir.mae_s,
            b.last5_median.mae_s,
            (e.model.mae_s / b.best_mae() - 1.0) * 100.0,
        );
        if !model.notes.is_empty() {
            println!("  notes: {:?}", model.notes);
        }
    }
    Ok(())
}
