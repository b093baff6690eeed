//! The instance profiles nodes run with (contract, "The cluster itself"),
//! against the emulator, checked with the SDK called from the test: `plan`
//! notes the shared profiles apply will create; `apply` creates both, each
//! with a role of the same name holding the seed's policies (the
//! control-plane role both Control Plane and Nodes); the control-plane
//! instances and the worker pool's launch template carry them; `destroy`
//! leaves them; a second apply creates nothing again; a profile a pool
//! names that does not exist stops apply at preflight, naming the pool,
//! with nothing created. And the wait on the API server after each
//! control-plane instance is skipped here with one note (the emulator's
//! load balancer names resolve nowhere; `apiwait.rs`'s unit tests cover
//! the wait against a local TLS server).

use std::collections::BTreeSet;

use crate::aws_cli::{example, filter};
use crate::emulator::Emulator;
use crate::support::Workdir;

const CONTROL_PLANE: &str = "control-plane.cluster-api-provider-aws.sigs.k8s.io";
const NODES: &str = "nodes.cluster-api-provider-aws.sigs.k8s.io";

/// The example with one control plane and one worker: enough for profiles.
fn small() -> String {
    example().replacen("size = 3                           # 1, 3 or 5", "size = 1", 1).replacen(
        "size = 3\nmin = 3\nmax = 6",
        "size = 1\nmin = 1\nmax = 2",
        1,
    )
}

fn workdir(emulator: &Emulator) -> Workdir {
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w
}

/// The profile's roles and, per role, the names of its attached policies;
/// None when the profile does not exist.
async fn profile(iam: &aws_sdk_iam::Client, name: &str) -> Option<(Vec<String>, BTreeSet<String>, String)> {
    let out = iam.get_instance_profile().instance_profile_name(name).send().await.ok()?;
    let p = out.instance_profile().unwrap();
    let roles: Vec<String> = p.roles().iter().map(|r| r.role_name().to_string()).collect();
    let mut policies = BTreeSet::new();
    for role in &roles {
        let attached = iam.list_attached_role_policies().role_name(role).send().await.unwrap();
        policies.extend(attached.attached_policies().iter().filter_map(|a| a.policy_name()).map(str::to_string));
        let r = iam.get_role().role_name(role).send().await.unwrap();
        let trust = urlencoding_decode(r.role().unwrap().assume_role_policy_document().unwrap_or_default());
        assert!(trust.contains("ec2.amazonaws.com"), "role {role} trusts EC2: {trust}");
    }
    Some((roles, policies, p.instance_profile_id().to_string()))
}

