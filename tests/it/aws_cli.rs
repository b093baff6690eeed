//! The main job end to end: the `skyplan` binary applies the dynamic
//! cluster example to a local AWS emulator, and the test checks what exists
//! with the AWS SDK called directly (not through the provider under test):
//! the network layout, security groups, instances, load balancer, launch
//! template and auto scaling group, and the tags on all of them. Then a plan
//! shows no changes, a pool resize is one in-place update, and destroy
//! leaves nothing that carries the cluster's ownership tag.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, Tag};
use serde_json::Value;

use crate::emulator::Emulator;
use crate::support::Workdir;

pub(crate) const OWNED: &str = "kubernetes.io/cluster/demo";
pub(crate) const CAPA_OWNED: &str = "sigs.k8s.io/cluster-api-provider-aws/cluster/demo";

pub(crate) fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dynamic-cluster.toml")).unwrap()
}

pub(crate) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

pub(crate) fn tags(list: &[Tag]) -> BTreeMap<String, String> {
    list.iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
}

/// The cluster's tags every resource carries (contract: cluster tags,
/// Name, and both ownership tags).
#[track_caller]
fn assert_cluster_tags(what: &str, t: &BTreeMap<String, String>) {
    assert_eq!(t.get(OWNED).map(String::as_str), Some("owned"), "{what} lacks {OWNED}: {t:?}");
    assert_eq!(t.get(CAPA_OWNED).map(String::as_str), Some("owned"), "{what} lacks {CAPA_OWNED}: {t:?}");
    assert_eq!(t.get("team").map(String::as_str), Some("platform"), "{what} lacks the cluster tags: {t:?}");
    assert!(t.get("Name").is_some_and(|n| n.starts_with("demo-")), "{what} has no Name tag: {t:?}");
}

/// An IPv4 CIDR as a [start, end] range of addresses.
fn range(cidr: &str) -> (u32, u32) {
    let (ip, bits) = cidr.split_once('/').unwrap();
    let ip = ip.split('.').fold(0u32, |acc, o| (acc << 8) | o.parse::<u32>().unwrap());
    let bits: u32 = bits.parse().unwrap();
    let size = if bits == 0 { u32::MAX } else { (1u32 << (32 - bits)) - 1 };
    (ip, ip + size)
}

