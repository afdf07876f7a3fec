//! `floodgate_check_duration_seconds`, kept by floodgate itself: a check
//! adds one to a fixed bucket and its duration to a sum, on counters of its
//! own thread's shard (two uncontended atomic adds). The Prometheus
//! exporter's histogram would instead keep every sample in a shared list
//! until the next scrape, under an epoch guard: several times the cost on
//! every check. `/metrics` appends this histogram to the exporter's text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Every transport that times checks, in the order of [`Histogram::record`]'s index.
pub const TRANSPORTS: [&str; 6] = ["http", "nginx", "grpc", "envoy_rls", "envoy_authz", "proxy"];

/// Upper bounds of the buckets in nanoseconds, the unit a check is
/// recorded in: tens of microseconds to a second. Shown in seconds (`le`).
const BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// Shards of counters: threads are spread over them, so two worker threads
/// rarely add to the same cache line.
const SHARDS: usize = 8;

/// One transport's counters in one shard.
struct Series {
    /// Checks per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    /// Their durations added up, in nanoseconds.
    sum_ns: AtomicU64,
}

/// One shard: every transport's series, on cache lines of its own.
#[repr(align(128))]
struct Shard([Series; TRANSPORTS.len()]);

impl Series {
    const fn new() -> Series {
        Series {
            buckets: [const { AtomicU64::new(0) }; BOUNDS_NS.len() + 1],
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// Every transport's counters, sharded.
pub struct Histogram([Shard; SHARDS]);

impl Histogram {
    /// No check recorded yet.
    pub const fn new() -> Histogram {
        Histogram([const { Shard([const { Series::new() }; TRANSPORTS.len()]) }; SHARDS])
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// The process's `floodgate_check_duration_seconds`.
pub static CHECK_DURATION: Histogram = Histogram::new();

/// Hands each thread its shard, in turn.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// The index of `transport` in [`TRANSPORTS`]; `None` for any other name.
pub fn transport_index(transport: &str) -> Option<usize> {
    TRANSPORTS.iter().position(|t| *t == transport)
}

impl Histogram {
    /// Records one check on the transport at `index` in [`TRANSPORTS`]
    /// that took `took`. An index past the list is ignored.
    pub fn record(&self, index: usize, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS.partition_point(|&bound| bound < ns);
        let shard = SHARD.with(|shard| *shard);
        if let Some(series) = self.0[shard].0.get(index) {
            series.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            series.sum_ns.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// One transport's figures, summed over the shards.
    fn totals(&self, index: usize) -> Totals {
        let mut totals = Totals {
            buckets: [0; BOUNDS_NS.len() + 1],
            sum_ns: 0,
        };
        for shard in &self.0 {
            let series = &shard.0[index];
            for (total, bucket) in totals.buckets.iter_mut().zip(&series.buckets) {
                *total += bucket.load(Ordering::Relaxed);
            }
            totals.sum_ns += series.sum_ns.load(Ordering::Relaxed);
        }
        totals
    }
}

/// One transport's figures, summed over the shards.
struct Totals {
    /// Checks per bucket (not cumulative).
    buckets: [u64; BOUNDS_NS.len() + 1],
    /// Their durations, in nanoseconds.
    sum_ns: u64,
}

impl Histogram {
    /// Appends the histogram in Prometheus text format to `out`: one series
    /// per transport that has timed a check (none before the first), buckets
    /// cumulative, `+Inf` equal to `_count`.
    pub fn render(&self, out: &mut String) {
        const NAME: &str = floodgate_core::metric::CHECK_DURATION_SECONDS;
        let mut described = false;
        for (index, transport) in TRANSPORTS.iter().enumerate() {
            let totals = self.totals(index);
            let count: u64 = totals.buckets.iter().sum();
            if count == 0 {
                continue;
            }
            if !described {
                let _ = writeln!(out, "# HELP {NAME} Time to answer one check, by transport");
                let _ = writeln!(out, "# TYPE {NAME} histogram");
                described = true;
            }
            let mut cumulative = 0;
            for (bound_ns, in_bucket) in BOUNDS_NS.iter().zip(&totals.buckets) {
                cumulative += in_bucket;
                // Exact integers divided once: the nearest f64 to the
                // decimal, shown as written (0.000025, not 2.5e-5).
                let bound = *bound_ns as f64 / 1e9;
                let _ = writeln!(
                    out,
                    "{NAME}_bucket{{transport=\"{transport}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{NAME}_bucket{{transport=\"{transport}\",le=\"+Inf\"}} {count}"
            );
            let sum = Duration::from_nanos(totals.sum_ns).as_secs_f64();
            let _ = writeln!(out, "{NAME}_sum{{transport=\"{transport}\"}} {sum}");
            let _ = writeln!(out, "{NAME}_count{{transport=\"{transport}\"}} {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `text` for `transport`, as (suffix and le, value).
    fn series(text: &str, transport: &str) -> Vec<(String, String)> {
        let label = format!("transport=\"{transport}\"");
        text.lines()
            .filter(|line| line.contains(&label))
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').unwrap();
                (name.to_string(), value.to_string())
            })
            .collect()
    }

    #[test]
    fn checks_land_in_cumulative_buckets_from_every_thread() {
        let histogram = Box::new(Histogram::new());
        let proxy = transport_index("proxy").unwrap();
        // An observation on a bound counts in that bound's bucket.
        let took = [10_000, 10_001, 999_999, 1_000_000_000, 2_000_000_000];
        std::thread::scope(|scope| {
            for ns in took {
                let histogram = &histogram;
                scope.spawn(move || histogram.record(proxy, Duration::from_nanos(ns)));
            }
        });
        histogram.record(TRANSPORTS.len(), Duration::from_nanos(1)); // ignored
        let mut text = String::new();
        histogram.render(&mut text);
        assert!(text.contains("# TYPE floodgate_check_duration_seconds histogram"));
        let lines = series(&text, "proxy");
        let value = |name: &str| {
            let found = lines.iter().find(|(n, _)| n.ends_with(name));
            found
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{name}: {text}"))
        };
        assert_eq!(value("le=\"0.00001\"}"), "1");
        assert_eq!(value("le=\"0.000025\"}"), "2");
        assert_eq!(value("le=\"0.001\"}"), "3");
        assert_eq!(value("le=\"1\"}"), "4");
        assert_eq!(value("le=\"+Inf\"}"), "5");
        assert_eq!(value("_count{transport=\"proxy\"}"), "5");
        let sum: f64 = value("_sum{transport=\"proxy\"}").parse().unwrap();
        assert!((sum - 3.001_02).abs() < 1e-9, "{sum}");
        assert_eq!(lines.len(), BOUNDS_NS.len() + 3);
        // Every bound, in seconds as dashboards and alert rules name them.
        let les: Vec<&str> = lines
            .iter()
            .filter_map(|(name, _)| name.split("le=\"").nth(1))
            .map(|le| le.trim_end_matches("\"}"))
            .collect();
        assert_eq!(
            les,
            [
                "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"
            ]
        );
        // A transport with no check yet has no series.
        assert!(series(&text, "envoy_authz").is_empty(), "{text}");
    }
}
