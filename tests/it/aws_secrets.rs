//! The cluster's bootstrap secrets against the emulator: after apply of the
//! demo spec, the three secrets exist under `aws.cluster.x-k8s.io/demo/`
//! with the ownership tags; the PKI archive's CA hash (computed here with
//! tar and openssl) is the state's `ca_cert_hash`; no private key and no
//! token is in the state, a plan, apply's output or `show`; `kubeconfig`
//! writes a 0600 file whose client certificate the archive's CA verifies;
//! a taken init lock is no change; a secret the state forgot is an orphan;
//! destroy removes them all. A leftover secret of the same name before the
//! first apply is replaced. Checked with the test's own Secrets Manager
//! client, tar and openssl, never through skyplan's code.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::aws_cli::{example, CAPA_OWNED, OWNED};
use crate::emulator::Emulator;
use crate::support::Workdir;

const PREFIX: &str = "aws.cluster.x-k8s.io/demo/";

fn workdir(emulator: &Emulator) -> Workdir {
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w
}

/// Run a tool, feeding `input`; its stdout, failing the test on an error.
fn tool(program: &str, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/tools.sh installs it)"));
    child.stdin.take().unwrap().write_all(input.unwrap_or_default()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `sha256:<hex>` of a certificate's public key, as kubeadm's discovery
/// hash is defined, computed by openssl.
fn openssl_ca_hash(cert: &Path) -> String {
    let spki = tool("openssl", &["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"], None);
    let der = tool("openssl", &["pkey", "-pubin", "-outform", "DER"], Some(&spki));
    let digest = String::from_utf8(tool("openssl", &["dgst", "-sha256", "-r"], Some(&der))).unwrap();
    format!("sha256:{}", digest.split_whitespace().next().unwrap())
}

/// Every secret under the cluster's prefix: name -> tags.
fn secrets(
    rt: &tokio::runtime::Runtime,
    sm: &aws_sdk_secretsmanager::Client,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let out = rt.block_on(sm.list_secrets().send()).unwrap();
    out.secret_list()
        .iter()
        .filter(|s| s.name().is_some_and(|n| n.starts_with(PREFIX)))
        .map(|s| {
            let tags = s.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()));
            (s.name().unwrap().to_string(), tags.collect())
        })
        .collect()
}

/// A kubeconfig's base64 field `key` (one line), decoded.
fn kubeconfig_field(text: &str, key: &str) -> Vec<u8> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix(&format!("{key}: "))).unwrap_or_else(|| panic!("{key}"));
    aws_smithy_types::base64::decode(line.trim()).unwrap()
}

