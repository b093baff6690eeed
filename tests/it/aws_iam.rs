//! The lifecycle under IAM enforcement: `skyplan` run as a user holding
//! (a) exactly the seed's four policies (data/seed-policies.json, the
//! Controller, Control Plane, Nodes and Deployment policies every Spectro
//! Cloud account has) and (b) exactly what `skyplan policy SPEC` printed
//! for the spec, against the emulator judging every request by the signing
//! user's policies (tests/it/emulator.rs, scripts/moto-iam.py). plan,
//! apply, a no-op plan, a change, destroy, on a dynamic spec with a spot
//! pool and on a static placement; preflight and the orphan lookup too.
//! Any AccessDenied / UnauthorizedOperation fails the test. What exists is
//! checked with the SDK as the emulator's administrator, not through
//! skyplan. Another identity is one more `Emulator::iam_user` call.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::aws_cli::{existing_network, filter, tags};
use crate::emulator::{Emulator, Keys};
use crate::support::{Run, Workdir};

/// The seed's four policies, as the data file holds them.
fn seed_policies() -> Vec<Value> {
    let text = include_str!("../../providers/aws-blueprint/data/seed-policies.json");
    let seed: Value = serde_json::from_str(text).unwrap();
    let policies: Vec<Value> = seed["policies"].as_object().unwrap().values().cloned().collect();
    assert_eq!(policies.len(), 4);
    policies
}

/// What `skyplan policy` prints for the spec in `w` (no credentials needed).
pub(crate) fn printed_policy(w: &Workdir, spec: &str, extra: &[&str]) -> Value {
    let mut args = vec!["policy", spec];
    args.extend(extra);
    serde_json::from_str(&w.run(&args).ok().stdout).expect("policy prints one JSON document")
}

/// A workdir whose skyplan runs sign as `keys`.
pub(crate) fn workdir_as(emulator: &Emulator, keys: &Keys) -> Workdir {
    let mut w = Workdir::new();
    w.env = emulator.env_as(keys).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w
}

/// The run succeeded and AWS denied nothing it asked.
#[track_caller]
fn allowed(run: Run, what: &str) -> Run {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    for denial in ["AccessDenied", "UnauthorizedOperation", "not authorized"] {
        assert!(!all.contains(denial), "{what}: AWS denied a call ({denial}):\n{all}");
    }
    run.ok()
}

/// How often the spot price skip is said in a run's output.
fn skip_notes(run: &Run) -> usize {
    let all = format!("{}{}", run.stdout, run.stderr);
    all.matches("AWS denied ec2:DescribeSpotPriceHistory").count()
}

pub(crate) const SPOT: &str = include_str!("../../examples/spot-pool.toml");

