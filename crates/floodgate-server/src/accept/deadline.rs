//! A request's time limit that costs nothing when the answer is ready at
//! once: the timer is set only when the answer's first poll is pending,
//! and runs from then. Most checks on the local store are answered in that
//! first poll, so they never touch the runtime's timer wheel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The answer did not come within its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// `future`, or [`Elapsed`] once it has been pending for `timeout`.
pub fn deadline<F: Future>(timeout: Duration, future: F) -> Deadline<F> {
    Deadline {
        future,
        timeout,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`deadline`]: the answer's future, its time limit, and
    /// the timer set at the first pending poll.
    pub struct Deadline<F> {
        #[pin]
        future: F,
        timeout: Duration,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.future.poll(cx) {
            return Poll::Ready(Ok(answer));
        }
        let timeout = *this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_answer_sets_no_timer_and_a_slow_one_times_out() {
        let answer = deadline(Duration::from_secs(1), async { 7 });
        tokio::pin!(answer);
        assert_eq!(answer.as_mut().await, Ok(7));
        assert!(answer.timer.is_none());

        let started = Instant::now();
        let slow = deadline(
            Duration::from_secs(1),
            tokio::time::sleep(Duration::from_secs(5)),
        );
        assert_eq!(slow.await, Err(Elapsed));
        assert_eq!(started.elapsed(), Duration::from_secs(1));

        let in_time = deadline(
            Duration::from_secs(2),
            tokio::time::sleep(Duration::from_secs(1)),
        );
        assert_eq!(in_time.await, Ok(()));
    }
}