#[test]
fn the_bootstrap_secrets_are_made_tagged_never_shown_and_destroyed() {
    let emulator = Emulator::start();
    let w = workdir(&emulator);
    w.write("demo.toml", &example());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&rt.block_on(emulator.sdk_config()));

    // Nothing applied: kubeconfig says so.
    let early = w.run(&["kubeconfig", "demo.toml"]).code(1);
    assert!(early.stderr.contains("cluster demo is not applied"), "{}", early.stderr);

    // A leftover of an earlier cluster of the same name.
    rt.block_on(sm.create_secret().name(format!("{PREFIX}pki")).secret_string("leftover").send()).unwrap();

    // -vv: every AWS call and its request id in the log too.
    let apply = w.run(&["-vv", "apply", "demo.toml", "--auto-approve"]).ok();
    assert!(apply.stderr.contains("secretsmanager:CreateSecret ok"), "{}", apply.stderr);

    // The three secrets, with the cluster's ownership tags and skyplan's address tag.
    let found = secrets(&rt, &sm);
    let names: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(names, [format!("{PREFIX}init-lock"), format!("{PREFIX}join"), format!("{PREFIX}pki")]);
    for (name, tags) in &found {
        assert_eq!(tags.get(OWNED).map(String::as_str), Some("owned"), "{name}: {tags:?}");
        assert_eq!(tags.get(CAPA_OWNED).map(String::as_str), Some("owned"), "{name}: {tags:?}");
        let address = format!("aws_secretsmanager_secret.{}", name.rsplit('/').next().unwrap().replace('-', "_"));
        assert_eq!(tags.get("skyplan:address"), Some(&address), "{name}");
    }

    // The PKI archive (the leftover replaced): its CA's hash is the state's.
    let state = w.json("demo.state.json");
    let attrs = |address: &str| state["resources"][address]["attributes"].clone();
    let pki = rt.block_on(sm.get_secret_value().secret_id(format!("{PREFIX}pki")).send()).unwrap();
    let archive = pki.secret_binary().expect("the PKI is binary: the leftover's text was replaced").as_ref().to_vec();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pki.tar"), &archive).unwrap();
    let tar = dir.path().join("pki.tar");
    tool("tar", &["-x", "-f", tar.to_str().unwrap(), "-C", dir.path().to_str().unwrap()], None);
    let ca = dir.path().join("ca.crt");
    let hash = openssl_ca_hash(&ca);
    assert_eq!(attrs("aws_secretsmanager_secret.pki")["ca_cert_hash"], hash.as_str());
    assert_eq!(attrs("aws_secretsmanager_secret.join")["ca_cert_hash"], hash.as_str());
    assert_eq!(attrs("aws_secretsmanager_secret.pki")["arn"], pki.arn().unwrap());
    let join = rt.block_on(sm.get_secret_value().secret_id(format!("{PREFIX}join")).send()).unwrap();
    let join = join.secret_string().unwrap().to_string();
    assert!(join.contains(&format!("ca-cert-hash={hash}\n")), "the join secret pairs the token with this CA");
    let token = join.lines().find_map(|l| l.strip_prefix("token=")).unwrap().to_string();
    let token_secret = token.split('.').nth(1).unwrap().to_string();
    assert_eq!(token_secret.len(), 16);

    // Nothing secret anywhere skyplan writes or prints.
    let plan_json = w.run(&["plan", "demo.toml", "--json"]).ok().stdout;
    let plan_log = w.run(&["-vv", "plan", "demo.toml"]).ok();
    let show = w.run(&["show"]).ok().stdout;
    let show_json = w.run(&["show", "--json"]).ok().stdout;
    let state_text = std::fs::read_to_string(w.path("demo.state.json")).unwrap();
    for (what, text) in [
        ("the state", state_text.as_str()),
        ("plan --json", plan_json.as_str()),
        ("plan -vv", &format!("{}{}", plan_log.stdout, plan_log.stderr)),
        ("show", show.as_str()),
        ("show --json", show_json.as_str()),
        ("apply's output and -vv log", &format!("{}{}", apply.stdout, apply.stderr)),
    ] {
        for secret in ["PRIVATE KEY", token.as_str(), token_secret.as_str()] {
            assert!(!text.contains(secret), "{what} shows {secret:?}");
        }
    }

    // kubeconfig: mode 0600, the server from the state, a client
    // certificate the archive's CA signed.
    w.run(&["kubeconfig", "demo.toml", "--out", "admin.kubeconfig"]).ok();
    let mode = std::fs::metadata(w.path("admin.kubeconfig")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let kubeconfig = std::fs::read_to_string(w.path("admin.kubeconfig")).unwrap();
    let dns = attrs("aws_elb.apiserver")["dns_name"].as_str().unwrap().to_string();
    assert!(kubeconfig.contains(&format!("server: \"https://{dns}:6443\"")), "{kubeconfig}");
    assert_eq!(kubeconfig_field(&kubeconfig, "certificate-authority-data"), std::fs::read(&ca).unwrap());
    let client = dir.path().join("client.crt");
    std::fs::write(&client, kubeconfig_field(&kubeconfig, "client-certificate-data")).unwrap();
    tool("openssl", &["verify", "-CAfile", ca.to_str().unwrap(), client.to_str().unwrap()], None);
    let subject = tool("openssl", &["x509", "-in", client.to_str().unwrap(), "-noout", "-subject"], None);
    assert!(String::from_utf8_lossy(&subject).contains("system:masters"), "{}", String::from_utf8_lossy(&subject));
    // Printed on stdout without --out.
    assert!(w.run(&["kubeconfig", "demo.toml"]).ok().stdout.contains("client-key-data: "));

    // control_plane[0] booted and took the init lock: no change.
    rt.block_on(sm.delete_secret().secret_id(format!("{PREFIX}init-lock")).force_delete_without_recovery(true).send())
        .unwrap();
    let plan = w.run(&["plan", "demo.toml", "--detailed-exitcode"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // A secret the state forgot is found by the orphan lookup.
    w.run(&["state", "rm", "aws_secretsmanager_secret.join"]).ok();
    let plan: Value = serde_json::from_str(&w.run(&["plan", "demo.toml", "--json"]).ok().stdout).unwrap();
    let orphans: Vec<(&str, &str)> = plan["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["address"].as_str().unwrap(), o["id"].as_str().unwrap()))
        .collect();
    let join_name = format!("{PREFIX}join");
    assert_eq!(orphans, [("aws_secretsmanager_secret.join", join_name.as_str())]);

    // destroy removes every secret, the orphan too.
    let destroy = w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
    assert!(destroy.stdout.contains("aws_secretsmanager_secret.join"), "{}", destroy.stdout);
    assert_eq!(secrets(&rt, &sm), BTreeMap::new());
}
