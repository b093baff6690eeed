//! The library entry points of a run, as cargo's `ops`: a command of the
//! CLI turns its flags into a request, calls one of these, and renders what
//! comes back. Nothing here prints.
//!
//! 1. [`plan`] (`plan SPEC`, `apply SPEC`, `destroy SPEC`): load the state,
//!    make the providers, build the graph, run the provider-side checks
//!    ([`Hooks::before_plan`], skipped for a destroy plan), settle the
//!    creates an interrupted run left pending, refresh, diff, add orphans.
//! 2. [`plan_saved`] (`apply PLANFILE`): load the state, refuse the plan if
//!    the state moved on since it was made (lineage and serial), make the
//!    providers, settle pending creates as [`plan`] did in memory.
//! 3. [`apply`], the one path both kinds of apply take: the provider-side
//!    checks before changing anything ([`Hooks::before_apply`]), then
//!    either record what settling changed (nothing to apply) or ask for
//!    approval, make what the provider side needs outside the plan
//!    ([`Hooks::before_changes`]) and walk the plan, persisting through the
//!    state `Writer`.
//!
//! The caller holds the state lock for the whole run. What only one kind
//! of spec has (an AWS static placement, AWS preflight checks) reaches the
//! pipeline through the [`Hooks`] the provider side gives in the
//! [`Workspace`]: this module names no cloud.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use skyplan_state::{Backend, State, StateError, Writer};

use crate::apply::{self as executor, ApplyOptions, ApplyReport, EventSink, RecordingHook};
use crate::graph::ResourceGraph;
use crate::orphans::{self, Ownership};
use crate::plan::{self as diff, Plan};
use crate::refresh::{refresh, settle_pending, Drift};
use crate::review::Review;
use crate::{Address, Diagnostic, Diagnostics, Location, Providers, Redactor, Resource};

/// An error of a hook, in the provider side's own words.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// Why a run stopped before applying anything.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The spec or the graph is wrong (file:line:column or address).
    #[error(transparent)]
    Spec(#[from] Diagnostics),
    #[error(transparent)]
    State(#[from] StateError),
    /// A saved plan made against another state or serial.
    #[error("{0}")]
    Stale(String),
    /// A provider-side hook refused or failed.
    #[error("{0}")]
    Hook(HookError),
}

/// What only a provider crate knows about a run: which providers serve
/// which resource types, and the checks its kind of spec needs.
#[async_trait::async_trait]
pub trait Hooks: Send + Sync {
    /// Providers for every resource type in play (desired, recorded or
    /// pending).
    async fn providers(&self, kinds: &BTreeSet<String>) -> Result<Providers, HookError>;

    /// Before a plan that creates or changes (not a destroy plan): checks
    /// that need the cloud and stop the run when they fail.
    async fn before_plan(&self) -> Result<(), HookError> {
        Ok(())
    }

    /// Before an apply with changes (not a destroy), unless the request
    /// skips it: checks that stop the run before anything changes.
    async fn before_apply(&self, _plan: &Plan) -> Result<(), HookError> {
        Ok(())
    }

    /// After approval, before the first change of an apply (not a
    /// destroy), even when the request skips the checks: what the plan's
    /// resources need that no state records (AWS: the account's shared
    /// instance profiles). A failure stops the run with nothing changed.
    async fn before_changes(&self, _plan: &Plan) -> Result<(), HookError> {
        Ok(())
    }

    /// What a reviewer reads beside the plan's changes (risks, cost,
    /// parts: see [`crate::review`]), hung on every plan `plan` makes. The
    /// engine carries it without reading it.
    fn review(&self, _plan: &Plan) -> Review {
        Review::default()
    }
}

/// Where a run works: the state's backend, and the provider side.
#[derive(Clone)]
pub struct Workspace {
    pub backend: Arc<dyn Backend>,
    /// Where the state is, as the user named it (for messages).
    pub state_location: String,
    pub hooks: Arc<dyn Hooks>,
}

/// What a spec asks for, as its provider crate read it.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub resources: Vec<Resource>,
    /// The spec's sensitive values, masked in what is shown and recorded.
    pub redactor: Redactor,
    /// What marks the spec's resources in the cloud, for the orphan
    /// search; None when there is nothing to search by.
    pub ownership: Option<Ownership>,
}

