//! `[fallback]`: what policies do while Redis is unreachable, and how the
//! sidecar decides that it is.

use std::time::Duration;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackConfig {
    /// What policies without their own `fallback` do: limit locally
    /// (the default), allow or deny.
    pub mode: FallbackMode,
    /// Sidecars sharing each limit.
    pub instances: Instances,
    /// How often to probe Redis while in fallback; never zero.
    pub probe_interval: Duration,
    /// Consecutive failed Redis calls that trip to fallback; ≥ 1.
    pub failure_threshold: u32,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            mode: FallbackMode::Local,
            instances: Instances::Auto,
            probe_interval: Duration::from_secs(1),
            failure_threshold: 3,
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
    /// Reads `[fallback]`, reporting every problem into `diag`.
    pub(crate) fn read(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> FallbackConfig {
        let section = Section::<RawFallback>::read_or_default(node, "[fallback]", diag);
        let raw = &section.raw;
        let default = FallbackConfig::default();
        let probe_interval = raw.probe_interval.map_or(default.probe_interval, |d| d.0);
        if probe_interval.is_zero() {
            diag.push(
                section.at("probe_interval"),
                "probe_interval must be more than 0 (for example \"1s\")",
            );
        }
        let failure_threshold = raw.failure_threshold.unwrap_or(default.failure_threshold);
        if failure_threshold == 0 {
            diag.push(
                section.at("failure_threshold"),
                "failure_threshold must be at least 1",
            );
        }
        FallbackConfig {
            mode: section
                .choice("mode", raw.mode.as_deref(), &FALLBACK_MODES, diag)
                .unwrap_or(default.mode),
            instances: match raw.instances {
                None | Some(RawInstances::Auto) => Instances::Auto,
                Some(RawInstances::Fixed(n)) => Instances::Fixed(n),
            },
            probe_interval,
            failure_threshold,
        }
    }
}
