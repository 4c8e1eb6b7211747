//! Per-key calibration of the upper quantile, learned online from finished jobs.
//!
//! One margin for every job (split conformal on the calibration slice,
//! `RunTimeModel::upper_margin`) is too wide for steady projects and too narrow for noisy
//! ones, and cannot follow a key whose behaviour changed after training (GitHub Actions:
//! P90 coverage 80%). So each finished job leaves its log residual
//! ln(1 + actual) - ln(1 + point predicted at its submit) under its key
//! ([`crate::dataset::calibration_key`]), and a later job of a key with at least
//! [`MIN_RESIDUALS`] of them gets the conformal quantile of that key's last
//! [`RESIDUALS_PER_KEY`] as its margin. Keys with fewer keep the global margin. (The
//! larger of the two was tried in the study: it over-covers, 0.94-0.96.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasherDefault;

use rustci_scheduler::hash::IdHasher;

use crate::dataset::Prepared;
use crate::history::median_in_place;
use crate::train::quantile;

/// Residuals remembered per key: recent enough to follow a change, few enough that
/// memory stays bounded.
pub const RESIDUALS_PER_KEY: usize = 10;
/// Fewer residuals than this and the key uses the global margin.
pub const MIN_RESIDUALS: usize = 5;
/// Fewer residuals than this and the key's point is not debiased: a median of three is
/// the least that one odd run cannot move alone.
pub const MIN_BIAS_RESIDUALS: usize = 3;

/// The log residual of a finished job against the point predicted at its submit.
pub fn residual(actual_s: f64, point_s: f64) -> f64 {
    actual_s.max(0.0).ln_1p() - point_s.max(0.0).ln_1p()
}

#[derive(Debug, Clone, Copy, Default)]
struct Ring {
    values: [f64; RESIDUALS_PER_KEY],
    next: usize,
    len: usize,
}

/// The last residuals of every key.
#[derive(Debug, Clone, Default)]
pub struct KeyResiduals {
    keys: HashMap<u64, Ring, BuildHasherDefault<IdHasher>>,
}

impl KeyResiduals {
    pub fn push(&mut self, key: u64, residual: f64) {
        if !residual.is_finite() {
            return;
        }
        let r = self.keys.entry(key).or_default();
        r.values[r.next] = residual;
        r.next = (r.next + 1) % RESIDUALS_PER_KEY;
        r.len = (r.len + 1).min(RESIDUALS_PER_KEY);
    }

    /// The key's margin for quantile `q`: the split-conformal quantile (`train::quantile`)
    /// of its last n residuals, at least 0; `None` with fewer than [`MIN_RESIDUALS`].
    /// With n at most [`RESIDUALS_PER_KEY`] (10) and q = 0.9 the conformal rank
    /// ceil((n + 1) q) is n: the largest residual. Other quantiles pick lower ranks.
    pub fn margin(&self, key: u64, q: f64) -> Option<f64> {
        self.quantile(key, q).map(|m| m.max(0.0))
    }

    /// The split-conformal quantile `q` of the key's last residuals; `None` with fewer
    /// than [`MIN_RESIDUALS`].
    fn quantile(&self, key: u64, q: f64) -> Option<f64> {
        let r = self.keys.get(&key)?;
        if r.len < MIN_RESIDUALS {
            return None;
        }
        let mut v = r.values;
        Some(quantile(&mut v[..r.len], q))
    }

    /// The key's low quantile `q` (below 0.5): the split-conformal quantile of its last
    /// residuals, at most 0 (the plan never rises above the point); `None` with fewer
    /// than [`MIN_RESIDUALS`]. With ten residuals, q = 0.1 is the second smallest and
    /// q = 0.2 the third.
    pub fn low(&self, key: u64, q: f64) -> Option<f64> {
        self.quantile(key, q).map(|m| m.min(0.0))
    }

    /// The key's bias: the median of its last residuals (log scale; positive when its
    /// jobs ran longer than predicted), `None` with fewer than [`MIN_BIAS_RESIDUALS`].
    pub fn bias(&self, key: u64) -> Option<f64> {
        let r = self.keys.get(&key)?;
        if r.len < MIN_BIAS_RESIDUALS {
            return None;
        }
        let mut v = r.values;
        median_in_place(&mut v[..r.len])
    }
}