/// The dynamic spot spec, as `who`: plan, apply, no-op plan, a change (a
/// pool resized, the bastion's SSH sources changed), an orphan security
/// group rule found, destroy. Without DescribeSpotPriceHistory the skip is
/// said once per command.
fn dynamic_lifecycle(emulator: &Emulator, keys: &Keys, who: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, _, asg) = emulator.clients(&rt);
    let w = workdir_as(emulator, keys);
    w.write("spot.toml", SPOT);

    let plan = allowed(w.run(&["plan", "spot.toml"]), &format!("{who}: plan"));
    assert_eq!(skip_notes(&plan), 1, "{who}: the skip is said once:\n{}", plan.stdout);
    assert!(plan.stdout.contains("current spot prices skipped"), "{}", plan.stdout);
    let apply = allowed(w.run(&["apply", "spot.toml", "--auto-approve"]), &format!("{who}: apply"));
    assert_eq!(skip_notes(&apply), 1, "{who}: apply says the skip once:\n{}\n{}", apply.stdout, apply.stderr);
    assert!(apply.stderr.contains("aws: skipped the wait for spot prices within the max"), "{}", apply.stderr);
    let names = |rt: &tokio::runtime::Runtime| -> BTreeSet<String> {
        rt.block_on(async {
            let out = asg.describe_auto_scaling_groups().send().await.unwrap();
            out.auto_scaling_groups().iter().filter_map(|g| g.auto_scaling_group_name()).map(str::to_string).collect()
        })
    };
    assert_eq!(names(&rt), ["spot-demo-general", "spot-demo-spot"].map(String::from).into(), "{who}");
    allowed(w.run(&["plan", "spot.toml", "--detailed-exitcode"]), &format!("{who}: no-op plan"));

    // A change: the general pool grows, the bastion takes SSH from elsewhere.
    let changed = SPOT
        .replace("name = \"general\"\nsize = 2", "name = \"general\"\nsize = 3")
        .replace("203.0.113.0/24", "198.51.100.0/24");
    assert_ne!(changed, SPOT);
    w.write("spot.toml", &changed);
    allowed(w.run(&["apply", "spot.toml", "--auto-approve"]), &format!("{who}: apply the change"));
    let bastion =
        w.json("spot.state.json")["resources"]["aws_security_group.bastion"]["id"].as_str().unwrap().to_string();
    rt.block_on(async {
        let out =
            asg.describe_auto_scaling_groups().auto_scaling_group_names("spot-demo-general").send().await.unwrap();
        assert_eq!(out.auto_scaling_groups()[0].desired_capacity(), Some(3), "{who}");
        let groups = ec2.describe_security_groups().group_ids(&bastion).send().await.unwrap();
        let cidrs: Vec<&str> = groups.security_groups()[0]
            .ip_permissions()
            .iter()
            .flat_map(|p| p.ip_ranges())
            .filter_map(|r| r.cidr_ip())
            .collect();
        assert_eq!(cidrs, ["198.51.100.0/24"], "{who}");
    });
    allowed(w.run(&["plan", "spot.toml", "--detailed-exitcode"]), &format!("{who}: no-op plan after the change"));

    // An orphan rule (the cluster's tags and skyplan's address tag, not in
    // the state), made as the administrator: found by the orphan lookup
    // through DescribeTags, and destroyed with the cluster.
    let state = w.json("spot.state.json");
    let node = state["resources"]["aws_security_group.node"]["id"].as_str().unwrap().to_string();
    let cp = state["resources"]["aws_security_group.control_plane"]["id"].as_str().unwrap().to_string();
    rt.block_on(async {
        use aws_sdk_ec2::types::{IpPermission, ResourceType, Tag, TagSpecification, UserIdGroupPair};
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        ec2.authorize_security_group_ingress()
            .group_id(&node)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(9100)
                    .to_port(9100)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(&cp).build())
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroupRule)
                    .tags(tag("kubernetes.io/cluster/spot-demo", "owned"))
                    .tags(tag("sigs.k8s.io/cluster-api-provider-aws/cluster/spot-demo", "owned"))
                    .tags(tag("skyplan:address", "aws_security_group_rule.metrics"))
                    .tags(tag("skyplan:rule", &format!("{node} tcp 9100 9100 {cp}")))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let plan = allowed(w.run(&["plan", "spot.toml", "--json"]), &format!("{who}: plan with an orphan"));
    let json: Value = serde_json::from_str(&plan.stdout).unwrap();
    let orphans: Vec<&str> = json["orphans"].as_array().unwrap().iter().filter_map(|o| o["address"].as_str()).collect();
    assert_eq!(orphans, ["aws_security_group_rule.metrics"], "{who}: {}", json["orphans"]);

    allowed(w.run(&["destroy", "spot.toml", "--auto-approve"]), &format!("{who}: destroy"));
    assert!(names(&rt).is_empty(), "{who}: groups left");
    rt.block_on(async {
        let vpcs = ec2.describe_vpcs().filters(filter("tag:kubernetes.io/cluster/spot-demo", "owned")).send().await;
        assert!(vpcs.unwrap().vpcs().is_empty(), "{who}: the VPC is gone");
        let left = ec2.describe_instances().filters(filter("instance-state-name", "running")).send().await.unwrap();
        assert_eq!(left.reservations().iter().flat_map(|r| r.instances()).count(), 0, "{who}: instances left");
    });
    assert!(w.json("spot.state.json")["resources"].as_object().unwrap().is_empty());
}

