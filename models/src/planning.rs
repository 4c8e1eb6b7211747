//! How the scheduler uses a model's prediction: the value it plans with ([`PlanWith`]),
//! what a job that outlives it is expected to take ([`Correction`]), and the choice
//! `rustci retrain` makes between them by replaying held-out history ([`PlanChoice`]),
//! stored in the artifact so that `rustci-sim --predictor model:DIR` and `rustci serve
//! --model DIR` use it by default.

use rustci_scheduler::predictor::{tsafrir_correction, Estimate};
use rustci_scheduler::Millis;
use serde::{Deserialize, Serialize};

use crate::train::Target;

/// What a running job that outlived its estimate is expected to take (EASY++'s
/// correction), as a total run time from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// The model's upper quantile first, then Tsafrir's steps beyond it.
    #[default]
    UpperThenIncremental,
    /// Tsafrir's steps (1 min, 5, 15, 30 min, 1 h, ...) beyond the planned estimate.
    Incremental,
    /// Twice the time the job has run so far (recursive doubling), stopping once at the
    /// request.
    Doubling,
    /// The user's request, then doubling beyond it if the job outlives that too.
    Request,
}

impl Correction {
    /// The total run time to expect after `corrections` earlier corrections of a job
    /// planned at `estimate.point_ms`.
    pub fn apply(
        self,
        estimate: Estimate,
        corrections: u32,
        requested_ms: Option<Millis>,
    ) -> Millis {
        let point = estimate.point_ms.max(1);
        let requested = requested_ms.filter(|&r| r > 0);
        match self {
            Correction::UpperThenIncremental if estimate.upper_ms > point => match corrections {
                0 => estimate.upper_ms,
                n => tsafrir_correction(estimate.upper_ms, n - 1, requested),
            },
            Correction::UpperThenIncremental | Correction::Incremental => {
                tsafrir_correction(point, corrections, requested)
            }
            Correction::Doubling => doubling(point, corrections, requested),
            Correction::Request => match requested {
                Some(r) if r > point => match corrections {
                    0 => r,
                    n => doubling(r, n - 1, None),
                },
                _ => doubling(point, corrections, requested),
            },
        }
    }
}

/// `first` doubled `corrections + 1` times, each time from the previous value (the time
/// run so far), stopping once at the request (a job that outlives its request as well
/// keeps doubling from there).
fn doubling(first: Millis, corrections: u32, requested: Option<Millis>) -> Millis {
    let mut e = first.max(1);
    for _ in 0..=corrections.min(64) {
        e = match requested {
            Some(r) if e < r => e.saturating_mul(2).min(r),
            _ => e.saturating_mul(2),
        };
    }
    e
}

/// Which of the model's values the scheduler plans with (`Estimate::point_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanWith {
    /// The point estimate (least absolute error).
    #[default]
    Point,
    /// The upper quantile (P90 by default): fewer jobs outlive their plan.
    Upper,
    /// The point corrected by its key's recent bias, learned online: the median log
    /// residual of the key's last finished jobs (`calibration::KeyResiduals::bias`), so
    /// that a user whose jobs have lately run shorter (or longer) than predicted is
    /// planned so at once, without retraining. The point where the key has too few.
    Debiased,
    /// The point moved down to the 10th percentile of its key's last log residuals (the
    /// same residuals the per-key P90 and the bias are read from), never above the point;
    /// the point where the key has too few (`calibration::KeyResiduals::low`). Bounded
    /// slowdown is decided by short jobs: a job planned long when it may well be short
    /// waits behind the queue, while one planned short that runs long only needs its
    /// correction (best with `Correction::Request`: the user's own bound).
    #[serde(rename = "p10")]
    Low10,
    /// As [`PlanWith::Low10`], the 20th percentile.
    #[serde(rename = "p20")]
    Low20,
    /// As [`PlanWith::Low10`], the 30th percentile.
    #[serde(rename = "p30")]
    Low30,
    /// As [`PlanWith::Low10`], the 40th percentile.
    #[serde(rename = "p40")]
    Low40,
}

