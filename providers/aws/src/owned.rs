//! Listing what carries a cluster's ownership tags (`Provider::owned`), so
//! `plan` and `destroy` can report and remove what the state does not know.
//!
//! One tag-filtered describe per kind asked for (classic ELB has no tag
//! filter: its describe, then DescribeTags for the names). A resource counts
//! only when it carries every ownership tag *and* the `skyplan:address` tag
//! with an address of the same kind: the tags are checked here on every hit,
//! since the emulator ignores some filters (NAT gateways), and the address
//! tag is what tells a resource skyplan created from one the user tagged for
//! the cluster (under static placement the given VPC and subnets carry the
//! cluster's `owned` tag). Instances an auto scaling group launched carry
//! the group's address tag, so the kind check leaves them to the group.
//! What is found and not in `known` is then read as a refresh reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, Tag};
use serde_json::{json, Value};
use skyplan_engine::{Address, Attrs, Owned, ProviderError, ReadRequest};

use crate::clients::Clients;
use crate::ec2util::filter;
use crate::error::ApiError;
use crate::provider::Kind;
use crate::retry::Retry;
use crate::tags::{self, ADDRESS_TAG};

/// How many names one ELB DescribeTags takes.
const ELB_TAG_NAMES: usize = 20;

/// One resource a describe returned: its id and every tag.
struct Hit {
    id: String,
    tags: BTreeMap<String, String>,
}

fn hit(id: Option<&str>, list: &[Tag]) -> Option<Hit> {
    let tags = list.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))).collect();
    Some(Hit { id: id?.to_string(), tags })
}

/// The EC2 filters: each ownership tag, and the address tag's presence.
fn ec2_filters(owner: &BTreeMap<String, String>) -> Vec<Filter> {
    let mut filters: Vec<Filter> =
        owner.iter().map(|(k, v)| filter(&format!("tag:{k}"), [tags::filter_pattern(v)])).collect();
    filters.push(filter("tag-key", [ADDRESS_TAG]));
    filters
}

