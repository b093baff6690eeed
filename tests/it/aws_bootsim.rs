//! The simulated boot (docs/bootstrap.md, "Tests"): a cluster applied on
//! the emulator by a user holding exactly the seed's four policies, then
//! every node's real user data, read back from the emulator with the test's
//! own SDK client, booted as cloud-init would boot it
//! (`cloud_init_boot.py`: cloud-init's own `write_files` and `shellify`) in
//! a private mount namespace. The boot script's AWS calls go to the real
//! AWS CLI against the emulator, signed as a user holding exactly the
//! seed's Nodes policy (control planes: Control Plane and Nodes, as their
//! instance profile's role), with IAM enforced; `kubeadm`, `kubectl` and
//! `systemctl` are fakes that record their arguments (kubeadm also the
//! configuration and CA it was given). What cannot run here, kubeadm
//! itself, is the smoke test's (docs/bootstrap.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::aws_cli::example;
use crate::aws_iam::workdir_as;
use crate::emulator::{Emulator, Keys};

/// The seed's policy named `name` ("Nodes Policy", ...), as the data file holds it.
fn seed_policy(name: &str) -> Value {
    let text = include_str!("../../providers/aws-blueprint/data/seed-policies.json");
    let seed: Value = serde_json::from_str(text).unwrap();
    seed["policies"][name].clone()
}

fn all_seed_policies() -> Vec<Value> {
    ["Controller Policy", "Control Plane Policy", "Nodes Policy", "Deployment Policy"].map(seed_policy).to_vec()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The AWS CLI `scripts/emulator.sh install` puts beside moto.
fn aws_cli() -> PathBuf {
    let cli = repo(".venv/awscli/bin/aws");
    assert!(cli.exists(), "the AWS CLI is not installed ({}): run `scripts/emulator.sh install`", cli.display());
    cli
}

/// What one boot of one node did.
struct Boot {
    /// `exit=STATUS` per run, then what the node holds afterwards.
    stdout: String,
    /// The boot script's log (cloud-init-output.log on a node).
    stderr: String,
    /// Every `aws`, `kubeadm`, `kubectl`, `systemctl` call, one per line.
    calls: String,
    /// The configuration kubeadm was given, and the cluster CA on disk then.
    kubeadm_config: Option<String>,
    ca_cert: Option<String>,
    /// The manifest kubectl applied.
    cni: Option<String>,
}

impl Boot {
    fn exits(&self) -> Vec<i32> {
        self.stdout.lines().filter_map(|l| l.strip_prefix("exit=")).map(|s| s.parse().unwrap()).collect()
    }

    fn bootstrapped(&self) -> bool {
        self.stdout.contains("sentinel=yes")
    }

    fn kubeadm_calls(&self) -> Vec<&str> {
        self.calls.lines().filter(|l| l.starts_with("kubeadm ")).collect()
    }

    fn cni_applies(&self) -> usize {
        self.calls.lines().filter(|l| l.starts_with("kubectl ") && l.contains(" apply ")).count()
    }
}

/// Boots nodes in throwaway namespaces; the fakes' records go to one
/// directory per boot.
struct Sim {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    boots: usize,
}

impl Sim {
    fn new(emulator: &Emulator) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let shim = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\necho \"{name} $*\" >>\"$SIM_RECORDS/calls.log\"\n{body}"))
                .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        shim("aws", &format!("exec {} \"$@\"\n", aws_cli().display()));
        // kubeadm init|join --config FILE: keep the file and the CA it found.
        shim(
            "kubeadm",
            "cp \"$3\" \"$SIM_RECORDS/kubeadm.yaml\"\n\
             if [[ -e /etc/kubernetes/pki/ca.crt ]]; then\n\
               cp /etc/kubernetes/pki/ca.crt \"$SIM_RECORDS/ca.crt\"\n\
               stat -c 'mode %a %n' /etc/kubernetes/pki/ca.key /etc/kubernetes/pki/sa.key >>\"$SIM_RECORDS/calls.log\"\n\
             fi\n\
             exit \"${FAKE_KUBEADM_EXIT:-0}\"\n",
        );
        // curl ... --output FILE URL: Calico's manifest, the part that
        // matters (the pool CIDR it ships commented out).
        shim(
            "curl",
            "printf '%s\\n' 'kind: DaemonSet' '            # - name: CALICO_IPV4POOL_CIDR' \\\n               '            #   value: \"192.168.0.0/16\"' >\"$6\"\n",
        );
        // kubectl ... --filename FILE: keep what was applied; fail once
        // when asked to.
        shim(
            "kubectl",
            "if [[ -n ${FAKE_KUBECTL_FAIL_ONCE:-} && ! -e $SIM_RECORDS/kubectl-failed ]]; then\n\
               touch \"$SIM_RECORDS/kubectl-failed\"; echo 'connection refused' >&2; exit 1\n\
             fi\n\
             cp \"${@: -1}\" \"$SIM_RECORDS/cni.yaml\"\n",
        );
        shim("systemctl", "exit 0\n");
        // The script's retries wait between attempts; here they need not.
        std::fs::write(bin.join("sleep"), "#!/bin/bash\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("sleep"), std::fs::Permissions::from_mode(0o755)).unwrap();
        Sim { dir, env: emulator.env(), boots: 0 }
    }

    /// Boot `user_data` `runs` times on one fresh node, its AWS calls signed
    /// as `keys`.
    fn boot(&mut self, user_data: &str, runs: usize, keys: &Keys, extra_env: &[(&str, &str)]) -> Boot {
        self.boots += 1;
        let root = self.dir.path();
        let records = root.join(format!("boot-{}", self.boots));
        std::fs::create_dir_all(&records).unwrap();
        let data = records.join("user-data");
        std::fs::write(&data, user_data).unwrap();
        let layers = records.join("layers");
        // The node's /etc, /var/lib and /run: overlays and a tmpfs, gone
        // with the namespace; nothing is written to this machine's.
        let script = format!(
            "set -e\nmkdir -p {l}\nmount -t tmpfs tmpfs {l}\nmkdir {l}/eu {l}/ew {l}/vu {l}/vw\n\
             mount -t overlay overlay -o lowerdir=/etc,upperdir={l}/eu,workdir={l}/ew /etc\n\
             mount -t overlay overlay -o lowerdir=/var/lib,upperdir={l}/vu,workdir={l}/vw /var/lib\n\
             mount -t tmpfs tmpfs /run\nset +e\n\
             /usr/bin/python3 {boot} {data} {runs}\n\
             [[ -e /var/lib/skyplan/bootstrap.done ]] && echo sentinel=yes\n\
             [[ -e /run/kubeadm/kubeadm.yaml ]] && echo kubeadm-config-left=yes\n\
             exit 0\n",
            l = layers.display(),
            boot = repo("tests/it/cloud_init_boot.py").display(),
            data = data.display(),
        );
        let home = records.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "bash", "-c", &script])
            .env("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", root.join("bin").display()))
            .env("HOME", &home)
            .env("SIM_RECORDS", &records)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_ACCESS_KEY_ID", &keys.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .envs(extra_env.iter().copied());
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run unshare ({e}): install util-linux with scripts/tools.sh install"));
        let read = |name: &str| std::fs::read_to_string(records.join(name)).ok();
        Boot {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls: read("calls.log").unwrap_or_default(),
            kubeadm_config: read("kubeadm.yaml"),
            ca_cert: read("ca.crt"),
            cni: read("cni.yaml"),
        }
    }
}

