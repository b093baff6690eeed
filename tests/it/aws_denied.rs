//! A user missing actions, against the emulator with IAM enforcement on
//! (tests/it/emulator.rs, scripts/moto-iam.py): what `plan` says when AWS
//! denies a call mid-run, what `preflight` says about each missing action,
//! and that `apply` stops before changing anything when its dry runs find
//! one. The messages asserted here are the ones docs/iam.md quotes. What
//! exists is read with the SDK as the emulator's administrator, not through
//! skyplan.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::aws_iam::{printed_policy, workdir_as, SPOT};
use crate::emulator::Emulator;
use crate::support::{Run, Workdir};

/// `doc` without `actions`, and without the statements left empty.
fn without(doc: &Value, actions: &[&str]) -> Value {
    let mut doc = doc.clone();
    let statements = doc["Statement"].as_array_mut().unwrap();
    for s in statements.iter_mut() {
        let kept: Vec<Value> = match &s["Action"] {
            Value::String(a) => vec![Value::String(a.clone())],
            Value::Array(list) => list.clone(),
            other => panic!("Action {other}"),
        }
        .into_iter()
        .filter(|a| !actions.contains(&a.as_str().unwrap()))
        .collect();
        s["Action"] = Value::Array(kept);
    }
    statements.retain(|s| !s["Action"].as_array().unwrap().is_empty());
    let text = doc.to_string();
    for a in actions {
        assert!(!text.contains(&format!("\"{a}\"")), "{a} is still granted");
    }
    doc
}

/// The policy `skyplan policy` prints for the spot example, without `actions`.
fn printed_without(actions: &[&str]) -> Value {
    let offline = Workdir::new();
    offline.write("spot.toml", SPOT);
    let printed = printed_policy(&offline, "spot.toml", &[]);
    for a in actions {
        assert!(printed.to_string().contains(&format!("\"{a}\"")), "the printed policy grants {a}");
    }
    without(&printed, actions)
}

/// No Rust Debug output, and nothing said twice in a row.
#[track_caller]
fn readable(run: &Run) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    for debug in ["ServiceError(", "DispatchFailure", "Unhandled(", "SdkBody", "ErrorMetadata {"] {
        assert!(!all.contains(debug), "Debug output ({debug}):\n{all}");
    }
}

/// What the emulator holds of every kind the spot example creates, read as
/// the administrator: ids per kind (instances not terminated).
fn inventory(emulator: &Emulator, rt: &tokio::runtime::Runtime) -> BTreeMap<&'static str, Vec<String>> {
    let (ec2, elb, asg) = emulator.clients(rt);
    rt.block_on(async {
        let mut out = BTreeMap::new();
        let ids = |v: Vec<Option<&str>>| -> Vec<String> {
            let mut v: Vec<String> = v.into_iter().flatten().map(str::to_string).collect();
            v.sort();
            v
        };
        let vpcs = ec2.describe_vpcs().send().await.unwrap();
        out.insert("vpcs", ids(vpcs.vpcs().iter().map(|v| v.vpc_id()).collect()));
        let subnets = ec2.describe_subnets().send().await.unwrap();
        out.insert("subnets", ids(subnets.subnets().iter().map(|s| s.subnet_id()).collect()));
        let igws = ec2.describe_internet_gateways().send().await.unwrap();
        out.insert(
            "internet gateways",
            ids(igws.internet_gateways().iter().map(|g| g.internet_gateway_id()).collect()),
        );
        let eips = ec2.describe_addresses().send().await.unwrap();
        out.insert("elastic ips", ids(eips.addresses().iter().map(|a| a.allocation_id()).collect()));
        let nats = ec2.describe_nat_gateways().send().await.unwrap();
        out.insert("nat gateways", ids(nats.nat_gateways().iter().map(|n| n.nat_gateway_id()).collect()));
        let tables = ec2.describe_route_tables().send().await.unwrap();
        out.insert("route tables", ids(tables.route_tables().iter().map(|t| t.route_table_id()).collect()));
        let groups = ec2.describe_security_groups().send().await.unwrap();
        out.insert("security groups", ids(groups.security_groups().iter().map(|g| g.group_id()).collect()));
        let templates = ec2.describe_launch_templates().send().await.unwrap();
        out.insert(
            "launch templates",
            ids(templates.launch_templates().iter().map(|t| t.launch_template_id()).collect()),
        );
        let reservations = ec2.describe_instances().send().await.unwrap();
        let running = reservations
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
            .map(|i| i.instance_id())
            .collect();
        out.insert("instances", ids(running));
        let balancers = elb.describe_load_balancers().send().await.unwrap();
        out.insert(
            "load balancers",
            ids(balancers.load_balancer_descriptions().iter().map(|b| b.load_balancer_name()).collect()),
        );
        let asgs = asg.describe_auto_scaling_groups().send().await.unwrap();
        out.insert(
            "auto scaling groups",
            ids(asgs.auto_scaling_groups().iter().map(|g| g.auto_scaling_group_name()).collect()),
        );
        out
    })
}

