//! The command line a Terraform user expects, end to end on the simulated
//! cloud: `--target`, `--replace`, `--refresh-only`, `state mv`, `import`,
//! the `--json` event stream, progress lines off a terminal, durations with
//! units, completions and the man page, and diagnostics as a compiler
//! prints them (golden files in tests/it/golden/).

use std::collections::BTreeSet;

use serde_json::Value;
use skyplan_sim::SimProvider;

use crate::sim::SPEC;
use crate::support::Workdir;

fn sim(w: &Workdir) -> SimProvider {
    SimProvider::open(&w.path("spec.state.json.sim.json")).expect("the simulated cloud opens")
}

/// The simulated cloud as stored (its snapshot and its journal): equal
/// before and after means nothing in the cloud changed.
fn cloud_bytes(w: &Workdir) -> Vec<u8> {
    let mut out = Vec::new();
    for name in ["spec.state.json.sim.json", "spec.state.json.sim.json.log"] {
        out.extend(std::fs::read(w.path(name)).unwrap_or_default());
    }
    assert!(!out.is_empty(), "the simulated cloud is stored");
    out
}

fn recorded(w: &Workdir) -> Vec<String> {
    w.json("spec.state.json")["resources"].as_object().unwrap().keys().cloned().collect()
}

fn id_of(w: &Workdir, address: &str) -> String {
    w.json("spec.state.json")["resources"][address]["id"].as_str().unwrap().to_string()
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/it/golden/{name}", env!("CARGO_MANIFEST_DIR"))).expect("golden file")
}

#[test]
fn target_plans_and_applies_a_resource_with_its_dependencies_only() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    let plan = w.run(&["plan", "spec.toml", "--target", "sim_resource.subnet"]).ok();
    assert!(plan.stdout.contains("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy."), "{}", plan.stdout);
    assert!(!plan.stdout.contains("sim_resource.node"), "{}", plan.stdout);
    assert!(plan.stderr.contains("Resource targeting is in effect"), "{}", plan.stderr);
    assert!(plan.stderr.contains("exceptional cases"), "{}", plan.stderr);

    w.run(&["apply", "spec.toml", "--auto-approve", "--target", "sim_resource.subnet"]).ok();
    assert_eq!(recorded(&w), ["sim_resource.net", "sim_resource.subnet"]);
    assert_eq!(sim(&w).snapshot().resources.len(), 2);

    // The rest follows without a target; then a targeted destroy takes the
    // target and what depends on it, nothing else.
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let out = w.run(&["destroy", "spec.toml", "--auto-approve", "--target", "sim_resource.subnet"]).ok();
    assert!(out.stdout.contains("2 destroyed"), "{}", out.stdout);
    assert_eq!(recorded(&w), ["sim_resource.monitor", "sim_resource.net"]);

    // A typo is an error with a suggestion, and nothing is planned.
    let typo = w.run(&["plan", "spec.toml", "--target", "sim_resource.nett"]).code(1);
    assert!(typo.stderr.contains("did you mean sim_resource.net?"), "{}", typo.stderr);
    let bad = w.run(&["plan", "spec.toml", "--target", "not an address"]).code(1);
    assert!(bad.stderr.contains("--target not an address"), "{}", bad.stderr);
}

#[test]
fn replace_forces_a_replacement_of_an_unchanged_resource() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let old = id_of(&w, "sim_resource.net");
    let plan = w.run(&["plan", "spec.toml", "--replace", "sim_resource.net", "--detailed-exitcode"]).code(2);
    assert!(plan.stdout.contains("# sim_resource.net will be replaced, as requested"), "{}", plan.stdout);
    assert!(plan.stdout.contains("1 to replace"), "{}", plan.stdout);
    w.run(&["apply", "spec.toml", "--auto-approve", "--replace", "sim_resource.net"]).ok();
    let new = id_of(&w, "sim_resource.net");
    assert_ne!(new, old);
    assert_eq!(w.json("spec.state.json")["resources"]["sim_resource.subnet"]["inputs"]["parent"], new.as_str());
    assert!(!sim(&w).snapshot().resources.contains_key(&old), "the old object is gone from the cloud");
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
    let missing = w.run(&["plan", "spec.toml", "--replace", "sim_resource.nope"]).code(1);
    assert!(missing.stderr.contains("--replace sim_resource.nope"), "{}", missing.stderr);
}

