//! The human plan: Terraform's shape (`+`, `~`, `-/+`, `-`), attribute-level
//! `before -> after`, multi-line strings diffed line by line, a summary line.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::Style;
use crate::plan::{Action, Change, Plan};
use crate::review::{money, money_change};
use crate::value::UNKNOWN;

/// The whole plan as text, then the orphans it found, then its cost.
pub fn plan(plan: &Plan, style: Style) -> String {
    let mut out = changes(plan, style);
    orphans(&mut out, plan, style);
    cost(&mut out, plan);
    out
}

/// What the plan does to the running system, one line per kind and
/// message, naming the kind and its addresses (before the summary line).
fn risks(out: &mut String, plan: &Plan, style: Style) {
    let grouped = plan.review.risks_grouped();
    if grouped.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", style.bold("Risks to the running cluster:"));
    for (kind, message, addresses) in grouped {
        let _ = writeln!(out, "  {} {}: {message}", style.yellow(&format!("{kind:<20}")), addresses.join(", "));
    }
}

/// The monthly estimate before and after, its change, and where the prices
/// came from (with no changes too: the cluster's running cost).
fn cost(out: &mut String, plan: &Plan) {
    let Some(cost) = &plan.review.cost else {
        return;
    };
    let _ = writeln!(
        out,
        "\nMonthly cost estimate ({} h): {} before, {} after ({} a month).",
        cost.hours_per_month,
        money(cost.monthly_before),
        money(cost.monthly_after),
        money_change(cost.change())
    );
    for s in &cost.sources {
        let _ = writeln!(out, "  {} priced from {}, as of {}.", s.prices, s.source, s.as_of);
    }
    for u in &cost.unpriced {
        let _ = writeln!(out, "  Not priced: {u}.");
    }
}

/// Resources tagged as the cluster's that the state does not record: a
/// destroy deletes them (each is also in its changes); any other plan
/// leaves them and says so.
fn orphans(out: &mut String, plan: &Plan, style: Style) {
    let n = plan.orphans.len();
    if n == 0 {
        return;
    }
    let list = crate::orphans::describe(&plan.orphans).join(", ");
    let (what, them, as_is) =
        if n == 1 { ("1 resource".to_string(), "it", "it is") } else { (format!("{n} resources"), "them", "they are") };
    if plan.destroy {
        let _ = writeln!(out, "\n{what} tagged as this cluster's but not in the state: {list}; destroying {them} too.");
    } else {
        let _ = writeln!(
            out,
            "\n{} {what} tagged as this cluster's but not in the state: {list}. This plan leaves {them} as {as_is}; \
             `skyplan destroy` removes {them} with the cluster.",
            style.yellow(&style.bold("Warning:"))
        );
    }
}

fn changes(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        out.push_str(&style.bold("No changes."));
        out.push_str(if plan.destroy {
            " There is nothing to destroy.\n"
        } else {
            " Your infrastructure matches the spec.\n"
        });
        return out;
    }
    out.push_str("skyplan will perform the following actions:\n");
    for change in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        out.push('\n');
        render_change(&mut out, change, style);
    }
    risks(&mut out, plan, style);
    let s = plan.summary;
    let _ = writeln!(
        out,
        "\n{} {} to add, {} to change, {} to replace, {} to destroy.",
        style.bold("Plan:"),
        s.create,
        s.update,
        s.replace,
        s.delete
    );
    out
}

/// One change as the human plan shows it, without colour: the reports'
/// folded attribute diffs.
pub fn change_text(change: &Change) -> String {
    let mut out = String::new();
    render_change(&mut out, change, Style { color: false });
    out
}

