//! A run as a picture (`show RUNFILE`, RUNFILE a saved `apply --json` or
//! `destroy --json` stream, docs/json-events.md): each operation's bar from
//! its `apply_start` to its `apply_complete` / `apply_errored`, on one time
//! axis, and the run's critical path: the chain of operations, each the
//! one its successor waited for last (`hook.depends_on` of `apply_start`),
//! that ends where the run ends. It says why the run took as long as it did.
//!
//! Only the stream is read: [`parse`] turns its lines into a [`Run`],
//! [`critical_path`] follows the dependencies, [`text`] and [`html`] show
//! it. Nothing here knows a cloud.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::html::esc;

/// One saved run.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// `apply` or `destroy` (from `change_summary`; `apply` without one).
    pub operation: String,
    /// The `version` line's `@timestamp`, as written.
    pub started_at: String,
    /// Milliseconds since the epoch: the first line, and the last.
    pub start_ms: i64,
    pub end_ms: i64,
    /// In the order they started.
    pub ops: Vec<RunOp>,
    /// Operations not started because one they wait for failed:
    /// (action, address).
    pub skipped: Vec<(String, String)>,
    /// The `change_summary` line's message, when the run got that far.
    pub summary: Option<String>,
    /// Whether the stream says what each operation waited for (streams of
    /// skyplan before `depends_on` do not: no critical path then).
    pub has_dependencies: bool,
}

/// One operation's bar.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOp {
    pub address: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub outcome: Outcome,
    /// What it waited for: (address, action).
    pub depends_on: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Errored(String),
    /// Started, never finished in the stream (the run was killed): the bar
    /// runs to the stream's last line.
    Unfinished,
}

impl Run {
    /// When the first operation started (the run's start when none did):
    /// the timeline's zero. Planning and checks come before.
    pub fn first_start_ms(&self) -> i64 {
        self.ops.iter().map(|o| o.start_ms).min().unwrap_or(self.start_ms)
    }
}

