//! Static placement: the existing VPC and subnets a cluster is placed into,
//! checked before any change (they exist, each subnet is in that VPC and its
//! AZ, public subnets route 0.0.0.0/0 to an internet gateway and carry the
//! tags load-balancer discovery needs, private subnets have a default route)
//! and, only when asked, given the missing tags. skyplan never creates,
//! changes or deletes these resources otherwise.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{RouteTable, Subnet, Tag};
use skyplan_engine::ProviderError;

use crate::ec2util::filter;
use crate::preflight::Check;
use crate::provider::AwsProvider;
use crate::retry::Retry;

/// The VPC and subnets of `[placement] mode = "static"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticPlacement {
    pub cluster: String,
    pub vpc_id: String,
    /// (AZ, public subnet id, private subnet id)
    pub subnets: Vec<(String, String, String)>,
}

impl StaticPlacement {
    /// The tags the seed's InfoBox asks for on public subnets, so load
    /// balancers created by Kubernetes find them.
    pub fn public_subnet_tags(&self) -> Vec<(String, String)> {
        let name = &self.cluster;
        vec![
            ("kubernetes.io/role/elb".into(), "1".into()),
            ("sigs.k8s.io/cluster-api-provider-aws/role".into(), "public".into()),
            (format!("kubernetes.io/cluster/{name}"), "shared".into()),
            (format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{name}"), "owned".into()),
        ]
    }

    fn missing_tags(&self, subnet: &Subnet) -> Vec<(String, String)> {
        let have: BTreeMap<&str, &str> =
            subnet.tags().iter().filter_map(|t: &Tag| Some((t.key()?, t.value().unwrap_or("")))).collect();
        self.public_subnet_tags().into_iter().filter(|(k, v)| have.get(k.as_str()) != Some(&v.as_str())).collect()
    }
}

/// The 0.0.0.0/0 route of the table that governs `subnet` (its own
/// association, else the VPC's main table): (IGW target, other target).
fn default_route(tables: &[RouteTable], subnet: &str) -> (Option<String>, Option<String>) {
    let associated = tables.iter().find(|t| t.associations().iter().any(|a| a.subnet_id() == Some(subnet)));
    let main = || tables.iter().find(|t| t.associations().iter().any(|a| a.main() == Some(true)));
    let Some(table) = associated.or_else(main) else { return (None, None) };
    let Some(route) = table.routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0")) else {
        return (None, None);
    };
    let igw = route.gateway_id().filter(|g| g.starts_with("igw-")).map(str::to_string);
    let other = route
        .nat_gateway_id()
        .or(route.transit_gateway_id())
        .or(route.network_interface_id())
        .or(route.instance_id())
        .map(str::to_string);
    (igw, other)
}

impl AwsProvider {
    async fn placement_subnets(&self, p: &StaticPlacement) -> Result<BTreeMap<String, Subnet>, ProviderError> {
        let c = &*self.clients;
        let ids: Vec<String> = p.subnets.iter().flat_map(|(_, a, b)| [a.clone(), b.clone()]).collect();
        // A subnet-id filter (not SubnetIds) answers with what exists instead
        // of failing the whole call on the first missing id.
        let out = c
            .call("DescribeSubnets", Retry::Standard, || {
                c.ec2.describe_subnets().filters(filter("subnet-id", ids.clone())).send()
            })
            .await?;
        Ok(out.subnets().iter().filter_map(|s| Some((s.subnet_id()?.to_string(), s.clone()))).collect())
    }

    /// Every check of a static placement; a check with a problem means an
    /// apply must not start.
    pub async fn check_placement(&self, p: &StaticPlacement) -> Result<Vec<Check>, ProviderError> {
        let c = &*self.clients;
        let mut checks = Vec::new();
        let vpcs = c
            .call("DescribeVpcs", Retry::Standard, || {
                c.ec2.describe_vpcs().filters(filter("vpc-id", [p.vpc_id.clone()])).send()
            })
            .await?;
        let vpc_ok = !vpcs.vpcs().is_empty();
        checks.push(Check::new(
            format!("VPC {}", p.vpc_id),
            "exists",
            if vpc_ok { "yes" } else { "no" },
            (!vpc_ok).then(|| format!("VPC {} does not exist in this region: fix placement.vpc_id", p.vpc_id)),
        ));
        let subnets = self.placement_subnets(p).await?;
        let tables = c
            .call("DescribeRouteTables", Retry::Standard, || {
                c.ec2.describe_route_tables().filters(filter("vpc-id", [p.vpc_id.clone()])).send()
            })
            .await?;
        let tables = tables.route_tables();

        for (az, public, private) in &p.subnets {
            for (id, role) in [(public, "public"), (private, "private")] {
                let what = format!("{role} subnet {id} ({az})");
                let Some(subnet) = subnets.get(id) else {
                    checks.push(Check::new(
                        what,
                        "exists",
                        "no",
                        Some(format!("{role} subnet {id} for {az} does not exist in this region")),
                    ));
                    continue;
                };
                let mut problems = Vec::new();
                if subnet.vpc_id() != Some(p.vpc_id.as_str()) {
                    problems.push(format!(
                        "{role} subnet {id} is in {}, not in {}",
                        subnet.vpc_id().unwrap_or("no VPC"),
                        p.vpc_id
                    ));
                }
                if subnet.availability_zone() != Some(az.as_str()) {
                    problems.push(format!(
                        "{role} subnet {id} is in {}, not in {az}",
                        subnet.availability_zone().unwrap_or("no AZ")
                    ));
                }
                let (igw, other) = default_route(tables, id);
                if role == "public" {
                    if igw.is_none() {
                        problems.push(format!(
                            "public subnet {id} has no default route (0.0.0.0/0) to an internet gateway"
                        ));
                    }
                    let missing = p.missing_tags(subnet);
                    if !missing.is_empty() {
                        let list: Vec<String> = missing.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                        problems.push(format!(
                            "public subnet {id} lacks the tags load balancers need: {}; add them, or run apply with --tag-subnets",
                            list.join(", ")
                        ));
                    }
                } else if other.is_none() {
                    problems.push(format!(
                        "private subnet {id} has no default route (0.0.0.0/0) to a NAT gateway: its nodes could not reach the internet"
                    ));
                }
                let available = if problems.is_empty() { "yes".to_string() } else { "problems".to_string() };
                checks.push(Check::new(
                    what,
                    "in the VPC and AZ, routed, tagged",
                    available,
                    (!problems.is_empty()).then(|| problems.join("; ")),
                ));
            }
        }
        Ok(checks)
    }

    /// Add the missing load-balancer discovery tags to the public subnets
    /// (`apply --tag-subnets`). Returns "subnet: tags" for each one tagged.
    pub async fn tag_public_subnets(&self, p: &StaticPlacement) -> Result<Vec<String>, ProviderError> {
        let c = &*self.clients;
        let subnets = self.placement_subnets(p).await?;
        let mut done = Vec::new();
        for (_, public, _) in &p.subnets {
            let Some(subnet) = subnets.get(public) else { continue };
            let missing = p.missing_tags(subnet);
            if missing.is_empty() {
                continue;
            }
            let tags: Vec<Tag> = missing.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
            c.call("CreateTags", Retry::Standard, || {
                c.ec2.create_tags().resources(public).set_tags(Some(tags.clone())).send()
            })
            .await?;
            let list: Vec<String> = missing.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            done.push(format!("{public}: {}", list.join(", ")));
        }
        Ok(done)
    }
}
