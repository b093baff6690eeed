//! End-to-end tests of the binary on the simulated cloud: the engine's
//! whole loop (validate, plan, apply, plan again, change, destroy), saved
//! plans, locks, failures and bad input.

use std::io::Read;

use serde_json::Value;
use skyplan_sim::SimProvider;
use skyplan_state::{Backend, LocalBackend};

use crate::support::Workdir;

/// The simulated cluster these end-to-end tests (and `cli.rs`) apply.
pub(crate) const SPEC: &str = r#"
[resource.sim_resource.net]
cidr = "10.0.0.0/16"
delay_ms = 20

[resource.sim_resource.subnet]
parent = "${sim_resource.net.id}"
zone = "a"
replace_on = ["zone"]

[resource.sim_resource.node]
subnet = "${sim_resource.subnet.id}"
size = 3
config = "line one\nline two\n"

[resource.sim_resource.monitor]
depends_on = ["sim_resource.net"]
"#;

fn sim(w: &Workdir) -> SimProvider {
    SimProvider::open(&w.path("spec.state.json.sim.json")).expect("the simulated cloud opens")
}

fn cloud_len(w: &Workdir) -> usize {
    sim(w).snapshot().resources.len()
}

#[test]
fn apply_no_changes_update_replace_destroy() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["validate", "spec.toml"]).ok();
    assert!(!w.exists("spec.state.json"), "validate writes nothing");

    let plan = w.run(&["plan", "spec.toml", "--detailed-exitcode"]).code(2);
    assert!(plan.stdout.contains("Plan: 4 to add, 0 to change, 0 to replace, 0 to destroy."), "{}", plan.stdout);
    assert!(!w.exists("spec.state.json"), "plan writes no state");

    let apply = w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    assert!(apply.stdout.contains("Apply complete! Resources: 4 added, 0 changed, 0 destroyed."), "{}", apply.stdout);
    assert_eq!(cloud_len(&w), 4);
    let state = w.json("spec.state.json");
    assert_eq!(
        state["resources"]["sim_resource.subnet"]["inputs"]["parent"],
        state["resources"]["sim_resource.net"]["id"]
    );

    let again = w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // An in-place update and a replacement in one plan.
    w.write("spec.toml", &SPEC.replace("size = 3", "size = 5").replace("zone = \"a\"", "zone = \"b\""));
    let plan = w.run(&["plan", "spec.toml", "--detailed-exitcode"]).code(2);
    assert!(plan.stdout.contains("~ size   = 3 -> 5"), "{}", plan.stdout);
    assert!(plan.stdout.contains("-/+ sim_resource.subnet"), "{}", plan.stdout);
    assert!(plan.stdout.contains("# forces replacement"), "{}", plan.stdout);
    // The node refers to the subnet's id, which the replacement makes unknown.
    assert!(plan.stdout.contains("Plan: 0 to add, 1 to change, 1 to replace, 0 to destroy."), "{}", plan.stdout);
    let old_subnet = w.json("spec.state.json")["resources"]["sim_resource.subnet"]["id"].clone();
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let state = w.json("spec.state.json");
    assert_ne!(state["resources"]["sim_resource.subnet"]["id"], old_subnet);
    assert_eq!(
        state["resources"]["sim_resource.node"]["inputs"]["subnet"],
        state["resources"]["sim_resource.subnet"]["id"]
    );
    assert_eq!(state["resources"]["sim_resource.node"]["inputs"]["size"], 5);
    assert_eq!(cloud_len(&w), 4, "the old subnet is gone from the cloud");
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();

    let destroy = w.run(&["destroy", "spec.toml", "--auto-approve"]).ok();
    assert!(
        destroy.stdout.contains("Destroy complete! Resources: 0 added, 0 changed, 4 destroyed."),
        "{}",
        destroy.stdout
    );
    assert_eq!(cloud_len(&w), 0);
    w.run(&["state", "list"]).ok();
    assert!(w.json("spec.state.json")["resources"].as_object().unwrap().is_empty());
}

