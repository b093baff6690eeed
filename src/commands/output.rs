//! `skyplan output SPEC [--json]`: the applied cluster's outputs, from the
//! spec (what it asks for) and the state (what AWS made). No cloud call.
//! `apply` prints the same when it finishes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};
use skyplan_aws_blueprint::AwsSpec;
use skyplan_state::State;

use crate::cli::Global;
use crate::workspace;

/// The outputs in the order they are printed; `None` without `[cluster]`.
/// Values the state does not hold yet (nothing applied) are null.
pub fn outputs(spec: &AwsSpec, state: &State) -> Result<Option<Map<String, Value>>> {
    let Some(facts) =
        skyplan_aws_blueprint::cluster_facts(&spec.spec.file).map_err(|e| spec.spec.source.diagnostics(&e))?
    else {
        return Ok(None);
    };
    let attr = |address: &str, name: &str| workspace::state_text(state, address, name);
    let mut out = Map::new();
    out.insert("cluster_name".into(), json!(facts.name));
    let endpoint =
        attr(workspace::API_LOAD_BALANCER, "dns_name").map(|dns| format!("https://{dns}:{}", facts.api_port));
    out.insert("api_endpoint".into(), json!(endpoint));
    out.insert("kubernetes_version".into(), json!(facts.kubernetes_version));
    let vpc_id = facts.static_vpc_id.clone().or_else(|| attr("aws_vpc.main", "id"));
    out.insert("vpc_id".into(), json!(vpc_id));
    if facts.bastion {
        out.insert("bastion_public_ip".into(), json!(attr("aws_instance.bastion", "public_ip")));
    }
    Ok(Some(out))
}

/// `name = value` lines, as apply ends with them.
pub fn human(outputs: &Map<String, Value>) -> String {
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    let mut text = String::new();
    for (name, value) in outputs {
        let shown = match value {
            Value::String(s) => s.clone(),
            Value::Null => "(not applied yet)".to_string(),
            other => other.to_string(),
        };
        text.push_str(&format!("{name:width$} = {shown}\n"));
    }
    text
}

pub fn run(global: &Global, spec_path: &Path, as_json: bool) -> Result<ExitCode> {
    let spec = AwsSpec::load(spec_path)?;
    let state_path = workspace::state_path(global, Some(spec_path))?;
    let backend = workspace::backend(&state_path)?;
    let state = workspace::load_state(backend.as_ref())?;
    let Some(outputs) = outputs(&spec, &state)? else {
        bail!("{} has no [cluster]: there are no cluster outputs", spec_path.display());
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&Value::Object(outputs))?);
    } else {
        print!("{}", human(&outputs));
    }
    Ok(ExitCode::SUCCESS)
}
