//! What nodes boot with, against the emulator: the cluster-api image of the
//! profile's os and Kubernetes version (the emulator publishes
//! `CAPA_IMAGES`), and `skyplan output`. Everything is checked with SDK
//! clients of the test's own.

use serde_json::Value;

use crate::aws_cli::example;
use crate::emulator::{Emulator, CAPA_IMAGES};
use crate::support::Workdir;

fn workdir(emulator: &Emulator) -> Workdir {
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w
}

/// The newest x86_64 image cluster-api published for ubuntu 22.04 and 1.30.4.
fn expected_image() -> &'static str {
    CAPA_IMAGES.iter().find(|i| i.1 == "capa-ami-ubuntu-22.04-v1.30.4-1727000000").unwrap().0
}

#[test]
fn nodes_run_the_newest_published_image_and_output_reports_the_cluster() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    w.write("demo.toml", &example());
    let applied = w.run(&["apply", "demo.toml", "--auto-approve"]).ok();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    rt.block_on(async {
        let out = ec2
            .describe_instances()
            .filters(crate::aws_cli::filter("tag:Name", "demo-control-plane-*"))
            .filters(crate::aws_cli::filter("instance-state-name", "running"))
            .send()
            .await
            .unwrap();
        let instances: Vec<_> = out.reservations().iter().flat_map(|r| r.instances()).collect();
        assert_eq!(instances.len(), 3);
        for i in instances {
            assert_eq!(i.image_id(), Some(expected_image()), "the newest image of cluster-api's owner");
        }
        let data = crate::emulator::default_template_data(&ec2, "demo-worker").await;
        assert_eq!(data.image_id(), Some(expected_image()));
    });

    // `output`: from the spec and the state.
    let output = w.run(&["output", "demo.toml", "--json"]).ok();
    let output: Value = serde_json::from_str(&output.stdout).unwrap();
    let state = w.json("demo.state.json");
    let dns = state["resources"]["aws_elb.apiserver"]["attributes"]["dns_name"].as_str().unwrap();
    assert_eq!(output["api_endpoint"], format!("https://{dns}:6443"));
    assert_eq!(output["kubernetes_version"], "1.30.4");
    assert_eq!(output["vpc_id"], state["resources"]["aws_vpc.main"]["id"]);
    assert_eq!(output["bastion_public_ip"], state["resources"]["aws_instance.bastion"]["attributes"]["public_ip"]);
    assert!(output["bastion_public_ip"].as_str().is_some_and(|ip| !ip.is_empty()));

    // apply ended with the same outputs.
    let outputs = applied.stdout.split("\nOutputs:\n").nth(1).unwrap_or_else(|| panic!("{}", applied.stdout));
    let printed = |name: &str| {
        outputs.lines().find_map(|l| l.split_once(" = ").filter(|(k, _)| k.trim() == name).map(|(_, v)| v.to_string()))
    };
    assert_eq!(printed("api_endpoint"), Some(format!("https://{dns}:6443")), "{outputs}");
    assert_eq!(printed("kubernetes_version").as_deref(), Some("1.30.4"), "{outputs}");

    w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();

    w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
}

#[test]
fn a_version_without_published_images_stops_apply_before_any_change() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    w.write("demo.toml", &example().replace("version = \"1.30.4\"", "version = \"1.27.1\""));
    let run = w.run(&["apply", "demo.toml", "--auto-approve"]).code(1);
    assert!(
        run.stderr.contains("capa-ami-ubuntu-22.04-?1.27.1-*") && run.stderr.contains("819546954734"),
        "the error names what was searched: {}",
        run.stderr
    );
    assert!(run.stderr.contains("x86_64"), "{}", run.stderr);
    assert!(!w.exists("demo.state.json"), "nothing applied, no state written");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ec2, _, _) = emulator.clients(&rt);
    rt.block_on(async {
        let vpcs = ec2
            .describe_vpcs()
            .filters(crate::aws_cli::filter("tag-key", "kubernetes.io/cluster/demo"))
            .send()
            .await
            .unwrap();
        assert!(vpcs.vpcs().is_empty(), "nothing was created");
    });
}
