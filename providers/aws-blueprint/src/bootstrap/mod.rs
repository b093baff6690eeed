//! What a node boots with: the cluster PKI, the bootstrap token, kubeadm
//! configuration from the profile, and the user data that brings them
//! together on the node. Pure: no SDK, no cloud calls. docs/bootstrap.md
//! tells the whole sequence and who may read which secret.
//!
//! For the AWS side (creating the secrets, the `kubeconfig`, `output` and
//! `node-config` commands):
//! - at apply, before the first control plane, [`ClusterSecrets::generate`]
//!   once, and create one secret per [`SecretKind`] named [`secret_name`]
//!   with [`ClusterSecrets::value`] (tagged with the ownership tags);
//!   [`ClusterSecrets::ca_cert_hash`] is public and may go into the state;
//! - `kubeconfig`: read the `Pki` secret's `SecretBinary`,
//!   [`ClusterPki::from_archive`], then [`admin_kubeconfig`] with its
//!   `cluster_ca`;
//! - `node-config`: [`node_config`] with the hash from the state if known;
//! - `destroy`: delete every [`SecretKind`]'s secret (force, no recovery).
//!
//! One file per concern: `pki.rs`, `token.rs`, `secrets.rs`, `kubeadm.rs`,
//! `userdata.rs` (with the script `node-bootstrap.sh`), `yaml.rs`.

pub mod kubeadm;
pub mod pki;
pub mod secrets;
pub mod token;
pub mod userdata;
pub(crate) mod yaml;

pub use kubeadm::{ClusterInputs, KubeadmRole, KubernetesVersion, NodeInputs, Secrets};
pub use pki::{admin_kubeconfig, ca_cert_hash, CertificateAuthority, ClusterPki, KubeconfigTarget, PkiError};
pub use secrets::{secret_name, ClusterSecrets, SecretKind, SecretValue, SECRET_PREFIX};
pub use token::BootstrapToken;

/// The kubeadm documents a node boots with, every secret `(sensitive)`:
/// what `skyplan node-config` prints. `ca_cert_hash` is the public hash
/// from the state once the PKI exists.
pub fn node_config(cluster: &ClusterInputs, node: &NodeInputs, ca_cert_hash: Option<&str>) -> String {
    kubeadm::render(cluster, node, Secrets::Masked { ca_cert_hash })
}
