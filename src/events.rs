//! `apply --json` / `destroy --json`: progress as one JSON object per line
//! on stdout, shaped like Terraform's machine-readable UI (docs/json-events.md).
//!
//! Every line has `@level`, `@message`, `@module`, `@timestamp` (RFC 3339,
//! UTC, milliseconds) and `type`; lines about one resource also have
//! `address` and a `hook` naming the resource and the action. `apply_start`
//! and `apply_complete` / `apply_errored` carry the operation's start time,
//! so a run's timeline can be drawn from the stream alone.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use skyplan_engine::apply::{ApplyReport, Event, EventSink, OpKind};
use skyplan_engine::plan::{Action, Plan};
use skyplan_engine::{Address, Diagnostics};

use crate::heartbeat::{secs, Heartbeat, HEARTBEAT};

/// The stream's format version (the `version` line's `ui`).
pub const UI_VERSION: &str = "1.0";

pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Print one event line: `type`, `@message`, `@level` and the given fields.
pub fn emit(kind: &str, level: &str, message: &str, fields: Value) {
    emit_at(SystemTime::now(), kind, level, message, fields)
}

fn emit_at(at: SystemTime, kind: &str, level: &str, message: &str, fields: Value) {
    let mut line = Map::new();
    line.insert("@level".into(), level.into());
    line.insert("@message".into(), message.into());
    line.insert("@module".into(), "skyplan.ui".into());
    line.insert("@timestamp".into(), timestamp(at).into());
    line.insert("type".into(), kind.into());
    if let Value::Object(fields) = fields {
        line.extend(fields);
    }
    let mut out = std::io::stdout().lock();
    // A closed pipe ends the process quietly (SIGPIPE is restored in main).
    let _ = writeln!(out, "{}", Value::Object(line));
    let _ = out.flush();
}

/// The first line of every stream.
pub fn version() {
    emit(
        "version",
        "info",
        &format!("skyplan {}", env!("CARGO_PKG_VERSION")),
        json!({"skyplan": env!("CARGO_PKG_VERSION"), "ui": UI_VERSION}),
    );
}

/// Terraform's resource object for a hook.
fn resource(address: &Address) -> Value {
    json!({
        "addr": address.to_string(),
        "resource_type": address.kind,
        "resource_name": address.name,
        "resource_key": address.key,
    })
}

fn action(op: OpKind) -> &'static str {
    match op {
        OpKind::Create => "create",
        OpKind::Update => "update",
        OpKind::Delete => "delete",
    }
}

/// One `planned_change` line per change of the plan, then nothing else:
/// the `change_summary` comes once the run is over.
pub fn planned_changes(plan: &Plan) {
    for c in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        let address = c.address.to_string();
        emit(
            "planned_change",
            "info",
            &format!("{address}: Plan to {}", c.action.as_str()),
            json!({
                "address": address,
                "change": {"resource": resource(&c.address), "action": c.action.as_str()},
            }),
        );
    }
}

/// The run's counts: what was added, changed and removed.
pub fn change_summary(report: &ApplyReport, operation: &str) {
    let count = |k: OpKind| report.succeeded.iter().filter(|(_, op)| *op == k).count();
    let (add, change, remove) = (count(OpKind::Create), count(OpKind::Update), count(OpKind::Delete));
    let complete = if operation == "destroy" { "Destroy complete!" } else { "Apply complete!" };
    let what = if report.is_success() { complete } else { "Apply incomplete:" };
    emit(
        "change_summary",
        "info",
        &format!("{what} Resources: {add} added, {change} changed, {remove} destroyed."),
        json!({
            "changes": {
                "add": add,
                "change": change,
                "remove": remove,
                "failed": report.failed.len(),
                "skipped": report.skipped.len(),
                "not_started": report.not_started.len(),
                "operation": operation,
            },
        }),
    );
}

/// Errors as `diagnostic` lines: a spec's diagnostics one per line with
/// their location, any other error as one.
pub fn diagnostics(err: &anyhow::Error) {
    if let Some(diagnostics) = err.downcast_ref::<Diagnostics>() {
        for d in &diagnostics.0 {
            emit("diagnostic", "error", &d.message, json!({"diagnostic": crate::diagnostics::to_json(d)}));
        }
        return;
    }
    let text = format!("{err:#}");
    emit("diagnostic", "error", &text, json!({"diagnostic": {"severity": "error", "summary": text}}));
}

