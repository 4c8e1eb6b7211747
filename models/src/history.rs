//! Per-key run-time history: what a job's earlier runs looked like when it was submitted.
//!
//! The same structure serves training (fed from a trace in event order) and inference
//! (fed by the core's `Predictor::observe` as jobs finish), so a feature means the same
//! thing in both places.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use rustci_scheduler::hash::IdHasher;

/// How many recent runs a key remembers.
pub const RECENT: usize = 5;

/// How many recent runs (per unit of size) the keys of the weighted median remember:
/// more than [`RECENT`], since its weights still count runs 10-20 back a little, but
/// fixed so that a key's memory stays bounded.
pub const LONG: usize = 20;

/// Half-life, in runs, of the weights of [`SizedRuns::weighted_median`]: chosen on
/// TravisTorrent's calibration slice (half-lives 2 and 3 were close; 3 is the steadier).
pub const HALF_LIFE_RUNS: f64 = 3.0;

/// The weights of [`SizedRuns::weighted_median`] by age: the same for every look (once
/// per estimate), so computed once.
fn recency_weights() -> &'static [f64; LONG] {
    static WEIGHTS: OnceLock<[f64; LONG]> = OnceLock::new();
    WEIGHTS.get_or_init(|| std::array::from_fn(|age| 0.5f64.powf(age as f64 / HALF_LIFE_RUNS)))
}

/// A key's last [`LONG`] run times divided by the size of their job (TravisTorrent: the
/// builds in the matrix; 1 elsewhere).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizedRuns {
    /// Ring buffer; `next` is where the next run goes.
    per_unit: [f64; LONG],
    next: usize,
    count: u64,
}

impl Default for SizedRuns {
    fn default() -> Self {
        Self {
            per_unit: [0.0; LONG],
            next: 0,
            count: 0,
        }
    }
}

impl SizedRuns {
    pub fn push(&mut self, per_unit_s: f64) {
        self.per_unit[self.next] = per_unit_s;
        self.next = (self.next + 1) % LONG;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Weighted median of the remembered runs, weight 0.5^(age / [`HALF_LIFE_RUNS`]) with
    /// age 0 the newest: the first sorted value whose cumulative weight reaches half the
    /// total. A run time drifts (a project's test suite grows), so recent runs should
    /// count more, but a single outlier should not move it as it moves a mean.
    pub fn weighted_median(&self) -> Option<f64> {
        let n = (self.count as usize).min(LONG);
        if n == 0 {
            return None;
        }
        let mut v = [(0.0f64, 0.0f64); LONG];
        let mut total = 0.0;
        for ((age, slot), &w) in v.iter_mut().enumerate().zip(recency_weights()).take(n) {
            let i = (self.next + LONG - 1 - age) % LONG;
            *slot = (self.per_unit[i], w);
            total += w;
        }
        let v = &mut v[..n];
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = 0.5 * total;
        let mut acc = 0.0;
        for &(x, w) in v.iter() {
            acc += w;
            if acc >= half {
                return Some(x);
            }
        }
        v.last().map(|p| p.0)
    }
}

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
        median_in_place(&mut v[..w.len()])
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
/// job name or branch; `user_pr` and `branch_pr` (the user's, the branch's pull-request
/// builds or pushes) are 0 unless the job says which it is ([`Keys::with_pull_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Keys {
    pub user: u64,
    pub job: u64,
    pub branch: u64,
    pub user_pr: u64,
    pub branch_pr: u64,
}

fn mix(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        (a.rotate_left(17) ^ b)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .max(1)
    }
}

impl Keys {
    pub fn new(user: u64, name: u64, branch: u64) -> Self {
        Self {
            user,
            job: mix(user, name),
            branch: mix(user, branch),
            user_pr: 0,
            branch_pr: 0,
        }
    }

    /// Adds the pull-request keys: a pull request's build merges into its target, so it
    /// runs differently from a push to the same branch (TravisTorrent `gh_is_pr`).
    pub fn with_pull_request(mut self, is_pr: bool) -> Self {
        // 1 and 2, never 0, so that both kinds get a key. Mixed with a different
        // constant than job and branch names so the keys do not meet.
        let tag = 0x5052_0000 + 1 + u64::from(is_pr);
        self.user_pr = mix(self.user, tag);
        self.branch_pr = if self.branch == 0 {
            0
        } else {
            mix(self.branch, tag)
        };
        self
    }

    /// The keys of the weighted-median chain, most specific first: branch + pull request,
    /// branch, user + pull request, user (0 where the job has no such key).
    pub fn chain_keys(&self) -> [u64; 4] {
        [self.branch_pr, self.branch, self.user_pr, self.user]
    }
}

type SizedMap = HashMap<u64, SizedRuns, BuildHasherDefault<IdHasher>>;

/// All keys' histories.
#[derive(Debug, Clone, Default)]
pub struct History {
    global: KeyHistory,
    users: KeyMap,
    jobs: KeyMap,
    branches: KeyMap,
    /// Per-unit runs of the weighted-median chain, one map per key kind in
    /// [`Keys::chain_keys`] order.
    sized: [SizedMap; 4],
}