/// IAM returns trust policies URL-encoded.
fn urlencoding_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn apply_creates_the_shared_profiles_once_nodes_carry_them_and_destroy_keeps_them() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    w.write("demo.toml", &small());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let iam = aws_sdk_iam::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);

    let plan = w.run(&["plan", "demo.toml"]).ok();
    assert!(
        plan.stderr.contains(&format!("apply will create the shared instance profiles {CONTROL_PLANE} and {NODES}")),
        "{}",
        plan.stderr
    );
    assert!(plan.stderr.contains("destroy keeps them"), "{}", plan.stderr);
    assert!(rt.block_on(profile(&iam, CONTROL_PLANE)).is_none(), "plan creates nothing");

    let apply = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    // The emulator's load balancer names do not resolve: the wait on the
    // API server is skipped, said once for the run.
    let skipped = "the wait on the API server was skipped: the endpoint demo-apiserver";
    assert_eq!(apply.stderr.matches(skipped).count(), 1, "{}", apply.stderr);
    for name in [CONTROL_PLANE, NODES] {
        assert!(apply.stderr.contains(&format!("created the shared instance profile {name}")), "{}", apply.stderr);
    }
    let (cp_roles, cp_policies, cp_id) = rt.block_on(profile(&iam, CONTROL_PLANE)).expect("the control-plane profile");
    assert_eq!(cp_roles, [CONTROL_PLANE]);
    assert_eq!(cp_policies, BTreeSet::from([CONTROL_PLANE.to_string(), NODES.to_string()]));
    let (nodes_roles, nodes_policies, nodes_id) = rt.block_on(profile(&iam, NODES)).expect("the nodes profile");
    assert_eq!(nodes_roles, [NODES]);
    assert_eq!(nodes_policies, BTreeSet::from([NODES.to_string()]));
    // The policies hold the seed's permissions.
    rt.block_on(async {
        let listed = iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send().await.unwrap();
        let nodes = listed.policies().iter().find(|p| p.policy_name() == Some(NODES)).expect("the nodes policy");
        let version = iam
            .get_policy_version()
            .policy_arn(nodes.arn().unwrap())
            .version_id(nodes.default_version_id().unwrap())
            .send()
            .await
            .unwrap();
        let document = urlencoding_decode(version.policy_version().unwrap().document().unwrap());
        assert!(document.contains("secretsmanager:GetSecretValue"), "{document}");
    });

    // The nodes carry them: the control-plane instance, the pool's template.
    rt.block_on(async {
        let out = ec2
            .describe_instances()
            .filters(filter("tag:skyplan:address", "aws_instance.control_plane[0]"))
            .filters(filter("instance-state-name", "running"))
            .send()
            .await
            .unwrap();
        let instance = &out.reservations()[0].instances()[0];
        let arn = instance.iam_instance_profile().and_then(|p| p.arn()).unwrap_or_default();
        assert!(arn.ends_with(&format!("instance-profile/{CONTROL_PLANE}")), "{arn}");
        let bastion = ec2
            .describe_instances()
            .filters(filter("tag:skyplan:address", "aws_instance.bastion"))
            .filters(filter("instance-state-name", "running"))
            .send()
            .await
            .unwrap();
        for i in bastion.reservations().iter().flat_map(|r| r.instances()) {
            assert!(i.iam_instance_profile().is_none(), "the bastion runs without a profile");
        }
        let data = crate::emulator::template_data(&ec2, "demo-worker", "$Latest").await;
        assert_eq!(data.iam_instance_profile().and_then(|p| p.name()), Some(NODES));
    });
    w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();

    // Destroy keeps them; a second apply finds them and creates nothing.
    w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
    let kept = rt.block_on(profile(&iam, CONTROL_PLANE)).expect("destroy keeps the control-plane profile");
    assert_eq!(kept.2, cp_id);
    assert_eq!(rt.block_on(profile(&iam, NODES)).expect("destroy keeps the nodes profile").2, nodes_id);
    let plan = w.run(&["plan", "demo.toml"]).ok();
    assert!(!plan.stderr.contains("apply will create the shared instance profile"), "{}", plan.stderr);
    let again = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    assert!(!again.stderr.contains("created the shared instance profile"), "{}", again.stderr);
    assert_eq!(rt.block_on(profile(&iam, CONTROL_PLANE)).unwrap().2, cp_id, "not made again");
    rt.block_on(async {
        let roles = iam.list_roles().send().await.unwrap();
        let ours = roles.roles().iter().filter(|r| r.role_name().ends_with(".cluster-api-provider-aws.sigs.k8s.io"));
        assert_eq!(ours.count(), 2, "one role per profile");
    });
    w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
}

#[test]
fn a_profile_a_pool_names_that_does_not_exist_stops_apply_before_any_change() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    let spec = small().replacen("disk_gib = 100", "disk_gib = 100\ninstance_profile = \"team-nodes\"", 1);
    assert!(spec.contains("team-nodes"));
    w.write("demo.toml", &spec);
    let run = w.run(&["apply", "demo.toml", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("instance profile team-nodes does not exist"), "{}", run.stderr);
    assert!(run.stderr.contains("node pool worker names it"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    rt.block_on(async {
        let vpcs = ec2.describe_vpcs().filters(filter("tag:kubernetes.io/cluster/demo", "owned")).send().await.unwrap();
        assert!(vpcs.vpcs().is_empty(), "no change was made");
        assert!(profile(&iam, CONTROL_PLANE).await.is_none(), "not even the shared profiles");
    });

    // Once it exists, apply uses it for that pool.
    rt.block_on(async {
        iam.create_instance_profile().instance_profile_name("team-nodes").send().await.unwrap();
    });
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    rt.block_on(async {
        let data = crate::emulator::template_data(&ec2, "demo-worker", "$Latest").await;
        assert_eq!(data.iam_instance_profile().and_then(|p| p.name()), Some("team-nodes"));
        assert!(profile(&iam, NODES).await.is_none(), "the workers' shared profile is not used");
        assert!(profile(&iam, CONTROL_PLANE).await.is_some());
    });
}
