//! `[fallback]`: what policies do while Redis is unreachable, and how the
//! sidecar decides that it is.

use std::time::Duration;

use floodgate_core::store_config::{FailoverConfig, FailoverSettings, LocalConfig, RateTrip};
use floodgate_core::FallbackMode;

use crate::error::Diagnostics;
use crate::raw::{RawFallback, RawInstances};
use crate::section::{Node, Section};

/// How many sidecars share a limit, to size the local fallback limiter
/// (`ceil(limit / instances)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Instances {
    /// Left to the server to estimate (the default).
    #[default]
    Auto,
    /// Exactly this many; never 0.
    Fixed(u64),
}

/// `[fallback]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FallbackConfig {
    /// What policies without their own `fallback` do: limit locally
    /// (the default), allow or deny.
    pub mode: FallbackMode,
    /// Sidecars sharing each limit.
    pub instances: Instances,
    /// With `instances = "auto"`: the fewest sidecars taken to share each
    /// limit — the divisor until the first heartbeat answers (Redis down at
    /// start-up) and the floor of every live count; ≥ 1.
    pub min_instances: u64,
    /// How often to probe Redis while in fallback; never zero.
    pub probe_interval: Duration,
    /// Consecutive failed Redis calls that trip to fallback; ≥ 1.
    pub failure_threshold: u32,
    /// Share of failed Redis calls over `failure_window` that also trips to
    /// fallback; 0 < rate ≤ 1.
    pub failure_rate: f64,
    /// How far back `failure_rate` looks; at least 10 ms.
    pub failure_window: Duration,
    /// Calls `failure_window` must hold before `failure_rate` counts; ≥ 1.
    pub failure_min_calls: u32,
}

/// `failure_rate` is never NaN (it must be in (0, 1] to load), so equality
/// is total.
impl Eq for FallbackConfig {}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            mode: FallbackMode::Local,
            instances: Instances::Auto,
            min_instances: 1,
            probe_interval: Duration::from_secs(1),
            failure_threshold: 3,
            failure_rate: 0.25,
            failure_window: Duration::from_secs(2),
            failure_min_calls: 10,
        }
    }
}

/// The fallback modes, by configuration name.
pub(crate) const FALLBACK_MODES: [(&str, FallbackMode); 3] = [
    ("local", FallbackMode::Local),
    ("allow", FallbackMode::Allow),
    ("deny", FallbackMode::Deny),
];

impl FallbackConfig {
    /// The failover store's settings: these, with `local` (`[store.local]`)
    /// bounding its fallback store.
    pub fn failover(&self, local: LocalConfig) -> FailoverSettings {
        FailoverSettings {
            local,
            config: FailoverConfig {
                mode: self.mode,
                instances: match self.instances {
                    Instances::Fixed(n) => n,
                    Instances::Auto => self.min_instances,
                },
                probe_interval: self.probe_interval,
                failure_threshold: self.failure_threshold,
                trip: RateTrip {
                    rate: self.failure_rate,
                    window: self.failure_window,
                    min_calls: self.failure_min_calls,
                },
            },
            count_instances: self.instances == Instances::Auto,
        }
    }

