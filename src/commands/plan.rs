//! `skyplan plan`: spec -> graph -> (refresh) -> diff, printed for review,
//! optionally saved for `apply PLANFILE`. Also the planning step that
//! `apply SPEC` and `destroy` share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context, Result};
use skyplan_aws_blueprint::PriceSource;
use skyplan_engine::graph::ResourceGraph;
use skyplan_engine::orphans;
use skyplan_engine::plan::{self, Plan};
use skyplan_engine::planfile::{self, PlanFile};
use skyplan_engine::refresh::{refresh, settle_pending, Drift};
use skyplan_engine::render::{human, json};
use skyplan_engine::{Address, Providers, Redactor, Spec};
use skyplan_state::{Backend, State};

use crate::cli::Global;
use crate::ui::Ui;
use crate::workspace::{self, Lock, SpotPrices, SpotStatus};

pub struct PlanOptions {
    pub spec: PathBuf,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub detailed_exitcode: bool,
    pub refresh: bool,
    pub destroy: bool,
    pub selection: Selection,
}

/// What `--target`, `--replace` and `--refresh-only` ask of a plan.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    pub targets: BTreeSet<Address>,
    pub replace: BTreeSet<Address>,
    pub refresh_only: bool,
}

impl Selection {
    pub fn from_flags(targets: &[String], replace: &[String], refresh_only: bool) -> Result<Selection> {
        let parse = |flag: &str, list: &[String]| -> Result<BTreeSet<Address>> {
            list.iter()
                .map(|a| {
                    a.parse::<Address>().map_err(|e| {
                        anyhow!("--{flag} {a}: {e}; write an address as TYPE.NAME or TYPE.NAME[KEY]")
                    })
                })
                .collect()
        };
        Ok(Selection { targets: parse("target", targets)?, replace: parse("replace", replace)?, refresh_only })
    }

    /// Check that every address named exists where it must: a target in the
    /// spec or the state, a resource to replace in both. A near miss gets a
    /// "did you mean".
    fn check(&self, graph: &ResourceGraph, state: &State) -> Result<()> {
        let mut known: Vec<String> = graph.nodes().iter().map(|n| n.resource.address.to_string()).collect();
        known.extend(state.resources.keys().cloned());
        let hint = |a: &Address| {
            skyplan_engine::diagnostic::did_you_mean(&a.to_string(), known.iter().map(String::as_str))
                .map(|m| format!(" (did you mean {m}?)"))
                .unwrap_or_default()
        };
        for a in &self.targets {
            if graph.get(a).is_none() && !state.resources.contains_key(&a.to_string()) {
                bail!("--target {a}: no such resource in the spec or the state{}", hint(a));
            }
        }
        for a in &self.replace {
            if graph.get(a).is_none() {
                bail!("--replace {a}: no such resource in the spec{}", hint(a));
            }
            if !state.resources.contains_key(&a.to_string()) {
                bail!("--replace {a}: not in the state yet, so there is nothing to replace; the plan creates it");
            }
        }
        Ok(())
    }
}

/// Terraform's warning whenever `--target` shapes a plan.
pub const TARGET_WARNING: &str = "Resource targeting is in effect: the plan may not cover every change the spec \
     needs, and may not say what the rest would do. Use --target for exceptional cases (recovering from a mistake, \
     working around a limitation), not routine operations.";

/// Everything a plan was made from, held (with the lock) until applied.
pub struct Planned {
    pub spec: Spec,
    pub state_path: PathBuf,
    pub backend: Arc<dyn Backend>,
    /// Held until the plan has been applied (released on drop).
    pub _lock: Lock,
    /// The state as refreshed (what the plan was diffed against).
    pub state: State,
    /// Whether settling an interrupted run's creates changed the state, so
    /// it must be saved even when there is nothing to apply.
    pub settled: bool,
    pub providers: Providers,
    pub plan: Plan,
    /// The spec's sensitive values, masked in what apply records.
    pub redactor: Redactor,
    /// What refresh found changed outside skyplan (`--refresh-only` shows
    /// it as the plan, and records it).
    pub drift: Vec<Drift>,
}