/// Everything of `kind` the tag filters return (more, where the filters
/// are not honoured).
async fn list(c: &Clients, kind: Kind, owner: &BTreeMap<String, String>) -> Result<Vec<Hit>, ApiError> {
    let f = || Some(ec2_filters(owner));
    let hits = match kind {
        Kind::Vpc => {
            c.paginate(
                "DescribeVpcs",
                Retry::Standard,
                |token| c.ec2.describe_vpcs().set_filters(f()).set_next_token(token).send(),
                |page| page.vpcs().iter().filter_map(|v| hit(v.vpc_id(), v.tags())).collect(),
                |page| page.next_token(),
            )
            .await?
        }
        Kind::Subnet => {
            c.paginate(
                "DescribeSubnets",
                Retry::Standard,
                |token| c.ec2.describe_subnets().set_filters(f()).set_next_token(token).send(),
                |page| page.subnets().iter().filter_map(|s| hit(s.subnet_id(), s.tags())).collect(),
                |page| page.next_token(),
            )
            .await?
        }
        Kind::InternetGateway => {
            c.paginate(
                "DescribeInternetGateways",
                Retry::Standard,
                |token| c.ec2.describe_internet_gateways().set_filters(f()).set_next_token(token).send(),
                |page| page.internet_gateways().iter().filter_map(|g| hit(g.internet_gateway_id(), g.tags())).collect(),
                |page| page.next_token(),
            )
            .await?
        }
        Kind::Eip => {
            let out = c
                .call("DescribeAddresses", Retry::Standard, || c.ec2.describe_addresses().set_filters(f()).send())
                .await?;
            out.addresses().iter().filter_map(|a| hit(a.allocation_id(), a.tags())).collect()
        }
        Kind::NatGateway => {
            let mut filters = ec2_filters(owner);
            filters.push(filter("state", ["pending", "available"]));
            c.paginate(
                "DescribeNatGateways",
                Retry::Standard,
                |token| c.ec2.describe_nat_gateways().set_filter(Some(filters.clone())).set_next_token(token).send(),
                |page| {
                    page.nat_gateways()
                        .iter()
                        // The emulator ignores the state filter too.
                        .filter(|n| matches!(n.state().map(|s| s.as_str()), Some("pending" | "available")))
                        .filter_map(|n| hit(n.nat_gateway_id(), n.tags()))
                        .collect()
                },
                |page| page.next_token(),
            )
            .await?
        }
        Kind::RouteTable => {
            c.paginate(
                "DescribeRouteTables",
                Retry::Standard,
                |token| c.ec2.describe_route_tables().set_filters(f()).set_next_token(token).send(),
                |page| page.route_tables().iter().filter_map(|t| hit(t.route_table_id(), t.tags())).collect(),
                |page| page.next_token(),
            )
            .await?
        }
        Kind::SecurityGroup => {
            c.paginate(
                "DescribeSecurityGroups",
                Retry::Standard,
                |token| c.ec2.describe_security_groups().set_filters(f()).set_next_token(token).send(),
                |page| page.security_groups().iter().filter_map(|g| hit(g.group_id(), g.tags())).collect(),
                |page| page.next_token(),
            )
            .await?
        }
        Kind::SecurityGroupRule => {
            // DescribeTags (the rules API is outside the seed's policies):
            // the rules carrying one ownership tag (DescribeTags filters
            // match one tag at a time), then all their tags.
            let first = match owner.iter().next() {
                Some((k, v)) => vec![filter("key", [k.as_str()]), filter("value", [tags::filter_pattern(v)])],
                None => vec![filter("key", [ADDRESS_TAG])],
            };
            let tagged = crate::security_group_rule::rule_tags(c, first).await?;
            let ids: Vec<String> = tagged.into_keys().collect();
            let mut hits = Vec::new();
            for chunk in ids.chunks(crate::ec2util::FILTER_CHUNK) {
                let all = crate::security_group_rule::rule_tags(c, vec![filter("resource-id", chunk.to_vec())]).await?;
                hits.extend(all.iter().filter_map(|(id, list)| hit(Some(id.as_str()), list)));
            }
            hits
        }
        Kind::Instance => {
            let mut filters = ec2_filters(owner);
            filters.push(filter("instance-state-name", ["pending", "running", "stopping", "stopped"]));
            c.paginate(
                "DescribeInstances",
                Retry::Standard,
                |token| c.ec2.describe_instances().set_filters(Some(filters.clone())).set_next_token(token).send(),
                |page| {
                    page.reservations()
                        .iter()
                        .flat_map(|r| r.instances())
                        .filter(|i| {
                            let state = i.state().and_then(|s| s.name()).map(|n| n.as_str());
                            matches!(state, Some("pending" | "running" | "stopping" | "stopped"))
                        })
                        .filter_map(|i| hit(i.instance_id(), i.tags()))
                        .collect()
                },
                |page| page.next_token(),
            )
            .await?
        }
        Kind::LaunchTemplate => {
            c.paginate(
                "DescribeLaunchTemplates",
                Retry::Standard,
                |token| c.ec2.describe_launch_templates().set_filters(f()).set_next_token(token).send(),
                |page| page.launch_templates().iter().filter_map(|t| hit(t.launch_template_id(), t.tags())).collect(),
                |page| page.next_token(),
            )
            .await?
        }
        Kind::Elb => {
            // No tag filter on classic ELB: every name, then their tags.
            let names: Vec<String> = c
                .paginate(
                    "DescribeLoadBalancers",
                    Retry::Standard,
                    |marker| c.elb.describe_load_balancers().set_marker(marker).send(),
                    |page| {
                        page.load_balancer_descriptions()
                            .iter()
                            .filter_map(|l| l.load_balancer_name().map(str::to_string))
                            .collect()
                    },
                    |page| page.next_marker(),
                )
                .await?;
            let mut hits = Vec::new();
            for chunk in names.chunks(ELB_TAG_NAMES) {
                let out = c
                    .call("DescribeTags", Retry::Standard, || {
                        c.elb.describe_tags().set_load_balancer_names(Some(chunk.to_vec())).send()
                    })
                    .await?;
                for d in out.tag_descriptions() {
                    let Some(name) = d.load_balancer_name() else { continue };
                    let tags = d.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or("").to_string()));
                    hits.push(Hit { id: name.to_string(), tags: tags.collect() });
                }
            }
            hits
        }
        Kind::AutoscalingGroup => {
            use aws_sdk_autoscaling::types::Filter as AsgFilter;
            let mut filters: Vec<AsgFilter> =
                owner.iter().map(|(k, v)| AsgFilter::builder().name(format!("tag:{k}")).values(v).build()).collect();
            filters.push(AsgFilter::builder().name("tag-key").values(ADDRESS_TAG).build());
            c.paginate(
                "DescribeAutoScalingGroups",
                Retry::Standard,
                |token| {
                    c.autoscaling
                        .describe_auto_scaling_groups()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(token)
                        .send()
                },
                |page| {
                    page.auto_scaling_groups()
                        .iter()
                        .filter_map(|g| {
                            let tags = g
                                .tags()
                                .iter()
                                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())));
                            Some(Hit { id: g.auto_scaling_group_name()?.to_string(), tags: tags.collect() })
                        })
                        .collect()
                },
                |page| page.next_token(),
            )
            .await?
        }
    };
    Ok(hits)
}