    /// Reads `[fallback]`, reporting every problem into `diag`.
    pub(crate) fn read(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> FallbackConfig {
        let section = Section::<RawFallback>::read_or_default(node, "[fallback]", diag);
        let raw = &section.raw;
        let default = FallbackConfig::default();
        let probe_interval = read_probe_interval(&section, default.probe_interval, diag);
        let failure_threshold = raw.failure_threshold.unwrap_or(default.failure_threshold);
        let failure_threshold =
            at_least_one(&section, "failure_threshold", failure_threshold, diag);
        let (failure_rate, failure_window) = read_rate_trip(&section, &default, diag);
        let min_instances = raw.min_instances.unwrap_or(default.min_instances);
        let min_instances = at_least_one(&section, "min_instances", min_instances, diag);
        let failure_min_calls = raw.failure_min_calls.unwrap_or(default.failure_min_calls);
        let failure_min_calls =
            at_least_one(&section, "failure_min_calls", failure_min_calls, diag);
        FallbackConfig {
            mode: section
                .choice("mode", raw.mode.as_deref(), &FALLBACK_MODES, diag)
                .unwrap_or(default.mode),
            instances: match raw.instances {
                None | Some(RawInstances::Auto) => Instances::Auto,
                Some(RawInstances::Fixed(n)) => Instances::Fixed(n),
            },
            min_instances,
            probe_interval,
            failure_threshold,
            failure_rate,
            failure_window,
            failure_min_calls,
        }
    }
}

/// `probe_interval` (or `default`), reported when zero.
fn read_probe_interval(
    section: &Section<'_, RawFallback>,
    default: Duration,
    diag: &mut Diagnostics<'_>,
) -> Duration {
    let probe_interval = section.raw.probe_interval.map_or(default, |d| d.0);
    if probe_interval.is_zero() {
        diag.push(
            section.at("probe_interval"),
            "probe_interval must be more than 0 (for example \"1s\")",
        );
    }
    probe_interval
}

/// `failure_rate` and `failure_window` (or their defaults), each reported
/// when out of range: a rate in (0, 1], a window of at least 10 ms.
fn read_rate_trip(
    section: &Section<'_, RawFallback>,
    default: &FallbackConfig,
    diag: &mut Diagnostics<'_>,
) -> (f64, Duration) {
    let raw = &section.raw;
    let failure_rate = raw.failure_rate.unwrap_or(default.failure_rate);
    if !(failure_rate > 0.0 && failure_rate <= 1.0) {
        diag.push(
            section.at("failure_rate"),
            "failure_rate must be more than 0 and at most 1 (for example 0.25)",
        );
    }
    let failure_window = raw.failure_window.map_or(default.failure_window, |d| d.0);
    if failure_window < Duration::from_millis(10) {
        diag.push(
            section.at("failure_window"),
            "failure_window must be at least 10ms (for example \"2s\")",
        );
    }
    (failure_rate, failure_window)
}

/// `value` of the count `key`, reported when 0.
fn at_least_one<T: Copy + Default + PartialEq>(
    section: &Section<'_, RawFallback>,
    key: &str,
    value: T,
    diag: &mut Diagnostics<'_>,
) -> T {
    if value == T::default() {
        diag.push(section.at(key), format!("{key} must be at least 1"));
    }
    value
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{from_str, ConfigErrors};

    #[test]
    fn the_error_rate_trip_reads_with_defaults() {
        let config = from_str("", "t.toml").expect("empty is valid");
        assert_eq!(config.fallback.failure_rate, 0.25);
        assert_eq!(config.fallback.failure_window, Duration::from_secs(2));
        assert_eq!(config.fallback.failure_min_calls, 10);
        assert_eq!(config.fallback.min_instances, 1);
        let src =
            "[fallback]\nfailure_rate = 0.5\nfailure_window = \"5s\"\nfailure_min_calls = 20\n";
        let config = from_str(src, "t.toml").expect("valid");
        assert_eq!(config.fallback.failure_rate, 0.5);
        assert_eq!(config.fallback.failure_window, Duration::from_secs(5));
        assert_eq!(config.fallback.failure_min_calls, 20);
    }

    #[test]
    fn a_bad_error_rate_trip_is_named_where_it_is() {
        for (line, needle) in [
            ("failure_rate = 0.0", "failure_rate must be more than 0"),
            ("failure_rate = 1.5", "failure_rate must be more than 0"),
            (
                "failure_window = \"1ms\"",
                "failure_window must be at least 10ms",
            ),
            (
                "failure_min_calls = 0",
                "failure_min_calls must be at least 1",
            ),
            ("min_instances = 0", "min_instances must be at least 1"),
        ] {
            let src = format!("[fallback]\n{line}\n");
            let Err(ConfigErrors(errors)) = from_str(&src, "t.toml") else {
                panic!("{line} must be refused");
            };
            let text = format!("{errors:?}");
            assert_eq!(errors.len(), 1, "{text}");
            assert!(errors[0].message.contains(needle), "{text}");
            assert_eq!(errors[0].line, 2, "{text}");
        }
    }
}
