//! End-to-end tests of `skyplan policy`: the printed document, `--split`,
//! and bad specs. Runs on any build: the command constructs no provider and
//! makes no cloud call, so it works without the AWS SDK (these tests run
//! with `--no-default-features` too) and without credentials.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::Workdir;

const DYNAMIC: &str = include_str!("../../examples/dynamic-cluster.toml");
const STATIC: &str = include_str!("../../examples/static-placement.toml");

/// AWS's managed policy size limit, whitespace not counted.
const LIMIT: usize = 6144;

fn actions(doc: &Value) -> BTreeSet<String> {
    doc["Statement"]
        .as_array()
        .expect("Statement is a list")
        .iter()
        .flat_map(|s| s["Action"].as_array().expect("Action is a list").iter())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn size_without_whitespace(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// A workdir where no AWS credentials or endpoint could be found, so any
/// attempt to reach AWS would fail the test.
fn offline() -> Workdir {
    let mut w = Workdir::new();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ] {
        w.env.push((k.into(), v.into()));
    }
    w
}

#[test]
fn prints_one_allow_only_policy_document() {
    let w = offline();
    w.write("cluster.toml", DYNAMIC);
    let run = w.run(&["policy", "cluster.toml"]).ok();
    let doc: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["Version"], "2012-10-17");
    let statements = doc["Statement"].as_array().unwrap();
    assert!(!statements.is_empty());
    for s in statements {
        assert_eq!(s["Effect"], "Allow", "{s}");
        assert!(s["Resource"].is_string() || s["Resource"].is_array(), "{s}");
    }
    let actions = actions(&doc);
    for needed in [
        "ec2:CreateVpc",
        "ec2:CreateNatGateway",
        "elasticloadbalancing:CreateLoadBalancer",
        "autoscaling:CreateAutoScalingGroup",
    ] {
        assert!(actions.contains(needed), "{needed} missing: {actions:?}");
    }
    assert!(!w.exists("cluster.state.json"), "policy touches no state");
    assert!(!w.exists("cluster.state.json.sim.json"), "policy opens no provider");
}

#[test]
fn a_static_placement_may_not_build_a_network() {
    let w = offline();
    w.write("static.toml", STATIC);
    let doc: Value = serde_json::from_str(&w.run(&["policy", "static.toml"]).ok().stdout).unwrap();
    let actions = actions(&doc);
    for never in ["ec2:CreateVpc", "ec2:CreateSubnet", "ec2:CreateNatGateway", "ec2:CreateInternetGateway"] {
        assert!(!actions.contains(never), "{never} in a static placement's policy");
    }
    for check in ["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables"] {
        assert!(actions.contains(check), "{check} missing");
    }
}

#[test]
fn split_writes_managed_policies_under_the_limit() {
    let w = offline();
    let arn = "arn:aws:iam::123456789012:role/SpectroCloudRole";
    w.write("cluster.toml", &format!("{DYNAMIC}\n[account]\nrole_arn = \"{arn}\"\nexternal_id = \"from-the-ui\"\n"));
    // A part left by an earlier run with a bigger policy.
    std::fs::create_dir(w.path("out")).unwrap();
    w.write("out/skyplan-policy-7.json", "{}");
    w.write("out/notes.json", "{}");

    let run = w.run(&["policy", "cluster.toml", "--split", "out"]).ok();
    let whole: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(run.stderr.contains("skyplan-policy-1.json"), "{}", run.stderr);
    assert!(run.stderr.contains("Removed"), "{}", run.stderr);

    let mut union = BTreeSet::new();
    let mut n = 1;
    while w.exists(&format!("out/skyplan-policy-{n}.json")) {
        let text = std::fs::read_to_string(w.path(&format!("out/skyplan-policy-{n}.json"))).unwrap();
        assert!(size_without_whitespace(&text) <= LIMIT, "part {n}: {}", size_without_whitespace(&text));
        let part: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(part["Version"], "2012-10-17");
        union.extend(actions(&part));
        n += 1;
    }
    assert!(n > 1, "at least one part written");
    assert_eq!(union, actions(&whole), "the parts allow what the whole does");
    assert!(union.contains("sts:AssumeRole"));
    assert!(!w.exists("out/skyplan-policy-7.json"), "a stale part would grant more than this spec needs");
    assert!(w.exists("out/notes.json"), "other files are left alone");
}

