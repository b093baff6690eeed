//! The shared instance profiles nodes run with (contract, "The cluster
//! itself"): `control-plane.cluster-api-provider-aws.sigs.k8s.io` and
//! `nodes.cluster-api-provider-aws.sigs.k8s.io`, the names cluster-api's
//! `clusterawsadm` gives them and the seed's `iam:PassRole` grant covers.
//!
//! Every cluster of the account shares them, so no cluster owns them: they
//! are not resources of any state. `apply` creates the ones its spec uses
//! when they are missing, after approval and before any change
//! ([`AwsProvider::ensure_shared_profiles`]), and `destroy` never deletes
//! them. Each is made as `clusterawsadm` makes it: a role of the same name
//! that EC2 may assume, customer managed policies with the permissions of
//! the seed's Control Plane and Nodes policies (the control-plane role gets
//! both: its nodes read the bootstrap secrets as workers do, docs/bootstrap.md),
//! and the instance profile holding the role.
//!
//! Safe to rerun after an interruption: every step takes "already exists"
//! as done, and the profile is looked at first (a profile that exists with
//! its role is left as it is, whatever its policies: the account's
//! administrators may have changed them on purpose).

use std::collections::BTreeSet;

use skyplan_aws_blueprint::policy::seed_policy;
use skyplan_aws_blueprint::{CONTROL_PLANE_PROFILE, NODES_PROFILE};
use skyplan_engine::ProviderError;

use crate::clients::Clients;
use crate::error::ApiError;
use crate::provider::AwsProvider;
use crate::retry::Retry;

/// One shared profile: its name (its role's too) and the managed policies
/// its role gets, each as (policy name, the seed policy it copies).
struct Shared {
    name: &'static str,
    policies: &'static [(&'static str, &'static str)],
}

const SHARED: [Shared; 2] = [
    Shared {
        name: CONTROL_PLANE_PROFILE,
        policies: &[(CONTROL_PLANE_PROFILE, "Control Plane Policy"), (NODES_PROFILE, "Nodes Policy")],
    },
    Shared { name: NODES_PROFILE, policies: &[(NODES_PROFILE, "Nodes Policy")] },
];

/// EC2 may assume the role (for the instances of the profile).
const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// IAM's answer to a create whose entity exists.
const EXISTS: &[&str] = &["EntityAlreadyExists"];
/// IAM's "not found".
const NO_SUCH_ENTITY: &[&str] = &["NoSuchEntity"];

