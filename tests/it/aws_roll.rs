//! Changing a running cluster through the binary, against the emulator, and
//! checked with the AWS SDK directly: apply's own preflight stops before any
//! change, the control plane grows 1 -> 3 and shrinks back behind the load
//! balancer, a profile change rolls the control plane one node at a time
//! behind it, and gives the worker pool's launch template a new default
//! version (the emulator has no instance refresh: for a pool with nodes,
//! apply must say so and not move the group).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;
use serde_json::Value;

use crate::emulator::Emulator;
use crate::support::Workdir;

const OWNED: &str = "kubernetes.io/cluster/demo";

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dynamic-cluster.toml")).unwrap()
}

/// The example with `size` control-plane nodes.
fn with_control_plane(size: u32) -> String {
    let spec = example();
    let pool = "name = \"master\"\ncontrol_plane = true\nsize = 3";
    assert!(spec.contains(pool), "the example's control-plane pool moved");
    spec.replace(pool, &format!("name = \"master\"\ncontrol_plane = true\nsize = {size}"))
}

fn workdir(emulator: &Emulator) -> Workdir {
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w
}

/// The instances registered with the API load balancer.
async fn registered(elb: &aws_sdk_elasticloadbalancing::Client) -> BTreeSet<String> {
    let out = elb.describe_load_balancers().load_balancer_names("demo-apiserver").send().await.unwrap();
    let [lb] = out.load_balancer_descriptions() else { panic!("expected the API load balancer") };
    lb.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect()
}

/// The state of each instance the cluster owns, by id.
async fn instance_states(ec2: &aws_sdk_ec2::Client) -> Vec<(String, String)> {
    let owned = Filter::builder().name(format!("tag:{OWNED}")).values("owned").build();
    let out = ec2.describe_instances().filters(owned).send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let state = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
            (i.instance_id().unwrap().to_string(), state)
        })
        .collect()
}

/// Standard base64 (the user data AWS returns) as text.
fn base64_decode(b64: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in b64.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).expect("utf-8 user data")
}

fn changes(plan: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no-op")
        .map(|c| (c["address"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn apply_runs_the_preflight_checks_and_stops_before_any_change() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    w.write("key.toml", &example().replace("# ssh_key_name = \"ops\"", "ssh_key_name = \"ops\""));

    let failed = w.run(&["apply", "key.toml", "--auto-approve"]).code(1);
    assert!(
        failed.stdout.lines().any(|l| l.starts_with("key pair ops") && l.ends_with("FAIL")),
        "the preflight table: {}",
        failed.stdout
    );
    assert!(failed.stderr.contains("key pair ops does not exist in this region"), "{}", failed.stderr);
    assert!(failed.stderr.contains("apply stopped before any change"), "{}", failed.stderr);
    assert!(failed.stderr.contains("preflight failed: nothing was changed"), "{}", failed.stderr);
    assert!(!failed.stdout.contains("Creating..."), "nothing started: {}", failed.stdout);
    assert!(!w.exists("key.state.json"), "no state written");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&rt.block_on(emulator.sdk_config()));
    let vpcs = |ec2: aws_sdk_ec2::Client| async move {
        let owned = Filter::builder().name(format!("tag:{OWNED}")).values("owned").build();
        ec2.describe_vpcs().filters(owned).send().await.unwrap().vpcs().len()
    };
    assert_eq!(rt.block_on(vpcs(ec2.clone())), 0, "no VPC was created");

    // --skip-preflight goes ahead: the cluster's VPC appears.
    let skipped = w.run(&["apply", "key.toml", "--auto-approve", "--skip-preflight"]);
    assert!(!skipped.stderr.contains("preflight failed"), "{}", skipped.stderr);
    assert_eq!(rt.block_on(vpcs(ec2)), 1, "apply went ahead without the checks");
}

#[test]
fn control_plane_grows_without_touching_the_first_node_and_shrinks_deregistering_first() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancing::Client::new(&config);

    w.write("demo.toml", &with_control_plane(1));
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let first = rt.block_on(registered(&elb));
    assert_eq!(first.len(), 1, "{first:?}");
    let first_id = first.iter().next().unwrap().clone();

    // 1 -> 3: two creates, each registering itself with the load balancer; no replace.
    w.write("demo.toml", &with_control_plane(3));
    let plan = w.run(&["plan", "demo.toml", "--json"]).ok();
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        changes(&plan),
        owned(&[("aws_instance.control_plane[1]", "create"), ("aws_instance.control_plane[2]", "create")])
    );
    for c in plan["changes"].as_array().unwrap().iter().filter(|c| c["action"] == "create") {
        assert_eq!(c["after"]["load_balancer"], "demo-apiserver", "{c}");
    }
    assert_eq!(plan["summary"], serde_json::json!({"create": 2, "update": 0, "replace": 0, "delete": 0}));
    let grown = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    assert!(grown.stdout.contains("Resources: 2 added, 0 changed, 0 destroyed"), "{}", grown.stdout);
    let three = rt.block_on(registered(&elb));
    assert_eq!(three.len(), 3, "{three:?}");
    assert!(three.contains(&first_id), "the first node stays registered: {three:?}");
    let states = rt.block_on(instance_states(&ec2));
    for id in &three {
        assert!(states.contains(&(id.clone(), "running".into())), "{id} is not running: {states:?}");
    }
    w.run(&["plan", "demo.toml", "--detailed-exitcode"]).code(0);

    // 3 -> 1: the two newer nodes leave the load balancer, then terminate
    // (each delete deregisters first: `instance.rs`
    // a_node_registers_once_running_and_deregisters_before_termination).
    w.write("demo.toml", &with_control_plane(1));
    let plan: Value = serde_json::from_str(&w.run(&["plan", "demo.toml", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        changes(&plan),
        owned(&[("aws_instance.control_plane[1]", "delete"), ("aws_instance.control_plane[2]", "delete")])
    );
    let shrunk = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let out = &shrunk.stdout;
    for n in [1, 2] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("aws_instance.control_plane[{n}]: Still destroying")))
            .unwrap_or_else(|| panic!("no progress for control_plane[{n}]:\n{out}"));
        assert!(line.ends_with("from load balancer demo-apiserver") && line.contains("deregistering i-"), "{line}");
    }
    assert_eq!(rt.block_on(registered(&elb)), BTreeSet::from([first_id.clone()]));
    let states = rt.block_on(instance_states(&ec2));
    for id in three.iter().filter(|id| **id != first_id) {
        assert!(states.contains(&(id.clone(), "terminated".into())), "{id} still runs: {states:?}");
    }
    assert!(states.contains(&(first_id, "running".into())));
    w.run(&["plan", "demo.toml", "--detailed-exitcode"]).code(0);
}

