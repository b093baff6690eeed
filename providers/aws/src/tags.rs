//! Tag conventions, in one place for every kind.
//!
//! - A resource's `tags` attribute is a map of string to string, updated in
//!   place through a diff ([`TagDiff`]).
//! - Everything the provider creates also carries [`ADDRESS_TAG`] =
//!   `<resource address>`, so a resource can be found again after a crash
//!   between the create call and the state write. That tag, and AWS's own
//!   `aws:*` tags, are never reported back in `tags` (they are not the
//!   user's) and never removed by a diff.
//! - Conversions to and from the three services' tag types (EC2, classic
//!   ELB, auto scaling, where tags also carry PropagateAtLaunch) live here;
//!   the calls that change tags on an existing resource too.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::types as ec2;
use aws_sdk_elasticloadbalancing::types as elb;
use serde_json::Value;
use skyplan_engine::{Address, Attrs, ProviderError};

use crate::clients::Clients;
use crate::error::ApiError;
use crate::retry::Retry;

/// The tag that ties an AWS resource to its skyplan address.
pub(crate) const ADDRESS_TAG: &str = "skyplan:address";

pub(crate) type Tags = BTreeMap<String, String>;

/// A filter value (`tag:KEY` = value) that matches `value` both on AWS and
/// in the emulator. AWS reads `*` and `?` as wildcards and everything else
/// literally; the emulator matches filters with shell patterns, where
/// `[us-east-1a]` is a set of characters, so a keyed address such as
/// `aws_subnet.public[us-east-1a]` would match nothing there. Each of these
/// characters becomes `?` (any one character) in both: the pattern matches
/// the value and a few near-misses, so callers check the tag's exact value
/// on what comes back.
pub(crate) fn filter_pattern(value: &str) -> String {
    value.chars().map(|c| if matches!(c, '[' | ']' | '*' | '?' | '\\') { '?' } else { c }).collect()
}

/// Whether `key` is a cluster ownership tag (`kubernetes.io/cluster/<name>`,
/// `sigs.k8s.io/cluster-api-provider-aws/cluster/<name>`): the tags that say
/// which cluster a resource belongs to.
pub(crate) fn is_ownership(key: &str) -> bool {
    key.starts_with("kubernetes.io/cluster/") || key.starts_with("sigs.k8s.io/cluster-api-provider-aws/cluster/")
}

