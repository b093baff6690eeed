//! `skyplan apply SPEC|PLANFILE` and `skyplan destroy SPEC`: plan (or load a
//! saved plan), get approval, run the executor with progress, report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Result};
use skyplan_engine::apply::{self, ApplyOptions, ApplyReport, OpKind};
use skyplan_engine::plan::Plan;
use skyplan_engine::planfile::PlanFile;
use skyplan_engine::render::human;
use skyplan_engine::{Providers, Redactor, Source, Spec};
use skyplan_state::{Backend, State, Writer};

use super::plan::{make_plan, Selection};
use super::preflight;
use crate::cli::Global;
use crate::ui::Ui;
use crate::workspace::{self, Lock};

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
    let saved = !args.destroy && PlanFile::sniff(&args.target);
    if saved && (!args.selection.targets.is_empty() || !args.selection.replace.is_empty() || args.selection.refresh_only)
    {
        bail!("--target, --replace and --refresh-only shape a plan: give them to `plan`, not to `apply PLANFILE`");
    }
    if args.json && !args.auto_approve && !saved {
        bail!("--json needs --auto-approve: a JSON stream has no one to answer the approval prompt");
    }
    if args.json {
        crate::events::version();
    }
    if !args.auto_approve && !saved {
        // Refuse before planning, so a pipeline that forgot the flag makes
        // no cloud calls at all.
        ui.require_terminal(if args.destroy { "destroy" } else { "apply" })?;
    }
    if saved {
        return apply_saved(global, ui, &args).await;
    }
    let operation = if args.destroy { "destroy" } else { "apply" };
    let planned =
        make_plan(global, ui, &args.target, operation, args.destroy, true, args.tag_subnets, &args.selection).await?;
    if args.selection.refresh_only {
        return record_refresh(ui, &args, planned);
    }
    if args.json {
        crate::events::planned_changes(&planned.plan);
    } else {
        print!("{}", human::plan(&planned.plan, ui.style()));
    }
    if !args.selection.targets.is_empty() {
        if args.json {
            crate::events::warning("Resource targeting is in effect", super::plan::TARGET_WARNING);
        } else {
            ui.warn(super::plan::TARGET_WARNING);
        }
    }
    if planned.plan.has_changes() && !args.destroy && !args.skip_preflight {
        preflight::before_apply(ui, &planned.spec).await?;
    }
    if !planned.plan.has_changes() {
        // Adopted resources must be recorded even with nothing to do; and a
        // killed run's journal is folded in, so the state file alone is
        // complete again.
        if planned.settled || planned.backend.has_unfolded_changes() {
            let mut state = planned.state.clone();
            state.serial += 1;
            planned.backend.persist(&state)?;
        }
        if args.json {
            crate::events::change_summary(&ApplyReport::default(), operation);
        }
        ui.requests(&planned.providers);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.auto_approve {
        let question = if args.destroy { "destroy all these resources" } else { "perform these actions" };
        if !ui.approve(question)? {
            bail!("{operation} cancelled: only 'yes' approves");
        }
    }
    let run = Run { parallelism: args.parallelism, destroy: args.destroy, redactor: planned.redactor, json: args.json };
    execute(ui, &planned.plan, planned.state, &planned.providers, planned.backend, run).await
}

