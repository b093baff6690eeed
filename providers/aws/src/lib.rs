//! skyplan's AWS provider: every `aws_*` resource type of
//! docs/aws-resources.md, through the AWS SDK for Rust.
//!
//! One file per AWS kind (`vpc.rs`, `subnet.rs`, ..., `autoscaling_group.rs`),
//! each holding that kind's attribute table, create, batched read, in-place
//! update and delete. Around them:
//!
//! - `provider.rs`: [`AwsProvider`] (connect, credentials, the `Provider`
//!   trait, dispatch by type, batched reads by kind);
//! - `clients.rs`: the SDK clients and the one way to call them;
//! - `retry.rs`, `wait.rs`: retrying throttling and eventual consistency,
//!   waiting out dependencies on delete, waiting for states; all on tokio's
//!   clock, tested with paused time;
//! - `spot.rs`: current spot prices and the wait for one in range before a
//!   spot pool's group is created;
//! - `lost.rs`: a create or update whose answer was lost looks the resource
//!   up before trying again, so no retry makes a duplicate;
//! - `ratelimit.rs`: a token bucket per service that every request passes;
//! - `tags.rs`: tag conventions (the `skyplan:address` tag) and tag diffs;
//! - `attrs.rs`: attribute tables, validation, typed access, read shaping;
//! - `error.rs`: one failed call, and the sentence a person can act on;
//! - `permissions.rs`: which actions this identity may call (EC2 DryRun);
//! - `pricing.rs`: on-demand prices from the Price List API, else the table;
//! - `profile.rs`: a named profile that does not exist, said so;
//! - `ami.rs`, `blockers.rs`, `ec2util.rs`, `calls.rs`: helpers.
//!
//! Architecture invariant: the engine never sees an SDK type; this crate
//! speaks to it only through `skyplan_engine::Provider` and `Attrs`.

mod ami;
mod attrs;
mod blockers;
mod calls;
mod clients;
mod ec2util;
mod error;
mod find;
mod lost;
mod names;
mod owned;
pub mod permissions;
pub mod placement;
pub mod preflight;
pub mod pricing;
mod profile;
mod provider;
pub mod ratelimit;
mod retry;
pub mod spot;
mod tags;
#[cfg(test)]
mod testing;
mod wait;

mod autoscaling_group;
mod eip;
mod elb;
mod instance;
mod internet_gateway;
mod launch_template;
mod nat_gateway;
mod route_table;
mod security_group;
mod security_group_rule;
mod subnet;
mod vpc;

pub use calls::Retries;
pub use provider::{AwsProvider, AwsSettings};
pub use ratelimit::{RateLimit, RateLimits, Service};

/// The tag every resource the provider creates carries: its skyplan address.
pub const ADDRESS_TAG: &str = tags::ADDRESS_TAG;
