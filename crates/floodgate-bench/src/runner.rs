//! Runs a [`Config`]: opens every connection first, then starts the workers
//! at one instant, lets them run until the request budget or the deadline is
//! used up, and merges what they measured.
//!
//! Worker w owns one client per target and a key generator of its own; it
//! shares nothing with the other workers but the check counter (closed
//! loop). Check number i goes to target i mod T, so several sidecars get
//! the checks round-robin.
//!
//! Closed loop: workers take the next check number from a shared counter.
//! Open loop: worker w owns checks w, w + W, w + 2W, … (W workers), check i
//! scheduled at i / rate; a worker still busy at a check's scheduled time
//! sends it late and the wait counts as latency. Checks are sent up to one
//! timer tick (1 ms) early, and latency then runs from the actual send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{Config, Load};
use crate::error::BenchError;
use crate::keys::KeySampler;
use crate::protocol::{Client, Outcome};
use crate::report::Report;
use crate::stats::Stats;

/// The resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// What every worker of one run reads.
struct Plan {
    /// When the first check is (scheduled to be) sent.
    start: Instant,
    /// No check starts at or after this instant.
    deadline: Instant,
    /// Stop after this many checks: `--requests` if set; in an open loop
    /// also the number of checks scheduled before the deadline.
    requests: Option<u64>,
    /// Per-check timeout.
    timeout: Duration,
    /// Cost of each check, for per-key admitted hits.
    hits: u64,
    /// Whether to count admitted hits per key.
    accuracy: bool,
    /// Closed loop: the next check number to take.
    next: AtomicU64,
    /// Closed or open loop.
    load: Load,
    /// Total workers (the stride of the open-loop schedule).
    workers: u64,
}

/// Runs the bench described by `config` and reports what it measured.
/// Must be called within a tokio runtime; workers are spawned on it.
///
/// # Errors
/// [`BenchError::Connect`] when a target cannot be reached before the run
/// starts; [`BenchError::Worker`] if a worker task panics. Failed checks
/// during the run are counted in the report, not returned as errors.
pub async fn run(config: &Config) -> Result<Report, BenchError> {
    let template = Arc::new(config.template.clone());
    // Open every connection before the clock starts: slot c, target t gives
    // `in_flight` clients; worker (c, m) gets the m-th client of each target.
    let mut workers: Vec<Vec<Client>> = Vec::with_capacity(config.workers());
    for _ in 0..config.connections {
        let mut per_target = Vec::with_capacity(config.targets.len());
        for target in &config.targets {
            let clients =
                Client::open(config.protocol, target, &template, config.in_flight).await?;
            per_target.push(clients.into_iter());
        }
        for _ in 0..config.in_flight {
            workers.push(per_target.iter_mut().filter_map(Iterator::next).collect());
        }
    }
    let start = Instant::now();
    let requests = match config.load {
        Load::Closed => config.requests,
        Load::Open { rate } => {
            // Check i is scheduled at i / rate: those before the deadline.
            let scheduled = (config.duration.as_secs_f64() * rate).ceil() as u64;
            Some(config.requests.map_or(scheduled, |n| n.min(scheduled)))
        }
    };
    let plan = Arc::new(Plan {
        start,
        deadline: start + config.duration,
        requests,
        timeout: config.timeout,
        hits: config.template.hits,
        accuracy: config.accuracy_limit.is_some(),
        next: AtomicU64::new(0),
        load: config.load,
        workers: workers.len() as u64,
    });
    let sampler = KeySampler::new(config.keys);
    let mut tasks = JoinSet::new();
    for (index, clients) in workers.into_iter().enumerate() {
        let seed = config
            .seed
            .wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.spawn(worker(
            index as u64,
            clients,
            sampler.clone(),
            SmallRng::seed_from_u64(seed),
            plan.clone(),
        ));
    }
    let mut total = Stats::new(plan.accuracy);
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.map_err(|e| BenchError::Worker(e.to_string()))?);
    }
    Ok(Report::new(config, total, start.elapsed()))
}

/// One worker: sends checks one at a time until its share of the run is
/// done, and returns what it measured.
async fn worker(
    index: u64,
    mut clients: Vec<Client>,
    sampler: KeySampler,
    mut rng: SmallRng,
    plan: Arc<Plan>,
) -> Stats {
    let mut stats = Stats::new(plan.accuracy);
    let targets = clients.len() as u64;
    // Open loop: this worker takes checks index, index + W, index + 2W, …
    let mut own = index;
    loop {
        let (seq, scheduled) = match plan.load {
            Load::Closed => (plan.next.fetch_add(1, Ordering::Relaxed), None),
            Load::Open { rate } => {
                let seq = own;
                own += plan.workers;
                let at = plan.start + Duration::from_secs_f64(seq as f64 / rate);
                (seq, Some(at))
            }
        };
        if plan.requests.is_some_and(|n| seq >= n) {
            break;
        }
        if let Some(at) = scheduled {
            // Tokio's timer has 1 ms ticks and fires on the first tick at or
            // after its deadline: aim one tick early so timer slack does not
            // show up as latency.
            tokio::time::sleep_until(at.checked_sub(TIMER_TICK).unwrap_or(at)).await;
        }
        let sent = Instant::now();
        if sent >= plan.deadline {
            if let (Some(n), Some(_)) = (plan.requests, scheduled) {
                // Open loop, fallen behind: this check and the rest of this
                // worker's schedule were never sent.
                stats.unsent += (n - seq).div_ceil(plan.workers);
            }
            break;
        }
        let key = sampler.sample(&mut rng);
        let client = &mut clients[(seq % targets) as usize];
        let outcome = match tokio::time::timeout(plan.timeout, client.check(key)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                client.reset();
                Outcome::Transport(format!("no answer within {:?}", plan.timeout))
            }
        };
        let service = sent.elapsed();
        // From the scheduled time when sent late (the wait is part of the
        // latency: no coordinated omission), from the send when sent early.
        let latency = scheduled.map_or(service, |at| at.min(sent).elapsed());
        stats.record(outcome, key, plan.hits, latency, service);
    }
    stats
}
