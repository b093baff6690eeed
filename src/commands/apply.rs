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

use super::plan::make_plan;
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
}

pub async fn run(global: &Global, ui: &Ui, args: ApplyArgs) -> Result<ExitCode> {
    if args.parallelism == 0 {
        bail!("--parallelism must be at least 1");
    }
    if !args.auto_approve {
        // Refuse before planning, so a pipeline that forgot the flag makes
        // no cloud calls at all.
        ui.require_terminal(if args.destroy { "destroy" } else { "apply" })?;
    }
    if !args.destroy && PlanFile::sniff(&args.target) {
        return apply_saved(global, ui, &args).await;
    }
    let operation = if args.destroy { "destroy" } else { "apply" };
    let planned = make_plan(global, ui, &args.target, operation, args.destroy, true, args.tag_subnets).await?;
    print!("{}", human::plan(&planned.plan, ui.style()));
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
        ui.requests(&planned.providers);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.auto_approve {
        let question = if args.destroy { "destroy all these resources" } else { "perform these actions" };
        if !ui.approve(question)? {
            bail!("{operation} cancelled: only 'yes' approves");
        }
    }
    let run = Run { parallelism: args.parallelism, destroy: args.destroy, redactor: planned.redactor };
    execute(ui, &planned.plan, planned.state, &planned.providers, planned.backend, run).await
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
        println!("No changes in {}; nothing to apply.", args.target.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !file.plan.destroy && !args.skip_preflight {
        preflight::before_apply(ui, &spec).await?;
    }
    let run = Run { parallelism: args.parallelism, destroy: file.plan.destroy, redactor: workspace::redactor(&spec) };
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
}

async fn execute(
    ui: &Ui,
    plan: &Plan,
    state: State,
    providers: &Providers,
    backend: Arc<dyn Backend>,
    run: Run,
) -> Result<ExitCode> {
    let Run { parallelism, destroy, redactor } = run;
    let writer = Writer::start(backend, state.clone());
    let options = ApplyOptions {
        parallelism,
        stop: Default::default(),
        events: ui.progress(),
        before_recording: crash_hook(),
        redactor,
    };
    let stop = options.stop.clone();
    let stopped = options.stop.clone();
    let interrupts = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nInterrupt received: starting nothing new, waiting for running operations to finish (Ctrl-C again to exit now).");
            stop.store(true, Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("Second interrupt: exiting. Every finished operation is already in the state.");
                std::process::exit(130);
            }
        }
    });
    let report = apply::apply(plan, &state, providers, &writer, options).await;
    interrupts.abort();
    // Only a signal stops the walk with operations not started (a failed
    // save stops it too, and is a failure).
    let interrupted = stopped.load(Ordering::SeqCst) && !report.not_started.is_empty();
    writer.finish().await?;
    summarize(ui, &report, destroy);
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
