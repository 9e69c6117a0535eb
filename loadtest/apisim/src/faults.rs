//! Fault injection: a runtime-settable switchboard that makes requests fail (500, 429 + `Retry-After`),
//! slow down, cuts watches after a number of events, or forces the next watch to get 410 Gone.
//!
//! Decisions are seeded and reproducible: the n-th call to [`Faults::decide`] after a [`Faults::set`]
//! draws the n-th number of a SplitMix64 sequence keyed by the seed, so the same request order gives the
//! same faults. With the default (no fault) configuration every call is one relaxed atomic load.
//!
//! ```
//! use apisim::faults::{FaultConfig, FaultDecision, Faults};
//! let faults = Faults::new(FaultConfig::default());
//! assert_eq!(faults.decide(), FaultDecision::Pass);
//! faults.set(FaultConfig { error_500_fraction: 1.0, ..FaultConfig::default() }).unwrap();
//! assert_eq!(faults.decide(), FaultDecision::ServerError);
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What faults to inject. `Default` injects nothing. Every field is optional in JSON (the admin endpoint
/// accepts partial documents; missing fields take their default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Fraction (0..=1) of requests answered `500 InternalError`.
    pub error_500_fraction: f64,
    /// Fraction (0..=1) of requests answered `429 TooManyRequests`.
    pub error_429_fraction: f64,
    /// `Retry-After` seconds sent with a 429 (the real server sends 1).
    pub retry_after_seconds: u64,
    /// Fixed latency added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Extra random latency, uniform in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// Close every watch after it has delivered this many events (`None` = never).
    pub watch_cut_after_events: Option<u64>,
    /// Seed of the decision sequence.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            error_500_fraction: 0.0,
            error_429_fraction: 0.0,
            retry_after_seconds: 1,
            latency_ms: 0,
            latency_jitter_ms: 0,
            watch_cut_after_events: None,
            seed: 0,
        }
    }
}

impl FaultConfig {
    /// Checks that fractions are within 0..=1 and sum to at most 1.
    pub fn validate(&self) -> Result<(), FaultError> {
        for (name, value) in [
            ("error500Fraction", self.error_500_fraction),
            ("error429Fraction", self.error_429_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultError::Fraction { name, value });
            }
        }
        let sum = self.error_500_fraction + self.error_429_fraction;
        if sum > 1.0 {
            return Err(FaultError::FractionSum(sum));
        }
        Ok(())
    }

    /// Whether any per-request fault (error or latency) is configured.
    fn affects_requests(&self) -> bool {
        self.error_500_fraction > 0.0
            || self.error_429_fraction > 0.0
            || self.latency_ms > 0
            || self.latency_jitter_ms > 0
    }
}

/// A rejected fault configuration.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FaultError {
    /// A fraction is outside 0..=1 (or NaN).
    #[error("{name} must be between 0 and 1, got {value}")]
    Fraction {
        /// Field name.
        name: &'static str,
        /// Value given.
        value: f64,
    },
    /// The error fractions add up to more than 1.
    #[error("error500Fraction + error429Fraction must be at most 1, got {0}")]
    FractionSum(f64),
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultDecision {
    /// Serve it normally.
    Pass,
    /// Answer `500` with an `InternalError` Status.
    ServerError,
    /// Answer `429` with a `TooManyRequests` Status and `Retry-After`.
    TooManyRequests {
        /// Seconds for the `Retry-After` header and `details.retryAfterSeconds`.
        retry_after: u64,
    },
}

impl FaultDecision {
    /// HTTP status of the injected answer (200 for `Pass`).
    pub fn status_code(self) -> u16 {
        match self {
            FaultDecision::Pass => 200,
            FaultDecision::ServerError => 500,
            FaultDecision::TooManyRequests { .. } => 429,
        }
    }

    /// `reason` of the Status body.
    pub fn reason(self) -> &'static str {
        match self {
            FaultDecision::Pass => "",
            FaultDecision::ServerError => "InternalError",
            FaultDecision::TooManyRequests { .. } => "TooManyRequests",
        }
    }

    /// `message` of the Status body (the 429 text is the real server's).
    pub fn message(self) -> &'static str {
        match self {
            FaultDecision::Pass => "",
            FaultDecision::ServerError => "Internal error occurred: injected fault",
            FaultDecision::TooManyRequests { .. } => "Too many requests, please try again later.",
        }
    }
}

