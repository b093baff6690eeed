//! The plan as a pull-request comment (`show PLANFILE --format markdown`):
//! what a reviewer reads in a minute. The summary line, the risks, the
//! monthly cost and its change, then the changes grouped by part of the
//! system (the review's parts: network, control plane, each pool), each
//! part's attribute diffs folded in `<details>`.
//!
//! A comment is at most [`LIMIT`] characters (GitHub's bound). When the
//! whole does not fit, the folded diffs go first (part by part, from the
//! last), then the lists are cut, and the comment says what was left out.

use std::fmt::Write;

use super::human;
use crate::plan::{Action, Change, Plan};
use crate::review::{money, money_change};

/// The most characters a comment may have.
pub const LIMIT: usize = 65_535;

/// The plan as a comment of at most [`LIMIT`] characters.
pub fn plan(plan: &Plan) -> String {
    plan_within(plan, LIMIT)
}

/// The plan as a comment of at most `limit` characters.
pub fn plan_within(plan: &Plan, limit: usize) -> String {
    let head = head(plan);
    let groups = groups(plan);
    // The full comment, when it fits.
    let mut folds = vec![Fold::Whole; groups.len()];
    let full = assemble(&head, &groups, &folds, usize::MAX, None);
    if chars(&full) <= limit {
        return full;
    }
    // Fold diffs away part by part, from the last, until it fits.
    let note_all = "\n> **Cut:** attribute diffs left out to keep this comment under 65,535 characters; \
                    `skyplan show PLANFILE` prints them all.\n";
    for i in (0..groups.len()).rev() {
        folds[i] = Fold::Left;
        let text = assemble(&head, &groups, &folds, usize::MAX, Some(note_all));
        if chars(&text) <= limit {
            return text;
        }
    }
    // Still too long: cut the lists too, keeping as many lines as fit.
    let note_lists = "\n> **Cut:** attribute diffs and the changes past the ones listed left out to keep this \
                      comment under 65,535 characters; `skyplan show PLANFILE` prints them all.\n";
    let (mut low, mut high) = (0, plan.changes.len());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if chars(&assemble(&head, &groups, &folds, mid, Some(note_lists))) <= limit {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let text = assemble(&head, &groups, &folds, low, Some(note_lists));
    if chars(&text) <= limit {
        return text;
    }
    // The head alone is too long (thousands of risks): cut it by characters.
    let mut cut: String = text.chars().take(limit.saturating_sub(note_lists.len() + 1)).collect();
    cut.push('\n');
    cut.push_str(note_lists);
    cut
}

#[derive(Clone, Copy, PartialEq)]
enum Fold {
    /// The part's diffs in its `<details>`.
    Whole,
    /// Left out.
    Left,
}

/// A part of the system and its changes.
struct Group<'a> {
    name: String,
    changes: Vec<&'a Change>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Summary line, risks and cost.
fn head(plan: &Plan) -> String {
    let mut out = String::new();
    let s = plan.summary;
    if plan.has_changes() {
        let _ = writeln!(
            out,
            "### skyplan plan: {} to add, {} to change, {} to replace, {} to destroy\n",
            s.create, s.update, s.replace, s.delete
        );
    } else {
        out.push_str("### skyplan plan: no changes\n\n");
    }
    let risks = plan.review.risks_grouped();
    if risks.is_empty() {
        out.push_str("**Risks:** none: no node rolls, no address or endpoint changes, no capacity drop.\n\n");
    } else {
        out.push_str("**Risks**\n\n");
        for (kind, message, addresses) in risks {
            let list: Vec<String> = addresses.iter().map(|a| format!("`{a}`")).collect();
            let _ = writeln!(out, "- **{kind}** {}: {}", list.join(", "), escape(message));
        }
        out.push('\n');
    }
    if let Some(cost) = &plan.review.cost {
        let _ = writeln!(
            out,
            "**Monthly cost:** {} → {} (**{}**), {} at {}, {} h a month.\n",
            money(cost.monthly_before),
            money(cost.monthly_after),
            money_change(cost.change()),
            cost.currency,
            escape(&cost.basis),
            cost.hours_per_month
        );
        let mut changed: Vec<_> = cost.items.iter().filter(|i| i.monthly_before != i.monthly_after).collect();
        changed.sort_by(|a, b| {
            (b.monthly_after - b.monthly_before).abs().total_cmp(&(a.monthly_after - a.monthly_before).abs())
        });
        if !changed.is_empty() {
            out.push_str("| resource | before | after | change |\n|---|--:|--:|--:|\n");
            for i in changed.iter().take(10) {
                let _ = writeln!(
                    out,
                    "| `{}` {} | {} | {} | {} |",
                    i.address,
                    escape(&i.description),
                    money(i.monthly_before),
                    money(i.monthly_after),
                    money_change(i.monthly_after - i.monthly_before)
                );
            }
            if changed.len() > 10 {
                let _ = writeln!(out, "| and {} more | | | |", changed.len() - 10);
            }
            out.push('\n');
        }
        let sources: Vec<String> = cost
            .sources
            .iter()
            .map(|s| format!("{} from {} (as of {})", s.prices, escape(&s.source), s.as_of))
            .collect();
        let _ = writeln!(out, "<sub>Prices: {}.</sub>\n", sources.join("; "));
        for u in &cost.unpriced {
            let _ = writeln!(out, "- not priced: {}", escape(u));
        }
        if !cost.unpriced.is_empty() {
            out.push('\n');
        }
    }
    out
}

/// The plan's changes (no-ops left out) by part, in the review's order,
/// "other" last.
fn groups(plan: &Plan) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> =
        plan.review.parts.iter().map(|p| Group { name: p.name.clone(), changes: Vec::new() }).collect();
    let mut other = Group { name: "other".to_string(), changes: Vec::new() };
    for change in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        let address = change.address.to_string();
        match plan.review.part_of(&address).and_then(|p| groups.iter_mut().find(|g| g.name == p)) {
            Some(g) => g.changes.push(change),
            None => other.changes.push(change),
        }
    }
    groups.push(other);
    groups.retain(|g| !g.changes.is_empty());
    groups
}

