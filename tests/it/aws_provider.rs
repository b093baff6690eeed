//! `AwsProvider` against the local AWS emulator, through the `Provider`
//! trait with the attributes of docs/aws-resources.md, checked with the
//! test's own SDK clients (never the provider's code).
//!
//! Each test: create a realistic group of resources, read them back (equal
//! to what create returned: an unchanged resource diffs clean), update some
//! in place and see the change in AWS, delete everything and see that
//! nothing carrying the `skyplan:address` tag is left and that reads say
//! the resources are gone. What the emulator cannot show (waiting, tokens,
//! throttling, blocked deletes) is covered by the provider's unit tests;
//! docs/testing.md maps each gap to its test.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use serde_json::{json, Value};
use skyplan_aws::{AwsProvider, AwsSettings, ADDRESS_TAG};
use skyplan_engine::{Address, Attrs, OpContext, Provider, ReadRequest};

use crate::emulator::{Emulator, REGION};

fn attrs(v: Value) -> Attrs {
    v.as_object().expect("attributes are a table").clone()
}

fn ctx(address: &str) -> OpContext {
    OpContext::new(address.parse().expect("address"), format!("test-{address}"), None)
}

struct Cloud {
    provider: AwsProvider,
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancing::Client,
    asg: aws_sdk_autoscaling::Client,
    /// What create returned, by address: the state a real run would record.
    state: BTreeMap<String, Attrs>,
    _emulator: Emulator,
}

impl Cloud {
    async fn new() -> Cloud {
        let emulator = Emulator::start();
        let sdk = emulator.sdk_config().await;
        Cloud {
            provider: AwsProvider::from_sdk_config(&sdk),
            ec2: aws_sdk_ec2::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancing::Client::new(&sdk),
            asg: aws_sdk_autoscaling::Client::new(&sdk),
            state: BTreeMap::new(),
            _emulator: emulator,
        }
    }

    /// Create through the trait; check the result holds every input as given
    /// plus the kind's computed attributes; record it.
    async fn create(&mut self, address: &str, input: Value) -> Attrs {
        let input = attrs(input);
        let out = self.provider.create(&ctx(address), &input).await.unwrap_or_else(|e| panic!("create {address}: {e}"));
        for (k, v) in &input {
            assert_eq!(out.get(k), Some(v), "{address}: create returns `{k}` as given");
        }
        let kind = address.split('.').next().unwrap();
        for computed in self.provider.schema(kind, &input).computed {
            assert!(out.contains_key(&computed), "{address}: create returns computed `{computed}`: {out:?}");
        }
        assert!(out["id"].as_str().is_some_and(|s| !s.is_empty()), "{address}: an id");
        self.state.insert(address.to_string(), out.clone());
        out
    }

    fn id(&self, address: &str) -> String {
        self.state[address]["id"].as_str().unwrap().to_string()
    }

    fn requests(&self, addresses: &[&str]) -> Vec<ReadRequest> {
        addresses
            .iter()
            .map(|a| {
                let address: Address = a.parse().unwrap();
                ReadRequest { kind: address.kind.clone(), address, prior: self.state[*a].clone() }
            })
            .collect()
    }

    /// Read the resources back in one batch: each equals its recorded state.
    async fn assert_reads_clean(&self, addresses: &[&str]) {
        let out = self.provider.read(&self.requests(addresses)).await.expect("read");
        for (address, live) in addresses.iter().zip(out) {
            let live = live.unwrap_or_else(|| panic!("{address} reads as gone right after create"));
            assert_eq!(&live, &self.state[*address], "{address}: read after create differs from the state (a diff)");
        }
    }

    async fn update(&mut self, address: &str, change: impl FnOnce(&mut Attrs)) -> Attrs {
        let prior = self.state[address].clone();
        let mut desired = prior.clone();
        let kind = address.split('.').next().unwrap();
        for computed in self.provider.schema(kind, &prior).computed {
            desired.remove(&computed);
        }
        change(&mut desired);
        let out = self
            .provider
            .update(&ctx(address), &prior, &desired)
            .await
            .unwrap_or_else(|e| panic!("update {address}: {e}"));
        self.state.insert(address.to_string(), out.clone());
        self.assert_reads_clean(&[address]).await;
        out
    }

    /// Delete in the given order (reverse dependency order, as the engine
    /// would), then: every read says gone, a second delete is fine.
    async fn delete_all(&mut self, addresses: &[&str]) {
        for address in addresses {
            self.provider
                .delete(&ctx(address), &self.state[*address])
                .await
                .unwrap_or_else(|e| panic!("delete {address}: {e}"));
        }
        let out = self.provider.read(&self.requests(addresses)).await.expect("read after delete");
        for (address, live) in addresses.iter().zip(out) {
            assert!(live.is_none(), "{address} still reads as present after delete: {live:?}");
        }
        for address in addresses {
            self.provider
                .delete(&ctx(address), &self.state[*address])
                .await
                .unwrap_or_else(|e| panic!("second delete of {address}: {e}"));
        }
    }

