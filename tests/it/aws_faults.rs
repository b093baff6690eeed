//! API faults end to end: the `skyplan` binary talks to the emulator
//! through the fault-injecting proxy (`faultproxy.rs`) with 10% of requests
//! failing (throttling in each service's shape, 500s, connection resets
//! before forwarding, and resets after forwarding, where the emulator acted
//! and the answer is lost), plus added latency. apply, plan and destroy
//! still converge; every failure the proxy injected is accounted for in
//! skyplan's retry report; and SDK clients pointed straight at the
//! emulator (not through the proxy, not through skyplan) find exactly the
//! resources the state records: no duplicate from a retried create, and
//! nothing left after destroy.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::types::Filter;

use crate::aws_cli::{check_cluster_layout, check_nothing_owned, example, filter, OWNED};
use crate::emulator::Emulator;
use crate::faultproxy::{self, Counts, FaultProxy, Rates};
use crate::support::{Run, Workdir};

/// 10% of requests fail, a tenth more are slowed.
const TEN_PERCENT: Rates = Rates {
    throttle: 0.03,
    server_error: 0.02,
    reset_before: 0.02,
    reset_after: 0.03,
    delay: 0.1,
    max_delay: Duration::from_millis(150),
};

/// What skyplan reported about one run: its request count (`-v`) and its
/// retry note.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reported {
    requests: u64,
    retried: u64,
    throttled: u64,
    lost_answers: u64,
    found: u64,
    not_found: u64,
}

/// The number right before `suffix` in `line` ("... 3 throttled" -> 3).
fn number_before(line: &str, suffix: &str) -> u64 {
    let Some(at) = line.find(suffix) else { return 0 };
    let digits: String =
        line[..at].chars().rev().take_while(char::is_ascii_digit).collect::<String>().chars().rev().collect();
    digits.parse().unwrap_or(0)
}

fn reported(run: &Run) -> Reported {
    let requests = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("aws API requests: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in\n{}", run.stderr));
    let mut r = Reported { requests, ..Reported::default() };
    if let Some(note) = run.stderr.lines().find(|l| l.contains("aws: retried ")) {
        let after = &note[note.find("aws: retried ").unwrap() + "aws: retried ".len()..];
        r.retried = after.split(' ').next().unwrap().parse().unwrap();
        r.throttled = number_before(note, " throttled");
        r.lost_answers = number_before(note, " calls that make something lost their answer");
        r.found = number_before(note, " found by tag or name,");
        r.not_found = number_before(note, " not found)");
        assert!(note.contains("at most 10 tries each"), "retries are bounded and say so: {note}");
    }
    r
}

/// Every fault the proxy injected in one run shows in skyplan's report: a
/// throttle is retried, any other failure is retried or (for a call that
/// makes something) looked up instead; every request skyplan counted went
/// through the proxy.
#[track_caller]
fn assert_accounted(phase: &str, run: &Run, counts: Counts, seed: u64) {
    let r = reported(run);
    let context = format!("{phase} (seed {seed}): proxy {counts:?}, skyplan {r:?}\n{}", run.stderr);
    assert_eq!(r.requests, counts.requests, "every request went through the proxy: {context}");
    assert_eq!(r.throttled, counts.throttled, "{context}");
    assert_eq!(r.retried + r.lost_answers, counts.failed(), "{context}");
    if counts.failed() > 0 {
        assert!(run.stderr.contains("note: aws: retried "), "the run reports its retries: {context}");
    }
}

/// Per resource type, the ids of what the state records.
fn state_ids(w: &Workdir, state: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for resource in w.json(state)["resources"].as_object().unwrap().values() {
        let kind = resource["type"].as_str().unwrap().to_string();
        // A rule with several CIDRs is several AWS rules, its id their ids joined.
        for id in resource["id"].as_str().unwrap().split(',') {
            ids.entry(kind.clone()).or_default().insert(id.to_string());
        }
    }
    ids
}

/// The names of every secret in the emulator, read with the SDK directly.
async fn secret_names(emulator: &Emulator) -> BTreeSet<String> {
    let sm = aws_sdk_secretsmanager::Client::new(&emulator.sdk_config().await);
    let out = sm.list_secrets().send().await.unwrap();
    out.secret_list().iter().filter_map(|s| s.name().map(str::to_string)).collect()
}

