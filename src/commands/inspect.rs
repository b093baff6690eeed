//! Read-only commands: `validate`, `graph`, `show`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use skyplan_engine::planfile::PlanFile;
use skyplan_engine::render::{human, json};

use crate::cli::{Global, GraphFormat};
use crate::ui::Ui;
use crate::workspace;

/// Parse, expand and check the graph; no cloud calls, nothing written.
pub async fn validate(global: &Global, ui: &Ui, spec: &Path) -> Result<ExitCode> {
    let state_path = workspace::state_path(global, Some(spec))?;
    let graph = workspace::desired(spec, &state_path, ui.style())?;
    println!("{} is valid: {} resources in {} dependency layers.", spec.display(), graph.len(), graph.layers().len());
    Ok(ExitCode::SUCCESS)
}

pub async fn graph(global: &Global, ui: &Ui, spec: &Path, format: GraphFormat) -> Result<ExitCode> {
    let state_path = workspace::state_path(global, Some(spec))?;
    let graph = workspace::desired(spec, &state_path, ui.style())?;
    match format {
        GraphFormat::Dot => print!("{}", graph.to_dot()),
        GraphFormat::Text => {
            for (i, layer) in graph.layers().iter().enumerate() {
                println!("layer {i}:");
                for address in layer {
                    let node = graph.get(address).expect("layer members are in the graph");
                    if node.dependencies.is_empty() {
                        println!("  {address}");
                    } else {
                        let deps: Vec<String> = node.dependencies.iter().map(|d| d.to_string()).collect();
                        println!("  {address} <- {}", deps.join(", "));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The state (no argument) or a saved plan.
pub fn show(global: &Global, ui: &Ui, planfile: Option<&Path>, as_json: bool) -> Result<ExitCode> {
    if let Some(path) = planfile {
        let file = PlanFile::load(path)?;
        if as_json {
            println!("{}", serde_json::to_string_pretty(&json::plan(&file.plan))?);
        } else {
            print!("{}", human::plan(&file.plan, ui.style()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let state_path = workspace::state_path(global, None)?;
    let backend = workspace::backend(&state_path)?;
    let state = workspace::load_state(backend.as_ref())?;
    if as_json {
        let resources: Vec<_> = state
            .resources
            .iter()
            .map(|(address, r)| json!({"address": address, "type": r.kind, "provider": r.provider, "id": r.id, "attributes": r.attributes, "dependencies": r.dependencies}))
            .collect();
        let out =
            json!({"format_version": "1", "lineage": state.lineage, "serial": state.serial, "resources": resources});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if state.resources.is_empty() {
        println!("The state is empty.");
    }
    for (address, r) in &state.resources {
        println!("# {address}:");
        print_attributes(&r.attributes);
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_attributes(attrs: &skyplan_engine::Attrs) {
    let width = attrs.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in attrs {
        let text = match v {
            serde_json::Value::String(s) if s.contains('\n') => format!("<<-EOT\n{s}EOT"),
            other => other.to_string(),
        };
        println!("    {k:width$} = {text}");
    }
}