    /// Everything in the emulator still alive and tagged with our address tag.
    async fn tagged_leftovers(&self) -> Vec<String> {
        let tagged = || Filter::builder().name("tag-key").values(ADDRESS_TAG).build();
        let mut left = Vec::new();
        let vpcs = self.ec2.describe_vpcs().filters(tagged()).send().await.unwrap();
        left.extend(vpcs.vpcs().iter().filter_map(|v| v.vpc_id()).map(String::from));
        let subnets = self.ec2.describe_subnets().filters(tagged()).send().await.unwrap();
        left.extend(subnets.subnets().iter().filter_map(|s| s.subnet_id()).map(String::from));
        let igws = self.ec2.describe_internet_gateways().filters(tagged()).send().await.unwrap();
        left.extend(igws.internet_gateways().iter().filter_map(|g| g.internet_gateway_id()).map(String::from));
        let eips = self.ec2.describe_addresses().filters(tagged()).send().await.unwrap();
        left.extend(eips.addresses().iter().filter_map(|a| a.allocation_id()).map(String::from));
        // The emulator ignores tag filters on NAT gateways and keeps deleted ones: filter here.
        let nats = self.ec2.describe_nat_gateways().send().await.unwrap();
        left.extend(
            nats.nat_gateways()
                .iter()
                .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
                .filter(|n| n.tags().iter().any(|t| t.key() == Some(ADDRESS_TAG)))
                .filter_map(|n| n.nat_gateway_id())
                .map(String::from),
        );
        let rts = self.ec2.describe_route_tables().filters(tagged()).send().await.unwrap();
        left.extend(rts.route_tables().iter().filter_map(|r| r.route_table_id()).map(String::from));
        let sgs = self.ec2.describe_security_groups().filters(tagged()).send().await.unwrap();
        left.extend(sgs.security_groups().iter().filter_map(|g| g.group_id()).map(String::from));
        let alive = Filter::builder()
            .name("instance-state-name")
            .values("pending")
            .values("running")
            .values("stopping")
            .values("stopped")
            .build();
        let instances = self.ec2.describe_instances().filters(tagged()).filters(alive).send().await.unwrap();
        left.extend(
            instances
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| i.instance_id())
                .map(String::from),
        );
        let lts = self.ec2.describe_launch_templates().send().await.unwrap();
        left.extend(
            lts.launch_templates()
                .iter()
                .filter(|t| t.tags().iter().any(|t| t.key() == Some(ADDRESS_TAG)))
                .filter_map(|t| t.launch_template_id())
                .map(String::from),
        );
        let lbs = self.elb.describe_load_balancers().send().await.unwrap();
        left.extend(lbs.load_balancer_descriptions().iter().filter_map(|l| l.load_balancer_name()).map(String::from));
        let groups = self.asg.describe_auto_scaling_groups().send().await.unwrap();
        left.extend(groups.auto_scaling_groups().iter().filter_map(|g| g.auto_scaling_group_name()).map(String::from));
        left
    }
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key().unwrap_or("").to_string(), t.value().unwrap_or("").to_string())).collect()
}

fn cluster_tags(name: &str) -> Value {
    json!({"Name": name, "kubernetes.io/cluster/demo": "owned", "sigs.k8s.io/cluster-api-provider-aws/cluster/demo": "owned"})
}

