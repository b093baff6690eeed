//! The machine-readable plan of the contract: `format_version`, `changes`
//! (address, action, before, after) and `summary`; beyond the contract,
//! `orphans` (address, type, provider, id of each resource tagged as the
//! cluster's but not in the state) and `"orphan": true` on a destroy's
//! delete of one.

use serde_json::{json, Value};

use crate::plan::Plan;

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
            if !c.replace_because.is_empty() {
                v["replace_because"] = json!(c.replace_because);
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
    json!({
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
    })
}
