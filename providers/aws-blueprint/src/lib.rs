//! The AWS cluster blueprint: the `[cluster]` tables of a spec expanded into
//! raw AWS resources (`aws_vpc.main`, `aws_subnet.private[us-east-1a]`, ...)
//! of exactly the types and attributes in docs/aws-resources.md.
//!
//! Architecture invariant: no AWS SDK and no cloud calls here. The blueprint
//! is a pure function of the spec; the AWS provider creates what it emits.
//!
//! Code map, in the order [`expand`] runs:
//! - `validate.rs`: every rule, every error with its key path; builds the
//!   `Cluster` of `cluster.rs` (defaults applied, values parsed) that the
//!   rest reads.
//! - `network.rs`: VPC, subnets (`cidr.rs` carves them), gateways, routes;
//!   or the existing VPC and subnets of a static placement.
//! - `security.rs`: the four security groups and their rules.
//! - `compute.rs`: bastion, control-plane instances, API ELB, worker pools;
//!   `bootstrap/` renders what their nodes boot with (PKI, token,
//!   kubeadm configuration, user data).
//! - `secrets.rs`: the cluster's three Secrets Manager secrets, and which
//!   node waits for which.
//! - `tags.rs` owns the tag conventions; `names.rs` the AWS resource names.
//!
//! For review, [`review()`]: the risks of a plan to the running cluster
//! (`review.rs`), its monthly cost (`cost.rs`, prices from `data/`) and
//! the parts of the cluster its addresses belong to.
//!
//! Beside the expansion, [`policy`]: the least-privilege IAM policy for the
//! resources of a spec, from the table in `data/iam-actions.toml`.

pub mod bootstrap;
mod cidr;
mod cluster;
mod compute;
pub mod cost;
pub mod model;
mod names;
mod network;
pub mod policy;
pub mod prices;
pub mod review;
pub mod secrets;
mod security;
mod tags;
mod validate;

pub use tags::ownership;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use skyplan_engine::orphans::Ownership;
use skyplan_engine::review::Review;
use skyplan_engine::{Address, Diagnostics, Reference, Resource, Source, Spec, SpecError};

use crate::model::SpecFile;
pub use cluster::PriceSource;
pub use cluster::{CONTROL_PLANE_PROFILE, NODES_PROFILE};
pub use compute::architecture;

/// An AWS spec, read and validated once per run: everything a command
/// needs from it. Invalid input is reported at file:line:column.
#[derive(Debug, Clone)]
pub struct AwsSpec {
    /// The file as read (its source, for error locations, and the AWS
    /// tables). Its raw resources were moved into `resources`.
    pub spec: Spec<SpecFile>,
    /// The raw `[resource.TYPE.NAME]` resources, then what `[cluster]`
    /// expands into.
    pub resources: Vec<Resource>,
    /// The values to mask everywhere ([`sensitive_values`]).
    pub sensitive: Vec<String>,
    /// What marks the cluster's resources, for the orphan search; None
    /// without a `[cluster]`.
    pub ownership: Option<Ownership>,
    /// `[cluster] region`, when written.
    pub region: Option<String>,
    /// The worker pools on the spot market ([`spot_pools`]).
    pub spot_pools: Vec<SpotPool>,
    /// The on-demand prices looked up for this run ([`AwsSpec::parse_with`];
    /// none when parsed offline).
    pub prices: prices::LookedUp,
}

impl AwsSpec {
    /// What the spec asks of the engine's pipeline (`ops::plan`).
    pub fn desired(&self) -> skyplan_engine::ops::Desired {
        skyplan_engine::ops::Desired {
            resources: self.resources.clone(),
            redactor: skyplan_engine::Redactor::new(self.sensitive.clone()),
            ownership: self.ownership.clone(),
        }
    }

    pub fn load(path: &Path) -> Result<AwsSpec, Diagnostics> {
        AwsSpec::parse(Source::read(path)?)
    }

    /// Offline: nothing looked up in the cloud, so a spot pool whose
    /// on-demand price neither the spec nor the price table gives has an
    /// unknown max price (`validate`, `graph`, `policy`, a saved plan's
    /// spec). `plan` and `apply` ask the Price List API for the prices
    /// [`prices::needed`] and parse again with [`AwsSpec::parse_with`].
    pub fn parse(source: Source) -> Result<AwsSpec, Diagnostics> {
        AwsSpec::parse_with(source, &prices::LookedUp::default())
    }

    /// [`AwsSpec::parse`] with the on-demand prices looked up for this run
    /// (online: then a spot pool's price that neither the lookup, the spec
    /// nor the table has is an error at its key).
    pub fn parse_with(source: Source, looked_up: &prices::LookedUp) -> Result<AwsSpec, Diagnostics> {
        let mut spec: Spec<SpecFile> = Spec::parse_with(source)?;
        let located = |errs: Vec<SpecError>| spec.source.diagnostics(&errs);
        let expanded = expand_with(&spec.file, looked_up).map_err(located)?;
        let spot_pools = spot_pools_with(&spec.file, looked_up).map_err(located)?;
        let sensitive = sensitive_values(&spec.file);
        let ownership = cluster_ownership(&spec.file);
        let region = spec.file.cluster.as_ref().map(|c| c.region.clone());
        // Moved, not copied: a spec may hold many thousands.
        let mut resources = std::mem::take(&mut spec.resources);
        complete_raw(&spec.file, &mut resources);
        resources.extend(expanded);
        Ok(AwsSpec { spec, resources, sensitive, ownership, region, spot_pools, prices: looked_up.clone() })
    }

