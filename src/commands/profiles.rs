//! The instance profiles a spec's nodes run with (contract, "The cluster
//! itself"; `providers/aws/src/iam.rs`): `plan` notes which shared profiles
//! `apply` will create ([`plan_note`]), preflight fails on a profile a pool
//! names that does not exist ([`checks`]), and `apply` creates the missing
//! shared ones after approval, before any change ([`create_shared`]).

#[cfg(feature = "aws")]
use std::collections::BTreeSet;

use anyhow::Result;
use skyplan_aws_blueprint::AwsSpec;

use crate::ui::Ui;

/// Every instance profile the spec's instances and launch templates name.
#[cfg(feature = "aws")]
fn used(spec: &AwsSpec) -> BTreeSet<String> {
    skyplan_aws_blueprint::policy::instance_profiles(&spec.resources)
}

/// The shared profiles among `names`.
#[cfg(feature = "aws")]
fn shared(names: &BTreeSet<String>) -> BTreeSet<String> {
    let all = [skyplan_aws_blueprint::CONTROL_PLANE_PROFILE, skyplan_aws_blueprint::NODES_PROFILE];
    names.iter().filter(|n| all.contains(&n.as_str())).cloned().collect()
}

/// The note of `plan` (and of `apply`'s plan) naming the shared profiles
/// apply will create. Best effort: a failed lookup is a warning, since
/// `apply` looks again.
#[cfg(feature = "aws")]
pub async fn plan_note(ui: &Ui, spec: &AwsSpec) -> Result<()> {
    let shared = shared(&used(spec));
    if shared.is_empty() {
        return Ok(());
    }
    let aws = crate::workspace::connect_aws(spec).await?;
    match aws.missing_instance_profiles(&shared).await {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => ui.note(&create_note(&missing)),
        Err(e) => ui.warn(&format!("could not look up the shared instance profiles (apply looks again): {e}")),
    }
    Ok(())
}

#[cfg(feature = "aws")]
fn create_note(missing: &[String]) -> String {
    format!(
        "apply will create the shared instance profile{} {}, each with a role of the same name and the seed's \
         policies; destroy keeps them (every cluster of the account shares them)",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(" and ")
    )
}

/// Preflight's rows for the instance profiles: each one a pool names must
/// exist (a problem naming the pool); a missing shared one is created by
/// apply.
#[cfg(feature = "aws")]
pub async fn checks(spec: &AwsSpec, aws: &skyplan_aws::AwsProvider) -> Result<Vec<skyplan_aws::preflight::Check>> {
    use skyplan_aws::preflight::Check;

    let names = used(spec);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let shared = shared(&names);
    let missing = aws.missing_instance_profiles(&names).await?;
    let mut checks = Vec::new();
    for name in &names {
        let exists = !missing.contains(name);
        let pools: Vec<&str> = spec
            .spec
            .file
            .node_pool
            .iter()
            .filter(|p| p.instance_profile.as_deref() == Some(name.as_str()))
            .map(|p| p.name.as_str())
            .collect();
        let (available, problem) = match (exists, shared.contains(name)) {
            (true, _) => ("yes".to_string(), None),
            (false, true) => ("no: apply creates it".to_string(), None),
            (false, false) => {
                let named_by = if pools.is_empty() {
                    "a resource of the spec names it".to_string()
                } else {
                    format!("node pool {} names it (instance_profile)", pools.join(", "))
                };
                (
                    "no".to_string(),
                    Some(format!(
                        "instance profile {name} does not exist: {named_by}; create it, or leave instance_profile \
                         out to use the shared profile of the pool's role"
                    )),
                )
            }
        };
        checks.push(Check { what: format!("instance profile {name}"), need: "exists".into(), available, problem });
    }
    Ok(checks)
}

/// After approval, before any change: create the shared profiles the spec
/// uses that are missing, saying so.
#[cfg(feature = "aws")]
pub async fn create_shared(ui: &Ui, spec: &AwsSpec) -> Result<()> {
    let shared = shared(&used(spec));
    if shared.is_empty() {
        return Ok(());
    }
    let aws = crate::workspace::connect_aws(spec).await?;
    for name in aws.ensure_shared_profiles(&shared).await? {
        ui.note(&format!(
            "created the shared instance profile {name} (a role of the same name with the seed's policies); \
             destroy keeps it"
        ));
    }
    Ok(())
}

#[cfg(not(feature = "aws"))]
pub async fn plan_note(_ui: &Ui, _spec: &AwsSpec) -> Result<()> {
    Ok(())
}

#[cfg(not(feature = "aws"))]
pub async fn create_shared(_ui: &Ui, _spec: &AwsSpec) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_each_profile_and_says_destroy_keeps_them() {
        let one = create_note(&["nodes.cluster-api-provider-aws.sigs.k8s.io".to_string()]);
        assert!(one.starts_with("apply will create the shared instance profile nodes."), "{one}");
        assert!(one.contains("destroy keeps them"), "{one}");
        let two = create_note(&["a".to_string(), "b".to_string()]);
        assert!(two.contains("profiles a and b"), "{two}");
    }
}
