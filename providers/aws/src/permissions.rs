//! May this identity call what the plan needs? EC2's `DryRun` answers that
//! without changing anything: a request sent with `DryRun=true` is judged
//! like a real one and answered `DryRunOperation` (it would have been
//! allowed) or `UnauthorizedOperation` (denied), and nothing is done.
//!
//! Only EC2 has `DryRun`. The other services' actions (classic ELB, auto
//! scaling, IAM, Secrets Manager, the Price List API) cannot be checked this
//! way, nor can EC2 actions for which [`probe`] has no request whose
//! parameters AWS would accept before judging permission (one naming a
//! resource that does not exist gets `NotFound` first): those are reported
//! as [`Verdict::Unchecked`], with the reason, never as allowed.
//!
//! Every probe is one request; they run concurrently, through the provider's
//! rate limiter and retries. The set is also safe against the emulator: each
//! probed call is one that moto judges `DryRun` on before acting
//! (docs/testing.md).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{DomainType, InstanceType, RequestLaunchTemplateData};

use crate::clients::Clients;
use crate::error::ApiError;
use crate::provider::AwsProvider;
use crate::retry::Retry;

/// What the identity may do with one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `DryRun` said it would be allowed.
    Allowed,
    /// AWS denied it; its message.
    Denied(String),
    /// Not known: why it could not be checked.
    Unchecked(String),
}

/// One action (IAM name, `ec2:CreateVpc`) and what the identity may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub action: String,
    pub verdict: Verdict,
}

/// The EC2 operations [`probe`] can send with `DryRun`.
pub const PROBED: &[&str] = &[
    "AllocateAddress",
    "CreateInternetGateway",
    "CreateLaunchTemplate",
    "CreateSecurityGroup",
    "DescribeAddresses",
    "DescribeAvailabilityZones",
    "DescribeImages",
    "DescribeInstances",
    "DescribeLaunchTemplates",
    "DescribeNetworkInterfaces",
    "DescribeSubnets",
    "DescribeTags",
    "DescribeVpcs",
    "RunInstances",
];

/// Send `operation` with `DryRun`; `None` when it is not in [`PROBED`].
async fn probe(c: &Clients, operation: &str) -> Option<Result<(), ApiError>> {
    let ec2 = &c.ec2;
    macro_rules! dry {
        ($op:literal, $request:expr) => {
            c.call($op, Retry::Standard, || $request.dry_run(true).send()).await.map(|_| ())
        };
    }
    Some(match operation {
        "AllocateAddress" => dry!("AllocateAddress", ec2.allocate_address().domain(DomainType::Vpc)),
        "CreateInternetGateway" => dry!("CreateInternetGateway", ec2.create_internet_gateway()),
        "CreateLaunchTemplate" => dry!(
            "CreateLaunchTemplate",
            ec2.create_launch_template().launch_template_name("skyplan-permission-check").launch_template_data(
                RequestLaunchTemplateData::builder().instance_type(InstanceType::T3Micro).build()
            )
        ),
        "CreateSecurityGroup" => dry!(
            "CreateSecurityGroup",
            ec2.create_security_group().group_name("skyplan-permission-check").description("skyplan-permission-check")
        ),
        "DescribeAddresses" => dry!("DescribeAddresses", ec2.describe_addresses()),
        "DescribeAvailabilityZones" => dry!("DescribeAvailabilityZones", ec2.describe_availability_zones()),
        "DescribeImages" => dry!("DescribeImages", ec2.describe_images().owners("self")),
        "DescribeInstances" => dry!("DescribeInstances", ec2.describe_instances()),
        "DescribeLaunchTemplates" => dry!("DescribeLaunchTemplates", ec2.describe_launch_templates()),
        "DescribeNetworkInterfaces" => dry!("DescribeNetworkInterfaces", ec2.describe_network_interfaces()),
        "DescribeSubnets" => dry!("DescribeSubnets", ec2.describe_subnets()),
        "DescribeTags" => dry!("DescribeTags", ec2.describe_tags()),
        "DescribeVpcs" => dry!("DescribeVpcs", ec2.describe_vpcs()),
        "RunInstances" => dry!(
            "RunInstances",
            ec2.run_instances()
                .image_id("ami-00000000000000000")
                .instance_type(InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
        ),
        _ => return None,
    })
}

/// What one probe's answer says.
pub(crate) fn verdict(answer: Result<(), ApiError>) -> Verdict {
    match answer {
        Err(e) if e.code() == "DryRunOperation" => Verdict::Allowed,
        Err(e) if e.is_denied() => Verdict::Denied(e.message.clone()),
        Err(e) => Verdict::Unchecked(format!("the dry run was answered {}: {}", e.code(), first_line(&e.message))),
        // Acted on, not judged: never expected from AWS.
        Ok(()) => Verdict::Unchecked("the dry run was answered as a real request".into()),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

impl AwsProvider {
    /// For each action of `actions` (IAM names), whether this identity may
    /// call it, in the order given; checked with EC2's `DryRun` where
    /// possible (see the module comment), concurrently.
    pub async fn check_permissions(&self, actions: &BTreeSet<String>) -> Vec<Permission> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, action) in actions.iter().enumerate() {
            let (c, action) = (self.clients.clone(), action.clone());
            tasks.spawn(async move {
                let verdict = match action.split_once(':') {
                    Some(("ec2", operation)) => match probe(&c, operation).await {
                        Some(answer) => verdict(answer),
                        None => Verdict::Unchecked("skyplan has no dry run for this EC2 action".into()),
                    },
                    Some((service, _)) => Verdict::Unchecked(format!("{service} has no DryRun")),
                    None => Verdict::Unchecked("not an IAM action name".into()),
                };
                (i, Permission { action, verdict })
            });
        }
        let mut out: Vec<(usize, Permission)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(done) = joined {
                out.push(done);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_mean_what_ec2_says() {
        let e = |code: &str| verdict(Err(ApiError::service("CreateVpc", code, "m")));
        assert_eq!(e("DryRunOperation"), Verdict::Allowed);
        assert_eq!(e("UnauthorizedOperation"), Verdict::Denied("m".into()));
        assert_eq!(e("AccessDenied"), Verdict::Denied("m".into()));
        assert!(matches!(e("InvalidGroup.NotFound"), Verdict::Unchecked(w) if w.contains("InvalidGroup.NotFound")));
        assert!(matches!(verdict(Ok(())), Verdict::Unchecked(_)));
    }

    /// Each probe sends `DryRun=true` and the operation it names, and
    /// `DryRunOperation` comes back as allowed.
    #[tokio::test]
    async fn every_probe_is_a_dry_run_of_its_own_operation() {
        let fake = crate::testing::FakeAws::new(|_| {
            crate::testing::ec2_error(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
        });
        let provider = AwsProvider::from_clients(fake.clients().await);
        let actions: BTreeSet<String> =
            PROBED.iter().map(|op| format!("ec2:{op}")).chain(["autoscaling:CreateAutoScalingGroup".into()]).collect();
        let out = provider.check_permissions(&actions).await;
        for p in &out {
            match p.action.as_str() {
                "autoscaling:CreateAutoScalingGroup" => {
                    assert_eq!(p.verdict, Verdict::Unchecked("autoscaling has no DryRun".into()))
                }
                _ => assert_eq!(p.verdict, Verdict::Allowed, "{}", p.action),
            }
        }
        let sent = fake.sent();
        assert_eq!(sent.len(), PROBED.len());
        for s in &sent {
            assert_eq!(s.param("DryRun"), Some("true"), "{}", s.action);
            assert!(PROBED.contains(&s.action.as_str()), "{}", s.action);
        }
    }
}
