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
mod names;
mod tags;
