//! The open loop's clock: releases check i at `start + i / rate`, finer
//! than tokio's timer.
//!
//! Tokio's timer has 1 ms ticks, so workers that sleep on it wake together
//! on each tick: at 11 000 checks/s that is a burst of ~11 checks every
//! millisecond, and the last of each burst queues behind the others — an
//! arrival pattern of the tool, not of the load (the no-op server's p50 was
//! 0.4–0.7 ms that way, 0.13 ms with checks spread). The pacer is one task
//! woken by a periodic `timerfd` (Linux; µs resolution, delivered through
//! the runtime's own epoll, so no extra thread to switch to) that wakes the
//! one worker owning each check as it falls due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The pacer's tick bounds: one tick per check, but at least this long
/// (at high rates a tick releases several checks) …
const MIN_TICK: Duration = Duration::from_micros(50);
/// … and at most this long (a low rate does not need finer ticks than
/// tokio's timer, but must not be coarser).
const MAX_TICK: Duration = Duration::from_millis(1);

/// The schedule of one open-loop run: which check falls due when, and who
/// sends it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    /// When check 0 falls due.
    pub start: Instant,
    /// Checks per second.
    pub rate: f64,
    /// Checks in the run.
    pub checks: u64,
    /// Workers; worker w sends checks w, w + W, w + 2W, …
    pub workers: u64,
}

impl Schedule {
    /// When check `seq` falls due.
    pub fn due(&self, seq: u64) -> Instant {
        self.start + Duration::from_secs_f64(seq as f64 / self.rate)
    }

    /// How often the pacer wakes.
    fn tick(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate).clamp(MIN_TICK, MAX_TICK)
    }
}

/// One gate per worker, opened by the pacer task. Dropping the pacer stops
/// the task (it also ends by itself after the last check).
pub(crate) struct Pacer {
    gates: Arc<[Notify]>,
    task: JoinHandle<()>,
}

impl Pacer {
    /// Starts the pacer task for `schedule` on the current runtime.
    ///
    /// # Errors
    /// When the OS timer cannot be created.
    pub fn start(schedule: Schedule) -> std::io::Result<Pacer> {
        let gates: Arc<[Notify]> = (0..schedule.workers).map(|_| Notify::new()).collect();
        let ticker = Ticker::new(schedule.tick())?;
        let task = tokio::spawn(release(schedule, gates.clone(), ticker));
        Ok(Pacer { gates, task })
    }

    /// The gate worker `index` waits on.
    pub fn gate(&self, index: u64) -> Gate {
        Gate {
            gates: self.gates.clone(),
            index: index as usize,
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A worker's side of the pacer.
pub(crate) struct Gate {
    gates: Arc<[Notify]>,
    index: usize,
}

impl Gate {
    /// Returns once `due` has passed and the pacer has released the
    /// worker's check (at once when the worker is already late).
    pub async fn wait(&self, due: Instant) {
        // A release that came before this wait is kept as a permit by
        // `Notify`, so the check of the clock cannot miss it.
        while Instant::now() < due {
            self.gates[self.index].notified().await;
        }
    }
}

/// The pacer task: on each tick, wakes the worker of every check that has
/// fallen due, in order, until the last check.
async fn release(schedule: Schedule, gates: Arc<[Notify]>, mut ticker: Ticker) {
    let mut seq = 0;
    while seq < schedule.checks {
        let now = Instant::now();
        while seq < schedule.checks && schedule.due(seq) <= now {
            gates[(seq % schedule.workers) as usize].notify_one();
            seq += 1;
        }
        if seq < schedule.checks {
            ticker.wait().await;
        }
    }
}

/// A periodic OS timer read through the runtime's reactor.
#[cfg(target_os = "linux")]
struct Ticker {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    tick: Duration,
}

#[cfg(target_os = "linux")]
impl Ticker {
    fn new(tick: Duration) -> std::io::Result<Ticker> {
        use rustix::time::{
            timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
            TimerfdTimerFlags, Timespec,
        };
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let every = Timespec {
            tv_sec: 0,
            tv_nsec: tick.as_nanos() as _,
        };
        let spec = Itimerspec {
            it_interval: every,
            it_value: every,
        };
        timerfd_settime(&fd, TimerfdTimerFlags::empty(), &spec)?;
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which alone can
        // reach it until it is dropped: it stays open and the same fd for the
        // registration's whole life. (Tokio has no safe way to register an
        // fd; the bench tool's one exception to `forbid(unsafe_code)`, for a
        // pacer that costs ~10 µs less CPU per check than a pacer thread.)
        #[allow(unsafe_code)]
        let fd = unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)?;
        Ok(Ticker { fd, tick })
    }

    /// Waits for the next expiry (at once if one has passed unread).
    async fn wait(&mut self) {
        let mut expirations = [0u8; 8];
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                // The reactor refused the fd: fall back to tokio's timer.
                return tokio::time::sleep(self.tick).await;
            };
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(_) => return,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Elsewhere, tokio's timer (1 ms ticks).
#[cfg(not(target_os = "linux"))]
struct Ticker(tokio::time::Interval);

#[cfg(not(target_os = "linux"))]
impl Ticker {
    fn new(tick: Duration) -> std::io::Result<Ticker> {
        Ok(Ticker(tokio::time::interval(tick)))
    }

    async fn wait(&mut self) {
        self.0.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_worker_is_released_at_its_checks_due_times_not_before() {
        let schedule = Schedule {
            start: Instant::now() + Duration::from_millis(20),
            rate: 2000.0,
            checks: 40,
            workers: 4,
        };
        let pacer = Pacer::start(schedule).expect("pacer");
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..schedule.workers {
            let gate = pacer.gate(w);
            tasks.spawn(async move {
                let mut late = Vec::new();
                for seq in (w..schedule.checks).step_by(schedule.workers as usize) {
                    let due = schedule.due(seq);
                    gate.wait(due).await;
                    let now = Instant::now();
                    assert!(now >= due, "check {seq} released before it was due");
                    late.push(now - due);
                }
                late
            });
        }
        let mut released = 0;
        let all = async {
            while let Some(late) = tasks.join_next().await {
                released += late.expect("worker").len();
            }
        };
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("every check released (the schedule takes 40 ms)");
        assert_eq!(released, 40);
    }

    #[test]
    fn the_tick_follows_the_rate_within_its_bounds() {
        let at = |rate| Schedule {
            start: Instant::now(),
            rate,
            checks: 1,
            workers: 1,
        };
        assert_eq!(at(10_000.0).tick(), Duration::from_micros(100));
        assert_eq!(at(1_000_000.0).tick(), MIN_TICK);
        assert_eq!(at(10.0).tick(), MAX_TICK);
    }
}
