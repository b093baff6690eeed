//! A node's user data: one `#cloud-config` document that writes the boot
//! script and the node's kubeadm configuration templates under
//! `/etc/skyplan/` and runs the script once from `runcmd`.
//!
//! It holds no secret (the script reads them from Secrets Manager) and uses
//! only `write_files` and `runcmd`: no boothook, no `systemctl restart
//! cloud-init`, no include of a file that does not exist yet, no jinja
//! (research note §3 and §6.3: each of those breaks on some cloud-init).

use crate::bootstrap::kubeadm::{self, ClusterInputs, KubeadmRole, NodeInputs, Secrets};
use crate::bootstrap::secrets::{secret_name, SecretKind};
use crate::bootstrap::yaml::scalar;

/// Where the boot script goes, and the kubeadm templates beside it.
pub const SCRIPT_PATH: &str = "/etc/skyplan/bootstrap.sh";
pub const INIT_TEMPLATE_PATH: &str = "/etc/skyplan/kubeadm-init.yaml";
pub const JOIN_CONTROL_PLANE_TEMPLATE_PATH: &str = "/etc/skyplan/kubeadm-join-control-plane.yaml";
pub const JOIN_TEMPLATE_PATH: &str = "/etc/skyplan/kubeadm-join.yaml";
/// The cluster profile as applied (packs, versions, merged values), for the
/// add-ons installed after the cluster is up. 0600: a pack may mark values
/// sensitive, and those reach the nodes (only) through this file.
pub const PROFILE_PATH: &str = "/etc/skyplan/profile.yaml";
/// EC2's limit on user data, before base64, and the base64 length AWS cites.
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;
pub const MAX_USER_DATA_BASE64_CHARS: usize = 21_847;

/// The script's body; [`script`] puts the node's settings above it.
const SCRIPT_BODY: &str = include_str!("node-bootstrap.sh");

/// The boot script of a node, settings first.
pub fn script(cluster: &ClusterInputs, region: &str, role: KubeadmRole) -> String {
    let role = match role {
        KubeadmRole::Init => "init",
        KubeadmRole::JoinControlPlane => "control-plane",
        KubeadmRole::JoinWorker => "worker",
    };
    let name = &cluster.cluster_name;
    let settings = [
        ("ROLE", role.to_string()),
        ("REGION", region.to_string()),
        ("PKI_SECRET", secret_name(name, SecretKind::Pki)),
        ("JOIN_SECRET", secret_name(name, SecretKind::Join)),
        ("INIT_LOCK_SECRET", secret_name(name, SecretKind::InitLock)),
    ];
    // Only the initializing node installs the CNI; the others carry it empty.
    let cni = cluster.cni.as_ref().filter(|_| role == "init");
    let cni_settings = [
        ("CNI_MANIFEST_URL", cni.map(|c| c.manifest_url.clone())),
        ("CNI_MANIFEST_SHA256", cni.and_then(|c| c.manifest_sha256.clone())),
        ("CALICO_POOL_CIDR", cni.and_then(|c| c.calico_pool_cidr.clone())),
    ];
    let settings = settings.into_iter().chain(cni_settings.map(|(k, v)| (k, v.unwrap_or_default())));
    let mut out = String::from("#!/bin/bash\nset -o errexit -o nounset -o pipefail\numask 077\n\n# This node.\n");
    for (key, value) in settings {
        out.push_str(&format!("readonly {key}={}\n", shell_quote(&value)));
    }
    out.push('\n');
    out.push_str(SCRIPT_BODY);
    out
}

