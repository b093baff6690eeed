//! The plan as one self-contained HTML page (`show PLANFILE --format html`):
//! the Markdown comment's content (summary, risks, cost, changes by part
//! with folded diffs) plus the dependency graph drawn as inline SVG, one
//! column per layer, the changed resources coloured by action.
//!
//! Self-contained: styles and the one small script are inline, and a
//! Content-Security-Policy of `default-src 'none'` makes the page unable to
//! fetch anything, should a value in it ever look like a URL. Readable on a
//! phone: a viewport meta, text that wraps, the graph scrolling in its box.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::human;
use crate::plan::{Action, Change, Plan};
use crate::review::{money, money_change};

/// Above this many resources only the changed ones are drawn.
const DRAW_ALL_UP_TO: usize = 400;
const COLUMN: usize = 250;
const ROW: usize = 26;
const BOX_W: usize = 220;
const BOX_H: usize = 20;

/// A report page's start, up to its heading: `skyplan TITLE` (escaped),
/// the shared style and `extra_style`, and a policy that lets the page
/// load nothing (its styles and script are inline).
pub(crate) fn head(out: &mut String, title: &str, extra_style: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'\">\
         <title>skyplan {t}</title><style>{STYLE}{extra_style}</style></head><body>\n<h1>skyplan {t}</h1>\n",
        t = esc(title)
    );
}

/// The page.
pub fn plan(plan: &Plan) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let s = plan.summary;
    let title = if plan.has_changes() {
        format!("{} to add, {} to change, {} to replace, {} to destroy", s.create, s.update, s.replace, s.delete)
    } else {
        "no changes".to_string()
    };
    head(&mut out, &format!("plan: {title}"), "");
    risks(&mut out, plan);
    cost(&mut out, plan);
    out.push_str("<h2>Dependency graph</h2>\n<div class=\"graph\">");
    out.push_str(&graph(plan));
    out.push_str(
        "</div>\n<p class=\"legend\"><span class=\"create\">create</span> <span class=\"update\">update</span> \
                  <span class=\"replace\">replace</span> <span class=\"delete\">delete</span> \
                  <span class=\"no-op\">unchanged</span>; one column per dependency layer, left first.</p>\n",
    );
    changes(&mut out, plan);
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

