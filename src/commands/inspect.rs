//! Read-only commands: `validate`, `graph`, `show`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use skyplan_engine::planfile::PlanFile;
use skyplan_engine::render::{html, human, json, markdown};

use crate::cli::{Global, GraphFormat, ShowFormat};
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

/// The state (no argument) or a saved plan, the latter also for review
/// (`--format markdown|html`).
pub fn show(
    global: &Global,
    ui: &Ui,
    planfile: Option<&Path>,
    as_json: bool,
    format: Option<ShowFormat>,
) -> Result<ExitCode> {
    let format = format.unwrap_or(if as_json { ShowFormat::Json } else { ShowFormat::Text });
    if let Some(path) = planfile {
        let file = PlanFile::load(path)?;
        match format {
            ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&json::plan(&file.plan))?),
            ShowFormat::Text => print!("{}", human::plan(&file.plan, ui.style())),
            ShowFormat::Markdown => print!("{}", markdown::plan(&file.plan)),
            ShowFormat::Html => print!("{}", html::plan(&file.plan)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if matches!(format, ShowFormat::Markdown | ShowFormat::Html) {
        anyhow::bail!("--format markdown and html show a saved plan: skyplan show PLANFILE --format ...");
    }
    let as_json = matches!(format, ShowFormat::Json);
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