fn render_change(out: &mut String, change: &Change, style: Style) {
    let (what, sign) = match change.action {
        Action::Create => ("will be created", style.green("  +")),
        Action::Update => ("will be updated in place", style.yellow("  ~")),
        Action::Replace if change.rolling_group.is_some() => (
            "must be replaced, new one first, one at a time in its rolling group",
            format!("{}{}{}", style.green("+"), "/", style.red("-")),
        ),
        // No attribute forces it: `--replace` asked for it.
        Action::Replace if change.replace_because.is_empty() => {
            ("will be replaced, as requested", format!("{}{}{}", style.red("-"), "/", style.green("+")))
        }
        Action::Replace => ("must be replaced", format!("{}{}{}", style.red("-"), "/", style.green("+"))),
        Action::Delete if change.orphan => {
            ("will be destroyed (tagged as this cluster's but not in the state)", style.red("  -"))
        }
        Action::Delete if change.deposed => {
            ("(deposed: the object a replacement left) will be destroyed", style.red("  -"))
        }
        Action::Delete => ("will be destroyed", style.red("  -")),
        Action::NoOp => return,
    };
    let _ = writeln!(out, "  {} {what}", style.bold(&format!("# {}", change.address)));
    let _ = writeln!(out, "{sign} {} {{", change.address);
    let empty = serde_json::Map::new();
    let before = change.before.as_ref().unwrap_or(&empty);
    let after = change.after.as_ref().unwrap_or(&empty);
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    let mut hidden = 0;
    for key in keys {
        let b = before.get(key);
        let a = after.get(key);
        let forces = change.replace_because.iter().any(|r| r == key);
        let note = if forces { style.red(" # forces replacement") } else { String::new() };
        let name = format!("{key:width$}");
        match change.action {
            Action::Create => attr_line(out, &style.green("+"), &name, a.unwrap_or(&Value::Null), "", style),
            Action::Delete => attr_line(out, &style.red("-"), &name, b.unwrap_or(&Value::Null), "", style),
            _ => match (b, a) {
                (Some(b), Some(a)) if b == a => {
                    if key == "id" || key == "name" {
                        attr_line(out, " ", &name, a, "", style);
                    } else {
                        hidden += 1;
                    }
                }
                (None, Some(a)) => attr_line(out, &style.green("+"), &name, a, &note, style),
                (Some(b), None) => attr_line(out, &style.red("-"), &name, b, &note, style),
                (Some(b), Some(a)) => changed_line(out, &name, b, a, &note, style),
                (None, None) => {}
            },
        }
    }
    if hidden > 0 {
        let _ = writeln!(out, "        # ({hidden} unchanged attribute{} hidden)", if hidden == 1 { "" } else { "s" });
    }
    out.push_str("    }\n");
}

/// A value on one line (scalars, short lists and maps), or None when it
/// needs several.
fn inline(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s == UNKNOWN => Some(UNKNOWN.to_string()),
        Value::String(s) if s.contains('\n') => None,
        Value::Array(_) | Value::Object(_) => {
            let s = v.to_string();
            (s.len() <= 72).then_some(s)
        }
        other => Some(other.to_string()),
    }
}

fn block(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.lines().map(str::to_string).collect(),
        other => serde_json::to_string_pretty(other).unwrap_or_default().lines().map(str::to_string).collect(),
    }
}

fn attr_line(out: &mut String, sign: &str, name: &str, v: &Value, note: &str, _style: Style) {
    if let Value::Object(map) = v {
        if !map.is_empty() {
            // Maps (tags) as Terraform writes them: one `+ key = value` a line.
            let _ = writeln!(out, "      {sign} {name} = {{{note}");
            let width = map.keys().map(|k| map_key(k).len()).max().unwrap_or(0);
            for (k, x) in map {
                let _ = writeln!(out, "          {sign} {:width$} = {}", map_key(k), compact(x));
            }
            out.push_str(
                "        }
",
            );
            return;
        }
    }
    match inline(v) {
        Some(s) => {
            let _ = writeln!(out, "      {sign} {name} = {s}{note}");
        }
        None => {
            let _ = writeln!(out, "      {sign} {name} = <<-EOT{note}");
            for line in block(v) {
                let _ = writeln!(out, "            {line}");
            }
            out.push_str("        EOT\n");
        }
    }
}

