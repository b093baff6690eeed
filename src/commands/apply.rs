//! `skyplan apply SPEC|PLANFILE` and `skyplan destroy SPEC`: flags ->
//! `ops::plan` (or `ops::plan_saved`) -> `ops::apply`, the one path of both
//! kinds of apply; this file shows the plan, asks for approval, turns
//! Ctrl-C into the request's stop flag and reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Result};
use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::apply::{ApplyReport, OpKind};
use skyplan_engine::ops::{self, ApplyRequest, Outcome, Planned, SavedPlan, Workspace};
use skyplan_engine::planfile::PlanFile;
use skyplan_engine::render::human;
use skyplan_engine::Source;

use super::plan::{describe_drift, drift_json, drift_notes, refresh_only_text, Selection, TARGET_WARNING};
use crate::cli::Global;
use crate::commands::hooks::SpecHooks;
use crate::ui::Ui;
use crate::workspace::{self, Lock};
use skyplan_engine::refresh::Drift;

pub struct ApplyArgs {
    pub target: PathBuf,
    pub auto_approve: bool,
    pub parallelism: usize,
    pub destroy: bool,
    /// Static placement: add missing load-balancer tags to the public subnets.
    pub tag_subnets: bool,
    /// Do not run preflight's existence checks before changing anything.
    pub skip_preflight: bool,
    /// Progress as JSON lines on stdout.
    pub json: bool,
    pub selection: Selection,
}

