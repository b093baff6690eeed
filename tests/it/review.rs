//! Plans a reviewer can approve, end to end: a cluster applied on the
//! emulator, then one change at a time (control-plane instance type, worker
//! instance type, a pool scaled down and up, control plane 3 -> 1, an AZ
//! removed, the cluster renamed), each plan's risks and cost checked; the
//! saved plan's Markdown comment and HTML page, the page rendered in a real
//! headless Chromium (console errors, requests).

#![cfg_attr(not(feature = "aws"), allow(dead_code))]

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::Workdir;

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dynamic-cluster.toml")).unwrap()
}

#[track_caller]
fn edit(spec: &str, from: &str, to: &str) -> String {
    assert!(spec.contains(from), "the example no longer has {from:?}");
    spec.replacen(from, to, 1)
}

/// The (kind, address) pairs of a plan's risks.
fn risks(plan: &Value) -> BTreeSet<(String, String)> {
    plan["risks"]
        .as_array()
        .expect("risks is a list")
        .iter()
        .map(|r| {
            let message = r["message"].as_str().unwrap();
            assert!(message.ends_with('.') && !message.contains('\n'), "one sentence: {message}");
            (r["kind"].as_str().unwrap().to_string(), r["address"].as_str().unwrap().to_string())
        })
        .collect()
}

fn kinds(plan: &Value) -> BTreeSet<String> {
    risks(plan).into_iter().map(|(k, _)| k).collect()
}

/// `monthly_after - monthly_before`, in cents.
fn cost_change(plan: &Value) -> i64 {
    let cost = &plan["cost"];
    assert_eq!(cost["currency"], "USD");
    let cents = |v: &Value| (v.as_f64().unwrap() * 100.0).round() as i64;
    cents(&cost["monthly_after"]) - cents(&cost["monthly_before"])
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter().map(|(k, a)| (k.to_string(), a.to_string())).collect()
}

