//! Retrying AWS calls: which errors are worth another try, and how long to
//! wait between tries.
//!
//! The provider owns all retries: the SDK clients are built with the SDK's
//! retry disabled (`RetryConfig::disabled()` in `clients.rs`), so the two
//! never multiply and every rule is here:
//!
//! - every call retries throttling (`RequestLimitExceeded`, `Throttling`, ...),
//!   transport failures (no answer, timeouts) and 5xx answers;
//! - calls made while creating or updating also retry the `*.NotFound` codes
//!   AWS returns for a resource that was just created and is not yet visible
//!   everywhere (EC2's eventual consistency), see [`EVENTUALLY_CONSISTENT`];
//! - deletes retry `DependencyViolation` and friends for a bounded *time*
//!   ([`while_blocked`]): what blocks them (ENIs of a deleted load balancer,
//!   a terminating instance) goes away on its own within minutes;
//! - calls that make something new ([`NON_IDEMPOTENT`]: `CreateVpc`,
//!   `RunInstances`, `CreateRoute`, ...) are *not* sent again after a
//!   failure that leaves it unknown whether AWS acted ([`is_lost`]: no
//!   answer, or a 5xx): a second `CreateVpc` would make a second VPC, a
//!   second `CreateRoute` fail with `RouteAlreadyExists`. The create or
//!   update they belong to looks the resource up instead (`lost.rs`).
//!   Throttling is a sure "not done", so those calls retry it as usual.
//!
//! Waits use exponential backoff with "equal jitter" (half the ceiling fixed,
//! half random) and tokio's clock, so tests run them instantly with paused
//! time. Waiting for a resource to reach a state is `wait.rs`.

use std::future::Future;
use std::time::Duration;

use skyplan_engine::OpContext;
use tokio::time::Instant;

use crate::calls::{RetryReason, RetryStats};
use crate::error::{ApiError, THROTTLING};

/// "Not found" codes that, right after the thing was created (by this call's
/// resource or by one it depends on), only mean "not visible yet".
pub(crate) const EVENTUALLY_CONSISTENT: &[&str] = &[
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidNatGatewayID.NotFound",
    "NatGatewayNotFound",
    "InvalidGroup.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidGatewayID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidInstanceID.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidNetworkInterfaceID.NotFound",
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
    // IAM (`iam.rs`): a role or policy just created, not yet visible to the
    // next call (IAM is eventually consistent).
    "NoSuchEntity",
];

/// EC2's answer to a launch with an instance profile IAM created seconds
/// ago (IAM is eventually consistent: EC2 sees a new profile after a few
/// seconds): `InvalidParameterValue` "Value (NAME) for parameter
/// iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name".
/// Auto scaling checks a group's launch template the same way at
/// CreateAutoScalingGroup (`ValidationError`, "You must use a valid
/// fully-formed launch template. ... Invalid IAM Instance Profile name").
/// A profile that never appears still fails after the retries, with
/// AWS's words.
fn is_profile_not_yet_visible(err: &ApiError) -> bool {
    err.has_code(&["InvalidParameterValue", "InvalidParameterCombination", "ValidationError"])
        && err.message.contains("Invalid IAM Instance Profile")
}

/// Codes a delete gets while something else still uses the resource.
pub(crate) const BLOCKED: &[&str] = &[
    "DependencyViolation",
    "ResourceInUse",
    "ResourceInUseFault",
    "InvalidIPAddress.InUse",
    "ScalingActivityInProgress",
];

/// Calls that make something new each time they are sent, or fail when
/// what they make already exists: after a lost answer they are not sent
/// again (see [`is_lost`]). A unit test checks every call of the provider
/// that creates, allocates, runs, attaches, associates or authorizes is
/// listed here or in [`IDEMPOTENT_MAKERS`].
pub(crate) const NON_IDEMPOTENT: &[&str] = &[
    "AllocateAddress",
    "AssociateRouteTable",
    "AttachInternetGateway",
    "AuthorizeSecurityGroupIngress",
    "CreateAutoScalingGroup",
    "CreateInternetGateway",
    "CreateLaunchTemplate",
    "CreateLaunchTemplateVersion",
    "CreateLoadBalancer",
    "CreateLoadBalancerListeners",
    "CreateNatGateway",
    "CreateRoute",
    "CreateRouteTable",
    "CreateSecret",
    "CreateSecurityGroup",
    "CreateSubnet",
    "CreateVpc",
    "RunInstances",
];

