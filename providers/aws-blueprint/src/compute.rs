//! Compute: the bastion, the control-plane instances and the API load
//! balancer in front of them, and a launch template plus an auto scaling
//! group for each worker pool.
//!
//! Instances wait (`depends_on`) for the route tables of their subnets, so
//! that cloud-init on a new node finds its way out to the internet.
//!
//! Control-plane instances register themselves with the API load balancer
//! (`load_balancer`) rather than the load balancer listing them, and form
//! one rolling group: a change that replaces them (new user data from the
//! profile, a new image) replaces one node at a time, the new one created
//! and registered before the old one is deregistered and terminated, so the
//! API keeps answering. Growing the pool adds registered nodes and touches
//! none of the others; shrinking deregisters each node before terminating it. The
//! network and security groups come in as references (`network.rs`,
//! `security.rs`); the user data is rendered by `bootstrap/` (kubeadm init
//! on control plane 0, join everywhere else) and refers to the load
//! balancer's DNS name, so the load balancer comes first.

use serde_json::{json, Value};
use skyplan_engine::{Address, Resource};

use crate::bootstrap::{self, KubeadmRole, NodeInputs};
use crate::cluster::{Cluster, Pool, WorkerPool, AUTO_AMI, BASTION_DISK_GIB};
use crate::network::Network;
use crate::security::SecurityGroups;
use crate::tags::{self, Tags};
use crate::{names, reference, resource};

/// The API load balancer's health check: every 10 s, 5 s to answer; two
/// answers bring a node in, two misses take it out.
const HEALTH_CHECK: (u32, u32, u32, u32) = (10, 5, 2, 2);
/// Long enough for `kubectl logs -f` and watches between keepalives.
const ELB_IDLE_TIMEOUT_SECS: u32 = 600;

pub fn expand(cluster: &Cluster, network: &Network, groups: &SecurityGroups) -> Vec<Resource> {
    let tags = Tags::new(&cluster.name, &cluster.tags);
    let mut out = Vec::new();
    if let (Some(bastion), Some(group)) = (&cluster.bastion, &groups.bastion) {
        let first_az = &cluster.azs[0];
        let mut attrs = json!({
            "ami": AUTO_AMI,
            "instance_type": bastion.instance_type,
            "subnet_id": network.public_subnets[first_az],
            "vpc_security_group_ids": [group],
            "root_volume_size_gib": BASTION_DISK_GIB,
            "associate_public_ip_address": true,
            "tags": tags::to_value(tags.resource("bastion", None)),
        });
        set_key_name(&mut attrs, cluster);
        let mut instance = resource(Address::new("aws_instance", "bastion"), attrs);
        instance.depends_on = network.public_routes.clone();
        out.push(instance);
    }

    let control_plane = &cluster.control_plane;
    let elb = apiserver_elb(cluster, network, groups);
    let elb_name = reference(&elb.address, "id");
    let endpoint = reference(&elb.address, "dns_name");
    for (index, az) in round_robin(&control_plane.pool) {
        let address = Address::keyed("aws_instance", "control_plane", index.to_string());
        let pool = &control_plane.pool;
        let node = NodeInputs {
            role: if index == 0 { KubeadmRole::Init } else { KubeadmRole::JoinControlPlane },
            pool: pool.name.clone(),
            no_workloads: !control_plane.allow_workloads,
        };
        let user_data = bootstrap::blueprint_user_data(cluster, &node, &endpoint);
        let mut attrs = json!({
            "ami": pool.ami,
            "instance_type": pool.instance_type,
            "subnet_id": network.private_subnets[az],
            "vpc_security_group_ids": [groups.control_plane],
            "user_data": user_data,
            "root_volume_size_gib": pool.disk_gib,
            "associate_public_ip_address": false,
            "load_balancer": elb_name,
            "tags": tags::to_value(tags.resource(&format!("control-plane-{index}"), None)),
        });
        set_key_name(&mut attrs, cluster);
        let mut instance = resource(address, attrs);
        instance.depends_on = network.private_routes.get(az).cloned().into_iter().collect();
        instance.rolling_group = Some(CONTROL_PLANE_ROLLING_GROUP.to_string());
        out.push(instance);
    }
    out.push(elb);

    for worker in &cluster.workers {
        out.extend(worker_pool(cluster, network, groups, worker));
    }
    out
}

