//! `skyplan node-config SPEC ADDRESS`: the kubeadm configuration documents
//! the node at ADDRESS (a control-plane instance or a worker pool's launch
//! template) boots with, every secret `(sensitive)`. From the spec and the
//! state only, no cloud call: the endpoint is the API load balancer's DNS
//! name the state records ("(known after apply)" before), the CA hash the
//! public `ca_cert_hash` the cluster's PKI secret carries in the state once
//! it exists (absent before: the placeholder the node fills in).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::Address;

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
    let endpoint = workspace::state_text(&state, workspace::API_LOAD_BALANCER, "dns_name").filter(|d| !d.is_empty());
    let hash = workspace::state_text(&state, workspace::PKI_SECRET, "ca_cert_hash");
    let config = skyplan_aws_blueprint::node_config(
        &spec.spec.file,
        &address,
        endpoint.as_deref().unwrap_or(NOT_APPLIED),
        hash.as_deref(),
    )
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