/// Calls named like makers that are safe to send twice: tags are set, not
/// added twice; attaching an ELB to a subnet it is in changes nothing.
///
/// IAM's makers (`iam.rs`) answer a second send with `EntityAlreadyExists`,
/// which `iam.rs` takes as done; attaching an attached policy changes nothing.
#[cfg(test)]
pub(crate) const IDEMPOTENT_MAKERS: &[&str] = &[
    "AttachLoadBalancerToSubnets",
    "CreateTags",
    "CreateOrUpdateTags",
    "AttachRolePolicy",
    "CreateInstanceProfile",
    "CreatePolicy",
    "CreateRole",
];

/// A failure after which AWS may or may not have done what was asked: no
/// answer at all, or a 5xx other than throttling.
pub(crate) fn is_lost(err: &ApiError) -> bool {
    // No connection was made, so nothing was sent: a sure "not done".
    if err.has_code(THROTTLING) || err.unreachable {
        return false;
    }
    match (err.code.as_deref(), err.status) {
        (None, None) => true,
        (_, Some(status)) => status >= 500,
        _ => false,
    }
}

/// Why a retryable error is retried, for the run's report.
pub(crate) fn reason(err: &ApiError) -> RetryReason {
    if err.has_code(THROTTLING) {
        RetryReason::Throttled
    } else if err.status.is_some_and(|s| s >= 500) {
        RetryReason::ServerError
    } else if err.status.is_none() {
        RetryReason::NoAnswer
    } else {
        RetryReason::NotYetVisible
    }
}

/// Which errors a call retries besides throttling and transport failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and deletes: a `NotFound` is an answer.
    Standard,
    /// Creates and updates: a `NotFound` for an id just created is not.
    AfterCreate,
}

pub(crate) fn is_retryable(err: &ApiError, retry: Retry) -> bool {
    if err.has_code(THROTTLING) {
        return true;
    }
    if retry == Retry::AfterCreate && (err.has_code(EVENTUALLY_CONSISTENT) || is_profile_not_yet_visible(err)) {
        return true;
    }
    match (err.code.as_deref(), err.status) {
        // No answer at all: connection refused or reset, timeout.
        (None, None) => true,
        (_, Some(status)) => status >= 500,
        _ => false,
    }
}

/// Exponential backoff with equal jitter: attempt `n` (from 0) waits between
/// half and all of `min(cap, base * 2^n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The longest attempt `n` may wait.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry `attempt`, given `unit` drawn from `[0, 1)`.
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }
}

/// How often and how patiently one API call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// Ten tries over at most about a minute and a half: enough for EC2's
    /// eventual consistency and a burst of throttling, short enough that a
    /// real error reaches the user while they are still watching.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            backoff: Backoff { base: Duration::from_millis(250), cap: Duration::from_secs(20) },
        }
    }
}

/// Run `call` until it succeeds, fails with an error `retry` does not cover,
/// or `policy.max_attempts` tries are spent (then the last error is returned).
#[cfg(test)]
pub(crate) async fn run<T, F, Fut>(policy: &RetryPolicy, retry: Retry, call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    run_counted(policy, retry, true, &RetryStats::default(), call).await
}

