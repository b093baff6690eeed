//! kubeadm configuration from the cluster profile: `ClusterConfiguration`
//! and `InitConfiguration` for the one node that initializes the cluster, a
//! `JoinConfiguration` for every other node (`controlPlane` on control
//! planes only).
//!
//! The config API follows the Kubernetes version as cluster-api does:
//! `kubeadm.k8s.io/v1beta3` from 1.22 up to 1.30, `v1beta4` from 1.31
//! (kubelet extra args become a `{name, value}` list and the discovery
//! timeout moves under `timeouts`).
//!
//! The two secret values, the bootstrap token and the CA certificate hash,
//! are written as the node's boot script expects ([`Secrets::Placeholders`]:
//! it substitutes what it reads from Secrets Manager), masked for
//! `node-config` ([`Secrets::Masked`]), or as given ([`Secrets::Values`],
//! for tests and checks). The hash is public, but it exists only once the
//! PKI does, at apply; the boot script reads it from the join secret with
//! the token.

use crate::bootstrap::token::{BootstrapToken, BOOTSTRAP_GROUP};
use crate::bootstrap::yaml::{empty_map, list, map, text, Yaml};

/// What the boot script replaces with the bootstrap token.
pub const TOKEN_PLACEHOLDER: &str = "__SKYPLAN_BOOTSTRAP_TOKEN__";
/// What the boot script replaces with `sha256:<hex>` of the cluster CA.
pub const CA_CERT_HASH_PLACEHOLDER: &str = "__SKYPLAN_CA_CERT_HASH__";
/// How a secret value reads in `node-config`.
pub const MASK: &str = "(sensitive)";
/// The label naming a node's pool (kubelet `--node-labels`).
pub const POOL_LABEL: &str = "skyplan.io/pool";
/// The taint that keeps workloads off control-plane nodes.
pub const CONTROL_PLANE_TAINT_KEY: &str = "node-role.kubernetes.io/control-plane";
/// Where kubeadm keeps the PKI (and the boot script unpacks the CAs).
pub const CERTIFICATES_DIR: &str = "/etc/kubernetes/pki";
/// How long a joining node retries discovery: long enough for the first
/// control plane to finish `kubeadm init` if the node was started early.
pub const DISCOVERY_TIMEOUT: &str = "15m0s";

/// The Kubernetes version when the profile has no pack of layer `k8s`.
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.30.4";
/// The pod network when the `k8s` pack has no `pod_cidr` (Calico's default pool).
pub const DEFAULT_POD_CIDR: &str = "192.168.0.0/16";
/// The service network when the `k8s` pack has no `service_cidr` (kubeadm's default).
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// The oldest Kubernetes minor version kubeadm's v1beta3 config serves.
const OLDEST_MINOR: u32 = 22;

/// A Kubernetes release, `1.30.4` or `v1.30.4` in a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KubernetesVersion {
    /// The version, or a sentence saying what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bare = text.strip_prefix('v').unwrap_or(text);
        let parts: Vec<Option<u32>> = bare.split('.').map(|p| p.parse().ok().filter(|_| !p.starts_with('+'))).collect();
        let [Some(major), Some(minor), Some(patch)] = parts[..] else {
            return Err(format!("{text:?} is not a Kubernetes version (MAJOR.MINOR.PATCH, e.g. 1.30.4)"));
        };
        let version = Self { major, minor, patch };
        if major != 1 || minor < OLDEST_MINOR {
            return Err(format!(
                "Kubernetes {version} is older than kubeadm's v1beta3 configuration (1.{OLDEST_MINOR})"
            ));
        }
        Ok(version)
    }

    /// `kubeadm.k8s.io/v1beta3` below 1.31, `v1beta4` from 1.31.
    pub fn kubeadm_api_version(&self) -> &'static str {
        if self.minor >= 31 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        }
    }

    fn is_v1beta4(&self) -> bool {
        self.minor >= 31
    }
}

impl std::fmt::Display for KubernetesVersion {
    /// With the `v`, as kubeadm's `kubernetesVersion` and image names want it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What every node's kubeadm configuration shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInputs {
    pub cluster_name: String,
    pub kubernetes_version: KubernetesVersion,
    /// The API load balancer's DNS name (or, in user data, a reference to it).
    pub endpoint_host: String,
    pub endpoint_port: u16,
    pub pod_subnet: String,
    pub service_subnet: String,
    /// What the initializing node installs once the API is up (the
    /// profile's `cni` pack); none without one.
    pub cni: Option<crate::bootstrap::cni::Cni>,
}

impl ClusterInputs {
    /// `HOST:PORT`, kubeadm's `controlPlaneEndpoint` and join target.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.endpoint_host, self.endpoint_port)
    }
}

