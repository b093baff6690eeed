//! The cluster's three Secrets Manager secrets as resources
//! (`aws_secretsmanager_secret.pki`, `.join`, `.init_lock`), and which node
//! waits for which.
//!
//! Their attributes hold no secret: the name ([`secret_name`]), what the
//! secret holds (`content`), the ownership tags. The AWS provider generates
//! the value when it creates the secret and keeps only public facts (the
//! ARN, the CA certificate hash) in the state. `join` names the `pki`
//! secret's ARN (`pki_arn`): its token is paired with that PKI's CA hash,
//! read from that secret, so a new PKI means a new join secret.
//!
//! Every node waits for the secrets its boot script reads
//! (`node-bootstrap.sh`): control planes for all three (the first takes the
//! init lock; a replaced first one finds it gone), worker launch templates
//! for `join` only (workers never read the PKI).

use serde_json::json;
use skyplan_engine::{Address, Resource};

use crate::bootstrap::{secret_name, SecretKind};
use crate::cluster::Cluster;
use crate::tags::{self, Tags};
use crate::{reference, resource};

/// Secrets Manager API Reference, CreateSecret: Name, at most 512
/// characters (the longest cluster name gives far fewer).
pub const SECRET_NAME_MAX: usize = 512;

/// The resource type of the secrets.
pub const KIND: &str = "aws_secretsmanager_secret";

/// The address of a secret: `aws_secretsmanager_secret.pki`, `.join`, `.init_lock`.
pub fn address(kind: SecretKind) -> Address {
    Address::new(KIND, kind.key().replace('-', "_"))
}

/// The `content` attribute of each: what the provider generates for it.
pub fn content(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Pki => "cluster-pki",
        SecretKind::Join => "join",
        SecretKind::InitLock => "init-lock",
    }
}

/// The three secrets of a cluster, `pki` first.
pub(crate) fn expand(cluster: &Cluster) -> Vec<Resource> {
    let tags = Tags::new(&cluster.name, &cluster.tags);
    SecretKind::ALL
        .iter()
        .map(|&kind| {
            let mut attrs = json!({
                "name": secret_name(&cluster.name, kind),
                "content": content(kind),
                "tags": tags::to_value(tags.resource(&format!("secret-{}", kind.key()), None)),
            });
            if kind == SecretKind::Join {
                attrs["pki_arn"] = json!(reference(&address(SecretKind::Pki), "arn"));
            }
            resource(address(kind), attrs)
        })
        .collect()
}

/// The secrets the node at `node` reads at boot: all three for a
/// control-plane instance, `join` for a worker's launch template.
pub(crate) fn read_by(node: &Address) -> Vec<Address> {
    match (node.kind.as_str(), node.name.as_str()) {
        ("aws_instance", "control_plane") => SecretKind::ALL.iter().map(|&k| address(k)).collect(),
        ("aws_launch_template", "pool") => vec![address(SecretKind::Join)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn three_secrets_named_under_the_prefix_with_the_ownership_tags_and_no_value() {
        let out = crate::expand(&fixtures::parse(fixtures::DEMO)).unwrap();
        let secrets: Vec<&Resource> = out.iter().filter(|r| r.address.kind == KIND).collect();
        let addresses: Vec<String> = secrets.iter().map(|r| r.address.to_string()).collect();
        assert_eq!(
            addresses,
            ["aws_secretsmanager_secret.init_lock", "aws_secretsmanager_secret.join", "aws_secretsmanager_secret.pki"]
        );
        for r in &secrets {
            let name = r.attrs["name"].as_str().unwrap();
            assert!(name.starts_with("aws.cluster.x-k8s.io/demo/"), "{name}");
            assert_eq!(r.attrs["tags"]["kubernetes.io/cluster/demo"], "owned");
            assert_eq!(r.attrs["tags"]["sigs.k8s.io/cluster-api-provider-aws/cluster/demo"], "owned");
            let keys: Vec<&str> = r.attrs.keys().map(String::as_str).collect();
            let allowed = ["content", "name", "pki_arn", "tags"];
            assert!(keys.iter().all(|k| allowed.contains(k)), "{keys:?}");
        }
        let join = secrets.iter().find(|r| r.address.name == "join").unwrap();
        assert_eq!(join.attrs["pki_arn"], "${aws_secretsmanager_secret.pki.arn}", "join comes after pki");
    }

    #[test]
    fn nodes_wait_for_the_secrets_they_read_and_workers_never_for_the_pki() {
        let out = crate::expand(&fixtures::parse(fixtures::DEMO)).unwrap();
        let deps = |a: &str| -> Vec<String> {
            out.iter().find(|r| r.address.to_string() == a).unwrap().depends_on.iter().map(|d| d.to_string()).collect()
        };
        for cp in ["aws_instance.control_plane[0]", "aws_instance.control_plane[2]"] {
            for secret in ["pki", "join", "init_lock"] {
                assert!(deps(cp).contains(&format!("aws_secretsmanager_secret.{secret}")), "{cp}: {:?}", deps(cp));
            }
        }
        let worker = deps("aws_launch_template.pool[worker]");
        assert!(worker.contains(&"aws_secretsmanager_secret.join".to_string()), "{worker:?}");
        assert!(!worker.iter().any(|d| d.ends_with(".pki") || d.ends_with(".init_lock")), "{worker:?}");
        assert!(deps("aws_instance.bastion").iter().all(|d| !d.starts_with(KIND)));
    }
}
