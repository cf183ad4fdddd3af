//! A fixed log-linear latency histogram in whole microseconds: exact below
//! 128 µs, then 64 buckets per power of two (every bucket narrower than
//! 1/64 ≈ 1.6% of its values: two significant digits), up to 10 s (larger
//! values land in the last bucket; the maximum is kept exactly). About
//! 1 200 counters, allocated once; recording never allocates.

/// Bits of sub-bucket resolution per power of two (64 buckets).
const SUB_BITS: u32 = 6;
/// Values below this are counted exactly, one bucket per microsecond.
const LINEAR: u64 = 2 << SUB_BITS;
/// The largest value with its own bucket: 10 s.
pub const MAX_US: u64 = 10_000_000;

/// The bucket of `us` (clamped to [`MAX_US`]).
fn index(us: u64) -> usize {
    let us = us.min(MAX_US);
    if us < LINEAR {
        return us as usize;
    }
    // `us` has its top bit at `msb` >= 7; keep its top 7 bits.
    let msb = 63 - us.leading_zeros();
    let shift = msb - SUB_BITS;
    (shift as usize) * (1 << SUB_BITS) + (us >> shift) as usize
}

/// The largest value counted in bucket `i`.
fn upper(i: usize) -> u64 {
    if (i as u64) < LINEAR {
        return i as u64;
    }
    let shift = (i >> SUB_BITS) - 1;
    let mantissa = (i - (shift << SUB_BITS)) as u64;
    ((mantissa + 1) << shift) - 1
}

/// Counts of round-trip times, in microseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; index(MAX_US) + 1].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    /// Counts one value of `us` microseconds.
    #[inline]
    pub fn record(&mut self, us: u64) {
        self.counts[index(us)] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no value was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value counted (exact), 0 if none.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The `q`-quantile (0 < `q` <= 1): the upper bound of the bucket
    /// holding the value of rank ⌈q·n⌉, capped at the exact maximum; NaN
    /// if empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper(i).min(self.max) as f64;
            }
        }
        self.max as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_fine() {
        for us in 0..=200_000u64 {
            let i = index(us);
            assert!(us <= upper(i), "{us} above its bucket {i}");
            if i > 0 {
                assert!(us > upper(i - 1), "{us} fits bucket {}", i - 1);
            }
            let lower = if i == 0 { 0 } else { upper(i - 1) + 1 };
            assert!((upper(i) - lower + 1) * 64 <= lower.max(64));
        }
        assert_eq!(index(u64::MAX), index(MAX_US));
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for us in 1..=1000 {
            h.record(us);
        }
        assert_eq!(h.quantile(0.5), 503.0);
        assert_eq!(h.quantile(1.0), 1000.0);
        assert_eq!(h.max(), 1000);
        h.clear();
        assert!(h.quantile(0.5).is_nan());
    }
}
