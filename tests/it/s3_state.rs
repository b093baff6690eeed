//! State in S3 (`--state s3://BUCKET/KEY`) against the emulator's S3, with
//! "runners" in separate working directories sharing one simulated cloud:
//! the lock admits exactly one of two concurrent applies, a killed run's lock
//! stays until `unlock` with its id, saved plans travel between runners, and
//! alternating applies never lose a serial.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::emulator::Emulator;
use crate::support::Workdir;

const BUCKET: &str = "team-state";
const STATE: &str = "s3://team-state/clusters/demo.state.json";

/// Two runners (separate directories) pointed at one emulator, one bucket
/// and one simulated cloud.
struct Team {
    emulator: Emulator,
    cloud: tempfile::TempDir,
}

impl Team {
    fn new() -> Team {
        let emulator = Emulator::start();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&emulator.sdk_config().await).force_path_style(true).build(),
            );
            s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        });
        Team { emulator, cloud: tempfile::tempdir().unwrap() }
    }

    fn runner(&self, spec: &str) -> Workdir {
        let mut w = Workdir::new();
        w.env = self.emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        w.env.push(("SKYPLAN_SIM_CLOUD".into(), self.cloud.path().join("cloud.json").display().to_string()));
        w.write("demo.toml", spec);
        w
    }

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&self.emulator.sdk_config().await).force_path_style(true).build(),
            );
            match s3.get_object().bucket(BUCKET).key(key).send().await {
                Ok(out) => Some(out.body.collect().await.unwrap().into_bytes().to_vec()),
                Err(_) => None,
            }
        })
    }

    fn s3(&self) -> (tokio::runtime::Runtime, aws_sdk_s3::Client) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = rt.block_on(self.emulator.sdk_config());
        (rt, aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build()))
    }

    fn put(&self, key: &str, bytes: Vec<u8>) {
        let (rt, s3) = self.s3();
        rt.block_on(s3.put_object().bucket(BUCKET).key(key).body(bytes.into()).send()).unwrap();
    }

    fn delete(&self, key: &str) {
        let (rt, s3) = self.s3();
        rt.block_on(s3.delete_object().bucket(BUCKET).key(key).send()).unwrap();
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&self.object("clusters/demo.state.json").expect("state object")).unwrap()
    }

    fn sim_resources(&self) -> usize {
        skyplan_sim::SimProvider::open(&self.cloud.path().join("cloud.json")).unwrap().snapshot().resources.len()
    }
}

fn slow_spec(n: usize, delay_ms: u64) -> String {
    (0..n).map(|i| format!("[resource.sim_resource.r{i}]\ndelay_ms = {delay_ms}\nn = {i}\n")).collect()
}

