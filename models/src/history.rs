//! Per-key run-time history: what a job's earlier runs looked like when it was submitted.
//!
//! The same structure serves training (fed from a trace in event order) and inference
//! (fed by the core's `Predictor::observe` as jobs finish), so a feature means the same
//! thing in both places.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustci_scheduler::hash::IdHasher;

/// How many recent runs a key remembers.
pub const RECENT: usize = 5;

/// One key's history (a user, a job name of that user, a branch of that user).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyHistory {
    /// Most recent first; only the first `min(count, RECENT)` are set.
    recent: [f64; RECENT],
    /// Requested time of those runs (NaN when the job gave none), same order.
    recent_requested: [f64; RECENT],
    pub count: u64,
    sum: f64,
    /// When the last observed run finished (seconds, the trace's clock).
    pub last_end_s: f64,
    /// Whether the last observed run failed.
    pub last_failed: bool,
}

impl KeyHistory {
    pub fn push(&mut self, run_s: f64, requested_s: Option<f64>, end_s: f64, failed: bool) {
        self.recent.copy_within(0..RECENT - 1, 1);
        self.recent_requested.copy_within(0..RECENT - 1, 1);
        self.recent[0] = run_s;
        self.recent_requested[0] = requested_s.unwrap_or(f64::NAN);
        self.count += 1;
        self.sum += run_s;
        self.last_end_s = end_s;
        self.last_failed = failed;
    }

    fn window(&self) -> &[f64] {
        &self.recent[..(self.count as usize).min(RECENT)]
    }

    pub fn last(&self) -> Option<f64> {
        self.window().first().copied()
    }

    /// The last two runs, most recent first.
    pub fn last_two(&self) -> Option<(f64, f64)> {
        match self.window() {
            [a, b, ..] => Some((*a, *b)),
            _ => None,
        }
    }

    /// Mean of the last two runs.
    pub fn last_two_mean(&self) -> Option<f64> {
        match self.window() {
            [a, b, ..] => Some((a + b) / 2.0),
            _ => None,
        }
    }

    pub fn median_recent(&self) -> Option<f64> {
        let w = self.window();
        if w.is_empty() {
            return None;
        }
        let mut v = [0.0; RECENT];
        v[..w.len()].copy_from_slice(w);
        let v = &mut v[..w.len()];
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }

    pub fn max_recent(&self) -> Option<f64> {
        self.window().iter().copied().reduce(f64::max)
    }

    pub fn mean_all(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Median over recent runs of run time / requested time: how much of their request
    /// this user really uses.
    pub fn used_fraction(&self) -> Option<f64> {
        let n = (self.count as usize).min(RECENT);
        let mut v = [0.0; RECENT];
        let mut k = 0;
        for i in 0..n {
            let req = self.recent_requested[i];
            if req.is_finite() && req > 0.0 {
                v[k] = (self.recent[i] / req).min(1.5);
                k += 1;
            }
        }
        if k == 0 {
            return None;
        }
        let v = &mut v[..k];
        v.sort_by(f64::total_cmp);
        Some(v[k / 2])
    }
}

pub(crate) type KeyMap = HashMap<u64, KeyHistory, BuildHasherDefault<IdHasher>>;

/// The keys a job is looked up under. `job` and `branch` are 0 when the trace has no
/// job name or branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Keys {
    pub user: u64,
    pub job: u64,
    pub branch: u64,
}

impl Keys {
    pub fn new(user: u64, name: u64, branch: u64) -> Self {
        let mix = |a: u64, b: u64| {
            if b == 0 {
                0
            } else {
                (a.rotate_left(17) ^ b)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .max(1)
            }
        };
        Self {
            user,
            job: mix(user, name),
            branch: mix(user, branch),
        }
    }
}

/// All keys' histories.
#[derive(Debug, Clone, Default)]
pub struct History {
    global: KeyHistory,
    users: KeyMap,
    jobs: KeyMap,
    branches: KeyMap,
}

/// The three histories of one job at submit time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Looked {
    /// Every run seen, whoever ran it.
    pub global: KeyHistory,
    pub user: KeyHistory,
    pub job: Option<KeyHistory>,
    pub branch: Option<KeyHistory>,
}

impl History {
    pub fn look(&self, keys: Keys) -> Looked {
        let get = |m: &KeyMap, k: u64| -> Option<KeyHistory> {
            if k == 0 {
                None
            } else {
                Some(m.get(&k).copied().unwrap_or_default())
            }
        };
        Looked {
            global: self.global,
            user: self.users.get(&keys.user).copied().unwrap_or_default(),
            job: get(&self.jobs, keys.job),
            branch: get(&self.branches, keys.branch),
        }
    }

    /// A run of `keys` ended at `end_s` after `run_s`; `failed`: it ended in failure.
    pub fn observe(
        &mut self,
        keys: Keys,
        run_s: f64,
        requested_s: Option<f64>,
        end_s: f64,
        failed: bool,
    ) {
        self.global.push(run_s, None, end_s, failed);
        self.users
            .entry(keys.user)
            .or_default()
            .push(run_s, requested_s, end_s, failed);
        if keys.job != 0 {
            self.jobs
                .entry(keys.job)
                .or_default()
                .push(run_s, requested_s, end_s, failed);
        }
        if keys.branch != 0 {
            self.branches
                .entry(keys.branch)
                .or_default()
                .push(run_s, requested_s, end_s, failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_window_statistics() {
        let mut h = KeyHistory::default();
        assert_eq!(h.last(), None);
        for (i, r) in [10.0, 20.0, 30.0, 40.0, 50.0, 60.0].into_iter().enumerate() {
            h.push(r, Some(100.0), i as f64, false);
        }
        // The window holds the last five: 60, 50, 40, 30, 20.
        assert_eq!(h.last(), Some(60.0));
        assert_eq!(h.last_two_mean(), Some(55.0));
        assert_eq!(h.median_recent(), Some(40.0));
        assert_eq!(h.max_recent(), Some(60.0));
        assert_eq!(h.mean_all(), Some(35.0));
        assert_eq!(h.count, 6);
        assert_eq!(h.used_fraction(), Some(0.4));
    }

    #[test]
    fn keys_without_name_share_only_the_user() {
        let k = Keys::new(7, 0, 0);
        assert_eq!((k.job, k.branch), (0, 0));
        let mut h = History::default();
        h.observe(k, 5.0, None, 1.0, false);
        let l = h.look(Keys::new(7, 3, 0));
        assert_eq!(l.user.count, 1);
        assert_eq!(l.job.map(|j| j.count), Some(0));
        assert!(l.branch.is_none());
    }

    #[test]
    fn the_last_outcome_is_remembered_per_key() {
        let (a, b) = (Keys::new(1, 2, 3), Keys::new(1, 4, 0));
        let mut h = History::default();
        h.observe(a, 5.0, None, 1.0, true);
        let l = h.look(a);
        assert!(l.user.last_failed && l.job.is_some_and(|j| j.last_failed));
        assert!(l.branch.is_some_and(|b| b.last_failed));
        // Another job of the same user succeeds: the user's last run did, job a's failed.
        h.observe(b, 6.0, None, 2.0, false);
        let l = h.look(a);
        assert!(!l.user.last_failed);
        assert!(l.job.is_some_and(|j| j.last_failed));
    }
}