#[test]
fn dynamic_cluster_apply_no_changes_resize_destroy() {
    let emulator = Emulator::start();
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w.write("demo.toml", &example());

    w.run(&["validate", "demo.toml"]).ok();
    let apply = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    assert!(apply.stdout.contains("Apply complete! Resources: 43 added"), "{}", apply.stdout);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, elb, asg) = emulator.clients(&rt);

    rt.block_on(check_cluster_layout(&ec2, &elb, &asg));

    // Nothing changed: the plan is empty.
    let plan = w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // Growing the worker pool is one in-place update of its ASG.
    w.write("demo.toml", &example().replace("size = 3\nmin = 3\nmax = 6", "size = 4\nmin = 3\nmax = 6"));
    let plan = w.run(&["plan", "demo.toml", "--json"]).ok();
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let changed: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no-op")
        .map(|c| (c["address"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(changed, [("aws_autoscaling_group.pool[worker]".to_string(), "update".to_string())]);
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    rt.block_on(async {
        let groups = asg.describe_auto_scaling_groups().auto_scaling_group_names("demo-worker").send().await.unwrap();
        assert_eq!(groups.auto_scaling_groups()[0].desired_capacity(), Some(4));
    });
    w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();

    // Destroy leaves nothing that carries the cluster's ownership tag.
    let destroy = w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
    assert!(destroy.stdout.contains("43 destroyed"), "{}", destroy.stdout);
    rt.block_on(check_nothing_owned(&ec2, &elb, &asg));
    assert!(w.json("demo.state.json")["resources"].as_object().unwrap().is_empty());
}

/// The layout rules of the contract for examples/dynamic-cluster.toml, checked
/// with SDK clients pointed straight at the emulator.
pub(crate) async fn check_cluster_layout(
    ec2: &aws_sdk_ec2::Client,
    elb: &aws_sdk_elasticloadbalancing::Client,
    asg: &aws_sdk_autoscaling::Client,
) {
    // One VPC, owned by the cluster.
    let vpcs = ec2.describe_vpcs().filters(filter(&format!("tag:{OWNED}"), "owned")).send().await.unwrap();
    let [vpc] = vpcs.vpcs() else { panic!("expected one cluster VPC: {:?}", vpcs.vpcs()) };
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    assert_cluster_tags("the VPC", &tags(vpc.tags()));
    let vpc_id = vpc.vpc_id().unwrap().to_string();
    let in_vpc = || filter("vpc-id", &vpc_id);

    // A public and a private subnet per AZ, inside the VPC, no overlap.
    let subnets = ec2.describe_subnets().filters(in_vpc()).send().await.unwrap();
    let subnets = subnets.subnets();
    assert_eq!(subnets.len(), 6);
    let vpc_range = range("10.0.0.0/16");
    let mut ranges: Vec<(u32, u32)> = subnets.iter().map(|s| range(s.cidr_block().unwrap())).collect();
    ranges.sort();
    for r in &ranges {
        assert!(r.0 >= vpc_range.0 && r.1 <= vpc_range.1, "subnet outside the VPC");
    }
    for pair in ranges.windows(2) {
        assert!(pair[0].1 < pair[1].0, "subnets overlap");
    }
    let mut public: BTreeMap<String, String> = BTreeMap::new(); // az -> subnet id
    let mut private: BTreeMap<String, String> = BTreeMap::new();
    for s in subnets {
        let t = tags(s.tags());
        assert_cluster_tags("a subnet", &t);
        let az = s.availability_zone().unwrap().to_string();
        let id = s.subnet_id().unwrap().to_string();
        if s.map_public_ip_on_launch() == Some(true) {
            assert_eq!(t.get("kubernetes.io/role/elb").map(String::as_str), Some("1"), "{t:?}");
            assert_eq!(t.get("sigs.k8s.io/cluster-api-provider-aws/role").map(String::as_str), Some("public"));
            assert_eq!(t.get("Name"), Some(&format!("demo-subnet-public-{az}")));
            public.insert(az, id);
        } else {
            assert_eq!(t.get("kubernetes.io/role/internal-elb").map(String::as_str), Some("1"), "{t:?}");
            assert_eq!(t.get("sigs.k8s.io/cluster-api-provider-aws/role").map(String::as_str), Some("private"));
            private.insert(az, id);
        }
    }
    let azs: BTreeSet<&str> = ["us-east-1a", "us-east-1b", "us-east-1c"].into();
    assert_eq!(public.keys().map(String::as_str).collect::<BTreeSet<_>>(), azs);
    assert_eq!(private.keys().map(String::as_str).collect::<BTreeSet<_>>(), azs);

    // The internet gateway is attached.
    let igws = ec2.describe_internet_gateways().filters(filter("attachment.vpc-id", &vpc_id)).send().await.unwrap();
    let [igw] = igws.internet_gateways() else { panic!("expected one attached IGW") };
    assert_cluster_tags("the internet gateway", &tags(igw.tags()));
    let igw_id = igw.internet_gateway_id().unwrap().to_string();

    // A NAT gateway with an Elastic IP in each public subnet.
    let nats = ec2.describe_nat_gateways().filter(in_vpc()).send().await.unwrap();
    let nats: Vec<_> =
        nats.nat_gateways().iter().filter(|n| n.state().map(|s| s.as_str()) == Some("available")).collect();
    assert_eq!(nats.len(), 3);
    let mut nat_by_az: BTreeMap<String, String> = BTreeMap::new();
    for n in &nats {
        assert_cluster_tags("a NAT gateway", &tags(n.tags()));
        let subnet = n.subnet_id().unwrap();
        let az = public.iter().find(|(_, id)| id.as_str() == subnet).map(|(az, _)| az.clone());
        let az = az.expect("every NAT gateway is in a public subnet");
        assert!(n.nat_gateway_addresses().iter().any(|a| a.allocation_id().is_some()), "NAT without an EIP");
        nat_by_az.insert(az, n.nat_gateway_id().unwrap().to_string());
    }
    assert_eq!(nat_by_az.len(), 3, "one NAT gateway per AZ");
    let eips = ec2.describe_addresses().filters(filter(&format!("tag:{OWNED}"), "owned")).send().await.unwrap();
    assert_eq!(eips.addresses().len(), 3);

    // Each private subnet routes 0.0.0.0/0 to its own AZ's NAT gateway,
    // each public subnet to the internet gateway.
    let tables = ec2.describe_route_tables().filters(in_vpc()).send().await.unwrap();
    let default_route_of = |subnet: &str| -> (Option<String>, Option<String>) {
        let table = tables
            .route_tables()
            .iter()
            .find(|t| t.associations().iter().any(|a| a.subnet_id() == Some(subnet)))
            .unwrap_or_else(|| panic!("subnet {subnet} has no route table"));
        let route = table.routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0")).unwrap();
        (route.nat_gateway_id().map(str::to_string), route.gateway_id().map(str::to_string))
    };
    for (az, subnet) in &private {
        assert_eq!(default_route_of(subnet).0.as_ref(), Some(&nat_by_az[az]), "private subnet in {az}");
    }
    for subnet in public.values() {
        assert_eq!(default_route_of(subnet).1.as_deref(), Some(igw_id.as_str()));
    }

    // The bastion's security group admits SSH from ssh_cidrs only.
    let groups = ec2.describe_security_groups().filters(in_vpc()).send().await.unwrap();
    let bastion_sg = groups.security_groups().iter().find(|g| g.group_name() == Some("demo-bastion")).unwrap();
    let rules = bastion_sg.ip_permissions();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!((rules[0].from_port(), rules[0].to_port()), (Some(22), Some(22)));
    let cidrs: Vec<&str> = rules[0].ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
    assert_eq!(cidrs, ["203.0.113.0/24"]);
    for g in groups.security_groups().iter().filter(|g| g.group_name() != Some("default")) {
        assert_cluster_tags("a security group", &tags(g.tags()));
    }

    // Control-plane instances: private subnets across the AZs, no public IP.
    let running = ec2
        .describe_instances()
        .filters(in_vpc())
        .filters(filter("instance-state-name", "running"))
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = running.reservations().iter().flat_map(|r| r.instances()).collect();
    let named = |prefix: &str| -> Vec<_> {
        instances
            .iter()
            .filter(|i| tags(i.tags()).get("Name").is_some_and(|n| n.starts_with(prefix)))
            .copied()
            .collect()
    };
    let control_plane = named("demo-control-plane");
    assert_eq!(control_plane.len(), 3);
    let cp_azs: BTreeSet<String> = control_plane
        .iter()
        .map(|i| {
            assert!(private.values().any(|s| Some(s.as_str()) == i.subnet_id()), "control plane in a private subnet");
            assert!(i.public_ip_address().is_none(), "control plane instances have no public IP");
            assert_cluster_tags("a control-plane instance", &tags(i.tags()));
            i.placement().and_then(|p| p.availability_zone()).unwrap().to_string()
        })
        .collect();
    assert_eq!(cp_azs.len(), 3, "spread over the AZs");
    let bastion = named("demo-bastion");
    assert_eq!(bastion.len(), 1);
    assert!(public.values().any(|s| Some(s.as_str()) == bastion[0].subnet_id()), "the bastion is public");

    // The API load balancer: TCP 6443, TCP health check, exactly the control plane.
    let lbs = elb.describe_load_balancers().load_balancer_names("demo-apiserver").send().await.unwrap();
    let [lb] = lbs.load_balancer_descriptions() else { panic!("expected the demo-apiserver ELB") };
    let listener = lb.listener_descriptions()[0].listener().unwrap();
    assert_eq!((listener.load_balancer_port(), listener.instance_port()), (6443, 6443));
    assert_eq!(listener.protocol().to_uppercase(), "TCP");
    assert_eq!(lb.health_check().map(|h| h.target()), Some("TCP:6443"));
    let registered: BTreeSet<&str> = lb.instances().iter().filter_map(|i| i.instance_id()).collect();
    let cp_ids: BTreeSet<&str> = control_plane.iter().filter_map(|i| i.instance_id()).collect();
    assert_eq!(registered, cp_ids);
    let lb_subnets: BTreeSet<&str> = lb.subnets().iter().map(String::as_str).collect();
    assert_eq!(lb_subnets, public.values().map(String::as_str).collect());

    // The worker pool: a launch template and an ASG over the private subnets.
    let lts = ec2.describe_launch_templates().launch_template_names("demo-worker").send().await.unwrap();
    assert_eq!(lts.launch_templates().len(), 1);
    let groups = asg.describe_auto_scaling_groups().auto_scaling_group_names("demo-worker").send().await.unwrap();
    let [group] = groups.auto_scaling_groups() else { panic!("expected the demo-worker ASG") };
    assert_eq!((group.min_size(), group.max_size(), group.desired_capacity()), (Some(3), Some(6), Some(3)));
    let zone_subnets: BTreeSet<&str> = group.vpc_zone_identifier().unwrap().split(',').map(str::trim).collect();
    assert_eq!(zone_subnets, private.values().map(String::as_str).collect());
    let group_tags: BTreeMap<&str, (&str, bool)> = group
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), (t.value().unwrap_or_default(), t.propagate_at_launch() == Some(true))))
        .collect();
    assert_eq!(group_tags.get(OWNED), Some(&("owned", true)), "instances launched get the tags: {group_tags:?}");
}