/// A warning as a `diagnostic` line.
pub fn warning(summary: &str, detail: &str) {
    emit(
        "diagnostic",
        "warn",
        summary,
        json!({"diagnostic": {"severity": "warning", "summary": summary, "detail": detail}}),
    );
}

/// The apply events as lines: `apply_start`, `apply_progress` (from the
/// provider, and at least every [`HEARTBEAT`] while running),
/// `apply_complete`, `apply_errored`, and `apply_skipped` for what was not
/// started because a dependency failed.
pub fn sink() -> EventSink {
    sink_every(HEARTBEAT)
}

fn sink_every(every: Duration) -> EventSink {
    let heartbeat = Heartbeat::start(
        every,
        Arc::new(|address: &Address, op: OpKind, elapsed: Duration| {
            progress(address, op, elapsed, None);
        }),
    );
    let started: Mutex<HashMap<Address, SystemTime>> = Mutex::new(HashMap::new());
    Arc::new(move |event: &Event| {
        heartbeat.track(event);
        match event {
            Event::Started { address, op, waits_for } => {
                let now = SystemTime::now();
                started.lock().expect("start times").insert(address.clone(), now);
                let addr = address.to_string();
                let depends_on: Vec<Value> =
                    waits_for.iter().map(|(a, k)| json!({"address": a.to_string(), "action": action(*k)})).collect();
                emit_at(
                    now,
                    "apply_start",
                    "info",
                    &format!("{addr}: {}...", op.verb()),
                    json!({
                        "address": addr,
                        "hook": {"resource": resource(address), "action": action(*op), "depends_on": depends_on},
                    }),
                );
            }
            Event::Progress { address, op, message, elapsed } => progress(address, *op, *elapsed, Some(message)),
            Event::Finished { address, op, id, elapsed } => {
                let now = SystemTime::now();
                let start = started.lock().expect("start times").remove(address).unwrap_or(now - *elapsed);
                let addr = address.to_string();
                let id_text = id.as_ref().map(|i| format!(" [id={i}]")).unwrap_or_default();
                emit_at(
                    now,
                    "apply_complete",
                    "info",
                    &format!("{addr}: {} after {}{id_text}", op.done(), secs(*elapsed)),
                    json!({
                        "address": addr,
                        "hook": {
                            "resource": resource(address),
                            "action": action(*op),
                            "id_key": id.as_ref().map(|_| "id"),
                            "id_value": id,
                            "started_at": timestamp(start),
                            "elapsed_seconds": elapsed.as_secs_f64(),
                        },
                    }),
                );
            }
            Event::Failed { address, op, error } => {
                let now = SystemTime::now();
                let start = started.lock().expect("start times").remove(address).unwrap_or(now);
                let addr = address.to_string();
                let elapsed = now.duration_since(start).unwrap_or_default();
                emit_at(
                    now,
                    "apply_errored",
                    "error",
                    &format!("{addr}: {} failed: {error}", op.noun()),
                    json!({
                        "address": addr,
                        "hook": {
                            "resource": resource(address),
                            "action": action(*op),
                            "error": error,
                            "started_at": timestamp(start),
                            "elapsed_seconds": elapsed.as_secs_f64(),
                        },
                    }),
                );
            }
            Event::Skipped { address, op } => {
                let addr = address.to_string();
                emit(
                    "apply_skipped",
                    "warn",
                    &format!("{addr}: skipped: a resource it depends on was not applied"),
                    json!({"address": addr, "hook": {"resource": resource(address), "action": action(*op)}}),
                );
            }
        }
    })
}

fn progress(address: &Address, op: OpKind, elapsed: Duration, message: Option<&str>) {
    let addr = address.to_string();
    let mut text = format!("{addr}: Still {}... [{} elapsed]", op.verb().to_lowercase(), secs(elapsed));
    if let Some(m) = message {
        text.push(' ');
        text.push_str(m);
    }
    emit(
        "apply_progress",
        "info",
        &text,
        json!({
            "address": addr,
            "hook": {
                "resource": resource(address),
                "action": action(op),
                "elapsed_seconds": elapsed.as_secs(),
                "message": message,
            },
        }),
    );
}