#[test]
fn plan_json_has_the_contract_shape() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    let out = w.run(&["plan", "spec.toml", "--json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("plan --json prints one JSON object");
    assert_eq!(v["format_version"], "1");
    assert_eq!(v["summary"], serde_json::json!({"create": 4, "update": 0, "replace": 0, "delete": 0}));
    let node = v["changes"].as_array().unwrap().iter().find(|c| c["address"] == "sim_resource.node").unwrap();
    assert_eq!(node["action"], "create");
    assert_eq!(node["before"], Value::Null);
    assert_eq!(node["after"]["subnet"], "(known after apply)");
    assert_eq!(node["after"]["size"], 3);

    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let out = w.run(&["plan", "spec.toml", "--json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v["changes"].as_array().unwrap().iter().all(|c| c["action"] == "no-op"));
}

#[test]
fn saved_plan_applies_exactly_and_stale_plans_are_refused() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["plan", "spec.toml", "--out", "first.plan"]).ok();
    let shown = w.run(&["show", "first.plan", "--json"]).ok();
    assert_eq!(serde_json::from_str::<Value>(&shown.stdout).unwrap()["summary"]["create"], 4);
    // The spec changes after planning: apply uses the saved plan, not the spec.
    w.write("spec.toml", &SPEC.replace("size = 3", "size = 9"));
    // No --auto-approve and stdin is /dev/null (Workdir::command): a saved
    // plan was the review, so it applies without asking (contract, "Saved plans").
    let applied = w.run(&["apply", "first.plan"]).ok();
    assert!(applied.stdout.contains("Apply complete! Resources: 4 added"), "{}", applied.stdout);
    assert!(!applied.stderr.contains("approval"), "{}", applied.stderr);
    assert_eq!(w.json("spec.state.json")["resources"]["sim_resource.node"]["inputs"]["size"], 3);
    let mode = std::fs::metadata(w.path("first.plan"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600, "plan files are private");

    // Applying it again: the state moved on, so it is stale.
    let before = std::fs::read(w.path("spec.state.json")).unwrap();
    let stale = w.run(&["apply", "first.plan"]).code(1);
    assert!(stale.stderr.contains("is stale"), "{}", stale.stderr);
    assert_eq!(std::fs::read(w.path("spec.state.json")).unwrap(), before, "a refused plan changes nothing");

    // A plan made, then overtaken by another apply, is stale too.
    w.run(&["plan", "spec.toml", "--out", "second.plan"]).ok();
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let stale = w.run(&["apply", "second.plan", "--auto-approve"]).code(1);
    assert!(stale.stderr.contains("stale"), "{}", stale.stderr);
}

#[test]
fn an_injected_failure_keeps_the_rest_and_a_rerun_converges() {
    let w = Workdir::new();
    let failing = SPEC.replace("size = 3", "size = 3\nfail = \"create\"");
    w.write("spec.toml", &failing);
    let out = w.run(&["apply", "spec.toml", "--auto-approve"]).code(1);
    assert!(out.stderr.contains("sim_resource.node: Creation failed: injected failure"), "{}", out.stderr);
    let state = w.json("spec.state.json");
    let recorded: Vec<&String> = state["resources"].as_object().unwrap().keys().collect();
    assert_eq!(recorded, ["sim_resource.monitor", "sim_resource.net", "sim_resource.subnet"]);
    assert_eq!(cloud_len(&w), 3);

    w.write("spec.toml", SPEC);
    let plan = w.run(&["plan", "spec.toml"]).ok();
    assert!(plan.stdout.contains("Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy."), "{}", plan.stdout);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
    assert_eq!(cloud_len(&w), 4);
}

#[test]
fn a_failure_skips_dependents_but_not_independent_branches() {
    let w = Workdir::new();
    w.write("spec.toml", &SPEC.replace("zone = \"a\"", "zone = \"a\"\nfail = \"create\""));
    let out = w.run(&["apply", "spec.toml", "--auto-approve"]).code(1);
    assert!(out.stderr.contains("sim_resource.subnet: Creation failed"), "{}", out.stderr);
    assert!(out.stderr.contains("sim_resource.node: skipped"), "{}", out.stderr);
    let state = w.json("spec.state.json");
    assert!(state["resources"]["sim_resource.monitor"].is_object(), "an independent branch still ran");
}

#[test]
fn cycles_and_bad_references_exit_1_and_write_nothing() {
    let w = Workdir::new();
    w.write("cycle.toml", "[resource.sim_resource.a]\nx = \"${sim_resource.b.id}\"\n[resource.sim_resource.b]\nx = \"${sim_resource.a.id}\"\n");
    for cmd in [&["validate", "cycle.toml"][..], &["plan", "cycle.toml"], &["apply", "cycle.toml", "--auto-approve"]] {
        let out = w.run(cmd).code(1);
        assert!(
            out.stderr.contains("dependency cycle: sim_resource.a -> sim_resource.b -> sim_resource.a"),
            "{}",
            out.stderr
        );
    }
    w.write("badref.toml", "[resource.sim_resource.a]\nx = \"${sim_resource.missing.id}\"\n[resource.sim_resource.b]\ny = \"${sim_resource.a.nope}\"\n");
    let out = w.run(&["apply", "badref.toml", "--auto-approve"]).code(1);
    assert!(
        out.stderr.contains(
            "sim_resource.a: x refers to ${sim_resource.missing.id}, but there is no resource sim_resource.missing"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("sim_resource.b: y refers to ${sim_resource.a.nope}, but sim_resource.a has no attribute `nope`"),
        "{}",
        out.stderr
    );
    let files: Vec<String> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut files = files;
    files.sort();
    assert_eq!(files, ["badref.toml", "cycle.toml"], "no state, lock or cloud file");
}

#[test]
fn unknown_keys_and_wrong_types_name_file_line_and_column() {
    let w = Workdir::new();
    w.write("bad.toml", "[cluster]\nname = \"demo\"\nregion = \"us-east-1\"\nflavour = \"x\"\n");
    let out = w.run(&["validate", "bad.toml"]).code(1);
    assert!(out.stderr.contains("bad.toml:4:1:") && out.stderr.contains("flavour"), "{}", out.stderr);
    w.write("syntax.toml", "[resource.sim_resource.a]\nsize = = 3\n");
    let out = w.run(&["plan", "syntax.toml"]).code(1);
    assert!(out.stderr.contains("syntax.toml:2:"), "{}", out.stderr);
    assert!(!w.exists("syntax.state.json"));
}

#[test]
fn apply_without_approval_on_a_pipe_is_refused_before_any_work() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    let out = w.run(&["apply", "spec.toml"]).code(1);
    assert!(
        out.stderr.contains("standard input is not a terminal") && out.stderr.contains("--auto-approve"),
        "{}",
        out.stderr
    );
    assert!(!w.exists("spec.state.json") && !w.exists("spec.state.json.sim.json"));
    let destroy = w.run(&["destroy", "spec.toml"]).code(1);
    assert!(destroy.stderr.contains("refusing to destroy without approval"), "{}", destroy.stderr);
}

#[test]
fn a_second_apply_is_refused_while_the_lock_is_held_and_unlock_needs_the_id() {
    let w = Workdir::new();
    w.write("spec.toml", &SPEC.replace("delay_ms = 20", "delay_ms = 3000"));
    let mut first =
        w.command(&["apply", "spec.toml", "--auto-approve"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    // Wait until the first run holds the lock.
    let lock = w.path("spec.state.json.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lock.exists() {
        assert!(std::time::Instant::now() < deadline, "first apply never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = w.run(&["apply", "spec.toml", "--auto-approve"]).code(1);
    assert!(second.stderr.contains("locked"), "{}", second.stderr);
    assert!(second.stderr.contains(&format!("pid {}", first.id())), "names the holder: {}", second.stderr);
    let wrong = w.run(&["unlock", "not-the-id"]).code(1);
    assert!(!wrong.stderr.is_empty());
    assert!(lock.exists(), "a wrong id releases nothing");

    assert!(first.wait().unwrap().success());
    let mut out = String::new();
    first.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("Apply complete!"), "{out}");
    assert!(!lock.exists(), "the lock is released at the end of the run");
}

#[test]
fn a_stale_lock_is_released_by_unlock_with_its_id() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    // A run that died holding the lock leaves the lock file behind.
    let info = serde_json::json!({"id": "dead-run-1", "holder": "ci@runner", "pid": 999999, "operation": "apply", "created": "2026-11-24T00:00:00Z"});
    std::fs::write(w.path("spec.state.json.lock"), info.to_string()).unwrap();
    let refused = w.run(&["plan", "spec.toml"]).code(1);
    assert!(refused.stderr.contains("dead-run-1") && refused.stderr.contains("ci@runner"), "{}", refused.stderr);
    w.run(&["unlock", "dead-run-1"]).ok();
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
}

#[test]
fn state_list_show_rm() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let list = w.run(&["state", "list"]).ok();
    assert_eq!(list.stdout, "sim_resource.monitor\nsim_resource.net\nsim_resource.node\nsim_resource.subnet\n");
    let show = w.run(&["state", "show", "sim_resource.node"]).ok();
    assert!(show.stdout.contains("size") && show.stdout.contains("sim-"), "{}", show.stdout);
    w.run(&["state", "show", "sim_resource.nope"]).code(1);
    w.run(&["state", "rm", "sim_resource.monitor"]).ok();
    assert_eq!(w.run(&["state", "list"]).ok().stdout.lines().count(), 3);
    // Forgotten, so the next plan creates it again (the old one stays in the cloud).
    let plan = w.run(&["plan", "spec.toml"]).ok();
    assert!(plan.stdout.contains("Plan: 1 to add"), "{}", plan.stdout);
    let shown = w.run(&["show", "--json"]).ok();
    assert_eq!(serde_json::from_str::<Value>(&shown.stdout).unwrap()["resources"].as_array().unwrap().len(), 3);
}

#[test]
fn a_resource_deleted_outside_skyplan_is_created_again_and_drift_is_reverted() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    // Someone deletes one resource and edits another behind skyplan's back.
    sim(&w)
        .rewrite(|cloud| {
            cloud.resources.retain(|_, o| o.address != "sim_resource.monitor");
            let node = cloud.resources.values_mut().find(|o| o.address == "sim_resource.node").unwrap();
            node.attrs.insert("size".into(), serde_json::json!(7));
        })
        .unwrap();

    let plan = w.run(&["plan", "spec.toml", "--detailed-exitcode"]).code(2);
    assert!(plan.stderr.contains("sim_resource.monitor was deleted outside skyplan"), "{}", plan.stderr);
    assert!(plan.stdout.contains("~ size   = 7 -> 3"), "{}", plan.stdout);
    assert!(plan.stdout.contains("Plan: 1 to add, 1 to change"), "{}", plan.stdout);
    // --no-refresh trusts the state.
    w.run(&["plan", "spec.toml", "--no-refresh", "--detailed-exitcode"]).ok();
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
}

#[test]
fn graph_text_and_dot() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    let text = w.run(&["graph", "spec.toml"]).ok();
    assert!(text.stdout.starts_with("layer 0:\n  sim_resource.net\nlayer 1:\n"), "{}", text.stdout);
    assert!(text.stdout.contains("sim_resource.node <- sim_resource.subnet"), "{}", text.stdout);
    let dot = w.run(&["graph", "spec.toml", "--format", "dot"]).ok();
    assert!(dot.stdout.contains("\"sim_resource.net\" -> \"sim_resource.subnet\";"), "{}", dot.stdout);
}

#[test]
fn usage_errors_exit_1_and_global_flags_go_anywhere() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    w.run(&["plan"]).code(1);
    w.run(&["frobnicate"]).code(1);
    w.run(&["--state", "elsewhere.json", "apply", "spec.toml", "--auto-approve"]).ok();
    assert!(w.exists("elsewhere.json") && !w.exists("spec.state.json"));
    w.run(&["plan", "spec.toml", "--state", "elsewhere.json", "--detailed-exitcode"]).ok();
}