/// The ownership tags among `tags`.
pub(crate) fn ownership(tags: &Tags) -> Tags {
    tags.iter().filter(|(k, _)| is_ownership(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether a resource carrying `found` (every tag, ours included) is the one
/// skyplan created for `address` with `inputs`: it carries the address tag
/// with exactly that address, and exactly the ownership tags the inputs
/// give it (another cluster's resource at the same address, or one of the
/// same name, carries other ones). A name or an address alone never counts.
pub(crate) fn made_for(found: &Tags, address: &str, inputs: &Attrs) -> bool {
    let wanted = from_attrs(inputs, "tags").map(|t| ownership(&t)).unwrap_or_default();
    found.get(ADDRESS_TAG).map(String::as_str) == Some(address) && ownership(found) == wanted
}

/// Every tag, ours and AWS's included, as one map.
pub(crate) fn all<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// On the AWS rules of an `aws_security_group_rule`: what the rule is
/// (`security_group_rule.rs`), so an orphan found by its tags can be read.
pub(crate) const RULE_TAG: &str = "skyplan:rule";

/// Tags the user does not own: ours and AWS's.
pub(crate) fn is_reserved(key: &str) -> bool {
    key == ADDRESS_TAG || key == RULE_TAG || key.starts_with("aws:")
}

/// The `tags` attribute (absent: none). Values must be strings.
pub(crate) fn from_attrs(attrs: &Attrs, name: &str) -> Result<Tags, ProviderError> {
    match attrs.get(name) {
        None | Some(Value::Null) => Ok(Tags::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ProviderError::new(format!("`{name}.{k}` must be a string, not {other}"))),
            })
            .collect(),
        Some(other) => Err(ProviderError::new(format!("`{name}` must be a table of strings, not {other}"))),
    }
}

/// The tags to create a resource with: the user's plus the address tag.
pub(crate) fn for_create(attrs: &Attrs, address: &Address) -> Result<Tags, ProviderError> {
    let mut tags = from_attrs(attrs, "tags")?;
    tags.retain(|k, _| !is_reserved(k));
    tags.insert(ADDRESS_TAG.to_string(), address.to_string());
    Ok(tags)
}

/// The user-visible tags among what AWS reports.
pub(crate) fn visible<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs.into_iter().filter(|(k, _)| !is_reserved(k)).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(crate) fn to_value(tags: &Tags) -> Value {
    Value::Object(tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// What to change to get from `prior` tags to `desired` ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TagDiff {
    /// Tags to add or overwrite.
    pub set: Tags,
    /// Keys to remove.
    pub remove: Vec<String>,
}

impl TagDiff {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

pub(crate) fn diff(prior: &Tags, desired: &Tags) -> TagDiff {
    let set = desired
        .iter()
        .filter(|(k, v)| !is_reserved(k) && prior.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = prior.keys().filter(|k| !is_reserved(k) && !desired.contains_key(*k)).cloned().collect();
    TagDiff { set, remove }
}

/// The tag diff between two versions of a resource's attributes.
pub(crate) fn diff_attrs(prior: &Attrs, desired: &Attrs) -> Result<TagDiff, ProviderError> {
    Ok(diff(&from_attrs(prior, "tags")?, &from_attrs(desired, "tags")?))
}

// ---- EC2 ----

pub(crate) fn ec2_tags(tags: &Tags) -> Vec<ec2::Tag> {
    tags.iter().map(|(k, v)| ec2::Tag::builder().key(k).value(v).build()).collect()
}

pub(crate) fn ec2_spec(resource_type: ec2::ResourceType, tags: &Tags) -> ec2::TagSpecification {
    ec2::TagSpecification::builder().resource_type(resource_type).set_tags(Some(ec2_tags(tags))).build()
}

pub(crate) fn from_ec2(tags: &[ec2::Tag]) -> Tags {
    visible(tags.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))))
}

/// Apply a tag diff to one EC2 resource (any id CreateTags accepts).
pub(crate) async fn update_ec2(clients: &Clients, id: &str, diff: &TagDiff) -> Result<(), ApiError> {
    if !diff.set.is_empty() {
        let tags = ec2_tags(&diff.set);
        clients
            .call("CreateTags", Retry::AfterCreate, || {
                clients.ec2.create_tags().resources(id).set_tags(Some(tags.clone())).send()
            })
            .await?;
    }
    if !diff.remove.is_empty() {
        let keys: Vec<ec2::Tag> = diff.remove.iter().map(|k| ec2::Tag::builder().key(k).build()).collect();
        clients
            .call("DeleteTags", Retry::AfterCreate, || {
                clients.ec2.delete_tags().resources(id).set_tags(Some(keys.clone())).send()
            })
            .await?;
    }
    Ok(())
}

// ---- Classic ELB ----

pub(crate) fn elb_tags(tags: &Tags) -> Vec<elb::Tag> {
    tags.iter().map(|(k, v)| elb::Tag::builder().key(k).value(v).build().expect("key is set")).collect()
}

pub(crate) fn from_elb(tags: &[elb::Tag]) -> Tags {
    visible(tags.iter().map(|t| (t.key(), t.value().unwrap_or(""))))
}

pub(crate) async fn update_elb(clients: &Clients, name: &str, diff: &TagDiff) -> Result<(), ApiError> {
    if !diff.set.is_empty() {
        let tags = elb_tags(&diff.set);
        clients
            .call("AddTags", Retry::Standard, || {
                clients.elb.add_tags().load_balancer_names(name).set_tags(Some(tags.clone())).send()
            })
            .await?;
    }
    if !diff.remove.is_empty() {
        let keys: Vec<elb::TagKeyOnly> =
            diff.remove.iter().map(|k| elb::TagKeyOnly::builder().key(k).build()).collect();
        clients
            .call("RemoveTags", Retry::Standard, || {
                clients.elb.remove_tags().load_balancer_names(name).set_tags(Some(keys.clone())).send()
            })
            .await?;
    }
    Ok(())
}

// ---- Auto scaling: every tag propagates to the instances the group launches ----

pub(crate) fn asg_tags(group: &str, tags: &Tags) -> Vec<asg::Tag> {
    tags.iter()
        .map(|(k, v)| {
            asg::Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .build()
        })
        .collect()
}

pub(crate) fn from_asg(tags: &[asg::TagDescription]) -> Tags {
    visible(tags.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))))
}

