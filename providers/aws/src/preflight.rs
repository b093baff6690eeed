//! `skyplan preflight`: what an apply will need from the account and the
//! region, checked before anything is created. Each [`Check`] compares a
//! need with what is available: the AZs exist, the key pair and the images
//! exist, and there is room for the Elastic IPs, VPCs, NAT gateways and
//! instances the spec adds.
//!
//! Quotas the EC2 API reports (`vpc-max-elastic-ips`, `max-instances` from
//! DescribeAccountAttributes) are read; the others (5 VPCs per region, 5 NAT
//! gateways per AZ) are AWS's defaults, said so in the check, since reading
//! raised quotas needs the Service Quotas API.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{AccountAttributeName, AvailabilityZoneState, InstanceStateName, NatGatewayState};
use skyplan_engine::{Attrs, ProviderError, Resource};

use crate::ami;
use crate::ec2util::filter;
use crate::provider::AwsProvider;
use crate::retry::Retry;

/// AWS's default quota of VPCs per region.
const DEFAULT_VPCS: usize = 5;
/// AWS's default quota of NAT gateways per AZ.
const DEFAULT_NATS_PER_AZ: usize = 5;

/// One line of the preflight table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub need: String,
    pub available: String,
    /// None: passes. Some: why apply would fail, and what to do.
    pub problem: Option<String>,
}

impl Check {
    pub(crate) fn new(
        what: impl Into<String>,
        need: impl ToString,
        available: impl ToString,
        problem: Option<String>,
    ) -> Check {
        Check { what: what.into(), need: need.to_string(), available: available.to_string(), problem }
    }
}

/// What a spec's resources need from the account.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    pub azs: BTreeSet<String>,
    pub key_names: BTreeSet<String>,
    /// Image ids, or "auto".
    pub images: BTreeSet<String>,
    pub elastic_ips: usize,
    pub vpcs: usize,
    pub nat_gateways_per_az: BTreeMap<String, usize>,
    /// Instances at the most: standalone ones plus every group's max size.
    pub instances: usize,
}

fn str_attr<'a>(attrs: &'a Attrs, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(|v| v.as_str()).filter(|s| !s.contains("${"))
}

impl Needs {
    /// Count what `resources` (desired, as the blueprint or a user wrote
    /// them) will create. `zones` are the placement AZs.
    pub fn of(resources: &[Resource], zones: &[String]) -> Needs {
        let mut needs = Needs { azs: zones.iter().cloned().collect(), ..Needs::default() };
        for r in resources {
            let a = &r.attrs;
            match r.address.kind.as_str() {
                "aws_eip" => needs.elastic_ips += 1,
                "aws_vpc" => needs.vpcs += 1,
                "aws_nat_gateway" => {
                    // The blueprint keys NAT gateways by AZ.
                    let az = r.address.key.clone().unwrap_or_else(|| "(unknown AZ)".into());
                    *needs.nat_gateways_per_az.entry(az).or_default() += 1;
                }
                "aws_subnet" => {
                    if let Some(az) = str_attr(a, "availability_zone") {
                        needs.azs.insert(az.to_string());
                    }
                }
                "aws_instance" => {
                    needs.instances += 1;
                    needs.images.extend(str_attr(a, "ami").map(str::to_string));
                    needs.key_names.extend(str_attr(a, "key_name").map(str::to_string));
                }
                "aws_launch_template" => {
                    needs.images.extend(str_attr(a, "image_id").map(str::to_string));
                    needs.key_names.extend(str_attr(a, "key_name").map(str::to_string));
                }
                "aws_autoscaling_group" => {
                    needs.instances += a.get("max_size").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                }
                _ => {}
            }
        }
        needs
    }
}

impl AwsProvider {
    /// The names `resources` use where AWS makes names unique (launch
    /// templates, auto scaling groups, load balancers, security groups in a
    /// given VPC): each is free or held by this cluster's own resource.
    /// One row per name; a name another owner holds fails, naming it.
    pub async fn name_checks(&self, resources: &[Resource]) -> Result<Vec<Check>, ProviderError> {
        let creates: Vec<skyplan_engine::NewResource> = resources
            .iter()
            .filter(|r| crate::kinds::get(&r.address.kind).is_some_and(|k| k.unique_name().is_some()))
            .map(|r| skyplan_engine::NewResource {
                address: r.address.clone(),
                kind: r.address.kind.clone(),
                attrs: r.attrs.clone(),
            })
            .collect();
        let conflicts = crate::names::conflicts(&self.clients, &creates).await?;
        let mut checks = Vec::new();
        for new in &creates {
            let Some(name) = str_attr(&new.attrs, "name") else { continue };
            let problem =
                conflicts.iter().find(|c| c.address == new.address).map(|c| format!("{}: {}", c.address, c.message));
            let available = if problem.is_some() { "taken" } else { "free or this cluster's" };
            checks.push(Check::new(format!("name of {}", new.address), name, available, problem));
        }
        Ok(checks)
    }