    /// The path of the spec file, for messages.
    pub fn path(&self) -> &Path {
        &self.spec.source.path
    }
}

/// The cluster's two `owned` tags, and the ids it uses without owning them
/// (a static placement's VPC and subnets, which carry the cluster's `owned`
/// tag too). None without a `[cluster]`.
fn cluster_ownership(spec: &SpecFile) -> Option<Ownership> {
    let cluster = spec.cluster.as_ref()?;
    let mut keep = BTreeSet::new();
    if let Some(placement) = &spec.placement {
        keep.extend(placement.vpc_id.iter().cloned());
        for subnet in &placement.subnet {
            keep.extend([subnet.public.clone(), subnet.private.clone()]);
        }
    }
    Some(Ownership { tags: ownership(&cluster.name), keep })
}

/// Whether a resource type is one of AWS's (`aws_vpc`, `aws_instance`, ...):
/// which types the AWS provider serves is this crate's knowledge, so the
/// binary asks here instead of matching type names itself.
pub fn is_aws_type(kind: &str) -> bool {
    kind.starts_with("aws_")
}

/// Expand the `[cluster]`-related tables of a spec into raw AWS resources,
/// sorted by address. `Ok(vec![])` when the spec has no `[cluster]` (and no
/// other cluster tables). On invalid input, every problem found, each with
/// the key path of the offending value and a help line.
pub fn expand(spec: &SpecFile) -> Result<Vec<Resource>, Vec<SpecError>> {
    // Nothing looked up, yet a price must be known: the spec's or the table's.
    expand_with(spec, &prices::LookedUp { online: true, ..prices::LookedUp::default() })
}

/// [`expand`] with on-demand prices looked up for this run (see
/// [`prices::LookedUp`]; a spot pool's max price without one and outside
/// the table is unknown offline, an error online).
pub fn expand_with(spec: &SpecFile, looked_up: &prices::LookedUp) -> Result<Vec<Resource>, Vec<SpecError>> {
    let Some(cluster) = validate::validate_with(spec, looked_up)? else {
        return Ok(Vec::new());
    };
    let (mut out, network) = network::expand(&cluster);
    let (groups_out, groups) = security::expand(&cluster, &network);
    out.extend(groups_out);
    let mut nodes = compute::expand(&cluster, &network, &groups);
    for node in &mut nodes {
        node.depends_on.extend(secrets::read_by(&node.address));
    }
    out.extend(nodes);
    out.extend(secrets::expand(&cluster));
    let too_large = bootstrap::check_user_data_size(&out);
    if !too_large.is_empty() {
        return Err(too_large);
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(out)
}

/// Fill in what a raw resource may leave out: a `[resource.aws_security_group.NAME]`
/// without `name` gets [`names::raw_security_group`]'s, derived from the
/// cluster's name and the address (contract, "Permissions"). Call on the
/// spec's raw resources before building the graph.
pub fn complete_raw(spec: &SpecFile, resources: &mut [Resource]) {
    let cluster = spec.cluster.as_ref().map(|c| c.name.as_str());
    for r in resources.iter_mut().filter(|r| r.address.kind == "aws_security_group") {
        if !matches!(r.attrs.get("name"), Some(v) if !v.is_null()) {
            let name = names::raw_security_group(cluster, &r.address.name);
            r.attrs.insert("name".into(), Value::String(name));
        }
    }
}

/// The values a spec marks sensitive (its packs' `sensitive` keys), as the
/// resources hold them: as written and as the user data quotes them. Empty
/// when the spec has none or does not validate (`expand` reports why).
pub fn sensitive_values(spec: &SpecFile) -> Vec<String> {
    let Ok(Some(cluster)) = validate::validate(spec) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for secret in cluster.profile.iter().flat_map(|p| &p.packs).flat_map(|p| &p.secrets) {
        let quoted = bootstrap::yaml::scalar(secret);
        if let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
            if inner != secret {
                out.push(inner.to_string());
            }
        }
        out.push(secret.clone());
    }
    out
}

/// The plan's review: its risks to the running cluster, its parts, and
/// (for a `[cluster]` spec) its monthly cost, instances priced from
/// `instances` when given for the cluster's region (see
/// [`cost::InstancePrices::for_run`]), else from the shipped table.
pub fn review(spec: &SpecFile, plan: &skyplan_engine::plan::Plan, instances: Option<cost::InstancePrices>) -> Review {
    let cost = region(spec).map(|region| {
        let prices =
            instances.filter(|p| p.region == region).unwrap_or_else(|| cost::InstancePrices::from_table(&region));
        cost::cost(plan, &prices)
    });
    Review { risks: review::risks(plan), cost, parts: review::parts(plan) }
}

/// The region of a `[cluster]` spec (None without one, or when it does not
/// validate).
pub fn region(spec: &SpecFile) -> Option<String> {
    match validate::validate(spec) {
        Ok(Some(cluster)) => Some(cluster.region),
        _ => None,
    }
}

/// What `skyplan output` says about a cluster besides what the state holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFacts {
    pub name: String,
    /// The k8s pack's version, when the profile has one.
    pub kubernetes_version: Option<String>,
    pub api_port: u16,
    /// A static placement's VPC (a dynamic one's is `aws_vpc.main`).
    pub static_vpc_id: Option<String>,
    pub bastion: bool,
}

