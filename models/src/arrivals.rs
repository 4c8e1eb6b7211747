//! Arrival forecaster for the autoscaler: jobs per hour per pool (the job's label set),
//! as an hour-of-week profile (daily and weekly cycles) scaled by the recent level.

use std::collections::BTreeMap;

use rustci_datasets::JobRecord;
use rustci_scheduler::{ArrivalForecast, PoolId};
use serde::{Deserialize, Serialize};

const HOURS_PER_WEEK: usize = 168;

/// The pool key of a job: its labels, sorted and joined with `+` (`default` for none).
pub fn pool_key(labels: &[String]) -> String {
    if labels.is_empty() {
        return "default".to_string();
    }
    let mut l: Vec<&str> = labels.iter().map(String::as_str).collect();
    l.sort_unstable();
    l.dedup();
    l.join("+")
}

/// The labels of a [`pool_key`] (none for `default`).
pub fn key_labels(key: &str) -> Vec<&str> {
    if key == "default" {
        Vec::new()
    } else {
        key.split('+').collect()
    }
}

/// One pool's weekly profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Mean jobs per hour, for each hour of the week (Monday 00:00 UTC first).
    pub per_hour: Vec<f64>,
    /// Recent four weeks' volume over the whole training span's (trend correction).
    pub level: f64,
}

/// Forecasts per pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ArrivalModel {
    pub pools: BTreeMap<String, Profile>,
}

/// Forecast error on held-out hours, beside "same hour last week".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArrivalMetrics {
    pub hours: usize,
    pub mae_jobs_per_hour: f64,
    pub naive_last_week_mae: f64,
}

fn hour_index(unix_s: i64) -> (i64, usize) {
    let hour = unix_s.div_euclid(3600);
    // 1970-01-01 00:00 UTC was a Thursday: hour 0 is hour 72 of a Monday-first week.
    let how = (hour + 72).rem_euclid(HOURS_PER_WEEK as i64) as usize;
    (hour, how)
}

fn hourly_counts(records: &[JobRecord], unix_start: i64) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let mut m: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for r in records {
        let (hour, _) = hour_index(unix_start + r.submit_s);
        *m.entry(pool_key(&r.labels))
            .or_default()
            .entry(hour)
            .or_default() += 1.0;
    }
    m
}

impl ArrivalModel {
    /// Fits on `records` (their submit times on the trace clock, `unix_start` its epoch).
    pub fn fit(records: &[JobRecord], unix_start: i64) -> Self {
        let (Some(first), Some(last)) = (
            records.iter().map(|r| r.submit_s).min(),
            records.iter().map(|r| r.submit_s).max(),
        ) else {
            return Self::default();
        };
        let (h0, _) = hour_index(unix_start + first);
        let (h1, _) = hour_index(unix_start + last);
        let span = (h1 - h0 + 1).max(1);
        let mut pools = BTreeMap::new();
        for (pool, counts) in hourly_counts(records, unix_start) {
            let mut sum = vec![0.0; HOURS_PER_WEEK];
            let mut seen = vec![0.0; HOURS_PER_WEEK];
            for h in h0..=h1 {
                let how = (h + 72).rem_euclid(HOURS_PER_WEEK as i64) as usize;
                sum[how] += counts.get(&h).copied().unwrap_or(0.0);
                seen[how] += 1.0;
            }
            let per_hour: Vec<f64> = sum
                .iter()
                .zip(&seen)
                .map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 })
                .collect();
            let total: f64 = counts.values().sum();
            let recent_from = h1 - 4 * HOURS_PER_WEEK as i64;
            let level = if span > 8 * HOURS_PER_WEEK as i64 {
                let recent: f64 = counts.range(recent_from..).map(|(_, c)| c).sum();
                let recent_rate = recent / (4 * HOURS_PER_WEEK) as f64;
                let rate = total / span as f64;
                if rate > 0.0 {
                    (recent_rate / rate).clamp(0.25, 4.0)
                } else {
                    1.0
                }
            } else {
                1.0
            };
            pools.insert(pool, Profile { per_hour, level });
        }
        Self { pools }
    }

    /// Expected jobs in the hour containing `unix_s` for `pool`.
    pub fn per_hour(&self, pool: &str, unix_s: i64) -> f64 {
        let (_, how) = hour_index(unix_s);
        self.pools
            .get(pool)
            .map_or(0.0, |p| p.per_hour[how] * p.level)
    }

    /// Expected jobs for `pool` in `[from, from + seconds)`.
    pub fn expected(&self, pool: &str, from_unix_s: i64, seconds: i64) -> f64 {
        let mut total = 0.0;
        let mut t = from_unix_s;
        let end = from_unix_s + seconds.max(0);
        while t < end {
            let next = (t.div_euclid(3600) + 1) * 3600;
            let part = (next.min(end) - t) as f64 / 3600.0;
            total += part * self.per_hour(pool, t);
            t = next;
        }
        total
    }

    /// Hourly error on `test` records (all pools), beside the same hour a week earlier
    /// taken from `history` + `test`.
    pub fn evaluate(
        &self,
        history: &[JobRecord],
        test: &[JobRecord],
        unix_start: i64,
    ) -> Option<ArrivalMetrics> {
        let (first, last) = (
            test.iter().map(|r| r.submit_s).min()?,
            test.iter().map(|r| r.submit_s).max()?,
        );
        let (h0, _) = hour_index(unix_start + first);
        let (h1, _) = hour_index(unix_start + last);
        let mut all: BTreeMap<String, BTreeMap<i64, f64>> = hourly_counts(history, unix_start);
        for (pool, counts) in hourly_counts(test, unix_start) {
            let e = all.entry(pool).or_default();
            for (h, c) in counts {
                *e.entry(h).or_default() += c;
            }
        }
        let test_counts = hourly_counts(test, unix_start);
        let (mut err, mut naive, mut n) = (0.0, 0.0, 0usize);
        for (pool, counts) in &test_counts {
            for h in h0..=h1 {
                let actual = counts.get(&h).copied().unwrap_or(0.0);
                let forecast = self.per_hour(pool, h * 3600);
                let last_week = all
                    .get(pool)
                    .and_then(|c| c.get(&(h - HOURS_PER_WEEK as i64)))
                    .copied()
                    .unwrap_or(0.0);
                err += (forecast - actual).abs();
                naive += (last_week - actual).abs();
                n += 1;
            }
        }
        (n > 0).then(|| ArrivalMetrics {
            hours: n,
            mae_jobs_per_hour: err / n as f64,
            naive_last_week_mae: naive / n as f64,
        })
    }
}