/// After destroy: nothing left that carries the example cluster's ownership tag.
pub(crate) async fn check_nothing_owned(
    ec2: &aws_sdk_ec2::Client,
    elb: &aws_sdk_elasticloadbalancing::Client,
    asg: &aws_sdk_autoscaling::Client,
) {
    let owned = || filter(&format!("tag:{OWNED}"), "owned");
    assert!(ec2.describe_vpcs().filters(owned()).send().await.unwrap().vpcs().is_empty());
    assert!(ec2.describe_subnets().filters(owned()).send().await.unwrap().subnets().is_empty());
    assert!(ec2.describe_security_groups().filters(owned()).send().await.unwrap().security_groups().is_empty());
    assert!(ec2.describe_route_tables().filters(owned()).send().await.unwrap().route_tables().is_empty());
    assert!(ec2.describe_internet_gateways().filters(owned()).send().await.unwrap().internet_gateways().is_empty());
    assert!(ec2.describe_addresses().filters(owned()).send().await.unwrap().addresses().is_empty());
    let live = ec2
        .describe_instances()
        .filters(owned())
        .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
        .send()
        .await
        .unwrap();
    let left: Vec<_> = live.reservations().iter().flat_map(|r| r.instances()).collect();
    assert!(left.is_empty(), "instances left: {left:?}");
    let nats = ec2.describe_nat_gateways().send().await.unwrap();
    assert!(nats.nat_gateways().iter().all(|n| n.state().map(|s| s.as_str()) == Some("deleted")));
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    assert!(lbs.load_balancer_descriptions().is_empty());
    let groups = asg.describe_auto_scaling_groups().send().await.unwrap();
    assert!(groups.auto_scaling_groups().is_empty());
    let lts = ec2.describe_launch_templates().send().await.unwrap();
    assert!(lts.launch_templates().iter().all(|t| t.launch_template_name() != Some("demo-worker")));
}

