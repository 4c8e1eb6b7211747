//! Statistics both drivers report, defined once.

/// Nearest-rank percentile of an ascending slice: the smallest value with at least `p`%
/// of the values at or below it. `None` for an empty slice or `p` outside 0..=100.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let exact = p * n as f64 / 100.0;
    // Absorb floating-point error for percentages such as 99.9 whose exact rank is an
    // integer (99.9 * 1000 / 100 evaluates slightly above 999).
    let rank = (exact - exact * 1e-12).ceil();
    let rank = (rank as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_by_hand() {
        let v = [10, 20, 30, 40];
        assert_eq!(nearest_rank(&v, 0.0), Some(10));
        assert_eq!(nearest_rank(&v, 25.0), Some(10));
        assert_eq!(nearest_rank(&v, 26.0), Some(20));
        assert_eq!(nearest_rank(&v, 100.0), Some(40));
        let thousand: Vec<u32> = (1..=1000).collect();
        assert_eq!(nearest_rank(&thousand, 99.9), Some(999));
        assert_eq!(nearest_rank::<u32>(&[], 50.0), None);
        assert_eq!(nearest_rank(&v, 101.0), None);
    }
}