const MS_PER_HOUR: i64 = 3_600_000;
/// Hours of exposure below which the level is not trusted (avoids a huge rate from the
/// first few arrivals).
const MIN_EXPOSURE_H: f64 = 1.0 / 6.0;

/// The fitted [`ArrivalModel`] as the core's forecast: pool `p` of the scheduler serves
/// the job label sets `keys[p]` (see [`pool_key`]); `epoch_ms` is the Unix time of the
/// driver's time 0.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedArrivals {
    pub model: ArrivalModel,
    pub keys: Vec<Vec<String>>,
    pub epoch_ms: i64,
}

impl ArrivalForecast for FittedArrivals {
    fn expected_arrivals(&self, pool: PoolId, from_ms: i64, duration_ms: i64) -> f64 {
        let Some(keys) = self.keys.get(pool.0 as usize) else {
            return 0.0;
        };
        let from_s = (from_ms + self.epoch_ms).div_euclid(1000);
        keys.iter()
            .map(|k| self.model.expected(k, from_s, duration_ms / 1000))
            .sum()
    }

    fn name(&self) -> &str {
        "fitted-arrivals"
    }
}

/// After this long observing live arrivals, the online learner alone forecasts.
const PROFILE_HANDOVER_MS: i64 = 24 * MS_PER_HOUR;

/// The live service's forecast (`rustci serve --model DIR --autoscaler predictive`): the
/// weekly profile of the model version in use (read at every call, so a new version takes
/// over at once) blended with an [`OnlineArrivals`] learner. The learner's weight grows
/// with the time it has observed, from 0 at its first arrival to 1 a day later: the
/// trained profile covers a cold start (a restart, a new pool) and the learner follows
/// what the fleet does now. Without a profile in the model, the learner alone.
#[derive(Debug, Clone)]
pub struct ProfiledArrivals {
    model: crate::ModelHandle,
    /// Pool `p` of the scheduler serves the job label sets `keys[p]` (see [`pool_key`]).
    keys: Vec<Vec<String>>,
    epoch_ms: i64,
    online: OnlineArrivals,
    first_ms: Option<i64>,
}

impl ProfiledArrivals {
    /// `epoch_ms` is the Unix time of the driver's time 0; the learner forgets with
    /// `half_life_ms` and starts at `start_ms` (driver time).
    pub fn new(
        model: crate::ModelHandle,
        keys: Vec<Vec<String>>,
        epoch_ms: i64,
        half_life_ms: i64,
        start_ms: i64,
    ) -> Self {
        Self {
            model,
            keys,
            epoch_ms,
            online: OnlineArrivals::new(epoch_ms, half_life_ms, start_ms),
            first_ms: None,
        }
    }

