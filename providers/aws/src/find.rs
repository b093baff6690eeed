//! Finding what a create made when the run that sent it was killed before
//! recording the result (`Provider::find`). Everything this provider creates
//! carries the `skyplan:address` tag from the start, so the id is found by
//! that tag; where the emulator or the API makes a tag filter unreliable, by
//! the create's inputs (the NAT gateway's subnet, the rule's group) and the
//! tag checked here; where the name is the identity (ELB, auto scaling
//! group, launch template), by name. Whatever the lookup, a hit counts only
//! when it carries the address tag with exactly this address and exactly
//! the ownership tags the create gave it (`tags::made_for`): a resource of
//! the same name or address that another cluster made is never adopted.
//! The resource is then read exactly as a refresh reads it.

use aws_sdk_ec2::types::Tag;
use serde_json::json;
use skyplan_engine::{Address, Attrs, ProviderError, ReadRequest};

use crate::attrs;
use crate::clients::Clients;
use crate::ec2util::filter;
use crate::provider::Kind;
use crate::retry::Retry;
use crate::tags::{self, ADDRESS_TAG};

/// Whether an EC2 resource with these tags is the one made for `address`
/// with `inputs` (`tags::made_for`).
fn tagged(list: &[Tag], address: &str, inputs: &Attrs) -> bool {
    tags::made_for(&tags::all(list.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or(""))))), address, inputs)
}

