//! Helpers shared by the integration tests (each test crate uses some of them).
#![allow(dead_code)]

use rustci_models::dataset::Prepared;

/// Deterministic noise in [0, 1) (a 64-bit LCG, Knuth's MMIX constants).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The latest training submit and the earliest test submit of a chronological split at
/// row `split` of `data`.
pub fn split_submit_bounds(data: &Prepared, split: usize) -> (f64, f64) {
    let last_train = data.submit_s[..split]
        .iter()
        .copied()
        .fold(f64::MIN, f64::max);
    let first_test = data.submit_s[split..]
        .iter()
        .copied()
        .fold(f64::MAX, f64::min);
    (last_train, first_test)
}