/// A static placement in a network the administrator built (public subnets
/// tagged for load balancers, as a customer's would be), as `who`:
/// preflight, plan, apply, no-op plan, a resize, destroy; the network stays.
fn static_lifecycle(emulator: &Emulator, keys: &Keys, who: &str, policy_from_spec: bool) -> Option<Keys> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, _, asg) = emulator.clients(&rt);
    let (vpc, subnets) = rt.block_on(existing_network(&ec2));
    rt.block_on(async {
        for (_, public, _) in &subnets {
            ec2.create_tags()
                .resources(public)
                .tags(aws_sdk_ec2::types::Tag::builder().key("kubernetes.io/role/elb").value("1").build())
                .tags(aws_sdk_ec2::types::Tag::builder().key("kubernetes.io/cluster/placed").value("shared").build())
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("sigs.k8s.io/cluster-api-provider-aws/role")
                        .value("public")
                        .build(),
                )
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("sigs.k8s.io/cluster-api-provider-aws/cluster/placed")
                        .value("owned")
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    });
    let mut spec = format!(
        "[cluster]\nname = \"placed\"\nregion = \"us-east-1\"\n\n[placement]\nmode = \"static\"\n\
         azs = [\"us-east-1a\", \"us-east-1b\"]\nvpc_id = \"{vpc}\"\n"
    );
    for (az, public, private) in &subnets {
        spec.push_str(&format!(
            "\n[[placement.subnet]]\naz = \"{az}\"\npublic = \"{public}\"\nprivate = \"{private}\"\n"
        ));
    }
    spec.push_str(
        "\n[bastion]\nenabled = false\n\n[[node_pool]]\nname = \"master\"\ncontrol_plane = true\nsize = 1\n\
         instance_type = \"m5.large\"\n\n[[node_pool]]\nname = \"worker\"\nsize = 1\nmax = 4\ninstance_type = \"m5.large\"\n",
    );
    let mut keys = keys.clone();
    let mut made = None;
    if policy_from_spec {
        // (b): exactly what `skyplan policy` prints for this very spec.
        let offline = Workdir::new();
        offline.write("placed.toml", &spec);
        let printed = printed_policy(&offline, "placed.toml", &[]);
        keys = emulator.iam_user(&format!("{who}-placed"), &[printed]);
        made = Some(keys.clone());
    }
    let w = workdir_as(emulator, &keys);
    w.write("placed.toml", &spec);
    allowed(w.run(&["preflight", "placed.toml"]), &format!("{who}: preflight"));
    allowed(w.run(&["plan", "placed.toml"]), &format!("{who}: plan"));
    allowed(w.run(&["apply", "placed.toml", "--auto-approve"]), &format!("{who}: apply"));
    allowed(w.run(&["plan", "placed.toml", "--detailed-exitcode"]), &format!("{who}: no-op plan"));
    w.write("placed.toml", &spec.replace("name = \"worker\"\nsize = 1", "name = \"worker\"\nsize = 2"));
    allowed(w.run(&["apply", "placed.toml", "--auto-approve"]), &format!("{who}: resize"));
    rt.block_on(async {
        let out = asg.describe_auto_scaling_groups().auto_scaling_group_names("placed-worker").send().await.unwrap();
        assert_eq!(out.auto_scaling_groups()[0].desired_capacity(), Some(2), "{who}");
    });
    allowed(w.run(&["plan", "placed.toml", "--detailed-exitcode"]), &format!("{who}: no-op plan after the resize"));
    allowed(w.run(&["destroy", "placed.toml", "--auto-approve"]), &format!("{who}: destroy"));
    rt.block_on(async {
        let out = ec2.describe_subnets().filters(filter("vpc-id", &vpc)).send().await.unwrap();
        assert_eq!(out.subnets().len(), 4, "{who}: the given subnets stay");
        let public = out.subnets().iter().find(|s| s.subnet_id() == Some(subnets[0].1.as_str())).unwrap();
        assert_eq!(tags(public.tags()).get("kubernetes.io/role/elb").map(String::as_str), Some("1"));
        let groups = asg.describe_auto_scaling_groups().send().await.unwrap();
        assert!(groups.auto_scaling_groups().is_empty(), "{who}");
    });
    made
}

/// (a) A user holding exactly the seed's four policies.
#[test]
fn the_seeds_four_policies_run_the_whole_lifecycle() {
    let emulator = Emulator::start_enforcing_iam();
    let seed = emulator.iam_user("seed", &seed_policies());
    dynamic_lifecycle(&emulator, &seed, "seed");
    let w = workdir_as(&emulator, &seed);
    w.write("spot.toml", SPOT);
    allowed(w.run(&["preflight", "spot.toml"]), "seed: preflight");
    static_lifecycle(&emulator, &seed, "seed", false);
}

/// (b) A user holding exactly what `skyplan policy` printed for the spec;
/// with `--with-optional` the spot prices are read and nothing is skipped.
#[test]
fn what_skyplan_policy_prints_runs_the_whole_lifecycle() {
    let emulator = Emulator::start_enforcing_iam();
    let offline = Workdir::new();
    offline.write("spot.toml", SPOT);
    let printed = printed_policy(&offline, "spot.toml", &[]);
    let user = emulator.iam_user("printed", &[printed]);
    dynamic_lifecycle(&emulator, &user, "printed");
    static_lifecycle(&emulator, &user, "printed", true);

    let with_optional = printed_policy(&offline, "spot.toml", &["--with-optional"]);
    let optional = emulator.iam_user("printed-optional", &[with_optional]);
    let w = workdir_as(&emulator, &optional);
    w.write("spot.toml", SPOT);
    let plan = allowed(w.run(&["plan", "spot.toml"]), "printed --with-optional: plan");
    assert_eq!(skip_notes(&plan), 0, "{}", plan.stdout);
    assert!(plan.stdout.contains("us-east-1a $0.00001 ok"), "{}", plan.stdout);
}