impl PlanWith {
    pub fn name(self) -> &'static str {
        match self {
            PlanWith::Point => "point",
            PlanWith::Upper => "upper",
            PlanWith::Debiased => "debiased",
            PlanWith::Low10 => "p10",
            PlanWith::Low20 => "p20",
            PlanWith::Low30 => "p30",
            PlanWith::Low40 => "p40",
        }
    }

    /// The quantile of the key's residuals a `Low` plan reads; `None` for the others.
    pub fn low_quantile(self) -> Option<f64> {
        match self {
            PlanWith::Low10 => Some(0.1),
            PlanWith::Low20 => Some(0.2),
            PlanWith::Low30 => Some(0.3),
            PlanWith::Low40 => Some(0.4),
            PlanWith::Point | PlanWith::Upper | PlanWith::Debiased => None,
        }
    }
}

impl Correction {
    pub fn name(self) -> &'static str {
        match self {
            Correction::UpperThenIncremental => "upper",
            Correction::Incremental => "incremental",
            Correction::Doubling => "doubling",
            Correction::Request => "request",
        }
    }
}

/// The planning estimate and the correction together: what a predictor without
/// overrides uses. The default (point, upper then incremental) is what a model without a
/// stored choice means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub plan_with: PlanWith,
    pub correction: Correction,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plan with {}, correct with {}",
            self.plan_with.name(),
            self.correction.name()
        )
    }
}

/// Every candidate `rustci retrain` replays, in order of preference on a tie: the point
/// before the upper quantile before the debiased point before the low percentiles, and
/// with each the default correction first, then the others from the least to the most
/// pessimistic. Planning with the upper quantile leaves no margin above the plan, so its
/// `upper` correction is `incremental` and is not replayed twice. The low percentiles
/// are replayed with the request only: planned short and corrected by small steps
/// (`incremental`, `doubling`) or the model's P90, a long job is re-planned again and
/// again and the head job's reservation with it (on CTC-SP2 at the 10th percentile,
/// mean bounded slowdown 99 with doubling and 111 with incremental against 20 with the
/// request; README, issue 19).
pub const CANDIDATES: [Usage; 15] = {
    const fn u(plan_with: PlanWith, correction: Correction) -> Usage {
        Usage {
            plan_with,
            correction,
        }
    }
    use Correction::*;
    use PlanWith::*;
    [
        u(Point, UpperThenIncremental),
        u(Point, Incremental),
        u(Point, Doubling),
        u(Point, Request),
        u(Upper, Incremental),
        u(Upper, Doubling),
        u(Upper, Request),
        u(Debiased, UpperThenIncremental),
        u(Debiased, Incremental),
        u(Debiased, Doubling),
        u(Debiased, Request),
        u(Low10, Request),
        u(Low20, Request),
        u(Low30, Request),
        u(Low40, Request),
    ]
};

/// The arrival-rate multipliers each candidate is replayed at; its figure is the mean.
/// Bounded slowdown on a few thousand jobs swings by several percent when one burst
/// finds room or not (HPC2N: 71.4 to 80.0 for one predictor between loads 0.995 and
/// 1.006), so one replay would choose by that luck.
pub const REPLAY_LOADS: [f64; 3] = [0.995, 1.0, 1.005];

/// Seconds in the days [`typical_day`] groups jobs by.
const DAY_S: f64 = 86_400.0;