    /// Check `needs` against the account and region: what must exist, then
    /// capacity. Read-only calls.
    pub async fn preflight(&self, needs: &Needs) -> Result<Vec<Check>, ProviderError> {
        let mut checks = self.existence_checks(needs).await?;
        checks.extend(self.capacity_checks(needs).await?);
        Ok(checks)
    }

    /// The checks `apply` runs itself before any change: the AZs, key pairs
    /// and images the spec names exist. A few describes, and true on every
    /// re-apply of a cluster that exists. Capacity is not among them: its
    /// needs count the whole spec, so on a re-apply they would count the
    /// cluster's own Elastic IPs and instances against it.
    pub async fn existence_checks(&self, needs: &Needs) -> Result<Vec<Check>, ProviderError> {
        let c = &*self.clients;
        let mut checks = Vec::new();

        let zones =
            c.call("DescribeAvailabilityZones", Retry::Standard, || c.ec2.describe_availability_zones().send()).await?;
        let available: BTreeSet<&str> = zones
            .availability_zones()
            .iter()
            .filter(|z| z.state() == Some(&AvailabilityZoneState::Available))
            .filter_map(|z| z.zone_name())
            .collect();
        for az in &needs.azs {
            let ok = available.contains(az.as_str());
            let problem = (!ok).then(|| {
                let list: Vec<&str> = available.iter().copied().collect();
                format!("{az} is not an available zone of this region (available: {})", list.join(", "))
            });
            checks.push(Check::new(
                format!("availability zone {az}"),
                "exists",
                if ok { "yes" } else { "no" },
                problem,
            ));
        }

        if !needs.key_names.is_empty() {
            let names: Vec<String> = needs.key_names.iter().cloned().collect();
            let found = c
                .call("DescribeKeyPairs", Retry::Standard, || {
                    c.ec2.describe_key_pairs().filters(filter("key-name", names.clone())).send()
                })
                .await?;
            let found: BTreeSet<&str> = found.key_pairs().iter().filter_map(|k| k.key_name()).collect();
            for name in &needs.key_names {
                let ok = found.contains(name.as_str());
                let problem = (!ok).then(|| {
                    format!(
                        "key pair {name} does not exist in this region: create or import it, or change ssh_key_name"
                    )
                });
                checks.push(Check::new(format!("key pair {name}"), "exists", if ok { "yes" } else { "no" }, problem));
            }
        }

        for image in &needs.images {
            let (ok, detail) = match ami::resolve(c, image, true).await {
                Ok(found) => (true, found.id),
                Err(e) => (false, e.message),
            };
            let problem = (!ok).then(|| detail.clone());
            checks.push(Check::new(format!("image {image}"), "exists", if ok { detail } else { "no".into() }, problem));
        }
        Ok(checks)
    }