/// A user holding what `skyplan policy` printed, less one action `plan`
/// calls (`ec2:DescribeNatGateways`, which the orphan lookup and the
/// refresh read): `plan` exits 1 naming the action as IAM writes it and
/// saying that `skyplan policy SPEC` prints what is needed, with no Debug
/// output, and writes no state. (moto answers `AccessDenied` where EC2
/// answers `UnauthorizedOperation`; skyplan reads both as a denial.)
#[test]
fn a_missing_action_is_named_with_what_to_do() {
    let emulator = Emulator::start_enforcing_iam();
    let user = emulator.iam_user("no-nat-reads", &[printed_without(&["ec2:DescribeNatGateways"])]);
    let w = workdir_as(&emulator, &user);
    w.write("spot.toml", SPOT);

    let plan = w.run(&["plan", "spot.toml"]).code(1);
    readable(&plan);
    assert!(
        plan.stderr.contains(
            "AWS denied ec2:DescribeNatGateways to these credentials (AccessDenied: \
             User: arn:aws:iam::123456789012:user/no-nat-reads is not authorized to perform: ec2:DescribeNatGateways)"
        ),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains(
            "  help: `skyplan policy SPEC` prints the IAM policy skyplan needs; attach it to this user or role \
             (`skyplan preflight SPEC` lists every missing action)"
        ),
        "{}",
        plan.stderr
    );
    assert!(!w.exists("spot.state.json"), "plan wrote a state");
}

/// A user missing two actions apply needs that EC2's DryRun can judge
/// (`ec2:CreateInternetGateway`, `ec2:RunInstances`): `preflight` fails
/// (exit 1) naming each with the statement to add and lists what it could
/// not check; `apply` runs those dry runs before any change, stops, and the
/// emulator holds exactly what it held before.
#[test]
fn preflight_names_each_missing_action_and_apply_changes_nothing() {
    let emulator = Emulator::start_enforcing_iam();
    let missing = ["ec2:CreateInternetGateway", "ec2:RunInstances"];
    let user = emulator.iam_user("two-short", &[printed_without(&missing)]);
    let w = workdir_as(&emulator, &user);
    w.write("spot.toml", SPOT);

    let preflight = w.run(&["preflight", "spot.toml"]).code(1);
    readable(&preflight);
    for action in missing {
        let row = preflight.stdout.lines().find(|l| l.starts_with(&format!("permission {action} ")));
        assert!(row.is_some_and(|r| r.contains("DENIED") && r.ends_with("FAIL")), "{action}:\n{}", preflight.stdout);
        let named = format!(
            "  - {action} is denied to this identity; add this statement to its policy (`skyplan policy spot.toml` \
             prints the whole policy):\n      {{\"Effect\":\"Allow\",\"Action\":[\"{action}\"],\"Resource\":\"*\"}}"
        );
        assert!(preflight.stderr.contains(&named), "{action}:\n{}", preflight.stderr);
    }
    assert!(preflight.stderr.contains("2 check(s) failed; apply would fail:"), "{}", preflight.stderr);
    // Granted and checkable: a row that says so.
    assert!(
        preflight.stdout.lines().any(|l| l.starts_with("permission ec2:AllocateAddress ") && l.ends_with("ok")),
        "{}",
        preflight.stdout
    );
    // What a dry run cannot judge is said, not assumed.
    let unchecked = preflight.stdout.lines().find(|l| l.starts_with("Not checked: ")).expect("a Not checked line");
    for action in
        ["autoscaling:CreateAutoScalingGroup", "elasticloadbalancing:CreateLoadBalancer", "pricing:GetProducts"]
    {
        assert!(unchecked.contains(action), "{action} in {unchecked}");
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = inventory(&emulator, &rt);
    let apply = w.run(&["apply", "spot.toml", "--auto-approve"]).code(1);
    readable(&apply);
    assert!(
        apply.stderr.contains("preflight failed: nothing was changed (`skyplan preflight spot.toml` shows every check"),
        "{}",
        apply.stderr
    );
    for action in missing {
        assert!(apply.stderr.contains(&format!("  - {action} is denied to this identity")), "{}", apply.stderr);
    }
    assert!(apply.stderr.contains("apply stopped before any change"), "{}", apply.stderr);
    let after = inventory(&emulator, &rt);
    assert_eq!(after, before, "apply changed the emulator");
    assert!(after["vpcs"].len() <= 1, "only the default VPC: {after:?}");
    for kind in ["launch templates", "instances", "load balancers", "auto scaling groups", "nat gateways"] {
        assert!(after[kind].is_empty(), "{kind}: {after:?}");
    }
    if w.exists("spot.state.json") {
        let state = w.json("spot.state.json");
        let recorded = state["resources"].as_object().map(|r| r.len()).unwrap_or(0);
        assert_eq!(recorded, 0, "{state}");
    }
}
