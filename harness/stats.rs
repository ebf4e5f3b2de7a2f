//! Summary statistics over measured samples, computed one way everywhere.

/// The `p`-th percentile (0–100) of already sorted `sorted` by nearest rank: always a value that
/// was measured, never an interpolation. `None` when empty.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The `p`-th percentile (0–100) of `values` by nearest rank; sorts in place. `None` when empty.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    nearest_rank(values, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn small_samples_round_the_rank_up() {
        let v = [10.0, 20.0, 30.0];
        assert_eq!(nearest_rank(&v, 50.0), Some(20.0));
        assert_eq!(nearest_rank(&v, 95.0), Some(30.0));
        assert_eq!(nearest_rank(&v, 34.0), Some(20.0));
        assert_eq!(nearest_rank(&v, 33.0), Some(10.0));
        assert_eq!(nearest_rank(&[7.5], 95.0), Some(7.5));
    }
}
