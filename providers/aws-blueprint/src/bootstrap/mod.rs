//! What a node boots with: the cluster PKI, the bootstrap token, kubeadm
//! configuration from the profile, and the user data that brings them
//! together on the node. Pure: no SDK, no cloud calls. docs/bootstrap.md
//! tells the whole sequence and who may read which secret.
//!
//! For the AWS side (creating the secrets, the `kubeconfig`, `output` and
//! `node-config` commands):
//! - at apply, before the first control plane, [`ClusterSecrets::generate`]
//!   once, and create one secret per [`SecretKind`] named [`secret_name`]
//!   with [`ClusterSecrets::value`] (tagged with the ownership tags);
//!   [`ClusterSecrets::ca_cert_hash`] is public and may go into the state;
//! - `kubeconfig`: read the `Pki` secret's `SecretBinary`,
//!   [`ClusterPki::from_archive`], then [`admin_kubeconfig`] with its
//!   `cluster_ca`;
//! - `node-config`: [`node_config`] with the hash from the state if known;
//! - `destroy`: delete every [`SecretKind`]'s secret (force, no recovery);
//! - order: the three secrets exist before any node boots (every
//!   control-plane instance and launch template should depend on them);
//!   control planes 1.. join one at a time after control plane 0;
//! - IAM: nodes need `secretsmanager:GetSecretValue` (all) and
//!   `DeleteSecret` (control plane 0, the init lock) on
//!   `aws.cluster.x-k8s.io/*`: the seed's Nodes policy, which the
//!   control-plane role needs as well as the Control Plane policy.
//!
//! One file per concern: `cni.rs`, `pki.rs`, `token.rs`, `secrets.rs`, `kubeadm.rs`,
//! `userdata.rs` (with the script `node-bootstrap.sh`), `yaml.rs`.

pub mod cni;
pub mod kubeadm;
pub mod pki;
pub mod secrets;
pub mod token;
#[cfg(test)]
mod tool_tests;
pub mod userdata;
pub(crate) mod yaml;

pub use kubeadm::{ClusterInputs, KubeadmRole, KubernetesVersion, NodeInputs, Secrets};
pub use pki::{admin_kubeconfig, ca_cert_hash, CertificateAuthority, ClusterPki, KubeconfigTarget, PkiError};
pub use secrets::{secret_name, ClusterSecrets, SecretKind, SecretValue, SECRET_PREFIX};
pub use token::BootstrapToken;

/// The kubeadm documents a node boots with, every secret `(sensitive)`:
/// what `skyplan node-config` prints. `ca_cert_hash` is the public hash
/// from the state once the PKI exists.
pub fn node_config(cluster: &ClusterInputs, node: &NodeInputs, ca_cert_hash: Option<&str>) -> String {
    kubeadm::render(cluster, node, Secrets::Masked { ca_cert_hash })
}

use skyplan_engine::{Address, SpecError};

use crate::model::Layer;

use crate::cluster::Cluster;

/// Stands for the API load balancer's DNS name while the user data is
/// rendered; [`blueprint_user_data`] puts the reference in its place.
const ENDPOINT_MARK: &str = "skyplan-api-endpoint.invalid";

/// The cluster-wide kubeadm inputs of a validated cluster: the `k8s`
/// pack's version and networks (overrides merged) or the defaults.
pub(crate) fn cluster_inputs(cluster: &Cluster, endpoint_host: &str) -> ClusterInputs {
    let k8s = cluster.profile.iter().flat_map(|p| &p.packs).find(|p| p.layer == Layer::K8s);
    let value = |key: &str, default: &str| {
        k8s.and_then(|p| p.values.get(key)).and_then(|v| v.as_str()).unwrap_or(default).to_string()
    };
    let version = k8s.map(|p| p.version.as_str()).unwrap_or(kubeadm::DEFAULT_KUBERNETES_VERSION);
    let pod_subnet = value("pod_cidr", kubeadm::DEFAULT_POD_CIDR);
    let cni = cluster
        .profile
        .iter()
        .flat_map(|p| &p.packs)
        .find(|p| p.layer == Layer::Cni)
        .map(|p| cni::cni(&p.name, &p.version, &p.values, &pod_subnet).expect("validate.rs checked the cni pack"));
    ClusterInputs {
        cluster_name: cluster.name.clone(),
        kubernetes_version: KubernetesVersion::parse(version).expect("validate.rs checked the k8s pack's version"),
        endpoint_host: endpoint_host.to_string(),
        endpoint_port: cluster.api_port,
        pod_subnet,
        service_subnet: value("service_cidr", kubeadm::DEFAULT_SERVICE_CIDR),
        cni,
    }
}

/// A node's user data as the blueprint emits it: every `${` of the text
/// escaped, and `endpoint_reference` (`${aws_elb.apiserver.dns_name}`)
/// where the endpoint's host goes.
pub(crate) fn blueprint_user_data(cluster: &Cluster, node: &NodeInputs, endpoint_reference: &str) -> String {
    let inputs = cluster_inputs(cluster, ENDPOINT_MARK);
    let profile = profile_yaml(cluster);
    userdata::render(&inputs, &cluster.region, node, profile.as_deref())
        .replace("${", "$${")
        .replace(ENDPOINT_MARK, endpoint_reference)
}

