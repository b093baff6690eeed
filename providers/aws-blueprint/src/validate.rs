//! Validation: the spec's cluster tables checked against the rules of the
//! contract (and of AWS), and turned into a [`Cluster`] with defaults applied.
//!
//! Every problem is collected, not just the first, as a [`SpecError`] whose
//! key is the path of the offending value (`node_pool[1].size`,
//! `placement.azs[2]`; for a missing key, the path it should have) and whose
//! help line says what to do. The CLI turns the key into file:line:column.
//!
//! What is not checked here: whether the VPC, subnets, key pair or AMI exist
//! on AWS (that needs the cloud: the AWS provider's and `preflight`'s job),
//! and raw `[resource.*]` tables (the engine's).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{self as spec, NodePool, SpecFile};
use serde_json::Value;
use skyplan_engine::{Attrs, SpecError};

use crate::cidr::{CidrError, Ipv4Cidr};
use crate::cluster::*;
use crate::prices;
use crate::tags;

/// The smallest subnet the blueprint carves: a classic load balancer needs
/// subnets of at least /27 (with 8 free addresses).
pub const SMALLEST_SUBNET_PREFIX: u32 = 27;
/// AWS's largest VPC block.
pub const LARGEST_VPC_PREFIX: u8 = 16;
/// Root volume bounds in GiB: the OS images' own snapshots need 8, and a gp3
/// volume holds at most 16 TiB.
pub const DISK_GIB: std::ops::RangeInclusive<u32> = 8..=16384;
/// Pool names become node label values, which Kubernetes limits to 63.
pub const POOL_NAME_MAX: usize = 63;
/// Cluster names prefix every AWS name and tag the blueprint derives.
pub const CLUSTER_NAME_MAX: usize = 32;
/// Addresses AWS keeps in every subnet: the first four and the last (Amazon
/// VPC User Guide, "Subnet CIDR blocks").
pub const SUBNET_RESERVED_ADDRESSES: u64 = 5;
/// An auto scaling group's sizes are 32-bit integers in the Auto Scaling API
/// (CreateAutoScalingGroup: MinSize, MaxSize, DesiredCapacity).
pub const AUTOSCALING_SIZE_MAX: u32 = i32::MAX as u32;

// The names derived from the cluster's and a pool's names are within AWS's
// limits for every valid cluster and pool name, so they need no check of
// their own (`tests::the_longest_names_and_most_tags_fit_every_kinds_limits`).
const _: () = assert!(CLUSTER_NAME_MAX + 1 + POOL_NAME_MAX <= crate::names::LAUNCH_TEMPLATE_NAME_MAX);
const _: () = assert!(CLUSTER_NAME_MAX + 1 + POOL_NAME_MAX <= crate::names::AUTOSCALING_GROUP_NAME_MAX);
// Every resource carries the cluster's tags; the load balancer takes the
// fewest, so capping the cluster's tags by its room caps them for all.
const _: () = assert!(tags::CLASSIC_ELB_MAX_TAGS <= tags::RESOURCE_MAX_TAGS);

/// Check the cluster tables of `spec` and build the cluster they describe.
/// `Ok(None)` when the spec has no cluster tables at all.
pub fn validate(spec: &SpecFile) -> Result<Option<Cluster>, Vec<SpecError>> {
    validate_with(spec, &prices::LookedUp::default())
}

/// [`validate`], with on-demand prices looked up for this run.
pub fn validate_with(spec: &SpecFile, looked_up: &prices::LookedUp) -> Result<Option<Cluster>, Vec<SpecError>> {
    let mut check = Check { looked_up: looked_up.clone(), ..Check::default() };
    let Some(cluster) = &spec.cluster else {
        check.orphan_tables(spec);
        return check.finish(None);
    };
    let region_ok = check.cluster(cluster);
    if let Some(account) = &spec.account {
        check.account(account);
    }
    let azs = check.azs(spec.placement.as_ref(), &cluster.region, region_ok);
    let placement = check.placement(spec.placement.as_ref(), &azs);
    let bastion = check.bastion(spec.bastion.as_ref());
    let api_port = check.api_port(spec.api_server.as_ref());
    // Prices are looked up by region only when the region is valid (it
    // already has its error otherwise).
    let region = region_ok.then_some(cluster.region.as_str());
    let (control_plane, workers) = check.node_pools(&spec.node_pool, &azs, region);
    let profile = spec.profile.as_ref().map(|p| check.profile(p));
    if let (Some(Placement::Dynamic { vpc_cidr }), Some(control_plane)) = (&placement, &control_plane) {
        check.subnet_room(*vpc_cidr, &azs, control_plane, &workers);
    }

    let built = match (placement, control_plane) {
        (Some(placement), Some(control_plane)) => Some(Cluster {
            name: cluster.name.clone(),
            region: cluster.region.clone(),
            ssh_key_name: cluster.ssh_key_name.clone(),
            tags: cluster.tags.clone(),
            azs,
            placement,
            bastion,
            api_port,
            control_plane,
            workers,
            profile,
        }),
        _ => None,
    };
    check.finish(built)
}

/// The errors found so far.
#[derive(Default)]
struct Check {
    errors: Vec<SpecError>,
    looked_up: prices::LookedUp,
}