/// Check the spec, lock and load the state, refresh it, and diff.
pub async fn make_plan(
    global: &Global,
    ui: &Ui,
    spec_path: &Path,
    operation: &str,
    destroy: bool,
    do_refresh: bool,
    tag_subnets: bool,
    selection: &Selection,
) -> Result<Planned> {
    if selection.refresh_only && !do_refresh {
        bail!("--refresh-only and --no-refresh contradict each other: a refresh-only plan is the refresh");
    }
    let mut spec = Spec::load(spec_path)?;
    crate::diagnostics::warn_about(&spec, ui.style());
    let resources = workspace::take_resources(&mut spec)?;
    let state_path = workspace::state_path(global, Some(spec_path))?;
    let backend = workspace::backend(&state_path)?;
    let lock = Lock::acquire(&backend, operation, global.lock_timeout)?;
    let state = workspace::load_state(backend.as_ref())?;

    let mut kinds: Vec<&str> = resources.iter().map(|r| r.address.kind.as_str()).collect();
    kinds.extend(state.resources.values().map(|r| r.kind.as_str()));
    kinds.extend(state.pending.values().map(|p| p.kind.as_str()));
    let providers = workspace::providers(&spec, &state_path, &kinds).await?;
    let redactor = workspace::redactor(&spec);
    let graph =
        ResourceGraph::build(resources, &providers).map_err(|d| spec.source.place(d))?.with_redactor(redactor.clone());
    if !destroy {
        // An existing VPC and subnets must be fit before anything is planned
        // into them; destroy only removes what skyplan made, so it skips this.
        workspace::check_static_placement(&spec, ui, tag_subnets).await?;
    }

    let mut state = state;
    let mut drift = settle_pending(&mut state, &providers, &redactor).await?;
    // What settling changed is written even if the plan turns out empty.
    let settled = !drift.is_empty();
    if do_refresh && !state.resources.is_empty() {
        let (refreshed, found) = refresh(state, &providers, &redactor).await?;
        state = refreshed;
        drift.extend(found);
    }
    if !selection.refresh_only {
        for d in &drift {
            ui.note(&describe_drift(d, false));
        }
    }
    selection.check(&graph, &state)?;
    if selection.refresh_only {
        // Nothing to do in the cloud: the plan is the refreshed state.
        let plan = Plan {
            destroy: false,
            lineage: state.lineage.clone(),
            serial: state.serial,
            changes: Vec::new(),
            summary: Default::default(),
            orphans: Vec::new(),
        };
        return Ok(Planned {
            spec,
            state_path,
            backend,
            _lock: lock,
            state,
            settled,
            providers,
            plan,
            redactor,
            drift,
        });
    }
    let mut plan = plan::diff_replacing(&graph, &state, destroy, &selection.replace);
    // After settling, so what an interrupted run made is adopted, not orphaned.
    if let Some(ownership) = workspace::ownership(&spec).filter(|_| do_refresh) {
        let found = orphans::find(&graph, &state, &providers, &ownership).await?;
        orphans::add_to_plan(&mut plan, found, &graph, &state);
    }
    if !selection.targets.is_empty() {
        plan::target(&mut plan, &selection.targets);
    }
    Ok(Planned { spec, state_path, backend, _lock: lock, state, settled, providers, plan, redactor, drift })
}

/// One drift finding for people; `refresh_only` says what is recorded
/// rather than what the plan does about it.
pub fn describe_drift(d: &Drift, refresh_only: bool) -> String {
    match d {
        Drift::Deleted(a) if refresh_only => format!("{a} was deleted outside skyplan; the state forgets it"),
        Drift::Deleted(a) => format!("{a} was deleted outside skyplan; the plan creates it again"),
        Drift::Changed(a, attrs) => format!("{a} changed outside skyplan: {}", attrs.join(", ")),
        Drift::Adopted(a, id) => format!("{a} ({id}) was created by an interrupted run; adopted into the state"),
        Drift::NotCreated(a) => format!("{a}: a create that did not complete had left nothing behind"),
    }
}

/// The human plan of a refresh-only run: what changed outside skyplan.
pub fn refresh_only_text(drift: &[Drift], ui: &Ui) -> String {
    let style = ui.style();
    if drift.is_empty() {
        return format!("{} The cloud still matches the state.\n", style.bold("No changes."));
    }
    let mut out = String::from("Objects have changed outside of skyplan:\n\n");
    for d in drift {
        out.push_str(&format!("  {} {}\n", style.yellow("~"), describe_drift(d, true)));
    }
    out.push_str(
        "\nThis is a refresh-only plan: skyplan will not undo these changes. Applying it records them in the state \
         without changing anything in the cloud.\n",
    );
    out
}

/// `plan --json`'s view of drift.
pub fn drift_json(drift: &[Drift]) -> serde_json::Value {
    drift
        .iter()
        .map(|d| match d {
            Drift::Deleted(a) => serde_json::json!({"address": a.to_string(), "change": "deleted"}),
            Drift::Changed(a, attrs) => {
                serde_json::json!({"address": a.to_string(), "change": "changed", "attributes": attrs})
            }
            Drift::Adopted(a, id) => serde_json::json!({"address": a.to_string(), "change": "adopted", "id": id}),
            Drift::NotCreated(a) => serde_json::json!({"address": a.to_string(), "change": "not-created"}),
        })
        .collect()
}