/// No credential reaches the state, a plan file or the logs: a run with
/// known fake secrets, at the most verbose level, then a scan of everything
/// it printed and wrote.
#[test]
fn no_secret_reaches_state_plans_or_logs() {
    const KEY_ID: &str = "AKIAFAKEKEYID7Q3ZX9W";
    const SECRET: &str = "fakeSecret/K7MDENG+bPxRfiCYEXAMPLEKEY42";
    const TOKEN: &str = "FakeSessionToken//////////wEaCXVzLWVhc3QtMSJHMEUCIQ";
    let emulator = Emulator::start();
    let mut w = Workdir::new();
    w.env = emulator
        .env()
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET") && !k.starts_with("AWS_SESSION")
        })
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    w.env.extend([
        ("AWS_ACCESS_KEY_ID".to_string(), KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET.to_string()),
        ("AWS_SESSION_TOKEN".to_string(), TOKEN.to_string()),
    ]);
    w.write(
        "net.toml",
        r#"[resource.aws_vpc.main]
cidr_block = "10.9.0.0/16"
tags = { team = "secrets-test" }

[resource.aws_subnet.a]
vpc_id = "${aws_vpc.main.id}"
cidr_block = "10.9.1.0/24"
availability_zone = "us-east-1a"
"#,
    );
    let mut printed = String::new();
    for args in [
        &["-vv", "apply", "net.toml", "--auto-approve"][..],
        &["-vv", "plan", "net.toml", "--out", "net.plan"],
        &["-vv", "show", "net.plan", "--json"],
        &["-vv", "show", "--json"],
        &["-vv", "destroy", "net.toml", "--auto-approve"],
    ] {
        let out = w.run(args).ok();
        printed.push_str(&out.stdout);
        printed.push_str(&out.stderr);
    }
    assert!(printed.len() > 1000, "the verbose run printed logs to scan");
    for secret in [KEY_ID, SECRET, TOKEN] {
        assert!(!printed.contains(secret), "a credential was printed");
        for entry in std::fs::read_dir(w.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(secret), "{} holds a credential", path.display());
        }
    }
    for private in ["net.state.json", "net.plan", "net.state.json.backup"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(w.path(private)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{private} is readable by others");
    }
}