/// Run a create; None when what it makes already exists (an earlier,
/// interrupted run made it).
async fn unless_exists<T>(call: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<Option<T>, ApiError> {
    match call.await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.has_code(EXISTS) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The roles of instance profile `name`, or None when it does not exist.
async fn profile_roles(c: &Clients, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    match c
        .call("GetInstanceProfile", Retry::Standard, || c.iam.get_instance_profile().instance_profile_name(name).send())
        .await
    {
        Ok(out) => Ok(Some(
            out.instance_profile()
                .map(|p| p.roles().iter().map(|r| r.role_name().to_string()).collect())
                .unwrap_or_default(),
        )),
        Err(e) if e.has_code(NO_SUCH_ENTITY) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `arn:PARTITION:iam::ACCOUNT:policy/NAME` in the partition and account
/// of `role_arn` (`arn:PARTITION:iam::ACCOUNT:role/...`).
fn policy_arn(role_arn: &str, name: &str) -> Option<String> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, _] => Some(format!("arn:{partition}:iam::{account}:policy/{name}")),
        _ => None,
    }
}

/// Make the role, its policies and the profile of `shared` (each step
/// tolerating what an earlier run made); `has_profile`: the profile exists,
/// without its role.
async fn create(c: &Clients, shared: &Shared, has_profile: bool) -> Result<(), ApiError> {
    let name = shared.name;
    let created = unless_exists(c.call("CreateRole", Retry::Standard, || {
        c.iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(EC2_TRUST)
            .description("Nodes of Kubernetes clusters made by skyplan (shared by every cluster of the account)")
            .send()
    }))
    .await?;
    let role_arn = match created.and_then(|out| out.role().map(|r| r.arn().to_string())) {
        Some(arn) => arn,
        None => {
            let out = c.call("GetRole", Retry::AfterCreate, || c.iam.get_role().role_name(name).send()).await?;
            out.role().map(|r| r.arn().to_string()).unwrap_or_default()
        }
    };
    for (policy, seed) in shared.policies {
        let document =
            seed_policy(seed).unwrap_or_else(|| panic!("data/seed-policies.json has the seed's {seed}")).to_string();
        let arn = policy_arn(&role_arn, policy).ok_or_else(|| {
            ApiError::new(
                "GetRole",
                None,
                format!("the role {name} has an ARN skyplan cannot read: {role_arn:?}"),
                None,
            )
        })?;
        unless_exists(c.call("CreatePolicy", Retry::Standard, || {
            c.iam
                .create_policy()
                .policy_name(*policy)
                .policy_document(&document)
                .description(format!("The seed's {seed}, for nodes of clusters made by skyplan"))
                .send()
        }))
        .await?;
        // Attaching an attached policy changes nothing.
        c.call("AttachRolePolicy", Retry::AfterCreate, || {
            c.iam.attach_role_policy().role_name(name).policy_arn(&arn).send()
        })
        .await?;
    }
    if !has_profile {
        unless_exists(c.call("CreateInstanceProfile", Retry::Standard, || {
            c.iam.create_instance_profile().instance_profile_name(name).send()
        }))
        .await?;
    }
    match c
        .call("AddRoleToInstanceProfile", Retry::AfterCreate, || {
            c.iam.add_role_to_instance_profile().instance_profile_name(name).role_name(name).send()
        })
        .await
    {
        // A profile holds one role: it has it already (a concurrent run).
        Err(e) if e.has_code(&["LimitExceeded"]) => Ok(()),
        other => other.map(|_| ()),
    }
}

impl AwsProvider {
    /// Which of `names` are not instance profiles of the account.
    pub async fn missing_instance_profiles(&self, names: &BTreeSet<String>) -> Result<Vec<String>, ProviderError> {
        let mut missing = Vec::new();
        for name in names {
            if profile_roles(&self.clients, name).await?.is_none() {
                missing.push(name.clone());
            }
        }
        Ok(missing)
    }

    /// Create each shared profile among `names` that is missing (or was
    /// left without its role by an interrupted run); the names created.
    /// Names that are not shared profiles are left alone (preflight checks
    /// them).
    pub async fn ensure_shared_profiles(&self, names: &BTreeSet<String>) -> Result<Vec<String>, ProviderError> {
        let c = &*self.clients;
        let mut created = Vec::new();
        for shared in SHARED.iter().filter(|s| names.contains(s.name)) {
            let roles = profile_roles(c, shared.name).await?;
            if roles.as_ref().is_some_and(|r| !r.is_empty()) {
                continue;
            }
            create(c, shared, roles.is_some()).await.map_err(|e| {
                ProviderError::new(format!(
                    "could not create the shared instance profile {} (its role, policies and profile): {e}",
                    shared.name
                ))
            })?;
            created.push(shared.name.to_string());
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_go_to_the_roles_account_and_partition() {
        assert_eq!(
            policy_arn("arn:aws-us-gov:iam::123456789012:role/nodes.x", "nodes.x").as_deref(),
            Some("arn:aws-us-gov:iam::123456789012:policy/nodes.x")
        );
        assert_eq!(policy_arn("not an arn", "x"), None);
    }

    #[test]
    fn the_control_plane_role_gets_both_policies_and_the_nodes_role_one() {
        let seeds = |name: &str| -> Vec<&str> {
            SHARED.iter().find(|s| s.name == name).unwrap().policies.iter().map(|(_, seed)| *seed).collect()
        };
        assert_eq!(seeds(CONTROL_PLANE_PROFILE), ["Control Plane Policy", "Nodes Policy"]);
        assert_eq!(seeds(NODES_PROFILE), ["Nodes Policy"]);
        for shared in &SHARED {
            for (_, seed) in shared.policies {
                assert!(seed_policy(seed).is_some(), "{seed}");
            }
        }
        let trust: serde_json::Value = serde_json::from_str(EC2_TRUST).unwrap();
        assert_eq!(trust["Statement"][0]["Principal"]["Service"], "ec2.amazonaws.com");
    }
}