/// The user data of instance `id` and of launch template `name`'s default
/// version, read with the test's SDK client.
async fn instance_user_data(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let out = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let b64 = out.user_data().and_then(|v| v.value()).unwrap_or_else(|| panic!("{id} has user data"));
    String::from_utf8(aws_smithy_types::base64::decode(b64).unwrap()).unwrap()
}

async fn template_user_data(ec2: &aws_sdk_ec2::Client, name: &str) -> String {
    let data = crate::emulator::default_template_data(ec2, name).await;
    String::from_utf8(aws_smithy_types::base64::decode(data.user_data().unwrap()).unwrap()).unwrap()
}

/// The secret's string or (base64-decoded) binary value, or None when it
/// does not exist; read as the emulator's administrator. (Never put one
/// in an assertion's message.)
async fn secret(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Option<Vec<u8>> {
    match sm.get_secret_value().secret_id(name).send().await {
        Ok(v) => Some(match v.secret_string() {
            Some(s) => s.as_bytes().to_vec(),
            None => v.secret_binary().unwrap().as_ref().to_vec(),
        }),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => None,
        Err(e) => panic!("GetSecretValue {name}: {e:?}"),
    }
}

/// kubeadm's discovery hash of a CA certificate, computed with openssl:
/// sha256 of the DER SubjectPublicKeyInfo.
fn openssl_ca_hash(cert_pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("ca.crt");
    std::fs::write(&cert, cert_pem).unwrap();
    let out = Command::new("bash")
        .args([
            "-c",
            "openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
            "-",
            cert.to_str().unwrap(),
        ])
        .output()
        .expect("openssl (scripts/tools.sh install)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    format!("sha256:{}", String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap())
}

/// `key: "value"` of a kubeadm document (the first such line).
fn yaml_value<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    doc.lines().find_map(|l| l.trim_start().strip_prefix(&format!("{key}: "))).map(|v| v.trim_matches('"'))
}

#[test]
fn nodes_boot_from_their_real_user_data_into_one_cluster() {
    let emulator = Emulator::start_enforcing_iam();
    let operator = emulator.iam_user("operator", &all_seed_policies());
    let node = emulator.iam_user("node", &[seed_policy("Nodes Policy")]);
    let control_plane =
        emulator.iam_user("control-plane", &[seed_policy("Control Plane Policy"), seed_policy("Nodes Policy")]);
    let w = workdir_as(&emulator, &operator);
    w.write("demo.toml", &example());
    w.run(&["apply", "demo.toml", "--auto-approve"]).ok();
    let state = w.json("demo.state.json");
    let resources = &state["resources"];
    let id = |address: &str| {
        resources[address]["id"].as_str().unwrap_or_else(|| panic!("{address} in the state")).to_string()
    };
    let dns = resources["aws_elb.apiserver"]["attributes"]["dns_name"].as_str().unwrap().to_string();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = rt.block_on(emulator.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let cp_data: Vec<String> = (0..3)
        .map(|i| rt.block_on(instance_user_data(&ec2, &id(&format!("aws_instance.control_plane[{i}]")))))
        .collect();
    let worker_data = rt.block_on(template_user_data(&ec2, "demo-worker"));
    let lock = "aws.cluster.x-k8s.io/demo/init-lock";
    let pki = "aws.cluster.x-k8s.io/demo/pki";
    let join = "aws.cluster.x-k8s.io/demo/join";
    assert!(rt.block_on(secret(&sm, lock)).is_some(), "apply made the init lock");
    let join_text = String::from_utf8(rt.block_on(secret(&sm, join)).expect("apply made the join secret")).unwrap();
    let token = join_text.lines().find_map(|l| l.strip_prefix("token=")).unwrap().to_string();
    for data in cp_data.iter().chain([&worker_data]) {
        assert!(!data.contains(&token) && !data.contains("PRIVATE KEY"), "no secret in user data");
    }

    let mut sim = Sim::new(&emulator);
    // control_plane[0]: takes the lock, initializes, applies the CNI. Booted
    // three times: the first run's CNI apply fails (the API answers no
    // more than once here), the second finishes it without running kubeadm
    // again, the third (a reboot) does nothing.
    let first = sim.boot(&cp_data[0], 3, &control_plane, &[("FAKE_KUBECTL_FAIL_ONCE", "1"), ("SKYPLAN_ATTEMPTS", "1")]);
    assert_eq!(first.exits(), [1, 0, 0], "{}\n{}", first.stdout, first.stderr);
    assert_eq!(first.kubeadm_calls(), ["kubeadm init --config /run/kubeadm/kubeadm.yaml"], "once: {}", first.calls);
    assert!(first.stderr.contains("took the init lock") && first.stderr.contains("nothing to do"), "{}", first.stderr);
    assert!(first.stderr.contains("FAILED: could not apply the CNI manifest"), "{}", first.stderr);
    assert!(first.stderr.contains("kubeadm init ran on this node before"), "{}", first.stderr);
    assert_eq!(first.cni_applies(), 2, "one failed, one applied: {}", first.calls);
    let calico = "curl --fail --silent --show-error --location --output /run/skyplan/cni.yaml \
                  https://raw.githubusercontent.com/projectcalico/calico/v3.28.0/manifests/calico.yaml";
    assert!(first.calls.contains(calico), "{}", first.calls);
    let applied = first.cni.clone().unwrap();
    assert!(applied.contains("- name: CALICO_IPV4POOL_CIDR\n              value: \"172.16.0.0/16\""), "{applied}");
    assert!(first.bootstrapped() && !first.stdout.contains("kubeadm-config-left"), "{}", first.stdout);
    assert!(first.calls.contains("mode 600 /etc/kubernetes/pki/ca.key"), "{}", first.calls);
    assert!(rt.block_on(secret(&sm, lock)).is_none(), "the lock was deleted");
    assert!(rt.block_on(secret(&sm, pki)).is_some() && rt.block_on(secret(&sm, join)).is_some());
    let init = first.kubeadm_config.clone().unwrap();
    assert!(init.contains("kind: InitConfiguration") && init.contains(&format!("token: \"{token}\"")), "{init}");
    assert_eq!(yaml_value(&init, "controlPlaneEndpoint"), Some(format!("{dns}:6443").as_str()), "{init}");
    let ca = first.ca_cert.clone().unwrap();
    let hash = openssl_ca_hash(&ca);
    assert_eq!(join_text.lines().find_map(|l| l.strip_prefix("ca-cert-hash=")), Some(hash.as_str()));
    assert!(!first.stderr.contains(&token), "no token in the boot log");

    // The other control planes join, with the same CA, the token and the hash.
    for data in &cp_data[1..] {
        let boot = sim.boot(data, 1, &control_plane, &[]);
        assert_eq!(boot.exits(), [0], "{}\n{}", boot.stdout, boot.stderr);
        assert_eq!(boot.kubeadm_calls(), ["kubeadm join --config /run/kubeadm/kubeadm.yaml"], "{}", boot.calls);
        let config = boot.kubeadm_config.clone().unwrap();
        assert!(config.contains("controlPlane: {}") && config.contains(&hash), "{config}");
        assert!(config.contains(&format!("token: \"{token}\"")) && config.contains(&format!("{dns}:6443")), "{config}");
        assert_eq!(boot.ca_cert.as_deref(), Some(ca.as_str()), "one CA for every control plane");
        assert!(!boot.calls.contains("delete-secret"), "{}", boot.calls);
        assert_eq!(boot.cni_applies(), 0, "only the initializing node installs the CNI");
    }

    // A worker: joins with the token and the CA hash, never reads the PKI.
    let worker = sim.boot(&worker_data, 2, &node, &[]);
    assert_eq!(worker.exits(), [0, 0], "{}\n{}", worker.stdout, worker.stderr);
    assert_eq!(worker.kubeadm_calls(), ["kubeadm join --config /run/kubeadm/kubeadm.yaml"], "{}", worker.calls);
    let config = worker.kubeadm_config.as_deref().unwrap();
    assert!(!config.contains("controlPlane") && config.contains(&hash) && config.contains(&token), "{config}");
    assert!(worker.ca_cert.is_none() && !worker.calls.contains(pki), "{}", worker.calls);
    assert_eq!(worker.cni_applies(), 0);

    // A replaced control_plane[0] finds the lock gone and joins.
    let replaced = sim.boot(&cp_data[0], 1, &control_plane, &[]);
    assert_eq!(replaced.kubeadm_calls(), ["kubeadm join --config /run/kubeadm/kubeadm.yaml"], "{}", replaced.calls);
    assert!(replaced.stderr.contains("joining it as a control plane"), "{}", replaced.stderr);
    assert!(replaced.kubeadm_config.as_deref().unwrap().contains("controlPlane: {}"));
    assert_eq!(replaced.cni_applies(), 0, "the CNI was installed once, by the node that initialized");

    // Failures, each clear and leaving no sentinel. kubeadm fails:
    let failing = sim.boot(&worker_data, 1, &node, &[("FAKE_KUBEADM_EXIT", "1")]);
    assert_eq!(failing.exits(), [1], "{}", failing.stdout);
    assert!(!failing.bootstrapped(), "{}", failing.stdout);
    assert!(failing.stderr.contains("FAILED: kubeadm join exited with status 1"), "{}", failing.stderr);

    // The node may not delete the lock (a role without the Nodes policy's
    // DeleteSecret): it does not initialize.
    let read_only = emulator.iam_user(
        "read-only-node",
        &[serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
            "Resource": "arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/*"}]})],
    );
    rt.block_on(sm.create_secret().name(lock).secret_string("lock").send()).unwrap();
    let denied = sim.boot(&cp_data[0], 1, &read_only, &[("SKYPLAN_ATTEMPTS", "2")]);
    assert_eq!(denied.exits(), [1], "{}\n{}", denied.stdout, denied.stderr);
    assert!(denied.kubeadm_calls().is_empty() && !denied.bootstrapped(), "{}", denied.calls);
    assert!(denied.stderr.contains("FAILED: could not delete the init lock"), "{}", denied.stderr);
    rt.block_on(sm.delete_secret().secret_id(lock).force_delete_without_recovery(true).send()).unwrap();

    // A missing secret: named at once.
    rt.block_on(sm.delete_secret().secret_id(join).force_delete_without_recovery(true).send()).unwrap();
    let missing = sim.boot(&worker_data, 1, &node, &[]);
    assert_eq!(missing.exits(), [1], "{}\n{}", missing.stdout, missing.stderr);
    assert!(
        missing.stderr.contains(&format!("FAILED: could not read the bootstrap token from secret {join}")),
        "{}",
        missing.stderr
    );

    w.run(&["destroy", "demo.toml", "--auto-approve"]).ok();
    for name in [pki, join, lock] {
        assert!(rt.block_on(secret(&sm, name)).is_none(), "destroy deleted {name}");
    }
}