fn changed_line(out: &mut String, name: &str, b: &Value, a: &Value, note: &str, style: Style) {
    let tilde = style.yellow("~");
    if let (Value::Object(bm), Value::Object(am)) = (b, a) {
        // Maps (tags): key by key.
        let _ = writeln!(out, "      {tilde} {name} = {{{note}");
        let keys: BTreeSet<&String> = bm.keys().chain(am.keys()).collect();
        let width = keys.iter().filter(|k| bm.get(**k) != am.get(**k)).map(|k| map_key(k).len()).max().unwrap_or(0);
        for k in keys {
            let key = format!("{:width$}", map_key(k));
            match (bm.get(k), am.get(k)) {
                (Some(x), Some(y)) if x == y => {}
                (Some(x), Some(y)) => {
                    let _ = writeln!(out, "          {tilde} {key} = {} -> {}", compact(x), compact(y));
                }
                (None, Some(y)) => {
                    let _ = writeln!(out, "          {} {key} = {}", style.green("+"), compact(y));
                }
                (Some(x), None) => {
                    let _ = writeln!(out, "          {} {key} = {}", style.red("-"), compact(x));
                }
                (None, None) => {}
            }
        }
        out.push_str("        }\n");
        return;
    }
    match (inline(b), inline(a)) {
        (Some(x), Some(y)) => {
            let _ = writeln!(out, "      {tilde} {name} = {x} -> {y}{note}");
        }
        _ => {
            // Multi-line: a line diff, so a changed cloud-init reads as the
            // lines that changed rather than two blobs.
            let _ = writeln!(out, "      {tilde} {name} = <<-EOT{note}");
            let before = block(b).join("\n") + "\n";
            let after = block(a).join("\n") + "\n";
            let diff = TextDiff::from_lines(&before, &after);
            for change in diff.iter_all_changes() {
                let line = change.value().trim_end_matches('\n');
                match change.tag() {
                    ChangeTag::Equal => {
                        let _ = writeln!(out, "            {line}");
                    }
                    ChangeTag::Delete => {
                        let _ = writeln!(out, "          {} {line}", style.red("-"));
                    }
                    ChangeTag::Insert => {
                        let _ = writeln!(out, "          {} {line}", style.green("+"));
                    }
                }
            }
            out.push_str("        EOT\n");
        }
    }
}