/// `apply --refresh-only`: record what changed outside skyplan, after
/// approval, and change nothing in the cloud.
fn record_refresh(ui: &Ui, args: &ApplyArgs, planned: super::plan::Planned) -> Result<ExitCode> {
    if args.json {
        for d in &planned.drift {
            let (address, text) = match d {
                skyplan_engine::refresh::Drift::Deleted(a)
                | skyplan_engine::refresh::Drift::Changed(a, _)
                | skyplan_engine::refresh::Drift::Adopted(a, _)
                | skyplan_engine::refresh::Drift::NotCreated(a) => (a, super::plan::describe_drift(d, true)),
            };
            crate::events::emit(
                "resource_drift",
                "info",
                &text,
                serde_json::json!({"address": address.to_string(), "change": super::plan::drift_json(std::slice::from_ref(d))[0]}),
            );
        }
    } else {
        print!("{}", super::plan::refresh_only_text(&planned.drift, ui));
    }
    if planned.drift.is_empty() && !planned.settled && !planned.backend.has_unfolded_changes() {
        ui.requests(&planned.providers);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.auto_approve && !ui.approve("record these changes in the state")? {
        bail!("apply cancelled: only 'yes' approves");
    }
    let mut state = planned.state.clone();
    state.serial += 1;
    planned.backend.persist(&state)?;
    if args.json {
        crate::events::emit(
            "refresh_complete",
            "info",
            &format!("Refresh complete! {} changes recorded in the state.", planned.drift.len()),
            serde_json::json!({"recorded": planned.drift.len()}),
        );
    } else {
        println!(
            "\n{} {} change{} recorded in the state; nothing was changed in the cloud.",
            ui.style().green(&ui.style().bold("Refresh complete!")),
            planned.drift.len(),
            if planned.drift.len() == 1 { "" } else { "s" }
        );
    }
    ui.requests(&planned.providers);
    Ok(ExitCode::SUCCESS)
}

/// `apply PLANFILE`: exactly the saved plan, refused if the state moved on.
async fn apply_saved(global: &Global, ui: &Ui, args: &ApplyArgs) -> Result<ExitCode> {
    let file = PlanFile::load(&args.target)?;
    let spec = Spec::parse(Source { path: file.spec_path.clone(), text: file.spec_text.clone() })?;
    let state_path = match &global.state {
        Some(_) => workspace::state_path(global, None)?,
        None => PathBuf::from(&file.state),
    };
    let backend = workspace::backend(&state_path)?;
    let _lock = Lock::acquire(&backend, "apply", global.lock_timeout)?;
    let state = match backend.load()? {
        Some(state) => state,
        // A plan made before any state existed applies to a new state of
        // the same lineage.
        None if file.plan.serial == 0 => State { lineage: file.plan.lineage.clone(), ..State::new() },
        None => bail!(
            "{} is stale: it was made against serial {} of a state that no longer exists at {}",
            args.target.display(),
            file.plan.serial,
            state_path.display()
        ),
    };
    check_fresh(&file.plan, &state, &args.target, &state_path)?;
    let mut kinds: Vec<&str> = file.plan.changes.iter().map(|c| c.kind.as_str()).collect();
    kinds.extend(state.resources.values().map(|r| r.kind.as_str()));
    let providers = workspace::providers(&spec, &state_path, &kinds).await?;
    if !file.plan.has_changes() {
        if args.json {
            crate::events::change_summary(&ApplyReport::default(), "apply");
        } else {
            println!("No changes in {}; nothing to apply.", args.target.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        crate::events::planned_changes(&file.plan);
    }
    if !file.plan.destroy && !args.skip_preflight {
        preflight::before_apply(ui, &spec).await?;
    }
    let run = Run {
        parallelism: args.parallelism,
        destroy: file.plan.destroy,
        redactor: workspace::redactor(&spec),
        json: args.json,
    };
    execute(ui, &file.plan, state, &providers, backend, run).await
}

fn check_fresh(plan: &Plan, state: &State, plan_path: &Path, state_path: &Path) -> Result<()> {
    if plan.lineage != state.lineage {
        bail!(
            "{} is stale: it was made for state lineage {}, but {} has lineage {} (a different state); nothing was changed. Run plan again.",
            plan_path.display(),
            plan.lineage,
            state_path.display(),
            state.lineage
        );
    }
    if plan.serial != state.serial {
        bail!(
            "{} is stale: it was made against state serial {}, but {} is now at serial {}; nothing was changed. Run plan again.",
            plan_path.display(),
            plan.serial,
            state_path.display(),
            state.serial
        );
    }
    Ok(())
}

/// How to run a plan.
struct Run {
    parallelism: usize,
    destroy: bool,
    redactor: Redactor,
    json: bool,
}

async fn execute(
    ui: &Ui,
    plan: &Plan,
    state: State,
    providers: &Providers,
    backend: Arc<dyn Backend>,
    run: Run,
) -> Result<ExitCode> {
    let Run { parallelism, destroy, redactor, json } = run;
    let writer = Writer::start(backend, state.clone());
    let reporter = Arc::new(ui.progress(json));
    let options = ApplyOptions {
        parallelism,
        stop: Default::default(),
        events: reporter.events.clone(),
        before_recording: crash_hook(),
        redactor,
    };
    let stop = options.stop.clone();
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
    let report = apply::apply(plan, &state, providers, &writer, options).await;
    interrupts.abort();
    reporter.clear();
    drop(reporter);
    let interrupted = !report.not_started.is_empty();
    writer.finish().await?;
    if json {
        crate::events::change_summary(&report, if destroy { "destroy" } else { "apply" });
        for (address, op, error) in &report.failed {
            crate::events::emit(
                "diagnostic",
                "error",
                &format!("{address}: {} failed: {error}", op.noun()),
                serde_json::json!({"address": address.to_string(), "diagnostic": {"severity": "error", "summary": format!("{} failed", op.noun()), "detail": error, "address": address.to_string()}}),
            );
        }
    } else {
        summarize(ui, &report, destroy);
    }
    ui.requests(providers);
    Ok(if interrupted && report.failed.is_empty() {
        ExitCode::from(130)
    } else if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