/// Per resource type, the ids of everything in the emulator that belongs
/// to the cluster, read with the SDK directly: by the ownership tag, or
/// for the kinds named rather than tagged, everything there is (the test's
/// emulator holds this cluster only).
async fn emulator_ids(
    ec2: &aws_sdk_ec2::Client,
    elb: &aws_sdk_elasticloadbalancing::Client,
    asg: &aws_sdk_autoscaling::Client,
) -> BTreeMap<String, BTreeSet<String>> {
    let owned = || filter(&format!("tag:{OWNED}"), "owned");
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut put = |kind: &str, id: Option<&str>| {
        ids.entry(kind.to_string()).or_default().insert(id.expect("an id").to_string());
    };
    for v in ec2.describe_vpcs().filters(owned()).send().await.unwrap().vpcs() {
        put("aws_vpc", v.vpc_id());
    }
    for s in ec2.describe_subnets().filters(owned()).send().await.unwrap().subnets() {
        put("aws_subnet", s.subnet_id());
    }
    for g in ec2.describe_internet_gateways().filters(owned()).send().await.unwrap().internet_gateways() {
        put("aws_internet_gateway", g.internet_gateway_id());
    }
    for a in ec2.describe_addresses().filters(owned()).send().await.unwrap().addresses() {
        put("aws_eip", a.allocation_id());
    }
    // The emulator ignores tag filters on NAT gateways: check the tags here.
    for n in ec2.describe_nat_gateways().send().await.unwrap().nat_gateways() {
        let live = matches!(n.state().map(|s| s.as_str()), Some("pending" | "available"));
        if live && n.tags().iter().any(|t| t.key() == Some(OWNED)) {
            put("aws_nat_gateway", n.nat_gateway_id());
        }
    }
    for t in ec2.describe_route_tables().filters(owned()).send().await.unwrap().route_tables() {
        put("aws_route_table", t.route_table_id());
    }
    let groups = ec2.describe_security_groups().filters(owned()).send().await.unwrap();
    for g in groups.security_groups() {
        put("aws_security_group", g.group_id());
        let rules = ec2
            .describe_security_group_rules()
            .filters(filter("group-id", g.group_id().unwrap()))
            .send()
            .await
            .unwrap();
        for rule in rules.security_group_rules() {
            if rule.tags().iter().any(|t| t.key() == Some(skyplan_aws::ADDRESS_TAG)) {
                put("aws_security_group_rule", rule.security_group_rule_id());
            }
        }
    }
    // Instances the tool runs itself carry their own address; the auto
    // scaling group's carry their launch template's.
    let live = Filter::builder().name("instance-state-name").values("pending").values("running").build();
    let running = ec2.describe_instances().filters(owned()).filters(live).send().await.unwrap();
    for i in running.reservations().iter().flat_map(|r| r.instances()) {
        let address = i.tags().iter().find(|t| t.key() == Some(skyplan_aws::ADDRESS_TAG)).and_then(|t| t.value());
        if address.is_some_and(|a| a.starts_with("aws_instance.")) {
            put("aws_instance", i.instance_id());
        }
    }
    for lb in elb.describe_load_balancers().send().await.unwrap().load_balancer_descriptions() {
        put("aws_elb", lb.load_balancer_name());
    }
    for t in ec2.describe_launch_templates().send().await.unwrap().launch_templates() {
        put("aws_launch_template", t.launch_template_id());
    }
    for g in asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups() {
        put("aws_autoscaling_group", g.auto_scaling_group_name());
    }
    ids
}

#[test]
fn apply_plan_destroy_converge_through_ten_percent_api_faults() {
    assert!((TEN_PERCENT.failing() - 0.10).abs() < 1e-9, "10% of requests fail");
    let failed = converge_through(TEN_PERCENT);
    assert!(failed.iter().sum::<u64>() > 0, "the proxy injected faults");
}

/// The ambiguous case alone, often: a quarter of the answers are lost
/// after the emulator acted. Every create whose answer was lost is found by
/// its tag and adopted (none is made twice), and the run converges.
#[test]
fn creates_whose_answer_is_lost_are_adopted_not_repeated() {
    let lost = Rates {
        throttle: 0.0,
        server_error: 0.0,
        reset_before: 0.0,
        reset_after: 0.25,
        delay: 0.0,
        max_delay: Duration::ZERO,
    };
    let failed = converge_through(lost);
    assert!(failed[0] > 0, "answers were lost during apply");
}