#[test]
fn refresh_only_records_drift_and_changes_nothing_in_the_cloud() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    w.run(&["plan", "spec.toml", "--refresh-only", "--detailed-exitcode"]).ok();

    // Someone changes the net in the console.
    let net = id_of(&w, "sim_resource.net");
    sim(&w)
        .rewrite(|c| {
            c.resources.get_mut(&net).unwrap().attrs.insert("cidr".into(), "10.9.0.0/16".into());
        })
        .unwrap();
    let cloud = cloud_bytes(&w);
    let state = std::fs::read(w.path("spec.state.json")).unwrap();

    let plan = w.run(&["plan", "spec.toml", "--refresh-only", "--detailed-exitcode"]).code(2);
    assert!(plan.stdout.contains("sim_resource.net changed outside skyplan: cidr"), "{}", plan.stdout);
    assert!(plan.stdout.contains("refresh-only"), "{}", plan.stdout);
    let json = w.run(&["plan", "spec.toml", "--refresh-only", "--json"]).ok();
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["resource_drift"][0]["address"], "sim_resource.net");
    assert_eq!(v["summary"]["update"], 0);
    assert_eq!(std::fs::read(w.path("spec.state.json")).unwrap(), state, "plan records nothing");

    let apply = w.run(&["apply", "spec.toml", "--refresh-only", "--auto-approve"]).ok();
    assert!(apply.stdout.contains("Refresh complete!"), "{}", apply.stdout);
    assert_eq!(w.json("spec.state.json")["resources"]["sim_resource.net"]["attributes"]["cidr"], "10.9.0.0/16");
    assert_eq!(cloud_bytes(&w), cloud, "the cloud is untouched");
    w.run(&["plan", "spec.toml", "--refresh-only", "--detailed-exitcode"]).ok();
    // The ordinary plan now wants the spec's value back.
    let plan = w.run(&["plan", "spec.toml"]).ok();
    assert!(plan.stdout.contains("~ cidr"), "{}", plan.stdout);
}

#[test]
fn state_mv_renames_an_address_without_touching_the_cloud() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let cloud = cloud_bytes(&w);
    let id = id_of(&w, "sim_resource.net");
    let out = w.run(&["state", "mv", "sim_resource.net", "sim_resource.network"]).ok();
    assert!(out.stdout.contains("Moved sim_resource.net to sim_resource.network"), "{}", out.stdout);
    assert_eq!(id_of(&w, "sim_resource.network"), id);
    let deps = &w.json("spec.state.json")["resources"]["sim_resource.subnet"]["dependencies"];
    assert_eq!(deps, &serde_json::json!(["sim_resource.network"]), "dependents follow the move");
    assert_eq!(cloud_bytes(&w), cloud);
    // With the spec renamed too, nothing is left to do.
    w.write(
        "spec.toml",
        &SPEC
            .replace("sim_resource.net]", "sim_resource.network]")
            .replace("sim_resource.net.id", "sim_resource.network.id")
            .replace("\"sim_resource.net\"", "\"sim_resource.network\""),
    );
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();

    let taken = w.run(&["state", "mv", "sim_resource.node", "sim_resource.subnet"]).code(1);
    assert!(taken.stderr.contains("already in the state"), "{}", taken.stderr);
    let other_type = w.run(&["state", "mv", "sim_resource.node", "other_kind.node"]).code(1);
    assert!(other_type.stderr.contains("keeps its type"), "{}", other_type.stderr);
}

#[test]
fn import_adopts_a_resource_and_the_next_plan_shows_the_difference() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let id = id_of(&w, "sim_resource.net");
    w.run(&["state", "rm", "sim_resource.net"]).ok();
    w.write("spec.toml", &SPEC.replace("10.0.0.0/16", "10.1.0.0/16"));
    let cloud = cloud_bytes(&w);

    let out = w.run(&["import", "sim_resource.net", &id, "--spec", "spec.toml"]).ok();
    assert!(out.stdout.contains(&format!("Imported sim_resource.net ({id})")), "{}", out.stdout);
    assert_eq!(cloud_bytes(&w), cloud, "import writes nothing to the cloud");
    let plan = w.run(&["plan", "spec.toml"]).ok();
    assert!(plan.stdout.contains("~ cidr     = \"10.0.0.0/16\" -> \"10.1.0.0/16\""), "{}", plan.stdout);
    assert!(plan.stdout.contains("0 to add"), "{}", plan.stdout);

    // Again: already managed. An unknown id, or an address not in the spec: errors, nothing written.
    let again = w.run(&["import", "sim_resource.net", &id, "--spec", "spec.toml"]).code(1);
    assert!(again.stderr.contains("already in the state"), "{}", again.stderr);
    w.run(&["state", "rm", "sim_resource.monitor"]).ok();
    let state = std::fs::read(w.path("spec.state.json")).unwrap();
    let gone = w.run(&["import", "sim_resource.monitor", "sim-999", "--spec", "spec.toml"]).code(1);
    assert!(gone.stderr.contains("no sim_resource with id sim-999"), "{}", gone.stderr);
    let undeclared = w.run(&["import", "sim_resource.monitr", &id, "--spec", "spec.toml"]).code(1);
    assert!(undeclared.stderr.contains("did you mean sim_resource.monitor?"), "{}", undeclared.stderr);
    assert_eq!(std::fs::read(w.path("spec.state.json")).unwrap(), state);
}