#[test]
fn a_corrupt_state_is_refused_and_left_byte_identical() {
    let w = Workdir::new();
    w.write("spec.toml", SPEC);
    let garbage = b"{\"format_version\": 1, \"lineage\": \"x\", \"ser";
    std::fs::write(w.path("spec.state.json"), garbage).unwrap();
    let out = w.run(&["apply", "spec.toml", "--auto-approve"]).code(1);
    assert!(out.stderr.contains("spec.state.json"), "{}", out.stderr);
    assert_eq!(std::fs::read(w.path("spec.state.json")).unwrap(), garbage);
    std::fs::write(
        w.path("spec.state.json"),
        br#"{"format_version": 99, "lineage": "x", "serial": 1, "resources": {}}"#,
    )
    .unwrap();
    let out = w.run(&["plan", "spec.toml"]).code(1);
    assert!(out.stderr.contains("newer"), "{}", out.stderr);
}

/// Layers of resources with delays, so a kill lands in the middle of work.
fn slow_spec(layers: usize, width: usize) -> String {
    let mut spec = String::new();
    for l in 0..layers {
        for i in 0..width {
            spec.push_str(&format!("[resource.sim_resource.r{l}_{i}]\ndelay_ms = 150\nn = {i}\n"));
            if l > 0 {
                spec.push_str(&format!("up = \"${{sim_resource.r{}_{i}.id}}\"\n", l - 1));
            }
        }
    }
    spec
}

