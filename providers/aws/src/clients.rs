//! The SDK clients every kind uses, and the one way to call them.
//!
//! [`Clients`] holds the EC2, classic ELB, auto scaling, Secrets Manager and
//! IAM clients (built with the SDK's own retry disabled and the API-call
//! counter attached), the retry policy and the waiting patience. [`Clients::call`] is the one way
//! a request is sent: it takes a token from the service's rate limiter
//! (`ratelimit.rs`) before each attempt, runs the call through `retry.rs`
//! (counting retries) and turns the SDK's error into an [`ApiError`] that
//! names the operation. Credentials and endpoints are `provider.rs`'s job.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::calls::{ApiCallCounter, RetryStats};
use crate::error::ApiError;
use crate::ratelimit::{Limiter, RateLimits, Service};
use crate::retry::{self, Backoff, Retry, RetryPolicy};
use crate::wait::{Patience, SpotWait};

/// The IAM service prefix of a call the rate limiter does not cover (IAM,
/// Secrets Manager), from its error type's crate, for messages
/// (`iam:CreateRole`).
fn unlimited_service<E>() -> Option<&'static str> {
    let path = std::any::type_name::<E>();
    [("aws_sdk_iam::", "iam"), ("aws_sdk_secretsmanager::", "secretsmanager")]
        .into_iter()
        .find(|(krate, _)| path.starts_with(krate))
        .map(|(_, service)| service)
}