/// Lines of an event stream with what changes run to run (times, ids,
/// elapsed) replaced, for comparison with a golden file.
fn normalized(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let stamp = v["@timestamp"].as_str().expect("every line has a timestamp").to_string();
            humantime::parse_rfc3339(&stamp).expect("RFC 3339 timestamps");
            v["@timestamp"] = "T".into();
            let message = v["@message"].as_str().unwrap().to_string();
            v["@message"] = message.split(" after ").next().unwrap().into();
            if v["type"] == "version" {
                v["skyplan"] = "V".into();
                v["@message"] = "skyplan V".into();
            }
            if let Some(hook) = v.get_mut("hook").and_then(Value::as_object_mut) {
                if let Some(started) = hook.get("started_at") {
                    let started = humantime::parse_rfc3339(started.as_str().unwrap()).unwrap();
                    assert!(started <= humantime::parse_rfc3339(&stamp).unwrap(), "starts before it ends");
                    hook.insert("started_at".into(), "T".into());
                }
                if hook.contains_key("elapsed_seconds") {
                    hook.insert("elapsed_seconds".into(), 0.into());
                }
                if hook.get("id_value").is_some_and(Value::is_string) {
                    hook.insert("id_value".into(), "ID".into());
                }
            }
            v
        })
        .collect()
}

#[test]
fn apply_and_destroy_json_stream_events_one_object_a_line() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    let out = w.run(&["apply", "spec.toml", "--auto-approve", "--json", "--parallelism", "1"]).ok();
    let events = normalized(&out.stdout);
    let expected: Vec<Value> =
        golden("apply_events.jsonl").lines().map(|l| serde_json::from_str(l).expect("golden line")).collect();
    if events != expected {
        let got: Vec<String> = events.iter().map(Value::to_string).collect();
        panic!("the stream differs from tests/it/golden/apply_events.jsonl; got:\n{}", got.join("\n"));
    }

    let out = w.run(&["destroy", "spec.toml", "--auto-approve", "--json"]).ok();
    let events = normalized(&out.stdout);
    let types: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, BTreeSet::from(["version", "planned_change", "apply_start", "apply_complete", "change_summary"]));
    let summary = events.last().unwrap();
    assert_eq!(summary["changes"]["remove"], 4, "{summary}");
    assert_eq!(summary["changes"]["operation"], "destroy");

    // A failure is an apply_errored event and a diagnostic, still JSON.
    w.write("spec.toml", &SPEC.replace("size = 3", "size = 3\nfail = \"create\""));
    let out = w.run(&["apply", "spec.toml", "--auto-approve", "--json"]).code(1);
    let events = normalized(&out.stdout);
    let errored = events.iter().find(|e| e["type"] == "apply_errored").expect("apply_errored");
    assert_eq!(errored["address"], "sim_resource.node");
    assert_eq!(errored["hook"]["error"], "injected failure: create of sim_resource.node fails (fail = \"create\")");
    assert!(events.iter().any(|e| e["type"] == "diagnostic" && e["@level"] == "error"));

    // Bad input: JSON diagnostics with the place, and nothing else on stdout.
    w.write("bad.toml", "[resource.sim_resource.a]\nx = \"${sim_resource.b.id}\"\n");
    let out = w.run(&["apply", "bad.toml", "--auto-approve", "--json"]).code(1);
    let events = normalized(&out.stdout);
    let d = &events.last().unwrap()["diagnostic"];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["range"]["filename"], "bad.toml");
    assert_eq!(d["range"]["start"]["line"], 2);
    let out = w.run(&["plan", "bad.toml", "--json"]).code(1);
    assert!(serde_json::from_str::<Value>(out.stdout.lines().next().unwrap()).unwrap()["type"] == "diagnostic");
    let needs = w.run(&["apply", "spec.toml", "--json"]).code(1);
    assert!(needs.stdout.contains("--json needs --auto-approve"), "{}", needs.stdout);
}

