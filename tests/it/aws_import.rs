//! `import` and `--refresh-only` against the AWS emulator: a VPC made with
//! the SDK (not skyplan) is adopted; a tag changed behind skyplan's back is
//! recorded by `apply --refresh-only` without any AWS write, which the test
//! checks in the `-v` call lines and, with its own SDK client, in the cloud.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use crate::aws_cli::{filter, tags};
use crate::emulator::Emulator;
use crate::support::{Run, Workdir};

const SPEC: &str = r#"[resource.aws_vpc.main]
cidr_block = "10.7.0.0/16"
tags = { team = "import-test", env = "prod" }
"#;

/// The AWS operations a `-v` run sent (`ec2:DescribeVpcs`, ...), one per call.
fn calls(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.contains(" ok in ") || l.contains(" failed in "))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("ec2:") || w.starts_with("sts:")))
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn assert_reads_only(what: &str, run: &Run) {
    let calls = calls(run);
    assert!(!calls.is_empty(), "{what}: -v printed no call lines:\n{}", run.stderr);
    for call in &calls {
        let op = call.split(':').nth(1).unwrap_or_default();
        assert!(op.starts_with("Describe") || op.starts_with("Get"), "{what} wrote to AWS: {call}\n{}", run.stderr);
    }
}

#[test]
fn import_adopts_a_vpc_and_refresh_only_records_drift_without_writing() {
    let emulator = Emulator::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, _, _) = emulator.clients(&rt);
    let team = |value: &str| Tag::builder().key("team").value(value).build();
    let vpc = rt.block_on(async {
        let spec = TagSpecification::builder().resource_type(ResourceType::Vpc).tags(team("import-test")).build();
        let out = ec2.create_vpc().cidr_block("10.7.0.0/16").tag_specifications(spec).send().await.unwrap();
        out.vpc().unwrap().vpc_id().unwrap().to_string()
    });
    let live_tags = || {
        rt.block_on(async {
            let out = ec2.describe_vpcs().filters(filter("vpc-id", &vpc)).send().await.unwrap();
            tags(out.vpcs()[0].tags())
        })
    };

    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w.write("net.toml", SPEC);

    let import = w.run(&["-vv", "import", "aws_vpc.main", &vpc, "--spec", "net.toml"]).ok();
    assert_reads_only("import", &import);
    assert!(import.stderr.contains("request id"), "-vv prints request ids:\n{}", import.stderr);
    let state = w.json("net.state.json");
    assert_eq!(state["resources"]["aws_vpc.main"]["id"], vpc.as_str());
    assert_eq!(state["resources"]["aws_vpc.main"]["attributes"]["tags"]["team"], "import-test");

    // The next plan shows what differs from the spec: the tag it lacks.
    let plan = w.run(&["plan", "net.toml", "--detailed-exitcode"]).code(2);
    assert!(plan.stdout.contains("# aws_vpc.main will be updated in place"), "{}", plan.stdout);
    assert!(plan.stdout.contains("+ \"env\""), "{}", plan.stdout);
    assert!(plan.stdout.contains("0 to add"), "{}", plan.stdout);

    // Behind skyplan's back: a tag changes.
    rt.block_on(ec2.create_tags().resources(&vpc).tags(team("changed")).send()).unwrap();
    let refresh = w.run(&["plan", "net.toml", "--refresh-only", "--detailed-exitcode"]).code(2);
    assert!(refresh.stdout.contains("aws_vpc.main changed outside skyplan: tags"), "{}", refresh.stdout);
    let apply = w.run(&["-v", "apply", "net.toml", "--refresh-only", "--auto-approve"]).ok();
    assert_reads_only("apply --refresh-only", &apply);
    assert_eq!(w.json("net.state.json")["resources"]["aws_vpc.main"]["attributes"]["tags"]["team"], "changed");
    assert_eq!(live_tags().get("team").map(String::as_str), Some("changed"), "nothing was put back in AWS");
    assert!(!live_tags().contains_key("env"), "nothing was added in AWS");
    w.run(&["plan", "net.toml", "--refresh-only", "--detailed-exitcode"]).ok();
}
