//! skyplan's one integration-test binary (one binary keeps link time down):
//! end-to-end tests of the CLI on the simulated cloud, the bad-input corpus,
//! and, with the AWS provider built in, tests against local moto servers.

mod bad_input;
mod cli;
mod day2;
mod policy;
mod review;
mod sim;
mod support;

#[cfg(feature = "aws")]
mod aws_boot;
#[cfg(feature = "aws")]
mod aws_bootsim;
#[cfg(feature = "aws")]
mod aws_cli;
#[cfg(feature = "aws")]
mod aws_clusters;
#[cfg(feature = "aws")]
mod aws_denied;
#[cfg(feature = "aws")]
mod aws_errors;
#[cfg(feature = "aws")]
mod aws_faults;
#[cfg(feature = "aws")]
mod aws_iam;
#[cfg(feature = "aws")]
mod aws_import;
#[cfg(feature = "aws")]
mod aws_kill;
#[cfg(feature = "aws")]
mod aws_orphans;
#[cfg(feature = "aws")]
mod aws_pricing;
#[cfg(feature = "aws")]
mod aws_profiles;
#[cfg(feature = "aws")]
mod aws_provider;
#[cfg(feature = "aws")]
mod aws_roll;
#[cfg(feature = "aws")]
mod aws_secrets;
#[cfg(feature = "aws")]
mod contract;
#[cfg(feature = "aws")]
mod emulator;
#[cfg(feature = "aws")]
mod faultproxy;
#[cfg(feature = "aws")]
mod s3_state;