    /// Room for the Elastic IPs, VPCs, NAT gateways and instances `needs` counts.
    pub async fn capacity_checks(&self, needs: &Needs) -> Result<Vec<Check>, ProviderError> {
        let c = &*self.clients;
        let mut checks = Vec::new();

        let attributes = c
            .call("DescribeAccountAttributes", Retry::Standard, || {
                c.ec2
                    .describe_account_attributes()
                    .attribute_names(AccountAttributeName::from("vpc-max-elastic-ips"))
                    .send()
            })
            .await?;
        let attribute = |name: &str| -> Option<usize> {
            attributes
                .account_attributes()
                .iter()
                .find(|a| a.attribute_name() == Some(name))
                .and_then(|a| a.attribute_values().first())
                .and_then(|v| v.attribute_value())
                .and_then(|v| v.parse().ok())
        };

        if needs.elastic_ips > 0 {
            let in_use = c.call("DescribeAddresses", Retry::Standard, || c.ec2.describe_addresses().send()).await?;
            let in_use = in_use.addresses().len();
            let quota = attribute("vpc-max-elastic-ips").unwrap_or(5);
            let free = quota.saturating_sub(in_use);
            checks.push(Check::new(
                "Elastic IPs (one per NAT gateway)",
                needs.elastic_ips,
                format!("{free} ({quota} allowed, {in_use} in use)"),
                (needs.elastic_ips > free).then(|| {
                    format!("needs {} Elastic IPs but {free} are free: release unused addresses or ask AWS for a higher vpc-max-elastic-ips", needs.elastic_ips)
                }),
            ));
        }

        if needs.vpcs > 0 {
            let vpcs = c.call("DescribeVpcs", Retry::Standard, || c.ec2.describe_vpcs().send()).await?;
            let in_use = vpcs.vpcs().len();
            let free = DEFAULT_VPCS.saturating_sub(in_use);
            checks.push(Check::new(
                "VPCs",
                needs.vpcs,
                format!("{free} ({DEFAULT_VPCS} by AWS's default quota, {in_use} in use)"),
                (needs.vpcs > free)
                    .then(|| "no VPC is free under the default quota: delete one or ask AWS for more".to_string()),
            ));
        }

        if !needs.nat_gateways_per_az.is_empty() {
            let nats = c
                .call("DescribeNatGateways", Retry::Standard, || {
                    let counted = [NatGatewayState::Pending, NatGatewayState::Available];
                    c.ec2.describe_nat_gateways().filter(filter("state", counted.iter().map(|s| s.as_str()))).send()
                })
                .await?;
            let subnet_ids: Vec<String> =
                nats.nat_gateways().iter().filter_map(|n| n.subnet_id()).map(str::to_string).collect();
            let mut per_az: BTreeMap<String, usize> = BTreeMap::new();
            if !subnet_ids.is_empty() {
                let subnets = c
                    .call("DescribeSubnets", Retry::Standard, || {
                        c.ec2.describe_subnets().filters(filter("subnet-id", subnet_ids.clone())).send()
                    })
                    .await?;
                let az_of: BTreeMap<&str, &str> =
                    subnets.subnets().iter().filter_map(|s| Some((s.subnet_id()?, s.availability_zone()?))).collect();
                for id in &subnet_ids {
                    if let Some(az) = az_of.get(id.as_str()) {
                        *per_az.entry(az.to_string()).or_default() += 1;
                    }
                }
            }
            for (az, need) in &needs.nat_gateways_per_az {
                let in_use = per_az.get(az).copied().unwrap_or(0);
                let free = DEFAULT_NATS_PER_AZ.saturating_sub(in_use);
                checks.push(Check::new(
                    format!("NAT gateways in {az}"),
                    need,
                    format!("{free} ({DEFAULT_NATS_PER_AZ} by AWS's default quota, {in_use} in use)"),
                    (*need > free).then(|| format!("{az} has no room for another NAT gateway under the default quota")),
                ));
            }
        }

        if needs.instances > 0 {
            let limit = c
                .call("DescribeAccountAttributes", Retry::Standard, || {
                    c.ec2
                        .describe_account_attributes()
                        .attribute_names(AccountAttributeName::from("max-instances"))
                        .send()
                })
                .await?;
            let quota = limit
                .account_attributes()
                .iter()
                .find(|a| a.attribute_name() == Some("max-instances"))
                .and_then(|a| a.attribute_values().first())
                .and_then(|v| v.attribute_value())
                .and_then(|v| v.parse::<usize>().ok());
            let running = c
                .call("DescribeInstances", Retry::Standard, || {
                    let counted = [InstanceStateName::Pending, InstanceStateName::Running];
                    c.ec2
                        .describe_instances()
                        .filters(filter("instance-state-name", counted.iter().map(|s| s.as_str())))
                        .send()
                })
                .await?;
            let in_use: usize = running.reservations().iter().map(|r| r.instances().len()).sum();
            match quota {
                Some(quota) => {
                    let free = quota.saturating_sub(in_use);
                    checks.push(Check::new(
                        "instances (standalone plus every group's max size)",
                        needs.instances,
                        format!("{free} ({quota} allowed, {in_use} running)"),
                        (needs.instances > free).then(|| {
                            format!("needs up to {} instances but {free} more are allowed: lower pool max sizes or ask AWS for a higher limit", needs.instances)
                        }),
                    ));
                }
                None => checks.push(Check::new(
                    "instances",
                    needs.instances,
                    format!("{in_use} running, limit unknown"),
                    None,
                )),
            }
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skyplan_engine::Address;

    fn resource(address: &str, attrs: serde_json::Value) -> Resource {
        Resource::new(address.parse::<Address>().unwrap(), attrs.as_object().unwrap().clone())
    }

    #[test]
    fn needs_count_what_the_resources_create() {
        let resources = vec![
            resource("aws_vpc.main", json!({})),
            resource("aws_eip.nat[us-east-1a]", json!({})),
            resource("aws_eip.nat[us-east-1b]", json!({})),
            resource("aws_nat_gateway.main[us-east-1a]", json!({})),
            resource("aws_nat_gateway.main[us-east-1b]", json!({})),
            resource("aws_subnet.private[us-east-1c]", json!({"availability_zone": "us-east-1c"})),
            resource("aws_instance.bastion", json!({"ami": "auto", "key_name": "ops"})),
            resource("aws_launch_template.pool[w]", json!({"image_id": "ami-123", "key_name": "ops"})),
            resource("aws_autoscaling_group.pool[w]", json!({"max_size": 6})),
        ];
        let needs = Needs::of(&resources, &["us-east-1a".to_string()]);
        assert_eq!(needs.vpcs, 1);
        assert_eq!(needs.elastic_ips, 2);
        assert_eq!(needs.nat_gateways_per_az.values().sum::<usize>(), 2);
        assert_eq!(needs.instances, 7);
        assert_eq!(needs.key_names.iter().collect::<Vec<_>>(), ["ops"]);
        assert_eq!(needs.images.len(), 2);
        assert!(needs.azs.contains("us-east-1a") && needs.azs.contains("us-east-1c"));
    }
}