pub async fn run(global: &Global, ui: &Ui, args: ApplyArgs) -> Result<ExitCode> {
    if args.parallelism == 0 {
        bail!("--parallelism must be at least 1");
    }
    let operation = if args.destroy { "destroy" } else { "apply" };
    // A saved plan was the review (contract, "Saved plans"): it applies
    // without asking, on a terminal or not.
    let saved = !args.destroy && PlanFile::sniff(&args.target);
    let auto_approve = args.auto_approve || saved;
    let selection = &args.selection;
    if saved && (!selection.targets.is_empty() || !selection.replace.is_empty() || selection.refresh_only) {
        bail!("--target, --replace and --refresh-only shape a plan: give them to `plan`, not to `apply PLANFILE`");
    }
    if args.json && !auto_approve {
        bail!("--json needs --auto-approve: a JSON stream has no one to answer the approval prompt");
    }
    if args.json {
        crate::events::version();
    }
    if !auto_approve {
        // Refuse before planning, so a pipeline that forgot the flag makes
        // no cloud calls at all.
        ui.require_terminal(operation)?;
    }
    let (ws, _lock, planned, applied) =
        if saved { load_saved(global, ui, &args).await? } else { plan(global, ui, &args).await? };
    if selection.refresh_only {
        return record_refresh(ui, &args, &ws, planned).await;
    }
    let destroy = planned.plan.destroy;
    let providers = planned.providers.clone();
    let approve: Option<ops::Approval> = (!auto_approve).then(|| {
        let ui = ui.clone();
        let question = if destroy { "destroy all these resources" } else { "perform these actions" };
        Arc::new(move |_: &skyplan_engine::plan::Plan| ui.approve(question).map_err(|e| format!("{e:#}").into()))
            as ops::Approval
    });
    let reporter = Arc::new(ui.progress(args.json));
    let request = ApplyRequest {
        parallelism: args.parallelism,
        skip_preflight: args.skip_preflight,
        approve,
        events: reporter.events.clone(),
        before_recording: crash_hook(),
        ..ApplyRequest::default()
    };
    let stop = request.stop.clone();
    let stopped = request.stop.clone();
    let interrupts = {
        let reporter = reporter.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                // Through the reporter, so no spinner frame is left behind.
                reporter.say("\nInterrupt received: starting nothing new, waiting for running operations to finish (Ctrl-C again to exit now).");
                stop.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    reporter.clear();
                    eprintln!("Second interrupt: exiting. Every finished operation is already in the state.");
                    std::process::exit(130);
                }
            }
        })
    };
    let outcome = ops::apply(&ws, planned, request).await;
    interrupts.abort();
    reporter.clear();
    drop(reporter);
    let report = match outcome.map_err(workspace::ops_error)? {
        Outcome::NothingToDo { .. } => {
            if args.json {
                crate::events::change_summary(&ApplyReport::default(), operation);
            } else if saved {
                println!("No changes in {}; nothing to apply.", args.target.display());
            }
            ui.requests(&providers);
            if !destroy && !args.json {
                print_outputs(&applied)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Outcome::Cancelled => bail!("{operation} cancelled: only 'yes' approves"),
        Outcome::Applied(report) => report,
    };
    // Only a signal stops the walk with operations not started (a failed
    // save stops it too, and is a failure).
    let interrupted = stopped.load(Ordering::SeqCst) && !report.not_started.is_empty();
    if args.json {
        crate::events::change_summary(&report, operation);
        for (address, op, error) in &report.failed {
            crate::events::emit(
                "diagnostic",
                "error",
                &format!("{address}: {} failed: {error}", op.noun()),
                serde_json::json!({
                    "address": address.to_string(),
                    "diagnostic": {
                        "severity": "error",
                        "summary": format!("{} failed", op.noun()),
                        "detail": error,
                        "address": address.to_string(),
                    },
                }),
            );
        }
    } else {
        summarize(ui, &report, destroy);
    }
    ui.requests(&providers);
    if report.is_success() && !destroy && !args.json {
        print_outputs(&applied)?;
    }
    Ok(if interrupted && report.failed.is_empty() {
        ExitCode::from(130)
    } else if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `apply SPEC` and `destroy SPEC`: plan it, and show the plan.
async fn plan(global: &Global, ui: &Ui, args: &ApplyArgs) -> Result<(Workspace, Lock, Planned, Applied)> {
    let operation = if args.destroy { "destroy" } else { "apply" };
    let spec = Arc::new(if args.destroy {
        AwsSpec::load(&args.target)?
    } else {
        workspace::load_priced(&args.target, ui).await?
    });
    crate::diagnostics::warn_about(&spec, ui.style());
    let state_path = workspace::state_path(global, Some(&args.target))?;
    let mut hooks = SpecHooks::new(spec.clone(), &state_path, ui);
    hooks.tag_subnets = args.tag_subnets;
    let (ws, lock) = workspace::open(global, &state_path, operation, hooks)?;
    let request = args.selection.request(args.destroy, true);
    let planned =
        ops::plan(&ws, spec.desired(), &request).await.map_err(|e| workspace::ops_error_in(e, Some(&spec)))?;
    if args.selection.refresh_only {
        return Ok((ws, lock, planned, Applied { spec, state_path }));
    }
    drift_notes(ui, &planned.drift);
    if args.json {
        crate::events::planned_changes(&planned.plan);
    } else {
        print!("{}", human::plan(&planned.plan, ui.style()));
    }
    if !args.selection.targets.is_empty() {
        if args.json {
            crate::events::warning("Resource targeting is in effect", TARGET_WARNING);
        } else {
            ui.warn(TARGET_WARNING);
        }
    }
    Ok((ws, lock, planned, Applied { spec, state_path }))
}

/// `apply PLANFILE`: exactly the saved plan, refused if the state moved on.
async fn load_saved(global: &Global, ui: &Ui, args: &ApplyArgs) -> Result<(Workspace, Lock, Planned, Applied)> {
    let file = PlanFile::load(&args.target)?;
    let spec = Arc::new(AwsSpec::parse(Source { path: file.spec_path.clone(), text: file.spec_text.clone() })?);
    let state_path = match &global.state {
        Some(_) => workspace::state_path(global, None)?,
        None => PathBuf::from(&file.state),
    };
    let (ws, lock) = workspace::open(global, &state_path, "apply", SpecHooks::new(spec.clone(), &state_path, ui))?;
    let saved = SavedPlan { plan: file.plan, name: args.target.display().to_string() };
    let redactor = spec.desired().redactor;
    let planned = ops::plan_saved(&ws, saved, redactor).await.map_err(workspace::ops_error)?;
    drift_notes(ui, &planned.drift);
    if args.json {
        crate::events::planned_changes(&planned.plan);
    }
    Ok((ws, lock, planned, Applied { spec, state_path }))
}

/// The spec applied and where its state is: for the outputs printed at the end.
struct Applied {
    spec: Arc<AwsSpec>,
    state_path: PathBuf,
}

/// A cluster's outputs (`skyplan output`), after an apply that finished.
fn print_outputs(applied: &Applied) -> Result<()> {
    let state = workspace::load_state(workspace::backend(&applied.state_path)?.as_ref())?;
    if let Some(outputs) = super::output::outputs(&applied.spec, &state)? {
        println!("\nOutputs:\n");
        print!("{}", super::output::human(&outputs));
    }
    Ok(())
}

/// `apply --refresh-only`: show what changed outside skyplan and, once
/// approved, record it; nothing changes in the cloud.
async fn record_refresh(ui: &Ui, args: &ApplyArgs, ws: &Workspace, planned: Planned) -> Result<ExitCode> {
    let drift = planned.drift.clone();
    let providers = planned.providers.clone();
    if args.json {
        for d in &drift {
            let address = match d {
                Drift::Deleted(a) | Drift::Changed(a, _) | Drift::Adopted(a, _) | Drift::NotCreated(a) => a,
            };
            crate::events::emit(
                "resource_drift",
                "info",
                &describe_drift(d, true),
                serde_json::json!({
                    "address": address.to_string(),
                    "change": drift_json(std::slice::from_ref(d))[0],
                }),
            );
        }
    } else {
        print!("{}", refresh_only_text(&drift, ui));
    }
    if !drift.is_empty() && !args.auto_approve && !ui.approve("record these changes in the state")? {
        bail!("apply cancelled: only 'yes' approves");
    }
    // An empty plan: ops::apply records the refreshed state (the request's
    // refresh-only plan marks it to be saved) and calls no provider.
    match ops::apply(ws, planned, ApplyRequest::default()).await.map_err(workspace::ops_error)? {
        Outcome::NothingToDo { .. } => {}
        _ => bail!("a refresh-only plan had changes to apply; nothing was applied"),
    }
    if args.json {
        crate::events::emit(
            "refresh_complete",
            "info",
            &format!("Refresh complete! {} changes recorded in the state.", drift.len()),
            serde_json::json!({"recorded": drift.len()}),
        );
    } else {
        println!(
            "\n{} {} change{} recorded in the state; nothing was changed in the cloud.",
            ui.style().green(&ui.style().bold("Refresh complete!")),
            drift.len(),
            if drift.len() == 1 { "" } else { "s" }
        );
    }
    ui.requests(&providers);
    Ok(ExitCode::SUCCESS)
}

fn summarize(ui: &Ui, report: &ApplyReport, destroy: bool) {
    let count = |k: OpKind| report.succeeded.iter().filter(|(_, op)| *op == k).count();
    let (added, changed, destroyed) = (count(OpKind::Create), count(OpKind::Update), count(OpKind::Delete));
    let style = ui.style();
    if report.is_success() {
        let what = if destroy { "Destroy complete!" } else { "Apply complete!" };
        println!(
            "\n{} Resources: {added} added, {changed} changed, {destroyed} destroyed.",
            style.green(&style.bold(what))
        );
        return;
    }
    eprintln!(
        "\n{} {added} added, {changed} changed, {destroyed} destroyed; {} failed, {} skipped, {} not started.",
        style.red(&style.bold(if destroy { "Destroy incomplete:" } else { "Apply incomplete:" })),
        report.failed.len(),
        report.skipped.len(),
        report.not_started.len()
    );
    for (address, op, error) in &report.failed {
        eprintln!("  {address}: {} failed: {error}", op.noun());
    }
    for (address, _) in &report.skipped {
        eprintln!("  {address}: skipped (a resource it depends on was not applied)");
    }
    for (address, _) in &report.not_started {
        eprintln!("  {address}: not started (interrupted)");
    }
    eprintln!("What finished is recorded in the state; run apply again to converge.");
}

/// `SKYPLAN_CRASH_BEFORE_RECORDING=ADDRESS`: abort the process right after
/// the cloud finished an operation on ADDRESS and before the state records
/// it. For crash tests (docs/reliability.md); never set in normal use.
fn crash_hook() -> Option<skyplan_engine::apply::RecordingHook> {
    let target = std::env::var("SKYPLAN_CRASH_BEFORE_RECORDING").ok()?;
    Some(Arc::new(move |address: &skyplan_engine::Address, _| {
        if address.to_string() == target {
            eprintln!("SKYPLAN_CRASH_BEFORE_RECORDING: aborting after the cloud call for {address}");
            std::process::abort();
        }
    }))
}