/// Single-quoted for sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The user data of a node. The initializing control plane also carries a
/// control-plane join configuration: if it is ever replaced after the
/// cluster exists, it finds the init lock gone and joins instead.
/// `profile` is the text of [`PROFILE_PATH`], when the cluster has a profile.
pub fn render(cluster: &ClusterInputs, region: &str, node: &NodeInputs, profile: Option<&str>) -> String {
    let (what, verb) = match node.role {
        KubeadmRole::Init => ("the first control plane", "initializes the cluster"),
        KubeadmRole::JoinControlPlane => ("a control plane", "joins the cluster"),
        KubeadmRole::JoinWorker => ("a worker", "joins the cluster"),
    };
    let mut files = vec![(SCRIPT_PATH, "0700", script(cluster, region, node.role))];
    let template = |role| kubeadm::render(cluster, &NodeInputs { role, ..node.clone() }, Secrets::Placeholders);
    match node.role {
        KubeadmRole::Init => {
            files.push((INIT_TEMPLATE_PATH, "0600", template(KubeadmRole::Init)));
            files.push((JOIN_CONTROL_PLANE_TEMPLATE_PATH, "0600", template(KubeadmRole::JoinControlPlane)));
        }
        KubeadmRole::JoinControlPlane => {
            files.push((JOIN_CONTROL_PLANE_TEMPLATE_PATH, "0600", template(KubeadmRole::JoinControlPlane)))
        }
        KubeadmRole::JoinWorker => files.push((JOIN_TEMPLATE_PATH, "0600", template(KubeadmRole::JoinWorker))),
    }
    if let Some(profile) = profile {
        files.push((PROFILE_PATH, "0600", profile.to_string()));
    }

    let mut out = String::from("#cloud-config\n");
    out.push_str(&format!(
        "# skyplan: {what} of cluster {} (pool {}); {verb} with kubeadm {}, reading its secrets from AWS Secrets Manager\n",
        cluster.cluster_name, node.pool, cluster.kubernetes_version
    ));
    out.push_str("write_files:\n");
    for (path, mode, content) in files {
        out.push_str(&format!(
            "  - path: {path}\n    owner: root:root\n    permissions: {}\n    content: |\n",
            scalar(mode)
        ));
        for line in content.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("      ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(&format!("runcmd:\n  - [/bin/bash, {SCRIPT_PATH}]\n"));
    out
}

/// The files a cloud-config writes, as cloud-init would: (path, mode, content).
/// For tests and `node-config`-style checks of rendered user data.
pub fn written_files(user_data: &str) -> Vec<(String, String, String)> {
    let mut files = Vec::new();
    let mut lines = user_data.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(path) = line.strip_prefix("  - path: ") else { continue };
        let mut mode = String::new();
        let mut content = String::new();
        while let Some(line) = lines.next_if(|l| l.starts_with("    ")) {
            if let Some(m) = line.strip_prefix("    permissions: ") {
                mode = m.trim_matches('"').to_string();
            }
            if line == "    content: |" {
                while let Some(body) = lines.next_if(|l| l.starts_with("      ") || l.is_empty()) {
                    content.push_str(body.get(6..).unwrap_or(""));
                    content.push('\n');
                }
            }
        }
        files.push((path.to_string(), mode, content));
    }
    files
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bootstrap::kubeadm::tests::inputs;
    use base64::Engine;

    pub(crate) fn all_user_data(cluster: &ClusterInputs) -> Vec<(KubeadmRole, String)> {
        [KubeadmRole::Init, KubeadmRole::JoinControlPlane, KubeadmRole::JoinWorker]
            .into_iter()
            .map(|role| {
                let node = NodeInputs { role, pool: "master".into(), no_workloads: true };
                (role, render(cluster, "us-east-1", &node, None))
            })
            .collect()
    }

    #[test]
    fn files_hold_the_script_and_the_templates_byte_for_byte() {
        let cluster = inputs("1.30.4");
        for (role, text) in all_user_data(&cluster) {
            let files = written_files(&text);
            assert_eq!(files[0].0, SCRIPT_PATH);
            assert_eq!(files[0].1, "0700");
            assert_eq!(files[0].2, script(&cluster, "us-east-1", role), "{text}");
            let node = NodeInputs { role, pool: "master".into(), no_workloads: true };
            let expected = kubeadm::render(&cluster, &node, Secrets::Placeholders);
            assert_eq!(files[1].2, expected);
            assert_eq!(files.len(), if role == KubeadmRole::Init { 3 } else { 2 });
            assert!(text.ends_with("runcmd:\n  - [/bin/bash, /etc/skyplan/bootstrap.sh]\n"), "{text}");
        }
    }

    #[test]
    fn the_script_and_the_renderer_agree_on_placeholders_and_paths() {
        for needle in [
            kubeadm::TOKEN_PLACEHOLDER,
            kubeadm::CA_CERT_HASH_PLACEHOLDER,
            INIT_TEMPLATE_PATH.rsplit('/').next().unwrap(),
            JOIN_TEMPLATE_PATH.rsplit('/').next().unwrap(),
            JOIN_CONTROL_PLANE_TEMPLATE_PATH.rsplit('/').next().unwrap(),
            "CONFIG_DIR=/etc/skyplan",
            "PKI_DIR=/etc/kubernetes/pki",
        ] {
            assert!(SCRIPT_BODY.contains(needle), "{needle}");
        }
    }

    #[test]
    fn no_secret_and_no_fragile_cloud_init_feature() {
        let cluster = inputs("1.31.0");
        for (_, text) in all_user_data(&cluster) {
            for banned in [
                "#cloud-boothook",
                "## template: jinja",
                "x-include-url",
                "#include",
                "restart cloud-init",
                "PRIVATE KEY",
                "{{",
                "{%",
            ] {
                assert!(!text.contains(banned), "{banned} in\n{text}");
            }
            assert!(text.contains("aws.cluster.x-k8s.io/demo/join"));
            assert!(!text.contains("delete-secret --secret-id \"$PKI_SECRET\""));
        }
    }

    /// The largest cluster the spec allows: a 32-character cluster name, a
    /// long pool name, five control planes, and the longest DNS name.
    #[test]
    fn user_data_fits_ec2s_limit_for_every_role_at_the_largest_profile() {
        let mut cluster = inputs("1.33.0");
        cluster.cluster_name = "a".repeat(32);
        cluster.endpoint_host = format!("{}.elb.amazonaws.com", "x".repeat(235));
        cluster.endpoint_port = 65535;
        for role in [KubeadmRole::Init, KubeadmRole::JoinControlPlane, KubeadmRole::JoinWorker] {
            for version in ["1.30.4", "1.33.0"] {
                cluster.kubernetes_version = kubeadm::KubernetesVersion::parse(version).unwrap();
                let node = NodeInputs { role, pool: "p".repeat(63), no_workloads: true };
                let text = render(&cluster, "ap-southeast-4", &node, None);
                let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                assert!(text.len() < MAX_USER_DATA_BYTES, "{role:?}: {} bytes", text.len());
                assert!(b64.len() < MAX_USER_DATA_BASE64_CHARS, "{role:?}: {} base64 characters", b64.len());
            }
        }
    }
}
