//! A request's time limit that costs nothing when the answer is ready at
//! once: the timer is set only when the answer's first poll is pending,
//! and runs from then. Most checks on the local store are answered in that
//! first poll, so they never touch the runtime's timer wheel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// `future`'s answer, or `elapsed(timeout)` once it has been pending for
/// `timeout`.
///
/// One named future rather than an `async` block around a timeout: such a
/// block holds the answer's future twice, and hyper copies a request's
/// future whole when it stores it.
pub fn deadline<F: Future>(
    timeout: Duration,
    future: F,
    elapsed: fn(Duration) -> F::Output,
) -> Deadline<F> {
    Deadline {
        future,
        timeout,
        elapsed,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`deadline`]: the answer's future, its time limit, the
    /// answer given when it runs out, and the timer set at the first
    /// pending poll.
    pub struct Deadline<F: Future> {
        #[pin]
        future: F,
        timeout: Duration,
        elapsed: fn(Duration) -> F::Output,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.future.poll(cx) {
            return Poll::Ready(answer);
        }
        let timeout = *this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready((this.elapsed)(timeout)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn late(timeout: Duration) -> Result<u32, Duration> {
        Err(timeout)
    }

    async fn after(delay: Duration) -> Result<u32, Duration> {
        tokio::time::sleep(delay).await;
        Ok(7)
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_answer_sets_no_timer_and_a_slow_one_times_out() {
        let answer = deadline(Duration::from_secs(1), async { Ok(7) }, late);
        tokio::pin!(answer);
        assert_eq!(answer.as_mut().await, Ok(7));
        assert!(answer.timer.is_none());

        let started = Instant::now();
        let slow = deadline(Duration::from_secs(1), after(Duration::from_secs(5)), late);
        assert_eq!(slow.await, Err(Duration::from_secs(1)));
        assert_eq!(started.elapsed(), Duration::from_secs(1));

        let in_time = deadline(Duration::from_secs(2), after(Duration::from_secs(1)), late);
        assert_eq!(in_time.await, Ok(7));
    }
}
