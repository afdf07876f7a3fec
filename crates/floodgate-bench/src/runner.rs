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
//! scheduled at i / rate and released by the pacer (`src/pacer.rs`)
//! when it falls due; a worker still busy at a check's scheduled
//! time sends it late, and latency always runs from the scheduled time (no
//! coordinated omission).

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
use crate::pacer::{Gate, Pacer, Schedule};
use crate::protocol::{Client, Outcome};
use crate::report::Report;
use crate::stats::Stats;

/// What every worker of one run reads.
struct Plan {
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
    /// Open loop: when each check falls due; closed loop: `None`.
    schedule: Option<Schedule>,
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
    let schedule = match (config.load, requests) {
        (Load::Open { rate }, Some(checks)) => Some(Schedule {
            start: start.into_std(),
            rate,
            checks,
            workers: workers.len() as u64,
        }),
        _ => None,
    };
    let pacer = schedule
        .map(Pacer::start)
        .transpose()
        .map_err(|e| BenchError::Worker(format!("cannot start the open-loop timer: {e}")))?;
    let plan = Arc::new(Plan {
        deadline: start + config.duration,
        requests,
        timeout: config.timeout,
        hits: config.template.hits,
        accuracy: config.accuracy_limit.is_some(),
        next: AtomicU64::new(0),
        schedule,
    });
    let sampler = KeySampler::new(config.keys);
    let mut tasks = JoinSet::new();
    for (index, clients) in workers.into_iter().enumerate() {
        let seed = config
            .seed
            .wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.spawn(worker(
            index as u64,
            pacer.as_ref().map(|p| p.gate(index as u64)),
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
    gate: Option<Gate>,
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
        let (seq, scheduled) = match plan.schedule {
            None => (plan.next.fetch_add(1, Ordering::Relaxed), None),
            Some(schedule) => {
                let seq = own;
                own += schedule.workers;
                (seq, Some(schedule.due(seq)))
            }
        };
        if plan.requests.is_some_and(|n| seq >= n) {
            break;
        }
        if let (Some(due), Some(gate)) = (scheduled, &gate) {
            gate.wait(due).await;
        }
        let sent = Instant::now();
        if sent >= plan.deadline {
            if let (Some(n), Some(schedule)) = (plan.requests, plan.schedule) {
                // Open loop, fallen behind: this check and the rest of this
                // worker's schedule were never sent.
                stats.unsent += (n - seq).div_ceil(schedule.workers);
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
        // From the scheduled time: the wait of a late check is part of its
        // latency (no coordinated omission).
        let latency = scheduled.map_or(service, |due| due.elapsed());
        stats.record(outcome, key, plan.hits, latency, service);
    }
    stats
}
