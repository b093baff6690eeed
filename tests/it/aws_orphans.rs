//! Orphans against the emulator: resources that carry the cluster's
//! ownership tags and skyplan's address tag but that the state does not
//! record (made behind skyplan's back with the SDK, or forgotten with
//! `state rm`). `plan` reports them and leaves them; `destroy` removes them
//! with the cluster and says so; what carries the tags without skyplan's
//! address tag, or another cluster's tags, is never touched. Checked with
//! the SDK directly, not through the provider.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use serde_json::Value;

use crate::aws_cli::{filter, CAPA_OWNED, OWNED};
use crate::aws_kill::{workdir, Cloud};
use crate::emulator::Emulator;

fn tag_spec(kind: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let tags = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build());
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags.collect())).build()
}

#[test]
fn plan_reports_orphans_and_destroy_removes_them_and_nothing_else() {
    let emulator = Emulator::start();
    let cloud = Cloud::new(&emulator);
    let baseline = cloud.census();
    let w = workdir(&emulator);
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let state = w.json("demo.state.json");
    let vpc = state["resources"]["aws_vpc.main"]["id"].as_str().unwrap().to_string();

    // Behind skyplan's back: a subnet in the cluster's VPC, tagged as the
    // cluster's and with skyplan's address tag (an orphan); in the default
    // VPC a subnet that carries the cluster's tags but no address tag (the
    // user's), and a security group of another cluster.
    let (orphan_subnet, users_subnet, other_group) = cloud.rt.block_on(async {
        let ec2 = &cloud.ec2;
        let owned = [(OWNED, "owned"), (CAPA_OWNED, "owned")];
        let mut orphan_tags = owned.to_vec();
        orphan_tags.push(("skyplan:address", "aws_subnet.extra[us-east-1a]"));
        let orphan = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.0.250.0/24")
            .availability_zone("us-east-1a")
            .tag_specifications(tag_spec(ResourceType::Subnet, &orphan_tags))
            .send()
            .await
            .unwrap();
        let default_vpc = ec2.describe_vpcs().filters(filter("is-default", "true")).send().await.unwrap();
        let default_vpc = default_vpc.vpcs()[0].vpc_id().unwrap().to_string();
        let users = ec2
            .create_subnet()
            .vpc_id(&default_vpc)
            .cidr_block("172.31.250.0/24")
            .availability_zone("us-east-1a")
            .tag_specifications(tag_spec(ResourceType::Subnet, &owned))
            .send()
            .await
            .unwrap();
        let other = ec2
            .create_security_group()
            .group_name("other-cluster-node")
            .description("another cluster's")
            .vpc_id(&default_vpc)
            .tag_specifications(tag_spec(
                ResourceType::SecurityGroup,
                &[
                    ("kubernetes.io/cluster/other", "owned"),
                    ("sigs.k8s.io/cluster-api-provider-aws/cluster/other", "owned"),
                    ("skyplan:address", "aws_security_group.node"),
                ],
            ))
            .send()
            .await
            .unwrap();
        (
            orphan.subnet().unwrap().subnet_id().unwrap().to_string(),
            users.subnet().unwrap().subnet_id().unwrap().to_string(),
            other.group_id().unwrap().to_string(),
        )
    });

    // A plan reports the orphan and leaves it: nothing else differs, so
    // --detailed-exitcode still says "no changes".
    let plan = w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    assert!(
        plan.stdout.contains(&format!(
            "Warning: 1 resource tagged as this cluster's but not in the state: aws_subnet.extra[us-east-1a] ({orphan_subnet})"
        )),
        "{}",
        plan.stdout
    );
    let json: Value = serde_json::from_str(&w.run(&["plan", "demo.toml", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        json["orphans"],
        serde_json::json!([{"address": "aws_subnet.extra[us-east-1a]", "type": "aws_subnet", "provider": "aws", "id": orphan_subnet}])
    );
    assert!(json["changes"].as_array().unwrap().iter().all(|c| c["action"] == "no-op"));

    // Forgotten by the state: a control-plane instance (the ELB still has it).
    let instance = state["resources"]["aws_instance.control_plane[1]"]["id"].as_str().unwrap().to_string();
    w.run(&["state", "rm", "aws_instance.control_plane[1]"]).ok();
    let plan = w.run(&["plan", "demo.toml", "--json"]).ok();
    let json: Value = serde_json::from_str(&plan.stdout).unwrap();
    let orphans: Vec<&str> = json["orphans"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(orphans, [instance.as_str(), orphan_subnet.as_str()]);

    // plan --destroy deletes them with the rest, marked as orphans.
    let plan = w.run(&["plan", "demo.toml", "--destroy", "--json", "--detailed-exitcode"]).code(2);
    let json: Value = serde_json::from_str(&plan.stdout).unwrap();
    let deleted: Vec<(&str, &str)> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["orphan"] == true)
        .map(|c| (c["address"].as_str().unwrap(), c["before"]["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        deleted,
        [
            ("aws_instance.control_plane[1]", instance.as_str()),
            ("aws_subnet.extra[us-east-1a]", orphan_subnet.as_str())
        ]
    );
    assert_eq!(json["summary"]["delete"], 44);

    let destroy = w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
    assert!(
        destroy.stdout.contains(&format!(
            "2 resources tagged as this cluster's but not in the state: aws_instance.control_plane[1] ({instance}), \
             aws_subnet.extra[us-east-1a] ({orphan_subnet}); destroying them too."
        )),
        "{}",
        destroy.stdout
    );
    assert!(destroy.stdout.contains("44 destroyed"), "{}", destroy.stdout);

    // Gone, and only they: the user's subnet and the other cluster's group
    // stay, and otherwise the emulator is back to its baseline.
    let mut expected = baseline.clone();
    *expected.get_mut("subnet").unwrap() += 1;
    *expected.get_mut("security group").unwrap() += 1;
    *expected.get_mut("security group rule").unwrap() += 1; // the group's default egress rule
    assert_eq!(cloud.census(), expected);
    cloud.rt.block_on(async {
        let ec2 = &cloud.ec2;
        let subnets = ec2.describe_subnets().send().await.unwrap();
        let ids: Vec<&str> = subnets.subnets().iter().filter_map(|s| s.subnet_id()).collect();
        assert!(ids.contains(&users_subnet.as_str()) && !ids.contains(&orphan_subnet.as_str()), "{ids:?}");
        let groups = ec2.describe_security_groups().send().await.unwrap();
        assert!(groups.security_groups().iter().any(|g| g.group_id() == Some(other_group.as_str())));
        let live = ec2
            .describe_instances()
            .filters(filter("instance-id", &instance))
            .filters(filter("instance-state-name", "running"))
            .send()
            .await
            .unwrap();
        assert!(live.reservations().is_empty(), "the forgotten instance is terminated");
    });
    let after = w.run(&["plan", "demo.toml", "--destroy", "--detailed-exitcode"]).ok();
    assert!(after.stdout.contains("No changes.") && !after.stdout.contains("not in the state"), "{}", after.stdout);
}