/// A map key as Terraform prints a map's keys: quoted (`"Name"`,
/// `"kubernetes.io/cluster/demo"`).
fn map_key(k: &str) -> String {
    Value::String(k.to_string()).to_string()
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) if s == UNKNOWN => UNKNOWN.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Summary;
    use crate::Address;
    use serde_json::json;

    fn change(action: Action, before: Option<Value>, after: Option<Value>) -> Change {
        Change {
            address: Address::new("sim_resource", "a"),
            action,
            before: before.map(|v| v.as_object().unwrap().clone()),
            after: after.map(|v| v.as_object().unwrap().clone()),
            kind: "sim_resource".into(),
            provider: "sim".into(),
            replace_because: if action == Action::Replace { vec!["zone".into()] } else { vec![] },
            config: None,
            dependencies: vec![],
            prior_dependencies: vec![],
            orphan: false,
            rolling_group: None,
            deposed: false,
            holding: vec![],
            exclusive: false,
        }
    }

    fn plan_of(changes: Vec<Change>, summary: Summary) -> Plan {
        Plan {
            destroy: false,
            lineage: "l".into(),
            serial: 1,
            changes,
            summary,
            orphans: Vec::new(),
            review: Default::default(),
        }
    }

    const PLAIN: Style = Style { color: false };

    #[test]
    fn create_update_replace_delete() {
        let p = plan_of(
            vec![
                change(Action::Create, None, Some(json!({"id": UNKNOWN, "size": 3}))),
                change(
                    Action::Update,
                    Some(json!({"id": "sim-1", "size": 3, "x": 1})),
                    Some(json!({"id": "sim-1", "size": 4, "x": 1})),
                ),
                change(
                    Action::Replace,
                    Some(json!({"id": "sim-2", "zone": "a"})),
                    Some(json!({"id": UNKNOWN, "zone": "b"})),
                ),
                change(Action::Delete, Some(json!({"id": "sim-3"})), None),
            ],
            Summary { create: 1, update: 1, replace: 1, delete: 1 },
        );
        let text = plan(&p, PLAIN);
        assert!(
            text.contains("  + sim_resource.a {\n      + id   = (known after apply)\n      + size = 3\n"),
            "{text}"
        );
        assert!(text.contains("      ~ size = 3 -> 4\n"), "{text}");
        assert!(text.contains("(1 unchanged attribute hidden)"), "{text}");
        assert!(text.contains("-/+ sim_resource.a {"), "{text}");
        assert!(text.contains("~ zone = \"a\" -> \"b\" # forces replacement"), "{text}");
        assert!(text.contains("  - sim_resource.a {\n      - id = \"sim-3\""), "{text}");
        assert!(text.ends_with("Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy.\n"), "{text}");
    }

    /// Golden file: maps are written `{ + key = value }` a key a line, in
    /// a create, a delete and an update, never as JSON in a heredoc.
    #[test]
    fn maps_render_key_by_key() {
        let tags = json!({"Name": "demo-vpc", "kubernetes.io/cluster/demo": "owned", "team": "platform"});
        let p = plan_of(
            vec![
                change(Action::Create, None, Some(json!({"id": UNKNOWN, "tags": tags}))),
                change(
                    Action::Update,
                    Some(json!({"id": "sim-1", "tags": {"Name": "a", "team": "platform", "old": "x"}})),
                    Some(json!({"id": "sim-1", "tags": {"Name": "b", "team": "platform", "new-key": "y"}})),
                ),
                change(Action::Delete, Some(json!({"id": "sim-3", "tags": {"Name": "gone"}, "empty": {}})), None),
            ],
            Summary { create: 1, update: 1, delete: 1, ..Summary::default() },
        );
        let text = plan(&p, PLAIN);
        let golden = include_str!("testdata/maps.txt");
        assert_eq!(text, golden, "the plan differs from engine/src/render/testdata/maps.txt:\n{text}");
        assert!(!text.contains("EOT"), "{text}");
    }

    #[test]
    fn risks_come_before_the_summary_and_the_cost_ends_the_plan() {
        use crate::review::{Cost, PriceSource, Review, Risk};
        let mut p = plan_of(
            vec![change(Action::Replace, Some(json!({"zone": "a"})), Some(json!({"zone": "b"})))],
            Summary { replace: 1, ..Summary::default() },
        );
        p.review = Review {
            risks: vec![Risk {
                kind: "zone-move".into(),
                address: "sim_resource.a".into(),
                message: "it moves.".into(),
            }],
            cost: Some(Cost {
                currency: "USD".into(),
                hours_per_month: 730.0,
                basis: "on-demand prices (spot pools at their max)".into(),
                monthly_before: 1000.0,
                monthly_after: 950.5,
                items: Vec::new(),
                sources: vec![PriceSource {
                    prices: "all".into(),
                    source: "a table".into(),
                    as_of: "2026-01-01".into(),
                }],
                unpriced: vec!["x: no price".into()],
            }),
            parts: Vec::new(),
        };
        let text = plan(&p, PLAIN);
        let risk = text.find("  zone-move            sim_resource.a: it moves.\n").expect(&text);
        let summary = text.find("Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy.").expect(&text);
        assert!(risk < summary, "{text}");
        assert!(
            text.ends_with(
                "Monthly cost estimate (730 h): $1,000.00 before, $950.50 after (-$49.50 a month).\n  \
                 all priced from a table, as of 2026-01-01.\n  Not priced: x: no price.\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn multi_line_values_diff_line_by_line() {
        let p = plan_of(
            vec![change(
                Action::Update,
                Some(json!({"id": "i-1", "user_data": "#cloud-config\nrole: worker\npods: 10.0.0.0/16\n"})),
                Some(json!({"id": "i-1", "user_data": "#cloud-config\nrole: worker\npods: 172.16.0.0/16\n"})),
            )],
            Summary { update: 1, ..Summary::default() },
        );
        let text = plan(&p, PLAIN);
        assert!(
            text.contains("            role: worker\n          - pods: 10.0.0.0/16\n          + pods: 172.16.0.0/16\n"),
            "{text}"
        );
    }

    #[test]
    fn maps_diff_key_by_key() {
        let p = plan_of(
            vec![change(
                Action::Update,
                Some(json!({"tags": {"a": "1", "b": "2"}})),
                Some(json!({"tags": {"a": "1", "b": "3", "c": "4"}})),
            )],
            Summary { update: 1, ..Summary::default() },
        );
        let text = plan(&p, PLAIN);
        assert!(text.contains("~ \"b\" = \"2\" -> \"3\"") && text.contains("+ \"c\" = \"4\""), "{text}");
        assert!(!text.contains("\"a\" ="), "{text}");
    }

    #[test]
    fn no_changes() {
        let text = plan(&plan_of(vec![], Summary::default()), PLAIN);
        assert_eq!(text, "No changes. Your infrastructure matches the spec.\n");
    }
}