#[test]
fn a_kill_at_any_moment_then_apply_converges_with_no_duplicate() {
    let (layers, width) = (8, 4);
    for kill_after_ms in [100u64, 300, 600, 1000] {
        let w = Workdir::new();
        w.write("spec.toml", &slow_spec(layers, width));
        let mut run =
            w.command(&["apply", "spec.toml", "--auto-approve"]).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(kill_after_ms));
        run.kill().unwrap(); // SIGKILL: no chance to clean up
        run.wait().unwrap();

        // The lock of the killed run is released (its pid is gone), anything
        // it created but did not record is adopted, and the rest is created.
        let again = w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
        assert!(again.stdout.contains("Apply complete!"), "{}", again.stdout);
        assert_eq!(cloud_len(&w), layers * width, "after a kill at {kill_after_ms} ms: exactly one of each resource");
        w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
        let state = w.json("spec.state.json");
        assert_eq!(state["resources"].as_object().unwrap().len(), layers * width);
        assert!(state.get("pending").is_none(), "no unsettled creates remain");
    }
}

#[test]
fn a_crash_between_the_cloud_call_and_the_state_adopts_instead_of_duplicating() {
    let (layers, width) = (3, 2);
    let spec = slow_spec(layers, width).replace("delay_ms = 150", "delay_ms = 0");
    for victim in ["sim_resource.r0_0", "sim_resource.r1_1", "sim_resource.r2_0"] {
        let w = Workdir::new();
        w.write("spec.toml", &spec);
        let crashed = w
            .command(&["apply", "spec.toml", "--auto-approve"])
            .env("SKYPLAN_CRASH_BEFORE_RECORDING", victim)
            .output()
            .unwrap();
        assert!(!crashed.status.success(), "the hook aborts the run");
        // Read as skyplan does: the state file plus the run's journal.
        let state = LocalBackend::new(w.path("spec.state.json")).load().unwrap().unwrap();
        assert!(
            state.pending.contains_key(victim),
            "the intent to create {victim} was recorded before the call: {state:?}"
        );
        assert!(!state.resources.contains_key(victim));

        let again = w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
        assert!(
            again.stderr.contains(&format!("{victim} (sim-")) && again.stderr.contains("adopted"),
            "{}",
            again.stderr
        );
        assert_eq!(cloud_len(&w), layers * width, "{victim} exists once");
        w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
    }
}

