//! Crash tests against the emulator: `skyplan apply` of the dynamic cluster
//! example is killed (SIGKILL after a set time, or aborted by the
//! `SKYPLAN_CRASH_BEFORE_RECORDING` hook right after the cloud made one
//! resource and before the state recorded it), then applied again. The
//! emulator is then counted kind by kind with the AWS SDK called directly,
//! not through the provider under test: every count must equal what one
//! uninterrupted apply makes (no duplicate, nothing orphaned), the next plan
//! is empty, and destroy brings every count back to the emulator's own
//! baseline. The emulator ignores ClientToken, so every adoption here goes
//! through the `skyplan:address` tag (docs/reliability.md).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use skyplan_state::{Backend, LocalBackend};

use crate::aws_cli::example;
use crate::emulator::Emulator;
use crate::support::Workdir;

/// How the first apply is stopped.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// SIGKILL this long after the start.
    After(Duration),
    /// Abort right after the cloud call that created this address.
    At(&'static str),
}

/// The SDK clients of one emulator, outside the provider under test.
pub(crate) struct Cloud {
    pub rt: tokio::runtime::Runtime,
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub asg: aws_sdk_autoscaling::Client,
}

pub(crate) type Census = BTreeMap<&'static str, usize>;

impl Cloud {
    pub fn new(emulator: &Emulator) -> Cloud {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = rt.block_on(emulator.sdk_config());
        Cloud {
            ec2: aws_sdk_ec2::Client::new(&config),
            elb: aws_sdk_elasticloadbalancing::Client::new(&config),
            asg: aws_sdk_autoscaling::Client::new(&config),
            rt,
        }
    }

    /// How many of each kind exist: everything the emulator holds, not only
    /// what carries the cluster's tags, so an untagged duplicate counts too.
    /// Deleted NAT gateways and terminated instances stay describable in
    /// the emulator; they are not counted.
    pub fn census(&self) -> Census {
        self.rt.block_on(async {
            let ec2 = &self.ec2;
            let mut c = Census::new();
            c.insert("vpc", ec2.describe_vpcs().send().await.unwrap().vpcs().len());
            c.insert("subnet", ec2.describe_subnets().send().await.unwrap().subnets().len());
            c.insert(
                "internet gateway",
                ec2.describe_internet_gateways().send().await.unwrap().internet_gateways().len(),
            );
            c.insert("elastic ip", ec2.describe_addresses().send().await.unwrap().addresses().len());
            let nats = ec2.describe_nat_gateways().send().await.unwrap();
            let live_nats = nats
                .nat_gateways()
                .iter()
                .filter(|n| matches!(n.state().map(|s| s.as_str()), Some("pending" | "available")))
                .count();
            c.insert("nat gateway", live_nats);
            c.insert("route table", ec2.describe_route_tables().send().await.unwrap().route_tables().len());
            c.insert("security group", ec2.describe_security_groups().send().await.unwrap().security_groups().len());
            c.insert(
                "security group rule",
                ec2.describe_security_group_rules().send().await.unwrap().security_group_rules().len(),
            );
            let live_states =
                aws_sdk_ec2::types::Filter::builder().name("instance-state-name").values("pending").values("running");
            let live = ec2.describe_instances().filters(live_states.build()).send().await.unwrap();
            c.insert("instance", live.reservations().iter().map(|r| r.instances().len()).sum());
            c.insert(
                "load balancer",
                self.elb.describe_load_balancers().send().await.unwrap().load_balancer_descriptions().len(),
            );
            c.insert("launch template", ec2.describe_launch_templates().send().await.unwrap().launch_templates().len());
            c.insert(
                "auto scaling group",
                self.asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups().len(),
            );
            c
        })
    }
}

pub(crate) fn workdir(emulator: &Emulator) -> Workdir {
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w.write("demo.toml", &example());
    w
}

/// The emulator's own baseline, what one uninterrupted apply of the example
/// adds to it, and how long that apply took; destroy returns to the
/// baseline.
fn reference(emulator: &Emulator, cloud: &Cloud) -> (Census, Census, Duration) {
    let baseline = cloud.census();
    let w = workdir(emulator);
    let started = std::time::Instant::now();
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let took = started.elapsed();
    let expected = cloud.census();
    assert!(expected["instance"] > baseline["instance"], "the example creates instances: {expected:?}");
    w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
    assert_eq!(cloud.census(), baseline, "destroy returns the emulator to its baseline");
    (baseline, expected, took)
}