/// The bounded slowdown of a typical day: the geometric mean, over the days that
/// submitted jobs, of each day's mean bounded slowdown. `jobs` are (submit time in
/// seconds from the replay's start, bounded slowdown); jobs of several replays of the
/// same history pool into the same days. `NaN` without jobs.
///
/// The choice is made on this rather than on the mean over all jobs because a
/// replay's mean is decided by its worst burst, and which candidate a burst happens to
/// favour does not carry over to the weeks after: on five SWF logs, choosing on the
/// held-out mean kept candidates that lost the unseen second half to Tsafrir's
/// predictor (KTH-SP2: 46.4 against 38.1), where the typical day chose ones that did not
/// (35.4; README, issue 19).
pub fn typical_day(jobs: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    let mut days: std::collections::BTreeMap<i64, (f64, u32)> = Default::default();
    for (submit_s, bsld) in jobs {
        if !(submit_s.is_finite() && bsld.is_finite()) {
            continue;
        }
        let d = days.entry((submit_s / DAY_S).floor() as i64).or_default();
        d.0 += bsld;
        d.1 += 1;
    }
    if days.is_empty() {
        return f64::NAN;
    }
    let logs: f64 = days
        .values()
        .map(|&(sum, n)| (sum / f64::from(n)).ln())
        .sum();
    (logs / days.len() as f64).exp()
}

/// One candidate's figure on the held-out replay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CandidateFigure {
    #[serde(flatten)]
    pub usage: Usage,
    /// The scale the replayed model learnt on, when `retrain` tried more than one
    /// (`None`: the version's own, in versions written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Mean bounded slowdown of EASY++ over the replayed jobs, averaged over the
    /// replays at [`HeldOutReplay::loads`].
    pub bsld_mean: f64,
    /// The bounded slowdown of a typical day of the replays ([`typical_day`]), what the
    /// choice is made on (`None` in versions written before: the mean was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsld_typical_day: Option<f64>,
    /// The standard error of that figure over the replays (of each replay's own typical
    /// day; `None` with one replay and in versions written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsld_typical_day_se: Option<f64>,
}

impl CandidateFigure {
    /// The figure the choice compares: the typical day's, else the mean.
    pub fn figure(&self) -> f64 {
        self.bsld_typical_day.unwrap_or(self.bsld_mean)
    }

    /// The usage, and the scale where one is named.
    pub fn described(&self) -> String {
        match self.target {
            Some(t) => format!("{}, {} scale", self.usage, t.name()),
            None => self.usage.to_string(),
        }
    }
}

/// The replay a choice was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutReplay {
    /// Jobs replayed (the latest part of the training history, unseen by the model
    /// that was replayed).
    pub jobs: usize,
    /// Submit time of the first replayed job (trace clock, seconds).
    pub from_submit_s: i64,
    /// The machine: e.g. `one pool of 128 processors (SWF MaxProcs)` or the fleet file.
    pub machine: String,
    /// The arrival-rate multipliers replayed (empty in versions written before: one
    /// replay at the trace's own rate).
    #[serde(default)]
    pub loads: Vec<f64>,
}

/// What `rustci retrain` chose and every candidate's figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChoice {
    #[serde(flatten)]
    pub usage: Usage,
    /// The scale chosen with it (the version's model learns on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    pub candidates: Vec<CandidateFigure>,
    pub replay: HeldOutReplay,
    /// Why this one: its figure against the default's and the runner-up's.
    pub reason: String,
}