/// What a node does with kubeadm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmRole {
    /// `kubeadm init`: the first control plane, once per cluster.
    Init,
    /// `kubeadm join --control-plane`.
    JoinControlPlane,
    /// `kubeadm join` as a worker.
    JoinWorker,
}

/// One node's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInputs {
    pub role: KubeadmRole,
    pub pool: String,
    /// Control planes only: keep workloads off (kubeadm's control-plane
    /// taint). Workers never get a taint (no cluster-api controller would
    /// ever lift `node.cluster.x-k8s.io/uninitialized`).
    pub no_workloads: bool,
}

/// How the secret values are written.
#[derive(Debug, Clone, Copy)]
pub enum Secrets<'a> {
    /// [`TOKEN_PLACEHOLDER`] and [`CA_CERT_HASH_PLACEHOLDER`], for user data.
    Placeholders,
    /// The token as [`MASK`]; the hash as given, or the engine's
    /// "(known after apply)" before the PKI exists.
    Masked { ca_cert_hash: Option<&'a str> },
    /// The real values.
    Values { token: &'a BootstrapToken, ca_cert_hash: &'a str },
}

impl Secrets<'_> {
    fn token(&self) -> String {
        match self {
            Secrets::Placeholders => TOKEN_PLACEHOLDER.to_string(),
            Secrets::Masked { .. } => MASK.to_string(),
            Secrets::Values { token, .. } => token.expose(),
        }
    }

    fn ca_cert_hash(&self) -> String {
        match self {
            Secrets::Placeholders => CA_CERT_HASH_PLACEHOLDER.to_string(),
            Secrets::Masked { ca_cert_hash } => {
                ca_cert_hash.map(str::to_string).unwrap_or_else(|| skyplan_engine::value::UNKNOWN.to_string())
            }
            Secrets::Values { ca_cert_hash, .. } => ca_cert_hash.to_string(),
        }
    }
}

/// The node's kubeadm configuration documents, `---` between them:
/// ClusterConfiguration and InitConfiguration for [`KubeadmRole::Init`],
/// a JoinConfiguration otherwise.
pub fn render(cluster: &ClusterInputs, node: &NodeInputs, secrets: Secrets<'_>) -> String {
    let docs = match node.role {
        KubeadmRole::Init => vec![cluster_configuration(cluster), init_configuration(cluster, node, secrets)],
        KubeadmRole::JoinControlPlane | KubeadmRole::JoinWorker => vec![join_configuration(cluster, node, secrets)],
    };
    docs.iter().map(|doc| format!("---\n{}", doc.render())).collect()
}

fn header(cluster: &ClusterInputs, kind: &str) -> Vec<(&'static str, Yaml)> {
    vec![("apiVersion", text(cluster.kubernetes_version.kubeadm_api_version())), ("kind", text(kind))]
}

fn cluster_configuration(cluster: &ClusterInputs) -> Yaml {
    let mut doc = header(cluster, "ClusterConfiguration");
    doc.extend([
        ("clusterName", text(&cluster.cluster_name)),
        ("kubernetesVersion", text(&cluster.kubernetes_version.to_string())),
        ("controlPlaneEndpoint", text(&cluster.endpoint())),
        ("certificatesDir", text(CERTIFICATES_DIR)),
        (
            "networking",
            map([
                ("dnsDomain", text("cluster.local")),
                ("podSubnet", text(&cluster.pod_subnet)),
                ("serviceSubnet", text(&cluster.service_subnet)),
            ]),
        ),
        ("apiServer", map([("certSANs", list([text(&cluster.endpoint_host)]))])),
    ]);
    map(doc)
}

fn init_configuration(cluster: &ClusterInputs, node: &NodeInputs, secrets: Secrets<'_>) -> Yaml {
    let token = map([
        ("token", text(&secrets.token())),
        ("description", text(&format!("skyplan: joins the nodes of cluster {}", cluster.cluster_name))),
        // Never expires: an auto scaling group adds nodes months later
        // with it (docs/bootstrap.md, "The token").
        ("ttl", text("0s")),
        ("usages", list([text("signing"), text("authentication")])),
        ("groups", list([text(BOOTSTRAP_GROUP)])),
    ]);
    let mut doc = header(cluster, "InitConfiguration");
    doc.push(("bootstrapTokens", list([token])));
    doc.push(("nodeRegistration", node_registration(cluster, node)));
    map(doc)
}

