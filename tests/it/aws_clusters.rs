//! Two clusters in one account whose names run together (issue 14): cluster
//! `adv-a` with pool `b-w` and cluster `adv-a-b` with pool `w` both name
//! their launch template `adv-a-b-w`. The second cluster must be refused at
//! plan time, naming the other owner, before any change; and a pending
//! create of that name left in its state (what an old build recorded when
//! the cloud refused the create) must never adopt the first cluster's
//! template, so destroying the second cluster leaves the first untouched.
//! Checked with the SDK directly, by id and ARN.

use std::collections::BTreeMap;

use serde_json::json;

use crate::aws_cli::example;
use crate::aws_kill::{workdir, Cloud};
use crate::emulator::Emulator;

/// The example cluster under another name, its worker pool renamed.
fn cluster(name: &str, pool: &str) -> String {
    example()
        .replace("name = \"demo\"", &format!("name = \"{name}\""))
        .replace("name = \"worker\"", &format!("name = \"{pool}\""))
}

/// Everything of cluster `name` by kind, as ids (ARNs for groups), read
/// with the SDK by the cluster's ownership tag.
fn resources_of(cloud: &Cloud, name: &str) -> BTreeMap<&'static str, Vec<String>> {
    let (ec2, elb, asg) = (&cloud.ec2, &cloud.elb, &cloud.asg);
    let key = format!("kubernetes.io/cluster/{name}");
    let tag = |k: Option<&str>, v: Option<&str>| k == Some(key.as_str()) && v == Some("owned");
    cloud.rt.block_on(async {
        let mut out = BTreeMap::new();
        let lts = ec2.describe_launch_templates().send().await.unwrap();
        out.insert(
            "launch template",
            lts.launch_templates()
                .iter()
                .filter(|t| t.tags().iter().any(|g| tag(g.key(), g.value())))
                .map(|t| format!("{} {}", t.launch_template_id().unwrap(), t.launch_template_name().unwrap()))
                .collect(),
        );
        let groups = asg.describe_auto_scaling_groups().send().await.unwrap();
        out.insert(
            "auto scaling group",
            groups
                .auto_scaling_groups()
                .iter()
                .filter(|g| g.tags().iter().any(|t| tag(t.key(), t.value())))
                .map(|g| {
                    let lt = g.launch_template().and_then(|l| l.launch_template_id()).unwrap_or_default();
                    format!("{} -> {lt}", g.auto_scaling_group_arn().unwrap())
                })
                .collect(),
        );
        let names: Vec<String> = elb
            .describe_load_balancers()
            .send()
            .await
            .unwrap()
            .load_balancer_descriptions()
            .iter()
            .filter_map(|l| l.load_balancer_name().map(str::to_string))
            .collect();
        let mut balancers = Vec::new();
        if !names.is_empty() {
            let tags = elb.describe_tags().set_load_balancer_names(Some(names)).send().await.unwrap();
            for d in tags.tag_descriptions() {
                if d.tags().iter().any(|t| tag(Some(t.key()), t.value())) {
                    balancers.push(d.load_balancer_name().unwrap().to_string());
                }
            }
        }
        out.insert("load balancer", balancers);
        let groups = ec2.describe_security_groups().send().await.unwrap();
        out.insert(
            "security group",
            groups
                .security_groups()
                .iter()
                .filter(|g| g.tags().iter().any(|t| tag(t.key(), t.value())))
                .map(|g| g.group_id().unwrap().to_string())
                .collect(),
        );
        let vpcs = ec2.describe_vpcs().send().await.unwrap();
        out.insert(
            "vpc",
            vpcs.vpcs()
                .iter()
                .filter(|v| v.tags().iter().any(|t| tag(t.key(), t.value())))
                .map(|v| v.vpc_id().unwrap().to_string())
                .collect(),
        );
        for list in out.values_mut() {
            list.sort();
        }
        out
    })
}

