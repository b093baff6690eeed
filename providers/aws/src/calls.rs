//! Counting AWS API calls, per operation, for benchmarks and `-v` output.
//!
//! An SDK interceptor on every client the provider builds increments a
//! counter named like the IAM action (`ec2:DescribeVpcs`,
//! `elasticloadbalancing:CreateLoadBalancer`, `autoscaling:...`) for each
//! request actually sent, retries included.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, Default)]
pub(crate) struct ApiCallCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl ApiCallCounter {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