impl PlanChoice {
    /// The candidate with the lowest [`CandidateFigure::figure`] (a typical day's bounded
    /// slowdown); a tie (within 10^-9) goes to the earlier one in `figures` (replay them
    /// in [`CANDIDATES`] order). When that lowest is on another scale than the first
    /// figure's (the configured one), it wins only if it is lower than the first scale's
    /// best by more than its standard error over the replays (the one-standard-error
    /// rule), else the first scale's best does: the scale is not switched on a
    /// difference the replays cannot tell apart.
    /// `None` when no figure is a finite number.
    pub fn pick(figures: Vec<CandidateFigure>, replay: HeldOutReplay) -> Option<Self> {
        let lowest = |scale: Option<Option<Target>>| {
            let mut best: Option<&CandidateFigure> = None;
            for f in figures
                .iter()
                .filter(|f| f.figure().is_finite() && scale.is_none_or(|t| f.target == t))
            {
                if best.is_none_or(|b| f.figure() < b.figure() - 1e-9) {
                    best = Some(f);
                }
            }
            best.copied()
        };
        let overall = lowest(None)?;
        let configured = figures[0].target;
        // Within noise of the configured scale's best: keep the configured scale.
        let kept = match overall.bsld_typical_day_se {
            Some(se) if overall.target != configured => {
                lowest(Some(configured)).filter(|h| h.figure() <= overall.figure() + se)
            }
            _ => None,
        };
        let best = kept.unwrap_or(overall);
        // The default: the default usage on the first scale replayed.
        let default = figures
            .iter()
            .find(|f| f.usage == Usage::default() && f.target == figures[0].target);
        let same =
            |a: &CandidateFigure, b: &CandidateFigure| a.usage == b.usage && a.target == b.target;
        let runner_up = figures
            .iter()
            .filter(|f| !same(f, &best) && f.figure().is_finite())
            .min_by(|a, b| a.figure().total_cmp(&b.figure()));
        let replays = match replay.loads.len() {
            0 | 1 => String::new(),
            n => format!(", {n} replays"),
        };
        let what = if best.bsld_typical_day.is_some() {
            "bounded slowdown of a typical day (geometric mean of the daily means)"
        } else {
            "mean bounded slowdown"
        };
        // The figure, and beside a typical day's the mean over the replays.
        let shown = |f: &CandidateFigure| match f.bsld_typical_day {
            Some(d) => format!("{d:.2} (mean {:.2})", f.bsld_mean),
            None => format!("{:.2}", f.bsld_mean),
        };
        let rank = if kept.is_some() {
            "within one standard error of the lowest"
        } else {
            "lowest"
        };
        let mut reason = format!(
            "{}: {rank} {what} of EASY++ on the {} held-out jobs{replays}: {}",
            best.described(),
            replay.jobs,
            shown(&best)
        );
        if let Some(d) = default.filter(|d| !same(d, &best)) {
            reason.push_str(&format!("; default {}: {}", d.described(), shown(d)));
        } else if default.is_some() {
            reason.push_str("; the default");
        }
        if let (Some(_), Some(se)) = (kept, overall.bsld_typical_day_se) {
            reason.push_str(&format!(
                "; kept over {}: {}, lower by less than its standard error over the replays ({se:.2})",
                overall.described(),
                shown(&overall)
            ));
        } else if let Some(r) = runner_up {
            reason.push_str(&format!("; next best {}: {}", r.described(), shown(r)));
        }
        Some(Self {
            usage: best.usage,
            target: best.target,
            candidates: figures,
            replay,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn est(point: Millis, upper: Millis) -> Estimate {
        Estimate {
            point_ms: point,
            upper_ms: upper,
        }
    }

    #[test]
    fn doubling_doubles_stops_once_at_the_request_then_doubles_on() {
        let e = est(10 * MIN, 20 * MIN);
        let c = Correction::Doubling;
        assert_eq!(c.apply(e, 0, Some(60 * MIN)), 20 * MIN);
        assert_eq!(c.apply(e, 1, Some(60 * MIN)), 40 * MIN);
        assert_eq!(c.apply(e, 2, Some(60 * MIN)), 60 * MIN);
        // A job that outlives its request as well.
        assert_eq!(c.apply(e, 3, Some(60 * MIN)), 120 * MIN);
        assert_eq!(c.apply(e, 4, Some(60 * MIN)), 240 * MIN);
        assert_eq!(c.apply(e, 0, None), 20 * MIN);
        assert!(c.apply(e, 200, None) > 0);
    }

    #[test]
    fn request_goes_to_the_request_then_doubles() {
        let e = est(10 * MIN, 20 * MIN);
        let c = Correction::Request;
        assert_eq!(c.apply(e, 0, Some(60 * MIN)), 60 * MIN);
        assert_eq!(c.apply(e, 1, Some(60 * MIN)), 120 * MIN);
        // No request: doubling.
        assert_eq!(c.apply(e, 0, None), 20 * MIN);
    }

    #[test]
    fn upper_then_incremental_and_incremental() {
        let e = est(10 * MIN, 20 * MIN);
        let r = Some(600 * MIN);
        let c = Correction::UpperThenIncremental;
        assert_eq!(c.apply(e, 0, r), 20 * MIN);
        assert_eq!(c.apply(e, 1, r), 21 * MIN);
        assert_eq!(c.apply(e, 2, r), 25 * MIN);
        assert_eq!(Correction::Incremental.apply(e, 0, r), 11 * MIN);
        assert_eq!(Correction::Incremental.apply(e, 1, r), 15 * MIN);
        // Without a margin above the point, both are Tsafrir's steps.
        assert_eq!(c.apply(est(10 * MIN, 10 * MIN), 0, r), 11 * MIN);
    }

    fn fig(plan_with: PlanWith, correction: Correction, bsld_mean: f64) -> CandidateFigure {
        CandidateFigure {
            usage: Usage {
                plan_with,
                correction,
            },
            target: None,
            bsld_mean,
            bsld_typical_day: None,
            bsld_typical_day_se: None,
        }
    }

    fn replay() -> HeldOutReplay {
        HeldOutReplay {
            jobs: 100,
            from_submit_s: 0,
            machine: "one pool of 4 processors".into(),
            loads: vec![1.0],
        }
    }

    #[test]
    fn pick_takes_the_lowest_and_on_a_tie_the_earlier() {
        use Correction::*;
        let figures = vec![
            fig(PlanWith::Point, UpperThenIncremental, 3.0),
            fig(PlanWith::Point, Doubling, 2.0),
            fig(PlanWith::Upper, UpperThenIncremental, 2.0),
            fig(PlanWith::Upper, Request, f64::NAN),
        ];
        let c = PlanChoice::pick(figures, replay()).unwrap();
        assert_eq!(c.usage, fig(PlanWith::Point, Doubling, 0.0).usage);
        assert!(c
            .reason
            .contains("default plan with point, correct with upper: 3.00"));
        // The typical day decides where the replays give one, not the mean.
        let mut a = fig(PlanWith::Point, UpperThenIncremental, 2.0);
        a.bsld_typical_day = Some(1.5);
        let mut b = fig(PlanWith::Low10, Request, 3.0);
        b.bsld_typical_day = Some(1.2);
        let c = PlanChoice::pick(vec![a, b], replay()).unwrap();
        assert_eq!(c.usage, b.usage);
        assert!(c.reason.contains("typical day"), "{}", c.reason);
        assert!(c.reason.contains(": 1.20 (mean 3.00)"), "{}", c.reason);
        assert!(
            c.reason
                .contains("default plan with point, correct with upper: 1.50 (mean 2.00)"),
            "{}",
            c.reason
        );
        let c = PlanChoice::pick(
            vec![
                fig(PlanWith::Point, UpperThenIncremental, 2.0),
                fig(PlanWith::Upper, UpperThenIncremental, 2.0),
            ],
            replay(),
        )
        .unwrap();
        assert_eq!(c.usage, Usage::default());
        assert!(
            PlanChoice::pick(vec![fig(PlanWith::Point, Request, f64::NAN)], replay()).is_none()
        );
    }

    #[test]
    fn a_typical_day_is_the_geometric_mean_of_the_daily_means() {
        // Day 0: bsld 1 and 3 (mean 2); day 1: 8; day 3: 4 (day 2 submitted nothing).
        let jobs = [
            (10.0, 1.0),
            (DAY_S - 1.0, 3.0),
            (DAY_S, 8.0),
            (3.5 * DAY_S, 4.0),
            (f64::NAN, 100.0),
        ];
        // (2 x 8 x 4)^(1/3) = 4.
        assert!((typical_day(jobs) - 4.0).abs() < 1e-12);
        // One bad burst moves the mean over jobs far more than the typical day.
        let burst = [(10.0, 1.0), (DAY_S + 1.0, 1.0), (2.0 * DAY_S, 1000.0)];
        assert!((typical_day(burst) - 10.0).abs() < 1e-9);
        assert!(typical_day([]).is_nan());
    }

    #[test]
    fn low_percentiles_are_stored_by_name_and_older_figures_still_load() {
        for p in [
            PlanWith::Low10,
            PlanWith::Low20,
            PlanWith::Low30,
            PlanWith::Low40,
        ] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<PlanWith>(&json).unwrap(), p);
        }
        // A figure written before the typical day existed.
        let old = r#"{"plan_with":"debiased","correction":"request","bsld_mean":2.5}"#;
        let f: CandidateFigure = serde_json::from_str(old).unwrap();
        assert_eq!(f.bsld_typical_day, None);
        assert_eq!(f.figure(), 2.5);
        let new = serde_json::to_string(&CandidateFigure {
            bsld_typical_day: Some(1.25),
            ..f
        })
        .unwrap();
        assert!(new.contains(r#""bsld_typical_day":1.25"#), "{new}");
    }

    #[test]
    fn another_scale_wins_only_by_more_than_its_standard_error() {
        // The configured (square-root) scale's best is p10 + request at 6.62; the log
        // scale's p10 + request gives 6.61 with a standard error of 0.2 over the replays.
        let low = Usage {
            plan_with: PlanWith::Low10,
            correction: Correction::Request,
        };
        let on = |target, usage: Usage, day: f64, se: Option<f64>| CandidateFigure {
            usage,
            target: Some(target),
            bsld_mean: 30.0,
            bsld_typical_day: Some(day),
            bsld_typical_day_se: se,
        };
        let figures = |log_day: f64, log_se: Option<f64>| {
            vec![
                on(Target::Sqrt, Usage::default(), 7.63, Some(0.3)),
                on(Target::Sqrt, low, 6.62, Some(0.25)),
                on(Target::Log, Usage::default(), 7.34, Some(0.3)),
                on(Target::Log, low, log_day, log_se),
            ]
        };
        // 6.62 <= 6.61 + 0.2: within noise, the square root stays.
        let c = PlanChoice::pick(figures(6.61, Some(0.2)), replay()).unwrap();
        assert_eq!((c.usage, c.target), (low, Some(Target::Sqrt)));
        assert!(
            c.reason
                .contains("kept over plan with p10, correct with request, log scale: 6.61"),
            "{}",
            c.reason
        );
        assert!(
            c.reason.contains("standard error over the replays (0.20)"),
            "{}",
            c.reason
        );
        assert!(
            c.reason.starts_with(
                "plan with p10, correct with request, sqrt scale: within one standard error of the lowest"
            ),
            "{}",
            c.reason
        );
        // 6.62 > 6.30 + 0.2: the log scale wins.
        let c = PlanChoice::pick(figures(6.30, Some(0.2)), replay()).unwrap();
        assert_eq!((c.usage, c.target), (low, Some(Target::Log)));
        assert!(c.reason.contains("next best"), "{}", c.reason);
        // Without a standard error (one replay, older versions) the lowest wins.
        let c = PlanChoice::pick(figures(6.61, None), replay()).unwrap();
        assert_eq!(c.target, Some(Target::Log));
        // On the configured scale the lowest wins however close: the rule is the scale's.
        let mut same = figures(9.0, Some(0.2));
        same.push(on(
            Target::Sqrt,
            Usage {
                plan_with: PlanWith::Low20,
                ..low
            },
            6.61,
            Some(5.0),
        ));
        let c = PlanChoice::pick(same, replay()).unwrap();
        assert_eq!(c.usage.plan_with, PlanWith::Low20);
    }

    #[test]
    fn candidates_start_with_the_default_and_are_distinct() {
        assert_eq!(CANDIDATES[0], Usage::default());
        for (i, a) in CANDIDATES.iter().enumerate() {
            assert!(CANDIDATES[i + 1..].iter().all(|b| b != a));
        }
    }
}