/// `point_s` moved by a log-scale `bias` (the inverse of [`residual`]'s scale).
pub fn debias(point_s: f64, bias: f64) -> f64 {
    (point_s.max(0.0).ln_1p() + bias).exp_m1().max(0.0)
}

/// Each of `rows`' (submit order) per-key margin, as the live predictor would have it:
/// a job's residual against its `point` is filed when it finishes, so it only serves
/// jobs submitted after that (a finish at the same second as a submit counts as known,
/// as in `dataset::prepare`). `None` where the key has too few residuals.
pub fn online_margins(data: &Prepared, rows: &[usize], point: &[f64], q: f64) -> Vec<Option<f64>> {
    let mut residuals = KeyResiduals::default();
    // Pending finishes: (end, position in `rows`). Times are non-negative seconds, whose
    // bit patterns order like the values.
    let mut finishes: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let order_key = |s: f64| s.max(0.0).to_bits();
    let mut out = Vec::with_capacity(rows.len());
    for (i, &r) in rows.iter().enumerate() {
        let submit = order_key(data.submit_s[r]);
        while let Some(&Reverse((end, j))) = finishes.peek() {
            if end > submit {
                break;
            }
            finishes.pop();
            let done = rows[j];
            residuals.push(
                data.calibration_key[done],
                residual(data.run_s[done], point[j]),
            );
        }
        out.push(residuals.margin(data.calibration_key[r], q));
        finishes.push(Reverse((order_key(data.end_s[r]), i)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_needs_five_residuals_and_keeps_the_last_ten() {
        let mut k = KeyResiduals::default();
        for i in 0..4 {
            k.push(1, f64::from(i) * 0.25);
        }
        assert_eq!(k.margin(1, 0.9), None);
        k.push(1, 0.05);
        // n = 5: rank ceil(6 x 0.9) = 6, clamped to 5: the largest.
        assert_eq!(k.margin(1, 0.9), Some(0.75));
        // Twelve more: the old ones are gone; all negative -> margin 0.
        for _ in 0..12 {
            k.push(1, -0.5);
        }
        assert_eq!(k.margin(1, 0.9), Some(0.0));
        assert_eq!(k.margin(2, 0.9), None);
        k.push(3, f64::NAN);
        assert_eq!(k.keys.len(), 1);
    }

    #[test]
    fn a_low_quantile_needs_five_residuals_and_never_rises_above_the_point() {
        let mut k = KeyResiduals::default();
        for r in [0.3, -2.0, 0.1, -0.5] {
            k.push(1, r);
        }
        assert_eq!(k.low(1, 0.2), None);
        k.push(1, 0.2);
        // n = 5, sorted -2, -0.5, 0.1, 0.2, 0.3: q = 0.2 is rank ceil(6 x 0.2) = 2.
        assert_eq!(k.low(1, 0.2), Some(-0.5));
        // q = 0.4: rank 3, 0.1 above the point: the point.
        assert_eq!(k.low(1, 0.4), Some(0.0));
        // Five more, all 1: ten kept; q = 0.1 is rank ceil(11 x 0.1) = 2.
        for _ in 0..5 {
            k.push(1, 1.0);
        }
        assert_eq!(k.low(1, 0.1), Some(-0.5));
        assert_eq!(k.low(2, 0.1), None);
    }

    #[test]
    fn the_bias_is_the_median_of_three_or_more_recent_residuals() {
        let mut k = KeyResiduals::default();
        k.push(1, 2.0);
        k.push(1, -1.0);
        assert_eq!(k.bias(1), None);
        k.push(1, 0.5);
        assert_eq!(k.bias(1), Some(0.5));
        k.push(1, -3.0);
        // Even count: the mean of the two middle ones (-1 and 0.5).
        assert_eq!(k.bias(1), Some(-0.25));
        // A job predicted at 99 s whose key ran e^-1 times as long (on the ln(1+s)
        // scale): 100/e - 1 = 35.79 s.
        assert!((debias(99.0, -1.0) - (100.0 / std::f64::consts::E - 1.0)).abs() < 1e-9);
        assert!((debias(99.0, 0.0) - 99.0).abs() < 1e-9);
        assert!(debias(0.0, -5.0) >= 0.0);
    }
}