impl RunOp {
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// Whether `text` looks like a saved event stream: its first line is a JSON
/// object of `"type": "version"`. A plan file is one JSON document, never
/// that.
pub fn is_event_stream(text: &str) -> bool {
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    serde_json::from_str::<Value>(first).is_ok_and(|v| v["type"] == "version")
}

/// The run of a saved stream. An error says `LINE:COLUMN: what`.
pub fn parse(text: &str) -> Result<Run, String> {
    let mut run = Run { operation: "apply".into(), ..Run::default() };
    let mut running: HashMap<(String, String), usize> = HashMap::new();
    let mut first = true;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let event: Value =
            serde_json::from_str(line).map_err(|e| format!("{n}:{}: not a JSON event line: {e}", e.column()))?;
        let kind = event["type"].as_str().ok_or_else(|| format!("{n}:1: an event line without a \"type\""))?;
        let stamp =
            event["@timestamp"].as_str().ok_or_else(|| format!("{n}:1: an event line without \"@timestamp\""))?;
        let at =
            parse_timestamp(stamp).ok_or_else(|| format!("{n}:1: \"@timestamp\" {stamp:?} is not RFC 3339 UTC"))?;
        if first {
            if kind != "version" {
                return Err(format!("{n}:1: the stream's first line is {kind:?}, not \"version\""));
            }
            run.started_at = stamp.to_string();
            run.start_ms = at;
            first = false;
        }
        run.end_ms = run.end_ms.max(at);
        let address = event["address"].as_str().unwrap_or_default().to_string();
        let action = event["hook"]["action"].as_str().unwrap_or_default().to_string();
        match kind {
            "apply_start" => {
                let depends_on: Vec<(String, String)> = event["hook"]["depends_on"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|d| {
                                Some((d["address"].as_str()?.to_string(), d["action"].as_str()?.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                run.has_dependencies |= event["hook"].get("depends_on").is_some();
                running.insert((address.clone(), action.clone()), run.ops.len());
                run.ops.push(RunOp {
                    address,
                    action,
                    start_ms: at,
                    end_ms: at,
                    outcome: Outcome::Unfinished,
                    depends_on,
                });
            }
            "apply_complete" | "apply_errored" => {
                let Some(i) = running.remove(&(address.clone(), action.clone())) else {
                    return Err(format!("{n}:1: {kind} of {action} {address}, which never started"));
                };
                let op = &mut run.ops[i];
                op.end_ms = at;
                op.outcome = if kind == "apply_complete" {
                    Outcome::Completed
                } else {
                    Outcome::Errored(event["hook"]["error"].as_str().unwrap_or("failed").to_string())
                };
            }
            "apply_skipped" => run.skipped.push((action, address)),
            "change_summary" => {
                run.summary = event["@message"].as_str().map(str::to_string);
                if let Some(op) = event["changes"]["operation"].as_str() {
                    run.operation = op.to_string();
                }
            }
            _ => {}
        }
    }
    if first {
        return Err("1:1: an empty stream".into());
    }
    for &i in running.values() {
        run.ops[i].end_ms = run.end_ms;
    }
    Ok(run)
}

/// The critical path, first operation first (indexes into `run.ops`): from
/// the operation that ended last, back through the dependency each one
/// waited for longest (the one that ended last), to one that waited for
/// nothing. Empty when the stream has no operations or no dependencies.
pub fn critical_path(run: &Run) -> Vec<usize> {
    if !run.has_dependencies || run.ops.is_empty() {
        return Vec::new();
    }
    // The last one to end; of those ending together, the last to start.
    let last = (0..run.ops.len())
        .max_by_key(|&i| (run.ops[i].end_ms, run.ops[i].start_ms, i))
        .expect("at least one operation");
    let mut path = vec![last];
    let mut seen = vec![false; run.ops.len()];
    seen[last] = true;
    let mut at = last;
    loop {
        let op = &run.ops[at];
        // Each dependency as the last operation of that address and action
        // to start no later than this one (a deposed object's delete and a
        // replace's delete share both).
        let awaited = op.depends_on.iter().filter_map(|(address, action)| {
            (0..run.ops.len())
                .filter(|&j| {
                    let d = &run.ops[j];
                    &d.address == address && &d.action == action && d.start_ms <= op.start_ms && !seen[j]
                })
                .max_by_key(|&j| (run.ops[j].start_ms, j))
        });
        let Some(next) = awaited.max_by_key(|&j| (run.ops[j].end_ms, j)) else { break };
        seen[next] = true;
        path.push(next);
        at = next;
    }
    path.reverse();
    path
}

/// `2026-12-02T06:40:01.123Z` as milliseconds since the epoch (UTC only,
/// as the stream writes it; any number of fraction digits).
fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z').or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{:0<3}", &fraction[..fraction.len().min(3)]).parse::<i64>().ok()?
    };
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + millis)
}

/// A duration as a person reads it: `0.4s`, `12.3s`, `2m 05s`, `1h 02m`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// The run in words: how long, what failed, the critical path with each
/// operation's duration and start.
pub fn text(run: &Run) -> String {
    let mut out = String::new();
    let total = run.end_ms - run.start_ms;
    let failed = run.ops.iter().filter(|o| matches!(o.outcome, Outcome::Errored(_))).count();
    let unfinished = run.ops.iter().filter(|o| o.outcome == Outcome::Unfinished).count();
    let _ = write!(
        out,
        "{} started {}: {} operations in {}",
        run.operation,
        run.started_at,
        run.ops.len(),
        duration(total)
    );
    let mut notes = Vec::new();
    if failed > 0 {
        notes.push(format!("{failed} failed"));
    }
    if !run.skipped.is_empty() {
        notes.push(format!("{} skipped", run.skipped.len()));
    }
    if unfinished > 0 {
        notes.push(format!("{unfinished} never finished"));
    }
    if !notes.is_empty() {
        let _ = write!(out, " ({})", notes.join(", "));
    }
    out.push_str(".\n");
    if let Some(summary) = &run.summary {
        let _ = writeln!(out, "{summary}");
    }
    if !run.ops.is_empty() {
        let _ = writeln!(
            out,
            "Planning and checks: {} before the first operation; operations: {}.",
            duration(run.first_start_ms() - run.start_ms),
            duration(run.end_ms - run.first_start_ms())
        );
    }
    let path = critical_path(run);
    if path.is_empty() {
        if !run.ops.is_empty() {
            out.push_str("\nNo critical path: this stream does not say what each operation waited for.\n");
        }
    } else {
        let busy: i64 = path.iter().map(|&i| run.ops[i].duration_ms()).sum();
        let _ = writeln!(
            out,
            "\nCritical path: {} operations running {} of the operations' {} (the rest: waiting for a parallelism slot, \
             recording results):",
            path.len(),
            duration(busy),
            duration(run.end_ms - run.first_start_ms())
        );
        let width = path.iter().map(|&i| run.ops[i].address.len() + run.ops[i].action.len() + 1).max().unwrap_or(0);
        for &i in &path {
            let op = &run.ops[i];
            let name = format!("{} {}", op.action, op.address);
            let mark = match &op.outcome {
                Outcome::Completed => String::new(),
                Outcome::Errored(_) => "  FAILED".into(),
                Outcome::Unfinished => "  never finished".into(),
            };
            let _ = writeln!(
                out,
                "  {name:width$}  {:>8}  from +{}{mark}",
                duration(op.duration_ms()),
                duration(op.start_ms - run.first_start_ms())
            );
        }
    }
    for op in &run.ops {
        if let Outcome::Errored(error) = &op.outcome {
            let _ = writeln!(out, "\nFailed: {} {}: {error}", op.action, op.address);
        }
    }
    out
}

/// The run as one self-contained page: the summary, the critical path's
/// table, and the timeline (SVG, one row per operation in start order).
pub fn html(run: &Run) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let total = (run.end_ms - run.first_start_ms()).max(1);
    let title = format!("{} of {}: {}", run.operation, run.started_at, duration(run.end_ms - run.start_ms));
    super::html::head(&mut out, &title, RUN_STYLE);
    let failed: Vec<&RunOp> = run.ops.iter().filter(|o| matches!(o.outcome, Outcome::Errored(_))).collect();
    let _ = write!(out, "<p>{} operations", run.ops.len());
    if !failed.is_empty() {
        let _ = write!(out, ", <span class=\"delete\">{} failed</span>", failed.len());
    }
    if !run.skipped.is_empty() {
        let _ = write!(out, ", {} skipped", run.skipped.len());
    }
    out.push('.');
    if let Some(summary) = &run.summary {
        let _ = write!(out, " {}", esc(summary));
    }
    out.push_str("</p>\n");

