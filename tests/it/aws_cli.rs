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
    assert!(apply.stdout.contains("Apply complete! Resources: 38 added"), "{}", apply.stdout);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancing::Client::new(&config);
    let asg = aws_sdk_autoscaling::Client::new(&config);

    rt.block_on(async {
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
                assert!(
                    private.values().any(|s| Some(s.as_str()) == i.subnet_id()),
                    "control plane in a private subnet"
                );
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
    });

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
    assert!(destroy.stdout.contains("38 destroyed"), "{}", destroy.stdout);
    rt.block_on(async {
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
    });
    assert!(w.json("demo.state.json")["resources"].as_object().unwrap().is_empty());
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
async fn existing_network(ec2: &aws_sdk_ec2::Client) -> (String, Vec<(String, String, String)>) {
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
