//! Security groups: who may talk to the bastion, the API load balancer, the
//! control plane and the worker nodes.
//!
//! The bastion and load-balancer groups hold their few rules inline
//! (`ingress`). The control-plane and node groups refer to each other (the
//! API port from nodes; kubelet and everything from the control plane),
//! which inline rules would turn into a reference cycle; so all of their
//! rules are `aws_security_group_rule` resources and those two groups have
//! no `ingress` attribute at all. Mixing inline and separate rules on one
//! group makes the two fight over it (as in Terraform), hence all or none.
//!
//! Egress is AWS's default: everything out.

use serde_json::{json, Value};
use skyplan_engine::{Address, Resource};

use crate::cluster::Cluster;
use crate::network::Network;
use crate::tags::{self, Tags};
use crate::{names, reference, resource};

/// The kubelet's API, which the control plane calls on every node.
const KUBELET: Traffic = Traffic::Tcp(10250, 10250);
/// etcd's client and peer ports.
const ETCD: Traffic = Traffic::Tcp(2379, 2380);
const SSH: Traffic = Traffic::Tcp(22, 22);

/// References to the ids of the cluster's security groups.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroups {
    /// `None` when the bastion is disabled.
    pub bastion: Option<String>,
    pub apiserver_lb: String,
    pub control_plane: String,
    pub node: String,
}

/// Calico's BGP sessions between every pair of nodes.
const BGP: Traffic = Traffic::Tcp(179, 179);

/// What an ingress rule lets in: TCP on a port range, IP in IP (Calico's
/// pod traffic between nodes, IP protocol 4), or all traffic.
#[derive(Clone, Copy)]
enum Traffic {
    Tcp(u16, u16),
    IpInIp,
    All,
}

impl Traffic {
    /// (protocol, from_port, to_port) as AWS takes them; `-1` is every
    /// protocol, whose ports AWS ignores (written 0).
    fn parts(self) -> (&'static str, u16, u16) {
        match self {
            Traffic::Tcp(from, to) => ("tcp", from, to),
            Traffic::IpInIp => ("4", 0, 0),
            Traffic::All => ("-1", 0, 0),
        }
    }
}

/// Whether the cluster's CNI is Calico (the profile's `cni` pack).
fn calico(cluster: &Cluster) -> bool {
    cluster
        .profile
        .iter()
        .flat_map(|p| &p.packs)
        .any(|p| p.layer == crate::model::Layer::Cni && crate::bootstrap::cni::is_calico(&p.name))
}

/// One entry of a group's inline `ingress` list, from CIDR blocks, every
/// field written out.
fn inline_rule(traffic: Traffic, cidr_blocks: Vec<String>, description: &str) -> Value {
    let (protocol, from_port, to_port) = traffic.parts();
    json!({
        "protocol": protocol,
        "from_port": from_port,
        "to_port": to_port,
        "cidr_blocks": cidr_blocks,
        "source_security_group_ids": [],
        "self": false,
        "description": description,
    })
}

pub fn expand(cluster: &Cluster, network: &Network) -> (Vec<Resource>, SecurityGroups) {
    let tags = Tags::new(&cluster.name, &cluster.tags);
    let mut out = Vec::new();
    // `name` is the address name (`control_plane`); the AWS name and the
    // Name tag read `<cluster>-control-plane`.
    let mut group = |name: &str, description: String, ingress: Option<Vec<Value>>| {
        let role = name.replace('_', "-");
        let address = Address::new("aws_security_group", name);
        let mut attrs = json!({
            "name": names::security_group(&cluster.name, &role),
            "description": description,
            "vpc_id": network.vpc_id,
            "tags": tags::to_value(tags.resource(&role, None)),
        });
        if let Some(ingress) = ingress {
            attrs["ingress"] = Value::Array(ingress);
        }
        out.push(resource(address.clone(), attrs));
        reference(&address, "id")
    };

    let api = Traffic::Tcp(cluster.api_port, cluster.api_port);
    let bastion = cluster.bastion.as_ref().map(|bastion| {
        let cidrs: Vec<String> = bastion.ssh_cidrs.iter().map(ToString::to_string).collect();
        let ingress =
            if cidrs.is_empty() { vec![] } else { vec![inline_rule(SSH, cidrs, "SSH from bastion.ssh_cidrs")] };
        group("bastion", format!("Bastion host of cluster {}", cluster.name), Some(ingress))
    });
    let apiserver_lb = group(
        "apiserver_lb",
        format!("Kubernetes API load balancer of cluster {}", cluster.name),
        Some(vec![inline_rule(api, vec!["0.0.0.0/0".into()], "Kubernetes API from anywhere")]),
    );
    let control_plane = group("control_plane", format!("Control-plane nodes of cluster {}", cluster.name), None);
    let node = group("node", format!("Worker nodes of cluster {}", cluster.name), None);

    let (cp, lb, nodes) = (control_plane.as_str(), apiserver_lb.as_str(), node.as_str());
    let all = Traffic::All;
    #[rustfmt::skip]
    let mut rules = vec![
        // (address name,                  into,  traffic, from,  description)
        ("control_plane_api_from_lb",       cp,    api,     lb,    "Kubernetes API from the load balancer"),
        ("control_plane_api_from_node",     cp,    api,     nodes, "Kubernetes API from nodes"),
        ("control_plane_etcd_from_self",    cp,    ETCD,    cp,    "etcd between control-plane nodes"),
        ("control_plane_all_from_self",     cp,    all,     cp,    "All traffic between control-plane nodes"),
        ("node_all_from_self",              nodes, all,     nodes, "All traffic between nodes"),
        ("node_kubelet_from_control_plane", nodes, KUBELET, cp,    "kubelet from the control plane"),
        ("node_all_from_control_plane",     nodes, all,     cp,    "All traffic from the control plane"),
    ];
    // Nodes reach the control plane only at the API above; Calico also
    // peers with it over BGP and carries pod traffic to it in IP in IP
    // (the other way, the control plane reaches nodes on everything).
    if calico(cluster) {
        #[rustfmt::skip]
        rules.extend([
            ("control_plane_bgp_from_node",  cp, BGP,              nodes, "Calico BGP from nodes"),
            ("control_plane_ipip_from_node", cp, Traffic::IpInIp,  nodes, "Calico IP in IP from nodes"),
        ]);
    }
    if let Some(bastion) = bastion.as_deref() {
        #[rustfmt::skip]
        rules.extend([
            ("control_plane_ssh_from_bastion", cp,    SSH,     bastion, "SSH from the bastion"),
            ("node_ssh_from_bastion",          nodes, SSH,     bastion, "SSH from the bastion"),
        ]);
    }
    for (name, to, traffic, from, description) in rules {
        let (protocol, from_port, to_port) = traffic.parts();
        let role = format!("sgr-{}", name.replace('_', "-"));
        out.push(resource(
            Address::new("aws_security_group_rule", name),
            json!({
                "security_group_id": to,
                "type": "ingress",
                "protocol": protocol,
                "from_port": from_port,
                "to_port": to_port,
                "source_security_group_id": from,
                "description": description,
                "tags": tags::to_value(tags.resource(&role, None)),
            }),
        ));
    }

    let groups = SecurityGroups { bastion, apiserver_lb, control_plane, node };
    (out, groups)
}
