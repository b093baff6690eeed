//! `skyplan plan`: flags -> `ops::plan` -> the plan printed for review,
//! optionally saved for `apply PLANFILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::collections::BTreeSet;

use anyhow::{anyhow, Context, Result};
use skyplan_aws_blueprint::{AwsSpec, PriceSource};
use skyplan_engine::ops::{self, PlanRequest};
use skyplan_engine::planfile::{self, PlanFile};
use skyplan_engine::refresh::Drift;
use skyplan_engine::render::{human, json};
use skyplan_engine::Address;

use crate::cli::Global;
use crate::commands::hooks::SpecHooks;
use crate::ui::Ui;
use crate::workspace::{self, SpotPrices, SpotStatus};

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
                    a.parse::<Address>()
                        .map_err(|e| anyhow!("--{flag} {a}: {e}; write an address as TYPE.NAME or TYPE.NAME[KEY]"))
                })
                .collect()
        };
        Ok(Selection { targets: parse("target", targets)?, replace: parse("replace", replace)?, refresh_only })
    }

    /// The plan request of these flags.
    pub fn request(&self, destroy: bool, refresh: bool) -> PlanRequest {
        PlanRequest {
            destroy,
            refresh,
            targets: self.targets.clone(),
            replace: self.replace.clone(),
            refresh_only: self.refresh_only,
        }
    }
}

/// Terraform's warning whenever `--target` shapes a plan.
pub const TARGET_WARNING: &str = "Resource targeting is in effect: the plan may not cover every change the spec \
     needs, and may not say what the rest would do. Use --target for exceptional cases (recovering from a mistake, \
     working around a limitation), not routine operations.";

/// What settling and refreshing found, as notes before the plan.
pub fn drift_notes(ui: &Ui, drift: &[Drift]) {
    for d in drift {
        ui.note(&describe_drift(d, false));
    }
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
    // Spot pools' on-demand prices are about creating them: not asked for --destroy.
    let spec = Arc::new(if opts.destroy {
        AwsSpec::load(&opts.spec)?
    } else {
        workspace::load_priced(&opts.spec, ui).await?
    });
    crate::diagnostics::warn_about(&spec, ui.style());
    let state_path = workspace::state_path(global, Some(&opts.spec))?;
    let (ws, _lock) = workspace::open(global, &state_path, "plan", SpecHooks::new(spec.clone(), &state_path, ui))?;
    let request = opts.selection.request(opts.destroy, opts.refresh);
    let planned =
        ops::plan(&ws, spec.desired(), &request).await.map_err(|e| workspace::ops_error_in(e, Some(&spec)))?;
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
    drift_notes(ui, &planned.drift);
    // Spot pools' prices are about creating them: not shown for --destroy.
    let spot = if opts.destroy { Vec::new() } else { workspace::spot_status(&spec, opts.refresh).await? };
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
            spec_text: spec.spec.source.text.clone(),
            state: state_path.display().to_string(),
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
        PriceSource::PriceList => "the AWS Price List API".to_string(),
        PriceSource::Pending => "not looked up".to_string(),
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
    if spot.iter().any(|s| matches!(s.prices, SpotPrices::Skipped)) {
        out.push_str(&format!(
            "  current spot prices skipped (apply does not wait for them either): {}\n",
            spot_skipped_reason()
        ));
    }
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
            SpotPrices::Skipped => {}
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

/// Why spot prices were skipped: AWS denied the optional action.
#[cfg(feature = "aws")]
fn spot_skipped_reason() -> &'static str {
    skyplan_aws::spot::SKIPPED
}

#[cfg(not(feature = "aws"))]
fn spot_skipped_reason() -> &'static str {
    "AWS denied ec2:DescribeSpotPriceHistory"
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
                    PriceSource::PriceList => "price_list_api",
                    PriceSource::Pending => "pending",
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
                SpotPrices::Skipped => {
                    v["azs"] = serde_json::Value::Null;
                    v["skipped"] = spot_skipped_reason().into();
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
