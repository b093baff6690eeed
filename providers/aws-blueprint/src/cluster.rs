//! The cluster as the blueprint builds it: the spec after validation, with
//! every default applied and every value parsed.
//!
//! `validate.rs` is the only producer of a [`Cluster`]; the expanding modules
//! (`network.rs`, `security.rs`, `compute.rs`) read it and never look at the
//! raw spec, so a default is decided once, here, and documented in
//! docs/spec.md.

use std::collections::BTreeMap;

use crate::model::Layer;
use skyplan_engine::Attrs;

use crate::cidr::Ipv4Cidr;

/// `placement.vpc_cidr` when not given.
pub const DEFAULT_VPC_CIDR: &str = "10.0.0.0/16";
/// `api_server.port` when not given.
pub const DEFAULT_API_PORT: u16 = 6443;
/// `bastion.instance_type` when not given.
pub const DEFAULT_BASTION_INSTANCE_TYPE: &str = "t3.micro";
/// `node_pool.disk_gib` when not given.
pub const DEFAULT_DISK_GIB: u32 = 60;
/// The bastion's root volume: enough for the OS images the provider picks.
pub const BASTION_DISK_GIB: u32 = 20;
/// `ami` when not given: the provider resolves it in the region.
pub const AUTO_AMI: &str = "auto";

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub region: String,
    pub ssh_key_name: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// In the order written; the first one hosts the bastion.
    pub azs: Vec<String>,
    pub placement: Placement,
    pub bastion: Option<Bastion>,
    pub api_port: u16,
    pub control_plane: ControlPlane,
    /// In the order written.
    pub workers: Vec<WorkerPool>,
    pub profile: Option<Profile>,
}

/// Where the cluster's network comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// The blueprint creates the VPC and carves it into subnets.
    Dynamic { vpc_cidr: Ipv4Cidr },
    /// Existing VPC and subnets, used as they are.
    Static {
        vpc_id: String,
        /// By AZ: the existing public and private subnet ids.
        subnets: BTreeMap<String, StaticSubnets>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSubnets {
    pub public: String,
    pub private: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bastion {
    pub instance_type: String,
    /// Who may reach port 22; empty means nobody.
    pub ssh_cidrs: Vec<Ipv4Cidr>,
}

/// What every node pool has.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub size: u32,
    pub instance_type: String,
    /// A subset of the placement AZs, in the pool's order (all placement
    /// AZs when the pool names none). Control-plane nodes go round-robin.
    pub azs: Vec<String>,
    pub disk_gib: u32,
    /// An `ami-...` id, or [`AUTO_AMI`].
    pub ami: String,
    /// `ami_owner`, else [`CAPA_AMI_OWNER`].
    pub ami_owner: String,
    /// `ami_name`, else [`CAPA_AMI_NAME`].
    pub ami_name: String,
    /// `instance_profile`: a profile the pool names itself. None: the
    /// shared profile of the pool's role ([`Pool::instance_profile`]).
    pub own_instance_profile: Option<String>,
}

/// The instance profile control-plane nodes run with unless their pool
/// names one: shared by every cluster of the account, created by `apply`
/// when missing and never deleted (cluster-api's name, which the seed's
/// `iam:PassRole` grant covers).
pub const CONTROL_PLANE_PROFILE: &str = "control-plane.cluster-api-provider-aws.sigs.k8s.io";
/// The instance profile worker nodes run with unless their pool names one.
pub const NODES_PROFILE: &str = "nodes.cluster-api-provider-aws.sigs.k8s.io";

impl Pool {
    /// The instance profile of the pool's nodes: its own, else the shared
    /// one of its role.
    pub fn instance_profile(&self, control_plane: bool) -> &str {
        match &self.own_instance_profile {
            Some(name) => name,
            None if control_plane => CONTROL_PLANE_PROFILE,
            None => NODES_PROFILE,
        }
    }
}

/// Who publishes cluster-api's node images (the CNCF's account).
pub const CAPA_AMI_OWNER: &str = "819546954734";
/// The names of cluster-api's node images: `{os}`, `{os_version}` and
/// `{kubernetes_version}` (without a leading `v`) are filled in from the
/// profile's os and k8s packs; `?` takes the `v` image-builder puts before
/// the version, `*` the build timestamp.
pub const CAPA_AMI_NAME: &str = "capa-ami-{os}-{os_version}-?{kubernetes_version}-*";

#[derive(Debug, Clone, PartialEq)]
pub struct ControlPlane {
    pub pool: Pool,
    /// Workloads may run on control-plane nodes (no NoSchedule taint).
    pub allow_workloads: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerPool {
    pub pool: Pool,
    pub min: u32,
    pub max: u32,
    /// The spot market and its max price; `None` for on-demand.
    pub spot: Option<Spot>,
}

/// A worker pool on the spot market.
#[derive(Debug, Clone, PartialEq)]
pub struct Spot {
    /// The max price in USD per hour, as AWS takes it (`"0.1152"`).
    pub max_price: String,
    pub max_price_percent: u32,
    /// The on-demand price the max price is a percentage of.
    pub on_demand_price: f64,
    pub on_demand_source: PriceSource,
}

/// Where a spot pool's on-demand price came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    /// `on_demand_price` in the spec.
    Spec,
    /// skyplan's price table (`data/on-demand-prices.toml`), of this date.
    Table { as_of: String },
    /// The AWS Price List API, asked for this run.
    PriceList,
    /// Not known without asking AWS (`validate`, `graph`: no cloud calls);
    /// `plan` asks the Price List API. The max price is unknown until then.
    Pending,
}

/// The cluster profile with overrides merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// In layer order (os, k8s, cni, csi, addon); the file's order within a
    /// layer.
    pub packs: Vec<Pack>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    pub name: String,
    pub layer: Layer,
    pub version: String,
    /// The pack's values with `[profile.override.PACK]` merged over them.
    pub values: Attrs,
    /// The merged values of the pack's `sensitive` keys.
    pub secrets: Vec<String>,
}

/// The layer's name as the spec writes it.
pub fn layer_name(layer: Layer) -> &'static str {
    match layer {
        Layer::Os => "os",
        Layer::K8s => "k8s",
        Layer::Cni => "cni",
        Layer::Csi => "csi",
        Layer::Addon => "addon",
    }
}

/// The spot max price in USD per hour: `percent` of `on_demand`, with at
/// most 4 decimals and no trailing zeros (`60`, `0.192` -> `"0.1152"`).
pub fn spot_max_price(percent: u32, on_demand: f64) -> String {
    let text = format!("{:.4}", on_demand * f64::from(percent) / 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_price_is_a_percentage_with_four_decimals_at_most() {
        assert_eq!(spot_max_price(60, 0.192), "0.1152");
        assert_eq!(spot_max_price(50, 0.1), "0.05");
        assert_eq!(spot_max_price(100, 0.526), "0.526");
        assert_eq!(spot_max_price(100, 3.0), "3");
        assert_eq!(spot_max_price(33, 0.0416), "0.0137");
        assert_eq!(spot_max_price(70, 12.24), "8.568");
        assert_eq!(spot_max_price(1, 0.001), "0");
    }
}
