//! Counting AWS API calls, per operation, for benchmarks and `-v` output,
//! and the retries among them, for the run's summary.
//!
//! An SDK interceptor on every client the provider builds increments a
//! counter named like the IAM action (`ec2:DescribeVpcs`,
//! `elasticloadbalancing:CreateLoadBalancer`, `autoscaling:...`) for each
//! request actually sent, retries included. [`RetryStats`] counts why
//! requests were sent again (`retry.rs` records them), and the creates
//! whose answer was lost and that were looked up instead (`lost.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, Default)]
pub(crate) struct ApiCallCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// The last endpoint (scheme, host, port) each service's requests went
    /// to, by IAM prefix: errors without an answer name it.
    endpoints: Arc<Mutex<BTreeMap<String, String>>>,
}

impl ApiCallCounter {
    /// Where requests of `service` (IAM prefix: `ec2`) last went.
    pub fn endpoint(&self, service: &str) -> Option<String> {
        self.endpoints.lock().expect("endpoint lock").get(service).cloned()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counter lock").clone()
    }

    pub fn record(&self, service: &str, operation: &str) {
        let key = format!("{}:{operation}", iam_prefix(service));
        *self.counts.lock().expect("counter lock").entry(key).or_insert(0) += 1;
    }
}

/// The SDK's service name ("Elastic Load Balancing") as IAM's prefix
/// ("elasticloadbalancing").
fn iam_prefix(service: &str) -> String {
    service.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

impl Intercept for ApiCallCounter {
    fn name(&self) -> &'static str {
        "skyplan-api-call-counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            self.record(meta.service(), meta.name());
        }
        Ok(())
    }

    /// `-vv`: each attempt's HTTP status and AWS request id, the id AWS
    /// support asks for.
    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return Ok(());
        }
        let Some(meta) = cfg.load::<Metadata>() else { return Ok(()) };
        let action = format!("{}:{}", iam_prefix(meta.service()), meta.name());
        match context.response() {
            Some(response) => {
                let headers = response.headers();
                let id = headers
                    .get("x-amzn-requestid")
                    .or_else(|| headers.get("x-amz-request-id"))
                    .unwrap_or("(none in the headers)");
                tracing::debug!("{action} HTTP {} request id {id}", response.status().as_u16());
            }
            None => tracing::debug!("{action}: no response"),
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let uri = context.request().uri();
            // `https://ec2.us-east-1.amazonaws.com/?Action=...` -> up to the path.
            let origin = match uri.find("://") {
                Some(i) => uri[..i + 3 + uri[i + 3..].find('/').unwrap_or(uri.len() - i - 3)].to_string(),
                None => uri.to_string(),
            };
            self.endpoints.lock().expect("endpoint lock").insert(iam_prefix(meta.service()), origin);
        }
        Ok(())
    }
}

/// Why a failed request was sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// AWS said slow down (`RequestLimitExceeded`, `Throttling`, ...).
    Throttled,
    /// A 5xx answer.
    ServerError,
    /// No answer: connection refused or reset, timeout.
    NoAnswer,
    /// A `*.NotFound` for something just created (eventual consistency).
    NotYetVisible,
}

/// Counters of retries and lost answers, shared by every clone of the
/// provider's clients.
#[derive(Debug, Clone, Default)]
pub(crate) struct RetryStats(Arc<[AtomicU64; 8]>);

const THROTTLED: usize = 0;
const SERVER_ERROR: usize = 1;
const NO_ANSWER: usize = 2;
const NOT_YET_VISIBLE: usize = 3;
const LOST: usize = 4;
const FOUND: usize = 5;
const NOT_FOUND: usize = 6;
const GAVE_UP: usize = 7;

/// What [`RetryStats`] counted, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retries {
    /// Requests sent again after a throttling answer.
    pub throttled: u64,
    /// ... after a 5xx answer.
    pub server_errors: u64,
    /// ... after no answer (connection reset or refused, timeout).
    pub no_answer: u64,
    /// ... after a `NotFound` for something just created.
    pub not_yet_visible: u64,
    /// Requests that create something, failed without a sure answer, and
    /// were not sent again: the resource was looked up first.
    pub lost_answers: u64,
    /// Of those lookups: the resource existed (adopted, then finished).
    pub found: u64,
    /// ... it did not (created again).
    pub not_found: u64,
    /// Calls that ran out of tries on a retryable error.
    pub gave_up: u64,
}