#[test]
fn a_broken_spec_exits_1_and_writes_nothing() {
    let w = offline();
    w.write("bad.toml", &DYNAMIC.replace("size = 3                           # 1, 3 or 5", "size = 2"));
    let run = w.run(&["policy", "bad.toml", "--split", "out"]).code(1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("bad.toml:"), "a file:line:col diagnostic: {}", run.stderr);
    assert!(run.stderr.contains("node_pool[0].size"), "{}", run.stderr);
    assert!(!w.exists("out"), "nothing written");

    w.write("unknown.toml", "[resource.aws_s3_bucket.logs]\nbucket = \"x\"\n");
    let run = w.run(&["policy", "unknown.toml"]).code(1);
    assert!(run.stderr.contains("unknown.toml:1:"), "{}", run.stderr);
    assert!(run.stderr.contains("aws_s3_bucket"), "{}", run.stderr);

    w.write("syntax.toml", "[cluster\nname = 1\n");
    w.run(&["policy", "syntax.toml"]).code(1);
}

#[test]
fn a_spec_without_aws_resources_needs_no_permission() {
    let w = offline();
    w.write("sim.toml", "[resource.sim_resource.a]\nsize = 1\n");
    let run = w.run(&["policy", "sim.toml"]).ok();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["Statement"], serde_json::json!([]));
    assert!(run.stderr.contains("needs no AWS permissions"), "{}", run.stderr);
}

#[test]
fn state_in_s3_adds_the_bucket_permissions() {
    let w = Workdir::new();
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dynamic-cluster.toml")).unwrap();
    w.write("spec.toml", &spec);
    let local = w.run(&["policy", "spec.toml"]).ok();
    assert!(!local.stdout.contains("s3:"), "{}", local.stdout);
    let remote = w.run(&["policy", "spec.toml", "--state", "s3://team-state/demo.state.json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&remote.stdout).unwrap();
    let text = doc.to_string();
    assert!(text.contains("arn:aws:s3:::team-state/demo.state.json.lock") && text.contains("s3:ListBucket"), "{text}");
}

/// `--with-optional` adds each optional action in a statement of its own
/// whose Sid says what it enables; without it, nothing beyond the seed.
#[test]
fn with_optional_adds_the_spot_price_statement_with_its_sid() {
    let w = offline();
    w.write("spot.toml", include_str!("../../examples/spot-pool.toml"));
    let plain: Value = serde_json::from_str(&w.run(&["policy", "spot.toml"]).ok().stdout).unwrap();
    assert!(!actions(&plain).contains("ec2:DescribeSpotPriceHistory"));
    assert!(plain["Statement"].as_array().unwrap().iter().all(|s| s.get("Sid").is_none()));

    let with: Value = serde_json::from_str(&w.run(&["policy", "spot.toml", "--with-optional"]).ok().stdout).unwrap();
    let optional: Vec<&Value> =
        with["Statement"].as_array().unwrap().iter().filter(|s| s.get("Sid").is_some()).collect();
    assert_eq!(optional.len(), 1, "{with}");
    assert_eq!(optional[0]["Sid"], "OptionalSpotPricesInPlanAndSpotWaitInApply");
    assert_eq!(optional[0]["Action"], serde_json::json!(["ec2:DescribeSpotPriceHistory"]));
    assert_eq!(optional[0]["Resource"], "*");
    let mut rest = actions(&with);
    rest.remove("ec2:DescribeSpotPriceHistory");
    assert_eq!(rest, actions(&plain), "the rest is the same");

    // A spec without auto scaling groups has no optional statement.
    w.write("static.toml", STATIC);
    let doc: Value = serde_json::from_str(&w.run(&["policy", "static.toml", "--with-optional"]).ok().stdout).unwrap();
    let has_asg = actions(&doc).contains("autoscaling:CreateAutoScalingGroup");
    let sids = doc["Statement"].as_array().unwrap().iter().filter(|s| s.get("Sid").is_some()).count();
    assert_eq!(sids, usize::from(has_asg));
}