pub(super) const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:12px;max-width:960px;color:#1b1f24}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.4em}\
ul{padding-left:1.2em}li{margin:.25em 0;overflow-wrap:anywhere}\
code{font:13px ui-monospace,monospace;background:#f2f4f7;padding:0 3px;border-radius:3px}\
pre{font:12px/1.4 ui-monospace,monospace;background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre}\
table{border-collapse:collapse;width:100%;font-size:14px}td,th{border-bottom:1px solid #dde;padding:4px;text-align:left}\
td.n,th.n{text-align:right;white-space:nowrap}\
.risk{border-left:4px solid #d97706;padding:2px 8px;margin:6px 0;background:#fff8eb}\
.kind{font-weight:600}.graph{overflow:auto;border:1px solid #dde;max-height:70vh}\
.create{color:#116329}.update{color:#9a6700}.replace{color:#8250df}.delete{color:#cf222e}.no-op{color:#6e7781}\
.sel{outline:2px solid #0969da}summary{cursor:pointer}\
svg text{font:11px ui-monospace,monospace}";

/// Clicking a drawn resource shows its change in the list; the page marks
/// itself rendered (what the browser test reads).
const SCRIPT: &str = "document.querySelectorAll('svg g[data-address]').forEach(function(g){\
g.addEventListener('click',function(){var id='c-'+g.getAttribute('data-address');\
var el=document.getElementById(id);if(!el)return;\
document.querySelectorAll('.sel').forEach(function(e){e.classList.remove('sel')});\
el.classList.add('sel');var d=el.closest('details');if(d)d.open=true;el.scrollIntoView();});});\
var f=document.querySelector('svg g[data-changed]'),box=document.querySelector('.graph');\
if(f&&box){var b=f.getBBox();box.scrollLeft=Math.max(0,b.x-20);box.scrollTop=Math.max(0,b.y-20);}\
document.documentElement.setAttribute('data-requests',String(performance.getEntriesByType('resource').length));\
document.documentElement.setAttribute('data-rendered','yes');";

fn risks(out: &mut String, plan: &Plan) {
    let grouped = plan.review.risks_grouped();
    out.push_str("<h2>Risks</h2>\n");
    if grouped.is_empty() {
        out.push_str("<p>None: no node rolls, no address or endpoint changes, no capacity drop.</p>\n");
        return;
    }
    for (kind, message, addresses) in grouped {
        let list: Vec<String> = addresses.iter().map(|a| format!("<code>{}</code>", esc(a))).collect();
        let _ = writeln!(
            out,
            "<div class=\"risk\"><span class=\"kind\">{}</span> {}: {}</div>",
            esc(kind),
            list.join(", "),
            esc(message)
        );
    }
}

fn cost(out: &mut String, plan: &Plan) {
    let Some(cost) = &plan.review.cost else {
        return;
    };
    let _ = writeln!(
        out,
        "<h2>Monthly cost</h2>\n<p><b>{} → {}</b> ({} a month), {} at {}, {} h a month.</p>",
        money(cost.monthly_before),
        money(cost.monthly_after),
        money_change(cost.change()),
        esc(&cost.currency),
        esc(&cost.basis),
        cost.hours_per_month
    );
    out.push_str(
        "<details><summary>Items</summary><table><tr><th>resource</th><th class=\"n\">before</th>\
                  <th class=\"n\">after</th><th class=\"n\">change</th></tr>\n",
    );
    for i in &cost.items {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code> {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&i.address),
            esc(&i.description),
            money(i.monthly_before),
            money(i.monthly_after),
            money_change(i.monthly_after - i.monthly_before)
        );
    }
    out.push_str("</table></details>\n<p><small>Prices: ");
    let sources: Vec<String> = cost
        .sources
        .iter()
        .map(|s| format!("{} from {} (as of {})", esc(&s.prices), esc(&s.source), esc(&s.as_of)))
        .collect();
    out.push_str(&sources.join("; "));
    out.push_str(".</small></p>\n");
    for u in &cost.unpriced {
        let _ = writeln!(out, "<p><small>Not priced: {}</small></p>", esc(u));
    }
}

fn changes(out: &mut String, plan: &Plan) {
    out.push_str("<h2>Changes</h2>\n");
    let mut groups: Vec<(String, Vec<&Change>)> =
        plan.review.parts.iter().map(|p| (p.name.clone(), Vec::new())).collect();
    let mut other = Vec::new();
    for change in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        let address = change.address.to_string();
        match plan.review.part_of(&address).and_then(|p| groups.iter_mut().find(|g| g.0 == p)) {
            Some(g) => g.1.push(change),
            None => other.push(change),
        }
    }
    groups.push(("other".to_string(), other));
    if groups.iter().all(|g| g.1.is_empty()) {
        out.push_str("<p>No changes.</p>\n");
    }
    for (name, changes) in groups.iter().filter(|g| !g.1.is_empty()) {
        let _ = writeln!(out, "<h3>{} ({})</h3>\n<ul>", esc(name), changes.len());
        for c in changes {
            let address = c.address.to_string();
            let _ = writeln!(
                out,
                "<li id=\"c-{}\"><details><summary><span class=\"{}\">{}</span> <code>{}</code>{}</summary><pre>{}</pre></details></li>",
                esc(&address),
                c.action.as_str(),
                c.action.as_str(),
                esc(&address),
                if c.replace_because.is_empty() {
                    String::new()
                } else {
                    format!(" (forced by <code>{}</code>)", esc(&c.replace_because.join(", ")))
                },
                esc(&human::change_text(c))
            );
        }
        out.push_str("</ul>\n");
    }
}

/// The resources in dependency layers (a resource one column right of the
/// deepest of what it depends on), as SVG.
fn graph(plan: &Plan) -> String {
    let drawn: Vec<&Change> = if plan.changes.len() <= DRAW_ALL_UP_TO {
        plan.changes.iter().collect()
    } else {
        plan.changes.iter().filter(|c| c.action != Action::NoOp).take(DRAW_ALL_UP_TO).collect()
    };
    let index: BTreeMap<String, usize> = drawn.iter().enumerate().map(|(i, c)| (c.address.to_string(), i)).collect();
    let deps: Vec<Vec<usize>> = drawn
        .iter()
        .map(|c| {
            let list = if c.action == Action::Delete { &c.prior_dependencies } else { &c.dependencies };
            list.iter().filter_map(|d| index.get(&d.to_string()).copied()).collect()
        })
        .collect();
    // Longest path from a root, by relaxation (a plan has no cycles; the
    // bound stops a malformed one).
    let mut layer = vec![0usize; drawn.len()];
    for _ in 0..drawn.len().min(64) {
        let mut moved = false;
        for (i, ds) in deps.iter().enumerate() {
            let want = ds.iter().map(|&d| layer[d] + 1).max().unwrap_or(0);
            if want > layer[i] {
                layer[i] = want;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let columns = layer.iter().max().map_or(0, |m| m + 1);
    let mut used = vec![0usize; columns];
    let row_of: Vec<usize> = layer
        .iter()
        .map(|&l| {
            used[l] += 1;
            used[l] - 1
        })
        .collect();
    let rows = used.iter().copied().max().unwrap_or(0);
    let (w, h) = (columns * COLUMN + 10, rows * ROW + 10);
    let pos = |i: usize| (5 + layer[i] * COLUMN, 5 + row_of[i] * ROW);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-label=\"dependency graph\">"
    );
    for (i, ds) in deps.iter().enumerate() {
        let (x, y) = pos(i);
        for &d in ds {
            let (dx, dy) = pos(d);
            let changed = drawn[i].action != Action::NoOp;
            let _ = write!(
                svg,
                "<path d=\"M{} {} C{} {} {} {} {} {}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1\"/>",
                dx + BOX_W,
                dy + BOX_H / 2,
                dx + BOX_W + 15,
                dy + BOX_H / 2,
                x - 15,
                y + BOX_H / 2,
                x,
                y + BOX_H / 2,
                if changed { "#8c959f" } else { "#d0d7de" }
            );
        }
    }
    for (i, c) in drawn.iter().enumerate() {
        let (x, y) = pos(i);
        let (fill, stroke) = match c.action {
            Action::Create => ("#dafbe1", "#1a7f37"),
            Action::Update => ("#fff8c5", "#9a6700"),
            Action::Replace => ("#fbefff", "#8250df"),
            Action::Delete => ("#ffebe9", "#cf222e"),
            Action::NoOp => ("#f6f8fa", "#d0d7de"),
        };
        let address = c.address.to_string();
        let label: String = if address.chars().count() > 32 {
            address.chars().take(31).collect::<String>() + "…"
        } else {
            address.clone()
        };
        let _ = write!(
            svg,
            "<g data-address=\"{a}\"{changed}><title>{a} ({act})</title><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" \
             rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{sw}\"/><text x=\"{tx}\" y=\"{ty}\">{l}</text></g>",
            a = esc(&address),
            act = c.action.as_str(),
            sw = if c.action == Action::NoOp { 1 } else { 2 },
            changed = if c.action == Action::NoOp { "" } else { " data-changed=\"\"" },
            tx = x + 5,
            ty = y + 14,
            l = esc(&label)
        );
    }
    svg.push_str("</svg>");
    if drawn.len() < plan.changes.len() {
        let _ =
            write!(svg, "<p>{} resources: only the {} changed ones first drawn.</p>", plan.changes.len(), drawn.len());
    }
    svg
}

pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::Summary;
    use crate::review::{Review, Risk};

    fn change(address: &str, action: Action, deps: &[&str]) -> Change {
        let attrs = json!({"v": "<script>alert(1)</script>"}).as_object().unwrap().clone();
        let mut c = Change::delete(address.parse().unwrap(), "t".into(), "p".into(), attrs.clone(), Vec::new());
        c.action = action;
        c.after = (action != Action::Delete).then_some(attrs);
        c.dependencies = deps.iter().map(|d| d.parse().unwrap()).collect();
        c
    }

    fn sample() -> Plan {
        let review = Review {
            risks: vec![Risk { kind: "k".into(), address: "t.b".into(), message: "b <goes>".into() }],
            ..Review::default()
        };
        Plan {
            destroy: false,
            lineage: "l".into(),
            serial: 1,
            changes: vec![
                change("t.a", Action::NoOp, &[]),
                change("t.b", Action::Replace, &["t.a"]),
                change("t.c", Action::Create, &["t.b"]),
            ],
            summary: Summary { create: 1, replace: 1, ..Summary::default() },
            orphans: Vec::new(),
            review,
        }
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_every_value() {
        let page = plan(&sample());
        assert!(page.contains("default-src 'none'"));
        assert!(!page.contains("<script>alert"), "a value reached the page unescaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("b &lt;goes&gt;"));
        for fetch in ["src=", "href=", "@import", "url("] {
            assert!(!page.contains(fetch), "{fetch} in the page");
        }
        assert_eq!(page.matches("<script>").count(), 1);
    }

    #[test]
    fn the_graph_puts_each_resource_right_of_what_it_depends_on() {
        let svg = graph(&sample());
        let x_of = |a: &str| {
            let at = svg.find(&format!("<g data-address=\"{a}\"")).unwrap();
            let rest = &svg[at..];
            let x = rest.find("x=\"").unwrap() + 3;
            rest[x..x + rest[x..].find('"').unwrap()].parse::<usize>().unwrap()
        };
        assert!(x_of("t.a") < x_of("t.b") && x_of("t.b") < x_of("t.c"));
        assert!(svg.contains("stroke=\"#8250df\""), "the replace is highlighted");
    }
}