/// The ambiguous case for each call that makes something in the example:
/// the first answer to each is lost after the emulator acted. Each lost
/// create is found by its tag (or name) and adopted; each lost step of a
/// create or update is taken up from what the resource is now.
#[test]
fn each_kind_of_create_survives_its_answer_being_lost() {
    const MAKERS: &[&str] = &[
        "CreateVpc",
        "CreateSubnet",
        "CreateInternetGateway",
        "AttachInternetGateway",
        "AllocateAddress",
        "CreateNatGateway",
        "CreateRouteTable",
        "CreateRoute",
        "AssociateRouteTable",
        "CreateSecurityGroup",
        "AuthorizeSecurityGroupIngress",
        "RunInstances",
        "CreateLoadBalancer",
        "CreateLaunchTemplate",
        "CreateAutoScalingGroup",
        "CreateSecret",
    ];
    let none = Rates {
        throttle: 0.0,
        server_error: 0.0,
        reset_before: 0.0,
        reset_after: 0.0,
        delay: 0.0,
        max_delay: Duration::ZERO,
    };
    let emulator = Emulator::start();
    let proxy = FaultProxy::start(&emulator.url(), none, 0);
    proxy.lose_next_answer_to(MAKERS);
    let mut w = Workdir::new();
    w.env = emulator
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), if k == "AWS_ENDPOINT_URL" { proxy.url() } else { v }))
        .collect();
    price_list_beside_the_proxy(&mut w, &emulator);
    w.write("demo.toml", &example());
    let apply = w.run(&["-v", "apply", "demo.toml", "--auto-approve"]).ok();
    assert!(proxy.not_yet_lost().is_empty(), "every maker was hit: {:?}", proxy.not_yet_lost());
    assert_eq!(proxy.counts().resets_after, MAKERS.len() as u64);
    let r = reported(&apply);
    assert_eq!(r.lost_answers, MAKERS.len() as u64, "{}", apply.stderr);
    assert_eq!(r.retried, 0, "a lost answer is never simply sent again: {}", apply.stderr);
    assert!(r.found > 0 && r.not_found == 0, "each lost create was found: {r:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, elb, asg) = emulator.clients(&rt);
    rt.block_on(check_cluster_layout(&ec2, &elb, &asg));
    let mut recorded = state_ids(&w, "demo.state.json");
    let secrets = recorded.remove("aws_secretsmanager_secret").unwrap_or_default();
    assert_eq!(rt.block_on(secret_names(&emulator)), secrets);
    assert_eq!(rt.block_on(emulator_ids(&ec2, &elb, &asg)), recorded);
    w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();
}

/// The Price List API's questions of `plan` and `apply` (the cost
/// estimate's, counted apart from the provider's requests) go straight to
/// the emulator, which has no such API: the run falls back on the table,
/// and the proxy counts only the requests skyplan reports. The Price List
/// client's own failures are tested in `aws_pricing.rs` and `pricing.rs`.
fn price_list_beside_the_proxy(w: &mut Workdir, emulator: &Emulator) {
    w.env.push(("AWS_ENDPOINT_URL_PRICING".to_string(), emulator.url()));
}

