//! The cluster's CNI: the profile's pack of layer `cni`, installed once by
//! the node that initializes the cluster, right after `kubeadm init`, by
//! applying the pack's manifest through the new API as its administrator
//! (as cluster-api's quick start does from outside, and its
//! ClusterResourceSet `ApplyOnce` does from the management cluster). The
//! manifest is downloaded by the node, never carried in user data:
//! Calico's is about 330 KB, user data holds 16 KB.
//!
//! Pack values: `manifest_url` (https) and `manifest_sha256` (checked on
//! the node when given). skyplan knows where Calico publishes its manifest
//! for a version; any other CNI names its manifest with `manifest_url`.

/// What the initializing node installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cni {
    pub manifest_url: String,
    /// Lowercase hex, when the profile pins the manifest.
    pub manifest_sha256: Option<String>,
    /// Calico only: the pod network its manifest's commented-out
    /// `CALICO_IPV4POOL_CIDR` is set to.
    pub calico_pool_cidr: Option<String>,
}

/// Where Calico publishes the manifest of a release (`3.28.0`).
pub fn calico_manifest_url(version: &str) -> String {
    format!(
        "https://raw.githubusercontent.com/projectcalico/calico/v{}/manifests/calico.yaml",
        version.trim_start_matches('v')
    )
}

/// Is this pack Calico (by name, as profiles write it: `calico`, `Calico`, `cni-calico`)?
pub fn is_calico(name: &str) -> bool {
    name.to_ascii_lowercase().contains("calico")
}

/// The CNI of a pack named `name` at `version` with the merged `values`,
/// for a cluster whose pod network is `pod_cidr`; or why it cannot be
/// installed (a message for the pack's key).
pub fn cni(name: &str, version: &str, values: &skyplan_engine::Attrs, pod_cidr: &str) -> Result<Cni, CniError> {
    let text = |key: &str| -> Result<Option<String>, CniError> {
        match values.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or(CniError::NotText { key: key.to_string() }),
        }
    };
    let manifest_url = match text("manifest_url")? {
        Some(url) if url.starts_with("https://") => url,
        Some(url) => return Err(CniError::NotHttps { url }),
        None if is_calico(name) && !version.trim().is_empty() => calico_manifest_url(version.trim()),
        None => return Err(CniError::NoManifest { name: name.to_string() }),
    };
    let manifest_sha256 = match text("manifest_sha256")? {
        Some(hash) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(hash.to_ascii_lowercase())
        }
        Some(hash) => return Err(CniError::BadHash { hash }),
        None => None,
    };
    let calico_pool_cidr = is_calico(name).then(|| pod_cidr.to_string());
    Ok(Cni { manifest_url, manifest_sha256, calico_pool_cidr })
}

/// Why a CNI pack cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniError {
    NoManifest { name: String },
    NotHttps { url: String },
    BadHash { hash: String },
    NotText { key: String },
}

impl CniError {
    /// The value the error is about (`manifest_url`, ...), or None for the pack itself.
    pub fn key(&self) -> Option<&str> {
        match self {
            CniError::NoManifest { .. } => None,
            CniError::NotHttps { .. } => Some("manifest_url"),
            CniError::BadHash { .. } => Some("manifest_sha256"),
            CniError::NotText { key } => Some(key),
        }
    }

    /// What to write instead.
    pub fn hint(&self) -> &'static str {
        match self {
            CniError::NoManifest { .. } => {
                "give the pack's manifest, e.g. values = { manifest_url = \"https://.../cni.yaml\" } (skyplan knows Calico's by version)"
            }
            CniError::NotHttps { .. } => "the node downloads it: give an https:// URL",
            CniError::BadHash { .. } => "64 hex digits, what `sha256sum` prints for the manifest",
            CniError::NotText { .. } => "write it as a string",
        }
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CniError::NoManifest { name } => write!(
                f,
                "skyplan installs the CNI from its manifest once the first control plane is up, and does not know where {name:?} publishes one"
            ),
            CniError::NotHttps { url } => write!(f, "manifest_url must be an https URL, not {url:?}"),
            CniError::BadHash { hash } => write!(f, "manifest_sha256 must be a SHA-256 in hex, not {hash:?}"),
            CniError::NotText { key } => write!(f, "{key} must be a string"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: serde_json::Value) -> skyplan_engine::Attrs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn calico_comes_from_its_release_and_gets_the_pod_network() {
        let cni = cni("calico", "3.28.0", &values(json!({"mtu": 1440})), "172.16.0.0/16").unwrap();
        assert_eq!(
            cni.manifest_url,
            "https://raw.githubusercontent.com/projectcalico/calico/v3.28.0/manifests/calico.yaml"
        );
        assert_eq!(cni.calico_pool_cidr.as_deref(), Some("172.16.0.0/16"));
        assert_eq!(cni.manifest_sha256, None);
    }

    #[test]
    fn another_cni_names_its_manifest_and_may_pin_it() {
        let err = cni("cilium", "1.15.0", &values(json!({})), "10.0.0.0/16").unwrap_err();
        assert!(err.to_string().contains("\"cilium\"") && err.key().is_none(), "{err}");
        let hash = "A".repeat(64);
        let got = cni(
            "cilium",
            "1.15.0",
            &values(json!({"manifest_url": "https://example.com/cilium.yaml", "manifest_sha256": hash})),
            "10.0.0.0/16",
        )
        .unwrap();
        assert_eq!(got.manifest_url, "https://example.com/cilium.yaml");
        assert_eq!(got.manifest_sha256, Some("a".repeat(64)), "lowercase, as sha256sum prints it");
        assert_eq!(got.calico_pool_cidr, None, "only Calico's manifest has the pool to set");
    }

    #[test]
    fn bad_values_name_their_key() {
        let http = cni("x", "1", &values(json!({"manifest_url": "http://example.com/a.yaml"})), "").unwrap_err();
        assert_eq!(http.key(), Some("manifest_url"));
        let hash = cni("calico", "3.28.0", &values(json!({"manifest_sha256": "abc"})), "").unwrap_err();
        assert_eq!(hash.key(), Some("manifest_sha256"));
        let number = cni("calico", "3.28.0", &values(json!({"manifest_url": 3})), "").unwrap_err();
        assert_eq!(number.key(), Some("manifest_url"));
    }
}