/// How long the provider waits for AWS, per situation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// A NAT gateway becoming `available` (AWS: 1-3 minutes) or `deleted`.
    pub nat_gateway: Patience,
    /// An instance becoming `running` or `terminated`.
    pub instance: Patience,
    /// An auto scaling group and its instances going away after ForceDelete.
    pub autoscaling_group: Patience,
    /// A control-plane node joining the cluster (`apiwait.rs`): boot,
    /// image pulls and `kubeadm init` or `join` take minutes.
    pub api_server: Patience,
    /// A delete blocked by dependents (`DependencyViolation`): ENIs of a
    /// deleted load balancer or terminated instance linger for minutes.
    pub blocked_delete: Duration,
    pub blocked_backoff: Backoff,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            nat_gateway: Patience::minutes(10),
            instance: Patience::minutes(10),
            autoscaling_group: Patience::minutes(15),
            api_server: Patience::minutes(20),
            blocked_delete: Duration::from_secs(15 * 60),
            blocked_backoff: Backoff { base: Duration::from_secs(2), cap: Duration::from_secs(20) },
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    /// The cluster's bootstrap secrets (under `aws.cluster.x-k8s.io/`).
    pub secrets: aws_sdk_secretsmanager::Client,
    /// The shared instance profiles and their roles.
    pub iam: aws_sdk_iam::Client,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// How long a spot pool's group waits for its spot price (`spot.rs`).
    pub spot_wait: SpotWait,
    pub calls: ApiCallCounter,
    pub limiter: Limiter,
    pub retries: RetryStats,
    /// Lost answers of non-idempotent calls made through this value (see
    /// [`Clients::scoped`]).
    lost: Arc<AtomicU64>,
    /// What an optional feature skipped, and why (AWS denied an optional
    /// action): each said once, in the provider's notes.
    skipped: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Clients {
    /// Clients for `sdk` (region, credentials, endpoint already resolved).
    /// The SDK's retry is off: `retry.rs` owns retrying, so attempts never
    /// multiply (SDK attempts x our attempts).
    pub fn new(sdk: &SdkConfig) -> Self {
        let calls = ApiCallCounter::default();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build();
        let ec2 = aws_sdk_ec2::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.clone())
            .interceptor(calls.clone())
            .build();
        let elb = aws_sdk_elasticloadbalancing::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.clone())
            .interceptor(calls.clone())
            .build();
        let autoscaling = aws_sdk_autoscaling::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.clone())
            .interceptor(calls.clone())
            .build();
        let secrets = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.clone())
            .interceptor(calls.clone())
            .build();
        let iam = aws_sdk_iam::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .interceptor(calls.clone())
            .build();
        Clients {
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            elb: aws_sdk_elasticloadbalancing::Client::from_conf(elb),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(autoscaling),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
            iam: aws_sdk_iam::Client::from_conf(iam),
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            spot_wait: SpotWait::default(),
            calls,
            limiter: Limiter::new(&RateLimits::default()),
            retries: RetryStats::default(),
            lost: Arc::default(),
            skipped: Arc::default(),
        }
    }

    /// Record what an optional feature skipped (said once, however many
    /// operations skip it).
    pub fn skip_once(&self, what: String) {
        self.skipped.lock().expect("skipped features").insert(what);
    }

    /// What optional features skipped so far, each once.
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.lock().expect("skipped features").iter().cloned().collect()
    }

    /// The same clients (counters and rate limiter shared) with their own
    /// count of lost answers: one create or update runs on a scoped copy
    /// so that `lost.rs` can tell whether *its* calls lost an answer.
    pub fn scoped(&self) -> Clients {
        Clients { lost: Arc::default(), ..self.clone() }
    }

    /// How many non-idempotent calls made through this scope failed without
    /// a sure answer (and so were not sent again).
    pub fn lost_answers(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Every item of a paginated call: `send(next_token)` page after page,
    /// each with [`Clients::call`]'s retries, until an answer has no next
    /// token. `items` takes a page's items, `next_token` its token.
    pub async fn paginate<Page, Item, E, F, Fut>(
        &self,
        operation: &'static str,
        retry: Retry,
        mut send: F,
        items: impl Fn(&Page) -> Vec<Item>,
        next_token: impl Fn(&Page) -> Option<&str>,
    ) -> Result<Vec<Item>, ApiError>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<Page, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.call(operation, retry, || send(token.clone())).await?;
            all.extend(items(&page));
            token = next_token(&page).map(str::to_string);
            if token.is_none() {
                return Ok(all);
            }
        }
    }

    /// One API call with retries (see `retry.rs` for which errors `retry`
    /// covers; calls in `retry::NON_IDEMPOTENT` are not sent again after a
    /// lost answer). Each attempt first takes a token from the rate limiter
    /// of the call's service. `operation` names the call in errors.
    pub async fn call<T, E, F, Fut>(&self, operation: &'static str, retry: Retry, mut send: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let service = Service::of::<E>();
        let idempotent = !retry::NON_IDEMPOTENT.contains(&operation);
        let started = std::time::Instant::now();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let out = retry::run_counted(&self.retry, retry, idempotent, &self.retries, || {
            attempts.fetch_add(1, Ordering::Relaxed);
            // The SDK's `send()` is lazy: nothing leaves before the token.
            let sent = send();
            async move {
                self.limiter.acquire(service).await;
                sent.await.map_err(|e| {
                    let mut err = ApiError::from_sdk(operation, e);
                    err.service = service.map(|s| s.name()).or_else(unlimited_service::<E>);
                    if err.status.is_none() {
                        err.endpoint = err.service.and_then(|s| self.calls.endpoint(s));
                    }
                    err
                })
            }
        })
        .await;
        if let Err(e) = &out {
            if !idempotent && retry::is_lost(e) {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        // `-v`: one line per call, retries included (each attempt's request
        // id is the interceptor's, at `-vv`).
        let service = service.map_or("aws", Service::name);
        let millis = started.elapsed().as_millis();
        let retries = attempts.load(Ordering::Relaxed).saturating_sub(1);
        match &out {
            Ok(_) => tracing::info!("{service}:{operation} ok in {millis} ms, {retries} retries"),
            Err(e) => tracing::info!("{service}:{operation} failed in {millis} ms, {retries} retries: {}", e.code()),
        }
        out
    }
}