#[test]
fn a_name_another_cluster_holds_is_refused_before_any_change_and_never_adopted() {
    let emulator = Emulator::start();
    let cloud = Cloud::new(&emulator);
    let w = workdir(&emulator);
    w.write("a.toml", &cluster("adv-a", "b-w"));
    w.write("b.toml", &cluster("adv-a-b", "w"));
    w.run(&["apply", "a.toml", "--auto-approve"]).ok();
    let first = resources_of(&cloud, "adv-a");
    assert!(first["launch template"].iter().any(|t| t.ends_with(" adv-a-b-w")), "{first:?}");
    assert_eq!(first["auto scaling group"].len(), 1, "{first:?}");
    let census = cloud.census();

    // plan, preflight and apply of the second cluster: refused, naming the
    // other owner; nothing made.
    for args in [&["plan", "b.toml"][..], &["apply", "b.toml", "--auto-approve"]] {
        let run = w.run(args).code(1);
        assert!(run.stderr.contains("aws_launch_template.pool[w]"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("`adv-a-b-w` is already taken"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("tagged as cluster `adv-a`'s"), "{args:?}: {}", run.stderr);
    }
    let run = w.run(&["preflight", "b.toml"]).code(1);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("name of aws_launch_template.pool[w]"), "{all}");
    assert!(all.contains("tagged as cluster `adv-a`'s"), "{all}");
    // The first cluster's own names are its own.
    w.run(&["preflight", "a.toml"]).ok();
    assert_eq!(cloud.census(), census, "nothing was made for the second cluster");
    assert_eq!(resources_of(&cloud, "adv-a-b").values().map(Vec::len).sum::<usize>(), 0);

    // What an older build left: the refused create as a pending intent.
    // The next run must not take the first cluster's template for it.
    let tags = json!({
        "Name": "adv-a-b-w",
        "kubernetes.io/cluster/adv-a-b": "owned",
        "sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a-b": "owned",
    });
    let state = json!({
        "format_version": 1,
        "lineage": "00000000-0000-4000-8000-000000000014",
        "serial": 1,
        "resources": {},
        "pending": {"aws_launch_template.pool[w]": {
            "type": "aws_launch_template",
            "provider": "aws",
            "client_token": "t",
            "inputs": {"name": "adv-a-b-w", "image_id": "auto", "instance_type": "m5.xlarge", "tags": tags},
            "dependencies": [],
        }},
    });
    w.write("b.state.json", &serde_json::to_string_pretty(&state).unwrap());
    let run = w.run(&["destroy", "b.toml", "--auto-approve"]).ok();
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(!all.contains("adopted"), "{all}");
    assert!(
        all.contains("aws_launch_template.pool[w]: a create that did not complete had left nothing behind"),
        "{all}"
    );
    assert_eq!(resources_of(&cloud, "adv-a"), first, "the first cluster's resources, by id and ARN, are untouched");
    assert_eq!(cloud.census(), census);
    w.run(&["plan", "a.toml", "--detailed-exitcode"]).ok();
}

/// The control-plane instances of cluster `name` that are running.
fn running_control_plane(cloud: &Cloud, name: &str) -> Vec<String> {
    cloud.rt.block_on(async {
        let owned = aws_sdk_ec2::types::Filter::builder()
            .name(format!("tag:kubernetes.io/cluster/{name}"))
            .values("owned")
            .build();
        let running = aws_sdk_ec2::types::Filter::builder().name("instance-state-name").values("running").build();
        let out = cloud.ec2.describe_instances().filters(owned).filters(running).send().await.unwrap();
        let mut ids: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                i.tags().iter().any(|t| {
                    t.key() == Some("skyplan:address")
                        && t.value().is_some_and(|v| v.starts_with("aws_instance.control_plane["))
                })
            })
            .map(|i| i.instance_id().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    })
}

/// Issue 14, case 2: a renamed cluster is replaced in one apply (new
/// names for every named resource), the replan is empty, nothing of the old
/// name is left, and the API path works at the end: the new load balancer
/// fronts exactly the running control-plane nodes, whose group admits 6443
/// from the load balancer's group. Checked with the SDK directly.
#[test]
fn a_renamed_cluster_converges_in_one_apply_with_its_api_path_intact() {
    let emulator = Emulator::start();
    let cloud = Cloud::new(&emulator);
    let w = workdir(&emulator);
    w.write("c.toml", &cluster("ren-a", "worker"));
    w.run(&["apply", "c.toml", "--auto-approve"]).ok();
    let census = cloud.census();

    w.write("c.toml", &cluster("ren-b", "worker"));
    let run = w.run(&["apply", "c.toml", "--auto-approve"]).ok();
    assert!(!run.stderr.contains("not started"), "{}", run.stderr);
    w.run(&["plan", "c.toml", "--detailed-exitcode"]).ok();

    assert_eq!(
        resources_of(&cloud, "ren-a").values().map(Vec::len).sum::<usize>(),
        0,
        "{:?}",
        resources_of(&cloud, "ren-a")
    );
    let now = resources_of(&cloud, "ren-b");
    for (kind, count) in [("launch template", 1), ("auto scaling group", 1), ("load balancer", 1), ("vpc", 1)] {
        assert_eq!(now[kind].len(), count, "{kind}: {now:?}");
    }
    assert_eq!(cloud.census(), census, "the same resources under new names, nothing left over");

    // The API path: the balancer fronts the running control plane, which
    // admits 6443 from the balancer's group.
    let nodes = running_control_plane(&cloud, "ren-b");
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    cloud.rt.block_on(async {
        let out = cloud.elb.describe_load_balancers().load_balancer_names("ren-b-apiserver").send().await.unwrap();
        let [lb] = out.load_balancer_descriptions() else { panic!("expected the API load balancer") };
        let mut fronted: Vec<String> =
            lb.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        fronted.sort();
        assert_eq!(fronted, nodes);
        let lb_groups: Vec<&str> = lb.security_groups().iter().map(String::as_str).collect();
        let name = aws_sdk_ec2::types::Filter::builder().name("group-name").values("ren-b-control-plane").build();
        let groups = cloud.ec2.describe_security_groups().filters(name).send().await.unwrap();
        let [cp] = groups.security_groups() else { panic!("expected the control plane's group") };
        let admits = cp.ip_permissions().iter().any(|p| {
            p.from_port() == Some(6443)
                && p.user_id_group_pairs().iter().any(|g| g.group_id().is_some_and(|id| lb_groups.contains(&id)))
        });
        assert!(admits, "the control plane admits 6443 from the load balancer: {:?}", cp.ip_permissions());
    });
}