/// How to plan. Build with `..PlanRequest::default()` so that new fields
/// keep every caller compiling.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// Plan the deletion of everything the state records (and orphans).
    pub destroy: bool,
    /// Read every recorded resource back from its provider before diffing
    /// (and search for orphans).
    pub refresh: bool,
    /// `--target`: only these resources and what they depend on (for a
    /// destroy: what depends on them). Each must be in the spec or the state.
    pub targets: BTreeSet<Address>,
    /// `--replace`: replace these although nothing about them changed.
    /// Each must be in the spec and the state.
    pub replace: BTreeSet<Address>,
    /// `--refresh-only`: the plan changes nothing in the cloud; what refresh
    /// found is its content ([`Planned::drift`]), and applying it records
    /// the refreshed state.
    pub refresh_only: bool,
}

impl Default for PlanRequest {
    fn default() -> Self {
        PlanRequest {
            destroy: false,
            refresh: true,
            targets: BTreeSet::new(),
            replace: BTreeSet::new(),
            refresh_only: false,
        }
    }
}

/// A saved plan to apply exactly.
#[derive(Debug, Clone)]
pub struct SavedPlan {
    pub plan: Plan,
    /// The plan file, as the user named it (for messages).
    pub name: String,
}

/// A plan, with everything it was made from, ready for [`apply`].
pub struct Planned {
    pub plan: Plan,
    /// The state as settled and refreshed: what the plan was diffed against.
    pub state: State,
    /// What settling and refreshing found changed, for the user.
    pub drift: Vec<Drift>,
    /// Whether settling an interrupted run's creates changed the state (or,
    /// for a refresh-only plan, refresh found drift), so it must be saved
    /// even when there is nothing to apply.
    pub settled: bool,
    pub providers: Providers,
    pub redactor: Redactor,
}

/// How to apply. Build with `..ApplyRequest::default()`.
#[derive(Clone)]
pub struct ApplyRequest {
    /// Operations in the cloud at once; at least 1.
    pub parallelism: usize,
    /// Do not run [`Hooks::before_apply`].
    pub skip_preflight: bool,
    /// Asked once the plan has changes and passed its checks; None
    /// approves (`--auto-approve`).
    pub approve: Option<Approval>,
    /// Progress of each operation.
    pub events: EventSink,
    /// Set to start nothing new (Ctrl-C); running operations finish.
    pub stop: Arc<AtomicBool>,
    /// Called after the cloud finished an operation and before the state
    /// records it (crash tests).
    pub before_recording: Option<RecordingHook>,
}

/// Whether the user approves the plan.
pub type Approval = Arc<dyn Fn(&Plan) -> Result<bool, HookError> + Send + Sync>;

impl Default for ApplyRequest {
    fn default() -> Self {
        ApplyRequest {
            parallelism: 10,
            skip_preflight: false,
            approve: None,
            events: Arc::new(|_| {}),
            stop: Arc::new(AtomicBool::new(false)),
            before_recording: None,
        }
    }
}

/// What an apply did.
#[derive(Debug)]
pub enum Outcome {
    /// The plan had no changes; `saved` when settling changed the state or
    /// a killed run's journal was folded in, and the state was written.
    NothingToDo { saved: bool },
    /// The approval was refused; nothing changed.
    Cancelled,
    /// The plan was walked: what succeeded, failed, was skipped or not
    /// started.
    Applied(ApplyReport),
}