#[test]
fn ctrl_c_starts_nothing_new_finishes_running_work_and_exits_130() {
    let (layers, width) = (8, 4);
    let w = Workdir::new();
    w.write("spec.toml", &slow_spec(layers, width));
    let run = w
        .command(&["apply", "spec.toml", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::process::Command::new("kill").args(["-INT", &run.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Interrupt received"), "{stderr}");
    assert!(stderr.contains("not started (interrupted)"), "{stderr}");

    // What exists in the cloud is exactly what the state records: the running
    // operations were allowed to finish and were saved.
    let state = LocalBackend::new(w.path("spec.state.json")).load().unwrap().unwrap();
    assert!(state.pending.is_empty(), "{:?}", state.pending);
    let created = cloud_len(&w);
    assert!(created > 0 && created < layers * width, "interrupted part-way: {created}");
    assert_eq!(state.resources.len(), created);
    assert!(!w.exists("spec.state.json.lock"), "the lock is released");

    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    assert_eq!(cloud_len(&w), layers * width);
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
}

/// Issue 13: `apply PLANFILE` after a run killed between a create and its
/// recording must settle that create as `plan` did, or `b` cannot resolve
/// `${sim_resource.a.id}`. Both kinds of apply take one path.
#[test]
fn a_saved_plan_after_an_interrupted_apply_settles_the_create_and_converges() {
    let w = Workdir::new();
    w.write(
        "spec.toml",
        "[resource.sim_resource.a]\nsize = 1\n\n[resource.sim_resource.b]\nparent = \"${sim_resource.a.id}\"\n\n[resource.sim_resource.c]\nparent = \"${sim_resource.b.id}\"\n",
    );
    let crashed = w
        .command(&["apply", "spec.toml", "--auto-approve"])
        .env("SKYPLAN_CRASH_BEFORE_RECORDING", "sim_resource.a")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the hook aborts the run");
    assert_eq!(cloud_len(&w), 1, "a was created in the cloud, not recorded");

    let planned = w.run(&["plan", "spec.toml", "--out", "p.plan"]).ok();
    assert!(planned.stdout.contains("2 to add"), "{}", planned.stdout);
    let applied = w.run(&["apply", "p.plan", "--auto-approve"]);
    assert_eq!(applied.code, 0, "stdout:\n{}\nstderr:\n{}", applied.stdout, applied.stderr);
    assert_eq!(cloud_len(&w), 3, "a was adopted, not created again");
    let state = LocalBackend::new(w.path("spec.state.json")).load().unwrap().unwrap();
    assert!(state.pending.is_empty(), "{state:?}");
    assert_eq!(state.resources.len(), 3, "{state:?}");
    // The replan is empty.
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
}

/// docs/state.md, "a failed save stops the run", driven through `apply`
/// with a save that fails for real: the run's file-size limit
/// (RLIMIT_FSIZE, 4 KiB, SIGXFSZ ignored so the write answers EFBIG) stops
/// the state's journal part-way through the second apply. Nothing starts
/// after the failed save, the error says so, the state on disk is the last
/// good save, the lock is released, and the next apply converges.
#[test]
fn a_failed_save_stops_the_apply_keeps_the_last_good_state_and_releases_the_lock() {
    use std::collections::BTreeSet;
    use std::os::unix::process::CommandExt;

    let (layers, width) = (8, 4);
    let full = slow_spec(layers, width).replace("delay_ms = 150", "delay_ms = 10");
    let w = Workdir::new();
    // A first apply without a limit: the last good save before the failing run.
    w.write("spec.toml", &slow_spec(1, width).replace("delay_ms = 150", "delay_ms = 10"));
    w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    let before = LocalBackend::new(w.path("spec.state.json")).load().unwrap().unwrap();
    assert_eq!(before.resources.len(), width);

    w.write("spec.toml", &full);
    let mut cmd = w.command(&["apply", "spec.toml", "--auto-approve", "--parallelism", "2"]);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    // stdout (progress) and stderr (failures) into one pipe, so the order of
    // the lines is the order of the events.
    let (mut reader, writer) = std::io::pipe().unwrap();
    cmd.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut output = String::new();
    reader.read_to_string(&mut output).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("File too large"), "the save failed on the size limit, not elsewhere:\n{output}");
    assert!(
        output.contains("error: state not saved") && output.contains("no further changes will be saved"),
        "the error says the state was not saved:\n{output}"
    );

    // Nothing starts after the first failed save.
    let lines: Vec<&str> = output.lines().collect();
    let first_failure = lines
        .iter()
        .position(|l| l.contains("the state could not be saved"))
        .unwrap_or_else(|| panic!("an operation reports the failed save:\n{output}"));
    // An operation the scheduler took before the failure can print its
    // "Creating..." after the failure's line (two tasks race to the pipe);
    // such a create never reaches the cloud: its intent cannot be saved
    // either, so it fails before the call.
    for line in lines[first_failure..].iter().filter(|l| l.contains("Creating...")) {
        let address = line.split(':').next().unwrap();
        assert!(
            output.contains(&format!("{address}: Creation failed: not created: the state could not be saved")),
            "{address} started after the failed save and was not stopped before the cloud:\n{output}"
        );
    }
    assert!(output.contains("skipped"), "later layers are not started:\n{output}");

    // The lock is released, not left to be reclaimed as a dead pid's.
    assert!(!w.exists("spec.state.json.lock"), "the lock file is gone after the failed apply");

    // The state on disk is the last good save: what was reported complete
    // (saved before the report), and the intents of the creates whose result
    // could not be saved. Nothing else.
    let state = LocalBackend::new(w.path("spec.state.json")).load().unwrap().unwrap();
    let address_of = |l: &str| l.split(':').next().unwrap().trim().to_string();
    let completed: BTreeSet<String> =
        lines.iter().filter(|l| l.contains("Creation complete")).map(|l| address_of(l)).collect();
    let unsaved: BTreeSet<String> =
        lines.iter().filter(|l| l.contains("but the state could not be saved")).map(|l| address_of(l)).collect();
    let recorded: BTreeSet<String> = state.resources.keys().cloned().collect();
    let expected: BTreeSet<String> = before.resources.keys().cloned().chain(completed.iter().cloned()).collect();
    assert_eq!(recorded, expected, "the state holds exactly what was saved before the failure");
    assert!(recorded.len() > width && recorded.len() < layers * width, "failed part-way: {}", recorded.len());
    assert_eq!(state.pending.keys().cloned().collect::<BTreeSet<_>>(), unsaved, "intents recorded before the call");
    assert!(state.serial > before.serial);
    // Everything in the cloud is recorded, or has its intent recorded.
    let cloud = sim(&w).snapshot();
    for (id, object) in &cloud.resources {
        let known = state.resources.get(&object.address).is_some_and(|r| &r.id == id)
            || state.pending.contains_key(&object.address);
        assert!(known, "{} ({id}) made in the cloud with nothing in the state", object.address);
    }

    // Without the limit, the next apply adopts what the failed run made and
    // converges with exactly one of each.
    let again = w.run(&["apply", "spec.toml", "--auto-approve"]).ok();
    assert!(again.stdout.contains("Apply complete!"), "{}", again.stdout);
    assert_eq!(cloud_len(&w), layers * width);
    w.run(&["plan", "spec.toml", "--detailed-exitcode"]).ok();
}
