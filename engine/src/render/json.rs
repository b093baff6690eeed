//! The machine-readable plan of the contract: `format_version`, `changes`
//! (address, action, before, after) and `summary`; beyond the contract,
//! `orphans` (address, type, provider, id of each resource tagged as the
//! cluster's but not in the state) and `"orphan": true` on a destroy's
//! delete of one.
//!
//! Closer to Terraform's JSON plan where the contract's loses information:
//! `actions` (a replace as its two ordered steps: `["create", "delete"]`
//! when the new object comes first, as in a rolling group, else
//! `["delete", "create"]`), `after_unknown` (`{attr: true}` for each value
//! known only after apply) and `replace_paths` (`[["attr"]]`, the
//! attributes that force the replacement). The review (see
//! [`crate::review`]): `risks` (always, `[]` when none) and `cost` (when the
//! plan was priced).

use serde_json::{json, Value};

use crate::plan::{Action, Change, Plan};
use crate::value::contains_unknown;

pub const FORMAT_VERSION: &str = "1";

pub fn plan(plan: &Plan) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            let mut v = json!({
                "address": c.address.to_string(),
                "action": c.action.as_str(),
                "type": c.kind,
                "provider": c.provider,
                "before": c.before,
                "after": c.after,
            });
            v["actions"] = json!(actions(c));
            if !c.replace_because.is_empty() {
                v["replace_because"] = json!(c.replace_because);
                let paths: Vec<[&str; 1]> = c.replace_because.iter().map(|a| [a.as_str()]).collect();
                v["replace_paths"] = json!(paths);
            }
            let unknown: serde_json::Map<String, Value> = c
                .after
                .iter()
                .flatten()
                .filter(|(_, value)| contains_unknown(value))
                .map(|(k, _)| (k.clone(), Value::Bool(true)))
                .collect();
            if !unknown.is_empty() {
                v["after_unknown"] = Value::Object(unknown);
            }
            if c.orphan {
                v["orphan"] = json!(true);
            }
            if let Some(group) = &c.rolling_group {
                v["rolling_group"] = json!(group);
            }
            if c.deposed {
                v["deposed"] = json!(true);
            }
            v
        })
        .collect();
    let mut out = json!({
        "format_version": FORMAT_VERSION,
        "destroy": plan.destroy,
        "state": { "lineage": plan.lineage, "serial": plan.serial },
        "changes": changes,
        "summary": {
            "create": plan.summary.create,
            "update": plan.summary.update,
            "replace": plan.summary.replace,
            "delete": plan.summary.delete,
        },
        "orphans": plan.orphans,
        "risks": plan.review.risks,
    });
    if let Some(cost) = &plan.review.cost {
        out["cost"] = json!(cost);
    }
    out
}

/// Terraform's `actions`: what the change does, in the order it does it.
pub fn actions(change: &Change) -> Vec<&'static str> {
    match change.action {
        Action::Replace if change.rolling_group.is_some() => vec!["create", "delete"],
        Action::Replace => vec!["delete", "create"],
        other => vec![other.as_str()],
    }
}
