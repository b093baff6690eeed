//! The cluster's Secrets Manager secrets: their names, and the bytes each
//! holds. skyplan creates them at apply (before the first node) and deletes
//! them at destroy; docs/bootstrap.md says who reads which.
//!
//! Names sit under `aws.cluster.x-k8s.io/`, the only prefix the seed's
//! policies let the operator create and the nodes read. They are fixed per
//! cluster, so a node's user data names them before they exist and a plan
//! never changes because of them.

use std::time::SystemTime;

use crate::bootstrap::pki::{ClusterPki, PkiError};
use crate::bootstrap::token::BootstrapToken;

/// The prefix the seed's Controller and Nodes policies grant.
pub const SECRET_PREFIX: &str = "aws.cluster.x-k8s.io/";

/// The cluster's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretKind {
    /// The CAs and the service-account key pair, as a tar archive
    /// (`SecretBinary`). Read by control planes at boot and by
    /// `skyplan kubeconfig`; lives as long as the cluster.
    Pki,
    /// `token=<bootstrap token>` and `ca-cert-hash=sha256:<hex>` lines
    /// (`SecretString`). Read by every node at boot; lives as long as the
    /// cluster (the token never expires, for auto scaling groups).
    Join,
    /// A marker (`SecretString`) that the initializing control plane
    /// deletes before `kubeadm init`: while it exists the cluster has not
    /// been initialized; once gone, a replaced first control plane joins.
    InitLock,
}

impl SecretKind {
    pub const ALL: [SecretKind; 3] = [SecretKind::Pki, SecretKind::Join, SecretKind::InitLock];

    /// The last part of the secret's name, also a good resource key.
    pub fn key(self) -> &'static str {
        match self {
            SecretKind::Pki => "pki",
            SecretKind::Join => "join",
            SecretKind::InitLock => "init-lock",
        }
    }
}

/// `aws.cluster.x-k8s.io/<cluster>/<kind>`.
pub fn secret_name(cluster: &str, kind: SecretKind) -> String {
    format!("{SECRET_PREFIX}{cluster}/{}", kind.key())
}

/// A secret's value: Secrets Manager's two kinds.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    String(String),
    Binary(Vec<u8>),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue((sensitive))")
    }
}

/// Everything secret that skyplan makes for a new cluster, once, at apply.
#[derive(Debug, Clone)]
pub struct ClusterSecrets {
    pub pki: ClusterPki,
    pub token: BootstrapToken,
}

impl ClusterSecrets {
    /// New CAs, service-account key and bootstrap token.
    pub fn generate(now: SystemTime) -> Result<Self, PkiError> {
        Ok(Self { pki: ClusterPki::generate(now)?, token: BootstrapToken::generate() })
    }

    /// The value of each secret. `now` stamps the archive's files.
    pub fn value(&self, kind: SecretKind, cluster: &str, now: SystemTime) -> SecretValue {
        match kind {
            SecretKind::Pki => SecretValue::Binary(self.pki.to_archive(now)),
            SecretKind::Join => SecretValue::String(join_secret(&self.token, &self.pki.ca_cert_hash())),
            SecretKind::InitLock => SecretValue::String(format!(
                "skyplan: cluster {cluster} is not initialized yet; its first control plane deletes this secret before kubeadm init\n"
            )),
        }
    }

    /// What may be kept in the state and shown: `sha256:<hex>` of the cluster CA.
    pub fn ca_cert_hash(&self) -> String {
        self.pki.ca_cert_hash()
    }
}

/// The join secret's text, as the boot script reads it.
pub fn join_secret(token: &BootstrapToken, ca_cert_hash: &str) -> String {
    format!("token={}\nca-cert-hash={ca_cert_hash}\n", token.expose())
}

/// The token and hash back from a join secret's text.
pub fn parse_join_secret(text: &str) -> Option<(BootstrapToken, String)> {
    let mut token = None;
    let mut hash = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("token", value)) => token = BootstrapToken::parse(value).ok(),
            Some(("ca-cert-hash", value)) => hash = Some(value.to_string()),
            _ => {}
        }
    }
    Some((token?, hash?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_under_the_granted_prefix() {
        let names: Vec<String> = SecretKind::ALL.iter().map(|&k| secret_name("demo", k)).collect();
        assert_eq!(
            names,
            ["aws.cluster.x-k8s.io/demo/pki", "aws.cluster.x-k8s.io/demo/join", "aws.cluster.x-k8s.io/demo/init-lock"]
        );
        for name in &names {
            // Secrets Manager's name characters; no "-XXXXXX" tail that
            // would read as the random suffix of an ARN.
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b)), "{name}");
            let tail = name.rsplit('-').next().unwrap();
            assert!(tail.len() != 6 || tail.contains('/'), "{name}");
        }
    }

    #[test]
    fn join_secret_round_trips() {
        let token = BootstrapToken::generate();
        let hash = "sha256:".to_string() + &"ab".repeat(32);
        let text = join_secret(&token, &hash);
        assert_eq!(parse_join_secret(&text), Some((token, hash)));
        assert_eq!(parse_join_secret("token=nope\n"), None);
    }

    #[test]
    fn values_debug_is_masked() {
        assert_eq!(format!("{:?}", SecretValue::String("x".into())), "SecretValue((sensitive))");
    }
}
