//! Testing what dropping a future does: [`poll_at_most`] polls a call a given number of
//! times and drops it, so a test can stop a call at each of its await points in turn.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

/// Polls `fut` at most `k` times, letting the runtime run for a moment between polls (so
/// the call's requests reach the cluster and its answers come back), and drops it if it
/// has not finished: the output if it finished within `k` polls, `None` if it was dropped.
///
/// Calling it with `k` = 0, 1, 2, ... until it returns `Some` stops the call once at each
/// point where it waits; after each drop a test checks what the drop left (nothing lost,
/// nothing done twice, the client still usable). Strom's own tests do so for every public
/// async method of its client (`fake/tests/cancellation.rs`).
///
/// ```
/// # async fn demo() {
/// // An empty future finishes at its first poll; none is dropped at zero polls.
/// assert_eq!(strom_fake::poll_at_most(async { 7 }, 0).await, None);
/// assert_eq!(strom_fake::poll_at_most(async { 7 }, 1).await, Some(7));
/// # }
/// ```
pub async fn poll_at_most<F: Future>(fut: F, k: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..k {
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(v) = polled {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    None
}