/// The comment from its head and groups, each group's diffs as `folds`
/// says, listing at most `max_lines` changes in all.
fn assemble(head: &str, groups: &[Group], folds: &[Fold], max_lines: usize, note: Option<&str>) -> String {
    let mut out = head.to_string();
    let mut listed = 0;
    let total: usize = groups.iter().map(|g| g.changes.len()).sum();
    for (group, fold) in groups.iter().zip(folds) {
        if listed >= max_lines {
            break;
        }
        let _ = writeln!(
            out,
            "#### {} ({} change{})\n",
            escape(&group.name),
            group.changes.len(),
            plural(group.changes.len())
        );
        let mut shown = Vec::new();
        for change in &group.changes {
            if listed >= max_lines {
                break;
            }
            listed += 1;
            shown.push(*change);
            let because = if change.replace_because.is_empty() {
                String::new()
            } else {
                format!(" (forced by `{}`)", change.replace_because.join("`, `"))
            };
            let _ = writeln!(out, "- {} `{}` {}{because}", sign(change), change.address, verb(change));
        }
        out.push('\n');
        if *fold == Fold::Whole && listed <= max_lines {
            let diffs: String = shown.iter().map(|c| human::change_text(c) + "\n").collect();
            let fence = fence_for(&diffs);
            let _ = writeln!(
                out,
                "<details><summary>attribute changes</summary>\n\n{fence}diff\n{}{fence}\n\n</details>\n",
                diffs.trim_end_matches('\n').to_string() + "\n"
            );
        }
    }
    if listed < total {
        let _ = writeln!(out, "… and {} more change{} not listed.\n", total - listed, plural(total - listed));
    }
    if let Some(note) = note {
        out.push_str(note);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn sign(change: &Change) -> &'static str {
    match change.action {
        Action::Create => "➕",
        Action::Update => "✏️",
        Action::Replace => "🔁",
        Action::Delete => "➖",
        Action::NoOp => "",
    }
}

fn verb(change: &Change) -> &'static str {
    match change.action {
        Action::Create => "created",
        Action::Update => "updated in place",
        Action::Replace if change.rolling_group.is_some() => "replaced (new one first)",
        Action::Replace => "replaced",
        Action::Delete => "destroyed",
        Action::NoOp => "unchanged",
    }
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

/// Text outside code: no HTML tags, no table breaks.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::review::{Cost, CostItem, Part, PriceSource, Review, Risk};

    fn change(address: &str, action: Action, attrs: serde_json::Value) -> Change {
        let map = attrs.as_object().unwrap().clone();
        let mut c = Change::delete(address.parse().unwrap(), "t".into(), "p".into(), map.clone(), Vec::new());
        c.action = action;
        c.before = (action != Action::Create).then(|| map.clone());
        c.after = (action != Action::Delete).then_some(map);
        c
    }

    fn plan_of(changes: Vec<Change>, review: Review) -> Plan {
        let summary = crate::plan::summarize(&changes);
        Plan { destroy: false, lineage: "l".into(), serial: 1, changes, summary, orphans: Vec::new(), review }
    }

    fn reviewed() -> Plan {
        let mut replaced = change("t.node[0]", Action::Replace, json!({"size": "large"}));
        replaced.before = Some(json!({"size": "small"}).as_object().unwrap().clone());
        replaced.replace_because = vec!["size".into()];
        let review = Review {
            risks: vec![Risk {
                kind: "node-roll".into(),
                address: "t.node[0]".into(),
                message: "the node <rolls>.".into(),
            }],
            cost: Some(Cost {
                currency: "USD".into(),
                hours_per_month: 730.0,
                basis: "on-demand prices (spot pools at their max)".into(),
                monthly_before: 10.0,
                monthly_after: 25.5,
                items: vec![CostItem {
                    address: "t.node[0]".into(),
                    description: "large".into(),
                    monthly_before: 10.0,
                    monthly_after: 25.5,
                }],
                sources: vec![PriceSource {
                    prices: "nodes".into(),
                    source: "a table".into(),
                    as_of: "2026-01-01".into(),
                }],
                unpriced: Vec::new(),
            }),
            parts: vec![Part { name: "nodes".into(), addresses: vec!["t.node[0]".into()] }],
        };
        plan_of(vec![replaced, change("t.net", Action::Create, json!({"cidr": "10.0.0.0/16"}))], review)
    }

    #[test]
    fn summary_then_risks_then_cost_then_parts_with_folded_diffs() {
        let md = plan(&reviewed());
        let at = |s: &str| md.find(s).unwrap_or_else(|| panic!("{s:?} not in\n{md}"));
        assert!(md.starts_with("### skyplan plan: 1 to add, 0 to change, 1 to replace, 0 to destroy"), "{md}");
        assert!(
            at("**node-roll** `t.node[0]`: the node &lt;rolls&gt;.")
                < at("**Monthly cost:** $10.00 → $25.50 (**+$15.50**)")
        );
        assert!(at("**Monthly cost:**") < at("#### nodes (1 change)"));
        assert!(at("#### nodes (1 change)") < at("#### other (1 change)"));
        assert!(md.contains("🔁 `t.node[0]` replaced (forced by `size`)"), "{md}");
        assert!(md.contains("<details><summary>attribute changes</summary>"));
        assert!(md.contains("~ size = \"small\" -> \"large\" # forces replacement"), "{md}");
        assert!(md.contains("nodes from a table (as of 2026-01-01)"), "{md}");
        assert!(!md.contains("Cut:"));
    }

    #[test]
    fn a_huge_plan_stays_under_the_limit_and_says_what_it_cut() {
        let big = "x".repeat(2_000);
        let changes: Vec<Change> =
            (0..5_000).map(|i| change(&format!("t.n[{i:05}]"), Action::Create, json!({"blob": big}))).collect();
        let mut p = plan_of(changes, Review::default());
        let md = plan(&p);
        assert!(chars(&md) <= LIMIT, "{}", chars(&md));
        assert!(
            md.contains("**Cut:** attribute diffs and the changes past the ones listed"),
            "{}",
            &md[md.len() - 400..]
        );
        assert!(md.contains("more changes not listed"));
        assert!(md.starts_with("### skyplan plan: 5000 to add"));

        // Few changes with big diffs: the lists stay whole, diffs go.
        p.changes.truncate(40);
        p.summary.create = 40;
        let md = plan(&p);
        assert!(chars(&md) <= LIMIT);
        assert!(md.contains("**Cut:** attribute diffs left out"), "{md}");
        assert!(md.contains("`t.n[00039]`"));
    }

    #[test]
    fn thousands_of_risks_are_cut_too() {
        let risks = (0..20_000)
            .map(|i| Risk { kind: format!("k{i}"), address: format!("t.n[{i}]"), message: "m".repeat(50) })
            .collect();
        let p = plan_of(Vec::new(), Review { risks, ..Review::default() });
        let md = plan(&p);
        assert!(chars(&md) <= LIMIT, "{}", chars(&md));
        assert!(md.contains("**Cut:**"));
    }

    #[test]
    fn code_fences_outlast_backticks_in_the_diffs() {
        assert_eq!(fence_for("a ``` b"), "````");
        assert_eq!(fence_for("plain"), "```");
    }
}