/// A pack value marked sensitive reaches the nodes' user data in the cloud
/// and nothing skyplan prints or keeps beside it: not the plan, not the
/// state, its backup or journal, not the verbose logs. A changed value is an
/// update that shows one mask replacing another. (The plan file holds the
/// spec itself, so it is 0600 and out of this scan: docs/reliability.md.)
#[test]
fn sensitive_pack_values_reach_the_nodes_only() {
    const SECRET: &str = "reg-Pa55word-7f3a";
    const NEXT: &str = "reg-Pa55word-9c1d";
    let emulator = Emulator::start();
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let spec = example().replace(
        "values = { mtu = 1440 }",
        &format!(
            "values = {{ mtu = 1440, registry = {{ password = \"{SECRET}\" }} }}\nsensitive = [\"registry.password\"]"
        ),
    );
    assert!(spec.contains(SECRET));
    // An empty worker pool, so that the change below can be applied: a pool
    // with nodes rolls by instance refresh, which the emulator lacks.
    let workers = "size = 3\nmin = 3\nmax = 6";
    assert!(spec.contains(workers));
    let spec = spec.replace(workers, "size = 0\nmin = 0\nmax = 6");
    w.write("demo.toml", &spec);

    let mut printed = String::new();
    let mut keep = |run: crate::support::Run| {
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
        run
    };
    let apply = keep(w.run(&["-vv", "apply", "demo.toml", "--auto-approve"]).ok());
    // On the first apply the nodes' user data is known only after it (it
    // names the load balancer's DNS name); the change below shows the masks.
    assert!(apply.stdout.contains("user_data") && !apply.stdout.contains(SECRET), "{}", apply.stdout);
    keep(w.run(&["plan", "demo.toml", "--detailed-exitcode"]).code(0));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let user_data = rt.block_on(async {
        let data = crate::emulator::default_template_data(&ec2, "demo-worker").await;
        String::from_utf8(aws_smithy_types::base64::decode(data.user_data().unwrap()).unwrap()).unwrap()
    });
    assert!(user_data.contains(&format!("password: {SECRET}")), "the nodes get the value: {user_data}");

    w.write("demo.toml", &spec.replace(SECRET, NEXT));
    let plan = keep(w.run(&["plan", "demo.toml"]).ok());
    assert!(plan.stdout.contains("aws_launch_template.pool[worker] will be updated in place"), "{}", plan.stdout);
    let shown = plan.stdout.lines().filter(|l| l.contains("password: (sensitive ")).count();
    assert!(shown >= 2, "the old and new masks: {}", plan.stdout);
    keep(w.run(&["plan", "demo.toml", "--json"]).ok());
    keep(w.run(&["show", "--json"]).ok());
    keep(w.run(&["state", "show", "aws_launch_template.pool[worker]"]).ok());
    let files_hold_no_secret = || {
        for entry in std::fs::read_dir(w.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(text.contains("demo"), "{} is a file of this run", path.display());
            for secret in [SECRET, NEXT] {
                assert!(!text.contains(secret), "{} holds {secret}", path.display());
            }
        }
    };
    files_hold_no_secret();
    keep(w.run(&["apply", "demo.toml", "--auto-approve"]).ok());
    files_hold_no_secret();
    keep(w.run(&["destroy", "demo.toml", "--auto-approve"]).ok());
    for secret in [SECRET, NEXT] {
        let lines: Vec<&str> = printed.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "{secret} was printed: {lines:#?}");
    }
}

/// `validate` and `graph` make no cloud call and look up no credentials:
/// with none in the environment, and every AWS endpoint (the API's and the
/// instance metadata service's) pointed at a loopback listener that counts
/// connections, both succeed and nothing connects.
#[test]
fn validate_and_graph_make_no_cloud_call() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let w = Workdir::new();
    w.write("demo.toml", &example());
    for (args, expect) in [
        (&["validate", "demo.toml"][..], "demo.toml is valid: 43 resources"),
        (&["graph", "demo.toml", "--format", "dot"], "\"aws_vpc.main\" -> \"aws_subnet.public[us-east-1a]\""),
    ] {
        let mut cmd = w.command(args);
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_CONFIG_FILE", w.path("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", w.path("no-credentials"))
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint);
        let out = crate::support::Run::from(cmd.output().unwrap()).ok();
        assert!(out.stdout.contains(expect), "{}", out.stdout);
    }
    assert!(listener.accept().is_err(), "something connected to the AWS endpoint");
}