/// The running control-plane instances (by Name tag), by id.
async fn running_control_plane(ec2: &aws_sdk_ec2::Client) -> BTreeSet<String> {
    let name = Filter::builder().name("tag:Name").values("demo-control-plane-*").build();
    let running = Filter::builder().name("instance-state-name").values("running").build();
    let out = ec2.describe_instances().filters(name).filters(running).send().await.unwrap();
    out.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| i.instance_id().map(str::to_string)).collect()
}

#[test]
fn a_profile_change_rolls_the_control_plane_one_node_at_a_time_behind_the_load_balancer() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, elb, asg) = emulator.clients(&rt);

    // An empty worker pool: its template still versions, and the group
    // moves to the new version without an instance refresh.
    let workers = "size = 3\nmin = 3\nmax = 6";
    let spec = with_control_plane(3);
    assert!(spec.contains(workers));
    let spec = spec.replace(workers, "size = 0\nmin = 0\nmax = 6");
    w.write("demo.toml", &spec);
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let old = rt.block_on(registered(&elb));
    assert_eq!(old.len(), 3);
    assert_eq!(rt.block_on(running_control_plane(&ec2)), old);

    w.write("demo.toml", &spec.replace("values = { mtu = 1440 }", "values = { mtu = 1400 }"));
    let plan: Value = serde_json::from_str(&w.run(&["plan", "demo.toml", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        changes(&plan),
        owned(&[
            ("aws_autoscaling_group.pool[worker]", "update"),
            ("aws_instance.control_plane[0]", "replace"),
            ("aws_instance.control_plane[1]", "replace"),
            ("aws_instance.control_plane[2]", "replace"),
            ("aws_launch_template.pool[worker]", "update"),
        ])
    );
    let applied = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let out = &applied.stdout;
    assert!(out.contains("Resources: 3 added, 2 changed, 3 destroyed"), "{out}");
    let at = |line: &str| out.find(line).unwrap_or_else(|| panic!("no {line:?} in:\n{out}"));
    for n in 0..3 {
        let node = format!("aws_instance.control_plane[{n}]");
        // New node first (created and registered), then the old one goes.
        assert!(at(&format!("{node}: Creation complete")) < at(&format!("{node}: Destroying...")), "{out}");
        if n < 2 {
            // One at a time: the next node starts only when this one is done.
            let next = format!("aws_instance.control_plane[{}]: Creating...", n + 1);
            assert!(at(&format!("{node}: Destruction complete")) < at(&next), "{out}");
        }
    }

    let new = rt.block_on(registered(&elb));
    assert_eq!(new.len(), 3, "as many nodes behind the load balancer as before: {new:?}");
    assert!(new.is_disjoint(&old), "every node was replaced: {old:?} -> {new:?}");
    assert_eq!(rt.block_on(running_control_plane(&ec2)), new, "the old nodes are terminated");
    let states = rt.block_on(instance_states(&ec2));
    for id in &old {
        assert!(states.contains(&(id.clone(), "terminated".into())), "{id}: {states:?}");
    }
    let state = w.json("demo.state.json");
    assert!(state.get("deposed").is_none(), "no old object left in the state: {}", state["deposed"]);
    rt.block_on(async {
        let out = asg.describe_auto_scaling_groups().auto_scaling_group_names("demo-worker").send().await.unwrap();
        let version = out.auto_scaling_groups()[0].launch_template().and_then(|t| t.version()).map(str::to_string);
        assert_eq!(version.as_deref(), Some("2"), "the empty group points at the new version");
    });
    w.run(&["plan", "demo.toml", "--detailed-exitcode"]).code(0);
}

#[test]
fn a_profile_change_versions_the_launch_template_and_never_claims_a_roll_the_endpoint_cannot_do() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let asg = aws_sdk_autoscaling::Client::new(&config);

    let spec = with_control_plane(1);
    w.write("demo.toml", &spec);
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let (template_id, version) = rt.block_on(async {
        let out = asg.describe_auto_scaling_groups().auto_scaling_group_names("demo-worker").send().await.unwrap();
        let lt = out.auto_scaling_groups()[0].launch_template().unwrap();
        (lt.launch_template_id().unwrap().to_string(), lt.version().unwrap().to_string())
    });
    assert_eq!(version, "1");

    // A pack value changes: every node role's user data changes with it.
    assert!(spec.contains("values = { mtu = 1440 }"));
    w.write("demo.toml", &spec.replace("values = { mtu = 1440 }", "values = { mtu = 1400 }"));
    let plan = w.run(&["plan", "demo.toml"]).ok();
    assert!(plan.stdout.contains("mtu: 1440") && plan.stdout.contains("mtu: 1400"), "a line diff: {}", plan.stdout);
    let applied = w.run(&["apply", "demo.toml", "--auto-approve"]).code(1);
    let failure = applied
        .stderr
        .lines()
        .find(|l| l.starts_with("aws_autoscaling_group.pool[worker]: Modification failed:"))
        .unwrap_or_else(|| panic!("the group's update fails: {}", applied.stderr));
    assert!(failure.contains("the endpoint does not implement instance refresh"), "{failure}");
    assert!(applied.stderr.contains("was not moved to launch template version 2"), "{}", applied.stderr);

    rt.block_on(async {
        // The template has a second version with the new value; its default
        // stays 1 (no ModifyLaunchTemplate: the group names the version).
        let lts = ec2.describe_launch_templates().launch_template_ids(&template_id).send().await.unwrap();
        let lt = &lts.launch_templates()[0];
        assert_eq!((lt.default_version_number(), lt.latest_version_number()), (Some(1), Some(2)));
        let v2 = ec2
            .describe_launch_template_versions()
            .launch_template_id(&template_id)
            .versions("2")
            .send()
            .await
            .unwrap();
        let data = v2.launch_template_versions()[0].launch_template_data().unwrap();
        let user_data = base64_decode(data.user_data().unwrap());
        assert!(user_data.contains("mtu: 1400"), "{user_data}");
        // The group was not moved: no refresh ran, so none is claimed.
        let out = asg.describe_auto_scaling_groups().auto_scaling_group_names("demo-worker").send().await.unwrap();
        let lt = out.auto_scaling_groups()[0].launch_template().unwrap();
        assert_eq!((lt.launch_template_id(), lt.version()), (Some(template_id.as_str()), Some("1")));
    });
    // The roll is still owed: the next plan offers it again.
    let again: Value = serde_json::from_str(&w.run(&["plan", "demo.toml", "--json"]).ok().stdout).unwrap();
    assert_eq!(changes(&again), owned(&[("aws_autoscaling_group.pool[worker]", "update")]));
}
