//! The AWS cluster blueprint: the `[cluster]` tables of a spec expanded into
//! raw AWS resources (`aws_vpc.main`, `aws_subnet.private[us-east-1a]`, ...)
//! of exactly the types and attributes in docs/aws-resources.md.
//!
//! Architecture invariant: no AWS SDK and no cloud calls here. The blueprint
//! is a pure function of the spec; the AWS provider creates what it emits.
//!
//! Code map, in the order [`expand`] runs:
//! - `validate.rs`: every rule, every error with its key path; builds the
//!   [`cluster::Cluster`] (defaults applied, values parsed) the rest reads.
//! - `network.rs`: VPC, subnets (`cidr.rs` carves them), gateways, routes;
//!   or the existing VPC and subnets of a static placement.
//! - `security.rs`: the four security groups and their rules.
//! - `compute.rs`: bastion, control-plane instances, API ELB, worker pools;
//!   `userdata.rs` renders their cloud-init.
//! - `tags.rs` owns the tag conventions; `names.rs` the AWS resource names.

mod cidr;
mod cluster;
mod names;
mod tags;
mod validate;

#[cfg(test)]
pub(crate) mod fixtures {
    //! Specs for the unit tests, parsed the way the CLI parses them.

    use skyplan_engine::spec::{Source, Spec, SpecFile};

    /// A 3-AZ dynamic cluster: bastion, 3 control-plane nodes, one worker
    /// pool, tags, a profile with an override.
    pub const DEMO: &str = r#"
[cluster]
name = "demo"
region = "us-east-1"
ssh_key_name = "ops"
tags = { team = "platform" }

[placement]
azs = ["us-east-1a", "us-east-1b", "us-east-1c"]

[bastion]
ssh_cidrs = ["203.0.113.0/24"]

[profile]
name = "ubuntu-k8s"
[[profile.pack]]
name = "ubuntu"
layer = "os"
version = "22.04"
[[profile.pack]]
name = "calico"
layer = "cni"
version = "3.28.0"
values = { mtu = 1440 }
[[profile.pack]]
name = "kubernetes"
layer = "k8s"
version = "1.30.4"
values = { pod_cidr = "192.168.0.0/16", service_cidr = "10.96.0.0/12" }
[profile.override.kubernetes]
pod_cidr = "172.16.0.0/16"

[[node_pool]]
name = "master"
control_plane = true
size = 3
instance_type = "m5.large"

[[node_pool]]
name = "worker"
size = 3
min = 3
max = 6
instance_type = "m5.xlarge"
"#;

    /// A static placement in two AZs, one worker pool in one of them, no
    /// bastion table (so the default: enabled).
    pub const STATIC: &str = r#"
[cluster]
name = "edge"
region = "eu-west-1"

[placement]
mode = "static"
azs = ["eu-west-1a", "eu-west-1b"]
vpc_id = "vpc-0abc"
[[placement.subnet]]
az = "eu-west-1a"
public = "subnet-pa"
private = "subnet-qa"
[[placement.subnet]]
az = "eu-west-1b"
public = "subnet-pb"
private = "subnet-qb"

[[node_pool]]
name = "cp"
control_plane = true
size = 1
instance_type = "t3.large"

[[node_pool]]
name = "w"
size = 2
instance_type = "t3.large"
azs = ["eu-west-1b"]
"#;

    /// `DEMO` with `from` replaced by `to` (which must change something).
    pub fn demo_with(from: &str, to: &str) -> String {
        assert!(DEMO.contains(from), "DEMO has no {from:?}");
        DEMO.replacen(from, to, 1)
    }

    pub fn parse(text: &str) -> SpecFile {
        let source = Source {
            path: "spec.toml".into(),
            text: text.to_string(),
        };
        match Spec::parse(source) {
            Ok(spec) => spec.file,
            Err(e) => panic!("test spec does not parse: {e}\n{text}"),
        }
    }
}