impl Check {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>, help: impl Into<String>) {
        self.errors.push(SpecError::new(key, message).with_help(help));
    }

    /// `Ok(value)` when nothing failed. A part that could not be built always
    /// recorded an error, so `value` is only `None` then (or when there is
    /// no cluster at all).
    fn finish(self, value: Option<Cluster>) -> Result<Option<Cluster>, Vec<SpecError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }

    /// Cluster tables in a spec without `[cluster]`.
    fn orphan_tables(&mut self, spec: &SpecFile) {
        let present = [
            ("account", spec.account.is_some()),
            ("placement", spec.placement.is_some()),
            ("bastion", spec.bastion.is_some()),
            ("api_server", spec.api_server.is_some()),
            ("profile", spec.profile.is_some()),
            ("node_pool", !spec.node_pool.is_empty()),
        ];
        for (table, _) in present.iter().filter(|(_, present)| *present) {
            let written = if *table == "node_pool" { "[[node_pool]]".to_string() } else { format!("[{table}]") };
            self.fail(
                *table,
                format!("{written} describes a cluster, but the spec has no [cluster] table"),
                format!("add [cluster] with name and region, or remove {written} (a spec of only [resource.*] tables needs no [cluster])"),
            );
        }
    }

    /// `[cluster]`; returns whether the region is valid (AZs are checked
    /// against it only then, to avoid one error per AZ).
    fn cluster(&mut self, cluster: &spec::Cluster) -> bool {
        if !is_name(&cluster.name, CLUSTER_NAME_MAX) {
            self.fail(
                "cluster.name",
                format!("{:?} is not a valid cluster name", cluster.name),
                "use 1 to 32 characters: lowercase letters, digits and `-`, starting with a letter (it prefixes AWS names and tags)",
            );
        } else if crate::names::security_group(&cluster.name, "node").starts_with("sg-") {
            self.fail(
                "cluster.name",
                format!(
                    "{:?} would name the cluster's security groups `{}`: AWS refuses security group names \
                     starting with `sg-` (Amazon EC2 API Reference, CreateSecurityGroup, GroupName)",
                    cluster.name,
                    crate::names::security_group(&cluster.name, "node")
                ),
                "choose a cluster name that is not `sg` and does not start with `sg-`",
            );
        }
        let region_ok = is_region(&cluster.region);
        if !region_ok {
            self.fail(
                "cluster.region",
                format!("{:?} is not an AWS region", cluster.region),
                "write a region code such as us-east-1 or eu-central-1",
            );
        }
        if let Some(key) = &cluster.ssh_key_name {
            if key.trim().is_empty() || key.len() > 255 {
                self.fail(
                    "cluster.ssh_key_name",
                    "must name an EC2 key pair (1 to 255 characters)",
                    "give the name of a key pair that exists in the region, or remove ssh_key_name",
                );
            }
        }
        for (key, value) in &cluster.tags {
            let path = format!("cluster.tags.{key}");
            if let Some(why) = tags::reserved(key) {
                self.fail(path, format!("tag key {key:?} is reserved"), format!("{why}; choose another key"));
            } else if key.is_empty() || key.chars().count() > 128 {
                self.fail(path, "tag keys must be 1 to 128 characters", "shorten the key");
            } else if value.chars().count() > 256 {
                self.fail(path, "tag values may be at most 256 characters", "shorten the value");
            }
        }
        // Every cluster has the classic API load balancer, which carries the
        // cluster's tags and takes the fewest (10, against 50 elsewhere):
        // found here, not after half the cluster is made.
        let room = tags::CLASSIC_ELB_MAX_TAGS - tags::CLASSIC_ELB_BLUEPRINT_TAGS;
        if cluster.tags.len() > room {
            self.fail(
                "cluster.tags",
                format!(
                    "{} tags is too many: the API load balancer would carry {}",
                    cluster.tags.len(),
                    cluster.tags.len() + tags::CLASSIC_ELB_BLUEPRINT_TAGS
                ),
                format!(
                    "a classic load balancer takes at most {} tags (Elastic Load Balancing API Reference, \
                     AddTags; its user guide says 50, the safe reading is taken) and the blueprint adds {} \
                     (Name, two ownership tags, skyplan:address): keep at most {room}",
                    tags::CLASSIC_ELB_MAX_TAGS,
                    tags::CLASSIC_ELB_BLUEPRINT_TAGS
                ),
            );
        }
        region_ok
    }

    fn account(&mut self, account: &spec::Account) {
        if account.profile.as_deref().is_some_and(|p| p.trim().is_empty()) {
            self.fail(
                "account.profile",
                "is empty",
                "name a profile from ~/.aws/config, or remove profile to use the SDK's default chain",
            );
        }
        match (&account.role_arn, &account.external_id) {
            (Some(arn), external_id) => {
                if !is_role_arn(arn) {
                    self.fail(
                        "account.role_arn",
                        format!("{arn:?} is not an IAM role ARN"),
                        "write it as arn:aws:iam::123456789012:role/NAME (copy it from the role's page in the IAM console)",
                    );
                }
                match external_id {
                    None => self.fail(
                        "account.external_id",
                        "role_arn needs external_id",
                        "set external_id to the external ID that the role's trust policy requires",
                    ),
                    Some(id) if !is_external_id(id) => self.fail(
                        "account.external_id",
                        "must be 2 to 1224 characters of letters, digits and +=,.@:/-",
                        "copy the external ID from the role's trust policy",
                    ),
                    Some(_) => {}
                }
            }
            (None, Some(_)) => self.fail(
                "account.external_id",
                "external_id is only used with role_arn",
                "add the role_arn to assume, or remove external_id",
            ),
            (None, None) => {}
        }
    }

    /// `placement.azs` without repeats, in order. An AZ outside the region is
    /// reported here and kept, so that pools and subnets naming it do not
    /// report it again (no cluster is built while any error stands).
    fn azs(&mut self, placement: Option<&spec::Placement>, region: &str, region_ok: bool) -> Vec<String> {
        let example_region = if region_ok { region } else { "us-east-1" };
        let Some(placement) = placement else {
            self.fail(
                "placement",
                "a cluster needs [placement] with at least one AZ",
                format!("add [placement] with azs = [\"{example_region}a\"]"),
            );
            return Vec::new();
        };
        if placement.azs.is_empty() {
            self.fail(
                "placement.azs",
                "lists no availability zone",
                format!("list at least one AZ, e.g. azs = [\"{example_region}a\", \"{example_region}b\"]"),
            );
        }
        let mut azs: Vec<String> = Vec::new();
        for (i, az) in placement.azs.iter().enumerate() {
            let key = format!("placement.azs[{i}]");
            if region_ok && !is_az_of(az, region) {
                self.fail(
                    key,
                    format!("{az:?} is not an availability zone of {region}"),
                    format!("AZ names are the region followed by a letter, e.g. {region}a"),
                );
            } else if let Some(first) = placement.azs[..i].iter().position(|a| a == az) {
                self.fail(key, format!("{az:?} repeats placement.azs[{first}]"), "list each AZ once");
            } else {
                azs.push(az.clone());
            }
        }
        azs
    }

    fn placement(&mut self, placement: Option<&spec::Placement>, azs: &[String]) -> Option<Placement> {
        let placement = placement?;
        match placement.mode {
            spec::PlacementMode::Dynamic => {
                if placement.vpc_id.is_some() {
                    self.fail(
                        "placement.vpc_id",
                        "vpc_id is for static placement",
                        "remove vpc_id to let the blueprint create the VPC, or set mode = \"static\" to use an existing one",
                    );
                }
                if !placement.subnet.is_empty() {
                    self.fail(
                        "placement.subnet[0]",
                        "[[placement.subnet]] is for static placement",
                        "remove the [[placement.subnet]] tables to let the blueprint create subnets, or set mode = \"static\"",
                    );
                }
                let vpc_cidr = self.vpc_cidr(placement.vpc_cidr.as_deref(), azs.len())?;
                Some(Placement::Dynamic { vpc_cidr })
            }
            spec::PlacementMode::Static => self.static_placement(placement, azs),
        }
    }

    fn vpc_cidr(&mut self, written: Option<&str>, az_count: usize) -> Option<Ipv4Cidr> {
        let key = "placement.vpc_cidr";
        let text = written.unwrap_or(DEFAULT_VPC_CIDR);
        let cidr = self.cidr(key, text)?;
        if cidr.prefix() < LARGEST_VPC_PREFIX {
            self.fail(
                key,
                format!("{cidr} is larger than AWS allows for a VPC (/16)"),
                "use a /16 or smaller block, e.g. 10.0.0.0/16",
            );
            return None;
        }
        let subnets = 2 * az_count;
        if subnets > 0 && cidr.split_prefix(subnets) > SMALLEST_SUBNET_PREFIX {
            let needed = SMALLEST_SUBNET_PREFIX - (cidr.split_prefix(subnets) - u32::from(cidr.prefix()));
            self.fail(
                key,
                format!("{cidr} is too small for {subnets} subnets (a public and a private one in each of {az_count} AZs) of at least /{SMALLEST_SUBNET_PREFIX}, the classic load balancer's minimum"),
                format!("use a /{needed} or larger block (a smaller prefix number)"),
            );
            return None;
        }
        Some(cidr)
    }

    fn cidr(&mut self, key: impl Into<String>, text: &str) -> Option<Ipv4Cidr> {
        match text.parse::<Ipv4Cidr>() {
            Ok(cidr) => Some(cidr),
            Err(err) => {
                let help = match &err {
                    CidrError::Malformed => "write an IPv4 network as A.B.C.D/N, e.g. 10.0.0.0/16".to_string(),
                    CidrError::HostBitsSet { canonical } => format!("write {canonical}"),
                };
                self.fail(key, format!("{text:?} {err}"), help);
                None
            }
        }
    }

    fn static_placement(&mut self, placement: &spec::Placement, azs: &[String]) -> Option<Placement> {
        if placement.vpc_cidr.is_some() {
            self.fail(
                "placement.vpc_cidr",
                "vpc_cidr is for dynamic placement; static placement uses the existing VPC's",
                "remove vpc_cidr",
            );
        }
        let vpc_id = match &placement.vpc_id {
            None => {
                self.fail(
                    "placement.vpc_id",
                    "static placement needs vpc_id",
                    "set vpc_id = \"vpc-...\" to the existing VPC, or use mode = \"dynamic\"",
                );
                None
            }
            Some(id) if !is_aws_id(id, "vpc") => {
                self.fail(
                    "placement.vpc_id",
                    format!("{id:?} is not a VPC id"),
                    "write the id as AWS shows it, e.g. vpc-0a1b2c3d4e5f67890",
                );
                None
            }
            Some(id) => Some(id.clone()),
        };
        let mut subnets = BTreeMap::new();
        let mut seen_ids: BTreeMap<&str, String> = BTreeMap::new();
        for (i, subnet) in placement.subnet.iter().enumerate() {
            let key = format!("placement.subnet[{i}]");
            let mut ok = true;
            if !azs.contains(&subnet.az) {
                self.fail(
                    format!("{key}.az"),
                    format!("{:?} is not in placement.azs", subnet.az),
                    "add the AZ to placement.azs, or remove this subnet",
                );
                ok = false;
            } else if subnets.contains_key(&subnet.az) {
                self.fail(
                    format!("{key}.az"),
                    format!("a second [[placement.subnet]] for {}", subnet.az),
                    "give each AZ exactly one [[placement.subnet]]",
                );
                ok = false;
            }
            for (field, id) in [("public", &subnet.public), ("private", &subnet.private)] {
                let field_key = format!("{key}.{field}");
                if !is_aws_id(id, "subnet") {
                    self.fail(
                        field_key,
                        format!("{id:?} is not a subnet id"),
                        "write the id as AWS shows it, e.g. subnet-0a1b2c3d4e5f67890",
                    );
                    ok = false;
                } else if let Some(first) = seen_ids.get(id.as_str()) {
                    self.fail(
                        field_key,
                        format!("{id} is already used by {first}"),
                        "each AZ needs its own public and its own private subnet",
                    );
                    ok = false;
                } else {
                    seen_ids.insert(id, format!("placement.subnet[{i}].{field}"));
                }
            }
            if ok {
                subnets.insert(
                    subnet.az.clone(),
                    StaticSubnets { public: subnet.public.clone(), private: subnet.private.clone() },
                );
            }
        }
        for (i, az) in placement.azs.iter().enumerate() {
            let repeat = placement.azs[..i].contains(az);
            if !repeat && !placement.subnet.iter().any(|s| &s.az == az) {
                self.fail(
                    format!("placement.azs[{i}]"),
                    format!("no [[placement.subnet]] gives the subnets of {az}"),
                    format!("add [[placement.subnet]] with az = \"{az}\", public = \"subnet-...\" and private = \"subnet-...\""),
                );
            }
        }
        Some(Placement::Static { vpc_id: vpc_id?, subnets })
    }

    fn bastion(&mut self, bastion: Option<&spec::Bastion>) -> Option<Bastion> {
        let default = spec::Bastion::default();
        let bastion = bastion.unwrap_or(&default);
        if let Some(t) = &bastion.instance_type {
            self.instance_type("bastion.instance_type", t);
        }
        let ssh_cidrs: Vec<Ipv4Cidr> = bastion
            .ssh_cidrs
            .iter()
            .enumerate()
            .filter_map(|(i, text)| self.cidr(format!("bastion.ssh_cidrs[{i}]"), text))
            .collect();
        bastion.enabled.unwrap_or(true).then(|| Bastion {
            instance_type: bastion.instance_type.clone().unwrap_or_else(|| DEFAULT_BASTION_INSTANCE_TYPE.to_string()),
            ssh_cidrs,
        })
    }

    fn api_port(&mut self, api_server: Option<&spec::ApiServer>) -> u16 {
        match api_server.and_then(|a| a.port) {
            Some(0) => {
                self.fail(
                    "api_server.port",
                    "port 0 is not a TCP port",
                    format!("use a port from 1 to 65535; the default is {DEFAULT_API_PORT}"),
                );
                DEFAULT_API_PORT
            }
            Some(port) => port,
            None => DEFAULT_API_PORT,
        }
    }

    fn instance_type(&mut self, key: impl Into<String>, text: &str) {
        if !is_instance_type(text) {
            self.fail(
                key,
                format!("{text:?} is not an EC2 instance type"),
                "write FAMILY.SIZE, e.g. m5.large or g4dn.xlarge",
            );
        }
    }

    fn node_pools(
        &mut self,
        pools: &[NodePool],
        azs: &[String],
        region: Option<&str>,
    ) -> (Option<ControlPlane>, Vec<WorkerPool>) {
        let mut control_plane = None;
        let mut first_control_plane = None;
        let mut workers = Vec::new();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, pool) in pools.iter().enumerate() {
            let key = format!("node_pool[{i}]");
            if !is_name(&pool.name, POOL_NAME_MAX) {
                self.fail(
                    format!("{key}.name"),
                    format!("{:?} is not a valid pool name", pool.name),
                    format!("use 1 to {POOL_NAME_MAX} characters: lowercase letters, digits and `-`, starting with a letter"),
                );
            } else if let Some(first) = names.get(pool.name.as_str()) {
                self.fail(
                    format!("{key}.name"),
                    format!("{:?} repeats node_pool[{first}].name", pool.name),
                    "give each pool its own name",
                );
            } else {
                names.insert(&pool.name, i);
            }
            let common = self.pool(&key, pool, azs);
            if pool.control_plane {
                if let Some(first) = first_control_plane {
                    self.fail(
                        format!("{key}.control_plane"),
                        format!("a second control-plane pool (the first is node_pool[{first}])"),
                        "keep control_plane = true on exactly one pool",
                    );
                    continue;
                }
                first_control_plane = Some(i);
                control_plane = self.control_plane(&key, pool, common);
            } else if let Some(worker) = self.worker(&key, pool, common, region) {
                workers.push(worker);
            }
        }
        if first_control_plane.is_none() {
            self.fail(
                "node_pool",
                "the cluster has no control-plane pool",
                "add a [[node_pool]] with control_plane = true, size = 1, 3 or 5 and an instance_type",
            );
        }
        (control_plane, workers)
    }

    /// What every pool has; `None` when something in it is invalid.
    fn pool(&mut self, key: &str, pool: &NodePool, placement_azs: &[String]) -> Option<Pool> {
        let before = self.errors.len();
        self.instance_type(format!("{key}.instance_type"), &pool.instance_type);
        let azs = match &pool.azs {
            None => placement_azs.to_vec(),
            Some(list) if list.is_empty() => {
                self.fail(
                    format!("{key}.azs"),
                    "lists no availability zone",
                    "list some of placement.azs, or leave azs out to use all of them",
                );
                Vec::new()
            }
            Some(list) => {
                for (j, az) in list.iter().enumerate() {
                    if !placement_azs.contains(az) {
                        self.fail(
                            format!("{key}.azs[{j}]"),
                            format!("{az:?} is not in placement.azs"),
                            format!("use AZs from placement.azs ({})", placement_azs.join(", ")),
                        );
                    } else if let Some(first) = list[..j].iter().position(|a| a == az) {
                        self.fail(
                            format!("{key}.azs[{j}]"),
                            format!("{az:?} repeats {key}.azs[{first}]"),
                            "list each AZ once",
                        );
                    }
                }
                list.clone()
            }
        };
        let disk_gib = pool.disk_gib.unwrap_or(DEFAULT_DISK_GIB);
        if !DISK_GIB.contains(&disk_gib) {
            self.fail(
                format!("{key}.disk_gib"),
                format!("{disk_gib} GiB is not a usable root volume size"),
                format!("use {} to {} GiB; the default is {DEFAULT_DISK_GIB}", DISK_GIB.start(), DISK_GIB.end()),
            );
        }
        let ami = pool.ami.clone().unwrap_or_else(|| AUTO_AMI.to_string());
        if ami != AUTO_AMI && !is_aws_id(&ami, "ami") {
            self.fail(
                format!("{key}.ami"),
                format!("{ami:?} is not an AMI id"),
                "write an id such as ami-0a1b2c3d4e5f67890, or leave ami out to use the region's default image",
            );
        }
        if let Some(owner) = &pool.ami_owner {
            let ok = (owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()))
                || ["amazon", "self", "aws-marketplace"].contains(&owner.as_str());
            if !ok {
                self.fail(
                    format!("{key}.ami_owner"),
                    format!("{owner:?} is not an image owner"),
                    "use a 12-digit AWS account id (cluster-api's is 819546954734), amazon, self or aws-marketplace",
                );
            }
        }
        if let Some(name) = &pool.ami_name {
            if name.trim().is_empty() {
                self.fail(
                    format!("{key}.ami_name"),
                    "the image name format is empty",
                    format!("write a pattern such as {CAPA_AMI_NAME:?}, or leave ami_name out"),
                );
            }
        }
        if let Some(profile) = &pool.instance_profile {
            if !is_iam_name(profile) {
                self.fail(
                    format!("{key}.instance_profile"),
                    format!("{profile:?} is not an IAM instance profile name"),
                    "write the name of an existing instance profile: 1 to 128 letters, digits and +=,.@_-, or leave \
                     instance_profile out to use the shared one of the pool's role",
                );
            }
        }
        (self.errors.len() == before).then(|| Pool {
            name: pool.name.clone(),
            size: pool.size,
            instance_type: pool.instance_type.clone(),
            azs,
            disk_gib,
            ami,
            ami_owner: pool.ami_owner.clone().unwrap_or_else(|| CAPA_AMI_OWNER.to_string()),
            ami_name: pool.ami_name.clone().unwrap_or_else(|| CAPA_AMI_NAME.to_string()),
            own_instance_profile: pool.instance_profile.clone(),
        })
    }

    fn control_plane(&mut self, key: &str, pool: &NodePool, common: Option<Pool>) -> Option<ControlPlane> {
        if ![1, 3, 5].contains(&pool.size) {
            self.fail(
                format!("{key}.size"),
                format!("a control plane of {} nodes", pool.size),
                "use 1, 3 or 5: etcd keeps quorum with an odd number of members",
            );
        }
        for (field, set) in [("min", pool.min.is_some()), ("max", pool.max.is_some())] {
            if set {
                self.fail(
                    format!("{key}.{field}"),
                    "the control-plane pool has a fixed size",
                    format!("remove {field}; set size to 1, 3 or 5"),
                );
            }
        }
        if pool.spot.is_some() {
            self.fail(
                format!("{key}.spot"),
                "control-plane nodes run on demand",
                "remove spot, or put it on a worker pool",
            );
        }
        Some(ControlPlane { pool: common?, allow_workloads: pool.allow_workloads })
    }

    fn worker(&mut self, key: &str, pool: &NodePool, common: Option<Pool>, region: Option<&str>) -> Option<WorkerPool> {
        if pool.allow_workloads {
            self.fail(
                format!("{key}.allow_workloads"),
                "allow_workloads applies only to the control-plane pool",
                "remove it: worker pools always run workloads",
            );
        }
        let min = pool.min.unwrap_or(pool.size);
        let max = pool.max.unwrap_or(pool.size);
        if min > pool.size {
            self.fail(
                format!("{key}.min"),
                format!("min ({min}) is larger than size ({})", pool.size),
                "set min <= size <= max (min and max default to size)",
            );
        }
        if pool.size > max {
            self.fail(
                format!("{key}.max"),
                format!("max ({max}) is smaller than size ({})", pool.size),
                "set min <= size <= max (min and max default to size)",
            );
        } else if max > AUTOSCALING_SIZE_MAX {
            self.fail(
                format!("{key}.{}", if pool.max.is_some() { "max" } else { "size" }),
                format!(
                    "{max} nodes is more than an auto scaling group can hold: its sizes are 32-bit integers \
                     (Auto Scaling API Reference, CreateAutoScalingGroup, MaxSize: at most {AUTOSCALING_SIZE_MAX})"
                ),
                "use a smaller max, or split the nodes over several pools",
            );
        }
        let spot = match &pool.spot {
            None => None,
            Some(spot) => self.spot(key, spot, &pool.instance_type, region),
        };
        let spot_ok = pool.spot.is_none() || spot.is_some();
        let pool = common?;
        spot_ok.then_some(WorkerPool { pool, min, max, spot })
    }

    /// Dynamic placement: every node of a pool lives in the private subnet of
    /// one of its AZs, so each AZ's private subnet must have an address for
    /// the most nodes the pools can put there: the control-plane nodes
    /// placed there (round robin over its AZs) and, for each worker pool, its
    /// max spread evenly over its AZs (auto scaling balances its AZs),
    /// rounded up. Found here rather than when a scale-up fails with
    /// `InsufficientFreeAddressesInSubnet`. (The NAT gateways, the load
    /// balancer and the bastion use the public subnets.)
    fn subnet_room(
        &mut self,
        vpc_cidr: Ipv4Cidr,
        azs: &[String],
        control_plane: &ControlPlane,
        workers: &[WorkerPool],
    ) {
        let prefix = vpc_cidr.split_prefix(2 * azs.len());
        let Some(room) = 1u64.checked_shl(32 - prefix).map(|n| n.saturating_sub(SUBNET_RESERVED_ADDRESSES)) else {
            return; // too small a VPC: reported by vpc_cidr
        };
        for az in azs {
            let cp = &control_plane.pool;
            let mut demand: Vec<(String, u64)> = Vec::new();
            let placed = (0..cp.size).zip(cp.azs.iter().cycle()).filter(|(_, a)| *a == az).count() as u64;
            if placed > 0 {
                demand.push((format!("{} control-plane nodes", placed), placed));
            }
            for w in workers.iter().filter(|w| w.pool.azs.contains(az)) {
                let here = u64::from(w.max).div_ceil(w.pool.azs.len() as u64);
                demand.push((
                    format!("{here} of pool {:?} (max {} over {} AZs)", w.pool.name, w.max, w.pool.azs.len()),
                    here,
                ));
            }
            let total: u64 = demand.iter().map(|(_, n)| n).sum();
            if total > room {
                let parts: Vec<String> = demand.into_iter().map(|(what, _)| what).collect();
                self.fail(
                    "placement.vpc_cidr",
                    format!(
                        "{vpc_cidr} gives each private subnet a /{prefix}, {room} usable addresses (AWS keeps \
                         {SUBNET_RESERVED_ADDRESSES} in every subnet: Amazon VPC User Guide, Subnet CIDR blocks), \
                         but the pools can put {total} nodes in {az}'s: {}",
                        parts.join(", ")
                    ),
                    "use a larger placement.vpc_cidr (a smaller prefix number), or lower the pools' max",
                );
            }
        }
    }

    /// A spot pool's max price: `max_price_percent` of `on_demand_price`, or,
    /// when the spec gives none, of the on-demand price the caller looked up
    /// in the AWS Price List API for this run, else of the price table's for
    /// the instance type in the region. Offline (nothing looked up, as for
    /// `validate`) a price neither has is pending: the max price is unknown.
    fn spot(&mut self, key: &str, spot: &spec::Spot, instance_type: &str, region: Option<&str>) -> Option<Spot> {
        let before = self.errors.len();
        if !(1..=100).contains(&spot.max_price_percent) {
            self.fail(
                format!("{key}.spot.max_price_percent"),
                format!("{}% is not a percentage of the on-demand price", spot.max_price_percent),
                "use 1 to 100: the highest spot price to pay, as a percentage of the on-demand price",
            );
        }
        let table = prices::table();
        let price = match spot.on_demand_price {
            // The region has its own error when it is not valid.
            None => match (self.looked_up.get(region?, instance_type), table.on_demand(region?, instance_type)) {
                (Some(p), _) => Some((p, PriceSource::PriceList)),
                (None, Some(p)) => Some((p, PriceSource::Table { as_of: table.as_of_for(region?).to_string() })),
                (None, None) if !self.looked_up.online => Some((0.0, PriceSource::Pending)),
                (None, None) => {
                    self.fail(
                        format!("{key}.spot.on_demand_price"),
                        format!(
                            "skyplan's on-demand price table (as of {}) has no price for {instance_type} in {}",
                            table.as_of_for(region.unwrap_or_default()),
                            region.unwrap_or_default()
                        ),
                        format!(
                            "the AWS Price List API (pricing:GetProducts) gave none either; set on_demand_price to the instance type's Linux on-demand price in USD per hour in this region (e.g. 0.192 for m5.xlarge in us-east-1); the table covers {}",
                            table.regions().collect::<Vec<_>>().join(", ")
                        ),
                    );
                    None
                }
            },
            Some(p) if !(p.is_finite() && p > 0.0) => {
                self.fail(
                    format!("{key}.spot.on_demand_price"),
                    format!("{p} is not a price"),
                    "set the on-demand price in USD per hour, greater than 0 (e.g. 0.192)",
                );
                None
            }
            Some(p) => Some((p, PriceSource::Spec)),
        };
        if self.errors.len() != before {
            return None;
        }
        let (on_demand_price, on_demand_source) = price?;
        if on_demand_source == PriceSource::Pending {
            let max_price = skyplan_engine::UNKNOWN.to_string();
            return Some(Spot {
                max_price,
                max_price_percent: spot.max_price_percent,
                on_demand_price,
                on_demand_source,
            });
        }
        let max_price = spot_max_price(spot.max_price_percent, on_demand_price);
        if max_price == "0" {
            self.fail(
                format!("{key}.spot"),
                "the spot max price rounds to $0.0000 an hour",
                "raise max_price_percent or check on_demand_price",
            );
            return None;
        }
        Some(Spot { max_price, max_price_percent: spot.max_price_percent, on_demand_price, on_demand_source })
    }

    fn profile(&mut self, profile: &spec::Profile) -> Profile {
        if profile.name.trim().is_empty() {
            self.fail(
                "profile.name",
                "the profile has no name",
                "name the cluster profile, e.g. name = \"ubuntu-k8s\"",
            );
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, pack) in profile.pack.iter().enumerate() {
            let key = format!("profile.pack[{i}]");
            if pack.name.trim().is_empty() {
                self.fail(format!("{key}.name"), "the pack has no name", "name the pack, e.g. name = \"kubernetes\"");
            } else if let Some(first) = names.get(pack.name.as_str()) {
                self.fail(
                    format!("{key}.name"),
                    format!("{:?} repeats profile.pack[{first}].name", pack.name),
                    "give each pack its own name (overrides are keyed by it)",
                );
            } else {
                names.insert(&pack.name, i);
            }
            if pack.version.trim().is_empty() {
                self.fail(
                    format!("{key}.version"),
                    "the pack has no version",
                    "set the pack's version, e.g. version = \"1.30.4\"",
                );
            }
        }
        let known: BTreeSet<&str> = names.keys().copied().collect();
        for name in profile.overrides.keys() {
            if !known.contains(name.as_str()) {
                let list: Vec<&str> = known.iter().copied().collect();
                self.fail(
                    format!("profile.override.{name}"),
                    format!("overrides pack {name:?}, which the profile does not have"),
                    if list.is_empty() {
                        "add the pack as [[profile.pack]], or remove this override".to_string()
                    } else {
                        format!("override one of the profile's packs: {}", list.join(", "))
                    },
                );
            }
        }
        let mut packs: Vec<Pack> = profile
            .pack
            .iter()
            .enumerate()
            .map(|(i, pack)| {
                let mut values = pack.values.clone();
                if let Some(over) = profile.overrides.get(&pack.name) {
                    merge(&mut values, over);
                }
                let secrets = self.secrets(&format!("profile.pack[{i}].sensitive"), pack, &values);
                Pack { name: pack.name.clone(), layer: pack.layer, version: pack.version.clone(), values, secrets }
            })
            .collect();
        self.kubernetes_pack(profile, &packs);
        self.cni_pack(profile, &packs);
        // Stable: packs of one layer keep the file's order.
        packs.sort_by_key(|p| p.layer);
        Profile { name: profile.name.clone(), packs }
    }
}