    let path = critical_path(run);
    out.push_str("<h2>Critical path</h2>\n");
    if path.is_empty() {
        out.push_str("<p>None: this stream does not say what each operation waited for.</p>\n");
    } else {
        let busy: i64 = path.iter().map(|&i| run.ops[i].duration_ms()).sum();
        let _ = writeln!(
            out,
            "<p>The chain of operations, each waiting for the one before, that ends where the run ends: {} \
             operations running {} of the operations' {}; planning and checks took {} before the first.</p>\n<table><tr><th>operation</th><th class=\"n\">took</th>\
             <th class=\"n\">from</th></tr>",
            path.len(),
            duration(busy),
            duration(run.end_ms - run.first_start_ms()),
            duration(run.first_start_ms() - run.start_ms)
        );
        for &i in &path {
            let op = &run.ops[i];
            let _ = writeln!(
                out,
                "<tr><td><span class=\"{a}\">{a}</span> <code>{}</code>{}</td><td class=\"n\">{}</td><td class=\"n\">+{}</td></tr>",
                esc(&op.address),
                if matches!(op.outcome, Outcome::Errored(_)) { " <b class=\"delete\">failed</b>" } else { "" },
                duration(op.duration_ms()),
                duration(op.start_ms - run.first_start_ms()),
                a = esc(&op.action),
            );
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>Timeline</h2>\n<div class=\"timeline\">");
    out.push_str(&timeline_rows(run, &path, total));
    out.push_str(
        "</div>\n<p class=\"legend\"><span class=\"create\">create</span> <span class=\"update\">update</span> \
         <span class=\"delete\">delete</span>; <span class=\"crit\">outlined in blue: on the critical path</span>; \
         <span class=\"failed\">striped: failed</span>. One row per operation, in the order they started; the axis \
         starts with the first operation.</p>\n",
    );
    if !failed.is_empty() {
        out.push_str("<h2>Failed</h2>\n<ul>\n");
        for op in failed {
            if let Outcome::Errored(error) = &op.outcome {
                let _ = writeln!(out, "<li>{} <code>{}</code>: {}</li>", esc(&op.action), esc(&op.address), esc(error));
            }
        }
        out.push_str("</ul>\n");
    }
    if !run.skipped.is_empty() {
        out.push_str("<h2>Skipped</h2>\n<p>Not started: an operation they wait for failed.</p>\n<ul>\n");
        for (action, address) in &run.skipped {
            let _ = writeln!(out, "<li>{} <code>{}</code></li>", esc(action), esc(address));
        }
        out.push_str("</ul>\n");
    }
    let _ = write!(out, "<script>{RUN_SCRIPT}</script>\n</body></html>\n");
    out
}

const RUN_STYLE: &str = "td{overflow-wrap:anywhere}.crit{font-weight:600;color:#0969da}.failed{color:#cf222e;text-decoration:line-through}\
.timeline{border:1px solid #dde;padding:4px 8px}.axis{position:relative;height:1.3em;font-size:12px;color:#57606a;\
border-bottom:1px solid #dde;margin-bottom:4px}.axis span{position:absolute;top:0}\
.op{margin:3px 0 7px}.lbl{font-size:13px;overflow-wrap:anywhere}.op code{font-size:12px}.took{font-weight:600}\
.track{position:relative;height:11px;background:#f6f8fa}\
.bar{position:absolute;top:0;bottom:0;min-width:2px;border-radius:2px;box-sizing:border-box}\
.op.a-create .bar{background:#dafbe1;border:1px solid #1a7f37}.op.a-update .bar{background:#fff8c5;border:1px solid #9a6700}\
.op.a-delete .bar{background:#ffebe9;border:1px solid #cf222e}.op.on-path .bar{border:2px solid #0969da}\
.op.failed-op .bar{background:repeating-linear-gradient(45deg,#cf222e 0 3px,#ffebe9 3px 6px)}";

/// The page marks itself rendered (what the browser test reads).
const RUN_SCRIPT: &str = "document.documentElement.setAttribute('data-requests',\
String(performance.getEntriesByType('resource').length));\
document.documentElement.setAttribute('data-rendered','yes');";

/// A step of about a sixth of the run, rounded to 1, 2 or 5 of a power
/// of ten milliseconds.
fn tick_step(total_ms: i64) -> i64 {
    let rough = (total_ms / 6).max(1);
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if step * m >= rough {
                return step * m;
            }
        }
        step *= 10;
    }
}

