//! [`AwsProvider`]: connecting to AWS and dispatching each resource type to
//! its kind's file.
//!
//! Connecting follows the SDK's default chain (environment keys and session
//! token, `AWS_PROFILE`, shared config and credentials files, container and
//! instance roles; `AWS_ENDPOINT_URL` for the emulator); a profile named in
//! the settings is used instead of that chain. Then, optionally, STS
//! AssumeRole with an external id. (SSO profiles and `credential_process`
//! are not built in: the SDK features for them are off to keep builds small.) Credentials are resolved once at connect so a bad
//! key or an unassumable role fails before any plan, with an error that
//! says which of the two failed. Reads are batched: the requests are grouped
//! by kind and every kind reads its group with one (paginated) describe, the
//! kinds concurrently.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use skyplan_engine::{
    Address, Attrs, NameConflict, NewResource, OpContext, Owned, Provider, ProviderError, ReadRequest, Schema,
};

use crate::calls::Retries;
use crate::clients::Clients;
use crate::kinds::{self, AwsKind};
use crate::ratelimit::{Limiter, RateLimits};

/// Where and as whom to reach AWS. Everything absent falls back to the
/// SDK's default chain (environment, shared config and credentials files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: String,
    /// A named profile of the shared config/credentials files.
    pub profile: Option<String>,
    /// A role to assume through STS with the base credentials.
    pub role_arn: Option<String>,
    /// The external id the role's trust policy requires.
    pub external_id: Option<String>,
}

/// The AWS provider: serves every `aws_*` type of docs/aws-resources.md.
#[derive(Debug, Clone)]
pub struct AwsProvider {
    pub(crate) clients: Arc<Clients>,
    /// The Price List API client, with the same credentials and endpoint.
    pricing: Option<Arc<crate::pricing::Pricing>>,
}