/// The thread-safe fault switchboard of one simulated server.
#[derive(Debug, Default)]
pub struct Faults {
    config: RwLock<FaultConfig>,
    /// Fast path: false when no per-request fault is configured.
    active: AtomicBool,
    /// Number of decisions drawn since the last `set`.
    draws: AtomicU64,
    /// Seed copied out of the config so drawing needs no lock.
    seed: AtomicU64,
    /// Watch cut threshold; `u64::MAX` = none.
    watch_cut: AtomicU64,
    force_gone: AtomicBool,
}

impl Faults {
    /// A switchboard with `config` (not validated: an invalid config is clamped by the draw logic; use
    /// [`Faults::set`] to validate).
    pub fn new(config: FaultConfig) -> Faults {
        let faults = Faults::default();
        faults.install(config);
        faults
    }

    /// Replaces the configuration (after validating it) and restarts the decision sequence.
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultError> {
        config.validate()?;
        self.install(config);
        Ok(())
    }

    fn install(&self, config: FaultConfig) {
        let mut guard = self.config.write();
        self.seed.store(config.seed, Ordering::Relaxed);
        self.draws.store(0, Ordering::Relaxed);
        self.watch_cut.store(
            config.watch_cut_after_events.unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.active
            .store(config.affects_requests(), Ordering::Release);
        *guard = config;
    }

    /// The current configuration.
    pub fn config(&self) -> FaultConfig {
        self.config.read().clone()
    }

    /// Whether a request should pass or get an injected error.
    pub fn decide(&self) -> FaultDecision {
        if !self.active.load(Ordering::Acquire) {
            return FaultDecision::Pass;
        }
        let (f500, f429, retry_after) = {
            let c = self.config.read();
            (
                c.error_500_fraction,
                c.error_429_fraction,
                c.retry_after_seconds,
            )
        };
        if f500 <= 0.0 && f429 <= 0.0 {
            return FaultDecision::Pass;
        }
        let r = self.draw_unit();
        if r < f500 {
            FaultDecision::ServerError
        } else if r < f500 + f429 {
            FaultDecision::TooManyRequests { retry_after }
        } else {
            FaultDecision::Pass
        }
    }

    /// Latency to add to a request, if configured.
    pub fn latency(&self) -> Option<Duration> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let (fixed, jitter) = {
            let c = self.config.read();
            (c.latency_ms, c.latency_jitter_ms)
        };
        if fixed == 0 && jitter == 0 {
            return None;
        }
        let extra = if jitter == 0 {
            0
        } else {
            self.draw() % (jitter + 1)
        };
        Some(Duration::from_millis(fixed.saturating_add(extra)))
    }