/// The longest a DNS name can be: what a reference in user data may grow to.
const MAX_DNS_NAME: usize = 253;

/// An error for each node whose user data could exceed EC2's 16 KB once
/// its references are resolved (the profile's values are what grows it).
pub(crate) fn check_user_data_size(resources: &[skyplan_engine::Resource]) -> Vec<SpecError> {
    let mut errors = Vec::new();
    for r in resources {
        let Some(text) = r.attrs.get("user_data").and_then(|v| v.as_str()) else { continue };
        let value = serde_json::Value::String(text.to_string());
        let references = skyplan_engine::value::references(&value).map(|r| r.len()).unwrap_or(0);
        let unescaped = text.len() - text.matches("$${").count();
        let worst = unescaped + references * MAX_DNS_NAME;
        if worst >= userdata::MAX_USER_DATA_BYTES {
            errors.push(
                SpecError::new(
                    "profile",
                    format!(
                        "{}'s user data would be up to {worst} bytes, over EC2's limit of {} (16 KB)",
                        r.address,
                        userdata::MAX_USER_DATA_BYTES
                    ),
                )
                .with_help("the profile's pack values are written to every node: make them smaller"),
            );
        }
    }
    errors
}

/// The profile file's text: name, then each pack (layer order) with its
/// version and merged values, keys sorted, one value a line so that a plan
/// shows a changed value as a changed line.
fn profile_yaml(cluster: &Cluster) -> Option<String> {
    use yaml::{map, text, Yaml};
    let profile = cluster.profile.as_ref()?;
    let packs = profile.packs.iter().map(|pack| {
        map([
            ("name", text(&pack.name)),
            ("layer", text(crate::cluster::layer_name(pack.layer))),
            ("version", text(&pack.version)),
            ("values", Yaml::from(&serde_json::Value::Object(pack.values.clone()))),
        ])
    });
    Some(map([("name", text(&profile.name)), ("packs", Yaml::List(packs.collect()))]).render())
}

/// The kubeadm role and pool of the node at `address`:
/// `aws_instance.control_plane[N]` (N = 0 initializes) or
/// `aws_launch_template.pool[NAME]`. None for any other address.
pub(crate) fn node_inputs(cluster: &Cluster, address: &Address) -> Option<NodeInputs> {
    let key = address.key.as_deref()?;
    match (address.kind.as_str(), address.name.as_str()) {
        ("aws_instance", "control_plane") => {
            let index: u32 = key.parse().ok()?;
            let pool = &cluster.control_plane.pool;
            (index < pool.size).then(|| NodeInputs {
                role: if index == 0 { KubeadmRole::Init } else { KubeadmRole::JoinControlPlane },
                pool: pool.name.clone(),
                no_workloads: !cluster.control_plane.allow_workloads,
            })
        }
        ("aws_launch_template", "pool") => cluster.workers.iter().find(|w| w.pool.name == key).map(|w| NodeInputs {
            role: KubeadmRole::JoinWorker,
            pool: w.pool.name.clone(),
            no_workloads: false,
        }),
        _ => None,
    }
}

/// Why `node-config` has nothing to print.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeConfigError {
    /// The address is not a node of this cluster; the nodes it has.
    NotANode { address: String, nodes: Vec<String> },
}

impl std::fmt::Display for NodeConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeConfigError::NotANode { address, nodes } => {
                write!(f, "{address} is not a node of this cluster; its nodes are {}", nodes.join(", "))
            }
        }
    }
}

/// What `skyplan node-config SPEC ADDRESS` prints: the kubeadm documents
/// the node at `address` boots with, every secret `(sensitive)`.
/// `endpoint_host` is the API load balancer's DNS name from the state (or
/// "(known after apply)"), `ca_cert_hash` the public hash once the PKI exists.
/// `cluster` is the validated spec's (validation stays the caller's, so this
/// module and `validate.rs` do not import each other).
pub fn node_config_for(
    cluster: &Cluster,
    address: &Address,
    endpoint_host: &str,
    ca_cert_hash: Option<&str>,
) -> Result<String, NodeConfigError> {
    let node = node_inputs(cluster, address).ok_or_else(|| NodeConfigError::NotANode {
        address: address.to_string(),
        nodes: node_addresses(cluster).iter().map(Address::to_string).collect(),
    })?;
    Ok(node_config(&cluster_inputs(cluster, endpoint_host), &node, ca_cert_hash))
}

