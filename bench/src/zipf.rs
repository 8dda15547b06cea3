//! Zipfian key choice, after Gray et al., "Quickly Generating Billion-Record Synthetic
//! Databases" (SIGMOD 1994), as YCSB's `ZipfianGenerator` implements it.
//!
//! Item `i` (0-based) is drawn with probability proportional to `1 / (i + 1)^theta`, so item 0
//! is the most popular. Setup computes `zeta(n, theta) = sum_{i=1..n} i^-theta` once; each draw
//! is then O(1): one uniform float and one `powf`.

use crate::rng::Rng;

/// Terms of `zeta` summed exactly; the tail past this uses the Euler-Maclaurin formula, which
/// is accurate to far better than a sampled benchmark can see and keeps setup under ~10 ms for
/// any keyspace.
const ZETA_EXACT_TERMS: u64 = 1 << 20;

/// Why a zipf generator cannot be built.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ZipfError {
    /// `theta` must be strictly between 0 and 1 (1 makes the formula divide by zero).
    Theta(f64),
    /// At least one item is needed.
    Empty,
}

impl std::fmt::Display for ZipfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Theta(theta) => {
                write!(f, "zipf theta must be > 0 and < 1, got {theta}")
            }
            Self::Empty => write!(f, "zipf needs at least one item"),
        }
    }
}

impl std::error::Error for ZipfError {}

/// A zipfian distribution over `0..items`; immutable once built, so threads share one.
#[derive(Clone, Debug)]
pub struct Zipf {
    items: u64,
    zeta_n: f64,
    alpha: f64,
    eta: f64,
    /// `1 + 0.5^theta`: draws below `zeta_n * this` pick item 1.
    second_threshold: f64,
}

impl Zipf {
    /// # Errors
    /// [`ZipfError`] when `theta` is not in `(0, 1)` or `items` is 0.
    pub fn new(items: u64, theta: f64) -> Result<Self, ZipfError> {
        if !(theta > 0.0 && theta < 1.0) {
            return Err(ZipfError::Theta(theta));
        }
        if items == 0 {
            return Err(ZipfError::Empty);
        }
        let zeta_n = zeta(items, theta);
        let zeta_2 = zeta(2, theta);
        let eta = if items > 2 {
            (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n)
        } else {
            // Unused: with one or two items every draw ends in the first two branches.
            1.0
        };
        Ok(Self {
            items,
            zeta_n,
            alpha: 1.0 / (1.0 - theta),
            eta,
            second_threshold: 1.0 + 0.5f64.powf(theta),
        })
    }

    /// The next item, in `0..items`.
    #[inline]
    pub fn next(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.second_threshold {
            return 1.min(self.items - 1);
        }
        let item = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        // Float rounding can land exactly on `items`; clamp instead of trusting it.
        item.min(self.items - 1)
    }
}

/// `sum_{i=1..n} i^-theta`: exact for the first `ZETA_EXACT_TERMS` terms, Euler-Maclaurin
/// (integral plus the first two correction terms) for the rest.
fn zeta(n: u64, theta: f64) -> f64 {
    let exact_terms = n.min(ZETA_EXACT_TERMS);
    let mut sum: f64 = (1..=exact_terms).map(|i| (i as f64).powf(-theta)).sum();
    if n > exact_terms {
        let (m, n) = (exact_terms as f64, n as f64);
        let f = |x: f64| x.powf(-theta);
        let f_prime = |x: f64| -theta * x.powf(-theta - 1.0);
        let integral = (n.powf(1.0 - theta) - m.powf(1.0 - theta)) / (1.0 - theta);
        sum += integral + (f(n) - f(m)) / 2.0 + (f_prime(n) - f_prime(m)) / 12.0;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_theta_and_empty() {
        for theta in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            assert!(matches!(Zipf::new(10, theta), Err(ZipfError::Theta(_))));
        }
        assert_eq!(Zipf::new(0, 0.5).unwrap_err(), ZipfError::Empty);
    }

    #[test]
    fn most_popular_key_gets_the_largest_share() {
        const ITEMS: u64 = 1_000;
        const DRAWS: usize = 200_000;
        let zipf = Zipf::new(ITEMS, 0.99).unwrap();
        let mut rng = Rng::new(12345);
        let mut counts = vec![0u64; ITEMS as usize];
        for _ in 0..DRAWS {
            let item = zipf.next(&mut rng);
            assert!(item < ITEMS);
            counts[item as usize] += 1;
        }
        let top = counts[0];
        assert!(
            counts.iter().all(|&c| c <= top),
            "item 0 is not the most popular"
        );
        // Popularity falls with rank.
        assert!(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99]);
        // Item 0's share is close to its probability 1 / zeta(n).
        let expected = DRAWS as f64 / zeta(ITEMS, 0.99);
        let share = top as f64 / expected;
        assert!(
            (0.95..1.05).contains(&share),
            "item 0 share {share} of expected"
        );
        // A zipf over 1000 keys still reaches the tail.
        assert!(counts[500..].iter().any(|&c| c > 0));
    }

    #[test]
    fn tiny_keyspaces_stay_in_range() {
        for items in [1u64, 2, 3] {
            let zipf = Zipf::new(items, 0.5).unwrap();
            let mut rng = Rng::new(1);
            for _ in 0..10_000 {
                assert!(zipf.next(&mut rng) < items);
            }
        }
    }

    #[test]
    fn zeta_tail_approximation_matches_exact_sum() {
        let n = ZETA_EXACT_TERMS + 500_000;
        let exact: f64 = (1..=n).map(|i| (i as f64).powf(-0.99)).sum();
        let approx = zeta(n, 0.99);
        assert!(
            ((exact - approx) / exact).abs() < 1e-9,
            "{exact} vs {approx}"
        );
    }
}