#[test]
fn preflight_compares_needs_with_the_account() {
    let emulator = Emulator::start();
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w.write("demo.toml", &example());
    let ready = w.run(&["preflight", "demo.toml"]).ok();
    for line in
        ["availability zone us-east-1c", "Elastic IPs (one per NAT gateway)", "NAT gateways in us-east-1b", "VPCs"]
    {
        assert!(ready.stdout.lines().any(|l| l.starts_with(line) && l.ends_with("ok")), "{line}: {}", ready.stdout);
    }
    assert!(ready.stdout.contains("Ready"), "{}", ready.stdout);

    // Six AZs need six Elastic IPs; the emulator's account allows five.
    let six = example().replace(
        r#"azs = ["us-east-1a", "us-east-1b", "us-east-1c"]"#,
        r#"azs = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]"#,
    );
    w.write("six.toml", &six);
    let short = w.run(&["preflight", "six.toml"]).code(1);
    assert!(short.stdout.lines().any(|l| l.starts_with("Elastic IPs") && l.ends_with("FAIL")), "{}", short.stdout);
    assert!(short.stderr.contains("needs 6 Elastic IPs but 5 are free"), "{}", short.stderr);

    // A key pair that does not exist, then does.
    w.write("key.toml", &example().replace("# ssh_key_name = \"ops\"", "ssh_key_name = \"ops\""));
    let missing = w.run(&["preflight", "key.toml"]).code(1);
    assert!(missing.stderr.contains("key pair ops does not exist"), "{}", missing.stderr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
        ec2.create_key_pair().key_name("ops").send().await.unwrap();
    });
    w.run(&["preflight", "key.toml"]).ok();
    assert!(!w.exists("demo.state.json") && !w.exists("key.state.json"), "preflight writes nothing");
}

/// An existing VPC with a public and a private subnet in each of two AZs,
/// built by the test as a customer would have; returns (vpc, [(az, public,
/// private)]).
pub(crate) async fn existing_network(ec2: &aws_sdk_ec2::Client) -> (String, Vec<(String, String, String)>) {
    use aws_sdk_ec2::types::DomainType;
    let vpc = ec2.create_vpc().cidr_block("10.20.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let igw = ec2.create_internet_gateway().send().await.unwrap();
    let igw = igw.internet_gateway().unwrap().internet_gateway_id().unwrap().to_string();
    ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&vpc).send().await.unwrap();
    let public_rt = ec2.create_route_table().vpc_id(&vpc).send().await.unwrap();
    let public_rt = public_rt.route_table().unwrap().route_table_id().unwrap().to_string();
    ec2.create_route()
        .route_table_id(&public_rt)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw)
        .send()
        .await
        .unwrap();
    let mut subnets = Vec::new();
    for (i, az) in ["us-east-1a", "us-east-1b"].into_iter().enumerate() {
        let make = |cidr: String| ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr).availability_zone(az).send();
        let public =
            make(format!("10.20.{}.0/24", i * 2)).await.unwrap().subnet().unwrap().subnet_id().unwrap().to_string();
        let private =
            make(format!("10.20.{}.0/24", i * 2 + 1)).await.unwrap().subnet().unwrap().subnet_id().unwrap().to_string();
        ec2.associate_route_table().route_table_id(&public_rt).subnet_id(&public).send().await.unwrap();
        let eip = ec2.allocate_address().domain(DomainType::Vpc).send().await.unwrap();
        let nat = ec2
            .create_nat_gateway()
            .subnet_id(&public)
            .allocation_id(eip.allocation_id().unwrap())
            .send()
            .await
            .unwrap();
        let nat = nat.nat_gateway().unwrap().nat_gateway_id().unwrap().to_string();
        let rt = ec2.create_route_table().vpc_id(&vpc).send().await.unwrap();
        let rt = rt.route_table().unwrap().route_table_id().unwrap().to_string();
        ec2.create_route()
            .route_table_id(&rt)
            .destination_cidr_block("0.0.0.0/0")
            .nat_gateway_id(&nat)
            .send()
            .await
            .unwrap();
        ec2.associate_route_table().route_table_id(&rt).subnet_id(&private).send().await.unwrap();
        subnets.push((az.to_string(), public, private));
    }
    (vpc, subnets)
}