/// The control-plane instance indexes and their AZs: round-robin over the
/// pool's AZs in order.
fn round_robin(pool: &Pool) -> impl Iterator<Item = (u32, &String)> {
    (0..pool.size).zip(pool.azs.iter().cycle())
}

fn set_key_name(attrs: &mut Value, cluster: &Cluster) {
    if let Some(key) = &cluster.ssh_key_name {
        attrs["key_name"] = json!(key);
    }
}

/// The rolling group of the control-plane instances.
pub const CONTROL_PLANE_ROLLING_GROUP: &str = "control-plane";

/// The classic ELB in front of the API servers, across every public subnet.
/// The control-plane instances register themselves with it.
fn apiserver_elb(cluster: &Cluster, network: &Network, groups: &SecurityGroups) -> Resource {
    let tags = Tags::new(&cluster.name, &cluster.tags);
    let port = cluster.api_port;
    let (interval, timeout, healthy, unhealthy) = HEALTH_CHECK;
    resource(
        Address::new("aws_elb", "apiserver"),
        json!({
            "name": names::apiserver_elb(&cluster.name),
            "internal": false,
            "subnets": network.public_subnets_in(&cluster.azs),
            "security_groups": [groups.apiserver_lb],
            "listeners": [{
                "lb_port": port,
                "lb_protocol": "TCP",
                "instance_port": port,
                "instance_protocol": "TCP",
            }],
            "health_check": {
                "target": format!("TCP:{port}"),
                "interval": interval,
                "timeout": timeout,
                "healthy_threshold": healthy,
                "unhealthy_threshold": unhealthy,
            },
            "cross_zone_load_balancing": true,
            "idle_timeout": ELB_IDLE_TIMEOUT_SECS,
            "tags": tags::to_value(tags.resource("apiserver", None)),
        }),
    )
}

/// A worker pool's launch template and auto scaling group.
fn worker_pool(cluster: &Cluster, network: &Network, groups: &SecurityGroups, worker: &WorkerPool) -> [Resource; 2] {
    let pool = &worker.pool;
    let tags = Tags::new(&cluster.name, &cluster.tags);
    let pool_tags = tags::to_value(tags.resource(&pool.name, None));
    let name = names::pool(&cluster.name, &pool.name);

    let template = Address::keyed("aws_launch_template", "pool", &pool.name);
    let mut attrs = json!({
        "name": name,
        "image_id": pool.ami,
        "instance_type": pool.instance_type,
        "vpc_security_group_ids": [groups.node],
        "user_data": bootstrap::blueprint_user_data(
            cluster,
            &NodeInputs { role: KubeadmRole::JoinWorker, pool: pool.name.clone(), no_workloads: false },
            &reference(&Address::new("aws_elb", "apiserver"), "dns_name"),
        ),
        "root_volume_size_gib": pool.disk_gib,
        "instance_tags": pool_tags,
        "tags": pool_tags,
    });
    set_key_name(&mut attrs, cluster);
    if let Some(spot) = &worker.spot {
        attrs["spot_max_price"] = json!(spot.max_price);
    }
    let launch_template = resource(template.clone(), attrs);

    let mut group = resource(
        Address::keyed("aws_autoscaling_group", "pool", &pool.name),
        json!({
            "name": name,
            "launch_template_id": reference(&template, "id"),
            "launch_template_version": reference(&template, "latest_version"),
            "min_size": worker.min,
            "max_size": worker.max,
            "desired_capacity": pool.size,
            "vpc_zone_identifier": network.private_subnets_in(&pool.azs),
            "tags": pool_tags,
        }),
    );
    group.depends_on = network.private_routes_in(&pool.azs);
    [launch_template, group]
}