    /// The profile's expected arrivals for `pool`, if the model has a profile.
    fn profiled(&self, pool: PoolId, from_ms: i64, duration_ms: i64) -> Option<f64> {
        let model = self.model.arrivals()?;
        let keys = self.keys.get(pool.0 as usize)?;
        let from_s = (from_ms + self.epoch_ms).div_euclid(1000);
        Some(
            keys.iter()
                .map(|k| model.expected(k, from_s, duration_ms / 1000))
                .sum(),
        )
    }
}

impl ArrivalForecast for ProfiledArrivals {
    fn expected_arrivals(&self, pool: PoolId, from_ms: i64, duration_ms: i64) -> f64 {
        let online = self.online.expected_arrivals(pool, from_ms, duration_ms);
        let Some(profiled) = self.profiled(pool, from_ms, duration_ms) else {
            return online;
        };
        let seen = self.first_ms.map_or(0, |f| (from_ms - f).max(0));
        let w = (seen as f64 / PROFILE_HANDOVER_MS as f64).min(1.0);
        w * online + (1.0 - w) * profiled
    }

    fn observe(&mut self, pool: PoolId, at_ms: i64) {
        self.first_ms = Some(self.first_ms.map_or(at_ms, |f| f.min(at_ms)));
        self.online.observe(pool, at_ms);
    }

    fn name(&self) -> &str {
        if self.model.arrivals().is_some() {
            "model profile + online"
        } else {
            "online"
        }
    }
}

/// An arrival forecaster that learns online, from the arrivals seen so far only (what a
/// replay may use without looking ahead): per pool, the rate is a level times an
/// hour-of-day shape. The shape is the mean arrivals per hour of the day over the hours
/// seen (flat until a whole day is seen); the level is the recent arrivals (decayed with
/// a half-life) over what the shape expected in the same decayed time, so it follows
/// weekends and trends within about a half-life.
#[derive(Debug, Clone)]
pub struct OnlineArrivals {
    epoch_ms: i64,
    half_life_ms: f64,
    start_ms: i64,
    pools: Vec<OnlinePool>,
}

#[derive(Debug, Clone)]
struct OnlinePool {
    /// Arrivals and hours observed per hour of the day.
    counts: [f64; 24],
    hours: [f64; 24],
    /// Decayed arrivals and decayed shape-weighted hours, as of `at_ms`.
    recent: f64,
    exposure: f64,
    at_ms: i64,
}

impl OnlineArrivals {
    /// Learning starts at `start_ms` (driver time); `epoch_ms` is the Unix time of the
    /// driver's time 0 (for the hour of day).
    pub fn new(epoch_ms: i64, half_life_ms: i64, start_ms: i64) -> Self {
        Self {
            epoch_ms,
            half_life_ms: half_life_ms.max(1) as f64,
            start_ms,
            pools: Vec::new(),
        }
    }

    fn hour_of_day(&self, t_ms: i64) -> usize {
        ((t_ms + self.epoch_ms).div_euclid(MS_PER_HOUR)).rem_euclid(24) as usize
    }

    /// The shape at hour `h` (mean 1 over the day; 1 until a whole day is seen).
    fn shape(p: &OnlinePool, h: usize) -> f64 {
        let total_hours: f64 = p.hours.iter().sum();
        let total: f64 = p.counts.iter().sum();
        if total_hours < 24.0 || total <= 0.0 || p.hours[h] <= 0.0 {
            return 1.0;
        }
        // A floor keeps a quiet hour from shutting the forecast off entirely.
        ((p.counts[h] / p.hours[h]) / (total / total_hours)).max(0.02)
    }

    /// Walks `[from, to)` in pieces that end on hour boundaries.
    fn pieces(&self, from: i64, to: i64, mut f: impl FnMut(usize, i64, i64)) {
        let mut t = from;
        while t < to {
            let next =
                ((t + self.epoch_ms).div_euclid(MS_PER_HOUR) + 1) * MS_PER_HOUR - self.epoch_ms;
            let end = next.min(to);
            f(self.hour_of_day(t), t, end);
            t = end;
        }
    }

    /// Shape-weighted hours of `[from, to)`: the "operational time" in which arrivals
    /// are expected at a constant level. Decay runs on it, so a quiet night (small shape)
    /// does not wash out what the day before taught.
    fn op_hours(&self, p: &OnlinePool, from: i64, to: i64) -> f64 {
        let mut tau = 0.0;
        self.pieces(from, to, |h, a, b| {
            tau += Self::shape(p, h) * (b - a) as f64 / MS_PER_HOUR as f64;
        });
        tau
    }

    /// `(recent, exposure)` of `p` carried forward by `tau` operational hours without
    /// arrivals: both decay, and the exposure gains the decayed operational time.
    fn carried(&self, p: &OnlinePool, tau: f64) -> (f64, f64) {
        let hl_h = self.half_life_ms / MS_PER_HOUR as f64;
        let decay = (-tau / hl_h).exp2();
        (
            p.recent * decay,
            p.exposure * decay + hl_h / std::f64::consts::LN_2 * (1.0 - decay),
        )
    }