#[test]
fn static_placement_is_checked_tagged_on_request_used_and_left_in_place() {
    let emulator = Emulator::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&rt.block_on(emulator.sdk_config()));
    let (vpc, subnets) = rt.block_on(existing_network(&ec2));
    let mut spec = format!(
        "[cluster]\nname = \"placed\"\nregion = \"us-east-1\"\n\n[placement]\nmode = \"static\"\nazs = [\"us-east-1a\", \"us-east-1b\"]\nvpc_id = \"{vpc}\"\n"
    );
    for (az, public, private) in &subnets {
        spec.push_str(&format!(
            "\n[[placement.subnet]]\naz = \"{az}\"\npublic = \"{public}\"\nprivate = \"{private}\"\n"
        ));
    }
    spec.push_str(
        "\n[bastion]\nenabled = false\n\n[[node_pool]]\nname = \"master\"\ncontrol_plane = true\nsize = 1\ninstance_type = \"m5.large\"\n\n\
         [[node_pool]]\nname = \"worker\"\nsize = 1\ninstance_type = \"m5.large\"\n",
    );
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w.write("placed.toml", &spec);

    // The public subnets lack the load-balancer tags: refused, naming each.
    let refused = w.run(&["plan", "placed.toml"]).code(1);
    for (_, public, _) in &subnets {
        assert!(refused.stderr.contains(&format!("public subnet {public} lacks the tags")), "{}", refused.stderr);
    }
    assert!(
        refused.stderr.contains("kubernetes.io/cluster/placed = shared") && refused.stderr.contains("--tag-subnets")
    );
    assert!(!w.exists("placed.state.json"), "nothing written");
    let preflight = w.run(&["preflight", "placed.toml"]).code(1);
    assert!(preflight.stdout.contains(&format!("public subnet {}", subnets[0].1)), "{}", preflight.stdout);

    // A subnet that does not exist is named too.
    w.write("wrong.toml", &spec.replace(&subnets[1].2, "subnet-0123456789abcdef0"));
    let wrong = w.run(&["plan", "wrong.toml"]).code(1);
    assert!(
        wrong.stderr.contains("private subnet subnet-0123456789abcdef0 for us-east-1b does not exist"),
        "{}",
        wrong.stderr
    );

    // --tag-subnets adds the tags, then the cluster goes into the given subnets.
    let applied = w.run(&["apply", "placed.toml", "--auto-approve", "--tag-subnets"]).ok();
    assert!(applied.stderr.contains("tagged"), "{}", applied.stderr);
    rt.block_on(async {
        let out = ec2.describe_subnets().filters(filter("vpc-id", &vpc)).send().await.unwrap();
        for (_, public, _) in &subnets {
            let s = out.subnets().iter().find(|s| s.subnet_id() == Some(public.as_str())).unwrap();
            let t = tags(s.tags());
            assert_eq!(t.get("kubernetes.io/role/elb").map(String::as_str), Some("1"));
            assert_eq!(t.get("kubernetes.io/cluster/placed").map(String::as_str), Some("shared"));
        }
        assert_eq!(out.subnets().len(), 4, "no subnet created");
        let vpcs = ec2.describe_vpcs().send().await.unwrap();
        assert_eq!(vpcs.vpcs().iter().filter(|v| v.cidr_block() != Some("172.31.0.0/16")).count(), 1, "no VPC created");
        let running = ec2
            .describe_instances()
            .filters(filter("instance-state-name", "running"))
            .filters(filter("tag:Name", "placed-control-plane-0"))
            .send()
            .await
            .unwrap();
        let cp: Vec<_> = running.reservations().iter().flat_map(|r| r.instances()).collect();
        assert_eq!(cp.len(), 1);
        assert!(
            subnets.iter().any(|(_, _, private)| cp[0].subnet_id() == Some(private.as_str())),
            "in a given private subnet"
        );
    });
    w.run(&["plan", "placed.toml", "--detailed-exitcode"]).ok();

    // destroy removes only what skyplan created: the VPC and subnets stay.
    // They carry the cluster's `owned` tag (--tag-subnets added it), yet
    // neither they nor anything else is an orphan: skyplan did not create
    // them (no address tag), and the spec names their ids.
    let plan = w.run(&["plan", "placed.toml", "--destroy", "--json"]).ok();
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["orphans"], serde_json::json!([]), "{plan}");
    let given: BTreeSet<&str> = subnets
        .iter()
        .flat_map(|(_, public, private)| [public.as_str(), private.as_str()])
        .chain([vpc.as_str()])
        .collect();
    for change in plan["changes"].as_array().unwrap() {
        let id = change["before"]["id"].as_str().unwrap_or_default();
        assert!(!given.contains(id), "destroy would touch {id}: {change}");
    }
    let destroyed = w.run(&["destroy", "placed.toml", "--auto-approve"]).ok();
    assert!(!destroyed.stdout.contains("not in the state"), "{}", destroyed.stdout);
    rt.block_on(async {
        let out = ec2.describe_subnets().filters(filter("vpc-id", &vpc)).send().await.unwrap();
        assert_eq!(out.subnets().len(), 4);
        assert_eq!(ec2.describe_vpcs().filters(filter("vpc-id", &vpc)).send().await.unwrap().vpcs().len(), 1);
        let left = ec2.describe_instances().filters(filter("instance-state-name", "running")).send().await.unwrap();
        let left: Vec<_> = left.reservations().iter().flat_map(|r| r.instances()).collect();
        assert!(left.is_empty(), "instances left: {left:?}");
    });
}

/// A raw spot pool beside the example's: its max price (`MAX`) is set per
/// run, below or above the emulator's spot price.
const CHEAP_POOL: &str = r#"
[resource.aws_launch_template.cheap]
name = "spot-demo-cheap"
image_id = "auto"
instance_type = "m5.xlarge"
spot_max_price = "MAX"