impl AwsProvider {
    /// Resolve credentials (keys, profile, then the role if one is given)
    /// and build the clients.
    pub async fn connect(settings: AwsSettings) -> Result<AwsProvider, ProviderError> {
        let named = match &settings.profile {
            Some(p) => Some((p.clone(), "named by [account] profile in the spec")),
            None => std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()).map(|p| (p, "from AWS_PROFILE")),
        };
        if let Some((profile, from)) = &named {
            crate::profile::check_exists(profile, from).map_err(ProviderError::new)?;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(settings.region.clone()));
        if let Some(profile) = &settings.profile {
            // A profile named in the spec wins over keys in the environment
            // (the default chain would try the environment first).
            let credentials = ProfileFileCredentialsProvider::builder().profile_name(profile).build();
            loader = loader.profile_name(profile).credentials_provider(credentials);
        }
        let base = loader.load().await;
        let source = match &settings.profile {
            Some(p) => format!("profile `{p}`"),
            None => {
                "the default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance role)".to_string()
            }
        };
        let Some(base_credentials) = base.credentials_provider() else {
            return Err(ProviderError::new(format!("no AWS credentials provider could be built from {source}")));
        };
        base_credentials.provide_credentials().await.map_err(|e| {
            ProviderError::new(format!(
                "could not get AWS access keys from {source}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            ))
        })?;
        let sdk = match &settings.role_arn {
            None => base,
            Some(role_arn) => {
                let mut builder = AssumeRoleProvider::builder(role_arn).session_name("skyplan").configure(&base);
                if let Some(external_id) = &settings.external_id {
                    builder = builder.external_id(external_id);
                }
                let role = builder.build().await;
                role.provide_credentials().await.map_err(|e| {
                    ProviderError::new(format!(
                        "the access keys from {source} work, but assuming role {role_arn}{} failed: {}\n  \
                         help: the role's trust policy must allow this caller sts:AssumeRole{}; \
                         check the role ARN, the trusted account or principal, and that the caller \
                         may call sts:AssumeRole on the role",
                        match &settings.external_id {
                            Some(x) => format!(" with external id `{x}`"),
                            None => String::new(),
                        },
                        aws_smithy_types::error::display::DisplayErrorContext(&e),
                        match &settings.external_id {
                            Some(x) => format!(" with the condition sts:ExternalId = \"{x}\""),
                            None => String::new(),
                        },
                    ))
                })?;
                base.into_builder().credentials_provider(SharedCredentialsProvider::new(role)).build()
            }
        };
        Ok(AwsProvider::from_sdk_config(&sdk))
    }

    /// A provider for checks that make no AWS call (`validate`, `graph`):
    /// schemas and attribute rules only, no credentials looked up. A request
    /// through it fails for want of credentials.
    pub fn offline(region: &str) -> AwsProvider {
        let sdk = SdkConfig::builder()
            .region(Region::new(region.to_string()))
            .behavior_version(BehaviorVersion::latest())
            .build();
        AwsProvider::from_sdk_config(&sdk)
    }

    /// A provider over an already loaded SDK configuration (no credential
    /// check). For callers that configure the SDK themselves.
    pub fn from_sdk_config(sdk: &SdkConfig) -> AwsProvider {
        AwsProvider { clients: Arc::new(Clients::new(sdk)), pricing: Some(Arc::new(crate::pricing::Pricing::new(sdk))) }
    }

    /// The on-demand Linux price of `instance_type` in `region`: the AWS
    /// Price List API's, else skyplan's dated table's (see `pricing.rs`).
    pub async fn on_demand_price(&self, region: &str, instance_type: &str) -> Result<crate::pricing::Price, String> {
        match &self.pricing {
            Some(pricing) => pricing.on_demand(region, instance_type).await,
            None => Err("this provider has no Price List API client".to_string()),
        }
    }

    /// The Price List API's price of one charge besides instances in
    /// `region` (`Ok(None)`: it lists none there). `Err` says why it could
    /// not be asked, beginning with [`crate::pricing::NOT_ASKED`]; the
    /// estimate then takes the dated table's.
    pub async fn service_price(
        &self,
        region: &str,
        item: skyplan_aws_blueprint::cost::ServiceItem,
    ) -> Result<Option<f64>, String> {
        let Some(pricing) = &self.pricing else {
            return Err(format!("{}: this provider has no Price List API client", crate::pricing::NOT_ASKED));
        };
        pricing.service_price(region, item).await.map_err(|e| {
            let text = e.to_string();
            format!("{}: {}", crate::pricing::NOT_ASKED, text.lines().next().unwrap_or(&text))
        })
    }

    /// AWS API requests sent so far, per operation, named like IAM actions
    /// (`ec2:DescribeVpcs`); retries count as requests.
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        self.clients.calls.snapshot()
    }

    /// This provider with the given per-service request rate limits.
    pub fn with_rate_limits(self, limits: &RateLimits) -> AwsProvider {
        let mut clients = (*self.clients).clone();
        clients.limiter = Limiter::new(limits);
        AwsProvider { clients: Arc::new(clients), ..self }
    }

    /// The requests sent again so far, by reason, and the creates whose
    /// answer was lost and that were looked up instead.
    pub fn retries(&self) -> Retries {
        self.clients.retries.snapshot()
    }

    #[cfg(test)]
    pub(crate) fn from_clients(clients: Clients) -> AwsProvider {
        AwsProvider { clients: Arc::new(clients), pricing: None }
    }
}

/// The cluster's CA (`secret_value.rs`) through the provider.
impl AwsProvider {
    /// The cluster PKI held by the secret `name` (the `pki` secret), for
    /// `skyplan kubeconfig`: GetSecretValue, the archive unpacked in memory.
    pub async fn cluster_pki(&self, name: &str) -> Result<skyplan_aws_blueprint::bootstrap::ClusterPki, ProviderError> {
        crate::secret_value::cluster_pki(&self.clients, name, crate::retry::Retry::Standard).await
    }
}