    /// Brings pool `i` forward to `to`: hours seen per hour of the day, and decay.
    fn advance(&mut self, i: usize, to: i64) {
        let Some(p) = self.pools.get(i) else { return };
        let from = p.at_ms;
        if to <= from {
            return;
        }
        let mut hours = p.hours;
        self.pieces(from, to, |h, a, b| {
            hours[h] += (b - a) as f64 / MS_PER_HOUR as f64;
        });
        let tau = self.op_hours(p, from, to);
        let (recent, exposure) = self.carried(p, tau);
        if let Some(p) = self.pools.get_mut(i) {
            p.hours = hours;
            p.recent = recent;
            p.exposure = exposure;
            p.at_ms = to;
        }
    }

    /// Jobs per hour at shape 1 for `p` as of `at`.
    fn level(&self, p: &OnlinePool, at: i64) -> f64 {
        let (recent, exposure) = if at > p.at_ms {
            self.carried(p, self.op_hours(p, p.at_ms, at))
        } else {
            (p.recent, p.exposure)
        };
        recent / exposure.max(MIN_EXPOSURE_H)
    }
}

impl ArrivalForecast for OnlineArrivals {
    fn expected_arrivals(&self, pool: PoolId, from_ms: i64, duration_ms: i64) -> f64 {
        let Some(p) = self.pools.get(pool.0 as usize) else {
            return 0.0;
        };
        // The level as of the window's start: a silence since the last arrival lowers it.
        let level = self.level(p, from_ms);
        let mut total = 0.0;
        self.pieces(from_ms, from_ms + duration_ms.max(0), |h, a, b| {
            total += level * Self::shape(p, h) * (b - a) as f64 / MS_PER_HOUR as f64;
        });
        total
    }

    fn observe(&mut self, pool: PoolId, at_ms: i64) {
        let i = pool.0 as usize;
        while self.pools.len() <= i {
            self.pools.push(OnlinePool {
                counts: [0.0; 24],
                hours: [0.0; 24],
                recent: 0.0,
                exposure: 0.0,
                at_ms: self.start_ms,
            });
        }
        self.advance(i, at_ms);
        let h = self.hour_of_day(at_ms);
        if let Some(p) = self.pools.get_mut(i) {
            p.counts[h] += 1.0;
            p.recent += 1.0;
        }
    }

    fn name(&self) -> &str {
        "online-arrivals"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_profile_repeats() {
        // Two weeks: 3 jobs every Monday 09:00 UTC hour, nothing else.
        // 1970-01-05 was a Monday.
        let monday9 = 4 * 86_400 + 9 * 3600;
        let mut recs = Vec::new();
        for week in 0..2 {
            for k in 0..3 {
                recs.push(JobRecord::new(
                    "j",
                    "u",
                    monday9 + week * 7 * 86_400 + k * 60,
                ));
            }
        }
        let m = ArrivalModel::fit(&recs, 0);
        let next_monday9 = monday9 + 14 * 86_400;
        assert!((m.per_hour("default", next_monday9) - 3.0).abs() < 1e-9);
        assert_eq!(m.per_hour("default", next_monday9 + 3600), 0.0);
        assert!((m.expected("default", next_monday9 - 1800, 3600) - 1.5).abs() < 1e-9);
        assert_eq!(pool_key(&["b".into(), "a".into()]), "a+b");
        assert_eq!(key_labels("a+b"), ["a", "b"]);
        assert!(key_labels(&pool_key(&[])).is_empty());
    }

    #[test]
    fn online_arrivals_learn_a_steady_rate_and_a_daily_shape() {
        // 12 jobs per hour from 08:00 to 20:00, none at night, for three days.
        let mut f = OnlineArrivals::new(0, 3_600_000, 0);
        let pool = PoolId(0);
        for day in 0..3 {
            for hour in 8..20 {
                for k in 0..12 {
                    let t = ((day * 24 + hour) * 3600 + k * 300) * 1000;
                    f.observe(pool, t);
                }
            }
        }
        // Day 4, 08:00: the shape says day hours carry about twice the daily mean, and
        // the quiet night (expected) has not lowered the level: about 12 jobs in the hour.
        let t = (3 * 24 + 8) * 3_600_000;
        let day = f.expected_arrivals(pool, t, 3_600_000);
        assert!((day - 12.0).abs() < 3.0, "day hour: {day}");
        let night = f.expected_arrivals(pool, (3 * 24 + 2) * 3_600_000, 3_600_000);
        assert!(night < day * 0.2, "night {night} vs day {day}");
        assert_eq!(f.expected_arrivals(PoolId(3), t, 3_600_000), 0.0);
    }
}