#[cfg(feature = "aws")]
#[test]
fn each_change_to_a_running_cluster_names_its_risks_and_prices_its_cost() {
    use crate::emulator::Emulator;

    let emulator = Emulator::start();
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let spec = example();
    w.write("demo.toml", &spec);
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();

    // What is running, seen by a client that is not skyplan.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let nats = rt.block_on(ec2.describe_nat_gateways().send()).unwrap();
    assert_eq!(nats.nat_gateways().len(), 3);

    let plan = |text: &str| -> Value {
        w.write("demo.toml", text);
        let run = w.run(&["plan", "demo.toml", "--json"]).ok();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    };

    // Unchanged: no risk, the same cost before and after, and that cost is
    // the example's: bastion t3.micro + 20 GiB + IPv4 (12.842), 3 x m5.large
    // + 60 GiB (224.64), 3 x m5.xlarge + 100 GiB (444.48), 3 NAT gateways
    // (98.55), 3 Elastic IPs (10.95), the ELB and its 3 addresses (29.2).
    let same = plan(&spec);
    assert_eq!(risks(&same), BTreeSet::new());
    assert_eq!(same["cost"]["monthly_before"], 820.66, "{}", same["cost"]);
    assert_eq!(cost_change(&same), 0);

    // The control plane's instance type: the three nodes roll, one at a time.
    let p = plan(&edit(&spec, "instance_type = \"m5.large\"", "instance_type = \"m5.2xlarge\""));
    assert_eq!(
        risks(&p),
        pairs(&[
            ("control-plane-roll", "aws_instance.control_plane[0]"),
            ("control-plane-roll", "aws_instance.control_plane[1]"),
            ("control-plane-roll", "aws_instance.control_plane[2]"),
        ])
    );
    assert_eq!(cost_change(&p), 63_072, "3 x (0.384 - 0.096) x 730");
    let replaced =
        p["changes"].as_array().unwrap().iter().find(|c| c["address"] == "aws_instance.control_plane[0]").unwrap();
    assert_eq!(replaced["actions"], serde_json::json!(["create", "delete"]), "a rolling group creates first");
    assert_eq!(replaced["replace_paths"], serde_json::json!([["instance_type"]]));
    assert_eq!(replaced["after_unknown"]["id"], true);
    assert_eq!(replaced["action"], "replace", "the contract's field stays");
    // Saved, for the reports below.
    w.run(&["plan", "demo.toml", "--out", "cp.plan"]).ok();

    // The workers' instance type: the pool rolls onto the new template.
    let p = plan(&edit(&spec, "instance_type = \"m5.xlarge\"", "instance_type = \"m5.2xlarge\""));
    assert_eq!(risks(&p), pairs(&[("worker-roll", "aws_launch_template.pool[worker]")]));
    assert_eq!(cost_change(&p), 42_048, "3 x (0.384 - 0.192) x 730");

    // The pool scaled down, then up.
    let p = plan(&edit(&spec, "size = 3\nmin = 3", "size = 1\nmin = 1"));
    assert_eq!(risks(&p), pairs(&[("capacity-drop", "aws_autoscaling_group.pool[worker]")]));
    assert_eq!(cost_change(&p), -29_632, "2 x (0.192 x 730 + 100 x 0.08)");
    let p = plan(&edit(&spec, "size = 3\nmin = 3", "size = 5\nmin = 5"));
    assert_eq!(risks(&p), BTreeSet::new());
    assert_eq!(cost_change(&p), 29_632);

    // The control plane 3 -> 1: etcd's quorum.
    let p = plan(&edit(&spec, "control_plane = true\nsize = 3", "control_plane = true\nsize = 1"));
    assert_eq!(
        risks(&p),
        pairs(&[
            ("quorum-change", "aws_instance.control_plane[1]"),
            ("quorum-change", "aws_instance.control_plane[2]")
        ])
    );
    assert_eq!(cost_change(&p), -14_976, "2 x (0.096 x 730 + 60 x 0.08)");

    // An AZ removed: its NAT gateway (the egress address), subnets and route.
    let p = plan(&edit(&spec, "\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"", "\"us-east-1a\", \"us-east-1b\""));
    let found = risks(&p);
    for expected in [
        ("egress-ip-change", "aws_nat_gateway.main[us-east-1c]"),
        ("egress-ip-change", "aws_eip.nat[us-east-1c]"),
        ("network-change", "aws_subnet.private[us-east-1c]"),
        ("network-change", "aws_subnet.public[us-east-1c]"),
        ("network-change", "aws_route_table.private[us-east-1c]"),
    ] {
        assert!(found.contains(&(expected.0.to_string(), expected.1.to_string())), "{expected:?} not in {found:?}");
    }
    assert_eq!(cost_change(&p), -4_015, "a NAT gateway, its Elastic IP and one ELB address: (0.045 + 2 x 0.005) x 730");

    // The cluster renamed: new load balancer name (endpoint), new pool group.
    let p = plan(&edit(&spec, "name = \"demo\"", "name = \"prod\""));
    let found = kinds(&p);
    for kind in ["api-endpoint-change", "worker-roll"] {
        assert!(found.contains(kind), "{kind} not in {found:?}");
    }
    assert_eq!(cost_change(&p), 0, "the same resources under new names");

    // The saved plan's reports.
    let md = w.run(&["show", "cp.plan", "--format", "markdown"]).ok().stdout;
    assert!(md.chars().count() <= 65_535);
    assert!(md.starts_with("### skyplan plan: 0 to add, 0 to change, 3 to replace, 0 to destroy"), "{md}");
    assert!(
        md.find("**control-plane-roll**").unwrap() < md.find("**Monthly cost:** $820.66 → $1,451.38").unwrap(),
        "{md}"
    );
    assert!(md.contains("#### control plane (3 changes)"), "{md}");
    let shown: Value = serde_json::from_str(&w.run(&["show", "cp.plan", "--json"]).ok().stdout).unwrap();
    assert_eq!(risks(&shown).len(), 3);
    assert_eq!(cost_change(&shown), 63_072);
    let human = w.run(&["show", "cp.plan"]).ok().stdout;
    let risks_at = human.find("control-plane-roll").expect("risks in the human plan");
    assert!(risks_at < human.find("Plan: 0 to add").unwrap());
    assert!(human.contains("$820.66 before, $1,451.38 after (+$630.72 a month)"), "{human}");

    let html = w.run(&["show", "cp.plan", "--format", "html"]).ok().stdout;
    let page = w.write("cp.html", &html);
    let dom = render_in_chromium(&page, &w.path("chromium-profile"));
    assert!(dom.contains("control-plane-roll") && dom.contains("<svg"), "{dom}");
}