impl Check {
    /// The pack of layer `k8s`, which kubeadm's configuration comes from
    /// (bootstrap/kubeadm.rs): at most one, a Kubernetes version kubeadm's
    /// config API serves, and pod and service networks that are CIDRs.
    /// `packs` are the merged packs in the file's order.
    fn kubernetes_pack(&mut self, profile: &spec::Profile, packs: &[Pack]) {
        let hint = "a cluster runs one Kubernetes: keep one pack of layer \"k8s\"";
        if let Some((i, pack)) = self.single_pack(packs, spec::Layer::K8s, hint) {
            if !pack.version.trim().is_empty() {
                if let Err(message) = crate::bootstrap::KubernetesVersion::parse(&pack.version) {
                    self.fail(
                        format!("profile.pack[{i}].version"),
                        message,
                        "use a Kubernetes release that cluster-api publishes images for, e.g. version = \"1.30.4\"",
                    );
                }
            }
            for key in ["pod_cidr", "service_cidr"] {
                let Some(value) = pack.values.get(key) else { continue };
                let overridden = profile.overrides.get(&pack.name).is_some_and(|o| o.contains_key(key));
                let path = if overridden {
                    format!("profile.override.{}.{key}", pack.name)
                } else {
                    format!("profile.pack[{i}].values.{key}")
                };
                let valid = value.as_str().is_some_and(|s| s.parse::<Ipv4Cidr>().is_ok());
                if !valid {
                    self.fail(
                        path,
                        format!("{key} must be an IPv4 CIDR block, not {value}"),
                        format!(
                            "write it as a string, e.g. {key} = \"{}\"",
                            if key == "pod_cidr" { "192.168.0.0/16" } else { "10.96.0.0/12" }
                        ),
                    );
                }
            }
        }
    }