/// The facts of the spec's cluster; `None` without `[cluster]`. Errors as
/// [`expand`] reports them.
pub fn cluster_facts(spec: &SpecFile) -> Result<Option<ClusterFacts>, Vec<SpecError>> {
    let Some(cluster) = validate::validate(spec)? else {
        return Ok(None);
    };
    let kubernetes_version = cluster
        .profile
        .as_ref()
        .and_then(|p| p.packs.iter().find(|pack| pack.layer == crate::model::Layer::K8s))
        .map(|pack| pack.version.clone());
    let static_vpc_id = match &cluster.placement {
        cluster::Placement::Static { vpc_id, .. } => Some(vpc_id.clone()),
        cluster::Placement::Dynamic { .. } => None,
    };
    Ok(Some(ClusterFacts {
        name: cluster.name.clone(),
        kubernetes_version,
        api_port: cluster.api_port,
        static_vpc_id,
        bastion: cluster.bastion.is_some(),
    }))
}

/// What `skyplan node-config` prints for the node at `address` (see
/// [`bootstrap::node_config_for`]); `Ok(None)` without `[cluster]`, the
/// inner error when `address` is not one of the cluster's nodes (it names
/// them). Errors as [`expand`] reports them.
#[allow(clippy::type_complexity)]
pub fn node_config(
    spec: &SpecFile,
    address: &Address,
    endpoint_host: &str,
    ca_cert_hash: Option<&str>,
) -> Result<Option<Result<String, bootstrap::NodeConfigError>>, Vec<SpecError>> {
    let Some(cluster) = validate::validate(spec)? else {
        return Ok(None);
    };
    Ok(Some(bootstrap::node_config_for(&cluster, address, endpoint_host, ca_cert_hash)))
}

/// A worker pool on the spot market, as `plan` reports it next to the
/// current spot prices.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotPool {
    pub pool: String,
    pub instance_type: String,
    pub region: String,
    /// The pool's AZs.
    pub azs: Vec<String>,
    /// USD per hour, as the launch template carries it.
    pub max_price: String,
    pub max_price_percent: u32,
    pub on_demand_price: f64,
    pub on_demand_source: PriceSource,
}

/// The spot pools of a spec, in the file's order (none without `[cluster]`).
/// Errors as [`expand`] reports them.
pub fn spot_pools(spec: &SpecFile) -> Result<Vec<SpotPool>, Vec<SpecError>> {
    spot_pools_with(spec, &prices::LookedUp { online: true, ..prices::LookedUp::default() })
}

/// [`spot_pools`] with on-demand prices looked up for this run.
pub fn spot_pools_with(spec: &SpecFile, looked_up: &prices::LookedUp) -> Result<Vec<SpotPool>, Vec<SpecError>> {
    let Some(cluster) = validate::validate_with(spec, looked_up)? else {
        return Ok(Vec::new());
    };
    Ok(cluster
        .workers
        .iter()
        .filter_map(|w| {
            let spot = w.spot.as_ref()?;
            Some(SpotPool {
                pool: w.pool.name.clone(),
                instance_type: w.pool.instance_type.clone(),
                region: cluster.region.clone(),
                azs: w.pool.azs.clone(),
                max_price: spot.max_price.clone(),
                max_price_percent: spot.max_price_percent,
                on_demand_price: spot.on_demand_price,
                on_demand_source: spot.on_demand_source.clone(),
            })
        })
        .collect())
}

/// A resource from an attribute object built with `json!`.
fn resource(address: Address, attrs: Value) -> Resource {
    match attrs {
        Value::Object(attrs) => Resource::new(address, attrs),
        other => unreachable!("attributes of {address} must be an object, not {other}"),
    }
}