/// A saved plan of the simulated cloud as an HTML page, rendered by
/// Chromium: no console error, no request, the graph drawn.
#[test]
fn the_html_report_renders_in_a_real_browser_without_errors_or_requests() {
    let w = Workdir::new();
    w.write(
        "sim.toml",
        r#"
[resource.sim_resource.net]
cidr = "10.0.0.0/16"
[resource.sim_resource.subnet]
parent = "${sim_resource.net.id}"
note = "<img src=http://127.0.0.1:9/x.png> and https://example.invalid/"
[resource.sim_resource.node]
subnet = "${sim_resource.subnet.id}"
"#,
    );
    w.run(&["plan", "sim.toml", "--out", "sim.plan"]).ok();
    let html = w.run(&["show", "sim.plan", "--format", "html"]).ok().stdout;
    let page = w.write("sim.html", &html);
    let dom = render_in_chromium(&page, &w.path("chromium-profile"));
    assert!(dom.contains("data-address=\"sim_resource.node\""), "{dom}");
    assert!(dom.contains("3 to add"));
}

/// A real `apply --json` of the simulated cloud with delays, saved, then
/// shown as a run: the critical path in words follows the slow branch (the
/// "NAT gateway"), `--json` gives the same path, and the page renders in
/// Chromium without errors or requests; a failed run marks its failure.
#[test]
fn a_saved_run_shows_its_timeline_and_critical_path_in_a_real_browser() {
    let w = Workdir::new();
    let spec = r#"
[resource.sim_resource.vpc]
delay_ms = 200
[resource.sim_resource.eip]
delay_ms = 100
[resource.sim_resource.subnet]
parent = "${sim_resource.vpc.id}"
delay_ms = 200
[resource.sim_resource.nat]
subnet = "${sim_resource.subnet.id}"
eip = "${sim_resource.eip.id}"
delay_ms = 1500
[resource.sim_resource.sg]
parent = "${sim_resource.vpc.id}"
delay_ms = 200
[resource.sim_resource.node]
sg = "${sim_resource.sg.id}"
subnet = "${sim_resource.subnet.id}"
delay_ms = 600
[resource.sim_resource.route]
nat = "${sim_resource.nat.id}"
delay_ms = 100
"#;
    w.write("sim.toml", spec);
    let run = w.run(&["apply", "sim.toml", "--auto-approve", "--json"]).ok().stdout;
    let start: Value = serde_json::from_str(
        run.lines().find(|l| l.contains("\"apply_start\"") && l.contains("sim_resource.nat")).unwrap(),
    )
    .unwrap();
    let deps: BTreeSet<&str> = start["hook"]["depends_on"]
        .as_array()
        .expect("apply_start says what it waited for")
        .iter()
        .map(|d| {
            assert_eq!(d["action"], "create");
            d["address"].as_str().unwrap()
        })
        .collect();
    assert_eq!(deps, BTreeSet::from(["sim_resource.eip", "sim_resource.subnet"]));
    w.write("run.jsonl", &run);

    let text = w.run(&["show", "run.jsonl"]).ok().stdout;
    let path: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Critical path: 4 operations"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(path, ["sim_resource.vpc", "sim_resource.subnet", "sim_resource.nat", "sim_resource.route"], "{text}");
    assert!(text.contains("apply started ") && text.contains(": 7 operations in "), "{text}");
    let shown: Value = serde_json::from_str(&w.run(&["show", "run.jsonl", "--json"]).ok().stdout).unwrap();
    let ops = shown["operations"].as_array().unwrap();
    let on_path: Vec<&str> = shown["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| ops[i.as_u64().unwrap() as usize]["address"].as_str().unwrap())
        .collect();
    assert_eq!(on_path, path);
    let nat = ops.iter().find(|o| o["address"] == "sim_resource.nat").unwrap();
    assert!(nat["elapsed_seconds"].as_f64().unwrap() >= 1.5, "{nat}");

    let page = w.write("run.html", &w.run(&["show", "run.jsonl", "--format", "html"]).ok().stdout);
    let dom = render_in_chromium(&page, &w.path("chromium-profile"));
    assert_eq!(dom.matches("data-critical=\"\"").count(), 4, "{dom}");
    assert!(dom.contains("data-op=\"create sim_resource.nat\" data-critical"), "{dom}");
    assert_eq!(dom.matches("data-op=").count(), 7);

    // A destroy's run: each delete waits for those of what used it, so the
    // path runs from the route through the slow NAT gateway to the VPC.
    let destroyed = w.run(&["destroy", "sim.toml", "--auto-approve", "--json"]).ok().stdout;
    w.write("destroy.jsonl", &destroyed);
    let text = w.run(&["show", "destroy.jsonl"]).ok().stdout;
    assert!(text.starts_with("destroy started "), "{text}");
    let path: Vec<&str> =
        text.lines().filter(|l| l.starts_with("  delete ")).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(path, ["sim_resource.route", "sim_resource.nat", "sim_resource.subnet", "sim_resource.vpc"], "{text}");

    // A run that fails half-way: the failure is where the path ends.
    w.write(
        "bad.toml",
        &format!("{spec}fail = \"create\"\n[resource.sim_resource.after]\nafter = \"${{sim_resource.route.id}}\"\n"),
    );
    let failed = w.run(&["apply", "bad.toml", "--auto-approve", "--json", "--state", "bad.state.json"]).code(1).stdout;
    w.write("failed.jsonl", &failed);
    let text = w.run(&["show", "failed.jsonl"]).ok().stdout;
    assert!(text.contains("(1 failed, 1 skipped)"), "{text}");
    assert!(text.contains("create sim_resource.route") && text.contains("FAILED"), "{text}");
    let page = w.write("failed.html", &w.run(&["show", "failed.jsonl", "--format", "html"]).ok().stdout);
    let dom = render_in_chromium(&page, &w.path("chromium-profile-2"));
    assert!(dom.contains("data-op=\"create sim_resource.route\" data-critical=\"\" data-failed=\"\""), "{dom}");

    // Not a stream: a plan file is still read as one, a broken stream named.
    w.write("broken.jsonl", &format!("{}\nnot json\n", run.lines().next().unwrap()));
    let err = w.run(&["show", "broken.jsonl"]).code(1).stderr;
    assert!(err.contains("broken.jsonl:2:"), "{err}");
}

/// Chromium from `scripts/browser.sh path`; a test that needs it fails
/// when it is missing (scripts/test.sh installs it).
fn chromium() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/browser.sh");
    let out = Command::new(script).arg("path").output().expect("run scripts/browser.sh");
    assert!(
        out.status.success(),
        "no Chromium: run scripts/browser.sh install (scripts/test.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Render `page` headless and return its DOM after the scripts ran. Fails
/// on a console message, on a script that did not finish, on a resource the
/// page loaded, and on any request the browser sends through the proxy it
/// is pointed at (a listener of this test on 127.0.0.1; loopback included)
/// other than Chromium's own background calls to Google's hosts (network
/// time, sign-in), which no flag fully silences and no page causes.
fn render_in_chromium(page: &Path, profile: &Path) -> String {
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = proxy.local_addr().unwrap();
    proxy.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut requests = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match proxy.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 1024];
                        let n = conn.read(&mut buf).unwrap_or(0);
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        requests.push(text.lines().next().unwrap_or("(no request line)").to_string());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            requests
        })
    };
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--proxy-server=http://{address}"),
            "--proxy-bypass-list=<-loopback>",
            &format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    stop.store(true, Ordering::SeqCst);
    let requests = seen.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "chromium failed: {stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(dom.contains("data-rendered=\"yes\""), "the page's script did not finish:\n{stderr}\n{dom}");
    assert!(dom.contains("data-requests=\"0\""), "the page loaded resources: {dom}");
    let browser_own = |line: &str| {
        let target = line.split_whitespace().nth(1).unwrap_or("");
        let host = target.trim_start_matches("http://").split(['/', ':']).next().unwrap_or("");
        host.ends_with(".google.com") || host.ends_with(".googleapis.com") || host.ends_with(".gstatic.com")
    };
    let from_page: Vec<&String> = requests.iter().filter(|r| !browser_own(r)).collect();
    assert!(from_page.is_empty(), "the page made requests: {from_page:?}");
    dom
}