/// VPC, two AZs of public and private subnets, an internet gateway, an EIP
/// and a NAT gateway per AZ, public and private route tables.
#[tokio::test]
async fn network_chain_creates_reads_updates_and_deletes() {
    let mut cloud = Cloud::new().await;
    let vpc = cloud
        .create(
            "aws_vpc.main",
            json!({"cidr_block": "10.0.0.0/16", "enable_dns_support": true, "enable_dns_hostnames": true, "tags": cluster_tags("demo-vpc")}),
        )
        .await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let azs = ["us-east-1a", "us-east-1b"];
    for (n, az) in azs.iter().enumerate() {
        let mut public_tags = cluster_tags(&format!("demo-subnet-public-{az}"));
        public_tags["kubernetes.io/role/elb"] = json!("1");
        cloud
            .create(
                &format!("aws_subnet.public[{az}]"),
                json!({"vpc_id": vpc_id, "cidr_block": format!("10.0.{}.0/20", n * 32), "availability_zone": az,
                       "map_public_ip_on_launch": true, "tags": public_tags}),
            )
            .await;
        cloud
            .create(
                &format!("aws_subnet.private[{az}]"),
                json!({"vpc_id": vpc_id, "cidr_block": format!("10.0.{}.0/20", n * 32 + 16), "availability_zone": az,
                       "tags": cluster_tags(&format!("demo-subnet-private-{az}"))}),
            )
            .await;
    }
    let igw =
        cloud.create("aws_internet_gateway.main", json!({"vpc_id": vpc_id, "tags": cluster_tags("demo-igw")})).await;
    for az in azs {
        let eip =
            cloud.create(&format!("aws_eip.nat[{az}]"), json!({"tags": cluster_tags(&format!("demo-eip-{az}"))})).await;
        assert!(eip["public_ip"].as_str().is_some(), "an EIP has a public IP");
        let subnet = cloud.id(&format!("aws_subnet.public[{az}]"));
        cloud
            .create(
                &format!("aws_nat_gateway.main[{az}]"),
                json!({"subnet_id": subnet, "allocation_id": eip["id"], "tags": cluster_tags(&format!("demo-nat-{az}"))}),
            )
            .await;
    }
    let public_subnets: Vec<String> = azs.iter().map(|az| cloud.id(&format!("aws_subnet.public[{az}]"))).collect();
    cloud
        .create(
            "aws_route_table.public",
            json!({"vpc_id": vpc_id, "routes": [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": igw["id"]}],
                   "subnet_ids": public_subnets, "tags": cluster_tags("demo-rt-public")}),
        )
        .await;
    for az in azs {
        let nat = cloud.id(&format!("aws_nat_gateway.main[{az}]"));
        let subnet = cloud.id(&format!("aws_subnet.private[{az}]"));
        cloud
            .create(
                &format!("aws_route_table.private[{az}]"),
                json!({"vpc_id": vpc_id, "routes": [{"destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": nat}],
                       "subnet_ids": [subnet], "tags": cluster_tags(&format!("demo-rt-private-{az}"))}),
            )
            .await;
    }
    let all: Vec<String> = cloud.state.keys().cloned().collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();

    // One batched read of everything: equal to the state, one describe per kind.
    let before = cloud.provider.api_calls();
    cloud.assert_reads_clean(&all).await;
    let after = cloud.provider.api_calls();
    let delta = |op: &str| after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0);
    assert_eq!(delta("ec2:DescribeSubnets"), 1, "four subnets, one call");
    assert_eq!(delta("ec2:DescribeNatGateways"), 1);
    assert_eq!(delta("ec2:DescribeRouteTables"), 1);
    assert_eq!(delta("ec2:DescribeAddresses"), 1);

    // What AWS holds, seen by our own client.
    let attr = cloud
        .ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc_id)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(attr.enable_dns_hostnames().and_then(|v| v.value()), Some(true));
    let vpcs = cloud.ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    let tags = ec2_tags(vpcs.vpcs()[0].tags());
    assert_eq!(tags[ADDRESS_TAG], "aws_vpc.main", "the address tag is on the resource");
    assert_eq!(tags["Name"], "demo-vpc");
    let igws = cloud
        .ec2
        .describe_internet_gateways()
        .internet_gateway_ids(cloud.id("aws_internet_gateway.main"))
        .send()
        .await
        .unwrap();
    assert_eq!(igws.internet_gateways()[0].attachments()[0].vpc_id(), Some(vpc_id.as_str()));
    let nat_a = cloud.id("aws_nat_gateway.main[us-east-1a]");
    let nats = cloud.ec2.describe_nat_gateways().nat_gateway_ids(&nat_a).send().await.unwrap();
    assert_eq!(nats.nat_gateways()[0].state().map(|s| s.as_str()), Some("available"));
    let private_a = cloud.id("aws_route_table.private[us-east-1a]");
    let rts = cloud.ec2.describe_route_tables().route_table_ids(&private_a).send().await.unwrap();
    let rt = &rts.route_tables()[0];
    assert!(rt
        .routes()
        .iter()
        .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && r.nat_gateway_id() == Some(nat_a.as_str())));
    assert_eq!(rt.associations()[0].subnet_id(), Some(cloud.id("aws_subnet.private[us-east-1a]").as_str()));
    let subnets = cloud.ec2.describe_subnets().subnet_ids(&public_subnets[0]).send().await.unwrap();
    assert_eq!(subnets.subnets()[0].map_public_ip_on_launch(), Some(true));

    // In place: VPC tags (one changed, one removed, one added); the private
    // route of AZ a moved to AZ b's NAT gateway; a subnet's public mapping.
    cloud
        .update("aws_vpc.main", |a| {
            a["tags"]["Name"] = json!("demo-vpc-renamed");
            a["tags"].as_object_mut().unwrap().remove("sigs.k8s.io/cluster-api-provider-aws/cluster/demo");
            a["tags"]["team"] = json!("platform");
        })
        .await;
    let vpcs = cloud.ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    let tags = ec2_tags(vpcs.vpcs()[0].tags());
    assert_eq!(tags["Name"], "demo-vpc-renamed");
    assert_eq!(tags["team"], "platform");
    assert!(!tags.contains_key("sigs.k8s.io/cluster-api-provider-aws/cluster/demo"));
    assert_eq!(tags[ADDRESS_TAG], "aws_vpc.main", "the address tag survives tag updates");
    let nat_b = cloud.id("aws_nat_gateway.main[us-east-1b]");
    cloud.update("aws_route_table.private[us-east-1a]", |a| a["routes"][0]["nat_gateway_id"] = json!(nat_b)).await;
    let rts = cloud.ec2.describe_route_tables().route_table_ids(&private_a).send().await.unwrap();
    assert!(rts.route_tables()[0].routes().iter().any(|r| r.nat_gateway_id() == Some(nat_b.as_str())));
    cloud.update("aws_subnet.public[us-east-1b]", |a| a["map_public_ip_on_launch"] = json!(false)).await;
    let subnets = cloud.ec2.describe_subnets().subnet_ids(&public_subnets[1]).send().await.unwrap();
    assert_eq!(subnets.subnets()[0].map_public_ip_on_launch(), Some(false));

    // Drift: a tag added outside skyplan shows up in a read (a diff to undo).
    cloud
        .ec2
        .create_tags()
        .resources(cloud.id("aws_subnet.private[us-east-1b]"))
        .tags(aws_sdk_ec2::types::Tag::builder().key("added-by-hand").value("x").build())
        .send()
        .await
        .unwrap();
    let read = cloud.provider.read(&cloud.requests(&["aws_subnet.private[us-east-1b]"])).await.unwrap();
    assert_eq!(read[0].as_ref().unwrap()["tags"]["added-by-hand"], json!("x"));

    let mut order: Vec<String> = [
        "aws_route_table.private[us-east-1b]",
        "aws_route_table.private[us-east-1a]",
        "aws_route_table.public",
        "aws_nat_gateway.main[us-east-1b]",
        "aws_nat_gateway.main[us-east-1a]",
        "aws_eip.nat[us-east-1b]",
        "aws_eip.nat[us-east-1a]",
        "aws_internet_gateway.main",
    ]
    .map(String::from)
    .to_vec();
    order.extend(azs.iter().flat_map(|az| [format!("aws_subnet.public[{az}]"), format!("aws_subnet.private[{az}]")]));
    order.push("aws_vpc.main".into());
    assert_eq!(order.len(), all.len());
    cloud.delete_all(&order.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(cloud.tagged_leftovers().await, Vec::<String>::new());
}