impl Retries {
    /// Requests sent again.
    pub fn retried(&self) -> u64 {
        self.throttled + self.server_errors + self.no_answer + self.not_yet_visible
    }

    /// One line for the end of a run, or None when nothing was retried.
    pub fn summary(&self, max_attempts: u32) -> Option<String> {
        if self.retried() == 0 && self.lost_answers == 0 && self.gave_up == 0 {
            return None;
        }
        let mut why = Vec::new();
        for (n, what) in [
            (self.throttled, "throttled"),
            (self.server_errors, "server errors"),
            (self.no_answer, "without an answer"),
            (self.not_yet_visible, "not yet visible"),
        ] {
            if n > 0 {
                why.push(format!("{n} {what}"));
            }
        }
        let mut line = format!("retried {} requests", self.retried());
        if !why.is_empty() {
            line.push_str(&format!(" ({})", why.join(", ")));
        }
        line.push_str(&format!(", at most {max_attempts} tries each"));
        if self.lost_answers > 0 {
            line.push_str(&format!(
                "; {} calls that make something lost their answer and were not sent again: looked up instead ({} found by tag or name, {} not found)",
                self.lost_answers, self.found, self.not_found
            ));
        }
        if self.gave_up > 0 {
            line.push_str(&format!("; {} calls gave up after {max_attempts} tries", self.gave_up));
        }
        Some(line)
    }
}

impl RetryStats {
    fn add(&self, i: usize) {
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retried(&self, reason: RetryReason) {
        self.add(match reason {
            RetryReason::Throttled => THROTTLED,
            RetryReason::ServerError => SERVER_ERROR,
            RetryReason::NoAnswer => NO_ANSWER,
            RetryReason::NotYetVisible => NOT_YET_VISIBLE,
        });
    }

    pub fn lost_answer(&self) {
        self.add(LOST);
    }

    pub fn looked_up(&self, found: bool) {
        self.add(if found { FOUND } else { NOT_FOUND });
    }

    pub fn gave_up(&self) {
        self.add(GAVE_UP);
    }

    pub fn snapshot(&self) -> Retries {
        let get = |i: usize| self.0[i].load(Ordering::Relaxed);
        Retries {
            throttled: get(THROTTLED),
            server_errors: get(SERVER_ERROR),
            no_answer: get(NO_ANSWER),
            not_yet_visible: get(NOT_YET_VISIBLE),
            lost_answers: get(LOST),
            found: get(FOUND),
            not_found: get(NOT_FOUND),
            gave_up: get(GAVE_UP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_retries_by_reason() {
        let stats = RetryStats::default();
        assert_eq!(stats.snapshot().summary(10), None, "nothing to say");
        for _ in 0..3 {
            stats.retried(RetryReason::Throttled);
        }
        stats.retried(RetryReason::NoAnswer);
        let line = stats.snapshot().summary(10).unwrap();
        assert_eq!(line, "retried 4 requests (3 throttled, 1 without an answer), at most 10 tries each");
        stats.lost_answer();
        stats.looked_up(true);
        let line = stats.snapshot().summary(10).unwrap();
        assert!(
            line.ends_with("; 1 calls that make something lost their answer and were not sent again: looked up instead (1 found by tag or name, 0 not found)"),
            "{line}"
        );
    }

    #[test]
    fn names_counters_like_iam_actions() {
        let c = ApiCallCounter::default();
        c.record("EC2", "DescribeVpcs");
        c.record("EC2", "DescribeVpcs");
        c.record("Elastic Load Balancing", "CreateLoadBalancer");
        c.record("Auto Scaling", "DeleteAutoScalingGroup");
        let snap = c.snapshot();
        assert_eq!(snap["ec2:DescribeVpcs"], 2);
        assert_eq!(snap["elasticloadbalancing:CreateLoadBalancer"], 1);
        assert_eq!(snap["autoscaling:DeleteAutoScalingGroup"], 1);
    }
}