/// Every address `node-config` accepts, control planes first.
fn node_addresses(cluster: &Cluster) -> Vec<Address> {
    let control_planes =
        (0..cluster.control_plane.pool.size).map(|i| Address::keyed("aws_instance", "control_plane", i.to_string()));
    let pools = cluster.workers.iter().map(|w| Address::keyed("aws_launch_template", "pool", &w.pool.name));
    control_planes.chain(pools).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::model::SpecFile;
    use skyplan_engine::value;

    fn demo() -> SpecFile {
        fixtures::parse(fixtures::DEMO)
    }

    #[test]
    fn the_profile_gives_version_and_networks_after_overrides() {
        let cluster = crate::validate::validate(&demo()).unwrap().unwrap();
        let inputs = cluster_inputs(&cluster, "lb.example");
        assert_eq!(inputs.kubernetes_version.to_string(), "v1.30.4");
        assert_eq!(inputs.pod_subnet, "172.16.0.0/16", "the override, not the pack's 192.168.0.0/16");
        assert_eq!(inputs.service_subnet, "10.96.0.0/12");
        assert_eq!(inputs.endpoint(), "lb.example:6443");
    }

    #[test]
    fn control_plane_zero_initializes_and_the_rest_join() {
        let out = crate::expand(&demo()).unwrap();
        let user_data = |address: &str| {
            let r = out.iter().find(|r| r.address.to_string() == address).unwrap_or_else(|| panic!("{address}"));
            r.attrs["user_data"].as_str().unwrap().to_string()
        };
        let first = user_data("aws_instance.control_plane[0]");
        assert!(first.contains("readonly ROLE='init'\n") && first.contains("kind: InitConfiguration"), "{first}");
        let second = user_data("aws_instance.control_plane[1]");
        assert!(second.contains("readonly ROLE='control-plane'\n") && !second.contains("InitConfiguration"));
        // The endpoint is the load balancer's DNS name, a reference the
        // engine resolves at apply; nothing else in the text is one.
        let value = serde_json::Value::String(first.clone());
        let refs = value::references(&value).unwrap();
        assert!(!refs.is_empty() && refs.iter().all(|r| r.to_string() == "${aws_elb.apiserver.dns_name}"), "{refs:?}");
        let resolved =
            value::resolve(&value, &mut |_| serde_json::json!("demo-apiserver-1.us-east-1.elb.amazonaws.com"));
        let resolved = resolved.as_str().unwrap();
        assert!(
            resolved.contains("controlPlaneEndpoint: \"demo-apiserver-1.us-east-1.elb.amazonaws.com:6443\""),
            "{resolved}"
        );
        assert!(
            resolved.contains("${token}") || resolved.contains("$token"),
            "the script's own ${{...}} survive as text"
        );
    }

    #[test]
    fn pack_values_reach_the_profile_file_as_text_not_references() {
        let spec = fixtures::DEMO.replace("mtu = 1440", "mtu = 1440, script = \"${HOME}/run\"");
        let out = crate::expand(&fixtures::parse(&spec)).unwrap();
        let worker = out.iter().find(|r| r.address.to_string() == "aws_launch_template.pool[worker]").unwrap();
        let text = worker.attrs["user_data"].as_str().unwrap();
        assert!(text.contains("  - path: /etc/skyplan/profile.yaml\n"), "{text}");
        assert!(text.contains("mtu: 1440\n") && text.contains("\"$${HOME}/run\""), "{text}");
        let refs = value::references(&serde_json::Value::String(text.to_string())).unwrap();
        assert!(refs.iter().all(|r| r.to_string() == "${aws_elb.apiserver.dns_name}"), "{refs:?}");
    }

    #[test]
    fn a_profile_too_large_for_user_data_is_a_spec_error() {
        let big = format!("mtu = 1440, blob = \"{}\"", "x".repeat(12_000));
        let err = crate::expand(&fixtures::parse(&fixtures::DEMO.replace("mtu = 1440", &big))).unwrap_err();
        assert!(!err.is_empty() && err.iter().all(|e| e.key == "profile"), "{err:#?}");
        assert!(err[0].message.contains("over EC2's limit"), "{err:#?}");
        let fits = format!("mtu = 1440, blob = \"{}\"", "x".repeat(2_000));
        crate::expand(&fixtures::parse(&fixtures::DEMO.replace("mtu = 1440", &fits))).unwrap();
    }

    #[test]
    fn node_config_masks_secrets_and_names_the_nodes() {
        let cluster = crate::validate::validate(&demo()).unwrap().unwrap();
        let cp0 = Address::keyed("aws_instance", "control_plane", "0");
        let text = node_config_for(&cluster, &cp0, "lb.example", None).unwrap();
        assert!(text.contains("kind: ClusterConfiguration") && text.contains("kind: InitConfiguration"), "{text}");
        assert!(text.contains("token: \"(sensitive)\""), "{text}");
        let worker = Address::keyed("aws_launch_template", "pool", "worker");
        let hash = format!("sha256:{}", "0".repeat(64));
        let text = node_config_for(&cluster, &worker, "lb.example", Some(&hash)).unwrap();
        assert!(text.contains(&hash) && !text.contains("controlPlane"), "{text}");
        let err = node_config_for(&cluster, &Address::new("aws_vpc", "main"), "x", None).unwrap_err();
        assert!(err.to_string().contains("aws_instance.control_plane[0]"), "{err}");
        assert!(err.to_string().contains("aws_launch_template.pool[worker]"), "{err}");
    }
}
