//! Key distributions: which `user` each check carries. One hot key, uniform
//! over K keys, Zipf over K keys (rank r drawn with probability
//! proportional to 1/r^s, sampled exactly by binary search in the CDF), or
//! K keys in turn (so K checks touch every key once).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::Rng;

/// The largest K accepted (the Zipf CDF takes 8 bytes per key).
pub const MAX_KEYS: u64 = 10_000_000;

/// A key distribution as given by `--keys`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeySpec {
    /// Every check uses key 0.
    Hot,
    /// Keys 0..K, equally likely.
    Uniform {
        /// K, in 1..=[`MAX_KEYS`].
        keys: u64,
    },
    /// Keys 0, 1, …, K-1 in turn over every worker, then again.
    Sequence {
        /// K, in 1..=[`MAX_KEYS`].
        keys: u64,
    },
    /// Key r-1 with probability ∝ 1/r^s, r in 1..=K.
    Zipf {
        /// K, in 1..=[`MAX_KEYS`].
        keys: u64,
        /// s, finite and > 0.
        exponent: f64,
    },
}

/// The Zipf exponent when `zipf:K` gives none.
pub const DEFAULT_ZIPF_EXPONENT: f64 = 1.0;

impl FromStr for KeySpec {
    type Err = String;

    /// Parses `hot`, `uniform:K`, `seq:K`, `zipf:K` or `zipf:K:s`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split(':').collect();
        let keys = |k: &str| -> Result<u64, String> {
            match k.parse::<u64>() {
                Ok(n) if (1..=MAX_KEYS).contains(&n) => Ok(n),
                _ => Err(format!(
                    "key count {k:?} must be a whole number from 1 to {MAX_KEYS}"
                )),
            }
        };
        match parts.as_slice() {
            ["hot"] => Ok(KeySpec::Hot),
            ["uniform", k] => Ok(KeySpec::Uniform { keys: keys(k)? }),
            ["seq", k] => Ok(KeySpec::Sequence { keys: keys(k)? }),
            ["zipf", k] => Ok(KeySpec::Zipf {
                keys: keys(k)?,
                exponent: DEFAULT_ZIPF_EXPONENT,
            }),
            ["zipf", k, s] => match s.parse::<f64>() {
                Ok(exponent) if exponent.is_finite() && exponent > 0.0 => Ok(KeySpec::Zipf {
                    keys: keys(k)?,
                    exponent,
                }),
                _ => Err(format!("zipf exponent {s:?} must be a number > 0")),
            },
            _ => Err(format!(
                "unknown key distribution {text:?}; expected hot, uniform:K, seq:K, zipf:K or zipf:K:s"
            )),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Hot => write!(f, "hot"),
            KeySpec::Uniform { keys } => write!(f, "uniform:{keys}"),
            KeySpec::Sequence { keys } => write!(f, "seq:{keys}"),
            KeySpec::Zipf { keys, exponent } => write!(f, "zipf:{keys}:{exponent}"),
        }
    }
}

/// Draws key indexes for one [`KeySpec`]. Cheap to clone (the Zipf CDF and
/// the sequence's position are shared), so each worker owns one and an RNG
/// of its own.
#[derive(Debug, Clone)]
pub struct KeySampler {
    /// How to draw.
    kind: SamplerKind,
}

#[derive(Debug, Clone)]
enum SamplerKind {
    Hot,
    Uniform(u64),
    /// The next draw (shared by every clone) and K.
    Sequence(Arc<AtomicU64>, u64),
    /// cdf[i] = P(rank ≤ i+1); the last entry is 1.0.
    Zipf(Arc<[f64]>),
}

impl KeySampler {
    /// Builds the sampler; for Zipf this computes the CDF (O(K) once).
    pub fn new(spec: KeySpec) -> KeySampler {
        let kind = match spec {
            KeySpec::Hot => SamplerKind::Hot,
            KeySpec::Uniform { keys } => SamplerKind::Uniform(keys),
            KeySpec::Sequence { keys } => SamplerKind::Sequence(Arc::default(), keys),
            KeySpec::Zipf { keys, exponent } => {
                let mut cdf: Vec<f64> = Vec::with_capacity(keys as usize);
                let mut sum = 0.0;
                for rank in 1..=keys {
                    sum += (rank as f64).powf(-exponent);
                    cdf.push(sum);
                }
                for p in &mut cdf {
                    *p /= sum;
                }
                if let Some(last) = cdf.last_mut() {
                    *last = 1.0;
                }
                SamplerKind::Zipf(cdf.into())
            }
        };
        KeySampler { kind }
    }