    /// The first pack of `layer` with its index (the file's order), failing
    /// every further one.
    fn single_pack<'p>(&mut self, packs: &'p [Pack], layer: spec::Layer, hint: &str) -> Option<(usize, &'p Pack)> {
        let mut of_layer = packs.iter().enumerate().filter(|(_, p)| p.layer == layer);
        let first = of_layer.next()?;
        for (i, _) in of_layer {
            self.fail(
                format!("profile.pack[{i}].layer"),
                format!("a second pack of layer \"{}\" (profile.pack[{}] is one)", layer_name(layer), first.0),
                hint,
            );
        }
        Some(first)
    }

    /// The pack of layer `cni`, which the first control plane installs
    /// (bootstrap/cni.rs): at most one, with a manifest skyplan can fetch.
    fn cni_pack(&mut self, profile: &spec::Profile, packs: &[Pack]) {
        let pod_cidr = packs
            .iter()
            .find(|p| p.layer == spec::Layer::K8s)
            .and_then(|p| p.values.get("pod_cidr"))
            .and_then(|v| v.as_str())
            .unwrap_or(crate::bootstrap::kubeadm::DEFAULT_POD_CIDR);
        let hint = "a cluster runs one CNI: keep one pack of layer \"cni\" (others, e.g. multus, as layer \"addon\")";
        if let Some((i, pack)) = self.single_pack(packs, spec::Layer::Cni, hint) {
            if let Err(e) = crate::bootstrap::cni::cni(&pack.name, &pack.version, &pack.values, pod_cidr) {
                let key = match e.key() {
                    Some(key) if profile.overrides.get(&pack.name).is_some_and(|o| o.contains_key(key)) => {
                        format!("profile.override.{}.{key}", pack.name)
                    }
                    Some(key) => format!("profile.pack[{i}].values.{key}"),
                    None => format!("profile.pack[{i}]"),
                };
                self.fail(key, e.to_string(), e.hint());
            }
        }
    }

    /// The merged values that `pack.sensitive` names. Each must be a string
    /// long enough to be masked wherever it appears (engine/src/redact.rs).
    fn secrets(&mut self, key: &str, pack: &spec::Pack, values: &Attrs) -> Vec<String> {
        let mut secrets = Vec::new();
        for path in &pack.sensitive {
            let mut parts = path.split('.');
            let first = parts.next().and_then(|p| values.get(p));
            let found = parts.try_fold(first, |v, part| Some(v.and_then(|v| v.get(part))));
            match found.flatten() {
                None => self.fail(
                    key,
                    format!("{path:?} is not one of pack {:?}'s values", pack.name),
                    "name a key of the pack's values (or of its override), dotted for nested tables: registry.password",
                ),
                Some(Value::String(s)) if s.chars().count() >= MIN_SECRET_LEN => secrets.push(s.clone()),
                Some(_) => self.fail(
                    key,
                    format!("the value of {path:?} must be a string of at least {MIN_SECRET_LEN} characters to be kept sensitive"),
                    "a sensitive value is masked wherever it appears in plans and the state; a shorter one would mask unrelated text",
                ),
            }
        }
        secrets
    }
}