/// The three histories of one job at submit time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Looked {
    /// Every run seen, whoever ran it.
    pub global: KeyHistory,
    pub user: KeyHistory,
    pub job: Option<KeyHistory>,
    pub branch: Option<KeyHistory>,
    /// Weighted median per unit of size of the most specific key with a finished run:
    /// (user, branch, pull request) -> (user, branch) -> (user, pull request) -> user.
    pub keyed_per_unit: Option<f64>,
    /// Which key that was: 0 none, 1 branch+PR, 2 branch, 3 user+PR, 4 user.
    pub keyed_level: u8,
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
        let mut keyed = (None, 0u8);
        // The job key is not in the chain: on GitHub Actions it was worse than the
        // branch's (MAE -9.3% vs -10.6% below the last-5 median).
        for (level, (map, key)) in self.sized.iter().zip(keys.chain_keys()).enumerate() {
            if key == 0 {
                continue;
            }
            if let Some(m) = map.get(&key).and_then(SizedRuns::weighted_median) {
                keyed = (Some(m), level as u8 + 1);
                break;
            }
        }
        Looked {
            global: self.global,
            user: self.users.get(&keys.user).copied().unwrap_or_default(),
            job: get(&self.jobs, keys.job),
            branch: get(&self.branches, keys.branch),
            keyed_per_unit: keyed.0,
            keyed_level: keyed.1,
        }
    }

    /// A run of `keys` ended at `end_s` after `run_s`; `failed`: it ended in failure.
    /// `size` is the job's size known at submit (TravisTorrent: builds in the matrix; 1
    /// when unknown).
    pub fn observe(
        &mut self,
        keys: Keys,
        run_s: f64,
        requested_s: Option<f64>,
        end_s: f64,
        failed: bool,
        size: f64,
    ) {
        let per_unit = run_s / size.max(1.0);
        for (map, key) in self.sized.iter_mut().zip(keys.chain_keys()) {
            if key != 0 {
                map.entry(key).or_default().push(per_unit);
            }
        }
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

/// The median of `v` (sorted in place; the mean of the middle two when even), `None`
/// when empty: the rule every recent-runs median of the models shares.
pub(crate) fn median_in_place(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
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
    fn weighted_median_favours_recent_runs() {
        let mut r = SizedRuns::default();
        assert_eq!(r.weighted_median(), None);
        // Old runs at 100, the three newest at 10: weights 1, 0.79, 0.63 of the newest
        // outweigh the 22 older ones (whose weights shrink fast).
        for _ in 0..22 {
            r.push(100.0);
        }
        for _ in 0..3 {
            r.push(10.0);
        }
        assert_eq!(r.weighted_median(), Some(10.0));
        // A plain median of the last 20 would still say 100.
        assert_eq!(r.count(), 25);
    }

    #[test]
    fn the_chain_takes_the_most_specific_key_and_scales_by_size() {
        let user = Keys::new(1, 0, 0);
        let pr = Keys::new(1, 0, 9).with_pull_request(true);
        let push = Keys::new(1, 0, 9).with_pull_request(false);
        let mut h = History::default();
        // A push build of 4 jobs, 400 s: 100 s per job.
        h.observe(push, 400.0, None, 1.0, false, 4.0);
        // A pull request on the same branch: no PR history, so the branch's.
        let l = h.look(pr);
        assert_eq!((l.keyed_per_unit, l.keyed_level), (Some(100.0), 2));
        h.observe(pr, 30.0, None, 2.0, false, 1.0);
        let l = h.look(pr);
        assert_eq!((l.keyed_per_unit, l.keyed_level), (Some(30.0), 1));
        // Without branch or PR (SWF, the live service): the user's runs.
        let l = h.look(user);
        assert_eq!(l.keyed_level, 4);
        assert_eq!(History::default().look(user).keyed_per_unit, None);
    }

    #[test]
    fn keys_without_name_share_only_the_user() {
        let k = Keys::new(7, 0, 0);
        assert_eq!((k.job, k.branch), (0, 0));
        let mut h = History::default();
        h.observe(k, 5.0, None, 1.0, false, 1.0);
        let l = h.look(Keys::new(7, 3, 0));
        assert_eq!(l.user.count, 1);
        assert_eq!(l.job.map(|j| j.count), Some(0));
        assert!(l.branch.is_none());
    }

    #[test]
    fn the_last_outcome_is_remembered_per_key() {
        let (a, b) = (Keys::new(1, 2, 3), Keys::new(1, 4, 0));
        let mut h = History::default();
        h.observe(a, 5.0, None, 1.0, true, 1.0);
        let l = h.look(a);
        assert!(l.user.last_failed && l.job.is_some_and(|j| j.last_failed));
        assert!(l.branch.is_some_and(|b| b.last_failed));
        // Another job of the same user succeeds: the user's last run did, job a's failed.
        h.observe(b, 6.0, None, 2.0, false, 1.0);
        let l = h.look(a);
        assert!(!l.user.last_failed);
        assert!(l.job.is_some_and(|j| j.last_failed));
    }
}
