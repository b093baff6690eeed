//! The name-conflict check (`Provider::name_conflicts`): a launch template,
//! auto scaling group or classic load balancer name is unique in a region,
//! a security group name in a VPC. A create of a name something else holds
//! fails (`AlreadyExists`) half-way through an apply; two clusters whose
//! names run together (`adv-a` with pool `b-w`, `adv-a-b` with pool `w`:
//! both templates are `adv-a-b-w`) are the usual cause. Each name a plan
//! creates is looked up, and one held by a resource that does not carry
//! exactly this cluster's ownership tags is a conflict naming its owner.
//! Names not known at plan time (a security group in a VPC still to be
//! made) cannot be held by anyone and are skipped. Which kinds have unique
//! names, and how each looks a name up, is the kind's (`kinds/`).

use skyplan_engine::{NameConflict, NewResource, ProviderError};

use crate::attrs;
use crate::clients::Clients;
use crate::kinds;
use crate::tags::{self, Tags, ADDRESS_TAG};

/// Whether a resource with `found` tags may hold the name of `new`: it is
/// this cluster's (the same ownership tags, and some), or, for a spec with
/// no cluster, skyplan's own resource of that address.
pub(crate) fn ours(found: &Tags, new: &NewResource) -> bool {
    let wanted = tags::from_attrs(&new.attrs, "tags").map(|t| tags::ownership(&t)).unwrap_or_default();
    let have = tags::ownership(found);
    if wanted.is_empty() {
        return have.is_empty() && found.get(ADDRESS_TAG).map(String::as_str) == Some(&new.address.to_string()[..]);
    }
    have == wanted
}

/// Who holds a name, for the message.
pub(crate) fn owner(found: &Tags) -> String {
    let ownership = tags::ownership(found);
    let clusters: std::collections::BTreeSet<&str> = ownership
        .keys()
        .filter_map(|k| {
            k.strip_prefix("kubernetes.io/cluster/").or(k.strip_prefix("sigs.k8s.io/cluster-api-provider-aws/cluster/"))
        })
        .collect();
    let who = if clusters.is_empty() {
        "not tagged as any cluster's".to_string()
    } else {
        let each: Vec<String> = clusters.into_iter().map(|c| format!("`{c}`")).collect();
        format!("tagged as cluster {}'s", each.join(" and "))
    };
    match found.get(ADDRESS_TAG) {
        Some(address) => format!("{who}, created by skyplan for {address}"),
        None => who,
    }
}

fn conflict(new: &NewResource, what: &str, name: &str, id: &str, found: &Tags) -> NameConflict {
    let held = if id == name { format!("a {what}") } else { format!("{what} {id}") };
    NameConflict {
        address: new.address.clone(),
        message: format!(
            "the {what} name `{name}` is already taken by {held}, {}; nothing was changed. Rename this cluster \
             or its pool, or delete the other {what} if it is no longer used",
            owner(found)
        ),
    }
}

/// One create's conflict, if its name is held by something not ours. The
/// kind says whether its names are unique and who holds one
/// (`AwsKind::unique_name`, `AwsKind::name_holder`).
async fn check_one(c: &Clients, new: &NewResource) -> Result<Option<NameConflict>, ProviderError> {
    let Some(kind) = kinds::get(&new.kind) else { return Ok(None) };
    let Some(what) = kind.unique_name() else { return Ok(None) };
    let Some(name) = attrs::known_str(&new.attrs, "name") else { return Ok(None) };
    let held = kind.name_holder(c, name, &new.attrs).await?;
    Ok(held.filter(|(_, found)| !ours(found, new)).map(|(id, found)| conflict(new, what, name, &id, &found)))
}

/// Every create among `creates` whose name something not ours holds.
pub(crate) async fn conflicts(c: &Clients, creates: &[NewResource]) -> Result<Vec<NameConflict>, ProviderError> {
    let mut out = Vec::new();
    for new in creates {
        if let Some(found) = check_one(c, new)
            .await
            .map_err(|e| ProviderError::new(format!("checking the name of {}: {}", new.address, e.message)))?
        {
            out.push(found);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use skyplan_engine::{Address, Attrs};

    use super::*;

    fn new(address: &str, tags: serde_json::Value) -> NewResource {
        let address: Address = address.parse().unwrap();
        let attrs: Attrs = serde_json::from_value(json!({"name": "adv-a-b-w", "tags": tags})).unwrap();
        NewResource { kind: address.kind.clone(), address, attrs }
    }

    fn found(pairs: &[(&str, &str)]) -> Tags {
        tags::all(pairs.iter().copied())
    }

    #[test]
    fn a_name_is_ours_only_with_exactly_this_clusters_ownership_tags() {
        let b = new(
            "aws_launch_template.pool[w]",
            json!({"kubernetes.io/cluster/adv-a-b": "owned", "sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a-b": "owned"}),
        );
        let theirs = found(&[
            ("kubernetes.io/cluster/adv-a", "owned"),
            ("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a", "owned"),
            (ADDRESS_TAG, "aws_launch_template.pool[b-w]"),
        ]);
        assert!(!ours(&theirs, &b));
        assert_eq!(owner(&theirs), "tagged as cluster `adv-a`'s, created by skyplan for aws_launch_template.pool[b-w]");
        let mine = found(&[
            ("kubernetes.io/cluster/adv-a-b", "owned"),
            ("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a-b", "owned"),
            (ADDRESS_TAG, "aws_launch_template.pool[w]"),
        ]);
        assert!(ours(&mine, &b));
        assert!(!ours(&found(&[("Name", "x")]), &b));
        assert_eq!(owner(&found(&[("Name", "x")])), "not tagged as any cluster's");
        // A spec with no cluster: only skyplan's own resource of that address.
        let raw = new("aws_launch_template.lt", json!({}));
        assert!(ours(&found(&[(ADDRESS_TAG, "aws_launch_template.lt")]), &raw));
        assert!(!ours(&found(&[(ADDRESS_TAG, "aws_launch_template.other")]), &raw));
        assert!(!ours(&theirs, &raw));
        let message = conflict(&b, "launch template", "adv-a-b-w", "lt-1", &theirs).message;
        assert!(
            message.starts_with(
                "the launch template name `adv-a-b-w` is already taken by launch template lt-1, tagged as cluster \
                 `adv-a`'s, created by skyplan for aws_launch_template.pool[b-w]; nothing was changed."
            ),
            "{message}"
        );
    }
}