pub(crate) async fn update_asg(clients: &Clients, group: &str, diff: &TagDiff) -> Result<(), ApiError> {
    if !diff.set.is_empty() {
        let tags = asg_tags(group, &diff.set);
        clients
            .call("CreateOrUpdateTags", Retry::Standard, || {
                clients.autoscaling.create_or_update_tags().set_tags(Some(tags.clone())).send()
            })
            .await?;
    }
    if !diff.remove.is_empty() {
        let keys: Vec<asg::Tag> = diff
            .remove
            .iter()
            .map(|k| asg::Tag::builder().resource_id(group).resource_type("auto-scaling-group").key(k).build())
            .collect();
        clients
            .call("DeleteTags", Retry::Standard, || {
                clients.autoscaling.delete_tags().set_tags(Some(keys.clone())).send()
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn attrs(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn create_adds_the_address_tag_and_drops_reserved_ones() {
        let a = attrs(json!({"tags": {"Name": "demo-vpc", "skyplan:address": "spoofed", "aws:x": "y"}}));
        let t = for_create(&a, &Address::new("aws_vpc", "main")).unwrap();
        assert_eq!(t, tags(&[("Name", "demo-vpc"), ("skyplan:address", "aws_vpc.main")]));
        let none = for_create(&Attrs::new(), &Address::keyed("aws_subnet", "public", "us-east-1a")).unwrap();
        assert_eq!(none, tags(&[("skyplan:address", "aws_subnet.public[us-east-1a]")]));
    }

    #[test]
    fn reads_hide_our_tag_and_awss() {
        let live = [
            ec2::Tag::builder().key("Name").value("n").build(),
            ec2::Tag::builder().key(ADDRESS_TAG).value("aws_vpc.main").build(),
            ec2::Tag::builder().key("aws:cloudformation:stack-name").value("s").build(),
            ec2::Tag::builder().key("kubernetes.io/cluster/demo").value("owned").build(),
        ];
        assert_eq!(from_ec2(&live), tags(&[("Name", "n"), ("kubernetes.io/cluster/demo", "owned")]));
    }

    #[test]
    fn diff_sets_changed_and_new_removes_missing_and_never_touches_reserved() {
        let prior = tags(&[("a", "1"), ("b", "2"), ("c", "3"), (ADDRESS_TAG, "x")]);
        let desired = tags(&[("a", "1"), ("b", "20"), ("d", "4")]);
        let d = diff(&prior, &desired);
        assert_eq!(d.set, tags(&[("b", "20"), ("d", "4")]));
        assert_eq!(d.remove, ["c"]);
        assert!(diff(&desired, &desired).is_empty());
    }

    #[test]
    fn filter_patterns_keep_plain_text_and_make_pattern_characters_any_character() {
        assert_eq!(filter_pattern("aws_vpc.main"), "aws_vpc.main");
        assert_eq!(filter_pattern("aws_subnet.public[us-east-1a]"), "aws_subnet.public?us-east-1a?");
        assert_eq!(filter_pattern("a.b[x*y?z\\]"), "a.b?x?y?z??");
    }

    #[test]
    fn tag_values_must_be_strings() {
        let e = from_attrs(&attrs(json!({"tags": {"n": 1}})), "tags").unwrap_err();
        assert!(e.message.contains("`tags.n` must be a string"), "{}", e.message);
    }

    #[test]
    fn asg_tags_propagate_at_launch() {
        let t = asg_tags("demo-worker", &tags(&[("Name", "demo-worker")]));
        assert_eq!(t[0].propagate_at_launch(), Some(true));
        assert_eq!(t[0].resource_id(), Some("demo-worker"));
        assert_eq!(t[0].resource_type(), Some("auto-scaling-group"));
    }
}
