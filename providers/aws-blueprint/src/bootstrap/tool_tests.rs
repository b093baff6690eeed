//! What a node boots with, checked by the tools that will read it, not by
//! skyplan's own parsers: openssl over the generated PKI and kubeadmin
//! kubeconfig, tar unpacking the PKI secret as the node does, cloud-init's
//! own schema validator (and PyYAML, its reader) over every cloud-config,
//! shellcheck over every script.
//!
//! Unit tests of the blueprint crate (they build in seconds, without the
//! SDK). The tools come from scripts/tools.sh (which scripts/test.sh runs).
//! A missing tool fails these tests with the command to install it: they
//! never skip.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use crate::bootstrap::{admin_kubeconfig, ClusterPki, ClusterSecrets, KubeconfigTarget, SecretKind, SecretValue};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../../../examples/dynamic-cluster.toml");
const DNS: &str = "demo-apiserver-1234567890.us-east-1.elb.amazonaws.com";

/// Runs `program` with `args` (and `stdin`), failing the test when the tool
/// is not installed.
fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install the test tools with scripts/tools.sh install"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `run`, which must succeed; its stdout.
fn ok(program: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(program, args, stdin);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The Python that cloud-init runs on (its script's `#!` line), which has
/// the `cloudinit` and `yaml` modules; the first `python3` on PATH may not.
fn cloud_init_python() -> String {
    let script = ok("sh", &["-c", "command -v cloud-init"], None);
    let text = std::fs::read_to_string(script.trim()).unwrap();
    let shebang = text.lines().next().and_then(|l| l.strip_prefix("#!")).unwrap_or("python3");
    shebang.split_whitespace().next().unwrap().to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The PKI secret unpacked with tar as the boot script does, into `dir`.
fn unpack_pki(dir: &Path, secrets: &ClusterSecrets) {
    let SecretValue::Binary(archive) = secrets.value(SecretKind::Pki, "demo", SystemTime::now()) else {
        panic!("the PKI secret is binary")
    };
    ok(
        "tar",
        &["--extract", "--file=-", "--directory", path(dir), "--no-same-owner", "--same-permissions"],
        Some(&archive),
    );
}

fn x509(cert: &Path, args: &[&str]) -> String {
    let mut all = vec!["x509", "-in", path(cert), "-noout"];
    all.extend(args);
    ok("openssl", &all, None)
}

/// Seconds since the epoch of an `-dateopt iso_8601` date (`2026-12-02 06:33:03Z`).
fn iso_seconds(text: &str) -> i64 {
    let t = text.trim().trim_end_matches('Z');
    let (date, time) = t.split_once(' ').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let c: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + c[0] * 3600 + c[1] * 60 + c[2]
}

/// (notBefore, notAfter) in seconds since the epoch.
fn validity(cert: &Path) -> (i64, i64) {
    let out = x509(cert, &["-startdate", "-enddate", "-dateopt", "iso_8601"]);
    let field = |name: &str| {
        let line = out.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{name} in {out}"));
        iso_seconds(line)
    };
    (field("notBefore="), field("notAfter="))
}

fn now_seconds() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The public key of a private key, and of a certificate, as openssl prints them.
fn public_of_key(key: &Path) -> String {
    ok("openssl", &["pkey", "-in", path(key), "-pubout"], None)
}

fn public_of_cert(cert: &Path) -> String {
    x509(cert, &["-pubkey"])
}

#[test]
fn openssl_accepts_the_cas_and_service_account_key_as_kubeadm_wants_them() {
    let secrets = ClusterSecrets::generate(SystemTime::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    unpack_pki(dir.path(), &secrets);
    let now = now_seconds();

    for (file, subject) in [("ca", "CN=kubernetes"), ("etcd/ca", "CN=etcd-ca"), ("front-proxy-ca", "CN=front-proxy-ca")]
    {
        let cert = dir.path().join(format!("{file}.crt"));
        let key = dir.path().join(format!("{file}.key"));
        assert_eq!(x509(&cert, &["-subject", "-nameopt", "RFC2253"]).trim(), format!("subject={subject}"));
        assert_eq!(x509(&cert, &["-issuer", "-nameopt", "RFC2253"]).trim(), format!("issuer={subject}"));
        assert_eq!(x509(&cert, &["-serial"]).trim(), "serial=00", "{file}: serial 0, as cluster-api");
        let ext = x509(&cert, &["-ext", "basicConstraints,keyUsage"]);
        assert!(ext.contains("CA:TRUE, pathlen:0"), "{file}: {ext}");
        assert!(ext.contains("Digital Signature, Key Encipherment, Certificate Sign"), "{file}: {ext}");
        let text = x509(&cert, &["-text"]);
        assert!(text.contains("Public-Key: (2048 bit)") && text.contains("rsaEncryption"), "{file}: {text}");
        assert!(text.contains("sha256WithRSAEncryption"), "{file}: {text}");
        let (not_before, not_after) = validity(&cert);
        assert!(not_before <= now - 4 * 60 && not_before >= now - 6 * 60, "{file}: backdated five minutes");
        assert_eq!((not_after - not_before) / 86_400, 3650, "{file}: ten years");
        ok("openssl", &["verify", "-CAfile", path(&cert), path(&cert)], None);
        assert!(
            std::fs::read_to_string(&key).unwrap().starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "{file}: PKCS#1"
        );
        ok("openssl", &["rsa", "-in", path(&key), "-check", "-noout"], None);
        assert_eq!(public_of_key(&key), public_of_cert(&cert), "{file}: the key is the certificate's");
    }
    // The three CAs are three keys; none vouches for another.
    let ca = dir.path().join("ca.crt");
    let etcd = dir.path().join("etcd/ca.crt");
    assert_ne!(public_of_cert(&ca), public_of_cert(&etcd));
    assert!(!run("openssl", &["verify", "-CAfile", path(&ca), path(&etcd)], None).status.success());

    let sa_key = dir.path().join("sa.key");
    let sa_pub = std::fs::read_to_string(dir.path().join("sa.pub")).unwrap();
    assert!(sa_pub.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{sa_pub}");
    assert_eq!(public_of_key(&sa_key), sa_pub, "sa.pub is sa.key's public half");

    // Modes as kubeadm writes them, kept by tar's --same-permissions.
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in
        [("ca.key", 0o600), ("ca.crt", 0o644), ("etcd/ca.key", 0o600), ("sa.key", 0o600), ("sa.pub", 0o644)]
    {
        let actual = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(actual, mode, "{file}: {actual:o}");
    }

    // The discovery hash is what openssl computes over the CA's public key.
    let spki = ok("openssl", &["x509", "-in", path(&ca), "-noout", "-pubkey"], None);
    let der = run("openssl", &["pkey", "-pubin", "-outform", "DER"], Some(spki.as_bytes()));
    assert!(der.status.success());
    let digest = ok("openssl", &["dgst", "-sha256", "-r"], Some(&der.stdout));
    let hex = digest.split_whitespace().next().unwrap();
    assert_eq!(secrets.ca_cert_hash(), format!("sha256:{hex}"));

    // The join secret carries the same hash and the token.
    let SecretValue::String(join) = secrets.value(SecretKind::Join, "demo", SystemTime::now()) else { panic!() };
    assert!(join.contains(&format!("ca-cert-hash=sha256:{hex}\n")), "the join secret's hash");
}

#[test]
fn openssl_accepts_the_admin_kubeconfig() {
    let secrets = ClusterSecrets::generate(SystemTime::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    unpack_pki(dir.path(), &secrets);
    // As `skyplan kubeconfig` on another machine: the CA from the secret's bytes only.
    let SecretValue::Binary(archive) = secrets.value(SecretKind::Pki, "demo", SystemTime::now()) else { panic!() };
    let pki = ClusterPki::from_archive(&archive).unwrap();
    let target = KubeconfigTarget { cluster_name: "demo".into(), server: format!("https://{DNS}:6443") };
    let text = admin_kubeconfig(&pki.cluster_ca, &target, SystemTime::now()).unwrap();

    // PyYAML (cloud-init's reader) as a neutral YAML parser.
    let json = ok(
        &cloud_init_python(),
        &["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        Some(text.as_bytes()),
    );
    let config: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(config["kind"], "Config");
    assert_eq!(config["current-context"], "demo-admin@demo");
    let cluster = &config["clusters"][0]["cluster"];
    assert_eq!(cluster["server"], format!("https://{DNS}:6443"));
    let b64 = |v: &Value| ok("base64", &["-d"], Some(v.as_str().unwrap().as_bytes()));
    let ca_data = b64(&cluster["certificate-authority-data"]);
    assert_eq!(ca_data, std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(), "byte-equal to ca.crt");
    let user = &config["users"][0]["user"];
    let cert = dir.path().join("admin.crt");
    let key = dir.path().join("admin.key");
    std::fs::write(&cert, b64(&user["client-certificate-data"])).unwrap();
    std::fs::write(&key, b64(&user["client-key-data"])).unwrap();

    ok("openssl", &["verify", "-CAfile", path(&dir.path().join("ca.crt")), path(&cert)], None);
    let etcd = dir.path().join("etcd/ca.crt");
    assert!(!run("openssl", &["verify", "-CAfile", path(&etcd), path(&cert)], None).status.success());
    let subject = x509(&cert, &["-subject", "-nameopt", "RFC2253"]);
    assert_eq!(subject.trim(), "subject=CN=kubernetes-admin,O=system:masters");
    let ext = x509(&cert, &["-ext", "extendedKeyUsage,basicConstraints,keyUsage"]);
    assert!(ext.contains("TLS Web Client Authentication") && !ext.contains("Server"), "{ext}");
    assert!(ext.contains("CA:FALSE") && ext.contains("Digital Signature, Key Encipherment"), "{ext}");
    assert_ne!(x509(&cert, &["-serial"]).trim(), "serial=00", "a random serial");
    let (not_before, not_after) = validity(&cert);
    assert!(not_before <= now_seconds() - 4 * 60);
    assert_eq!((not_after - not_before) / 86_400, 365, "one year");
    assert_eq!(public_of_key(&key), public_of_cert(&cert));
    assert!(std::fs::read_to_string(&key).unwrap().starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
}

/// The example cluster's nodes' user data, the load balancer's DNS name
/// resolved as apply would: (address, text).
fn user_data(spec_text: &str) -> Vec<(String, String)> {
    let spec = crate::fixtures::parse(spec_text);
    let resources = crate::expand(&spec).unwrap();
    let mut out = Vec::new();
    for r in resources {
        let Some(value) = r.attrs.get("user_data") else { continue };
        let resolved = skyplan_engine::value::resolve(value, &mut |reference| {
            assert_eq!(reference.to_string(), "${aws_elb.apiserver.dns_name}");
            Value::String(DNS.into())
        });
        out.push((r.address.to_string(), resolved.as_str().unwrap().to_string()));
    }
    assert!(out.len() >= 4, "three control planes and a pool: {out:?}");
    out
}

/// Both kubeadm config APIs: the example as written (1.30, v1beta3) and on 1.31 (v1beta4).
fn example_versions() -> Vec<String> {
    assert!(EXAMPLE.contains("version = \"1.30.4\""));
    vec![EXAMPLE.to_string(), EXAMPLE.replace("version = \"1.30.4\"", "version = \"1.31.2\"")]
}

fn schema(file: &Path) -> Output {
    run("cloud-init", &["schema", "--config-file", path(file), "--annotate"], None)
}

#[test]
fn cloud_init_validates_every_cloud_config_and_reads_back_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut roles = BTreeSet::new();
    for spec in example_versions() {
        for (address, text) in user_data(&spec) {
            // cloud-init 22.4's validator wants `#cloud-config` on line one
            // (so no jinja header), and skyplan uses no jinja at all.
            assert!(text.starts_with("#cloud-config\n"), "{address}");
            let file = dir.path().join("user-data.yaml");
            std::fs::write(&file, &text).unwrap();
            let out = schema(&file);
            assert!(
                out.status.success(),
                "{address}: cloud-init schema failed:\n{}{}\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );

            // 22.4's schema allows any top-level key: check them here.
            let json = ok(
                &cloud_init_python(),
                &["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", path(&file)],
                None,
            );
            let doc: Value = serde_json::from_str(&json).unwrap();
            let keys: BTreeSet<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, BTreeSet::from(["runcmd", "write_files"]), "{address}");
            assert_eq!(doc["runcmd"], serde_json::json!([["/bin/bash", "/etc/skyplan/bootstrap.sh"]]));

            // Every file's bytes as cloud-init will write them: the script
            // and the kubeadm templates exactly as rendered.
            let files = doc["write_files"].as_array().unwrap();
            let parsed: Vec<(&str, &str)> =
                files.iter().map(|f| (f["path"].as_str().unwrap(), f["content"].as_str().unwrap())).collect();
            let rendered = crate::bootstrap::userdata::written_files(&text);
            assert_eq!(parsed.len(), rendered.len(), "{address}");
            for ((path, content), (r_path, r_mode, r_content)) in parsed.iter().zip(&rendered) {
                assert_eq!((*path, *content), (r_path.as_str(), r_content.as_str()), "{address}");
                let f = files.iter().find(|f| f["path"] == *path).unwrap();
                assert_eq!(f["permissions"], r_mode.as_str());
                assert_eq!(f["owner"], "root:root");
            }
            let script = parsed.iter().find(|(p, _)| *p == "/etc/skyplan/bootstrap.sh").unwrap().1;
            let role = script.lines().find_map(|l| l.strip_prefix("readonly ROLE=")).unwrap();
            roles.insert(role.to_string());
            let templates: Vec<&str> = parsed.iter().filter(|(p, _)| p.contains("kubeadm")).map(|(_, c)| *c).collect();
            assert!(!templates.is_empty(), "{address}");
            for template in templates {
                assert!(template.contains(DNS), "{address}: the endpoint is resolved");
            }
        }
    }
    assert_eq!(roles, BTreeSet::from(["'control-plane'".into(), "'init'".into(), "'worker'".into()]));

    // The validator does validate: a misspelled write_files key fails it.
    let (_, text) = user_data(EXAMPLE).remove(0);
    let broken = text.replacen("    permissions:", "    permission:", 1);
    assert_ne!(broken, text);
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = schema(&file);
    assert!(!out.status.success(), "cloud-init schema accepted a misspelled key");
}

/// shellcheck over the boot script of every role, and over the `runcmd`
/// script exactly as cloud-init writes it (its own `shellify`, `#!/bin/sh`).
#[test]
fn shellcheck_passes_every_script() {
    let mut checked = 0;
    for spec in example_versions() {
        for (address, text) in user_data(&spec) {
            let files = crate::bootstrap::userdata::written_files(&text);
            let (_, _, script) = files.iter().find(|(p, _, _)| p == "/etc/skyplan/bootstrap.sh").unwrap();
            assert!(script.starts_with("#!/bin/bash\n"), "{address}");
            let out = run("shellcheck", &["--shell=bash", "--severity=style", "-"], Some(script.as_bytes()));
            assert!(
                out.status.success(),
                "{address}: shellcheck:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let runcmd = ok(
                &cloud_init_python(),
                &[
                    "-c",
                    "import sys, yaml\nfrom cloudinit import util\nprint(util.shellify(yaml.safe_load(sys.stdin)['runcmd']), end='')",
                ],
                Some(text.as_bytes()),
            );
            assert!(runcmd.starts_with("#!/bin/sh\n"), "{runcmd}");
            ok("shellcheck", &["--shell=sh", "--severity=style", "-"], Some(runcmd.as_bytes()));
            checked += 1;
        }
    }
    assert!(checked >= 8);
    // shellcheck does check: an unquoted expansion is a finding.
    let out = run("shellcheck", &["--shell=bash", "-"], Some(b"#!/bin/bash\nrm -f $1\n"));
    assert!(!out.status.success());
}

/// The boot script run for real in a private mount namespace (its absolute
/// paths on tmpfs), with PATH shims for `aws` (serving the secrets from
/// files, recording its arguments), `kubeadm` (recording, checking its
/// config) and `sleep`: init takes the lock, writes the CAs and a config
/// with the token; a second run does nothing; a worker never reads the PKI.
#[test]
fn the_boot_script_takes_the_init_lock_runs_kubeadm_once_and_keeps_no_token() {
    let secrets = ClusterSecrets::generate(SystemTime::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = root.join("store");
    let bin = root.join("bin");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let now = SystemTime::now();
    for kind in SecretKind::ALL {
        let name = crate::bootstrap::secret_name("demo", kind).replace('/', "_");
        match secrets.value(kind, "demo", now) {
            SecretValue::String(s) => std::fs::write(store.join(format!("{name}.SecretString")), s).unwrap(),
            SecretValue::Binary(b) => {
                let b64 = ok("base64", &["-w0"], Some(&b));
                std::fs::write(store.join(format!("{name}.SecretBinary")), b64).unwrap()
            }
        }
    }
    let shim = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/bash\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // aws secretsmanager --region R --output text get-secret-value|delete-secret --secret-id ID [--query F]
    shim(
        "aws",
        &format!(
            r#"echo "aws $*" >> {log}
op=$6; id=${{8//\//_}}
if [[ $op == get-secret-value ]]; then
  field=${{10}}; [[ $field == Name ]] && field=SecretString
  f={store}/$id.$field
  [[ -e $f ]] || {{ echo "An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation" >&2; exit 254; }}
  cat "$f"; echo
elif [[ $op == delete-secret ]]; then
  rm {store}/$id.* 2>/dev/null || {{ echo "An error occurred (ResourceNotFoundException)" >&2; exit 254; }}
fi
"#,
            log = path(&root.join("calls.log")),
            store = path(&store)
        ),
    );
    shim(
        "kubeadm",
        &format!(
            r#"echo "kubeadm $*" >> {log}
cp "$3" {root}/kubeadm-config-seen.yaml
ls -l /etc/kubernetes/pki >> {log} 2>&1 || true
exit "${{FAKE_KUBEADM_EXIT:-0}}"
"#,
            log = path(&root.join("calls.log")),
            root = path(root)
        ),
    );
    shim("sleep", "exit 0\n");
    // curl ... --output FILE URL: Calico's manifest, in the part that matters
    // (the pool CIDR it ships commented out).
    shim(
        "curl",
        &format!(
            r#"echo "curl $*" >> {log}
printf '%s\n' 'kind: DaemonSet' '            # - name: CALICO_IPV4POOL_CIDR' '            #   value: "192.168.0.0/16"' > "$6"
"#,
            log = path(&root.join("calls.log"))
        ),
    );
    // kubectl ... --filename FILE: keep what was applied.
    shim(
        "kubectl",
        &format!(
            r#"echo "kubectl $*" >> {log}
cp "${{@: -1}}" {root}/cni-applied.yaml
"#,
            log = path(&root.join("calls.log")),
            root = path(root)
        ),
    );

    let specs = user_data(EXAMPLE);
    let script_of = |address: &str| {
        let text = &specs.iter().find(|(a, _)| a == address).unwrap().1;
        crate::bootstrap::userdata::written_files(text)
    };
    // One sandboxed boot: the files cloud-init would write, then the script.
    let boot = |address: &str, runs: usize, kubeadm_exit: i32| -> (Output, String) {
        let files = script_of(address);
        // /etc and /var/lib as overlays on a tmpfs, /run a tmpfs: the
        // node's paths, and nothing written to this machine's.
        let layers = root.join("layers");
        let mut setup = format!(
            "set -e\nmkdir -p {l}\nmount -t tmpfs tmpfs {l}\nmkdir {l}/eu {l}/ew {l}/vu {l}/vw\n\
             mount -t overlay overlay -o lowerdir=/etc,upperdir={l}/eu,workdir={l}/ew /etc\n\
             mount -t overlay overlay -o lowerdir=/var/lib,upperdir={l}/vu,workdir={l}/vw /var/lib\n\
             mount -t tmpfs tmpfs /run\nmkdir -p /etc/skyplan\n",
            l = path(&layers)
        );
        for (p, mode, content) in &files {
            let staged = root.join(p.trim_start_matches('/').replace('/', "_"));
            std::fs::write(&staged, content).unwrap();
            setup.push_str(&format!("install -m {mode} {} {p}\n", path(&staged)));
        }
        setup.push_str("set +e\n");
        for _ in 0..runs {
            setup.push_str("/bin/bash /etc/skyplan/bootstrap.sh; echo \"exit=$?\"\n");
        }
        setup.push_str("echo '--- after'; ls -R /etc/kubernetes /run/kubeadm /var/lib/skyplan 2>&1\n");
        let _ = std::fs::remove_file(root.join("calls.log"));
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash", "-c", &setup])
            .env("PATH", format!("{}:{}", path(&bin), std::env::var("PATH").unwrap()))
            .env("FAKE_KUBEADM_EXIT", kubeadm_exit.to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run unshare ({e}): install util-linux with scripts/tools.sh install"));
        let calls = std::fs::read_to_string(root.join("calls.log")).unwrap_or_default();
        (out, calls)
    };

    // The first control plane: lock taken, CAs written, init with the token.
    let (out, calls) = boot("aws_instance.control_plane[0]", 2, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.matches("exit=0").count() == 2, "{stdout}{stderr}");
    assert_eq!(calls.matches("kubeadm init --config /run/kubeadm/kubeadm.yaml").count(), 1, "once: {calls}");
    assert!(stderr.contains("nothing to do"), "the second run: {stderr}");
    let lock = "aws.cluster.x-k8s.io/demo/init-lock";
    assert!(calls.contains(&format!("delete-secret --secret-id {lock} --force-delete-without-recovery")), "{calls}");
    assert!(!calls.contains("delete-secret --secret-id aws.cluster.x-k8s.io/demo/pki"), "{calls}");
    assert!(!store.join("aws.cluster.x-k8s.io_demo_init-lock.SecretString").exists());
    assert!(calls.contains("-rw------- 1 root root") && calls.contains("ca.key"), "CAs in place for kubeadm: {calls}");
    let seen = std::fs::read_to_string(root.join("kubeadm-config-seen.yaml")).unwrap();
    let SecretValue::String(join) = secrets.value(SecretKind::Join, "demo", now) else { panic!() };
    let token = join.lines().next().unwrap().strip_prefix("token=").unwrap();
    assert!(seen.contains(&format!("token: \"{token}\"")) && seen.contains("kind: InitConfiguration"), "{seen}");
    assert!(!stdout.contains("kubeadm.yaml"), "the config with the token is gone: {stdout}");
    assert!(stdout.contains("bootstrap.done"), "{stdout}");
    assert!(!stderr.contains(token), "no token in the log");
    // Then the CNI, once, with the cluster's pod network.
    let url = "https://raw.githubusercontent.com/projectcalico/calico/v3.28.0/manifests/calico.yaml";
    assert_eq!(
        calls
            .matches(&format!("curl --fail --silent --show-error --location --output /run/skyplan/cni.yaml {url}"))
            .count(),
        1,
        "{calls}"
    );
    assert_eq!(
        calls.matches("kubectl --kubeconfig /etc/kubernetes/admin.conf apply --server-side --force-conflicts --filename /run/skyplan/cni.yaml").count(),
        1,
        "{calls}"
    );
    let applied = std::fs::read_to_string(root.join("cni-applied.yaml")).unwrap();
    assert!(
        applied.contains("            - name: CALICO_IPV4POOL_CIDR\n              value: \"172.16.0.0/16\"\n"),
        "{applied}"
    );

    // Replaced later: the lock is gone, so it joins as a control plane.
    let (out, calls) = boot("aws_instance.control_plane[0]", 1, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("joining it as a control plane"), "{stderr}");
    assert!(calls.contains("kubeadm join --config") && !calls.contains("kubeadm init"), "{calls}");
    assert!(
        !calls.contains("kubectl") && !calls.contains("curl"),
        "only the initializing node installs the CNI: {calls}"
    );
    let seen = std::fs::read_to_string(root.join("kubeadm-config-seen.yaml")).unwrap();
    assert!(seen.contains("controlPlane: {}") && seen.contains(&secrets.ca_cert_hash()), "{seen}");

    // A worker: join, no PKI read, no secret deleted.
    let (out, calls) = boot("aws_launch_template.pool[worker]", 1, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("exit=0"), "{:?}", out);
    assert!(!calls.contains("aws.cluster.x-k8s.io/demo/pki") && !calls.contains("delete-secret"), "{calls}");
    let seen = std::fs::read_to_string(root.join("kubeadm-config-seen.yaml")).unwrap();
    assert!(!seen.contains("controlPlane") && seen.contains(&format!("token: \"{token}\"")), "{seen}");

    // kubeadm fails: a clear failure, no sentinel, so nothing claims success.
    let (out, _) = boot("aws_instance.control_plane[1]", 1, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("exit=1") && !stdout.contains("bootstrap.done"), "{stdout}");
    assert!(stderr.contains("FAILED: kubeadm join exited with status 1"), "{stderr}");

    // A missing secret: a clear failure at once, naming it.
    std::fs::remove_file(store.join("aws.cluster.x-k8s.io_demo_join.SecretString")).unwrap();
    let (out, _) = boot("aws_launch_template.pool[worker]", 1, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FAILED: could not read the bootstrap token from secret aws.cluster.x-k8s.io/demo/join"),
        "{stderr}"
    );
}