/// The shortest value that can be marked sensitive.
const MIN_SECRET_LEN: usize = 4;

/// Merge `over` into `base`: tables merge key by key, anything else
/// (strings, numbers, lists) is replaced, as Helm merges values.
fn merge(base: &mut Attrs, over: &Attrs) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Object(base)), Value::Object(over)) => merge(base, over),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// `[a-z][a-z0-9-]*`, at most `max` characters.
fn is_name(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let number = |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let Some((last, names)) = parts.split_last() else {
        return false;
    };
    names.len() >= 2 && names[0].len() == 2 && names.iter().all(|p| lower(p)) && number(last)
}

/// The region followed by a zone letter (`us-east-1a`), or by a Local Zone
/// suffix (`us-west-2-lax-1a`).
fn is_az_of(az: &str, region: &str) -> bool {
    let Some(suffix) = az.strip_prefix(region) else {
        return false;
    };
    suffix.ends_with(|c: char| c.is_ascii_lowercase())
        && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !suffix.starts_with(|c: char| c.is_ascii_digit())
}

/// `m5.large`, `g4dn.xlarge`, `u-6tb1.metal`, `m7i-flex.2xlarge`.
fn is_instance_type(s: &str) -> bool {
    let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match s.split_once('.') {
        Some((family, size)) => family.starts_with(|c: char| c.is_ascii_lowercase()) && part(family) && part(size),
        None => false,
    }
}

/// `PREFIX-` followed by letters and digits, as EC2 ids are.
fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// An IAM name (instance profile, role): 1 to 128 of `[A-Za-z0-9+=,.@_-]`.
fn is_iam_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

/// What STS accepts as an ExternalId.
fn is_external_id(s: &str) -> bool {
    (2..=1224).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b))
}

#[cfg(test)]
mod tests {
    use skyplan_engine::spec::Source;

    use super::*;
    use crate::fixtures::{self, demo_with, edit, parse};

    /// As `plan` validates: online, with no price looked up (so a spot pool
    /// outside the table is an error, as when the Price List API has none).
    fn online() -> prices::LookedUp {
        prices::LookedUp { online: true, ..prices::LookedUp::default() }
    }