/// Plan a spec against the state: see the module outline, step 1.
pub async fn plan(ws: &Workspace, desired: Desired, req: &PlanRequest) -> Result<Planned, OpsError> {
    if req.refresh_only && !req.refresh {
        return Err(Diagnostics::from(Diagnostic::new(
            Location::None,
            "a refresh-only plan is the refresh: it cannot be made without refreshing",
        ))
        .into());
    }
    let mut state = ws.backend.load()?.unwrap_or_else(State::new);
    let mut kinds: BTreeSet<String> = desired.resources.iter().map(|r| r.address.kind.clone()).collect();
    kinds.extend(recorded_kinds(&state));
    let providers = ws.hooks.providers(&kinds).await.map_err(OpsError::Hook)?;
    let graph = ResourceGraph::build(desired.resources, &providers)?.with_redactor(desired.redactor.clone());
    if !req.destroy {
        // An existing VPC and subnets (say) must be fit before anything is
        // planned into them; a destroy only removes what skyplan made.
        ws.hooks.before_plan().await.map_err(OpsError::Hook)?;
    }
    let mut drift = settle_pending(&mut state, &providers, &desired.redactor).await?;
    // What settling changed is written even if the plan turns out empty.
    let settled = !drift.is_empty();
    if req.refresh && !state.resources.is_empty() {
        let (refreshed, found) = refresh(state, &providers, &desired.redactor).await?;
        state = refreshed;
        drift.extend(found);
    }
    check_selection(req, &graph, &state)?;
    if req.refresh_only {
        // Nothing to do in the cloud; the refreshed state is the result.
        let plan = Plan {
            destroy: false,
            lineage: state.lineage.clone(),
            serial: state.serial,
            changes: Vec::new(),
            summary: Default::default(),
            orphans: Vec::new(),
            review: Review::default(),
        };
        let settled = settled || !drift.is_empty();
        return Ok(Planned { plan, state, drift, settled, providers, redactor: desired.redactor });
    }
    let mut plan = diff::diff_replacing(&graph, &state, req.destroy, &req.replace);
    // After settling, so what an interrupted run made is adopted, not orphaned.
    if let Some(ownership) = desired.ownership.as_ref().filter(|_| req.refresh) {
        let found = orphans::find(&graph, &state, &providers, ownership).await?;
        orphans::add_to_plan(&mut plan, found, &graph, &state);
    }
    if !req.targets.is_empty() {
        diff::target(&mut plan, &req.targets);
    }
    // A plan whose operations wait on each other is refused before any change.
    crate::apply::check_order(&plan)?;
    if !req.destroy {
        // A name another cluster holds fails here, not half-way through apply.
        crate::names::check(&plan, &providers).await?;
    }
    plan.review = ws.hooks.review(&plan);
    Ok(Planned { plan, state, drift, settled, providers, redactor: desired.redactor })
}