/// The timeline as HTML boxes (not SVG: its text stays readable at any
/// width, a phone's included): per operation, its name and duration on
/// one line, then its bar placed in percent of the run.
fn timeline_rows(run: &Run, path: &[usize], total: i64) -> String {
    let zero = run.first_start_ms();
    let pct = |ms: i64| (ms - zero) as f64 * 100.0 / total as f64;
    let mut out = String::from("<div class=\"axis\">");
    let step = tick_step(total);
    let mut t = 0;
    while t <= total {
        let at = t as f64 * 100.0 / total as f64;
        // The last labels are anchored by their right end, to stay inside.
        let place = if at > 85.0 { format!("right:{:.2}%", 100.0 - at) } else { format!("left:{at:.2}%") };
        let _ = write!(out, "<span style=\"{place}\">{}</span>", duration(t));
        t += step;
    }
    out.push_str("</div>\n");
    for (i, op) in run.ops.iter().enumerate() {
        let critical = path.contains(&i);
        let failed = matches!(op.outcome, Outcome::Errored(_));
        let state = match &op.outcome {
            Outcome::Completed => String::new(),
            Outcome::Errored(_) => " <b class=\"delete\">failed</b>".into(),
            Outcome::Unfinished => " <b>never finished</b>".into(),
        };
        let (left, width) = (pct(op.start_ms), pct(op.end_ms) - pct(op.start_ms));
        let _ = writeln!(
            out,
            "<div class=\"op a-{action}{crit}{failc}\" data-op=\"{action} {a}\"{critd}{faild}>\
             <div class=\"lbl\"><span class=\"{action}\">{sign}</span> <code>{a}</code> <span class=\"took\">{took}</span> <small>from +{from}</small>{state}\
             {cp}</div><div class=\"track\"><div class=\"bar\" style=\"left:{left:.2}%;width:{width:.2}%\"></div></div></div>",
            action = esc(&op.action),
            a = esc(&op.address),
            crit = if critical { " on-path" } else { "" },
            failc = if failed { " failed-op" } else { "" },
            critd = if critical { " data-critical=\"\"" } else { "" },
            faild = if failed { " data-failed=\"\"" } else { "" },
            sign = match op.action.as_str() {
                "create" => "+",
                "update" => "~",
                _ => "−",
            },
            took = duration(op.duration_ms()),
            from = duration(op.start_ms - run.first_start_ms()),
            cp = if critical { " <small class=\"crit\">critical path</small>" } else { "" },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `(at_ms, line)` events, times from 06:40:00.000.
    fn stream(events: &[(i64, &str)]) -> String {
        let mut out = String::new();
        for (at, rest) in events {
            let stamp = format!("2026-12-02T06:{:02}:{:02}.{:03}Z", 40 + at / 60_000, (at / 1000) % 60, at % 1000);
            let _ = writeln!(out, "{{\"@timestamp\":\"{stamp}\",{rest}}}");
        }
        out
    }

    fn start(address: &str, action: &str, deps: &[(&str, &str)]) -> String {
        let deps: Vec<String> =
            deps.iter().map(|(a, k)| format!("{{\"address\":\"{a}\",\"action\":\"{k}\"}}")).collect();
        format!(
            "\"type\":\"apply_start\",\"address\":\"{address}\",\"hook\":{{\"action\":\"{action}\",\"depends_on\":[{}]}}",
            deps.join(",")
        )
    }

    fn complete(address: &str, action: &str) -> String {
        format!("\"type\":\"apply_complete\",\"address\":\"{address}\",\"hook\":{{\"action\":\"{action}\"}}")
    }

    fn errored(address: &str, action: &str, error: &str) -> String {
        format!(
            "\"type\":\"apply_errored\",\"address\":\"{address}\",\"hook\":{{\"action\":\"{action}\",\"error\":\"{error}\"}}"
        )
    }

    const VERSION: &str = "\"type\":\"version\",\"skyplan\":\"0.1.0\",\"ui\":\"1.0\"";

    fn names(run: &Run, path: &[usize]) -> Vec<String> {
        path.iter().map(|&i| format!("{} {}", run.ops[i].action, run.ops[i].address)).collect()
    }

    /// vpc, then two parallel branches: a slow NAT gateway (its EIP first)
    /// and a quick subnet; the route waits for both and ends the run.
    #[test]
    fn the_critical_path_follows_the_branch_that_was_waited_for() {
        let text = stream(&[
            (0, VERSION),
            (10, &start("t.vpc", "create", &[])),
            (1_000, &complete("t.vpc", "create")),
            (1_010, &start("t.eip", "create", &[])),
            (1_020, &start("t.subnet", "create", &[("t.vpc", "create")])),
            (1_500, &complete("t.eip", "create")),
            (1_600, &complete("t.subnet", "create")),
            (1_610, &start("t.nat", "create", &[("t.subnet", "create"), ("t.eip", "create")])),
            (1_620, &start("t.sg", "create", &[("t.vpc", "create")])),
            (2_000, &complete("t.sg", "create")),
            (120_000, &complete("t.nat", "create")),
            (120_010, &start("t.route", "create", &[("t.nat", "create"), ("t.sg", "create")])),
            (121_000, &complete("t.route", "create")),
            (
                121_005,
                "\"type\":\"change_summary\",\"@message\":\"Apply complete!\",\"changes\":{\"operation\":\"apply\"}",
            ),
        ]);
        assert!(is_event_stream(&text));
        let run = parse(&text).unwrap();
        assert_eq!(run.ops.len(), 6);
        assert_eq!(run.end_ms - run.start_ms, 121_005);
        let path = critical_path(&run);
        assert_eq!(names(&run, &path), ["create t.vpc", "create t.subnet", "create t.nat", "create t.route"]);
        let nat = &run.ops[path[2]];
        assert_eq!(nat.duration_ms(), 118_390);
        let summary = text_of(&run);
        assert!(summary.contains("apply started 2026-12-02T06:40:00.000Z: 6 operations in 2m 01s."), "{summary}");
        assert!(summary.contains("  create t.nat       1m 58s  from +1.6s\n"), "{summary}");
        assert!(
            summary.contains("Planning and checks: 0.0s before the first operation; operations: 2m 00s."),
            "{summary}"
        );
        assert!(!summary.contains("t.eip  "), "the quicker branch is not on the path: {summary}");
    }

    fn text_of(run: &Run) -> String {
        text(run)
    }

    /// A failed operation ends the run: the path leads to it, the skipped
    /// ones are listed, and the page marks it.
    #[test]
    fn a_failure_at_the_end_is_where_the_critical_path_leads() {
        let text = stream(&[
            (0, VERSION),
            (5, &start("t.a", "create", &[])),
            (6, &start("t.b", "create", &[])),
            (300, &complete("t.b", "create")),
            (900, &complete("t.a", "create")),
            (905, &start("t.c", "create", &[("t.a", "create"), ("t.b", "create")])),
            (4_000, &errored("t.c", "create", "quota <exceeded>")),
            (4_001, "\"type\":\"apply_skipped\",\"address\":\"t.d\",\"hook\":{\"action\":\"create\"}"),
        ]);
        let run = parse(&text).unwrap();
        let path = critical_path(&run);
        assert_eq!(names(&run, &path), ["create t.a", "create t.c"]);
        assert_eq!(run.ops[path[1]].outcome, Outcome::Errored("quota <exceeded>".into()));
        assert_eq!(run.skipped, [("create".to_string(), "t.d".to_string())]);
        let words = text_of(&run);
        assert!(words.contains("(1 failed, 1 skipped)") && words.contains("FAILED"), "{words}");
        let page = html(&run);
        assert!(page.contains("data-op=\"create t.c\" data-critical=\"\" data-failed=\"\""), "{page}");
        assert!(page.contains("<div class=\"op a-create on-path failed-op\""), "{page}");
        assert!(page.contains("quota &lt;exceeded&gt;") && !page.contains("<exceeded>"));
        assert!(page.contains("default-src 'none'"));
        for fetch in ["src=", "href=", "@import", "url(http"] {
            assert!(!page.contains(fetch), "{fetch} in the page");
        }
    }

    /// A replace: the delete of the old object, then the create of the new
    /// one waiting for it (same address, two operations); and a run cut
    /// short: the operation never finished runs to the last line.
    #[test]
    fn a_replace_is_two_operations_and_an_unfinished_one_runs_to_the_end() {
        let text = stream(&[
            (0, VERSION),
            (10, &start("t.x", "delete", &[])),
            (400, &complete("t.x", "delete")),
            (410, &start("t.x", "create", &[("t.x", "delete")])),
            (420, &start("t.y", "update", &[])),
            (430, &complete("t.y", "update")),
            (2_000, "\"type\":\"apply_progress\",\"address\":\"t.x\",\"hook\":{\"action\":\"create\"}"),
        ]);
        let run = parse(&text).unwrap();
        let path = critical_path(&run);
        assert_eq!(names(&run, &path), ["delete t.x", "create t.x"]);
        assert_eq!(run.ops[path[1]].outcome, Outcome::Unfinished);
        assert_eq!(run.ops[path[1]].end_ms - run.start_ms, 2_000);
    }

    #[test]
    fn a_stream_without_dependencies_has_no_critical_path_and_says_so() {
        let text = stream(&[
            (0, VERSION),
            (1, "\"type\":\"apply_start\",\"address\":\"t.a\",\"hook\":{\"action\":\"create\"}"),
            (9, &complete("t.a", "create")),
        ]);
        let run = parse(&text).unwrap();
        assert!(critical_path(&run).is_empty());
        assert!(text_of(&run).contains("No critical path"));
    }

    #[test]
    fn bad_streams_are_refused_with_the_line() {
        assert!(!is_event_stream("{\"format_version\":\"1\"}\n"));
        assert!(!is_event_stream(""));
        let e = parse(&stream(&[(0, VERSION)]).replace('\n', "\n{oops\n")).unwrap_err();
        assert!(e.starts_with("2:2:"), "{e}");
        let e = parse(&stream(&[(0, VERSION), (5, &complete("t.a", "create"))])).unwrap_err();
        assert!(e.starts_with("2:1:") && e.contains("never started"), "{e}");
    }

    #[test]
    fn timestamps_are_read_as_the_stream_writes_them() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(parse_timestamp("2026-12-02T06:40:01.123Z"), Some(1_796_193_601_123));
        assert_eq!(parse_timestamp("2026-12-02T06:40:01.123+01:00"), None);
        assert_eq!(duration(125_000), "2m 05s");
        assert_eq!(tick_step(121_005), 50_000);
    }
}
