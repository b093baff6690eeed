//! Per-service request rate limiting: one token bucket per AWS service, so
//! a high `--parallelism` spreads its requests out instead of emptying
//! AWS's own bucket and collecting `RequestLimitExceeded`/`Throttling`.
//!
//! Every request the provider sends goes through [`Limiter::acquire`]:
//! `Clients::call` (and so `Clients::paginate`) takes a token before each
//! attempt, retries included. The service is that of the SDK crate the call
//! goes through ([`Service::of`]). The buckets are per process: two skyplan
//! runs on one account share AWS's buckets but not these.
//!
//! Defaults ([`RateLimits::default`], docs/aws-resources.md says where each
//! comes from) are overridden per service with `--rate-limit
//! SERVICE=RPS[,BURST]` ([`RateLimits::parse_flag`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The AWS services the provider calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Ec2,
    ElasticLoadBalancing,
    AutoScaling,
    SecretsManager,
}

impl Service {
    pub const ALL: [Service; 4] =
        [Service::Ec2, Service::ElasticLoadBalancing, Service::AutoScaling, Service::SecretsManager];

    /// The name users write, as in IAM actions (`ec2`, `elasticloadbalancing`, `autoscaling`, `secretsmanager`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::ElasticLoadBalancing => "elasticloadbalancing",
            Service::AutoScaling => "autoscaling",
            Service::SecretsManager => "secretsmanager",
        }
    }

    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The service of an SDK operation, from its error type's crate
    /// (`aws_sdk_ec2::operation::create_vpc::CreateVpcError`). The generic
    /// `send` closure `Clients::call` receives reveals nothing else before
    /// the request is sent; a unit test pins this for each crate.
    pub(crate) fn of<E>() -> Option<Service> {
        let path = std::any::type_name::<E>();
        if path.starts_with("aws_sdk_ec2::") {
            Some(Service::Ec2)
        } else if path.starts_with("aws_sdk_elasticloadbalancing::") {
            Some(Service::ElasticLoadBalancing)
        } else if path.starts_with("aws_sdk_autoscaling::") {
            Some(Service::AutoScaling)
        } else if path.starts_with("aws_sdk_secretsmanager::") {
            Some(Service::SecretsManager)
        } else {
            None
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Requests per second, and how many may go at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// The limit for each service.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    limits: BTreeMap<Service, RateLimit>,
}

impl Default for RateLimits {
    /// EC2: AWS documents a bucket of 100 tokens refilled at 20 per second
    /// for its non-mutating (Describe*) actions, most of what skyplan sends;
    /// staying at that rate keeps one run from throttling itself. Classic
    /// ELB and Auto Scaling publish no figures: 10 per second with a burst
    /// of 20 is well above what a cluster needs (a few dozen calls per run)
    /// and low enough not to crowd other tools on the account. Secrets
    /// Manager (quotas of 50 CreateSecret and DeleteSecret a second) gets
    /// the same: a cluster makes three secrets.
    fn default() -> Self {
        let mut limits = BTreeMap::new();
        limits.insert(Service::Ec2, RateLimit { per_second: 20.0, burst: 100 });
        limits.insert(Service::ElasticLoadBalancing, RateLimit { per_second: 10.0, burst: 20 });
        limits.insert(Service::AutoScaling, RateLimit { per_second: 10.0, burst: 20 });
        limits.insert(Service::SecretsManager, RateLimit { per_second: 10.0, burst: 20 });
        RateLimits { limits }
    }
}

impl RateLimits {
    pub fn get(&self, service: Service) -> RateLimit {
        self.limits[&service]
    }

    pub fn set(&mut self, service: Service, limit: RateLimit) {
        self.limits.insert(service, limit);
    }

    /// One `--rate-limit` value: `SERVICE=RPS[,BURST]`, e.g. `ec2=5` or
    /// `autoscaling=2.5,10`. BURST defaults to RPS rounded up (at least 1).
    pub fn parse_flag(value: &str) -> Result<(Service, RateLimit), String> {
        let names = || Service::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
        let Some((service, rate)) = value.split_once('=') else {
            return Err(format!("`{value}` is not SERVICE=RPS[,BURST] (for example ec2=10 or ec2=10,50)"));
        };
        let service = Service::parse(service.trim())
            .ok_or_else(|| format!("`{service}` is not a service skyplan calls; one of {}", names()))?;
        let (rps, burst) = match rate.split_once(',') {
            Some((rps, burst)) => (rps, Some(burst)),
            None => (rate, None),
        };
        let per_second: f64 = rps
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r >= 0.1)
            .ok_or_else(|| format!("`{rps}` in `{value}`: requests per second must be a number of at least 0.1"))?;
        let burst = match burst {
            None => (per_second.ceil() as u32).max(1),
            Some(b) => b
                .trim()
                .parse()
                .ok()
                .filter(|b: &u32| *b >= 1)
                .ok_or_else(|| format!("`{b}` in `{value}`: the burst must be a whole number of at least 1"))?,
        };
        Ok((service, RateLimit { per_second, burst }))
    }
}