/// Every `--target` is in the spec or the state, every `--replace` in both;
/// a near miss gets a "did you mean".
fn check_selection(req: &PlanRequest, graph: &ResourceGraph, state: &State) -> Result<(), Diagnostics> {
    let mut known: Vec<String> = graph.nodes().iter().map(|n| n.resource.address.to_string()).collect();
    known.extend(state.resources.keys().cloned());
    let problem = |flag: &str, a: &Address, why: &str| {
        let d = Diagnostic::new(Location::None, format!("--{flag} {a}: {why}"));
        match crate::diagnostic::did_you_mean(&a.to_string(), known.iter().map(String::as_str)) {
            Some(m) => d.with_help(format!("did you mean {m}?")),
            None => d,
        }
    };
    let mut errors = Vec::new();
    for a in &req.targets {
        if graph.get(a).is_none() && !state.resources.contains_key(&a.to_string()) {
            errors.push(problem("target", a, "no such resource in the spec or the state"));
        }
    }
    for a in &req.replace {
        if graph.get(a).is_none() {
            errors.push(problem("replace", a, "no such resource in the spec"));
        } else if !state.resources.contains_key(&a.to_string()) {
            errors.push(problem(
                "replace",
                a,
                "not in the state yet, so there is nothing to replace; the plan creates it",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errors))
    }
}

/// A saved plan, checked against the state it was made for: see the module
/// outline, step 2.
pub async fn plan_saved(ws: &Workspace, saved: SavedPlan, redactor: Redactor) -> Result<Planned, OpsError> {
    let SavedPlan { plan, name } = saved;
    let mut state = match ws.backend.load()? {
        Some(state) => state,
        // A plan made before any state existed applies to a new state of
        // the same lineage.
        None if plan.serial == 0 => State { lineage: plan.lineage.clone(), ..State::new() },
        None => {
            return Err(OpsError::Stale(format!(
                "{name} is stale: it was made against serial {} of a state that no longer exists at {}",
                plan.serial, ws.state_location
            )))
        }
    };
    check_fresh(&plan, &state, &name, &ws.state_location)?;
    let mut kinds: BTreeSet<String> = plan.changes.iter().map(|c| c.kind.clone()).collect();
    kinds.extend(recorded_kinds(&state));
    let providers = ws.hooks.providers(&kinds).await.map_err(OpsError::Hook)?;
    // `plan` settled these in memory before diffing: the plan's creates
    // depend on what an interrupted run made being in the state.
    let drift = settle_pending(&mut state, &providers, &redactor).await?;
    let settled = !drift.is_empty();
    Ok(Planned { plan, state, drift, settled, providers, redactor })
}

/// The saved-plan freshness rule: the plan applies only to the state (same
/// lineage) and the very serial it was made against.
pub fn check_fresh(plan: &Plan, state: &State, plan_name: &str, state_location: &str) -> Result<(), OpsError> {
    if plan.lineage != state.lineage {
        return Err(OpsError::Stale(format!(
            "{plan_name} is stale: it was made for state lineage {}, but {state_location} has lineage {} (a different state); nothing was changed. Run plan again.",
            plan.lineage, state.lineage
        )));
    }
    if plan.serial != state.serial {
        return Err(OpsError::Stale(format!(
            "{plan_name} is stale: it was made against state serial {}, but {state_location} is now at serial {}; nothing was changed. Run plan again.",
            plan.serial, state.serial
        )));
    }
    Ok(())
}

/// Apply a plan from [`plan`] or [`plan_saved`]: see the module outline,
/// step 3.
pub async fn apply(ws: &Workspace, planned: Planned, req: ApplyRequest) -> Result<Outcome, OpsError> {
    let Planned { plan, mut state, settled, providers, redactor, .. } = planned;
    if !plan.has_changes() {
        // Adopted resources must be recorded even with nothing to do; and a
        // killed run's journal is folded in, so the state file alone is
        // complete again.
        let saved = settled || ws.backend.has_unfolded_changes();
        if saved {
            state.serial += 1;
            ws.backend.persist(&state)?;
        }
        return Ok(Outcome::NothingToDo { saved });
    }
    if !plan.destroy && !req.skip_preflight {
        ws.hooks.before_apply(&plan).await.map_err(OpsError::Hook)?;
    }
    if let Some(approve) = &req.approve {
        if !approve(&plan).map_err(OpsError::Hook)? {
            return Ok(Outcome::Cancelled);
        }
    }
    if !plan.destroy {
        ws.hooks.before_changes(&plan).await.map_err(OpsError::Hook)?;
    }
    let writer = Writer::start(ws.backend.clone(), state.clone());
    let options = ApplyOptions {
        parallelism: req.parallelism,
        stop: req.stop,
        events: req.events,
        before_recording: req.before_recording,
        redactor,
    };
    let report = executor::apply(&plan, &state, &providers, &writer, options).await;
    writer.finish().await?;
    Ok(Outcome::Applied(report))
}

/// The resource types the state records or has pending.
fn recorded_kinds(state: &State) -> impl Iterator<Item = String> + '_ {
    state.resources.values().map(|r| r.kind.clone()).chain(state.pending.values().map(|p| p.kind.clone()))
}