    /// One key index, in 0..K (0 for the hot key; 0 is the most popular
    /// Zipf key).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match &self.kind {
            SamplerKind::Hot => 0,
            SamplerKind::Uniform(keys) => rng.random_range(0..*keys),
            SamplerKind::Sequence(next, keys) => next.fetch_add(1, Ordering::Relaxed) % keys,
            SamplerKind::Zipf(cdf) => {
                let u: f64 = rng.random();
                // First rank whose cumulative probability exceeds u.
                cdf.partition_point(|&p| p <= u).min(cdf.len() - 1) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn counts(spec: KeySpec, k: usize, draws: usize) -> Vec<u64> {
        let sampler = KeySampler::new(spec);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u64; k];
        for _ in 0..draws {
            counts[sampler.sample(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn parses_specs() {
        assert_eq!("hot".parse(), Ok(KeySpec::Hot));
        assert_eq!(
            "uniform:10000".parse(),
            Ok(KeySpec::Uniform { keys: 10_000 })
        );
        assert_eq!(
            "zipf:100".parse(),
            Ok(KeySpec::Zipf {
                keys: 100,
                exponent: 1.0
            })
        );
        assert_eq!(
            "zipf:100:1.2".parse(),
            Ok(KeySpec::Zipf {
                keys: 100,
                exponent: 1.2
            })
        );
        for bad in [
            "",
            "cold",
            "hot:1",
            "uniform",
            "uniform:0",
            "uniform:-3",
            "uniform:x",
            "uniform:20000000",
            "seq",
            "seq:0",
            "seq:1:2",
            "zipf:10:0",
            "zipf:10:-1",
            "zipf:10:nan",
            "zipf:10:inf",
            "zipf:10:1:2",
        ] {
            assert!(bad.parse::<KeySpec>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn a_sequence_draws_every_key_once_in_turn_across_clones() {
        let sampler = KeySampler::new("seq:5".parse().expect("seq:5"));
        let other = sampler.clone();
        let mut rng = SmallRng::seed_from_u64(7);
        let drawn: Vec<u64> = (0..12)
            .map(|i| if i % 2 == 0 { &sampler } else { &other }.sample(&mut rng))
            .collect();
        assert_eq!(drawn, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]);
        assert_eq!(KeySpec::Sequence { keys: 5 }.to_string(), "seq:5");
    }

    #[test]
    fn hot_is_always_key_zero() {
        let c = counts(KeySpec::Hot, 1, 1000);
        assert_eq!(c, vec![1000]);
    }

    #[test]
    fn uniform_covers_every_key_evenly() {
        let c = counts(KeySpec::Uniform { keys: 100 }, 100, 100_000);
        // Expect 1000 each; a binomial deviation of 30% is > 9 sigma.
        for (key, &n) in c.iter().enumerate() {
            assert!((700..=1300).contains(&n), "key {key} drawn {n} times");
        }
    }

    #[test]
    fn zipf_is_skewed_as_predicted() {
        let k = 1000;
        let draws = 200_000;
        let c = counts(
            KeySpec::Zipf {
                keys: k as u64,
                exponent: 1.0,
            },
            k,
            draws,
        );
        let harmonic: f64 = (1..=k).map(|r| 1.0 / r as f64).sum();
        let share = |i: usize| c[i] as f64 / draws as f64;
        // Rank 1 gets 1/H_K ≈ 13.4%, rank 2 half of that, rank 10 a tenth.
        assert!((share(0) - 1.0 / harmonic).abs() < 0.005, "{}", share(0));
        assert!((c[0] as f64 / c[1] as f64 - 2.0).abs() < 0.1);
        assert!((c[0] as f64 / c[9] as f64 - 10.0).abs() < 1.0);
        // The top 10 ranks take far more than their uniform 1%.
        let top: u64 = c[..10].iter().sum();
        assert!(top as f64 / draws as f64 > 0.35);
        // The tail is still drawn.
        assert!(c[k - 1] > 0);
    }

    #[test]
    fn steeper_zipf_is_more_skewed() {
        let flat = counts(
            KeySpec::Zipf {
                keys: 100,
                exponent: 0.5,
            },
            100,
            50_000,
        );
        let steep = counts(
            KeySpec::Zipf {
                keys: 100,
                exponent: 2.0,
            },
            100,
            50_000,
        );
        assert!(steep[0] > 2 * flat[0]);
        // s = 2: P(rank 1) = 1/ζ_100(2) ≈ 0.61.
        assert!((steep[0] as f64 / 50_000.0 - 0.6141).abs() < 0.01);
    }

    #[test]
    fn single_key_zipf_is_hot() {
        let c = counts(
            KeySpec::Zipf {
                keys: 1,
                exponent: 1.0,
            },
            1,
            100,
        );
        assert_eq!(c, vec![100]);
    }
}