    /// After how many events watches are cut, if configured.
    pub fn watch_cut_after(&self) -> Option<u64> {
        match self.watch_cut.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    /// Makes the next watch request answer with a 410 Gone (`Expired`) error event.
    pub fn force_gone_next_watch(&self) {
        self.force_gone.store(true, Ordering::Release);
    }

    /// Consumes the "410 on the next watch" flag: true exactly once after each
    /// [`Faults::force_gone_next_watch`].
    pub fn take_forced_gone(&self) -> bool {
        self.force_gone.swap(false, Ordering::AcqRel)
    }

    fn draw(&self) -> u64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed.load(Ordering::Relaxed) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A uniform number in `[0, 1)`.
    fn draw_unit(&self) -> f64 {
        (self.draw() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// SplitMix64 finaliser: a well-mixed 64-bit value from any input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(cfg: FaultConfig) -> Faults {
        let f = Faults::new(FaultConfig::default());
        if let Err(e) = f.set(cfg) {
            panic!("{e}");
        }
        f
    }

    #[test]
    fn default_passes_everything() {
        let f = Faults::new(FaultConfig::default());
        assert!((0..1000).all(|_| f.decide() == FaultDecision::Pass));
        assert_eq!(f.latency(), None);
        assert_eq!(f.watch_cut_after(), None);
        assert!(!f.take_forced_gone());
    }

    #[test]
    fn fractions_are_respected_roughly() {
        let f = faults(FaultConfig {
            error_500_fraction: 0.2,
            error_429_fraction: 0.3,
            retry_after_seconds: 7,
            seed: 42,
            ..FaultConfig::default()
        });
        let mut counts = (0, 0, 0);
        for _ in 0..10_000 {
            match f.decide() {
                FaultDecision::Pass => counts.0 += 1,
                FaultDecision::ServerError => counts.1 += 1,
                FaultDecision::TooManyRequests { retry_after } => {
                    assert_eq!(retry_after, 7);
                    counts.2 += 1;
                }
            }
        }
        assert!((4_500..5_500).contains(&counts.0), "{counts:?}");
        assert!((1_500..2_500).contains(&counts.1), "{counts:?}");
        assert!((2_500..3_500).contains(&counts.2), "{counts:?}");
    }

    #[test]
    fn same_seed_same_sequence_and_set_restarts_it() {
        let cfg = FaultConfig {
            error_500_fraction: 0.5,
            seed: 9,
            ..FaultConfig::default()
        };
        let a = faults(cfg.clone());
        let b = faults(cfg.clone());
        let seq_a: Vec<_> = (0..200).map(|_| a.decide()).collect();
        let seq_b: Vec<_> = (0..200).map(|_| b.decide()).collect();
        assert_eq!(seq_a, seq_b);
        assert!(a.set(cfg).is_ok());
        let again: Vec<_> = (0..200).map(|_| a.decide()).collect();
        assert_eq!(seq_a, again);
        let other = faults(FaultConfig {
            error_500_fraction: 0.5,
            seed: 10,
            ..FaultConfig::default()
        });
        let seq_other: Vec<_> = (0..200).map(|_| other.decide()).collect();
        assert_ne!(seq_a, seq_other);
    }

    #[test]
    fn all_or_nothing_fractions() {
        let f = faults(FaultConfig {
            error_429_fraction: 1.0,
            ..FaultConfig::default()
        });
        assert!((0..100).all(|_| matches!(f.decide(), FaultDecision::TooManyRequests { .. })));
        assert!(f.set(FaultConfig::default()).is_ok());
        assert!((0..100).all(|_| f.decide() == FaultDecision::Pass));
    }

    #[test]
    fn latency_with_jitter_stays_in_bounds() {
        let f = faults(FaultConfig {
            latency_ms: 10,
            latency_jitter_ms: 5,
            ..FaultConfig::default()
        });
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let d = f.latency().map(|d| d.as_millis());
            assert!(matches!(d, Some(10..=15)), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 1, "jitter varies");
        assert_eq!(
            f.decide(),
            FaultDecision::Pass,
            "latency alone injects no errors"
        );
    }

    #[test]
    fn watch_cut_and_forced_gone() {
        let f = faults(FaultConfig {
            watch_cut_after_events: Some(3),
            ..FaultConfig::default()
        });
        assert_eq!(f.watch_cut_after(), Some(3));
        f.force_gone_next_watch();
        assert!(f.take_forced_gone());
        assert!(!f.take_forced_gone());
    }

    #[test]
    fn invalid_configs_are_rejected_and_not_installed() {
        let f = Faults::new(FaultConfig::default());
        let bad = FaultConfig {
            error_500_fraction: 1.5,
            ..FaultConfig::default()
        };
        assert!(matches!(f.set(bad), Err(FaultError::Fraction { .. })));
        let sum = FaultConfig {
            error_500_fraction: 0.6,
            error_429_fraction: 0.6,
            ..FaultConfig::default()
        };
        assert!(matches!(f.set(sum), Err(FaultError::FractionSum(_))));
        let nan = FaultConfig {
            error_429_fraction: f64::NAN,
            ..FaultConfig::default()
        };
        assert!(f.set(nan).is_err());
        assert_eq!(f.config(), FaultConfig::default());
    }

    #[test]
    fn json_round_trip_with_partial_documents() {
        let cfg: FaultConfig =
            match serde_json::from_str(r#"{"error500Fraction": 0.25, "watchCutAfterEvents": 5}"#) {
                Ok(c) => c,
                Err(e) => panic!("{e}"),
            };
        assert_eq!(cfg.error_500_fraction, 0.25);
        assert_eq!(cfg.watch_cut_after_events, Some(5));
        assert_eq!(cfg.retry_after_seconds, 1);
        assert!(serde_json::from_str::<FaultConfig>(r#"{"bogus": 1}"#).is_err());
        let text = serde_json::to_string(&cfg).unwrap_or_default();
        assert!(text.contains("\"error500Fraction\":0.25"), "{text}");
    }
}