#[test]
fn of_two_concurrent_applies_exactly_one_wins() {
    let team = Team::new();
    let spec = slow_spec(4, 1500);
    let (a, b) = (team.runner(&spec), team.runner(&spec));
    let first = a
        .command(&["apply", "demo.toml", "--state", STATE, "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = b
        .command(&["apply", "demo.toml", "--state", STATE, "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, second) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    let codes = [first.status.code(), second.status.code()];
    assert!(codes.contains(&Some(0)) && codes.contains(&Some(1)), "exactly one wins: {codes:?}");
    let loser = if first.status.success() { &second } else { &first };
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert!(stderr.contains("state is locked by") && stderr.contains("lock id"), "{stderr}");
    assert_eq!(team.sim_resources(), 4, "one apply's worth of resources");
    assert!(team.object("clusters/demo.state.json.lock").is_none(), "the winner released the lock");
    a.run(&["plan", "demo.toml", "--state", STATE, "--detailed-exitcode"]).ok();
}

#[test]
fn a_killed_runs_lock_stays_until_unlock_with_its_id_then_apply_converges() {
    let team = Team::new();
    let spec = slow_spec(6, 800);
    let a = team.runner(&spec);
    let mut run = a
        .command(&["apply", "demo.toml", "--state", STATE, "--auto-approve", "--parallelism", "2"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while team.object("clusters/demo.state.json.lock").is_none() {
        assert!(Instant::now() < deadline, "the run never took the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    run.kill().unwrap();
    run.wait().unwrap();

    let lock: serde_json::Value =
        serde_json::from_slice(&team.object("clusters/demo.state.json.lock").expect("the lock remains")).unwrap();
    assert_eq!(lock["pid"], run.id());
    assert_eq!(lock["operation"], "apply");
    let id = lock["id"].as_str().unwrap().to_string();

    let b = team.runner(&spec);
    let refused = b.run(&["apply", "demo.toml", "--state", STATE, "--auto-approve"]).code(1);
    assert!(refused.stderr.contains(&id), "names the lock: {}", refused.stderr);
    b.run(&["unlock", "wrong-id", "--state", STATE]).code(1);
    assert!(team.object("clusters/demo.state.json.lock").is_some());
    b.run(&["unlock", &id, "--state", STATE]).ok();
    b.run(&["apply", "demo.toml", "--state", STATE, "--auto-approve"]).ok();
    assert_eq!(team.sim_resources(), 6, "no duplicate of what the killed run created");
    a.run(&["plan", "demo.toml", "--state", STATE, "--detailed-exitcode"]).ok();
}

#[test]
fn saved_plans_travel_between_runners_and_stale_ones_are_refused() {
    let team = Team::new();
    let (a, b) = (team.runner(&slow_spec(2, 0)), team.runner(&slow_spec(2, 0)));
    a.run(&["plan", "demo.toml", "--state", STATE, "--out", "change.plan"]).ok();
    std::fs::copy(a.path("change.plan"), b.path("change.plan")).unwrap();
    b.run(&["apply", "change.plan", "--auto-approve"]).ok();
    assert_eq!(team.sim_resources(), 2);
    // The same plan again, on the first runner: the state moved on.
    let stale = a.run(&["apply", "change.plan", "--auto-approve"]).code(1);
    assert!(stale.stderr.contains("stale"), "{}", stale.stderr);
}

#[test]
fn twenty_alternating_applies_never_lose_a_serial() {
    let team = Team::new();
    let mut last_serial = 0;
    for i in 0..20 {
        let spec: String = (0..=i).map(|k| format!("[resource.sim_resource.r{k}]\nn = {k}\n")).collect();
        let runner = team.runner(&spec);
        runner.run(&["apply", "demo.toml", "--state", STATE, "--auto-approve"]).ok();
        let state = team.state();
        let serial = state["serial"].as_u64().unwrap();
        assert!(serial > last_serial, "apply {i}: serial went from {last_serial} to {serial}");
        last_serial = serial;
        assert_eq!(state["resources"].as_object().unwrap().len(), i + 1, "apply {i} lost a resource");
    }
    assert_eq!(team.sim_resources(), 20);
    let backup: serde_json::Value =
        serde_json::from_slice(&team.object("clusters/demo.state.json.backup").unwrap()).unwrap();
    assert_eq!(backup["resources"].as_object().unwrap().len(), 19, ".backup is the state before the last run");
}

/// `--lock-timeout SECS`: a run that finds the lock held polls until the
/// holder releases it, then runs; when the holder never releases, it gives
/// up after the timeout naming the holder, having changed nothing.
#[test]
fn lock_timeout_waits_until_the_holder_releases_and_gives_up_after_it() {
    let team = Team::new();
    let lock_key = "clusters/demo.state.json.lock";
    let apply = ["apply", "demo.toml", "--state", STATE, "--auto-approve", "--lock-timeout"];

    // A real holder: another runner's apply. The waiting one starts once
    // it has the lock and finishes after it, with nothing left to do.
    let spec = slow_spec(3, 1000);
    let (a, b) = (team.runner(&spec), team.runner(&spec));
    let holder = a
        .command(&["apply", "demo.toml", "--state", STATE, "--auto-approve", "--parallelism", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while team.object(lock_key).is_none() {
        assert!(Instant::now() < deadline, "the first run never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let waiter =
        b.command(&[&apply[..], &["60"]].concat()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (holder, waiter) = (holder.wait_with_output().unwrap(), waiter.wait_with_output().unwrap());
    assert!(holder.status.success(), "{}", String::from_utf8_lossy(&holder.stderr));
    assert!(waiter.status.success(), "the waiting run gets the lock: {}", String::from_utf8_lossy(&waiter.stderr));
    assert!(String::from_utf8_lossy(&waiter.stdout).contains("No changes"), "it ran after the holder finished");
    assert_eq!(team.sim_resources(), 3);
    assert!(team.object(lock_key).is_none());

    // A holder that never lets go (a lock another runner left): the run
    // gives up after the timeout, names it, and changes nothing.
    let c = team.runner(&slow_spec(5, 0));
    let held = serde_json::json!({
        "id": "held-by-runner-7",
        "holder": "ci@runner-7",
        "pid": 4242,
        "operation": "apply",
        "created": "2026-03-01T12:00:00Z",
    });
    let held = serde_json::to_vec_pretty(&held).unwrap();
    team.put(lock_key, held.clone());
    let serial = team.state()["serial"].clone();
    let start = Instant::now();
    let refused = c.run(&[&apply[..], &["2"]].concat()).code(1);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}, before the 2 s timeout");
    assert!(waited < Duration::from_secs(20), "gave up only after {waited:?}");
    assert!(
        refused.stderr.contains("held-by-runner-7") && refused.stderr.contains("ci@runner-7"),
        "names the holder: {}",
        refused.stderr
    );
    assert_eq!(team.object(lock_key), Some(held.clone()), "the holder's lock is untouched");
    assert_eq!(team.sim_resources(), 3, "nothing was created");
    assert_eq!(team.state()["serial"], serial, "nothing was saved");

    // The same holder, released while the run waits: the run starts then.
    let mut waiting =
        c.command(&[&apply[..], &["60"]].concat()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(waiting.try_wait().unwrap().is_none(), "the run waits while the lock is held");
    assert_eq!(team.sim_resources(), 3, "and starts nothing");
    assert_eq!(team.object(lock_key), Some(held), "nor touches the lock");
    team.delete(lock_key);
    let done = waiting.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(team.sim_resources(), 5, "it applied once the holder released");
    assert!(team.object(lock_key).is_none(), "and released its own lock");
}