/// Off a terminal (stdout piped), an operation that runs 25 s gets a line
/// at least every 10 s: two "Still creating" lines, in text and in JSON.
#[test]
fn a_long_create_prints_progress_lines_when_stdout_is_piped() {
    let spec = "[resource.sim_resource.slow]\ndelay_ms = 25000\n";
    let (text, json) = (Workdir::new(), Workdir::new());
    text.write("spec.toml", spec);
    json.write("spec.toml", spec);
    let runs = std::thread::scope(|s| {
        let a = s.spawn(|| text.run(&["apply", "spec.toml", "--auto-approve"]).ok());
        let b = s.spawn(|| json.run(&["apply", "spec.toml", "--auto-approve", "--json"]).ok());
        (a.join().unwrap(), b.join().unwrap())
    });
    let still: Vec<&str> = runs.0.stdout.lines().filter(|l| l.contains("Still creating...")).collect();
    assert_eq!(still.len(), 2, "{}", runs.0.stdout);
    // About every 10 s (a loaded machine may be a second or two late).
    let elapsed: Vec<u64> = still
        .iter()
        .map(|l| {
            assert!(l.starts_with("sim_resource.slow: Still creating... ["), "{l}");
            l.split('[').nth(1).and_then(|r| r.strip_suffix("s elapsed]")).and_then(|n| n.parse().ok()).expect(l)
        })
        .collect();
    assert!((10..15).contains(&elapsed[0]), "{}", runs.0.stdout);
    assert!((9..15).contains(&(elapsed[1] - elapsed[0])), "{}", runs.0.stdout);
    let progress: Vec<Value> = runs
        .1
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "apply_progress")
        .collect();
    assert_eq!(progress.len(), 2, "{}", runs.1.stdout);
    assert_eq!(progress[0]["address"], "sim_resource.slow");
    let seconds: Vec<u64> = progress.iter().map(|p| p["hook"]["elapsed_seconds"].as_u64().unwrap()).collect();
    assert!((10..15).contains(&seconds[0]) && (9..15).contains(&(seconds[1] - seconds[0])), "{seconds:?}");
}

#[test]
fn durations_take_units_and_bare_seconds() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    for timeout in ["10s", "10", "1m", "250ms"] {
        w.run(&["plan", "spec.toml", "--lock-timeout", timeout]).ok();
    }
    let bad = w.run(&["plan", "spec.toml", "--lock-timeout", "ten"]).code(1);
    assert!(bad.stderr.contains("30s, 5m"), "{}", bad.stderr);
    w.run(&["apply", "spec.toml", "--auto-approve", "--spot-wait", "90"]).ok();
}

#[test]
fn completions_and_the_man_page() {
    let w = Workdir::new();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef skyplan"), ("fish", "complete -c skyplan")] {
        let out = w.run(&["completion", shell]).ok();
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        for word in ["refresh-only", "import", "lock-timeout"] {
            assert!(out.stdout.contains(word), "{shell} completes {word}");
        }
    }
    w.run(&["completion", "powershell"]).code(1);
    let man = w.run(&["man"]).ok();
    assert!(man.stdout.starts_with(".ie \\n(.g .ds Aq") || man.stdout.contains(".TH skyplan 1"), "{}", man.stdout);
    assert!(man.stdout.contains(".TH skyplan"), "{}", man.stdout);
    assert!(man.stdout.contains("lock\\-timeout"), "{}", man.stdout);
}