[resource.aws_autoscaling_group.cheap]
name = "spot-demo-cheap"
launch_template_id = "${aws_launch_template.cheap.id}"
launch_template_version = "${aws_launch_template.cheap.latest_version}"
min_size = 0
max_size = 1
desired_capacity = 0
vpc_zone_identifier = ["${aws_subnet.private[us-east-1a].id}"]
"#;

/// On-Spot against the emulator. Its DescribeSpotPriceHistory answers
/// $0.00001 in every AZ where the type is offered, whatever the time, so:
/// plan shows that price against the max of the example's spot pool (whose
/// on-demand price comes from the price table); an apply creates that pool
/// at once (in range), while a raw pool with a max below the emulator's
/// price fails after its --spot-wait, plainly, and nothing else does; with
/// the max raised, the next apply creates it. Checked with the SDK.
#[test]
fn spot_prices_in_plan_and_the_spot_wait_in_apply() {
    let emulator = Emulator::start();
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spot-pool.toml")).unwrap();
    w.write("spot.toml", &example);

    let plan = w.run(&["plan", "spot.toml"]).ok();
    assert!(
        plan.stdout
            .contains("  spot m5.xlarge max $0.1152/h = 60% of on-demand $0.192/h (skyplan's price table as of "),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("    us-east-1a $0.00001 ok, us-east-1b $0.00001 ok\n"), "{}", plan.stdout);
    let json: Value = serde_json::from_str(&w.run(&["plan", "spot.toml", "--json"]).ok().stdout).unwrap();
    let spot = &json["spot"][0];
    assert_eq!(spot["pool"], "spot");
    assert_eq!(spot["max_price"], "0.1152");
    assert_eq!(spot["on_demand_price_source"], "price_table");
    assert_eq!(
        spot["azs"],
        serde_json::json!([
            {"az": "us-east-1a", "price": "0.00001", "in_range": true},
            {"az": "us-east-1b", "price": "0.00001", "in_range": true},
        ])
    );
    assert!(json["changes"].as_array().is_some_and(|c| !c.is_empty()), "the contract's fields stay");
    let offline = w.run(&["plan", "spot.toml", "--no-refresh"]).ok();
    assert!(offline.stdout.contains("current spot prices not read (--no-refresh)"), "{}", offline.stdout);

    // Below the emulator's price: the raw pool fails after its wait, alone.
    w.write("spot.toml", &format!("{example}{}", CHEAP_POOL.replace("MAX", "0.000005")));
    let apply = w.run(&["apply", "spot.toml", "--auto-approve", "--spot-wait", "2s"]).code(1);
    assert!(
        apply.stderr.lines().any(|l| l.starts_with("  aws_autoscaling_group.cheap: ")
            && l.ends_with(
                "spot price for m5.xlarge in us-east-1a stayed above max $0.000005/h for 2s \
                 (now us-east-1a $0.00001); raise max_price_percent or retry later"
            )),
        "{}",
        apply.stderr
    );
    assert!(apply.stderr.contains("1 failed, 0 skipped"), "{}", apply.stderr);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let asg = aws_sdk_autoscaling::Client::new(&config);
    let groups = || {
        rt.block_on(async {
            let out = asg.describe_auto_scaling_groups().send().await.unwrap();
            out.auto_scaling_groups().iter().filter_map(|g| g.auto_scaling_group_name()).map(str::to_string).collect()
        })
    };
    let names: BTreeSet<String> = groups();
    assert_eq!(
        names,
        ["spot-demo-general", "spot-demo-spot"].map(String::from).into(),
        "only the cheap pool is missing"
    );
    rt.block_on(async {
        let data = crate::emulator::default_template_data(&ec2, "spot-demo-spot").await;
        let market = data.instance_market_options().unwrap();
        assert_eq!(market.market_type().map(|m| m.as_str()), Some("spot"));
        assert_eq!(market.spot_options().and_then(|s| s.max_price()), Some("0.1152"), "60% of the table's $0.192");
    });

    // The max raised above the emulator's price: the next apply creates it.
    w.write("spot.toml", &format!("{example}{}", CHEAP_POOL.replace("MAX", "0.0001")));
    let again = w.run(&["apply", "spot.toml", "--auto-approve", "--spot-wait", "0"]).ok();
    assert!(again.stdout.contains("Apply complete!"), "{}", again.stdout);
    let names: BTreeSet<String> = groups();
    assert!(names.contains("spot-demo-cheap"), "{names:?}");
    w.run(&["plan", "spot.toml", "--detailed-exitcode"]).ok();
    w.run(&["destroy", "spot.toml", "--auto-approve"]).ok();
    assert!(groups().is_empty(), "destroy removes every group");
}