/// The address a hit was created for, when it carries every ownership tag
/// and an address tag of this kind.
fn claimed(kind: Kind, owner: &BTreeMap<String, String>, hit: &Hit) -> Option<Address> {
    if !owner.iter().all(|(k, v)| hit.tags.get(k) == Some(v)) {
        return None;
    }
    let address: Address = hit.tags.get(ADDRESS_TAG)?.parse().ok()?;
    (address.kind == kind.spec().kind).then_some(address)
}

/// A prior that names every attribute of the kind, so the read reports
/// each one the resource has (a refresh reports only what the inputs name).
fn full_prior(kind: Kind, id: &str) -> Attrs {
    let mut prior: Attrs = kind.spec().fields.iter().map(|f| (f.name.to_string(), Value::Null)).collect();
    prior.insert("id".into(), json!(id));
    prior
}

/// What carries every `owner` tag and an address tag of one of `kinds`,
/// except the ids in `known`, read as a refresh reads it. The kinds are
/// looked up concurrently, as a refresh reads them.
pub(crate) async fn owned(
    c: &Arc<Clients>,
    kinds: &BTreeSet<String>,
    owner: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> Result<Vec<Owned>, ProviderError> {
    // A security group rule resource records its AWS rules as one id
    // (`sgr-1,sgr-2`): each of them is known.
    let known: Arc<BTreeSet<String>> =
        Arc::new(known.iter().flat_map(|id| id.split(',')).map(str::to_string).collect());
    let owner = Arc::new(owner.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for kind in Kind::ALL.into_iter().filter(|k| kinds.contains(k.spec().kind)) {
        let (c, owner, known) = (c.clone(), owner.clone(), known.clone());
        tasks.spawn(async move { (kind, owned_of_kind(&c, kind, &owner, &known).await) });
    }
    let mut by_kind = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (kind, found) = joined.map_err(|e| ProviderError::new(format!("listing owned resources: {e}")))?;
        let found = found.map_err(|e| ProviderError::new(format!("listing {}: {}", kind.spec().kind, e.message)))?;
        by_kind.insert(kind, found);
    }
    Ok(by_kind.into_values().flatten().collect())
}

async fn owned_of_kind(
    c: &Clients,
    kind: Kind,
    owner: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> Result<Vec<Owned>, ProviderError> {
    let mut by_address: BTreeMap<Address, Vec<String>> = BTreeMap::new();
    for hit in list(c, kind, owner).await? {
        if known.contains(&hit.id) {
            continue;
        }
        if let Some(address) = claimed(kind, owner, &hit) {
            by_address.entry(address).or_default().push(hit.id);
        }
    }
    let mut requests = Vec::new();
    for (address, ids) in by_address {
        if kind == Kind::SecurityGroupRule {
            // The AWS rules one rule resource made are one resource.
            let id = ids.join(",");
            requests.push(ReadRequest { address, kind: kind.spec().kind.into(), prior: full_prior(kind, &id) });
        } else {
            for id in ids {
                let prior = full_prior(kind, &id);
                requests.push(ReadRequest { address: address.clone(), kind: kind.spec().kind.into(), prior });
            }
        }
    }
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let read = kind.read(c, &requests).await?;
    // Gone between the list and the read: nothing to report.
    Ok(requests
        .into_iter()
        .zip(read)
        .filter_map(|(request, attributes)| {
            Some(Owned { address: request.address, kind: request.kind, attributes: attributes? })
        })
        .collect())
}