/// apply, a no-op plan and destroy of the example through a proxy with
/// these rates, each checked against the proxy's counts and the emulator;
/// the failures injected in each phase.
fn converge_through(rates: Rates) -> [u64; 3] {
    let seed = faultproxy::seed();
    eprintln!("fault proxy seed {seed} (replay with SKYPLAN_FAULT_SEED={seed})");
    let emulator = Emulator::start();
    let proxy = FaultProxy::start(&emulator.url(), rates, seed);
    let mut w = Workdir::new();
    w.env = emulator
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), if k == "AWS_ENDPOINT_URL" { proxy.url() } else { v }))
        .collect();
    price_list_beside_the_proxy(&mut w, &emulator);
    w.write("demo.toml", &example());

    let apply = w.run(&["-v", "apply", "demo.toml", "--auto-approve"]).ok();
    assert!(apply.stdout.contains("Apply complete! Resources: 43 added"), "seed {seed}\n{}", apply.stdout);
    assert_accounted("apply", &apply, proxy.counts(), seed);
    let mut failed = [proxy.counts().failed(), 0, 0];
    if rates.failing() == rates.reset_after {
        // Every lost answer came after the emulator acted: each lookup of a
        // create found it (a lost step of an update re-reads instead).
        let r = reported(&apply);
        assert!(r.found > 0 && r.not_found == 0, "seed {seed}: {r:?}\n{}", apply.stderr);
    }

    // Checked past the proxy and past skyplan.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, elb, asg) = emulator.clients(&rt);
    rt.block_on(check_cluster_layout(&ec2, &elb, &asg));
    let mut recorded = state_ids(&w, "demo.state.json");
    assert_eq!(recorded.values().map(BTreeSet::len).sum::<usize>(), 43);
    // The bootstrap secrets (ids are their names), then everything else.
    let secrets = recorded.remove("aws_secretsmanager_secret").unwrap_or_default();
    assert_eq!(rt.block_on(secret_names(&emulator)), secrets, "exactly the secrets the state records (seed {seed})");
    assert_eq!(rt.block_on(emulator_ids(&ec2, &elb, &asg)), recorded, "exactly what the state records (seed {seed})");

    proxy.reset_counts();
    let plan = w.run(&["-v", "plan", "demo.toml", "--detailed-exitcode"]).ok();
    assert!(plan.stdout.contains("No changes."), "seed {seed}\n{}", plan.stdout);
    assert_accounted("plan", &plan, proxy.counts(), seed);
    failed[1] = proxy.counts().failed();

    proxy.reset_counts();
    let destroy = w.run(&["-v", "destroy", "demo.toml", "--auto-approve"]).ok();
    assert!(destroy.stdout.contains("43 destroyed"), "seed {seed}\n{}", destroy.stdout);
    assert_accounted("destroy", &destroy, proxy.counts(), seed);
    rt.block_on(check_nothing_owned(&ec2, &elb, &asg));
    assert!(rt.block_on(emulator_ids(&ec2, &elb, &asg)).is_empty());
    assert!(rt.block_on(secret_names(&emulator)).is_empty(), "seed {seed}: destroy removed every secret");
    assert!(w.json("demo.state.json")["resources"].as_object().unwrap().is_empty());
    failed[2] = proxy.counts().failed();
    failed
}

/// `--rate-limit SERVICE=RPS[,BURST]` through the binary: a bad value stops
/// the run before anything is read or written; a low EC2 rate stretches an
/// apply to at least (requests - burst) / rate, and the run says it waited.
#[test]
fn rate_limit_flag_is_checked_and_slows_requests_to_its_rate() {
    let emulator = Emulator::start();
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w.write(
        "net.toml",
        r#"[resource.aws_vpc.main]
cidr_block = "10.7.0.0/16"

[resource.aws_subnet.a]
vpc_id = "${aws_vpc.main.id}"
cidr_block = "10.7.1.0/24"
availability_zone = "us-east-1a"

[resource.aws_subnet.b]
vpc_id = "${aws_vpc.main.id}"
cidr_block = "10.7.2.0/24"
availability_zone = "us-east-1b"

[resource.aws_subnet.c]
vpc_id = "${aws_vpc.main.id}"
cidr_block = "10.7.3.0/24"
availability_zone = "us-east-1c"
"#,
    );
    for (flag, message) in [
        (
            "elb=5",
            "`elb` is not a service skyplan calls; one of ec2, elasticloadbalancing, autoscaling, secretsmanager",
        ),
        ("ec2", "is not SERVICE=RPS[,BURST]"),
        ("ec2=0", "at least 0.1"),
        ("ec2=5,0", "the burst must be a whole number of at least 1"),
    ] {
        let refused = w.run(&["apply", "net.toml", "--auto-approve", "--rate-limit", flag]).code(1);
        assert!(
            refused.stderr.contains("--rate-limit") && refused.stderr.contains(message),
            "{flag}: {}",
            refused.stderr
        );
        assert!(!w.exists("net.state.json"), "nothing written");
    }

    let start = std::time::Instant::now();
    let apply = w.run(&["-v", "--rate-limit", "ec2=2,1", "apply", "net.toml", "--auto-approve"]).ok();
    let elapsed = start.elapsed().as_secs_f64();
    let requests = reported(&apply).requests;
    assert!(requests >= 5, "{}", apply.stderr);
    let floor = (requests - 1) as f64 / 2.0;
    assert!(elapsed >= floor, "{requests} EC2 requests at 2/s after a burst of 1 took {elapsed:.2} s (< {floor} s)");
    assert!(apply.stderr.contains("note: aws: waited for the rate limit (--rate-limit): ec2 "), "{}", apply.stderr);
    w.run(&["destroy", "net.toml", "--auto-approve"]).ok();
}