/// The id of the resource a create of `address` made, if any.
async fn find_id(c: &Clients, kind: Kind, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
    // A wildcard pattern, since filters do not take every character of an
    // address literally (see `tags::filter_pattern`); each hit is then
    // checked for the exact address.
    let by_tag = || filter(&format!("tag:{ADDRESS_TAG}"), [tags::filter_pattern(address)]);
    let id = match kind {
        Kind::Vpc => {
            let out =
                c.call("DescribeVpcs", Retry::Standard, || c.ec2.describe_vpcs().filters(by_tag()).send()).await?;
            out.vpcs().iter().find(|v| tagged(v.tags(), address, inputs)).and_then(|v| v.vpc_id()).map(str::to_string)
        }
        Kind::Subnet => {
            let out = c
                .call("DescribeSubnets", Retry::Standard, || c.ec2.describe_subnets().filters(by_tag()).send())
                .await?;
            out.subnets()
                .iter()
                .find(|s| tagged(s.tags(), address, inputs))
                .and_then(|s| s.subnet_id())
                .map(str::to_string)
        }
        Kind::InternetGateway => {
            let out = c
                .call("DescribeInternetGateways", Retry::Standard, || {
                    c.ec2.describe_internet_gateways().filters(by_tag()).send()
                })
                .await?;
            out.internet_gateways()
                .iter()
                .find(|g| tagged(g.tags(), address, inputs))
                .and_then(|g| g.internet_gateway_id())
                .map(str::to_string)
        }
        Kind::Eip => {
            let out = c
                .call("DescribeAddresses", Retry::Standard, || c.ec2.describe_addresses().filters(by_tag()).send())
                .await?;
            out.addresses()
                .iter()
                .find(|a| tagged(a.tags(), address, inputs))
                .and_then(|a| a.allocation_id())
                .map(str::to_string)
        }
        Kind::RouteTable => {
            let out = c
                .call("DescribeRouteTables", Retry::Standard, || c.ec2.describe_route_tables().filters(by_tag()).send())
                .await?;
            out.route_tables()
                .iter()
                .find(|t| tagged(t.tags(), address, inputs))
                .and_then(|t| t.route_table_id())
                .map(str::to_string)
        }
        Kind::SecurityGroup => {
            let out = c
                .call("DescribeSecurityGroups", Retry::Standard, || {
                    c.ec2.describe_security_groups().filters(by_tag()).send()
                })
                .await?;
            out.security_groups()
                .iter()
                .find(|g| tagged(g.tags(), address, inputs))
                .and_then(|g| g.group_id())
                .map(str::to_string)
        }
        Kind::Instance => {
            let live = filter("instance-state-name", ["pending", "running", "stopping", "stopped"]);
            let out = c
                .call("DescribeInstances", Retry::Standard, || {
                    c.ec2.describe_instances().filters(by_tag()).filters(live.clone()).send()
                })
                .await?;
            let mut instances = out.reservations().iter().flat_map(|r| r.instances());
            instances.find(|i| tagged(i.tags(), address, inputs)).and_then(|i| i.instance_id()).map(str::to_string)
        }
        Kind::NatGateway => {
            // Tag filters on DescribeNatGateways are not honoured everywhere
            // (the emulator ignores them): filter by subnet, check the tag.
            let subnet = attrs::req_str(inputs, "subnet_id")?.to_string();
            let out = c
                .call("DescribeNatGateways", Retry::Standard, || {
                    c.ec2.describe_nat_gateways().filter(filter("subnet-id", [subnet.clone()])).send()
                })
                .await?;
            out.nat_gateways()
                .iter()
                .filter(|n| matches!(n.state().map(|s| s.as_str()), Some("pending" | "available")))
                .find(|n| tagged(n.tags(), address, inputs))
                .and_then(|n| n.nat_gateway_id())
                .map(str::to_string)
        }
        Kind::SecurityGroupRule => {
            // Rule ids and tags through DescribeTags: the rules API is
            // outside the seed's policies. First the rules with this address,
            // then every tag of each, for the ownership check. One rule per
            // CIDR: every id.
            let by_address = vec![filter("key", [ADDRESS_TAG]), filter("value", [tags::filter_pattern(address)])];
            let candidates: Vec<String> =
                crate::security_group_rule::rule_tags(c, by_address).await?.into_keys().collect();
            let mut ids: Vec<String> = if candidates.is_empty() {
                Vec::new()
            } else {
                crate::security_group_rule::rule_tags(c, vec![filter("resource-id", candidates)])
                    .await?
                    .into_iter()
                    .filter(|(_, list)| tagged(list, address, inputs))
                    .map(|(id, _)| id)
                    .collect()
            };
            ids.sort();
            (!ids.is_empty()).then(|| ids.join(","))
        }
        Kind::LaunchTemplate => {
            let name = attrs::req_str(inputs, "name")?.to_string();
            match c
                .call("DescribeLaunchTemplates", Retry::Standard, || {
                    c.ec2.describe_launch_templates().launch_template_names(name.clone()).send()
                })
                .await
            {
                // The name alone is no proof: another cluster may hold it.
                Ok(out) => out
                    .launch_templates()
                    .iter()
                    .find(|t| tagged(t.tags(), address, inputs))
                    .and_then(|t| t.launch_template_id())
                    .map(str::to_string),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            }
        }
        Kind::Elb => {
            let name = attrs::req_str(inputs, "name")?.to_string();
            match c
                .call("DescribeLoadBalancers", Retry::Standard, || {
                    c.elb.describe_load_balancers().load_balancer_names(name.clone()).send()
                })
                .await
            {
                Ok(out) if out.load_balancer_descriptions().is_empty() => None,
                Ok(_) => {
                    // The name alone is no proof: another cluster may hold it.
                    let out = c
                        .call("DescribeTags", Retry::Standard, || {
                            c.elb.describe_tags().load_balancer_names(name.clone()).send()
                        })
                        .await?;
                    let ours = out.tag_descriptions().iter().any(|d| {
                        let found = tags::all(d.tags().iter().map(|t| (t.key(), t.value().unwrap_or(""))));
                        d.load_balancer_name() == Some(name.as_str()) && tags::made_for(&found, address, inputs)
                    });
                    ours.then(|| name.clone())
                }
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            }
        }
        Kind::AutoscalingGroup => {
            let name = attrs::req_str(inputs, "name")?.to_string();
            let out = c
                .call("DescribeAutoScalingGroups", Retry::Standard, || {
                    c.autoscaling.describe_auto_scaling_groups().auto_scaling_group_names(name.clone()).send()
                })
                .await?;
            // The name alone is no proof: another cluster may hold it.
            out.auto_scaling_groups()
                .iter()
                .find(|g| {
                    let found = tags::all(g.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))));
                    tags::made_for(&found, address, inputs)
                })
                .and_then(|g| g.auto_scaling_group_name())
                .map(str::to_string)
        }
    };
    Ok(id)
}