/// `${ADDRESS.ATTR}`: a reference to another resource's attribute.
fn reference(address: &Address, attr: &str) -> String {
    Reference { target: address.clone(), attr: attr.to_string() }.to_string()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Specs for the unit tests, parsed the way the CLI parses them.

    use crate::model::SpecFile;
    use skyplan_engine::spec::{Source, Spec};

    /// A 3-AZ dynamic cluster: bastion, 3 control-plane nodes, one worker
    /// pool, tags, a profile with an override.
    pub const DEMO: &str = r#"
[cluster]
name = "demo"
region = "us-east-1"
ssh_key_name = "ops"
tags = { team = "platform" }

[placement]
azs = ["us-east-1a", "us-east-1b", "us-east-1c"]

[bastion]
ssh_cidrs = ["203.0.113.0/24"]

[profile]
name = "ubuntu-k8s"
[[profile.pack]]
name = "ubuntu"
layer = "os"
version = "22.04"
[[profile.pack]]
name = "calico"
layer = "cni"
version = "3.28.0"
values = { mtu = 1440 }
[[profile.pack]]
name = "kubernetes"
layer = "k8s"
version = "1.30.4"
values = { pod_cidr = "192.168.0.0/16", service_cidr = "10.96.0.0/12" }
[profile.override.kubernetes]
pod_cidr = "172.16.0.0/16"

[[node_pool]]
name = "master"
control_plane = true
size = 3
instance_type = "m5.large"

[[node_pool]]
name = "worker"
size = 3
min = 3
max = 6
instance_type = "m5.xlarge"
"#;

    /// A static placement in two AZs, one worker pool in one of them, no
    /// bastion table (so the default: enabled).
    pub const STATIC: &str = r#"
[cluster]
name = "edge"
region = "eu-west-1"

[placement]
mode = "static"
azs = ["eu-west-1a", "eu-west-1b"]
vpc_id = "vpc-0abc"
[[placement.subnet]]
az = "eu-west-1a"
public = "subnet-pa"
private = "subnet-qa"
[[placement.subnet]]
az = "eu-west-1b"
public = "subnet-pb"
private = "subnet-qb"

[[node_pool]]
name = "cp"
control_plane = true
size = 1
instance_type = "t3.large"

[[node_pool]]
name = "w"
size = 2
instance_type = "t3.large"
azs = ["eu-west-1b"]
"#;

    /// `text` with the first `from` replaced by `to`; `from` must be there,
    /// so a test cannot silently stop testing what it says.
    pub fn edit(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "the spec has no {from:?}");
        text.replacen(from, to, 1)
    }

    /// `DEMO` with the first `from` replaced by `to`.
    pub fn demo_with(from: &str, to: &str) -> String {
        edit(DEMO, from, to)
    }

    pub fn parse(text: &str) -> SpecFile {
        let source = Source { path: "spec.toml".into(), text: text.to_string() };
        match Spec::<SpecFile>::parse_with(source) {
            Ok(spec) => spec.file,
            Err(e) => panic!("test spec does not parse: {e}\n{text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::{json, Value};
    use skyplan_engine::value::references;

    use super::fixtures::{self, demo_with, edit, parse};
    use super::*;

    fn demo() -> Vec<Resource> {
        expand(&parse(fixtures::DEMO)).unwrap()
    }

    fn find<'a>(out: &'a [Resource], address: &str) -> &'a Resource {
        out.iter().find(|r| r.address.to_string() == address).unwrap_or_else(|| panic!("no {address} in the output"))
    }

    fn addresses(out: &[Resource]) -> Vec<String> {
        out.iter().map(|r| r.address.to_string()).collect()
    }

    fn tags(resource: &Resource, attr: &str) -> BTreeMap<String, String> {
        serde_json::from_value(resource.attrs[attr].clone()).unwrap()
    }

    #[test]
    fn a_three_az_dynamic_cluster_is_exactly_these_resources() {
        let mut expected: Vec<String> = [
            "aws_autoscaling_group.pool[worker]",
            "aws_elb.apiserver",
            "aws_instance.bastion",
            "aws_instance.control_plane[0]",
            "aws_instance.control_plane[1]",
            "aws_instance.control_plane[2]",
            "aws_internet_gateway.main",
            "aws_launch_template.pool[worker]",
            "aws_route_table.public",
            "aws_security_group.apiserver_lb",
            "aws_security_group.bastion",
            "aws_security_group.control_plane",
            "aws_security_group.node",
            "aws_security_group_rule.control_plane_all_from_self",
            "aws_security_group_rule.control_plane_api_from_lb",
            "aws_security_group_rule.control_plane_api_from_node",
            "aws_security_group_rule.control_plane_bgp_from_node",
            "aws_security_group_rule.control_plane_etcd_from_self",
            "aws_security_group_rule.control_plane_ipip_from_node",
            "aws_security_group_rule.control_plane_ssh_from_bastion",
            "aws_security_group_rule.node_all_from_control_plane",
            "aws_security_group_rule.node_all_from_self",
            "aws_security_group_rule.node_kubelet_from_control_plane",
            "aws_security_group_rule.node_ssh_from_bastion",
            "aws_secretsmanager_secret.init_lock",
            "aws_secretsmanager_secret.join",
            "aws_secretsmanager_secret.pki",
            "aws_vpc.main",
        ]
        .map(String::from)
        .to_vec();
        for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
            for per_az in [
                "aws_eip.nat",
                "aws_nat_gateway.main",
                "aws_route_table.private",
                "aws_subnet.private",
                "aws_subnet.public",
            ] {
                expected.push(format!("{per_az}[{az}]"));
            }
        }
        expected.sort();
        let out = demo();
        assert_eq!(addresses(&out), expected);

        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &out {
            *counts.entry(r.address.kind.as_str()).or_default() += 1;
        }
        let expected_counts = BTreeMap::from([
            ("aws_autoscaling_group", 1),
            ("aws_eip", 3),
            ("aws_elb", 1),
            ("aws_instance", 4),
            ("aws_internet_gateway", 1),
            ("aws_launch_template", 1),
            ("aws_nat_gateway", 3),
            ("aws_route_table", 4),
            ("aws_secretsmanager_secret", 3),
            ("aws_security_group", 4),
            ("aws_security_group_rule", 11),
            ("aws_subnet", 6),
            ("aws_vpc", 1),
        ]);
        assert_eq!(counts, expected_counts);
        assert_eq!(out.len(), 43);
    }

    #[test]
    fn output_is_sorted_unique_and_stable() {
        let out = demo();
        let addrs: Vec<&Address> = out.iter().map(|r| &r.address).collect();
        assert!(addrs.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert_eq!(out, demo());
    }

    #[test]
    fn no_cluster_tables_no_resources() {
        assert_eq!(expand(&parse("")).unwrap(), vec![]);
        let raw = "[resource.sim_resource.a]\nsize = 3\n";
        assert_eq!(expand(&parse(raw)).unwrap(), vec![]);
    }

    #[test]
    fn every_resource_carries_the_required_tags() {
        for text in [fixtures::DEMO, fixtures::STATIC] {
            let spec = parse(text);
            let cluster = spec.cluster.as_ref().unwrap();
            for r in expand(&spec).unwrap() {
                let mut tag_attrs = vec!["tags"];
                if r.address.kind == "aws_launch_template" {
                    tag_attrs.push("instance_tags");
                }
                for attr in tag_attrs {
                    let t = tags(&r, attr);
                    for (k, v) in &cluster.tags {
                        assert_eq!(t.get(k), Some(v), "{} {attr}", r.address);
                    }
                    let name = &t["Name"];
                    assert!(name.starts_with(&format!("{}-", cluster.name)), "{} Name {name}", r.address);
                    let owned = Some(&"owned".to_string());
                    assert_eq!(
                        t.get(&format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{}", cluster.name)),
                        owned,
                        "{}",
                        r.address
                    );
                    assert_eq!(t.get(&format!("kubernetes.io/cluster/{}", cluster.name)), owned, "{}", r.address);
                }
            }
        }
        let out = demo();
        let public = tags(find(&out, "aws_subnet.public[us-east-1a]"), "tags");
        assert_eq!(public["Name"], "demo-subnet-public-us-east-1a");
        assert_eq!(public["kubernetes.io/role/elb"], "1");
        assert_eq!(public["sigs.k8s.io/cluster-api-provider-aws/role"], "public");
        let private = tags(find(&out, "aws_subnet.private[us-east-1c]"), "tags");
        assert_eq!(private["Name"], "demo-subnet-private-us-east-1c");
        assert_eq!(private["kubernetes.io/role/internal-elb"], "1");
        assert_eq!(private["sigs.k8s.io/cluster-api-provider-aws/role"], "private");
        for (address, name) in [
            ("aws_vpc.main", "demo-vpc"),
            ("aws_nat_gateway.main[us-east-1b]", "demo-nat-us-east-1b"),
            ("aws_instance.control_plane[0]", "demo-control-plane-0"),
            ("aws_instance.bastion", "demo-bastion"),
            ("aws_elb.apiserver", "demo-apiserver"),
            ("aws_autoscaling_group.pool[worker]", "demo-worker"),
        ] {
            assert_eq!(tags(find(&out, address), "tags")["Name"], name, "{address}");
        }
    }

    /// Every `${...}` reference and every `depends_on` names a resource the
    /// output contains, and references only name attributes the vocabulary
    /// says are computed.
    #[test]
    fn every_reference_points_into_the_output() {
        let computed = ["id", "latest_version", "dns_name", "arn"];
        let mut specs: Vec<String> = vec![fixtures::DEMO.into(), fixtures::STATIC.into()];
        specs.push(demo_with("[bastion]", "[bastion]\nenabled = false"));
        specs.extend(examples().into_iter().map(|(_, text)| text));
        for text in &specs {
            let out = expand(&parse(text)).unwrap();
            let present: BTreeSet<&Address> = out.iter().map(|r| &r.address).collect();
            for r in &out {
                for (attr, value) in &r.attrs {
                    for reference in references(value).unwrap() {
                        assert!(
                            present.contains(&reference.target),
                            "{}.{attr} refers to {reference}, which is not in the output",
                            r.address
                        );
                        assert!(computed.contains(&reference.attr.as_str()), "{}.{attr}: {reference}", r.address);
                    }
                }
                for dep in &r.depends_on {
                    assert!(present.contains(dep), "{} depends on {dep}, which is not in the output", r.address);
                }
            }
        }
    }

    /// The types and attribute names the blueprint emits are those of the
    /// table in docs/aws-resources.md, which the AWS provider implements.
    #[test]
    fn only_the_documented_vocabulary_is_emitted() {
        let doc = include_str!("../../../docs/aws-resources.md");
        let mut vocabulary: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in doc.lines().filter(|l| l.starts_with("| `aws_")) {
            let mut columns = line.split('|').skip(1);
            let kind = backticked(columns.next().unwrap()).remove(0);
            let names = columns.flat_map(backticked).chain(["tags".to_string()]);
            vocabulary.entry(kind).or_default().extend(names);
        }
        let out = demo();
        let mut kinds = BTreeSet::new();
        for r in out.iter().chain(&expand(&parse(&with_spot_pool())).unwrap()) {
            let allowed = vocabulary
                .get(&r.address.kind)
                .unwrap_or_else(|| panic!("{} is not a documented type", r.address.kind));
            kinds.insert(r.address.kind.clone());
            let mut keys = Vec::new();
            for (attr, value) in &r.attrs {
                keys.push(attr.clone());
                if !attr.ends_with("tags") {
                    nested_keys(value, &mut keys);
                }
            }
            for key in keys {
                assert!(allowed.contains(&key), "{}: `{key}` is not in docs/aws-resources.md", r.address);
            }
        }
        assert_eq!(kinds.len(), vocabulary.len(), "every documented type is used by the demo");
    }

    /// The identifiers inside `...` spans (`{ target, interval }` gives
    /// both words).
    fn backticked(text: &str) -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .flat_map(|span| span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
            .filter(|word| !word.is_empty())
            .map(String::from)
            .collect()
    }

    fn nested_keys(value: &Value, keys: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    keys.push(k.clone());
                    nested_keys(v, keys);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| nested_keys(v, keys)),
            _ => {}
        }
    }

    #[test]
    fn subnets_are_carved_from_the_vpc_without_overlap() {
        let out = demo();
        let cidr = |a: &str| find(&out, a).attrs["cidr_block"].as_str().unwrap().to_string();
        assert_eq!(cidr("aws_vpc.main"), "10.0.0.0/16");
        assert_eq!(cidr("aws_subnet.public[us-east-1a]"), "10.0.0.0/19");
        assert_eq!(cidr("aws_subnet.public[us-east-1c]"), "10.0.64.0/19");
        assert_eq!(cidr("aws_subnet.private[us-east-1a]"), "10.0.96.0/19");
        assert_eq!(cidr("aws_subnet.private[us-east-1c]"), "10.0.160.0/19");
        let public = find(&out, "aws_subnet.public[us-east-1b]");
        assert_eq!(public.attrs["map_public_ip_on_launch"], true);
        assert_eq!(public.attrs["availability_zone"], "us-east-1b");
        assert_eq!(find(&out, "aws_subnet.private[us-east-1b]").attrs["map_public_ip_on_launch"], false);
    }

    #[test]
    fn private_route_tables_go_through_their_own_azs_nat() {
        let out = demo();
        for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
            let table = find(&out, &format!("aws_route_table.private[{az}]"));
            let routes = table.attrs["routes"].as_array().unwrap();
            assert_eq!(routes.len(), 1);
            assert_eq!(routes[0]["destination_cidr_block"], "0.0.0.0/0");
            assert_eq!(routes[0]["nat_gateway_id"], format!("${{aws_nat_gateway.main[{az}].id}}"));
            assert_eq!(table.attrs["subnet_ids"], serde_json::json!([format!("${{aws_subnet.private[{az}].id}}")]));
            let nat = find(&out, &format!("aws_nat_gateway.main[{az}]"));
            assert_eq!(nat.attrs["subnet_id"], format!("${{aws_subnet.public[{az}].id}}"));
            assert_eq!(nat.attrs["allocation_id"], format!("${{aws_eip.nat[{az}].id}}"));
            assert_eq!(nat.depends_on, vec![Address::new("aws_internet_gateway", "main")]);
        }
        let public = find(&out, "aws_route_table.public");
        assert_eq!(public.attrs["routes"][0]["gateway_id"], "${aws_internet_gateway.main.id}");
        assert_eq!(public.attrs["subnet_ids"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn control_plane_spreads_round_robin_over_its_azs() {
        let spec = demo_with(
            "size = 3\ninstance_type = \"m5.large\"",
            "size = 5\ninstance_type = \"m5.large\"\nazs = [\"us-east-1c\", \"us-east-1a\"]",
        );
        let out = expand(&parse(&spec)).unwrap();
        let subnets: Vec<String> = (0..5)
            .map(|i| {
                find(&out, &format!("aws_instance.control_plane[{i}]")).attrs["subnet_id"].as_str().unwrap().to_string()
            })
            .collect();
        let az = |a: &str| format!("${{aws_subnet.private[{a}].id}}");
        assert_eq!(subnets, [az("us-east-1c"), az("us-east-1a"), az("us-east-1c"), az("us-east-1a"), az("us-east-1c")]);
        let first = find(&out, "aws_instance.control_plane[0]");
        assert_eq!(
            first.depends_on,
            vec![
                Address::keyed("aws_route_table", "private", "us-east-1c"),
                secrets::address(bootstrap::SecretKind::Pki),
                secrets::address(bootstrap::SecretKind::Join),
                secrets::address(bootstrap::SecretKind::InitLock),
            ]
        );
        assert_eq!(first.attrs["associate_public_ip_address"], false);
        assert_eq!(
            first.attrs["vpc_security_group_ids"],
            serde_json::json!(["${aws_security_group.control_plane.id}"])
        );
        assert_eq!(first.attrs["ami"], "auto");
        assert_eq!(first.attrs["root_volume_size_gib"], 60);
        assert_eq!(first.attrs["key_name"], "ops");
        // Each node registers itself and rolls with the others, one at a time.
        for i in 0..5 {
            let node = find(&out, &format!("aws_instance.control_plane[{i}]"));
            assert_eq!(node.attrs["load_balancer"], "${aws_elb.apiserver.id}");
            assert_eq!(node.rolling_group.as_deref(), Some(compute::CONTROL_PLANE_ROLLING_GROUP));
        }
        let elb = find(&out, "aws_elb.apiserver");
        assert!(elb.attrs.get("instances").is_none(), "the load balancer does not list its nodes");
        assert!(find(&out, "aws_instance.bastion").rolling_group.is_none());
        // The load balancer still spans every placement AZ.
        assert_eq!(elb.attrs["subnets"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn the_api_load_balancer_listens_and_checks_on_the_api_port() {
        let out = expand(&parse(&format!("{}\n[api_server]\nport = 8443\n", fixtures::DEMO))).unwrap();
        let elb = find(&out, "aws_elb.apiserver");
        assert_eq!(elb.attrs["name"], "demo-apiserver");
        assert_eq!(
            elb.attrs["listeners"],
            serde_json::json!([{"lb_port": 8443, "lb_protocol": "TCP", "instance_port": 8443, "instance_protocol": "TCP"}])
        );
        assert_eq!(
            elb.attrs["health_check"],
            serde_json::json!({"target": "TCP:8443", "interval": 10, "timeout": 5, "healthy_threshold": 2, "unhealthy_threshold": 2})
        );
        assert_eq!(find(&out, "aws_security_group.apiserver_lb").attrs["ingress"][0]["from_port"], 8443);
        assert_eq!(find(&out, "aws_security_group_rule.control_plane_api_from_node").attrs["to_port"], 8443);
    }

    #[test]
    fn long_cluster_names_hash_the_load_balancer_name() {
        let spec = demo_with("name = \"demo\"", "name = \"platform-production-eu-west-blue\"");
        let out = expand(&parse(&spec)).unwrap();
        let name = find(&out, "aws_elb.apiserver").attrs["name"].as_str().unwrap().to_string();
        assert!(name.len() <= 32, "{name}");
        assert_eq!(name, "platform-production-eu-e3825b06");
    }

    #[test]
    fn security_groups_form_no_cycle() {
        let out = demo();
        for r in out.iter().filter(|r| r.address.kind == "aws_security_group") {
            let refs: Vec<String> =
                r.attrs.values().flat_map(|v| references(v).unwrap()).map(|x| x.target.kind).collect();
            assert!(
                refs.iter().all(|kind| kind != "aws_security_group"),
                "{} refers to another group inline",
                r.address
            );
        }
        let bastion = find(&out, "aws_security_group.bastion");
        assert_eq!(bastion.attrs["name"], "demo-bastion");
        assert_eq!(bastion.attrs["ingress"][0]["cidr_blocks"], serde_json::json!(["203.0.113.0/24"]));
        assert_eq!(bastion.attrs["ingress"][0]["from_port"], 22);
        assert!(!find(&out, "aws_security_group.node").attrs.contains_key("ingress"));
        let rule = find(&out, "aws_security_group_rule.node_all_from_control_plane");
        assert_eq!(rule.attrs["security_group_id"], "${aws_security_group.node.id}");
        assert_eq!(rule.attrs["source_security_group_id"], "${aws_security_group.control_plane.id}");
        assert_eq!(rule.attrs["protocol"], "-1");
        let etcd = find(&out, "aws_security_group_rule.control_plane_etcd_from_self");
        assert_eq!((etcd.attrs["from_port"].clone(), etcd.attrs["to_port"].clone()), (2379.into(), 2380.into()));
    }

    #[test]
    fn the_bastion_sits_in_the_first_public_subnet() {
        let out = demo();
        let bastion = find(&out, "aws_instance.bastion");
        assert_eq!(bastion.attrs["subnet_id"], "${aws_subnet.public[us-east-1a].id}");
        assert_eq!(bastion.attrs["associate_public_ip_address"], true);
        assert_eq!(bastion.attrs["instance_type"], "t3.micro");
        assert_eq!(bastion.depends_on, vec![Address::new("aws_route_table", "public")]);
    }

    #[test]
    fn calico_peers_with_the_control_plane_and_another_cni_opens_nothing_more() {
        let out = demo();
        let rule = |out: &[Resource], name: &str| {
            out.iter().find(|r| r.address == Address::new("aws_security_group_rule", name)).map(|r| r.attrs.clone())
        };
        let bgp = rule(&out, "control_plane_bgp_from_node").unwrap();
        assert_eq!(
            (bgp["protocol"].clone(), bgp["from_port"].clone(), bgp["to_port"].clone()),
            (json!("tcp"), json!(179), json!(179))
        );
        assert_eq!(bgp["source_security_group_id"], "${aws_security_group.node.id}");
        assert_eq!(bgp["security_group_id"], "${aws_security_group.control_plane.id}");
        let ipip = rule(&out, "control_plane_ipip_from_node").unwrap();
        assert_eq!(ipip["protocol"], "4");
        assert_eq!(ipip["source_security_group_id"], "${aws_security_group.node.id}");

        let cilium = edit(
            &demo_with("name = \"calico\"", "name = \"cilium\""),
            "mtu = 1440",
            "mtu = 1440, manifest_url = \"https://example.com/cilium.yaml\"",
        );
        let out = expand(&parse(&cilium)).unwrap();
        assert!(
            rule(&out, "control_plane_bgp_from_node").is_none() && rule(&out, "control_plane_ipip_from_node").is_none()
        );
    }

    #[test]
    fn a_disabled_bastion_leaves_no_trace() {
        let out = expand(&parse(&demo_with("[bastion]", "[bastion]\nenabled = false"))).unwrap();
        let addrs = addresses(&out);
        assert!(addrs.iter().all(|a| !a.contains("bastion")), "{addrs:?}");
        assert_eq!(out.len(), 43 - 4);
    }

    fn with_spot_pool() -> String {
        format!(
            "{}\n[[node_pool]]\nname = \"spot\"\nsize = 2\nmax = 10\ninstance_type = \"m5.xlarge\"\nspot = {{ max_price_percent = 60, on_demand_price = 0.192 }}\n",
            fixtures::DEMO
        )
    }

    #[test]
    fn spot_pools_say_their_max_price_and_where_the_on_demand_price_came_from() {
        assert_eq!(spot_pools(&parse(fixtures::DEMO)).unwrap(), []);
        let from_table = with_spot_pool()
            .replace(", on_demand_price = 0.192", "")
            .replace("max = 10\n", "max = 10\nazs = [\"us-east-1b\"]\n");
        let [pool] = &spot_pools(&parse(&from_table)).unwrap()[..] else { panic!("one spot pool") };
        assert_eq!(
            (pool.pool.as_str(), pool.instance_type.as_str(), pool.region.as_str()),
            ("spot", "m5.xlarge", "us-east-1")
        );
        assert_eq!(pool.azs, ["us-east-1b"]);
        assert_eq!((pool.max_price.as_str(), pool.max_price_percent, pool.on_demand_price), ("0.1152", 60, 0.192));
        assert_eq!(pool.on_demand_source, PriceSource::Table { as_of: prices::table().as_of.clone() });
        let [given] = &spot_pools(&parse(&with_spot_pool())).unwrap()[..] else { panic!("one spot pool") };
        assert_eq!(given.on_demand_source, PriceSource::Spec);
        assert_eq!(given.azs, ["us-east-1a", "us-east-1b", "us-east-1c"]);
    }

    /// A spec parses offline (validate, graph, policy, a saved plan's spec):
    /// a spot pool whose price neither the spec nor the table gives has its
    /// max price unknown; with the prices looked up for a run, the pool
    /// takes the Price List API's, and the spec keeps them for the cost.
    #[test]
    fn a_spec_parses_offline_then_with_the_prices_of_the_run() {
        let text = with_spot_pool().replace(", on_demand_price = 0.192", "").replace("us-east-1", "af-south-1");
        let source = || skyplan_engine::Source { path: "spec.toml".into(), text: text.clone() };
        let offline = AwsSpec::parse(source()).unwrap();
        let template = find(&offline.resources, "aws_launch_template.pool[spot]");
        assert_eq!(template.attrs["spot_max_price"], skyplan_engine::UNKNOWN);
        assert_eq!(offline.spot_pools[0].on_demand_source, PriceSource::Pending);
        assert_eq!(prices::needed(&offline.spec.file), [("af-south-1".to_string(), "m5.xlarge".to_string())]);

        let mut looked_up = prices::LookedUp { online: true, as_of: "2026-12-02".into(), ..Default::default() };
        let online = AwsSpec::parse_with(source(), &looked_up).unwrap_err().to_string();
        assert!(
            online.contains("node_pool[") && online.contains("has no price for m5.xlarge in af-south-1"),
            "{online}"
        );
        looked_up.prices.insert(("af-south-1".into(), "m5.xlarge".into()), 0.25);
        let priced = AwsSpec::parse_with(source(), &looked_up).unwrap();
        let template = find(&priced.resources, "aws_launch_template.pool[spot]");
        assert_eq!(template.attrs["spot_max_price"], "0.15");
        assert_eq!(priced.spot_pools[0].on_demand_source, PriceSource::PriceList);
        assert_eq!(priced.prices, looked_up);
    }

    #[test]
    fn worker_pools_are_a_launch_template_and_an_auto_scaling_group() {
        let out = expand(&parse(&with_spot_pool())).unwrap();
        let template = find(&out, "aws_launch_template.pool[spot]");
        assert_eq!(template.attrs["name"], "demo-spot");
        assert_eq!(template.attrs["spot_max_price"], "0.1152");
        assert_eq!(template.attrs["image_id"], "auto");
        assert_eq!(template.attrs["vpc_security_group_ids"], serde_json::json!(["${aws_security_group.node.id}"]));
        assert_eq!(template.attrs["instance_tags"], template.attrs["tags"]);
        let user_data = template.attrs["user_data"].as_str().unwrap();
        assert!(user_data.contains("readonly ROLE='worker'\n"), "{user_data}");
        assert!(user_data.contains("node-labels: \"skyplan.io/pool=spot\""), "{user_data}");
        assert!(!find(&out, "aws_launch_template.pool[worker]").attrs.contains_key("spot_max_price"));
        let group = find(&out, "aws_autoscaling_group.pool[spot]");
        assert_eq!(group.attrs["name"], "demo-spot");
        assert_eq!(group.attrs["launch_template_id"], "${aws_launch_template.pool[spot].id}");
        assert_eq!(group.attrs["launch_template_version"], "${aws_launch_template.pool[spot].latest_version}");
        assert_eq!(
            (group.attrs["min_size"].clone(), group.attrs["max_size"].clone(), group.attrs["desired_capacity"].clone()),
            (2.into(), 10.into(), 2.into())
        );
        assert_eq!(group.attrs["vpc_zone_identifier"].as_array().unwrap().len(), 3);
        assert_eq!(group.depends_on.len(), 4, "three route tables and control_plane[0]");
    }

    #[test]
    fn static_placement_uses_the_given_network() {
        let out = expand(&parse(fixtures::STATIC)).unwrap();
        for kind in ["aws_vpc", "aws_subnet", "aws_internet_gateway", "aws_eip", "aws_nat_gateway", "aws_route_table"] {
            assert!(out.iter().all(|r| r.address.kind != kind), "static placement emitted a {kind}");
        }
        assert_eq!(find(&out, "aws_security_group.node").attrs["vpc_id"], "vpc-0abc");
        let bastion = find(&out, "aws_instance.bastion");
        assert_eq!(bastion.attrs["subnet_id"], "subnet-pa");
        assert!(bastion.depends_on.is_empty());
        assert_eq!(find(&out, "aws_instance.control_plane[0]").attrs["subnet_id"], "subnet-qa");
        assert_eq!(find(&out, "aws_elb.apiserver").attrs["subnets"], serde_json::json!(["subnet-pa", "subnet-pb"]));
        let group = find(&out, "aws_autoscaling_group.pool[w]");
        assert_eq!(group.attrs["vpc_zone_identifier"], serde_json::json!(["subnet-qb"]));
        assert_eq!(group.depends_on, vec![Address::keyed("aws_instance", "control_plane", "0")]);
        for r in &out {
            let refs: Vec<_> = r.attrs.values().flat_map(|v| references(v).unwrap()).collect();
            assert!(refs.iter().all(|x| !["aws_vpc", "aws_subnet"].contains(&x.target.kind.as_str())), "{}", r.address);
        }
    }

    /// Each examples/*.toml with its text.
    fn examples() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut found: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .map(|path| {
                (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn the_examples_expand() {
        let examples = examples();
        let names: Vec<&str> = examples.iter().map(|(name, _)| name.as_str()).collect();
        for expected in ["dynamic-cluster.toml", "gpu-pool.toml", "spot-pool.toml", "static-placement.toml"] {
            assert!(names.contains(&expected), "examples/{expected} is missing: {names:?}");
        }
        for (name, text) in &examples {
            let out = expand(&parse(text)).unwrap_or_else(|e| panic!("examples/{name}: {e:?}"));
            assert!(!out.is_empty(), "examples/{name}");
            assert!(!text.contains("ami ="), "examples/{name}: leave ami out, the provider resolves it");
            if name == "dynamic-cluster.toml" {
                assert_eq!(out.len(), 43, "its comment says 43 resources");
            }
        }
    }
}
