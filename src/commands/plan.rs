//! `skyplan plan`: spec -> graph -> (refresh) -> diff, printed for review,
//! optionally saved for `apply PLANFILE`. Also the planning step that
//! `apply SPEC` and `destroy` share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use skyplan_aws_blueprint::PriceSource;
use skyplan_engine::graph::ResourceGraph;
use skyplan_engine::orphans;
use skyplan_engine::plan::{self, Plan};
use skyplan_engine::planfile::{self, PlanFile};
use skyplan_engine::refresh::{refresh, settle_pending, Drift};
use skyplan_engine::render::{human, json};
use skyplan_engine::{Providers, Redactor, Spec};
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
}

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
) -> Result<Planned> {
    let mut spec = Spec::load(spec_path)?;
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
    let graph = ResourceGraph::build(resources, &providers)?.with_redactor(redactor.clone());
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
    for d in drift {
        ui.note(&match d {
            Drift::Deleted(a) => format!("{a} was deleted outside skyplan; the plan creates it again"),
            Drift::Changed(a, attrs) => format!("{a} changed outside skyplan: {}", attrs.join(", ")),
            Drift::Adopted(a, id) => format!("{a} ({id}) was created by an interrupted run; adopted into the state"),
            Drift::NotCreated(a) => format!("{a}: a create that did not complete had left nothing behind"),
        });
    }
    let mut plan = plan::diff(&graph, &state, destroy);
    // A plan whose operations wait on each other is refused before any change.
    skyplan_engine::apply::check_order(&plan)?;
    if !destroy {
        // A name another cluster holds fails here, not half-way through apply.
        skyplan_engine::names::check(&plan, &providers).await?;
    }
    // After settling, so what an interrupted run made is adopted, not orphaned.
    if let Some(ownership) = workspace::ownership(&spec).filter(|_| do_refresh) {
        let found = orphans::find(&graph, &state, &providers, &ownership).await?;
        orphans::add_to_plan(&mut plan, found, &graph, &state);
    }
    Ok(Planned { spec, state_path, backend, _lock: lock, state, settled, providers, plan, redactor })
}

pub async fn run(global: &Global, ui: &Ui, opts: PlanOptions) -> Result<ExitCode> {
    let planned = make_plan(global, ui, &opts.spec, "plan", opts.destroy, opts.refresh, false).await?;
    let plan = &planned.plan;
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