/// Compiler-style diagnostics: place, source line, caret and did-you-mean,
/// compared with golden files; a `depends_on` typo is a warning.
#[test]
fn spec_errors_print_the_line_a_caret_and_a_suggestion() {
    let w = Workdir::new();
    w.write("typo.toml", &SPEC.replace("${sim_resource.net.id}", "${sim_resource.nett.id}"));
    let out = w.run(&["validate", "typo.toml"]).code(1);
    assert_eq!(out.stderr, golden("reference_typo.txt"), "stderr:\n{}", out.stderr);

    w.write("cluster.toml", "[cluster]\nname = \"demo\"\nregion = \"us-east-1\"\nregoin = \"x\"\n");
    let out = w.run(&["validate", "cluster.toml"]).code(1);
    assert_eq!(out.stderr, golden("unknown_key.txt"), "stderr:\n{}", out.stderr);

    w.write("syntax.toml", "[resource.sim_resource.a]\nsize = 3\nname = \"unclosed\n");
    let out = w.run(&["validate", "syntax.toml"]).code(1);
    assert_eq!(out.stderr, golden("syntax.txt"), "stderr:\n{}", out.stderr);

    w.write("warn.toml", "[resource.sim_resource.a]\n[resource.sim_resource.b]\ndepend_on = [\"sim_resource.a\"]\n");
    let out = w.run(&["validate", "warn.toml"]).ok();
    assert_eq!(out.stderr, golden("depends_on_typo.txt"), "stderr:\n{}", out.stderr);
}

/// `node-config` (contract, "The cluster itself") from the spec and the
/// state alone, no cloud: before apply the endpoint is "(known after
/// apply)" and the CA hash the node's placeholder; once the state records
/// the load balancer's DNS name and the PKI secret's public hash, both are
/// in. The one node that initializes gets Cluster- and InitConfiguration,
/// a worker pool a JoinConfiguration without controlPlane; no secret is
/// printed; an unknown address fails listing the nodes.
#[test]
fn node_config_prints_what_a_node_boots_with_from_spec_and_state() {
    let w = Workdir::new();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dynamic-cluster.toml")).unwrap();
    w.write("demo.toml", &example);

    let init = w.run(&["node-config", "demo.toml", "aws_instance.control_plane[0]"]).ok().stdout;
    assert!(init.contains("kind: ClusterConfiguration") && init.contains("kind: InitConfiguration"), "{init}");
    assert!(init.contains("(known after apply)"), "{init}");
    assert!(init.contains("(sensitive)"), "the token is masked: {init}");
    assert!(!w.exists("demo.state.json"), "node-config writes no state");

    let join = w.run(&["node-config", "demo.toml", "aws_instance.control_plane[1]"]).ok().stdout;
    assert!(join.contains("kind: JoinConfiguration") && join.contains("controlPlane"), "{join}");
    assert!(!join.contains("InitConfiguration"), "{join}");

    // Applied: the endpoint and the CA hash come from the state, the hash
    // from the PKI secret's `ca_cert_hash`.
    let hash = format!("sha256:{}", "ab".repeat(32));
    let state = serde_json::json!({
        "format_version": 1,
        "lineage": "0b7f2d2e-1d7e-4c50-9a44-3a0c1f6f1e11",
        "serial": 7,
        "resources": {
            "aws_elb.apiserver": {
                "type": "aws_elb", "provider": "aws", "id": "demo-apiserver",
                "inputs": {}, "attributes": {"id": "demo-apiserver", "dns_name": "demo-apiserver-1.us-east-1.elb.amazonaws.com"}
            },
            "aws_secretsmanager_secret.pki": {
                "type": "aws_secretsmanager_secret", "provider": "aws", "id": "arn:secret",
                "inputs": {}, "attributes": {"id": "arn:secret", "ca_cert_hash": hash}
            }
        }
    });
    w.write("demo.state.json", &serde_json::to_string_pretty(&state).unwrap());
    let worker = w.run(&["node-config", "demo.toml", "aws_launch_template.pool[worker]"]).ok().stdout;
    assert!(worker.contains("kind: JoinConfiguration"), "{worker}");
    assert!(!worker.contains("controlPlane"), "a worker joins without controlPlane: {worker}");
    assert!(worker.contains("demo-apiserver-1.us-east-1.elb.amazonaws.com:6443"), "{worker}");
    assert!(worker.contains(&hash), "{worker}");
    assert!(!worker.contains("(known after apply)"), "{worker}");

    let unknown = w.run(&["node-config", "demo.toml", "aws_instance.bastion"]).code(1);
    assert!(unknown.stderr.contains("aws_instance.bastion is not a node of this cluster"), "{}", unknown.stderr);
    for node in ["aws_instance.control_plane[2]", "aws_launch_template.pool[worker]"] {
        assert!(unknown.stderr.contains(node), "lists {node}: {}", unknown.stderr);
    }
    w.run(&["node-config", "demo.toml", "not an address"]).code(1);
}
