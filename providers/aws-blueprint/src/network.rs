//! The network layout: the VPC, subnets, internet and NAT gateways and route
//! tables of a dynamic placement, or the existing VPC and subnets of a static
//! one. Either way the rest of the blueprint sees a [`Network`]: how to
//! refer to the VPC and to each AZ's subnets.
//!
//! Security groups are in `security.rs`; instances and load balancers in
//! `compute.rs`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use skyplan_engine::{Address, Resource};

use crate::cidr::Ipv4Cidr;
use crate::cluster::{Cluster, Placement};
use crate::tags::{self, SubnetTier, Tags};
use crate::{reference, resource};

const DEFAULT_ROUTE: &str = "0.0.0.0/0";

/// How the rest of the cluster refers to its network: `${...}` references
/// to the resources below (dynamic placement) or literal ids (static).
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub vpc_id: String,
    /// By AZ.
    pub public_subnets: BTreeMap<String, String>,
    /// By AZ.
    pub private_subnets: BTreeMap<String, String>,
    /// What an instance in a public subnet needs before it boots (its route
    /// to the internet); empty for static placement.
    pub public_routes: Vec<Address>,
    /// By AZ: what an instance in that AZ's private subnet needs before it
    /// boots (its route to the NAT gateway); empty for static placement.
    pub private_routes: BTreeMap<String, Address>,
}

impl Network {
    /// The public subnet ids of `azs`, in that order.
    pub fn public_subnets_in(&self, azs: &[String]) -> Vec<Value> {
        azs.iter().map(|az| json!(self.public_subnets[az])).collect()
    }

    /// The private subnet ids of `azs`, in that order.
    pub fn private_subnets_in(&self, azs: &[String]) -> Vec<Value> {
        azs.iter().map(|az| json!(self.private_subnets[az])).collect()
    }

    /// The route tables instances in the private subnets of `azs` wait for.
    pub fn private_routes_in(&self, azs: &[String]) -> Vec<Address> {
        azs.iter().filter_map(|az| self.private_routes.get(az).cloned()).collect()
    }
}

/// The network resources of the cluster (none for static placement) and how
/// to refer to them.
pub fn expand(cluster: &Cluster) -> (Vec<Resource>, Network) {
    match &cluster.placement {
        Placement::Dynamic { vpc_cidr } => dynamic(cluster, *vpc_cidr),
        Placement::Static { vpc_id, subnets } => {
            let network = Network {
                vpc_id: vpc_id.clone(),
                public_subnets: subnets.iter().map(|(az, s)| (az.clone(), s.public.clone())).collect(),
                private_subnets: subnets.iter().map(|(az, s)| (az.clone(), s.private.clone())).collect(),
                public_routes: Vec::new(),
                private_routes: BTreeMap::new(),
            };
            (Vec::new(), network)
        }
    }
}

/// The subnet blocks of each AZ: the VPC cut into 2 x AZs equal
/// power-of-two pieces, the public subnets first, then the private ones,
/// each in AZ order.
pub fn carve(vpc_cidr: Ipv4Cidr, azs: &[String]) -> BTreeMap<String, (Ipv4Cidr, Ipv4Cidr)> {
    // Validation made sure the pieces are large enough.
    let blocks = vpc_cidr.split(2 * azs.len()).unwrap_or_default();
    azs.iter().enumerate().map(|(i, az)| (az.clone(), (blocks[i], blocks[azs.len() + i]))).collect()
}

fn dynamic(cluster: &Cluster, vpc_cidr: Ipv4Cidr) -> (Vec<Resource>, Network) {
    let tags = Tags::new(&cluster.name, &cluster.tags);
    let tag = |role: &str, az: Option<&str>| tags::to_value(tags.resource(role, az));
    let mut out = Vec::new();

    let vpc = Address::new("aws_vpc", "main");
    let vpc_id = reference(&vpc, "id");
    out.push(resource(
        vpc,
        json!({
            "cidr_block": vpc_cidr.to_string(),
            "enable_dns_support": true,
            "enable_dns_hostnames": true,
            "tags": tag("vpc", None),
        }),
    ));

    let igw = Address::new("aws_internet_gateway", "main");
    out.push(resource(igw.clone(), json!({ "vpc_id": vpc_id, "tags": tag("igw", None) })));

    let mut network = Network {
        vpc_id: vpc_id.clone(),
        public_subnets: BTreeMap::new(),
        private_subnets: BTreeMap::new(),
        public_routes: Vec::new(),
        private_routes: BTreeMap::new(),
    };
    for (az, (public_cidr, private_cidr)) in carve(vpc_cidr, &cluster.azs) {
        let public = Address::keyed("aws_subnet", "public", &az);
        let private = Address::keyed("aws_subnet", "private", &az);
        for (address, cidr, tier) in
            [(&public, public_cidr, SubnetTier::Public), (&private, private_cidr, SubnetTier::Private)]
        {
            out.push(resource(
                address.clone(),
                json!({
                    "vpc_id": vpc_id,
                    "cidr_block": cidr.to_string(),
                    "availability_zone": az,
                    "map_public_ip_on_launch": tier == SubnetTier::Public,
                    "tags": tags::to_value(tags.subnet(tier, &az)),
                }),
            ));
        }

        let eip = Address::keyed("aws_eip", "nat", &az);
        out.push(resource(eip.clone(), json!({ "tags": tag("eip-nat", Some(&az)) })));

        // AWS refuses a NAT gateway in a VPC without an attached internet
        // gateway, and nothing in its attributes says so: hence depends_on.
        let nat = Address::keyed("aws_nat_gateway", "main", &az);
        let mut nat_gateway = resource(
            nat.clone(),
            json!({
                "subnet_id": reference(&public, "id"),
                "allocation_id": reference(&eip, "id"),
                "tags": tag("nat", Some(&az)),
            }),
        );
        nat_gateway.depends_on.push(igw.clone());
        out.push(nat_gateway);

        let route_table = Address::keyed("aws_route_table", "private", &az);
        out.push(resource(
            route_table.clone(),
            json!({
                "vpc_id": vpc_id,
                "routes": [{
                    "destination_cidr_block": DEFAULT_ROUTE,
                    "nat_gateway_id": reference(&nat, "id"),
                }],
                "subnet_ids": [reference(&private, "id")],
                "tags": tag("rt-private", Some(&az)),
            }),
        ));

        network.public_subnets.insert(az.clone(), reference(&public, "id"));
        network.private_subnets.insert(az.clone(), reference(&private, "id"));
        network.private_routes.insert(az, route_table);
    }

    let public_routes = Address::new("aws_route_table", "public");
    out.push(resource(
        public_routes.clone(),
        json!({
            "vpc_id": vpc_id,
            "routes": [{
                "destination_cidr_block": DEFAULT_ROUTE,
                "gateway_id": reference(&igw, "id"),
            }],
            "subnet_ids": network.public_subnets_in(&cluster.azs),
            "tags": tag("rt-public", None),
        }),
    ));
    network.public_routes.push(public_routes);

    (out, network)
}