fn join_configuration(cluster: &ClusterInputs, node: &NodeInputs, secrets: Secrets<'_>) -> Yaml {
    let v1beta4 = cluster.kubernetes_version.is_v1beta4();
    let mut discovery = vec![(
        "bootstrapToken",
        map([
            ("apiServerEndpoint", text(&cluster.endpoint())),
            ("token", text(&secrets.token())),
            ("caCertHashes", list([text(&secrets.ca_cert_hash())])),
        ]),
    )];
    if !v1beta4 {
        discovery.push(("timeout", text(DISCOVERY_TIMEOUT)));
    }
    let mut doc = header(cluster, "JoinConfiguration");
    doc.push(("discovery", map(discovery)));
    doc.push(("nodeRegistration", node_registration(cluster, node)));
    if node.role == KubeadmRole::JoinControlPlane {
        doc.push(("controlPlane", empty_map()));
    }
    if v1beta4 {
        doc.push(("timeouts", map([("discovery", text(DISCOVERY_TIMEOUT))])));
    }
    map(doc)
}

fn node_registration(cluster: &ClusterInputs, node: &NodeInputs) -> Yaml {
    let labels = format!("{POOL_LABEL}={}", node.pool);
    let kubelet_args = if cluster.kubernetes_version.is_v1beta4() {
        list([map([("name", text("node-labels")), ("value", text(&labels))])])
    } else {
        map([("node-labels", text(&labels))])
    };
    let control_plane = node.role != KubeadmRole::JoinWorker;
    let taints = if control_plane && node.no_workloads {
        list([map([("key", text(CONTROL_PLANE_TAINT_KEY)), ("effect", text("NoSchedule"))])])
    } else {
        // Explicitly none: kubeadm would add the control-plane taint to a
        // control plane whose list is absent.
        list([])
    };
    map([("kubeletExtraArgs", kubelet_args), ("taints", taints)])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_yaml_ng::Value as Y;

    pub(crate) fn inputs(version: &str) -> ClusterInputs {
        ClusterInputs {
            cluster_name: "demo".into(),
            kubernetes_version: KubernetesVersion::parse(version).unwrap(),
            endpoint_host: "demo-apiserver-1234567890.us-east-1.elb.amazonaws.com".into(),
            endpoint_port: 6443,
            pod_subnet: "172.16.0.0/16".into(),
            service_subnet: "10.96.0.0/12".into(),
            cni: Some(crate::bootstrap::cni::Cni {
                manifest_url: crate::bootstrap::cni::calico_manifest_url("3.28.0"),
                manifest_sha256: None,
                calico_pool_cidr: Some("172.16.0.0/16".into()),
            }),
        }
    }

    fn node(role: KubeadmRole, pool: &str) -> NodeInputs {
        NodeInputs { role, pool: pool.into(), no_workloads: true }
    }

    const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn docs(text: &str) -> Vec<Y> {
        serde_yaml_ng::Deserializer::from_str(text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
    }

    /// Every role of one version, in one file, as the golden files hold them.
    fn all_roles(version: &str) -> String {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let values = Secrets::Values { token: &token, ca_cert_hash: HASH };
        let cluster = inputs(version);
        let mut out = String::new();
        for (title, n) in [
            ("init", node(KubeadmRole::Init, "master")),
            ("join control plane", node(KubeadmRole::JoinControlPlane, "master")),
            ("join worker", node(KubeadmRole::JoinWorker, "worker")),
        ] {
            out.push_str(&format!("# {title}\n"));
            out.push_str(&render(&cluster, &n, values));
        }
        out
    }

    fn golden(version: &str, path: &str, expected: &str) {
        let actual = all_roles(version);
        if std::env::var_os("SKYPLAN_BLESS").is_some() {
            let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bootstrap").join(path);
            std::fs::write(file, &actual).unwrap();
            return;
        }
        assert_eq!(actual, expected, "golden file {path} differs; SKYPLAN_BLESS=1 rewrites it (then review the diff)");
    }

    #[test]
    fn golden_v1beta3() {
        golden("1.30.4", "testdata/kubeadm-v1beta3.yaml", include_str!("testdata/kubeadm-v1beta3.yaml"));
    }

    #[test]
    fn golden_v1beta4() {
        golden("1.31.2", "testdata/kubeadm-v1beta4.yaml", include_str!("testdata/kubeadm-v1beta4.yaml"));
    }

    /// The research note's §6.1 checks, on the golden files parsed back.
    fn check_parsed(text: &str, api: &str, version: &str) {
        let docs = docs(text);
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ClusterConfiguration", "InitConfiguration", "JoinConfiguration", "JoinConfiguration"]);
        for doc in &docs {
            assert_eq!(doc["apiVersion"], api);
        }
        let endpoint = "demo-apiserver-1234567890.us-east-1.elb.amazonaws.com:6443";
        let cluster = &docs[0];
        assert_eq!(cluster["controlPlaneEndpoint"], endpoint);
        assert_eq!(cluster["kubernetesVersion"], version);
        assert_eq!(cluster["clusterName"], "demo");
        assert_eq!(cluster["networking"]["podSubnet"], "172.16.0.0/16");
        assert_eq!(cluster["networking"]["serviceSubnet"], "10.96.0.0/12");
        let init = &docs[1];
        let token = &init["bootstrapTokens"][0];
        assert_eq!(token["ttl"], "0s");
        assert_eq!(token["groups"][0], BOOTSTRAP_GROUP);
        assert_eq!(token["usages"], serde_yaml_ng::from_str::<Y>("[signing, authentication]").unwrap());
        let (cp, worker) = (&docs[2], &docs[3]);
        for join in [cp, worker] {
            let discovery = &join["discovery"]["bootstrapToken"];
            assert_eq!(discovery["token"], token["token"]);
            assert_eq!(discovery["caCertHashes"][0], HASH);
            assert_eq!(discovery["apiServerEndpoint"], endpoint);
        }
        assert_eq!(cp["controlPlane"], Y::Mapping(Default::default()));
        assert!(worker.get("controlPlane").is_none());
        assert_eq!(worker["nodeRegistration"]["taints"], Y::Sequence(vec![]));
        assert!(!text.contains("node.cluster.x-k8s.io/uninitialized"));
        assert_eq!(init["nodeRegistration"]["taints"][0]["key"], CONTROL_PLANE_TAINT_KEY);
    }

    #[test]
    fn v1beta3_parses_back() {
        let text = include_str!("testdata/kubeadm-v1beta3.yaml");
        check_parsed(text, "kubeadm.k8s.io/v1beta3", "v1.30.4");
        let docs = docs(text);
        assert_eq!(docs[1]["nodeRegistration"]["kubeletExtraArgs"]["node-labels"], "skyplan.io/pool=master");
        assert_eq!(docs[3]["discovery"]["timeout"], DISCOVERY_TIMEOUT);
        assert_eq!(docs[3]["nodeRegistration"]["kubeletExtraArgs"]["node-labels"], "skyplan.io/pool=worker");
    }

    #[test]
    fn v1beta4_parses_back() {
        let text = include_str!("testdata/kubeadm-v1beta4.yaml");
        check_parsed(text, "kubeadm.k8s.io/v1beta4", "v1.31.2");
        let docs = docs(text);
        let args = &docs[1]["nodeRegistration"]["kubeletExtraArgs"][0];
        assert_eq!((&args["name"], &args["value"]), (&Y::from("node-labels"), &Y::from("skyplan.io/pool=master")));
        assert_eq!(docs[3]["timeouts"]["discovery"], DISCOVERY_TIMEOUT);
        assert!(docs[3]["discovery"].get("timeout").is_none());
    }

    #[test]
    fn api_version_switches_at_1_31() {
        let api = |v: &str| KubernetesVersion::parse(v).unwrap().kubeadm_api_version();
        assert_eq!(api("1.22.0"), "kubeadm.k8s.io/v1beta3");
        assert_eq!(api("v1.30.14"), "kubeadm.k8s.io/v1beta3");
        assert_eq!(api("1.31.0"), "kubeadm.k8s.io/v1beta4");
        assert_eq!(api("1.33.1"), "kubeadm.k8s.io/v1beta4");
        assert_eq!(KubernetesVersion::parse("1.30.4").unwrap().to_string(), "v1.30.4");
        for bad in ["1.30", "latest", "1.30.x", "2.0.0", "1.21.9", "", "1..4"] {
            assert!(KubernetesVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_workloads_means_no_taint_on_control_planes() {
        let cluster = inputs("1.30.4");
        let open = NodeInputs { role: KubeadmRole::Init, pool: "master".into(), no_workloads: false };
        let text = render(&cluster, &open, Secrets::Placeholders);
        assert!(!text.contains(CONTROL_PLANE_TAINT_KEY), "{text}");
        assert_eq!(docs(&text)[1]["nodeRegistration"]["taints"], Y::Sequence(vec![]));
    }

    #[test]
    fn masked_and_placeholder_renderings_hold_no_token() {
        let cluster = inputs("1.31.0");
        for role in [KubeadmRole::Init, KubeadmRole::JoinControlPlane, KubeadmRole::JoinWorker] {
            let masked = render(&cluster, &node(role, "p"), Secrets::Masked { ca_cert_hash: None });
            assert!(masked.contains("token: (sensitive)") || masked.contains("token: \"(sensitive)\""), "{masked}");
            let placeholders = render(&cluster, &node(role, "p"), Secrets::Placeholders);
            assert!(placeholders.contains(TOKEN_PLACEHOLDER), "{placeholders}");
            if role != KubeadmRole::Init {
                assert!(masked.contains("(known after apply)"), "{masked}");
                assert!(placeholders.contains(CA_CERT_HASH_PLACEHOLDER));
                let known = render(&cluster, &node(role, "p"), Secrets::Masked { ca_cert_hash: Some(HASH) });
                assert!(known.contains(HASH), "{known}");
            }
        }
    }
}
