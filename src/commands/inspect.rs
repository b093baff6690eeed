//! Read-only commands: `validate`, `graph`, `show`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use skyplan_engine::planfile::PlanFile;
use skyplan_engine::render::{html, human, json, markdown, timeline};

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

/// The state (no argument), a saved plan, the latter also for review
/// (`--format markdown|html`), or a saved run (`apply --json` /
/// `destroy --json` lines): its timeline and critical path.
pub fn show(
    global: &Global,
    ui: &Ui,
    planfile: Option<&Path>,
    as_json: bool,
    format: Option<ShowFormat>,
) -> Result<ExitCode> {
    let format = format.unwrap_or(if as_json { ShowFormat::Json } else { ShowFormat::Text });
    if let Some(path) = planfile {
        if let Some(run) = saved_run(path)? {
            return show_run(&run, format);
        }
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

/// The run saved in `path`, when it holds an event stream (its first line
/// a `version` event) rather than a plan.
fn saved_run(path: &Path) -> Result<Option<timeline::Run>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None); // PlanFile::load says what is wrong with it
    };
    if !timeline::is_event_stream(&text) {
        return Ok(None);
    }
    let run = timeline::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
    Ok(Some(run))
}

/// A run: its words (critical path), page or JSON (each operation and the
/// path as indexes into them).
fn show_run(run: &timeline::Run, format: ShowFormat) -> Result<ExitCode> {
    match format {
        ShowFormat::Text => print!("{}", timeline::text(run)),
        ShowFormat::Html => print!("{}", timeline::html(run)),
        ShowFormat::Json => {
            let ops: Vec<_> = run
                .ops
                .iter()
                .map(|o| {
                    let (outcome, error) = match &o.outcome {
                        timeline::Outcome::Completed => ("complete", None),
                        timeline::Outcome::Errored(e) => ("errored", Some(e.as_str())),
                        timeline::Outcome::Unfinished => ("unfinished", None),
                    };
                    json!({
                        "address": o.address,
                        "action": o.action,
                        "start_seconds": (o.start_ms - run.start_ms) as f64 / 1000.0,
                        "elapsed_seconds": o.duration_ms() as f64 / 1000.0,
                        "outcome": outcome,
                        "error": error,
                        "depends_on": o.depends_on.iter().map(|(a, k)| json!({"address": a, "action": k})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let out = json!({
                "operation": run.operation,
                "started_at": run.started_at,
                "elapsed_seconds": (run.end_ms - run.start_ms) as f64 / 1000.0,
                "operations": ops,
                "critical_path": timeline::critical_path(run),
                "skipped": run.skipped.iter().map(|(k, a)| json!({"address": a, "action": k})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ShowFormat::Markdown => anyhow::bail!("a saved run is shown as text, --format html or --json, not markdown"),
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