/// [`run`] for one named call: `idempotent` false keeps a lost answer
/// ([`is_lost`]) from being sent again; `stats` counts each retry by reason,
/// each lost answer, and each call that ran out of tries.
pub(crate) async fn run_counted<T, F, Fut>(
    policy: &RetryPolicy,
    retry: Retry,
    idempotent: bool,
    stats: &RetryStats,
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    let start = Instant::now();
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) if !idempotent && is_lost(&err) => {
                stats.lost_answer();
                return Err(err);
            }
            Err(mut err) if is_retryable(&err, retry) => {
                let delay = policy.backoff.delay(attempt);
                let out_of_patience = err.unreachable && start.elapsed() + delay > UNREACHABLE_PATIENCE;
                if attempt + 1 >= policy.max_attempts || out_of_patience {
                    stats.gave_up();
                    err.gave_up = Some((attempt + 1, start.elapsed()));
                    return Err(err);
                }
                stats.retried(reason(&err));
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// How long a call keeps trying when no connection can be made at all
/// (refused, no such host): a blip clears in seconds, while a wrong
/// endpoint or a network that is down never does, and the user should
/// hear so within about ten seconds, not after a minute of silence.
pub(crate) const UNREACHABLE_PATIENCE: Duration = Duration::from_secs(8);

/// Run a delete step, retrying while AWS says something still depends on the
/// resource ([`BLOCKED`]), for at most `limit`. Progress goes to `ctx`. The
/// error after `limit` is AWS's last word, which names the blocker where AWS
/// does; callers add what they can find out about the dependents.
pub(crate) async fn while_blocked<T, F, Fut>(
    ctx: &OpContext,
    what: &str,
    limit: Duration,
    backoff: Backoff,
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        match call().await {
            Err(err) if err.has_code(BLOCKED) => {
                let delay = backoff.delay(attempt);
                if start.elapsed() + delay > limit {
                    return Err(err);
                }
                if attempt == 0 {
                    ctx.report(format!("waiting for what still uses {what} to go ({}: {})", err.code(), err.message));
                }
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use skyplan_engine::Address;

    use super::*;

    fn err(code: &str) -> ApiError {
        ApiError::service("Op", code, "m")
    }

    fn ctx() -> OpContext {
        OpContext::new(Address::new("aws_vpc", "main"), "tok".into(), None)
    }

    #[test]
    fn classifies_errors() {
        use Retry::*;
        for code in ["RequestLimitExceeded", "Throttling", "ThrottlingException"] {
            assert!(is_retryable(&err(code), Standard), "{code}");
        }
        for code in [
            "InvalidVpcID.NotFound",
            "InvalidSubnetID.NotFound",
            "InvalidNatGatewayID.NotFound",
            "InvalidGroup.NotFound",
            "InvalidInternetGatewayID.NotFound",
            "InvalidAllocationID.NotFound",
            "InvalidInstanceID.NotFound",
            "InvalidRouteTableID.NotFound",
        ] {
            assert!(is_retryable(&err(code), AfterCreate), "{code} after create");
            assert!(!is_retryable(&err(code), Standard), "{code} on read/delete is an answer");
        }
        for code in ["DependencyViolation", "InvalidParameterValue", "UnauthorizedOperation", "InvalidVpc.Range"] {
            assert!(!is_retryable(&err(code), AfterCreate), "{code}");
        }
        // A launch right after the instance profile was created: IAM's
        // eventual consistency, retried while creating only.
        let young_profile = ApiError::service(
            "RunInstances",
            "InvalidParameterValue",
            "Value (nodes.cluster-api-provider-aws.sigs.k8s.io) for parameter iamInstanceProfile.name is invalid. \
             Invalid IAM Instance Profile name",
        );
        assert!(is_retryable(&young_profile, AfterCreate));
        assert!(!is_retryable(&young_profile, Standard));
        let group = ApiError::service(
            "CreateAutoScalingGroup",
            "ValidationError",
            "You must use a valid fully-formed launch template. Value (nodes.x) for parameter iamInstanceProfile.name \
             is invalid. Invalid IAM Instance Profile name",
        );
        assert!(is_retryable(&group, AfterCreate));
        assert!(!is_retryable(
            &ApiError::service("CreateAutoScalingGroup", "ValidationError", "bad size"),
            AfterCreate
        ));
        let other_value =
            ApiError::service("RunInstances", "InvalidParameterValue", "Invalid value 'x' for instanceType");
        assert!(!is_retryable(&other_value, AfterCreate), "only the profile message");
        // No answer (connection refused, timeout): retry. A 5xx: retry. A 4xx without code: no.
        assert!(is_retryable(&ApiError::new("Op", None, "connection refused", None), Standard));
        assert!(is_retryable(&ApiError::new("Op", Some("InternalError"), "x", Some(500)), Standard));
        assert!(is_retryable(&ApiError::new("Op", None, "<html>", Some(503)), Standard));
        assert!(!is_retryable(&ApiError::new("Op", None, "bad request", Some(400)), Standard));
    }

    #[test]
    fn backoff_grows_to_its_cap_and_jitters_within_bounds() {
        let b = Backoff { base: Duration::from_millis(250), cap: Duration::from_secs(20) };
        assert_eq!(b.ceiling(0), Duration::from_millis(250));
        assert_eq!(b.ceiling(3), Duration::from_secs(2));
        assert_eq!(b.ceiling(7), Duration::from_secs(20));
        assert_eq!(b.ceiling(1000), Duration::from_secs(20), "no overflow for huge attempts");
        assert_eq!(b.delay_with(3, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay_with(3, 1.0), Duration::from_secs(2));
        for attempt in 0..40 {
            for _ in 0..20 {
                let d = b.delay(attempt);
                assert!(d >= b.ceiling(attempt) / 2 && d <= b.ceiling(attempt), "{d:?} at {attempt}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_throttling_then_succeeds() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let out = run(&RetryPolicy::default(), Retry::Standard, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(err("RequestLimitExceeded")),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(out, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Two waits: at most 250 ms + 500 ms of (paused, auto-advanced) time.
        assert!(start.elapsed() <= Duration::from_millis(750), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_bounded_total_wait() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::default();
        let start = Instant::now();
        let out: Result<(), _> = run(&policy, Retry::AfterCreate, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(err("InvalidVpcID.NotFound"))
        })
        .await;
        assert_eq!(out.unwrap_err().code(), "InvalidVpcID.NotFound");
        assert_eq!(calls.load(Ordering::SeqCst), policy.max_attempts);
        let bound: Duration = (0..policy.max_attempts - 1).map(|a| policy.backoff.ceiling(a)).sum();
        assert!(start.elapsed() <= bound, "{:?} > {bound:?}", start.elapsed());
        assert!(bound <= Duration::from_secs(100), "the whole retry stays under two minutes: {bound:?}");
    }

    /// Nobody at the endpoint: the call gives up within about ten seconds
    /// (not the minute and a half of the full policy), even for a create
    /// (nothing was sent), and the error says how long it tried.
    #[tokio::test(start_paused = true)]
    async fn an_unreachable_endpoint_gives_up_within_seconds() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let stats = RetryStats::default();
        let out: Result<(), _> = run_counted(&RetryPolicy::default(), Retry::Standard, false, &stats, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError { unreachable: true, ..ApiError::new("CreateVpc", None, "connection refused", None) })
        })
        .await;
        let e = out.unwrap_err();
        assert!(start.elapsed() <= UNREACHABLE_PATIENCE, "{:?}", start.elapsed());
        assert!(calls.load(Ordering::SeqCst) > 1, "a blip still gets retries");
        assert_eq!(stats.snapshot().lost_answers, 0, "a refused connection sent nothing");
        let (tries, _) = e.gave_up.expect("gave up");
        assert_eq!(tries, calls.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_that_does_not_clear_names_the_service_and_how_long() {
        let out: Result<(), _> = run(&RetryPolicy::default(), Retry::Standard, || async {
            Err(ApiError { service: Some("ec2"), ..err("RequestLimitExceeded") })
        })
        .await;
        let text = out.unwrap_err().to_string();
        assert!(
            text.starts_with("ec2:Op failed: ec2 kept throttling the requests (RequestLimitExceeded) for "),
            "{text}"
        );
        assert!(text.contains(" s over 10 tries"), "{text}");
        assert!(text.contains("--rate-limit"), "{text}");
    }

    /// A create whose answer is lost is not sent again (it could make a
    /// duplicate); throttling, a sure "not done", is retried; every retry
    /// and lost answer is counted by reason.
    #[tokio::test(start_paused = true)]
    async fn lost_answers_of_non_idempotent_calls_are_not_resent() {
        let stats = RetryStats::default();
        let policy = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = run_counted(&policy, Retry::Standard, false, &stats, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(err("RequestLimitExceeded")),
                1 => Err(ApiError::new("CreateVpc", Some("Throttling"), "Rate exceeded", Some(400))),
                _ => Err(ApiError::new("CreateVpc", None, "connection reset", None)),
            }
        })
        .await;
        assert_eq!(out.unwrap_err().status, None);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "two throttles retried, the reset not");
        let counted = stats.snapshot();
        assert_eq!((counted.throttled, counted.lost_answers, counted.retried()), (2, 1, 2));

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), _> = run_counted(&policy, Retry::Standard, false, &stats, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError::new("RunInstances", Some("InternalError"), "internal", Some(500)))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a 500 may have run the create");

        // The same failures on an idempotent call are retried, and counted.
        calls.store(0, Ordering::SeqCst);
        let out = run_counted(&policy, Retry::Standard, true, &stats, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(ApiError::new("DescribeVpcs", None, "connection reset", None)),
                1 => Err(ApiError::new("DescribeVpcs", Some("InternalError"), "internal", Some(500))),
                _ => Ok(1),
            }
        })
        .await;
        assert_eq!(out, Ok(1));
        let counted = stats.snapshot();
        assert_eq!((counted.no_answer, counted.server_errors, counted.retried()), (1, 1, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn counts_a_call_that_runs_out_of_tries() {
        let stats = RetryStats::default();
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let out: Result<(), _> =
            run_counted(&policy, Retry::Standard, true, &stats, || async { Err(err("Throttling")) }).await;
        assert!(out.is_err());
        let counted = stats.snapshot();
        assert_eq!((counted.throttled, counted.gave_up), (2, 1), "3 tries: 2 retries, then it gives up");
    }

    /// Every call of the provider that makes something is classified: sent
    /// again after a lost answer only when that is safe.
    #[test]
    fn every_maker_call_is_classified() {
        let mut unclassified = Vec::new();
        let mut seen = Vec::new();
        // Every file of src/, the kinds' folder included.
        let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("call(\"").skip(1).chain(text.split("paginate(\"").skip(1)) {
                    let op = part.split('"').next().unwrap_or_default();
                    seen.push(op.to_string());
                    let maker = ["Create", "Allocate", "Run", "Attach", "Associate", "Authorize"]
                        .iter()
                        .any(|p| op.starts_with(p));
                    if maker && !NON_IDEMPOTENT.contains(&op) && !IDEMPOTENT_MAKERS.contains(&op) {
                        unclassified.push(format!("{op} in {}", path.display()));
                    }
                }
            }
        }
        assert!(seen.iter().any(|op| op == "CreateVpc"), "the kinds' files were not read");
        assert!(unclassified.is_empty(), "classify these in retry.rs: {unclassified:?}");
        assert!(NON_IDEMPOTENT.contains(&"CreateVpc") && NON_IDEMPOTENT.contains(&"RunInstances"));
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_answers() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = run(&RetryPolicy::default(), Retry::Standard, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(err("InvalidVpcID.NotFound"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "NotFound on a read is an answer");
    }

    #[tokio::test(start_paused = true)]
    async fn delete_waits_out_a_dependency_then_succeeds() {
        let calls = AtomicU32::new(0);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let ctx = OpContext::new(
            Address::new("aws_security_group", "node"),
            "t".into(),
            Some(Arc::new(move |p| sink.lock().unwrap().push(p.message))),
        );
        let backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(15) };
        let out = while_blocked(&ctx, "security group sg-1", Duration::from_secs(600), backoff, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=4 => Err(err("DependencyViolation")),
                _ => Ok(()),
            }
        })
        .await;
        assert_eq!(out, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1, "one progress line, not one per try: {reports:?}");
        assert!(reports[0].contains("sg-1") && reports[0].contains("DependencyViolation"), "{}", reports[0]);
    }

    #[tokio::test(start_paused = true)]
    async fn delete_gives_up_after_its_time_limit_with_awss_reason() {
        let start = Instant::now();
        let backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(15) };
        let out: Result<(), _> = while_blocked(&ctx(), "vpc-1", Duration::from_secs(120), backoff, || async {
            Err(ApiError::service("DeleteVpc", "DependencyViolation", "The vpc 'vpc-1' has dependencies"))
        })
        .await;
        let e = out.unwrap_err();
        assert_eq!(e.code(), "DependencyViolation");
        assert!(e.message.contains("has dependencies"));
        assert!(start.elapsed() <= Duration::from_secs(120), "{:?}", start.elapsed());
        assert!(start.elapsed() >= Duration::from_secs(100), "it did wait: {:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn delete_does_not_retry_other_errors() {
        let calls = AtomicU32::new(0);
        let backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(15) };
        let out: Result<(), _> = while_blocked(&ctx(), "x", Duration::from_secs(60), backoff, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(err("UnauthorizedOperation"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
