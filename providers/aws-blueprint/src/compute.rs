//! Compute: the bastion, the control-plane instances and the API load
//! balancer in front of them, and a launch template plus an auto scaling
//! group for each worker pool.
//!
//! Instances wait (`depends_on`) for the route tables of their subnets, so
//! that cloud-init on a new node finds its way out to the internet. The
//! load balancer comes before the first control plane (each instance names
//! it), every other control-plane instance is launched after the one before
//! it (`control_plane[N]` depends on `control_plane[N-1]`: kubeadm joins
//! etcd one member at a time), and worker pools' groups after
//! `control_plane[0]`.
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
use crate::model::Layer;

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
            "iam_instance_profile": pool.instance_profile(true),
            // Its create waits until the node is in the cluster (the AWS provider's apiwait.rs).
            "api_wait": {
                "host": endpoint,
                "port": cluster.api_port,
                "pki_secret": bootstrap::secret_name(&cluster.name, bootstrap::SecretKind::Pki),
            },
            "tags": tags::to_value(tags.resource(&format!("control-plane-{index}"), None)),
        });
        set_key_name(&mut attrs, cluster);
        set_image_lookup(&mut attrs, cluster, pool);
        let mut instance = resource(address, attrs);
        instance.depends_on = network.private_routes.get(az).cloned().into_iter().collect();
        if index > 0 {
            // Control planes join etcd one at a time: parallel joins break it.
            instance.depends_on.push(Address::keyed("aws_instance", "control_plane", (index - 1).to_string()));
        }
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

/// A pool without `ami` runs the newest image cluster-api publishes for the
/// profile's os pack and Kubernetes version: `ami_lookup` tells the provider
/// which (owner, name pattern, the instance type's architecture). Without
/// an os or a k8s pack there is nothing to look up: Amazon Linux ("auto").
fn set_image_lookup(attrs: &mut Value, cluster: &Cluster, pool: &Pool) {
    if let Some(lookup) = image_lookup(cluster, pool) {
        attrs["ami_lookup"] = lookup;
    }
}

pub(crate) fn image_lookup(cluster: &Cluster, pool: &Pool) -> Option<Value> {
    if pool.ami != AUTO_AMI {
        return None;
    }
    let packs = &cluster.profile.as_ref()?.packs;
    let os = packs.iter().find(|p| p.layer == Layer::Os)?;
    let k8s = packs.iter().find(|p| p.layer == Layer::K8s)?;
    let name = pool
        .ami_name
        .replace("{os}", &os.name.to_ascii_lowercase())
        .replace("{os_version}", &os.version)
        .replace("{kubernetes_version}", k8s.version.trim_start_matches('v'));
    Some(json!({"owner": pool.ami_owner, "name": name, "architecture": architecture(&pool.instance_type)}))
}