pub async fn run(global: &Global, ui: &Ui, opts: PlanOptions) -> Result<ExitCode> {
    let planned =
        make_plan(global, ui, &opts.spec, "plan", opts.destroy, opts.refresh, false, &opts.selection).await?;
    let plan = &planned.plan;
    if opts.selection.refresh_only {
        if opts.json {
            let mut out = json::plan(plan);
            out["refresh_only"] = true.into();
            out["resource_drift"] = drift_json(&planned.drift);
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print!("{}", refresh_only_text(&planned.drift, ui));
        }
        ui.requests(&planned.providers);
        let changed = !planned.drift.is_empty();
        return Ok(if opts.detailed_exitcode && changed { ExitCode::from(2) } else { ExitCode::SUCCESS });
    }
    // Spot pools' prices are about creating them: not shown for --destroy.
    let spot = if opts.destroy { Vec::new() } else { workspace::spot_status(&planned.spec, opts.refresh).await? };
    if opts.json {
        let mut out = json::plan(plan);
        if !spot.is_empty() {
            out["spot"] = spot_json(&spot);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", human::plan(plan, ui.style()));
        print!("{}", spot_section(&spot));
    }
    if !opts.selection.targets.is_empty() {
        ui.warn(TARGET_WARNING);
    }
    if let Some(out) = &opts.out {
        let file = PlanFile {
            kind: planfile::KIND.to_string(),
            format_version: planfile::FORMAT_VERSION,
            skyplan_version: env!("CARGO_PKG_VERSION").to_string(),
            spec_path: std::path::absolute(&opts.spec).unwrap_or_else(|_| opts.spec.clone()),
            spec_text: planned.spec.source.text.clone(),
            state: planned.state_path.display().to_string(),
            plan: plan.clone(),
        };
        skyplan_state::write_atomic(out, &file.to_bytes())
            .with_context(|| format!("cannot write plan file {}", out.display()))?;
        if !opts.json {
            println!("\nSaved the plan to {}. Apply exactly it with: skyplan apply {}", out.display(), out.display());
        }
    }
    ui.requests(&planned.providers);
    Ok(if opts.detailed_exitcode && plan.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Where a spot pool's on-demand price came from, for people.
fn price_source(source: &PriceSource) -> String {
    match source {
        PriceSource::Spec => "on_demand_price in the spec".to_string(),
        PriceSource::Table { as_of } => format!("skyplan's price table as of {as_of}"),
    }
}

/// After the diff: each spot pool's max price and the current spot price
/// in each of its AZs against it.
fn spot_section(spot: &[SpotStatus]) -> String {
    if spot.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\nSpot pools (an auto scaling group starts once the spot price is within its max in one AZ):\n");
    for s in spot {
        let p = &s.pool;
        out.push_str(&format!(
            "  {} {} max ${}/h = {}% of on-demand ${}/h ({})\n",
            p.pool,
            p.instance_type,
            p.max_price,
            p.max_price_percent,
            p.on_demand_price,
            price_source(&p.on_demand_source)
        ));
        match &s.prices {
            SpotPrices::NotRead => out.push_str("    current spot prices not read (--no-refresh)\n"),
            SpotPrices::Failed(why) => out.push_str(&format!("    could not read the current spot prices: {why}\n")),
            SpotPrices::Read(azs) => {
                let each: Vec<String> = azs
                    .iter()
                    .map(|a| match (&a.price, a.in_range) {
                        (None, _) => format!("{} no spot price", a.az),
                        (Some(_), true) => format!("{} {} ok", a.az, a.shown),
                        (Some(_), false) => format!("{} {} above max", a.az, a.shown),
                    })
                    .collect();
                out.push_str(&format!("    {}\n", each.join(", ")));
                if !azs.iter().any(|a| a.in_range) {
                    out.push_str(
                        "    above max in every AZ: apply waits up to --spot-wait (default 10m) for it to come down\n",
                    );
                }
            }
        }
    }
    out
}

/// `plan --json`'s `spot` field.
fn spot_json(spot: &[SpotStatus]) -> serde_json::Value {
    let pools: Vec<serde_json::Value> = spot
        .iter()
        .map(|s| {
            let p = &s.pool;
            let mut v = serde_json::json!({
                "pool": p.pool,
                "instance_type": p.instance_type,
                "max_price": p.max_price,
                "max_price_percent": p.max_price_percent,
                "on_demand_price": p.on_demand_price,
                "on_demand_price_source": match &p.on_demand_source {
                    PriceSource::Spec => "spec",
                    PriceSource::Table { .. } => "price_table",
                },
            });
            if let PriceSource::Table { as_of } = &p.on_demand_source {
                v["price_table_as_of"] = as_of.as_str().into();
            }
            match &s.prices {
                SpotPrices::NotRead => v["azs"] = serde_json::Value::Null,
                SpotPrices::Failed(why) => {
                    v["azs"] = serde_json::Value::Null;
                    v["error"] = why.as_str().into();
                }
                SpotPrices::Read(azs) => {
                    v["azs"] = azs
                        .iter()
                        .map(|a| serde_json::json!({"az": a.az, "price": a.price, "in_range": a.in_range}))
                        .collect();
                }
            }
            v
        })
        .collect();
    pools.into()
}
