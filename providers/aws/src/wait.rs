//! Waiting for a resource to reach a state: NAT gateways `available`,
//! instances `running` or `terminated`, auto scaling groups gone; and how
//! long a spot pool waits for its price ([`SpotWait`], used by `spot.rs`).
//!
//! A waiter polls with backoff (first poll at once, then growing up to a
//! cap), reports progress through the operation's [`OpContext`] when it
//! starts waiting and whenever the state changes, and gives up after a
//! bounded time with an error that says what it waited for and the last
//! state seen. It uses tokio's clock, so tests drive it with paused time.
//! The emulator reaches every state at once, so the waiting itself is only
//! exercised by the tests below.

use std::future::Future;
use std::time::Duration;

use skyplan_engine::{OpContext, ProviderError};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::retry::Backoff;

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Poll<T> {
    /// The awaited state, with whatever the caller needs from it.
    Ready(T),
    /// Not yet; the state AWS reports now (`pending`).
    Pending(String),
    /// A state it will not leave for the awaited one (`failed`), and why.
    Failed(String),
}

/// How long to wait and how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Patience {
    pub timeout: Duration,
    pub backoff: Backoff,
}

impl Patience {
    /// Minutes-scale waits (NAT gateways, instances, auto scaling groups):
    /// look after 2 s, then back off to every 15 s.
    pub fn minutes(minutes: u64) -> Self {
        Patience {
            timeout: Duration::from_secs(minutes * 60),
            backoff: Backoff { base: Duration::from_secs(2), cap: Duration::from_secs(15) },
        }
    }
}

/// Poll until `poll` says ready, failed, or `patience.timeout` passes.
/// `what` completes "waiting for {what}" ("NAT gateway nat-0abc to be available").
pub(crate) async fn until<T, F, Fut>(
    ctx: &OpContext,
    what: &str,
    patience: Patience,
    mut poll: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ApiError>>,
{
    let start = Instant::now();
    let mut attempt = 0;
    let mut last_state: Option<String> = None;
    loop {
        let state = match poll().await? {
            Poll::Ready(value) => return Ok(value),
            Poll::Failed(why) => return Err(ProviderError::new(format!("gave up waiting for {what}: {why}"))),
            Poll::Pending(state) => state,
        };
        if last_state.as_deref() != Some(state.as_str()) {
            ctx.report(format!("waiting for {what} (now {state})"));
            last_state = Some(state);
        }
        let delay = patience.backoff.delay(attempt);
        if start.elapsed() + delay > patience.timeout {
            return Err(ProviderError::new(format!(
                "timed out after {}s waiting for {what}; last state: {}",
                patience.timeout.as_secs(),
                last_state.unwrap_or_default()
            )));
        }
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// How long `apply` waits for a spot price in range, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpotWait {
    /// Give up after this long; zero looks once and does not wait.
    pub bound: Duration,
    pub interval: Duration,
}

impl SpotWait {
    /// The default bound of `apply --spot-wait`.
    pub const DEFAULT_BOUND: Duration = Duration::from_secs(10 * 60);
    /// Spot prices change a few times an hour at most.
    pub const INTERVAL: Duration = Duration::from_secs(30);

    pub fn bounded(bound: Duration) -> Self {
        SpotWait { bound, interval: Self::INTERVAL }
    }
}

impl Default for SpotWait {
    fn default() -> Self {
        SpotWait::bounded(Self::DEFAULT_BOUND)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use skyplan_engine::Address;

    use super::*;

    fn recording_ctx() -> (OpContext, Arc<Mutex<Vec<String>>>) {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let ctx = OpContext::new(
            Address::keyed("aws_nat_gateway", "main", "us-east-1a"),
            "tok".into(),
            Some(Arc::new(move |p| sink.lock().unwrap().push(p.message))),
        );
        (ctx, reports)
    }

    /// A fake resource that reports the given states one poll at a time.
    fn states(seq: &[&str]) -> Arc<Mutex<std::collections::VecDeque<String>>> {
        Arc::new(Mutex::new(seq.iter().map(|s| s.to_string()).collect()))
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_pending_and_reports_each_state_once() {
        let (ctx, reports) = recording_ctx();
        let seq = states(&["pending", "pending", "pending", "available"]);
        let start = Instant::now();
        let out = until(&ctx, "NAT gateway nat-1 to be available", Patience::minutes(10), || {
            let seq = seq.clone();
            async move {
                let s = seq.lock().unwrap().pop_front().unwrap();
                Ok(if s == "available" { Poll::Ready("nat-1") } else { Poll::Pending(s) })
            }
        })
        .await;
        assert_eq!(out, Ok("nat-1"));
        let waited = start.elapsed();
        // Three waits with ceilings 2, 4 and 8 s, each at least half its ceiling.
        assert!(waited >= Duration::from_secs(7) && waited <= Duration::from_secs(14), "{waited:?}");
        assert_eq!(*reports.lock().unwrap(), ["waiting for NAT gateway nat-1 to be available (now pending)"]);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_at_once_does_not_sleep_or_report() {
        let (ctx, reports) = recording_ctx();
        let start = Instant::now();
        let out = until(&ctx, "x", Patience::minutes(10), || async { Ok(Poll::Ready(())) }).await;
        assert!(out.is_ok());
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(reports.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_state() {
        let (ctx, _) = recording_ctx();
        let start = Instant::now();
        let out: Result<(), _> = until(&ctx, "instance i-1 to be running", Patience::minutes(10), || async {
            Ok(Poll::Pending("pending".into()))
        })
        .await;
        let e = out.unwrap_err();
        assert!(e.message.contains("timed out after 600s waiting for instance i-1 to be running"), "{}", e.message);
        assert!(e.message.contains("last state: pending"), "{}", e.message);
        assert!(start.elapsed() <= Duration::from_secs(600));
        assert!(
            start.elapsed() >= Duration::from_secs(580),
            "it waited nearly the whole timeout: {:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_state_stops_at_once() {
        let (ctx, reports) = recording_ctx();
        let seq = states(&["pending", "failed"]);
        let out: Result<(), _> = until(&ctx, "NAT gateway nat-1 to be available", Patience::minutes(10), || {
            let seq = seq.clone();
            async move {
                let s = seq.lock().unwrap().pop_front().unwrap();
                Ok(if s == "failed" {
                    Poll::Failed("Network vpc-1 has no Internet gateway attached".into())
                } else {
                    Poll::Pending(s)
                })
            }
        })
        .await;
        let e = out.unwrap_err();
        assert!(e.message.contains("no Internet gateway attached"), "{}", e.message);
        assert_eq!(reports.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_error_is_returned() {
        let (ctx, _) = recording_ctx();
        let out: Result<(), _> = until(&ctx, "x", Patience::minutes(1), || async {
            Err(ApiError::service("DescribeInstances", "UnauthorizedOperation", "no"))
        })
        .await;
        assert!(out.unwrap_err().message.contains("UnauthorizedOperation"));
    }
}