/// The cluster's four security groups with ingress tables (CIDR, group and
/// self sources) and separate rules between groups on the same groups.
#[tokio::test]
async fn security_groups_and_rules_share_groups_without_fighting() {
    let mut cloud = Cloud::new().await;
    let vpc =
        cloud.create("aws_vpc.main", json!({"cidr_block": "10.1.0.0/16", "tags": cluster_tags("demo-vpc")})).await;
    let vpc_id = vpc["id"].clone();
    let bastion = cloud
        .create(
            "aws_security_group.bastion",
            json!({"name": "demo-bastion", "description": "bastion", "vpc_id": vpc_id,
                   "ingress": [{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["203.0.113.0/24"], "description": "ssh"}],
                   "tags": cluster_tags("demo-bastion")}),
        )
        .await;
    let lb = cloud
        .create(
            "aws_security_group.apiserver_lb",
            json!({"name": "demo-apiserver-lb", "description": "API server load balancer", "vpc_id": vpc_id,
                   "ingress": [{"protocol": "tcp", "from_port": 6443, "to_port": 6443, "cidr_blocks": ["0.0.0.0/0"]}],
                   "tags": cluster_tags("demo-apiserver-lb")}),
        )
        .await;
    let cp = cloud
        .create(
            "aws_security_group.control_plane",
            json!({"name": "demo-control-plane", "description": "control plane", "vpc_id": vpc_id, "ingress": [
                {"protocol": "tcp", "from_port": 6443, "to_port": 6443, "source_security_group_ids": [lb["id"]]},
                {"protocol": "tcp", "from_port": 22, "to_port": 22, "source_security_group_ids": [bastion["id"]]},
                {"protocol": "-1", "from_port": 0, "to_port": 0, "self": true}
            ], "tags": cluster_tags("demo-control-plane")}),
        )
        .await;
    let node = cloud
        .create(
            "aws_security_group.node",
            json!({"name": "demo-node", "description": "nodes", "vpc_id": vpc_id, "ingress": [
                {"protocol": "tcp", "from_port": 22, "to_port": 22, "source_security_group_ids": [bastion["id"]]},
                {"protocol": "all", "from_port": 0, "to_port": 0, "self": true}
            ], "tags": cluster_tags("demo-node")}),
        )
        .await;
    cloud
        .create(
            "aws_security_group_rule.control_plane_from_node",
            json!({"security_group_id": cp["id"], "type": "ingress", "protocol": "-1", "from_port": 0, "to_port": 0,
                   "source_security_group_id": node["id"], "description": "nodes to control plane", "tags": cluster_tags("demo-cp-from-node")}),
        )
        .await;
    cloud
        .create(
            "aws_security_group_rule.node_from_control_plane",
            json!({"security_group_id": node["id"], "type": "ingress", "protocol": "tcp", "from_port": 10250, "to_port": 10250,
                   "source_security_group_id": cp["id"]}),
        )
        .await;
    cloud
        .create(
            "aws_security_group_rule.node_ports",
            json!({"security_group_id": node["id"], "type": "ingress", "protocol": "tcp", "from_port": 30000, "to_port": 32767,
                   "cidr_blocks": ["10.1.0.0/16", "192.168.0.0/16"]}),
        )
        .await;
    let all = [
        "aws_vpc.main",
        "aws_security_group.bastion",
        "aws_security_group.apiserver_lb",
        "aws_security_group.control_plane",
        "aws_security_group.node",
        "aws_security_group_rule.control_plane_from_node",
        "aws_security_group_rule.node_from_control_plane",
        "aws_security_group_rule.node_ports",
    ];
    // The groups' reads leave out the rules the rule resources own.
    cloud.assert_reads_clean(&all).await;
    assert_eq!(
        cloud.state["aws_security_group_rule.node_ports"]["id"].as_str().unwrap().split(',').count(),
        2,
        "one AWS rule per CIDR"
    );

    let cp_id = cp["id"].as_str().unwrap();
    let groups = cloud.ec2.describe_security_groups().group_ids(cp_id).send().await.unwrap();
    let perms = groups.security_groups()[0].ip_permissions();
    let from = |g: &str| perms.iter().any(|p| p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(g)));
    assert!(from(lb["id"].as_str().unwrap()) && from(node["id"].as_str().unwrap()) && from(cp_id), "{perms:?}");

    // In place: the bastion's SSH sources change; a rule's tags change.
    cloud.update("aws_security_group.bastion", |a| a["ingress"][0]["cidr_blocks"] = json!(["198.51.100.0/24"])).await;
    let groups = cloud.ec2.describe_security_groups().group_ids(bastion["id"].as_str().unwrap()).send().await.unwrap();
    let cidrs: Vec<&str> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .flat_map(|p| p.ip_ranges())
        .filter_map(|r| r.cidr_ip())
        .collect();
    assert_eq!(cidrs, ["198.51.100.0/24"]);
    cloud.update("aws_security_group_rule.control_plane_from_node", |a| a["tags"]["team"] = json!("platform")).await;

    // Drift: a rule added by hand shows in the group's ingress; the update removes it again.
    cloud
        .ec2
        .authorize_security_group_ingress()
        .group_id(cp_id)
        .ip_protocol("tcp")
        .from_port(8080)
        .to_port(8080)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let live =
        cloud.provider.read(&cloud.requests(&["aws_security_group.control_plane"])).await.unwrap().remove(0).unwrap();
    assert_eq!(live["ingress"].as_array().unwrap().len(), 4, "{live:?}");
    let desired = {
        let mut d = cloud.state["aws_security_group.control_plane"].clone();
        d.remove("id");
        d
    };
    cloud.provider.update(&ctx("aws_security_group.control_plane"), &live, &desired).await.unwrap();
    cloud.assert_reads_clean(&["aws_security_group.control_plane"]).await;

    cloud
        .delete_all(&[
            "aws_security_group_rule.node_ports",
            "aws_security_group_rule.node_from_control_plane",
            "aws_security_group_rule.control_plane_from_node",
            "aws_security_group.node",
            "aws_security_group.control_plane",
            "aws_security_group.apiserver_lb",
            "aws_security_group.bastion",
            "aws_vpc.main",
        ])
        .await;
    assert_eq!(cloud.tagged_leftovers().await, Vec::<String>::new());
}

