//! Percentiles, medians and offsets.

use std::time::Duration;

/// Small, fast, deterministic offsets.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// An `align`-aligned offset at or above `floor` where `len` bytes fit
    /// below `limit`.
    pub(super) fn offset(&mut self, floor: usize, limit: usize, len: usize, align: usize) -> usize {
        let span = (limit - len - floor) / align + 1;
        floor + (self.next() as usize % span) * align
    }
}

/// The quantile `q` (0..=1) of sorted samples (nearest rank), in µs.
pub(super) fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_nanos() as f64 / 1000.0
}

/// The median of some values (the mean of the middle two for an even count).
pub(super) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Smallest and largest value.
pub(super) fn range(v: &[f64]) -> [f64; 2] {
    v.iter()
        .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &x| {
            [lo.min(x), hi.max(x)]
        })
}

/// The latency distribution as points `[nines, µs]`, where nines is
/// `-log10(1 - q)`: 0.3 is the median, 2 is p99, 3 is p99.9.
pub(super) fn curve(sorted: &[Duration]) -> Vec<[f64; 2]> {
    (3..=30)
        .map(|tenths| {
            let nines = tenths as f64 / 10.0;
            [nines, quantile(sorted, 1.0 - 10f64.powf(-nines))]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_right_sample() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        assert_eq!(quantile(&v, 0.5), 500.0);
        assert_eq!(quantile(&v, 0.99), 990.0);
        assert_eq!(quantile(&v, 0.999), 999.0);
        assert_eq!(quantile(&v[..1], 0.999), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        let c = curve(&v);
        assert_eq!(
            c.first().map(|p| p[1]),
            Some(quantile(&v, 1.0 - 10f64.powf(-0.3)))
        );
        assert!(c.windows(2).all(|w| w[0][1] <= w[1][1]));
    }

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(range(&[2.0, 5.0, 1.0]), [1.0, 5.0]);
    }

    #[test]
    fn offsets_stay_in_range_and_aligned() {
        let mut r = Rng(1);
        for _ in 0..10_000 {
            let o = r.offset(4096, 1 << 20, 4096, 8);
            assert!(o >= 4096 && o + 4096 <= 1 << 20 && o.is_multiple_of(8));
            let o = r.offset(0, 1 << 24, 1 << 20, 4096);
            assert!(o + (1 << 20) <= 1 << 24 && o.is_multiple_of(4096));
        }
    }
}