/// The CPU architecture of an instance type, as images name it: `arm64`
/// for Graviton (a `g` among the letters after the generation: m6g, c7gn,
/// r8gd, t4g, im4gn; and a1), `x86_64` otherwise (g5, p4d, m7i-flex).
pub fn architecture(instance_type: &str) -> &'static str {
    let family = instance_type.split('.').next().unwrap_or_default();
    let after_series = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let attributes = after_series.trim_start_matches(|c: char| c.is_ascii_digit());
    if family == "a1" || attributes.split('-').next().unwrap_or_default().contains('g') {
        "arm64"
    } else {
        "x86_64"
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
        "iam_instance_profile": pool.instance_profile(false),
        "instance_tags": pool_tags,
        "tags": pool_tags,
    });
    set_key_name(&mut attrs, cluster);
    set_image_lookup(&mut attrs, cluster, pool);
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
    // Workers join a control plane that is there.
    group.depends_on.push(Address::keyed("aws_instance", "control_plane", "0"));
    [launch_template, group]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::{self, demo_with, parse};

    fn find(text: &str, address: &str) -> Resource {
        let out = crate::expand(&parse(text)).unwrap();
        out.into_iter().find(|r| r.address.to_string() == address).unwrap_or_else(|| panic!("no {address}"))
    }

    #[test]
    fn pools_without_ami_look_up_the_cluster_api_image_of_their_os_and_version() {
        let lookup = json!({
            "owner": "819546954734",
            "name": "capa-ami-ubuntu-22.04-?1.30.4-*",
            "architecture": "x86_64",
        });
        let cp = find(fixtures::DEMO, "aws_instance.control_plane[0]");
        assert_eq!((cp.attrs["ami"].clone(), cp.attrs["ami_lookup"].clone()), (json!("auto"), lookup.clone()));
        let lt = find(fixtures::DEMO, "aws_launch_template.pool[worker]");
        assert_eq!((lt.attrs["image_id"].clone(), lt.attrs["ami_lookup"].clone()), (json!("auto"), lookup));
        let bastion = find(fixtures::DEMO, "aws_instance.bastion");
        assert!(!bastion.attrs.contains_key("ami_lookup"), "the bastion runs Amazon Linux");

        // An explicit ami wins; owner and name format can be overridden.
        let pinned = demo_with("instance_type = \"m5.large\"", "instance_type = \"m5.large\"\nami = \"ami-0abc\"");
        assert!(!find(&pinned, "aws_instance.control_plane[0]").attrs.contains_key("ami_lookup"));
        let own = demo_with(
            "instance_type = \"m5.xlarge\"",
            "instance_type = \"m7g.xlarge\"\nami_owner = \"123456789012\"\nami_name = \"mine-{os}{os_version}-k{kubernetes_version}\"",
        );
        assert_eq!(
            find(&own, "aws_launch_template.pool[worker]").attrs["ami_lookup"],
            json!({"owner": "123456789012", "name": "mine-ubuntu22.04-k1.30.4", "architecture": "arm64"})
        );
        // No os pack: nothing to look up, Amazon Linux as before.
        let no_os = fixtures::STATIC;
        assert!(!find(no_os, "aws_instance.control_plane[0]").attrs.contains_key("ami_lookup"));
    }

    #[test]
    fn control_planes_launch_one_after_the_other_and_workers_after_the_first() {
        let out = crate::expand(&parse(fixtures::DEMO)).unwrap();
        let deps = |a: &str| -> Vec<String> {
            out.iter().find(|r| r.address.to_string() == a).unwrap().depends_on.iter().map(|d| d.to_string()).collect()
        };
        assert!(!deps("aws_instance.control_plane[0]").iter().any(|d| d.starts_with("aws_instance")));
        assert!(deps("aws_instance.control_plane[1]").contains(&"aws_instance.control_plane[0]".to_string()));
        assert!(deps("aws_instance.control_plane[2]").contains(&"aws_instance.control_plane[1]".to_string()));
        assert!(deps("aws_autoscaling_group.pool[worker]").contains(&"aws_instance.control_plane[0]".to_string()));
        let cp0 = find(fixtures::DEMO, "aws_instance.control_plane[0]");
        assert_eq!(cp0.attrs["load_balancer"], "${aws_elb.apiserver.id}", "the load balancer comes first");
        // Each control plane's create waits until its node is in the cluster, through the endpoint.
        assert_eq!(
            cp0.attrs["api_wait"],
            json!({"host": "${aws_elb.apiserver.dns_name}", "port": 6443, "pki_secret": "aws.cluster.x-k8s.io/demo/pki"})
        );
    }

    #[test]
    fn nodes_run_with_their_roles_shared_profile_unless_the_pool_names_one() {
        let profile = |text: &str, a: &str| find(text, a).attrs.get("iam_instance_profile").cloned();
        assert_eq!(
            profile(fixtures::DEMO, "aws_instance.control_plane[0]"),
            Some(json!(crate::cluster::CONTROL_PLANE_PROFILE))
        );
        assert_eq!(
            profile(fixtures::DEMO, "aws_launch_template.pool[worker]"),
            Some(json!(crate::cluster::NODES_PROFILE))
        );
        assert_eq!(profile(fixtures::DEMO, "aws_instance.bastion"), None, "the bastion needs no AWS access");
        let own =
            demo_with("instance_type = \"m5.xlarge\"", "instance_type = \"m5.xlarge\"\ninstance_profile = \"mine\"");
        assert_eq!(profile(&own, "aws_launch_template.pool[worker]"), Some(json!("mine")));
        assert_eq!(profile(&own, "aws_instance.control_plane[0]"), Some(json!(crate::cluster::CONTROL_PLANE_PROFILE)));
    }

    #[test]
    fn graviton_instance_types_are_arm64() {
        for arm in ["m6g.large", "c7gn.xlarge", "r8gd.2xlarge", "t4g.micro", "im4gn.large", "a1.medium", "g5g.xlarge"] {
            assert_eq!(architecture(arm), "arm64", "{arm}");
        }
        for x86 in ["m5.large", "g5.xlarge", "g4dn.xlarge", "p4d.24xlarge", "m7i-flex.large", "t3.micro", "c5n.large"] {
            assert_eq!(architecture(x86), "x86_64", "{x86}");
        }
    }
}