/// Kill the first apply as told, apply again, count, plan, destroy, count.
/// Whether the kill landed before the first apply had finished.
fn kill_then_converge(emulator: &Emulator, cloud: &Cloud, baseline: &Census, expected: &Census, kill: Kill) -> bool {
    emulator.reset();
    assert_eq!(&cloud.census(), baseline, "{kill:?}: the emulator starts from its baseline");
    let w = workdir(emulator);
    match kill {
        Kill::After(after) => {
            let mut run = w
                .command(&["apply", "demo.toml", "--auto-approve"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(after);
            run.kill().unwrap(); // SIGKILL: no chance to clean up
            run.wait().unwrap();
        }
        Kill::At(address) => {
            let crashed = w
                .command(&["apply", "demo.toml", "--auto-approve"])
                .env("SKYPLAN_CRASH_BEFORE_RECORDING", address)
                .output()
                .unwrap();
            assert!(!crashed.status.success(), "{kill:?}: the hook aborts the run");
            let state = LocalBackend::new(w.path("demo.state.json")).load().unwrap().unwrap();
            assert!(state.pending.contains_key(address), "{kill:?}: the intent was recorded before the call");
            assert!(!state.resources.contains_key(address), "{kill:?}: the result was not recorded");
        }
    }

    let killed = LocalBackend::new(w.path("demo.state.json")).load().unwrap();
    let mid_run = killed.map_or(true, |s| s.resources.len() < 43);

    let again = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    // What is left after adoption may be nothing at all ("No changes.").
    let finished = again.stdout.contains("Apply complete!") || again.stdout.contains("No changes.");
    assert!(finished, "{kill:?}: {}", again.stdout);
    if let Kill::At(address) = kill {
        assert!(
            again.stderr.contains(&format!("{address} (")) && again.stderr.contains("adopted"),
            "{kill:?}: the resource the crashed run made is adopted: {}",
            again.stderr
        );
    }
    assert!(!again.stderr.contains("not in the state"), "{kill:?}: nothing orphaned: {}", again.stderr);
    assert_eq!(
        &cloud.census(),
        expected,
        "{kill:?}: exactly one of each resource; the second apply said:\n{}",
        again.stderr
    );
    let plan = w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();
    assert!(plan.stdout.contains("No changes."), "{kill:?}: {}", plan.stdout);
    let state = w.json("demo.state.json");
    assert_eq!(state["resources"].as_object().unwrap().len(), 43, "{kill:?}");
    assert!(state.get("pending").is_none(), "{kill:?}: no unsettled creates remain");

    let destroy = w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
    assert!(destroy.stdout.contains("43 destroyed"), "{kill:?}: {}", destroy.stdout);
    assert_eq!(&cloud.census(), baseline, "{kill:?}: destroy leaves nothing behind");
    mid_run
}

#[test]
fn a_kill_at_any_moment_then_apply_converges_on_the_emulator() {
    let emulator = Emulator::start();
    let cloud = Cloud::new(&emulator);
    let (baseline, expected, took) = reference(&emulator, &cloud);
    // The fixed times of the issue, and fractions of how long an apply
    // takes here, since a warm emulator can finish the whole cluster in
    // under a second.
    let mut times: Vec<Duration> = [300, 600, 1000].into_iter().map(Duration::from_millis).collect();
    times.extend([took / 4, took / 2, took * 3 / 4]);
    let mut interrupted = 0;
    for after in times {
        interrupted += usize::from(kill_then_converge(&emulator, &cloud, &baseline, &expected, Kill::After(after)));
    }
    assert!(interrupted >= 2, "only {interrupted} kills landed before the apply finished (it took {took:?})");
}

/// One boundary per kind whose create takes no ClientToken (and, since the
/// emulator ignores ClientToken anyway, the three that do: NAT gateway,
/// instance, launch template).
#[test]
fn a_crash_between_each_kinds_create_and_the_state_adopts_on_the_emulator() {
    let emulator = Emulator::start();
    let cloud = Cloud::new(&emulator);
    let (baseline, expected, _) = reference(&emulator, &cloud);
    for address in [
        "aws_vpc.main",
        "aws_subnet.public[us-east-1b]",
        "aws_internet_gateway.main",
        "aws_eip.nat[us-east-1a]",
        "aws_nat_gateway.main[us-east-1c]",
        "aws_route_table.private[us-east-1a]",
        "aws_security_group.control_plane",
        "aws_security_group_rule.node_all_from_self",
        "aws_instance.control_plane[1]",
        "aws_elb.apiserver",
        "aws_launch_template.pool[worker]",
        "aws_autoscaling_group.pool[worker]",
        // Found again by its name (the answer to GetSecretValue carries no tags).
        "aws_secretsmanager_secret.pki",
    ] {
        assert!(kill_then_converge(&emulator, &cloud, &baseline, &expected, Kill::At(address)));
    }
}