/// A bastion and a control-plane instance, and the API server's classic ELB
/// with its listener, health check and registered instance.
#[tokio::test]
async fn instances_and_a_load_balancer() {
    let mut cloud = Cloud::new().await;
    cloud.ec2.create_key_pair().key_name("ops").send().await.unwrap();
    let vpc =
        cloud.create("aws_vpc.main", json!({"cidr_block": "10.2.0.0/16", "tags": cluster_tags("demo-vpc")})).await;
    let public = cloud
        .create(
            "aws_subnet.public[us-east-1a]",
            json!({"vpc_id": vpc["id"], "cidr_block": "10.2.0.0/20", "availability_zone": "us-east-1a", "map_public_ip_on_launch": true}),
        )
        .await;
    let private = cloud
        .create(
            "aws_subnet.private[us-east-1a]",
            json!({"vpc_id": vpc["id"], "cidr_block": "10.2.16.0/20", "availability_zone": "us-east-1a"}),
        )
        .await;
    cloud.create("aws_internet_gateway.main", json!({"vpc_id": vpc["id"]})).await;
    let sg = cloud
        .create("aws_security_group.node", json!({"name": "demo-node", "description": "nodes", "vpc_id": vpc["id"]}))
        .await;
    let sg2 = cloud
        .create("aws_security_group.extra", json!({"name": "demo-extra", "description": "extra", "vpc_id": vpc["id"]}))
        .await;
    let bastion = cloud
        .create(
            "aws_instance.bastion",
            json!({"ami": "auto", "instance_type": "t3.micro", "subnet_id": public["id"], "vpc_security_group_ids": [sg["id"]],
                   "key_name": "ops", "user_data": "#!/bin/bash\necho bastion\n", "root_volume_size_gib": 20,
                   "associate_public_ip_address": true, "tags": cluster_tags("demo-bastion")}),
        )
        .await;
    assert_eq!(bastion["ami"], json!("auto"));
    assert!(bastion["resolved_ami"].as_str().unwrap().starts_with("ami-"));
    assert!(bastion["private_ip"].as_str().is_some());
    let cp = cloud
        .create(
            "aws_instance.control_plane[0]",
            json!({"ami": bastion["resolved_ami"], "instance_type": "m5.large", "subnet_id": private["id"],
                   "vpc_security_group_ids": [sg["id"]], "key_name": "ops", "root_volume_size_gib": 60, "tags": cluster_tags("demo-cp-0")}),
        )
        .await;
    let lb = cloud
        .create(
            "aws_elb.apiserver",
            json!({"name": "demo-apiserver", "internal": false, "subnets": [public["id"]], "security_groups": [sg["id"]],
                   "listeners": [{"lb_port": 6443, "lb_protocol": "TCP", "instance_port": 6443, "instance_protocol": "TCP"}],
                   "health_check": {"target": "TCP:6443", "interval": 10, "timeout": 5, "healthy_threshold": 2, "unhealthy_threshold": 3},
                   "cross_zone_load_balancing": true, "idle_timeout": 3600, "instances": [cp["id"]], "tags": cluster_tags("demo-apiserver")}),
        )
        .await;
    assert_eq!(lb["id"], json!("demo-apiserver"));
    assert!(lb["dns_name"].as_str().is_some_and(|d| !d.is_empty()));
    let all = [
        "aws_vpc.main",
        "aws_subnet.public[us-east-1a]",
        "aws_subnet.private[us-east-1a]",
        "aws_internet_gateway.main",
        "aws_security_group.node",
        "aws_security_group.extra",
        "aws_instance.bastion",
        "aws_instance.control_plane[0]",
        "aws_elb.apiserver",
    ];
    cloud.assert_reads_clean(&all).await;

    // What AWS holds.
    let found = cloud.ec2.describe_instances().instance_ids(bastion["id"].as_str().unwrap()).send().await.unwrap();
    let i = &found.reservations()[0].instances()[0];
    assert_eq!(i.key_name(), Some("ops"));
    assert_eq!(i.image_id(), bastion["resolved_ami"].as_str());
    assert!(i.public_ip_address().is_some(), "public IP in a public subnet");
    assert_eq!(ec2_tags(i.tags())[ADDRESS_TAG], "aws_instance.bastion");
    let user_data = cloud
        .ec2
        .describe_instance_attribute()
        .instance_id(bastion["id"].as_str().unwrap())
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = user_data.user_data().and_then(|v| v.value()).unwrap_or_default();
    assert_eq!(encoded, "IyEvYmluL2Jhc2gKZWNobyBiYXN0aW9uCg==", "user data base64-encoded once");
    let lbs = cloud.elb.describe_load_balancers().load_balancer_names("demo-apiserver").send().await.unwrap();
    let d = &lbs.load_balancer_descriptions()[0];
    let l = d.listener_descriptions()[0].listener().unwrap();
    assert_eq!((l.load_balancer_port(), l.protocol(), l.instance_port()), (6443, "TCP", 6443));
    assert_eq!(d.health_check().unwrap().target(), "TCP:6443");
    let registered: Vec<&str> = d.instances().iter().filter_map(|i| i.instance_id()).collect();
    assert_eq!(registered, [cp["id"].as_str().unwrap()]);
    let attributes =
        cloud.elb.describe_load_balancer_attributes().load_balancer_name("demo-apiserver").send().await.unwrap();
    let attributes = attributes.load_balancer_attributes().unwrap();
    assert!(attributes.cross_zone_load_balancing().unwrap().enabled());
    assert_eq!(attributes.connection_settings().unwrap().idle_timeout(), 3600);

    // In place: register the bastion too and retag; the instance's groups.
    cloud
        .update("aws_elb.apiserver", |a| {
            a["instances"] = json!([cp["id"], bastion["id"]]);
            a["tags"]["team"] = json!("platform");
        })
        .await;
    let lbs = cloud.elb.describe_load_balancers().load_balancer_names("demo-apiserver").send().await.unwrap();
    assert_eq!(lbs.load_balancer_descriptions()[0].instances().len(), 2);
    let tags = cloud.elb.describe_tags().load_balancer_names("demo-apiserver").send().await.unwrap();
    assert!(tags.tag_descriptions()[0].tags().iter().any(|t| t.key() == "team" && t.value() == Some("platform")));
    cloud.update("aws_elb.apiserver", |a| a["instances"] = json!([bastion["id"]])).await;
    let lbs = cloud.elb.describe_load_balancers().load_balancer_names("demo-apiserver").send().await.unwrap();
    let registered: Vec<&str> =
        lbs.load_balancer_descriptions()[0].instances().iter().filter_map(|i| i.instance_id()).collect();
    assert_eq!(registered, [bastion["id"].as_str().unwrap()]);
    cloud.update("aws_instance.control_plane[0]", |a| a["vpc_security_group_ids"] = json!([sg["id"], sg2["id"]])).await;
    let found = cloud.ec2.describe_instances().instance_ids(cp["id"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(found.reservations()[0].instances()[0].security_groups().len(), 2);

    cloud
        .delete_all(&[
            "aws_elb.apiserver",
            "aws_instance.control_plane[0]",
            "aws_instance.bastion",
            "aws_security_group.extra",
            "aws_security_group.node",
            "aws_internet_gateway.main",
            "aws_subnet.private[us-east-1a]",
            "aws_subnet.public[us-east-1a]",
            "aws_vpc.main",
        ])
        .await;
    assert_eq!(cloud.tagged_leftovers().await, Vec::<String>::new());
}

/// A spot worker pool: a launch template with the spot market and an auto
/// scaling group over two private subnets whose instances carry its tags.
#[tokio::test]
async fn a_spot_worker_pool() {
    let mut cloud = Cloud::new().await;
    let vpc = cloud.create("aws_vpc.main", json!({"cidr_block": "10.3.0.0/16"})).await;
    let a = cloud
        .create(
            "aws_subnet.private[us-east-1a]",
            json!({"vpc_id": vpc["id"], "cidr_block": "10.3.0.0/20", "availability_zone": "us-east-1a"}),
        )
        .await;
    let b = cloud
        .create(
            "aws_subnet.private[us-east-1b]",
            json!({"vpc_id": vpc["id"], "cidr_block": "10.3.16.0/20", "availability_zone": "us-east-1b"}),
        )
        .await;
    let sg = cloud
        .create("aws_security_group.node", json!({"name": "demo-node", "description": "nodes", "vpc_id": vpc["id"]}))
        .await;
    let lt = cloud
        .create(
            "aws_launch_template.pool[worker]",
            json!({"name": "demo-worker", "image_id": "auto", "instance_type": "m5.xlarge", "vpc_security_group_ids": [sg["id"]],
                   "user_data": "#cloud-config\n", "root_volume_size_gib": 60, "spot_max_price": "0.1152",
                   "instance_tags": {"Name": "demo-worker"}, "tags": cluster_tags("demo-worker")}),
        )
        .await;
    assert_eq!(lt["latest_version"], json!("1"));
    let mut asg_tags = cluster_tags("demo-worker");
    asg_tags["k8s.io/cluster-autoscaler/enabled"] = json!("true");
    cloud
        .create(
            "aws_autoscaling_group.pool[worker]",
            json!({"name": "demo-worker", "launch_template_id": lt["id"], "launch_template_version": lt["latest_version"],
                   "min_size": 2, "max_size": 4, "desired_capacity": 2, "vpc_zone_identifier": [a["id"], b["id"]], "tags": asg_tags}),
        )
        .await;
    let all = [
        "aws_vpc.main",
        "aws_subnet.private[us-east-1a]",
        "aws_subnet.private[us-east-1b]",
        "aws_security_group.node",
        "aws_launch_template.pool[worker]",
        "aws_autoscaling_group.pool[worker]",
    ];
    cloud.assert_reads_clean(&all).await;

    // The spot price is on the template's version.
    let versions = cloud
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(lt["id"].as_str().unwrap())
        .versions("$Default")
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0].launch_template_data().unwrap();
    let spot = data.instance_market_options().unwrap();
    assert_eq!(spot.market_type().map(|m| m.as_str()), Some("spot"));
    assert_eq!(spot.spot_options().and_then(|s| s.max_price()), Some("0.1152"));
    // The group's instances carry its tags, the address tag included.
    let launched = cloud
        .ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:aws:autoscaling:groupName").values("demo-worker").build())
        .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = launched.reservations().iter().flat_map(|r| r.instances()).collect();
    assert_eq!(instances.len(), 2);
    for i in instances {
        let tags = ec2_tags(i.tags());
        assert_eq!(tags.get(ADDRESS_TAG).map(String::as_str), Some("aws_autoscaling_group.pool[worker]"), "{tags:?}");
        assert_eq!(tags.get("kubernetes.io/cluster/demo").map(String::as_str), Some("owned"));
    }

    // In place: sizes and tags of the group; a bigger instance type makes
    // version 2 of the template, which the group then takes.
    cloud
        .update("aws_autoscaling_group.pool[worker]", |g| {
            g["min_size"] = json!(3);
            g["max_size"] = json!(6);
            g["desired_capacity"] = json!(3);
            g["tags"]["team"] = json!("platform");
            g["tags"].as_object_mut().unwrap().remove("k8s.io/cluster-autoscaler/enabled");
        })
        .await;
    let groups = cloud.asg.describe_auto_scaling_groups().auto_scaling_group_names("demo-worker").send().await.unwrap();
    let g = &groups.auto_scaling_groups()[0];
    assert_eq!((g.min_size(), g.max_size(), g.desired_capacity()), (Some(3), Some(6), Some(3)));
    let keys: Vec<&str> = g.tags().iter().filter_map(|t| t.key()).collect();
    assert!(keys.contains(&"team") && !keys.contains(&"k8s.io/cluster-autoscaler/enabled"), "{keys:?}");
    assert!(g.tags().iter().all(|t| t.propagate_at_launch() == Some(true)));
    let lt2 = cloud.update("aws_launch_template.pool[worker]", |t| t["instance_type"] = json!("m5.2xlarge")).await;
    assert_eq!(lt2["latest_version"], json!("2"));
    assert_eq!(lt2["resolved_ami"], lt["resolved_ami"], "the image stays");
    // A group with nodes takes a new version through an instance refresh,
    // which the emulator lacks (tests/it/aws_roll.rs shows the error); an
    // empty group takes it at once.
    cloud
        .update("aws_autoscaling_group.pool[worker]", |g| {
            g["min_size"] = json!(0);
            g["desired_capacity"] = json!(0);
        })
        .await;
    cloud
        .update("aws_autoscaling_group.pool[worker]", |g| g["launch_template_version"] = lt2["latest_version"].clone())
        .await;
    let groups = cloud.asg.describe_auto_scaling_groups().auto_scaling_group_names("demo-worker").send().await.unwrap();
    assert_eq!(groups.auto_scaling_groups()[0].launch_template().and_then(|t| t.version()), Some("2"));

    cloud
        .delete_all(&[
            "aws_autoscaling_group.pool[worker]",
            "aws_launch_template.pool[worker]",
            "aws_security_group.node",
            "aws_subnet.private[us-east-1b]",
            "aws_subnet.private[us-east-1a]",
            "aws_vpc.main",
        ])
        .await;
    assert_eq!(cloud.tagged_leftovers().await, Vec::<String>::new());
}

/// Tests that change the process environment run one at a time.
static ENV_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The access keys that signed the recorded requests to `service`, each once,
/// in order; the requests must exist.
fn signers(emulator: &Emulator, service: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for r in emulator.recorded().into_iter().filter(|r| r.service == service) {
        if !keys.contains(&r.access_key_id) {
            keys.push(r.access_key_id);
        }
    }
    assert!(!keys.is_empty(), "no {service} request was recorded: {:?}", emulator.recorded());
    keys
}

/// `AwsProvider::connect` through the SDK's default chain (AWS_ENDPOINT_URL
/// and keys in the environment, as the CLI gets them), through a named
/// profile, and through STS AssumeRole with an external id. moto accepts any
/// key, so a call succeeding proves nothing about who made it: the
/// emulator's recorder shows the access key that signed each request, and
/// its STS data which role an assumed key belongs to.
#[tokio::test]
async fn connect_with_keys_a_profile_or_a_role() {
    let emulator = Emulator::start_recording();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[skyplan-test]\naws_access_key_id = profilekey\naws_secret_access_key = profilesecret\n",
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "").unwrap();
    let _env = ENV_LOCK.lock().await;
    for (k, v) in emulator.env() {
        std::env::set_var(k, v);
    }
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    std::env::set_var("AWS_CONFIG_FILE", &config);

    let settings = AwsSettings { region: REGION.into(), profile: None, role_arn: None, external_id: None };
    let keys = AwsProvider::connect(settings.clone()).await.expect("connect with keys");
    let vpc = keys.create(&ctx("aws_vpc.main"), &attrs(json!({"cidr_block": "10.9.0.0/16"}))).await.unwrap();
    assert!(vpc["id"].as_str().unwrap().starts_with("vpc-"));
    assert_eq!(signers(&emulator, "ec2"), ["testing"], "the environment's keys signed every EC2 call");
    emulator.clear_recording();

    let profile = AwsProvider::connect(AwsSettings { profile: Some("skyplan-test".into()), ..settings.clone() })
        .await
        .expect("connect with a profile");
    let read = profile
        .read(&[ReadRequest { address: "aws_vpc.main".parse().unwrap(), kind: "aws_vpc".into(), prior: vpc.clone() }])
        .await;
    assert!(read.unwrap()[0].is_some());
    let all: Vec<String> = emulator.recorded().into_iter().map(|r| r.access_key_id).collect();
    assert!(!all.is_empty() && all.iter().all(|k| k == "profilekey"), "the profile's key signed every call: {all:?}");
    assert_eq!(signers(&emulator, "ec2"), ["profilekey"]);
    emulator.clear_recording();
    let missing = AwsProvider::connect(AwsSettings { profile: Some("no-such-profile".into()), ..settings.clone() })
        .await
        .unwrap_err();
    assert!(missing.message.contains("profile `no-such-profile`"), "{}", missing.message);

    let role = AwsProvider::connect(AwsSettings {
        role_arn: Some("arn:aws:iam::123456789012:role/SpectroCloudRole".into()),
        external_id: Some("from-the-ui".into()),
        ..settings.clone()
    })
    .await
    .expect("connect through AssumeRole");
    let read = role
        .read(&[ReadRequest { address: "aws_vpc.main".parse().unwrap(), kind: "aws_vpc".into(), prior: vpc.clone() }])
        .await;
    assert!(read.unwrap()[0].is_some());
    assert!(role.api_calls().contains_key("ec2:DescribeVpcs"), "{:?}", role.api_calls());
    // The role was assumed with the default chain's keys, and every EC2 call
    // was signed with the key STS issued for exactly that role and external
    // id, carrying that session's token.
    assert_eq!(signers(&emulator, "sts"), ["testing"], "AssumeRole is signed with the caller's own keys");
    let ec2_keys = signers(&emulator, "ec2");
    assert_eq!(ec2_keys.len(), 1, "one identity made the EC2 calls: {ec2_keys:?}");
    let sts = emulator.get_json("/moto-api/data.json");
    let assumed = sts["sts"]["AssumedRole"]
        .as_array()
        .and_then(|roles| roles.iter().find(|r| r["access_key_id"] == ec2_keys[0].as_str()))
        .unwrap_or_else(|| panic!("{} is not a key STS issued for an assumed role: {}", ec2_keys[0], sts["sts"]));
    assert_eq!(assumed["role_arn"], "arn:aws:iam::123456789012:role/SpectroCloudRole");
    assert_eq!(assumed["external_id"], "from-the-ui");
    let tokens: Vec<Option<String>> =
        emulator.recorded().into_iter().filter(|r| r.service == "ec2").map(|r| r.session_token).collect();
    assert!(tokens.iter().all(|t| t.as_deref() == assumed["session_token"].as_str()), "{tokens:?}");

    // STS refusing (here: not answering): the error says the keys were
    // found, the role was not assumed, and what its trust policy must allow.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    std::env::set_var("AWS_ENDPOINT_URL_STS", format!("http://{closed}"));
    let refused = AwsProvider::connect(AwsSettings {
        role_arn: Some("arn:aws:iam::123456789012:role/SpectroCloudRole".into()),
        external_id: Some("from-the-ui".into()),
        ..settings.clone()
    })
    .await
    .unwrap_err();
    std::env::remove_var("AWS_ENDPOINT_URL_STS");
    for part in [
        "the access keys from the default chain",
        "work, but assuming role arn:aws:iam::123456789012:role/SpectroCloudRole with external id `from-the-ui` failed",
        "trust policy must allow this caller sts:AssumeRole with the condition sts:ExternalId = \"from-the-ui\"",
    ] {
        assert!(refused.message.contains(part), "{part}: {}", refused.message);
    }

    for (k, _) in emulator.env() {
        std::env::remove_var(k);
    }
    std::env::remove_var("AWS_SHARED_CREDENTIALS_FILE");
    std::env::remove_var("AWS_CONFIG_FILE");
}