/// A token bucket on tokio's clock. Each request takes a token; the bucket
/// holds at most `burst` and refills at `per_second`. A request that finds
/// it empty reserves the next token to come and sleeps until then, so
/// waiting requests go in the order they arrived and no lock is held while
/// they wait: N requests at once take `(N - burst) / per_second` seconds.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    state: Mutex<Fill>,
}

#[derive(Debug)]
struct Fill {
    /// Tokens at `at`; negative when requests wait for tokens to come.
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(limit: RateLimit) -> Self {
        TokenBucket { limit, state: Mutex::new(Fill { tokens: f64::from(limit.burst), at: Instant::now() }) }
    }

    /// How long the caller must wait for its token (reserved now).
    fn reserve(&self) -> Duration {
        let mut fill = self.state.lock().expect("token bucket lock");
        let now = Instant::now();
        let refilled = now.duration_since(fill.at).as_secs_f64() * self.limit.per_second;
        fill.tokens = (fill.tokens + refilled).min(f64::from(self.limit.burst));
        fill.at = now;
        fill.tokens -= 1.0;
        if fill.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-fill.tokens / self.limit.per_second)
        }
    }

    pub async fn acquire(&self) -> Duration {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

/// The buckets of one provider, one per service, and how long requests
/// waited in them.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    buckets: Arc<BTreeMap<Service, TokenBucket>>,
    waited: Arc<Mutex<BTreeMap<Service, (u64, Duration)>>>,
}

impl Limiter {
    pub fn new(limits: &RateLimits) -> Self {
        let buckets = Service::ALL.into_iter().map(|s| (s, TokenBucket::new(limits.get(s)))).collect();
        Limiter { buckets: Arc::new(buckets), waited: Arc::default() }
    }

    /// Take a token for one request to `service` (unknown: no limit).
    pub async fn acquire(&self, service: Option<Service>) {
        let Some(bucket) = service.and_then(|s| self.buckets.get(&s).map(|b| (s, b))) else { return };
        let waited = bucket.1.acquire().await;
        if !waited.is_zero() {
            let mut all = self.waited.lock().expect("limiter lock");
            let entry = all.entry(bucket.0).or_insert((0, Duration::ZERO));
            entry.0 += 1;
            entry.1 += waited;
        }
    }

