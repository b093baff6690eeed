//! skyplan's AWS provider: every `aws_*` resource type of
//! docs/aws-resources.md, through the AWS SDK for Rust.
//!
//! Three layers, each importing only the ones below it:
//!
//! - `kinds/`: one file per AWS kind (`kinds/vpc.rs`, ...,
//!   `kinds/autoscaling_group.rs`), each holding that kind's attribute
//!   table, create, batched read, in-place update, delete, lookup by tag
//!   after a lost create, orphan listing and typed live states, behind the
//!   `AwsKind` trait; `kinds::KINDS` is the one registry;
//! - above them, through the registry only: `provider.rs` ([`AwsProvider`]:
//!   connect, credentials, the `Provider` trait, dispatch by type, batched
//!   reads by kind), `lost.rs` (a create or update whose answer was lost
//!   looks the resource up before trying again), `find.rs` (what an
//!   interrupted create made), `owned.rs` (what carries a cluster's
//!   ownership tags); and the checks the CLI runs through the provider:
//!   `preflight.rs`, `placement.rs`, `permissions.rs`; and `iam.rs`, the
//!   shared instance profiles `apply` creates when missing;
//! - the plumbing, which imports no kind and not the provider:
//!   `clients.rs` (the SDK clients and the one way to call them),
//!   `retry.rs`, `wait.rs` (retrying throttling and eventual consistency,
//!   waiting for states; on tokio's clock, tested with paused time),
//!   `ratelimit.rs` (a token bucket per service), `tags.rs` (the
//!   `skyplan:address` tag and tag diffs), `attrs.rs` (attribute tables,
//!   validation, typed access, read shaping), `error.rs` (one failed call,
//!   and the sentence a person can act on), `spot.rs` (spot prices and the
//!   wait for one in range), `pricing.rs` (on-demand prices from the Price
//!   List API, else the table), `apiwait.rs` (the wait on the API server
//!   after a control-plane instance starts) with `kubeapi.rs` (its HTTPS
//!   client), `profile.rs`, `ami.rs`, `blockers.rs`,
//!   `ec2util.rs`, `calls.rs`.
//!
//! Architecture invariant: the engine never sees an SDK type; this crate
//! speaks to it only through `skyplan_engine::Provider` and `Attrs`.

mod ami;
mod apiwait;
mod attrs;
mod blockers;
mod calls;
mod clients;
mod ec2util;
mod error;
mod find;
mod iam;
mod kinds;
mod kubeapi;
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
mod secret_value;
pub mod spot;
mod tags;
#[cfg(test)]
mod testing;
mod wait;

pub use calls::Retries;
pub use provider::{AwsProvider, AwsSettings};
pub use ratelimit::{RateLimit, RateLimits, Service};

/// The tag every resource the provider creates carries: its skyplan address.
pub const ADDRESS_TAG: &str = tags::ADDRESS_TAG;