/// The attributes of what a create of `address` with `inputs` made, read as
/// a refresh would, or None when it made nothing.
pub(crate) async fn find(
    c: &Clients,
    kind: Kind,
    address: &Address,
    inputs: &Attrs,
) -> Result<Option<Attrs>, ProviderError> {
    let Some(id) = find_id(c, kind, &address.to_string(), inputs).await? else { return Ok(None) };
    let mut prior = inputs.clone();
    prior.insert("id".into(), json!(id));
    let request = ReadRequest { address: address.clone(), kind: kind.spec().kind.to_string(), prior };
    // An image written as `auto` reads back as `auto` (the lost create
    // recorded no resolution): `ami::reads_as_auto`.
    Ok(kind.read(c, &[request]).await?.into_iter().next().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_addresses_filter_by_single_character_wildcards() {
        assert_eq!(tags::filter_pattern("aws_subnet.private[us-east-1c]"), "aws_subnet.private?us-east-1c?");
        let tags = [Tag::builder().key(ADDRESS_TAG).value("aws_subnet.private[us-east-1c]").build()];
        let none = Attrs::new();
        assert!(tagged(&tags, "aws_subnet.private[us-east-1c]", &none));
        assert!(!tagged(&tags, "aws_subnet.private(us-east-1c)", &none), "only the exact address counts");
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build()
    }

    #[test]
    fn another_clusters_resource_at_the_same_address_or_name_is_not_ours() {
        let inputs: Attrs = serde_json::from_value(json!({"name": "adv-a-b-w", "tags": {
            "Name": "adv-a-b-w",
            "kubernetes.io/cluster/adv-a-b": "owned",
            "sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a-b": "owned",
        }}))
        .unwrap();
        let ours = [
            tag(ADDRESS_TAG, "aws_launch_template.pool[w]"),
            tag("kubernetes.io/cluster/adv-a-b", "owned"),
            tag("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a-b", "owned"),
            tag("Name", "changed out of band"),
        ];
        assert!(tagged(&ours, "aws_launch_template.pool[w]", &inputs));
        // The case: the same name, made by cluster adv-a for its pool b-w.
        let theirs = [
            tag(ADDRESS_TAG, "aws_launch_template.pool[b-w]"),
            tag("kubernetes.io/cluster/adv-a", "owned"),
            tag("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a", "owned"),
        ];
        assert!(!tagged(&theirs, "aws_launch_template.pool[w]", &inputs));
        // The same address in another cluster.
        let same_address = [
            tag(ADDRESS_TAG, "aws_launch_template.pool[w]"),
            tag("kubernetes.io/cluster/adv-a", "owned"),
            tag("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a", "owned"),
        ];
        assert!(!tagged(&same_address, "aws_launch_template.pool[w]", &inputs));
        // A second cluster's tag added to ours: no longer only ours.
        let mut shared = ours.to_vec();
        shared.push(tag("kubernetes.io/cluster/adv-a", "owned"));
        assert!(!tagged(&shared, "aws_launch_template.pool[w]", &inputs));
        // Missing one of the two ownership tags.
        assert!(!tagged(&ours[..2], "aws_launch_template.pool[w]", &inputs));
        // An untagged spec's resource is not another cluster's.
        assert!(!tagged(&same_address, "aws_launch_template.pool[w]", &Attrs::new()));
    }
}