    fn errors(text: &str) -> Vec<SpecError> {
        match validate_with(&parse(text), &online()) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(errors) => errors,
        }
    }

    #[test]
    fn the_image_source_is_checked() {
        let cp = "instance_type = \"m5.large\"";
        only_error(&demo_with(cp, &format!("{cp}\nami_owner = \"cncf\"")), "node_pool[0].ami_owner");
        only_error(&demo_with(cp, &format!("{cp}\nami_name = \" \"")), "node_pool[0].ami_name");
        let cluster = ok(&demo_with(cp, &format!("{cp}\nami_owner = \"self\"")));
        assert_eq!(cluster.control_plane.pool.ami_owner, "self");
        assert_eq!(cluster.workers[0].pool.ami_name, CAPA_AMI_NAME);
    }

    #[test]
    fn a_pool_may_name_its_own_instance_profile() {
        let cp = "instance_type = \"m5.large\"";
        let error = only_error(
            &demo_with(cp, &format!("{cp}\ninstance_profile = \"my profile\"")),
            "node_pool[0].instance_profile",
        );
        assert!(error.message.contains("not an IAM instance profile name"), "{error:#?}");
        only_error(&demo_with(cp, &format!("{cp}\ninstance_profile = \"\"")), "node_pool[0].instance_profile");
        let cluster = ok(&demo_with(cp, &format!("{cp}\ninstance_profile = \"ops-nodes+1@x\"")));
        assert_eq!(cluster.control_plane.pool.instance_profile(true), "ops-nodes+1@x");
        assert_eq!(cluster.workers[0].pool.instance_profile(false), crate::cluster::NODES_PROFILE);
        let plain = ok(&demo_with(cp, cp));
        assert_eq!(plain.control_plane.pool.instance_profile(true), crate::cluster::CONTROL_PLANE_PROFILE);
    }

    /// The one error of `text`, which must be at `key` and say what to do.
    #[track_caller]
    fn only_error(text: &str, key: &str) -> SpecError {
        let errors = errors(text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let error = errors.into_iter().next().unwrap();
        assert_eq!(error.key, key, "{error:#?}");
        assert!(error.help.as_deref().is_some_and(|h| !h.is_empty()), "{error:#?} has no help");
        error
    }

    fn ok(text: &str) -> Cluster {
        match validate_with(&parse(text), &online()) {
            Ok(Some(cluster)) => cluster,
            other => panic!("{other:#?}"),
        }
    }

    #[test]
    fn the_demo_is_valid_with_defaults_applied() {
        let cluster = ok(fixtures::DEMO);
        assert_eq!(cluster.api_port, 6443);
        assert_eq!(cluster.placement, Placement::Dynamic { vpc_cidr: "10.0.0.0/16".parse().unwrap() });
        let bastion = cluster.bastion.unwrap();
        assert_eq!(bastion.instance_type, "t3.micro");
        assert_eq!(cluster.control_plane.pool.azs, ["us-east-1a", "us-east-1b", "us-east-1c"]);
        assert_eq!(cluster.control_plane.pool.disk_gib, 60);
        assert_eq!(cluster.control_plane.pool.ami, "auto");
        let worker = &cluster.workers[0];
        assert_eq!((worker.min, worker.pool.size, worker.max), (3, 3, 6));
        assert_eq!(worker.spot, None);
    }

    #[test]
    fn no_cluster_tables_is_nothing_to_do() {
        assert_eq!(validate(&parse("")), Ok(None));
        assert_eq!(validate(&parse("[resource.sim_resource.a]\nx = 1\n")), Ok(None));
    }

    #[test]
    fn cluster_tables_need_a_cluster() {
        let text = "[placement]\nazs = [\"us-east-1a\"]\n\n[[node_pool]]\nname = \"cp\"\nsize = 1\ninstance_type = \"m5.large\"\n";
        let keys: Vec<String> = errors(text).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["placement", "node_pool"]);
        for table in [
            "[account]\nprofile = \"p\"",
            "[bastion]\nenabled = false",
            "[api_server]\nport = 1",
            "[profile]\nname = \"p\"",
        ] {
            let key = table[1..].split(']').next().unwrap();
            only_error(table, key);
        }
    }

    #[test]
    fn cluster_name() {
        for bad in ["Demo", "1demo", "-demo", "de_mo", "", &"a".repeat(33)] {
            only_error(&demo_with("name = \"demo\"", &format!("name = {bad:?}")), "cluster.name");
        }
        ok(&demo_with("name = \"demo\"", &format!("name = \"{}\"", "a".repeat(32))));
    }

    #[test]
    fn region() {
        for bad in ["useast1", "us-east", "US-EAST-1", "us-east-x", "u-east-1", "us-east-123"] {
            let errors = errors(&demo_with("region = \"us-east-1\"", &format!("region = {bad:?}")));
            // The AZs are not blamed for a bad region.
            assert_eq!(errors.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["cluster.region"], "{bad}");
        }
        for good in ["eu-central-1", "us-gov-west-1", "ap-southeast-4"] {
            assert!(is_region(good), "{good}");
        }
    }

    #[test]
    fn azs_are_in_the_region_and_unique() {
        let spec = demo_with(
            "\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"",
            "\"us-east-1a\", \"us-west-2b\", \"us-east-1a\"",
        );
        let keys: Vec<String> = errors(&spec).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["placement.azs[1]", "placement.azs[2]"]);
        only_error(&demo_with("\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"", "\"us-east-1\""), "placement.azs[0]");
        only_error(&demo_with("\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"", ""), "placement.azs");
        assert!(is_az_of("us-west-2-lax-1a", "us-west-2"));
        assert!(!is_az_of("us-east-10a", "us-east-1"));
    }

    #[test]
    fn placement_is_required() {
        only_error(&demo_with("[placement]\nazs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]", ""), "placement");
    }

    #[test]
    fn exactly_one_control_plane_pool() {
        only_error(&demo_with("control_plane = true\n", ""), "node_pool");
        let two = format!(
            "{}\n[[node_pool]]\nname = \"cp2\"\ncontrol_plane = true\nsize = 1\ninstance_type = \"m5.large\"\n",
            fixtures::DEMO
        );
        only_error(&two, "node_pool[2].control_plane");
    }

    #[test]
    fn control_plane_size_is_1_3_or_5() {
        for size in [0, 2, 4, 7] {
            let e = only_error(
                &demo_with(
                    "size = 3\ninstance_type = \"m5.large\"",
                    &format!("size = {size}\ninstance_type = \"m5.large\""),
                ),
                "node_pool[0].size",
            );
            assert!(e.help.unwrap().contains("1, 3 or 5"));
        }
        for size in [1, 5] {
            ok(&demo_with(
                "size = 3\ninstance_type = \"m5.large\"",
                &format!("size = {size}\ninstance_type = \"m5.large\""),
            ));
        }
    }

    #[test]
    fn control_plane_has_no_min_max_or_spot() {
        let cp = "control_plane = true\n";
        only_error(&demo_with(cp, &format!("{cp}min = 1\n")), "node_pool[0].min");
        only_error(&demo_with(cp, &format!("{cp}max = 5\n")), "node_pool[0].max");
        only_error(
            &demo_with(cp, &format!("{cp}spot = {{ max_price_percent = 50, on_demand_price = 0.1 }}\n")),
            "node_pool[0].spot",
        );
    }

    #[test]
    fn worker_min_size_max() {
        only_error(&demo_with("min = 3\nmax = 6", "min = 4\nmax = 6"), "node_pool[1].min");
        only_error(&demo_with("min = 3\nmax = 6", "min = 3\nmax = 2"), "node_pool[1].max");
        let defaults = ok(&demo_with("min = 3\nmax = 6", ""));
        assert_eq!((defaults.workers[0].min, defaults.workers[0].max), (3, 3));
        let zero = ok(&demo_with("size = 3\nmin = 3\nmax = 6", "size = 0\nmax = 4"));
        assert_eq!((zero.workers[0].min, zero.workers[0].pool.size, zero.workers[0].max), (0, 0, 4));
        only_error(&demo_with("size = 3\nmin = 3", "size = 0\nmin = 3"), "node_pool[1].min");
    }

    #[test]
    fn pool_names() {
        only_error(&demo_with("name = \"worker\"", "name = \"Worker_1\""), "node_pool[1].name");
        only_error(&demo_with("name = \"worker\"", "name = \"master\""), "node_pool[1].name");
        only_error(&demo_with("name = \"worker\"", &format!("name = \"{}\"", "w".repeat(64))), "node_pool[1].name");
    }

    #[test]
    fn pool_azs_are_a_subset_of_placement() {
        let worker = "instance_type = \"m5.xlarge\"";
        only_error(&demo_with(worker, &format!("{worker}\nazs = [\"us-east-1d\"]")), "node_pool[1].azs[0]");
        only_error(
            &demo_with(worker, &format!("{worker}\nazs = [\"us-east-1a\", \"us-east-1a\"]")),
            "node_pool[1].azs[1]",
        );
        only_error(&demo_with(worker, &format!("{worker}\nazs = []")), "node_pool[1].azs");
        let cluster = ok(&demo_with(worker, &format!("{worker}\nazs = [\"us-east-1b\"]")));
        assert_eq!(cluster.workers[0].pool.azs, ["us-east-1b"]);
    }

    #[test]
    fn pool_instance_type_disk_and_ami() {
        only_error(&demo_with("\"m5.large\"", "\"m5large\""), "node_pool[0].instance_type");
        let cp = "instance_type = \"m5.large\"";
        only_error(&demo_with(cp, &format!("{cp}\ndisk_gib = 4")), "node_pool[0].disk_gib");
        only_error(&demo_with(cp, &format!("{cp}\nami = \"ubuntu-22.04\"")), "node_pool[0].ami");
        let cluster = ok(&demo_with(cp, &format!("{cp}\ndisk_gib = 100\nami = \"ami-0abc123\"")));
        assert_eq!(
            (cluster.control_plane.pool.disk_gib, cluster.control_plane.pool.ami.as_str()),
            (100, "ami-0abc123")
        );
        for good in ["g4dn.xlarge", "u-6tb1.metal", "m7i-flex.2xlarge", "t3.micro"] {
            assert!(is_instance_type(good), "{good}");
        }
    }

    #[test]
    fn allow_workloads_is_for_the_control_plane() {
        only_error(
            &demo_with("name = \"worker\"", "name = \"worker\"\nallow_workloads = true"),
            "node_pool[1].allow_workloads",
        );
        let cluster = ok(&demo_with("control_plane = true", "control_plane = true\nallow_workloads = true"));
        assert!(cluster.control_plane.allow_workloads);
    }

    #[test]
    fn vpc_cidr() {
        let azs = "azs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]";
        let with = |cidr: &str| demo_with(azs, &format!("{azs}\nvpc_cidr = {cidr:?}"));
        let e = only_error(&with("10.0.0.0"), "placement.vpc_cidr");
        assert!(e.help.unwrap().contains("A.B.C.D/N"));
        let e = only_error(&with("10.0.0.1/16"), "placement.vpc_cidr");
        assert_eq!(e.help.as_deref(), Some("write 10.0.0.0/16"));
        only_error(&with("10.0.0.0/8"), "placement.vpc_cidr");
        // 3 AZs: 6 subnets, 8 blocks; /24 gives /27s, /25 would give /28s.
        let e = only_error(&with("10.0.0.0/25"), "placement.vpc_cidr");
        assert!(e.help.as_deref().unwrap().contains("/24"), "{e:?}");
        ok(&with("10.0.0.0/24"));
        ok(&with("172.20.16.0/20"));
        let one_az = demo_with(azs, "azs = [\"us-east-1a\"]\nvpc_cidr = \"10.0.0.0/26\"");
        ok(&one_az);
    }

    #[test]
    fn ssh_cidrs() {
        let e = only_error(
            &demo_with("[\"203.0.113.0/24\"]", "[\"203.0.113.0/24\", \"203.0.113.9\"]"),
            "bastion.ssh_cidrs[1]",
        );
        assert!(e.message.contains("203.0.113.9"));
        only_error(&demo_with("[\"203.0.113.0/24\"]", "[\"203.0.113.9/24\"]"), "bastion.ssh_cidrs[0]");
        only_error(&demo_with("ssh_cidrs", "instance_type = \"t3micro\"\nssh_cidrs"), "bastion.instance_type");
    }

    #[test]
    fn api_server_port() {
        only_error(&format!("{}\n[api_server]\nport = 0\n", fixtures::DEMO), "api_server.port");
        assert_eq!(ok(&format!("{}\n[api_server]\nport = 65535\n", fixtures::DEMO)).api_port, 65535);
    }

    #[test]
    fn spot() {
        let worker = "instance_type = \"m5.xlarge\"";
        let spot = |s: &str| demo_with(worker, &format!("{worker}\nspot = {{ {s} }}"));
        only_error(&spot("max_price_percent = 0, on_demand_price = 0.192"), "node_pool[1].spot.max_price_percent");
        only_error(&spot("max_price_percent = 101, on_demand_price = 0.192"), "node_pool[1].spot.max_price_percent");
        // No on_demand_price: the price table's, which says so.
        let cluster = ok(&spot("max_price_percent = 60"));
        let from_table = cluster.workers[0].spot.as_ref().unwrap();
        assert_eq!(from_table.max_price, "0.1152");
        assert_eq!(from_table.on_demand_price, 0.192);
        assert_eq!(from_table.on_demand_source, PriceSource::Table { as_of: prices::table().as_of.clone() });
        // A type the table lacks: an error at the pool's spot table that asks for the price.
        let unknown = demo_with(
            worker,
            &format!("{}\nspot = {{ max_price_percent = 60 }}", worker.replace("m5.xlarge", "x9.huge")),
        );
        let e = only_error(&unknown, "node_pool[1].spot.on_demand_price");
        assert!(e.message.contains("x9.huge in us-east-1"), "{}", e.message);
        assert!(e.message.contains(&prices::table().as_of), "{}", e.message);
        assert!(e.help.unwrap().contains("set on_demand_price"));
        // Offline (validate, graph), the same pool is valid with its max price unknown until plan.
        let offline = validate(&parse(&unknown)).unwrap().unwrap();
        let pending = offline.workers[0].spot.as_ref().unwrap();
        assert_eq!(
            (pending.max_price.as_str(), &pending.on_demand_source),
            (skyplan_engine::UNKNOWN, &PriceSource::Pending)
        );
        // A price the Price List API gave comes before the table, and says so.
        let mut looked_up = online();
        looked_up.prices.insert(("us-east-1".into(), "x9.huge".into()), 2.0);
        let priced = validate_with(&parse(&unknown), &looked_up).unwrap().unwrap();
        let priced = priced.workers[0].spot.as_ref().unwrap();
        assert_eq!((priced.max_price.as_str(), &priced.on_demand_source), ("1.2", &PriceSource::PriceList));
        only_error(&spot("max_price_percent = 60, on_demand_price = 0.0"), "node_pool[1].spot.on_demand_price");
        only_error(&spot("max_price_percent = 60, on_demand_price = -1.0"), "node_pool[1].spot.on_demand_price");
        only_error(&spot("max_price_percent = 60, on_demand_price = nan"), "node_pool[1].spot.on_demand_price");
        only_error(&spot("max_price_percent = 1, on_demand_price = 0.001"), "node_pool[1].spot");
        let cluster = ok(&spot("max_price_percent = 60, on_demand_price = 0.192"));
        let given = cluster.workers[0].spot.as_ref().unwrap();
        assert_eq!(given.max_price, "0.1152");
        assert_eq!(given.on_demand_source, PriceSource::Spec);
    }

    #[test]
    fn static_placement_needs_vpc_and_a_subnet_per_az() {
        ok(fixtures::STATIC);
        let static_with = |from: &str, to: &str| fixtures::edit(fixtures::STATIC, from, to);
        only_error(&static_with("vpc_id = \"vpc-0abc\"\n", ""), "placement.vpc_id");
        only_error(&static_with("vpc_id = \"vpc-0abc\"", "vpc_id = \"subnet-0abc\""), "placement.vpc_id");
        only_error(&static_with("vpc_id", "vpc_cidr = \"10.0.0.0/16\"\nvpc_id"), "placement.vpc_cidr");
        let e = only_error(
            &static_with("\"eu-west-1a\", \"eu-west-1b\"", "\"eu-west-1a\", \"eu-west-1b\", \"eu-west-1c\""),
            "placement.azs[2]",
        );
        assert!(e.help.unwrap().contains("az = \"eu-west-1c\""));
        let keys: Vec<String> =
            errors(&static_with("az = \"eu-west-1b\"", "az = \"eu-west-1c\"")).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["placement.subnet[1].az", "placement.azs[1]"]);
        let errors = errors(&static_with("az = \"eu-west-1b\"", "az = \"eu-west-1a\""));
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["placement.subnet[1].az", "placement.azs[1]"]);
        assert!(errors[0].message.contains("second"), "{errors:?}");
        only_error(&static_with("private = \"subnet-qb\"", "private = \"subnet-pa\""), "placement.subnet[1].private");
        only_error(&static_with("public = \"subnet-pa\"", "public = \"pa\""), "placement.subnet[0].public");
    }

    #[test]
    fn dynamic_placement_takes_no_vpc_or_subnets() {
        let azs = "azs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]";
        only_error(&demo_with(azs, &format!("{azs}\nvpc_id = \"vpc-0abc\"")), "placement.vpc_id");
        let subnet =
            format!("{azs}\n[[placement.subnet]]\naz = \"us-east-1a\"\npublic = \"subnet-a\"\nprivate = \"subnet-b\"");
        only_error(&demo_with(azs, &subnet), "placement.subnet[0]");
    }

    #[test]
    fn sensitive_pack_values() {
        let calico = "values = { mtu = 1440 }";
        let with = |values: &str| demo_with(calico, values);
        let secret =
            "values = { mtu = 1440, registry = { password = \"pa\\\"ss-1\" } }\nsensitive = [\"registry.password\"]";
        let spec = parse(&with(secret));
        let cluster = validate(&spec).unwrap().unwrap();
        let calico = cluster.profile.unwrap().packs.into_iter().find(|p| p.name == "calico").unwrap();
        assert_eq!(calico.secrets, ["pa\"ss-1"]);
        // As written, and as the user data quotes it.
        assert_eq!(crate::sensitive_values(&spec), ["pa\\\"ss-1", "pa\"ss-1"]);

        let e = only_error(&with("values = { mtu = 1440 }\nsensitive = [\"token\"]"), "profile.pack[1].sensitive");
        assert!(e.message.contains("\"token\" is not one of pack \"calico\"'s values"), "{e:?}");
        let e = only_error(&with("values = { mtu = 1440 }\nsensitive = [\"mtu\"]"), "profile.pack[1].sensitive");
        assert!(e.message.contains("string of at least 4 characters"), "{e:?}");
        // An override's value is the one kept sensitive.
        let over = format!(
            "{}\n[profile.override.calico]\ntoken = \"from-override\"\n",
            with("values = { mtu = 1440, token = \"base-token\" }\nsensitive = [\"token\"]")
        );
        assert_eq!(crate::sensitive_values(&parse(&over)), ["from-override"]);
    }

    #[test]
    fn account() {
        let with = |account: &str| format!("{}\n[account]\n{account}\n", fixtures::DEMO);
        let arn = "role_arn = \"arn:aws:iam::123456789012:role/SpectroCloudRole\"";
        ok(&with(&format!("{arn}\nexternal_id = \"from-the-ui\"")));
        ok(&with("profile = \"prod\""));
        let e = only_error(&with(arn), "account.external_id");
        assert!(e.message.contains("role_arn"));
        only_error(&with("external_id = \"x1\""), "account.external_id");
        only_error(&with("role_arn = \"SpectroCloudRole\"\nexternal_id = \"x1\""), "account.role_arn");
        only_error(&with(&format!("{arn}\nexternal_id = \"x\"")), "account.external_id");
        only_error(&with("profile = \"\""), "account.profile");
    }

    #[test]
    fn profile_packs() {
        only_error(&demo_with("name = \"ubuntu\"", "name = \"calico\""), "profile.pack[1].name");
        let e = only_error(
            &format!("{}\n[profile.override.nginx]\nreplicas = 2\n", fixtures::DEMO),
            "profile.override.nginx",
        );
        assert!(e.help.unwrap().contains("kubernetes"));
        only_error(&demo_with("version = \"22.04\"", "version = \"\""), "profile.pack[0].version");
        only_error(&demo_with("name = \"ubuntu-k8s\"", "name = \"\""), "profile.name");
    }

    #[test]
    fn the_cni_pack_needs_a_manifest_skyplan_can_fetch() {
        let e = only_error(&demo_with("name = \"calico\"", "name = \"cilium\""), "profile.pack[1]");
        assert!(e.message.contains("\"cilium\"") && e.help.unwrap().contains("manifest_url"), "{}", e.message);
        let cilium = demo_with("name = \"calico\"", "name = \"cilium\"");
        ok(&edit(&cilium, "mtu = 1440", "mtu = 1440, manifest_url = \"https://example.com/c.yaml\""));
        only_error(
            &demo_with("mtu = 1440", "mtu = 1440, manifest_url = \"http://example.com/c.yaml\""),
            "profile.pack[1].values.manifest_url",
        );
        only_error(
            &demo_with("mtu = 1440", "mtu = 1440, manifest_sha256 = \"abc\""),
            "profile.pack[1].values.manifest_sha256",
        );
        let second =
            format!("{}\n[[profile.pack]]\nname = \"flannel\"\nlayer = \"cni\"\nversion = \"0.25\"\n", fixtures::DEMO);
        only_error(&second, "profile.pack[3].layer");
    }

    #[test]
    fn packs_are_in_layer_order_with_overrides_merged() {
        let profile = ok(fixtures::DEMO).profile.unwrap();
        let order: Vec<&str> = profile.packs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(order, ["ubuntu", "kubernetes", "calico"]);
        assert_eq!(profile.packs[1].values["pod_cidr"], "172.16.0.0/16");
        assert_eq!(profile.packs[1].values["service_cidr"], "10.96.0.0/12");
    }

    #[test]
    fn overrides_merge_tables_and_replace_the_rest() {
        let mut base = serde_json::json!({"a": {"x": 1, "y": [1, 2]}, "b": 1}).as_object().unwrap().clone();
        let over = serde_json::json!({"a": {"y": [3], "z": true}, "c": "new"}).as_object().unwrap().clone();
        merge(&mut base, &over);
        assert_eq!(Value::Object(base), serde_json::json!({"a": {"x": 1, "y": [3], "z": true}, "b": 1, "c": "new"}));
    }

    #[test]
    fn cluster_tags() {
        let e = only_error(&demo_with("team = \"platform\"", "Name = \"x\""), "cluster.tags.Name");
        assert!(e.message.contains("reserved"));
        only_error(&demo_with("team = \"platform\"", "\"aws:owner\" = \"x\""), "cluster.tags.aws:owner");
        only_error(
            &demo_with("team = \"platform\"", "\"kubernetes.io/cluster/demo\" = \"shared\""),
            "cluster.tags.kubernetes.io/cluster/demo",
        );
        only_error(&demo_with("team = \"platform\"", &format!("team = \"{}\"", "v".repeat(257))), "cluster.tags.team");
        let many: Vec<String> = (0..45).map(|i| format!("t{i} = \"v\"")).collect();
        only_error(&demo_with("team = \"platform\"", &many.join(", ")), "cluster.tags");
        // The case: 44 tags passed, and the load balancer was refused
        // (`TooManyTags`) after 15 resources were made. 6 fit, 7 do not.
        let tags = |n: usize| (0..n).map(|i| format!("t{i} = \"v\"")).collect::<Vec<_>>().join(", ");
        ok(&demo_with("team = \"platform\"", &tags(6)));
        let e = only_error(&demo_with("team = \"platform\"", &tags(7)), "cluster.tags");
        let text = format!("{} {}", e.message, e.help.clone().unwrap_or_default());
        assert!(text.contains("at most 10 tags (Elastic Load Balancing API Reference"), "{text}");
        assert!(text.contains("keep at most 6"), "{text}");
        only_error(&demo_with("ssh_key_name = \"ops\"", "ssh_key_name = \"\""), "cluster.ssh_key_name");
    }

    #[test]
    fn security_group_names_may_not_start_with_sg() {
        for bad in ["sg", "sg-prod"] {
            let e = only_error(&demo_with("name = \"demo\"", &format!("name = {bad:?}")), "cluster.name");
            assert!(e.message.contains(&format!("`{bad}-node`")), "{}", e.message);
            assert!(
                e.message.contains("starting with `sg-` (Amazon EC2 API Reference, CreateSecurityGroup"),
                "{}",
                e.message
            );
        }
        for fine in ["sgx", "prod-sg", "s-g"] {
            ok(&demo_with("name = \"demo\"", &format!("name = {fine:?}")));
        }
    }

    /// A worker pool in one AZ of a /24 VPC over three AZs: each private
    /// subnet is a /27 (the next power of two above 6 subnets is 8), 27
    /// usable addresses; the AZ also holds one of the three control-plane
    /// nodes.
    #[test]
    fn pool_sizes_fit_the_private_subnets() {
        let small = |max: u32| {
            let text = demo_with(
                "max = 6\ninstance_type = \"m5.xlarge\"",
                &format!("max = {max}\ninstance_type = \"m5.xlarge\"\nazs = [\"us-east-1b\"]"),
            );
            edit(
                &text,
                "azs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]",
                "azs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]\nvpc_cidr = \"10.0.0.0/24\"",
            )
        };
        ok(&small(26));
        let e = only_error(&small(27), "placement.vpc_cidr");
        for part in [
            "/27, 27 usable addresses",
            "AWS keeps 5 in every subnet: Amazon VPC User Guide, Subnet CIDR blocks",
            "28 nodes in us-east-1b's",
            "1 control-plane nodes, 27 of pool \"worker\" (max 27 over 1 AZs)",
        ] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
        // Spread over three AZs, a max is divided among them, rounded up:
        // 26 per AZ (78 = 3 x 26) plus a control-plane node fit, 79 does not.
        let spread = |max: u32| edit(&small(max), "\nazs = [\"us-east-1b\"]", "");
        ok(&spread(78));
        let keys: Vec<String> = errors(&spread(79)).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["placement.vpc_cidr"; 3], "one per AZ");
        // The default /16 leaves room for far more.
        ok(&demo_with("max = 6", "max = 20000"));
    }

    #[test]
    fn pool_sizes_fit_the_auto_scaling_api() {
        let static_with = |lines: &str| edit(fixtures::STATIC, "size = 2\n", &format!("size = 2\n{lines}\n"));
        ok(&static_with(&format!("max = {AUTOSCALING_SIZE_MAX}")));
        let e = only_error(&static_with(&format!("max = {}", u64::from(AUTOSCALING_SIZE_MAX) + 1)), "node_pool[1].max");
        assert!(e.message.contains("Auto Scaling API Reference, CreateAutoScalingGroup, MaxSize"), "{}", e.message);
    }

    /// The longest valid cluster and pool names and the most cluster tags
    /// give names and tag sets within each kind's AWS limit, as the const
    /// assertions above say for the names.
    #[test]
    fn the_longest_names_and_most_tags_fit_every_kinds_limits() {
        let cluster = "a".repeat(CLUSTER_NAME_MAX);
        let pool = format!("w{}", "p".repeat(POOL_NAME_MAX - 1));
        let room = tags::CLASSIC_ELB_MAX_TAGS - tags::CLASSIC_ELB_BLUEPRINT_TAGS;
        let user_tags: Vec<String> =
            (0..room).map(|i| format!("\"{}{i}\" = \"{}\"", "k".repeat(120), "v".repeat(256))).collect();
        let text = edit(
            &edit(
                &demo_with("name = \"demo\"", &format!("name = \"{cluster}\"")),
                "team = \"platform\"",
                &user_tags.join(", "),
            ),
            "name = \"worker\"",
            &format!("name = \"{pool}\""),
        );
        let resources = crate::expand(&parse(&text)).unwrap_or_else(|e| panic!("{e:#?}"));
        let mut seen = BTreeSet::new();
        for r in &resources {
            let kind = r.address.kind.as_str();
            if let Some(name) = r.attrs.get("name").and_then(Value::as_str) {
                let max = match kind {
                    "aws_launch_template" => crate::names::LAUNCH_TEMPLATE_NAME_MAX,
                    "aws_autoscaling_group" => crate::names::AUTOSCALING_GROUP_NAME_MAX,
                    "aws_security_group" => crate::names::SECURITY_GROUP_NAME_MAX,
                    "aws_elb" => crate::names::ELB_NAME_MAX,
                    "aws_secretsmanager_secret" => crate::secrets::SECRET_NAME_MAX,
                    other => panic!("a name on {other}: add its limit here"),
                };
                assert!(name.len() <= max, "{} name {name:?} over {max}", r.address);
                assert!(kind != "aws_security_group" || !name.starts_with("sg-"), "{name}");
                seen.insert(kind);
            }
            for field in ["tags", "instance_tags"] {
                let Some(tags) = r.attrs.get(field).and_then(Value::as_object) else { continue };
                // The provider adds `skyplan:address`.
                let max = if kind == "aws_elb" { tags::CLASSIC_ELB_MAX_TAGS } else { tags::RESOURCE_MAX_TAGS };
                assert!(tags.len() < max, "{} {field}: {} tags and skyplan:address, over {max}", r.address, tags.len());
                for (k, v) in tags {
                    assert!(k.chars().count() <= 128, "{} tag key {k}", r.address);
                    assert!(v.as_str().is_some_and(|v| v.chars().count() <= 256), "{} tag {k} = {v}", r.address);
                }
            }
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [
                "aws_autoscaling_group",
                "aws_elb",
                "aws_launch_template",
                "aws_secretsmanager_secret",
                "aws_security_group"
            ],
            "every named kind was checked"
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let spec = demo_with("region = \"us-east-1\"", "region = \"nowhere\"")
            .replace("size = 3\ninstance_type = \"m5.large\"", "size = 2\ninstance_type = \"m5.large\"")
            .replace("min = 3\nmax = 6", "min = 3\nmax = 1")
            .replace("[\"203.0.113.0/24\"]", "[\"bad\"]");
        let keys: Vec<String> = errors(&spec).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["cluster.region", "bastion.ssh_cidrs[0]", "node_pool[0].size", "node_pool[1].max"]);
    }

    /// The CLI places errors by key path: every key the checks produce must
    /// land on the line of the offending value (or, for a missing key, of
    /// its table).
    #[test]
    fn error_keys_point_at_the_offending_line() {
        let text = fixtures::DEMO
            .replace("\"us-east-1b\", \"us-east-1c\"", "\"us-east-1b\", \"us-east-1b\"")
            .replace("size = 3\ninstance_type = \"m5.large\"", "size = 4\ninstance_type = \"m5.large\"")
            .replace("min = 3\nmax = 6", "min = 3\nmax = 6\nspot = { max_price_percent = 60 }")
            .replace("\"m5.xlarge\"", "\"x9.huge\"")
            + "\n[profile.override.nginx]\nreplicas = 2\n";
        let source = Source { path: "spec.toml".into(), text: text.clone() };
        let lines: Vec<&str> = text.lines().collect();
        for (key, expected_line) in [
            ("placement.azs[2]", "azs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1b\"]"),
            ("node_pool[0].size", "size = 4"),
            ("node_pool[1].spot.on_demand_price", "spot = { max_price_percent = 60 }"),
            ("profile.override.nginx", "[profile.override.nginx]"),
        ] {
            assert!(errors(&text).iter().any(|e| e.key == key), "no error at {key}");
            let (line, _) = source.locate(key).unwrap_or_else(|| panic!("{key} is not located"));
            assert_eq!(lines[line - 1], expected_line, "{key}");
        }
    }

    #[test]
    fn the_k8s_pack_must_name_a_kubeadm_version_and_cidr_networks() {
        let demo = fixtures::DEMO;
        let e = only_error(&demo.replace("version = \"1.30.4\"", "version = \"1.21.3\""), "profile.pack[2].version");
        assert!(e.message.contains("older than kubeadm's v1beta3"), "{e:#?}");
        only_error(&demo.replace("version = \"1.30.4\"", "version = \"latest\""), "profile.pack[2].version");
        let e = only_error(
            &demo.replace("pod_cidr = \"172.16.0.0/16\"", "pod_cidr = \"172.16.0.0\""),
            "profile.override.kubernetes.pod_cidr",
        );
        assert!(e.message.contains("IPv4 CIDR"), "{e:#?}");
        only_error(
            &demo.replace("service_cidr = \"10.96.0.0/12\"", "service_cidr = 12"),
            "profile.pack[2].values.service_cidr",
        );
        let twice = demo.replace("name = \"calico\"\nlayer = \"cni\"", "name = \"calico\"\nlayer = \"k8s\"");
        only_error(&twice.replace("version = \"3.28.0\"", "version = \"1.31.0\""), "profile.pack[2].layer");
    }
}