    /// Per service: how many requests waited for a token, and for how long in all.
    pub fn waits(&self) -> BTreeMap<Service, (u64, Duration)> {
        self.waited.lock().expect("limiter lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: f64, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    /// N requests at once at rate R with burst B: the first B go at once,
    /// the rest one every 1/R seconds, so the last starts (N - B) / R
    /// seconds later (virtual time).
    #[tokio::test(start_paused = true)]
    async fn n_requests_take_n_minus_burst_over_rate() {
        for (n, rate, burst) in [(30u32, 10.0, 5u32), (100, 20.0, 100), (101, 20.0, 100), (7, 0.5, 1), (250, 20.0, 100)]
        {
            let bucket = Arc::new(TokenBucket::new(limit(rate, burst)));
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..n {
                let b = bucket.clone();
                tasks.spawn(async move {
                    b.acquire().await;
                    Instant::now()
                });
            }
            let mut starts = Vec::new();
            while let Some(t) = tasks.join_next().await {
                starts.push(t.unwrap().duration_since(start));
            }
            starts.sort();
            let expected = f64::from(n.saturating_sub(burst)) / rate;
            let last = starts.last().unwrap().as_secs_f64();
            assert!((last - expected).abs() < 0.002, "n={n} r={rate} b={burst}: last at {last}, want {expected}");
            let immediate = starts.iter().filter(|d| d.is_zero()).count() as u32;
            assert_eq!(immediate, burst.min(n), "the burst goes at once");
            // Never faster than the rate after the burst: k-th extra request at k/R.
            for (k, at) in starts.iter().skip(burst as usize).enumerate() {
                let want = (k + 1) as f64 / rate;
                assert!((at.as_secs_f64() - want).abs() < 0.002, "request {k} past the burst at {at:?}, want {want}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refills_while_idle_up_to_the_burst_only() {
        let bucket = TokenBucket::new(limit(10.0, 5));
        for _ in 0..5 {
            assert_eq!(bucket.acquire().await, Duration::ZERO);
        }
        // Empty: the next waits 100 ms.
        assert_eq!(bucket.acquire().await, Duration::from_millis(100));
        // A long quiet spell refills to the burst, not beyond.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        for _ in 0..6 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(100), "5 free, the 6th waits one refill");
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_keeps_services_apart_and_records_waits() {
        let mut limits = RateLimits::default();
        limits.set(Service::Ec2, limit(1.0, 1));
        let limiter = Limiter::new(&limits);
        let start = Instant::now();
        limiter.acquire(Some(Service::Ec2)).await;
        for _ in 0..20 {
            limiter.acquire(Some(Service::AutoScaling)).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "autoscaling's burst of 20 is its own");
        limiter.acquire(Some(Service::Ec2)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        limiter.acquire(None).await;
        assert_eq!(limiter.waits()[&Service::Ec2], (1, Duration::from_secs(1)));
        assert!(!limiter.waits().contains_key(&Service::AutoScaling));
    }

    /// Through the provider's clients: every attempt, a retry included,
    /// takes a token of its service before it is sent.
    #[tokio::test(start_paused = true)]
    async fn every_request_of_the_clients_takes_a_token() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use crate::retry::Retry;
        use crate::testing::{ec2_error, ec2_ok, FakeAws};

        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let fake = FakeAws::new(move |_| {
            if s.fetch_add(1, Ordering::SeqCst) == 0 {
                return ec2_error(503, "RequestLimitExceeded", "Request limit exceeded.");
            }
            ec2_ok("DescribeVpcs", "<vpcSet/>")
        });
        let mut c = fake.clients().await;
        let mut limits = RateLimits::default();
        limits.set(Service::Ec2, limit(10.0, 5));
        c.limiter = Limiter::new(&limits);
        let c = Arc::new(c);
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let c = c.clone();
            tasks.spawn(async move {
                c.call("DescribeVpcs", Retry::Standard, || c.ec2.describe_vpcs().send()).await.map(|_| ())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        assert_eq!(seen.load(Ordering::SeqCst), 21, "20 calls, one retried");
        // 21 requests, 5 at once, then one every 100 ms: the last at 1.6 s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((elapsed - 1.6).abs() < 0.01, "{elapsed}");
        assert_eq!(c.retries.snapshot().throttled, 1);
        assert_eq!(c.limiter.waits()[&Service::Ec2].0, 16, "16 requests waited for a token");
    }

    #[test]
    fn parses_the_flag() {
        assert_eq!(RateLimits::parse_flag("ec2=5"), Ok((Service::Ec2, limit(5.0, 5))));
        assert_eq!(RateLimits::parse_flag("autoscaling=2.5,10"), Ok((Service::AutoScaling, limit(2.5, 10))));
        assert_eq!(
            RateLimits::parse_flag("elasticloadbalancing=0.5"),
            Ok((Service::ElasticLoadBalancing, limit(0.5, 1)))
        );
        let e = RateLimits::parse_flag("elb=5").unwrap_err();
        assert!(
            e.contains("`elb` is not a service")
                && e.contains("ec2, elasticloadbalancing, autoscaling, secretsmanager"),
            "{e}"
        );
        assert!(RateLimits::parse_flag("ec2").unwrap_err().contains("SERVICE=RPS[,BURST]"));
        assert!(RateLimits::parse_flag("ec2=0").unwrap_err().contains("at least 0.1"));
        assert!(RateLimits::parse_flag("ec2=fast").unwrap_err().contains("at least 0.1"));
        assert!(RateLimits::parse_flag("ec2=5,0").unwrap_err().contains("the burst"));
        assert!(RateLimits::parse_flag("ec2=inf").is_err());
    }

    #[test]
    fn knows_each_sdk_crates_service() {
        use aws_sdk_autoscaling::operation::create_auto_scaling_group::CreateAutoScalingGroupError;
        use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError;
        use aws_sdk_elasticloadbalancing::operation::describe_tags::DescribeTagsError;
        assert_eq!(Service::of::<DescribeVpcsError>(), Some(Service::Ec2));
        assert_eq!(Service::of::<DescribeTagsError>(), Some(Service::ElasticLoadBalancing));
        assert_eq!(Service::of::<CreateAutoScalingGroupError>(), Some(Service::AutoScaling));
        assert_eq!(Service::of::<aws_sdk_ec2::operation::describe_tags::DescribeTagsError>(), Some(Service::Ec2));
        assert_eq!(
            Service::of::<aws_sdk_secretsmanager::operation::create_secret::CreateSecretError>(),
            Some(Service::SecretsManager)
        );
        assert_eq!(Service::of::<std::io::Error>(), None);
    }
}
