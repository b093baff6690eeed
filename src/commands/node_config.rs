//! `skyplan node-config SPEC ADDRESS`: the kubeadm configuration documents
//! the node at ADDRESS (a control-plane instance or a worker pool's launch
//! template) boots with, every secret `(sensitive)`. From the spec and the
//! state only, no cloud call: the endpoint is the API load balancer's DNS
//! name the state records ("(known after apply)" before), the CA hash the
//! public `ca_cert_hash` a resource of the state carries once the cluster's
//! PKI secret exists (absent before: the placeholder the node fills in).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::Address;
use skyplan_state::State;

use crate::cli::Global;
use crate::workspace;

/// What the endpoint reads before the load balancer exists.
const NOT_APPLIED: &str = "(known after apply)";

pub fn run(global: &Global, spec_path: &Path, address: &str) -> Result<ExitCode> {
    let spec = AwsSpec::load(spec_path)?;
    let address: Address = address
        .parse()
        .map_err(|e| anyhow!("{address}: {e}; write a node's address, such as aws_instance.control_plane[0]"))?;
    let state_path = workspace::state_path(global, Some(spec_path))?;
    let state = workspace::load_state(workspace::backend(&state_path)?.as_ref())?;
    let (endpoint, hash) = (endpoint_host(&state), ca_cert_hash(&state));
    let config =
        skyplan_aws_blueprint::node_config(&spec.spec.file, &address, endpoint.as_deref().unwrap_or(NOT_APPLIED), hash)
            .map_err(|e| spec.spec.source.diagnostics(&e))?;
    match config {
        None => bail!("{} has no [cluster]: it has no nodes", spec_path.display()),
        Some(Err(not_a_node)) => bail!("{not_a_node}"),
        Some(Ok(documents)) => {
            print!("{documents}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The API load balancer's DNS name, once applied.
fn endpoint_host(state: &State) -> Option<String> {
    let elb = state.resources.get("aws_elb.apiserver")?;
    elb.attributes.get("dns_name")?.as_str().filter(|d| !d.is_empty()).map(str::to_string)
}

/// The cluster CA's public hash (`sha256:<hex>`), from whichever resource
/// of the state records it (the cluster's PKI secret).
fn ca_cert_hash(state: &State) -> Option<&str> {
    state
        .resources
        .values()
        .filter_map(|r| r.attributes.get("ca_cert_hash")?.as_str())
        .find(|h| h.starts_with("sha256:"))
}