/// Spot prices (`spot.rs`) through the provider.
impl AwsProvider {
    /// The current Linux spot price of `instance_type` in each of `azs`
    /// (for `plan`'s spot section); `None` when AWS denies [`crate::spot::ACTION`].
    pub async fn spot_prices(
        &self,
        instance_type: &str,
        azs: &[String],
    ) -> Result<Option<Vec<crate::spot::AzPrice>>, ProviderError> {
        match crate::spot::current_prices(&self.clients, instance_type, azs).await {
            Ok(prices) => Ok(Some(prices)),
            Err(e) if crate::spot::denied(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// How long creating a spot pool's auto scaling group waits for its
    /// spot price to come within the max (`apply --spot-wait`).
    pub fn with_spot_wait(mut self, bound: Duration) -> Self {
        std::sync::Arc::make_mut(&mut self.clients).spot_wait = crate::spot::SpotWait::bounded(bound);
        self
    }
}

/// The kind serving `address`'s type, or an error saying it is not served.
fn kind_of(address: &Address) -> Result<&'static dyn AwsKind, ProviderError> {
    kinds::get(&address.kind)
        .ok_or_else(|| ProviderError::new(format!("the aws provider does not serve `{}`", address.kind)))
}

/// Prefix a kind's error with what the provider was doing.
fn context(what: &str, address: &Address, e: ProviderError) -> ProviderError {
    ProviderError::new(format!("{what} {address}: {}", e.message))
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.api_calls()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.retries().summary(self.clients.retry.max_attempts).into_iter().collect();
        let waits = self.clients.limiter.waits();
        if !waits.is_empty() {
            let each: Vec<String> = waits
                .iter()
                .map(|(service, (n, total))| format!("{service} {n} requests, {:.1} s in all", total.as_secs_f64()))
                .collect();
            notes.push(format!("waited for the rate limit (--rate-limit): {}", each.join("; ")));
        }
        notes.extend(self.clients.skipped());
        notes
    }

    fn serves(&self, kind: &str) -> bool {
        kinds::get(kind).is_some()
    }

    fn schema(&self, kind: &str, _attrs: &Attrs) -> Schema {
        kinds::get(kind).map(|k| k.spec().schema()).unwrap_or_default()
    }

    fn validate(&self, address: &Address, attrs: &Attrs) -> Vec<String> {
        match kind_of(address) {
            Err(e) => vec![e.message],
            Ok(kind) => {
                let mut errors = kind.spec().validate(attrs);
                errors.extend(kind.validate(attrs));
                errors
            }
        }
    }

    async fn create(&self, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let kind = kind_of(&ctx.address)?;
        // No "creating ADDRESS:" prefix on errors of create, update and
        // delete: the engine reports them under the address and operation.
        crate::lost::create(&self.clients, kind, ctx, attrs).await
    }

    async fn update(&self, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let kind = kind_of(&ctx.address)?;
        crate::lost::update(&self.clients, kind, ctx, prior, attrs).await
    }

    async fn delete(&self, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let kind = kind_of(&ctx.address)?;
        kind.delete(&self.clients, ctx, prior).await
    }

    async fn find(&self, _kind: &str, address: &Address, inputs: &Attrs) -> Result<Option<Attrs>, ProviderError> {
        let kind = kind_of(address)?;
        crate::find::find(&self.clients, kind, address, inputs).await.map_err(|e| context("looking for", address, e))
    }

    async fn owned(
        &self,
        kinds: &BTreeSet<String>,
        tags: &BTreeMap<String, String>,
        known: &BTreeSet<String>,
    ) -> Result<Vec<Owned>, ProviderError> {
        crate::owned::owned(&self.clients, kinds, tags, known).await
    }

    async fn name_conflicts(&self, creates: &[NewResource]) -> Result<Vec<NameConflict>, ProviderError> {
        crate::names::conflicts(&self.clients, creates).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut groups: BTreeMap<&'static str, (Vec<usize>, Vec<ReadRequest>)> = BTreeMap::new();
        for (i, req) in requests.iter().enumerate() {
            let kind = kinds::get(&req.kind)
                .ok_or_else(|| ProviderError::new(format!("the aws provider does not serve `{}`", req.kind)))?;
            let group = groups.entry(kind.name()).or_default();
            group.0.push(i);
            group.1.push(req.clone());
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (name, (indexes, reqs)) in groups {
            let kind = kinds::get(name).expect("grouped by a served kind");
            let clients = self.clients.clone();
            tasks.spawn(async move {
                let out = kind.read(&clients, &reqs).await;
                (kind, indexes, out)
            });
        }
        let mut results: Vec<Option<Attrs>> = vec![None; requests.len()];
        while let Some(joined) = tasks.join_next().await {
            let (kind, indexes, out) = joined.map_err(|e| ProviderError::new(format!("reading AWS resources: {e}")))?;
            let out = out.map_err(|e| ProviderError::new(format!("reading {}: {}", kind.name(), e.message)))?;
            for (i, attrs) in indexes.into_iter().zip(out) {
                results[i] = attrs;
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::testing::{ec2_error, ec2_ok, FakeAws};

    fn vpc_item(id: &str) -> String {
        format!("<item><vpcId>{id}</vpcId><cidrBlock>10.0.0.0/16</cidrBlock><tagSet><item><key>Name</key><value>{id}</value></item>\
                 <item><key>skyplan:address</key><value>aws_vpc.{id}</value></item></tagSet></item>")
    }

    fn read_request(kind: &str, name: &str, prior: serde_json::Value) -> ReadRequest {
        ReadRequest { address: Address::new(kind, name), kind: kind.into(), prior: prior.as_object().unwrap().clone() }
    }

    /// A refresh of many resources of one kind is one describe for all of
    /// them (DNS attributes aside), retried through throttling; a resource
    /// that is gone reads as None; the reads come back in request order.
    #[tokio::test(start_paused = true)]
    async fn read_batches_by_kind_retries_throttling_and_counts_calls() {
        let describes = Arc::new(AtomicUsize::new(0));
        let d = describes.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "DescribeVpcs" => {
                if d.fetch_add(1, Ordering::SeqCst) == 0 {
                    return ec2_error(503, "RequestLimitExceeded", "Request limit exceeded.");
                }
                let mut ids = req.values("Filter.1.Value.", "");
                ids.sort();
                assert_eq!(ids, ["vpc-a", "vpc-b", "vpc-gone"], "one filter with every id");
                ec2_ok("DescribeVpcs", &format!("<vpcSet>{}{}</vpcSet>", vpc_item("vpc-a"), vpc_item("vpc-b")))
            }
            "DescribeVpcAttribute" => {
                let (attr, value) = match req.param("Attribute") {
                    Some("enableDnsSupport") => ("enableDnsSupport", true),
                    _ => ("enableDnsHostnames", true),
                };
                ec2_ok("DescribeVpcAttribute", &format!("<{attr}><value>{value}</value></{attr}>"))
            }
            other => panic!("unexpected call {other}"),
        });
        let p = AwsProvider::from_clients(fake.clients().await);
        let reqs = [
            read_request(
                "aws_vpc",
                "b",
                json!({"id": "vpc-b", "cidr_block": "10.0.0.0/16", "tags": {"Name": "vpc-b"}}),
            ),
            read_request("aws_vpc", "gone", json!({"id": "vpc-gone", "cidr_block": "10.0.0.0/16"})),
            read_request(
                "aws_vpc",
                "a",
                json!({"id": "vpc-a", "cidr_block": "10.0.0.0/16", "enable_dns_hostnames": true, "tags": {"Name": "vpc-a"}}),
            ),
        ];
        let out = p.read(&reqs).await.unwrap();
        assert_eq!(out[0].as_ref().unwrap(), &reqs[0].prior, "unchanged reads back equal");
        assert!(out[1].is_none());
        assert_eq!(out[2].as_ref().unwrap(), &reqs[2].prior);
        let calls = p.api_calls();
        assert_eq!(calls["ec2:DescribeVpcs"], 2, "one describe, retried once after throttling: {calls:?}");
        assert_eq!(calls["ec2:DescribeVpcAttribute"], 4);
    }

    #[test]
    fn serves_every_kind_of_the_vocabulary_with_its_schema() {
        let names: Vec<&str> = kinds::KINDS.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "aws_vpc",
                "aws_subnet",
                "aws_internet_gateway",
                "aws_eip",
                "aws_nat_gateway",
                "aws_route_table",
                "aws_security_group",
                "aws_security_group_rule",
                "aws_instance",
                "aws_elb",
                "aws_launch_template",
                "aws_autoscaling_group",
                "aws_secretsmanager_secret",
            ]
        );
        for kind in kinds::KINDS {
            let s = kind.spec().schema();
            assert!(s.computed.contains("id"), "{} computes id", kind.name());
            assert!(!s.replace_on.contains("tags"), "{}: tags change in place", kind.name());
        }
        let schema = |k: &str| kinds::get(k).unwrap().spec().schema();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(schema("aws_vpc").replace_on, set(&["cidr_block"]));
        assert_eq!(schema("aws_subnet").replace_on, set(&["availability_zone", "cidr_block", "vpc_id"]));
        assert_eq!(schema("aws_internet_gateway").replace_on, set(&[]));
        assert_eq!(schema("aws_nat_gateway").replace_on, set(&["allocation_id", "subnet_id"]));
        assert_eq!(schema("aws_route_table").replace_on, set(&["vpc_id"]));
        assert_eq!(schema("aws_security_group").replace_on, set(&["description", "name", "vpc_id"]));
        assert_eq!(
            schema("aws_instance").replace_on,
            set(&[
                "ami",
                "ami_lookup",
                "associate_public_ip_address",
                "iam_instance_profile",
                "instance_type",
                "key_name",
                "root_volume_size_gib",
                "subnet_id",
                "user_data"
            ])
        );
        assert_eq!(schema("aws_instance").computed, set(&["id", "private_ip", "public_ip", "resolved_ami"]));
        assert_eq!(schema("aws_elb").replace_on, set(&["internal", "name"]));
        assert_eq!(schema("aws_elb").computed, set(&["dns_name", "id"]));
        assert_eq!(schema("aws_launch_template").replace_on, set(&["name"]));
        assert_eq!(schema("aws_launch_template").computed, set(&["id", "latest_version", "resolved_ami"]));
        assert_eq!(schema("aws_autoscaling_group").replace_on, set(&["name"]));
        assert_eq!(schema("aws_autoscaling_group").computed, set(&["arn", "id"]));
        assert_eq!(schema("aws_eip").computed, set(&["id", "public_ip"]));
        assert_eq!(
            schema("aws_security_group_rule").replace_on,
            set(&[
                "cidr_blocks",
                "description",
                "from_port",
                "protocol",
                "security_group_id",
                "source_security_group_id",
                "to_port",
                "type"
            ])
        );
    }

    #[tokio::test]
    async fn validate_reports_kind_rules_and_unknown_types() {
        let fake = FakeAws::new(|_| panic!("validate makes no calls"));
        let p = AwsProvider::from_clients(fake.clients().await);
        let errs = p.validate(&Address::new("aws_vpc", "main"), json!({"cidr": "10.0.0.0/16"}).as_object().unwrap());
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e == "`cidr_block` is required"));
        assert!(errs.iter().any(|e| e.starts_with("unknown attribute `cidr`")));
        let sg_errs =
            p.validate(&Address::new("aws_security_group_rule", "r"), json!({"type": "egress"}).as_object().unwrap());
        assert!(sg_errs.iter().any(|e| e.contains("must be \"ingress\"")), "{sg_errs:?}");
        assert!(!p.serves("sim_resource"));
        assert_eq!(
            p.validate(&Address::new("aws_nope", "x"), &Attrs::new()),
            ["the aws provider does not serve `aws_nope`"]
        );
    }
}
