//! The AWS spec's typed model: every key of the contract's TOML besides
//! `[resource.TYPE.NAME]` (the engine's), nothing else. The engine reads
//! these tables for us (`Spec::<SpecFile>::parse_with`).
//!
//! Unknown keys are rejected by serde (`deny_unknown_fields`), which the
//! parser turns into a file:line:column error. Defaults that depend on
//! meaning (the API port, the VPC CIDR) are applied by the blueprint that
//! reads this model, not here, so the model says only what the user wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use skyplan_engine::Attrs;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub cluster: Option<Cluster>,
    pub account: Option<Account>,
    pub placement: Option<Placement>,
    pub bastion: Option<Bastion>,
    pub api_server: Option<ApiServer>,
    pub profile: Option<Profile>,
    #[serde(default)]
    pub node_pool: Vec<NodePool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub region: String,
    pub ssh_key_name: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementMode {
    #[default]
    Dynamic,
    Static,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    pub mode: PlacementMode,
    #[serde(default)]
    pub azs: Vec<String>,
    pub vpc_cidr: Option<String>,
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet: Vec<StaticSubnet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSubnet {
    pub az: String,
    pub public: String,
    pub private: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bastion {
    pub enabled: Option<bool>,
    pub instance_type: Option<String>,
    #[serde(default)]
    pub ssh_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiServer {
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub pack: Vec<Pack>,
    /// `[profile.override.PACK]`: per-cluster overrides of pack values.
    #[serde(default, rename = "override")]
    pub overrides: BTreeMap<String, Attrs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Os,
    K8s,
    Cni,
    Csi,
    Addon,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    pub name: String,
    pub layer: Layer,
    pub version: String,
    #[serde(default)]
    pub values: Attrs,
    /// Keys of `values` (dotted for nested tables: `registry.password`)
    /// whose values are secrets: sent to the nodes, masked everywhere
    /// skyplan shows or stores them (engine/src/redact.rs).
    #[serde(default)]
    pub sensitive: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePool {
    pub name: String,
    #[serde(default)]
    pub control_plane: bool,
    pub size: u32,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub instance_type: String,
    #[serde(default)]
    pub allow_workloads: bool,
    pub azs: Option<Vec<String>>,
    pub disk_gib: Option<u32>,
    pub ami: Option<String>,
    /// Where a pool without `ami` finds its image: the owner and the name
    /// format of cluster-api's published images by default.
    pub ami_owner: Option<String>,
    pub ami_name: Option<String>,
    /// The IAM instance profile the pool's nodes run with, instead of the
    /// shared one of their role (cluster.rs: [`crate::cluster::CONTROL_PLANE_PROFILE`],
    /// [`crate::cluster::NODES_PROFILE`]). It must exist.
    pub instance_profile: Option<String>,
    pub spot: Option<Spot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spot {
    pub max_price_percent: u32,
    pub on_demand_price: Option<f64>,
}
