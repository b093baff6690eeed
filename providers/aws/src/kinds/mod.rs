//! Every AWS resource kind the provider serves, one file each, behind one
//! registry.
//!
//! A kind's file holds everything about it: its attribute table
//! ([`KindSpec`]), create, batched read, in-place update and delete, how a
//! create whose answer was lost is found again by its tag (or name), how
//! the kind's resources carrying a cluster's ownership tags are listed (for
//! orphans), and its live states as the SDK's typed enums
//! (`NatGatewayState`, `InstanceStateName`). Each file defines a unit
//! struct `Kind` implementing [`AwsKind`]; [`KINDS`] lists them. The
//! provider's dispatch (`provider.rs`), the lost-create lookup (`find.rs`,
//! `lost.rs`), the orphan listing (`owned.rs`) and the name-conflict check
//! (`names.rs`) all go through [`KINDS`]:
//! adding a kind is one file here and its name in the `registry!` list.
//!
//! What is not here: the plumbing every kind uses (clients, calls, retry,
//! tags, errors, waits, in the crate's root), which never imports a kind.
//! `ingress.rs` is the permission model the two security group kinds share.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Tag};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::KindSpec;
use crate::clients::Clients;
use crate::ec2util::filter;
use crate::error::ApiError;
use crate::tags::{self, Tags, ADDRESS_TAG};

mod ingress;

/// Declares each kind's module (`kinds/<kind>.rs`) and lists its `Kind` in
/// [`KINDS`]: one name per kind.
macro_rules! registry {
    ($($kind:ident),* $(,)?) => {
        $(mod $kind;)*

        /// The registry: every kind the provider serves, in the order the
        /// vocabulary lists them (docs/aws-resources.md), which is also the
        /// order orphans are reported in.
        pub(crate) static KINDS: &[&dyn AwsKind] = &[$(&$kind::Kind),*];
    };
}

registry![
    vpc,
    subnet,
    internet_gateway,
    eip,
    nat_gateway,
    route_table,
    security_group,
    security_group_rule,
    instance,
    elb,
    launch_template,
    autoscaling_group,
    secretsmanager_secret,
];

/// The kind serving resource type `name` (`aws_vpc`).
pub(crate) fn get(name: &str) -> Option<&'static dyn AwsKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// One AWS resource kind: what the provider needs of it.
#[async_trait]
pub(crate) trait AwsKind: Send + Sync {
    /// The attribute table: names, types, defaults, what forces replacement.
    fn spec(&self) -> &'static KindSpec;

    /// The resource type (`aws_vpc`).
    fn name(&self) -> &'static str {
        self.spec().kind
    }

    /// Checks beyond types that the table cannot express.
    fn validate(&self, _attrs: &Attrs) -> Vec<String> {
        Vec::new()
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError>;

    /// Every request (all of this kind) with one batched describe; None for
    /// what is gone.
    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError>;

    async fn update(&self, c: &Clients, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError>;

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError>;

    /// The id of what a create of `address` with `inputs` made, if it made
    /// anything: found by the address tag (or by name where the name is the
    /// identity), only a live one, and only one tagged for `address`.
    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError>;

    /// Every live resource of this kind the `owner` tags (and the address
    /// tag's presence) select, with all its tags; more where AWS or the
    /// emulator ignore a filter: `owned.rs` checks the tags of each.
    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError>;

    /// Whether the AWS objects one resource made are joined into one id
    /// (`sgr-1,sgr-2`), so those found at one address are one resource.
    fn joins_ids(&self) -> bool {
        false
    }

    /// What a person calls this kind ("launch template") when AWS makes its
    /// names unique (in a region, or in a VPC for security groups), so that
    /// a plan's names are checked for conflicts (`names.rs`); None when
    /// its names are not unique.
    fn unique_name(&self) -> Option<&'static str> {
        None
    }

    /// Who holds `name` now, for the name-conflict check: its id (the name,
    /// where the name is the id) and every tag; None when nothing does, or
    /// when `attrs` do not say yet where to look (a VPC still to be made).
    async fn name_holder(
        &self,
        _c: &Clients,
        _name: &str,
        _attrs: &Attrs,
    ) -> Result<Option<(String, Tags)>, ProviderError> {
        Ok(None)
    }
}

/// One resource a listing found: its id and every tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub id: String,
    pub tags: Tags,
}

/// An EC2 resource's id and tags as a [`Hit`].
fn hit(id: Option<&str>, list: &[Tag]) -> Option<Hit> {
    let tags = list.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))).collect();
    Some(Hit { id: id?.to_string(), tags })
}

/// The EC2 filters that list what `owner` tags: each ownership tag, and the
/// address tag's presence.
fn owner_filters(owner: &Tags) -> Vec<Filter> {
    let mut filters: Vec<Filter> =
        owner.iter().map(|(k, v)| filter(&format!("tag:{k}"), [tags::filter_pattern(v)])).collect();
    filters.push(filter("tag-key", [ADDRESS_TAG]));
    filters
}

/// The EC2 filter on the address tag: a wildcard pattern, since filters do
/// not take every character of an address literally (`tags::filter_pattern`);
/// each hit is then checked with [`tagged`].
fn address_filter(address: &str) -> Filter {
    filter(&format!("tag:{ADDRESS_TAG}"), [tags::filter_pattern(address)])
}

/// Whether an EC2 resource with these tags is the one made for `address`
/// with `inputs` (`tags::made_for`).
fn tagged(list: &[Tag], address: &str, inputs: &Attrs) -> bool {
    tags::made_for(&tags::all(list.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or(""))))), address, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_serves_each_type_once_and_finds_it_by_name() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), 13);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "a type registered twice");
        for kind in KINDS {
            assert_eq!(get(kind.name()).map(|k| k.name()), Some(kind.name()));
        }
        assert!(get("aws_nope").is_none());
    }

    #[test]
    fn keyed_addresses_filter_by_single_character_wildcards() {
        assert_eq!(tags::filter_pattern("aws_subnet.private[us-east-1c]"), "aws_subnet.private?us-east-1c?");
        let tags = [Tag::builder().key(ADDRESS_TAG).value("aws_subnet.private[us-east-1c]").build()];
        let none = Attrs::new();
        assert!(tagged(&tags, "aws_subnet.private[us-east-1c]", &none));
        assert!(!tagged(&tags, "aws_subnet.private(us-east-1c)", &none), "only the exact address counts");
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build()
    }

    #[test]
    fn another_clusters_resource_at_the_same_address_or_name_is_not_ours() {
        let inputs: Attrs = serde_json::from_value(serde_json::json!({"name": "adv-a-b-w", "tags": {
            "Name": "adv-a-b-w",
            "kubernetes.io/cluster/adv-a-b": "owned",
            "sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a-b": "owned",
        }}))
        .unwrap();
        let ours = [
            tag(ADDRESS_TAG, "aws_launch_template.pool[w]"),
            tag("kubernetes.io/cluster/adv-a-b", "owned"),
            tag("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a-b", "owned"),
            tag("Name", "changed out of band"),
        ];
        assert!(tagged(&ours, "aws_launch_template.pool[w]", &inputs));
        // The case: the same name, made by cluster adv-a for its pool b-w.
        let theirs = [
            tag(ADDRESS_TAG, "aws_launch_template.pool[b-w]"),
            tag("kubernetes.io/cluster/adv-a", "owned"),
            tag("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a", "owned"),
        ];
        assert!(!tagged(&theirs, "aws_launch_template.pool[w]", &inputs));
        // The same address in another cluster.
        let same_address = [
            tag(ADDRESS_TAG, "aws_launch_template.pool[w]"),
            tag("kubernetes.io/cluster/adv-a", "owned"),
            tag("sigs.k8s.io/cluster-api-provider-aws/cluster/adv-a", "owned"),
        ];
        assert!(!tagged(&same_address, "aws_launch_template.pool[w]", &inputs));
        // A second cluster's tag added to ours: no longer only ours.
        let mut shared = ours.to_vec();
        shared.push(tag("kubernetes.io/cluster/adv-a", "owned"));
        assert!(!tagged(&shared, "aws_launch_template.pool[w]", &inputs));
        // Missing one of the two ownership tags.
        assert!(!tagged(&ours[..2], "aws_launch_template.pool[w]", &inputs));
        // An untagged spec's resource is not another cluster's.
        assert!(!tagged(&same_address, "aws_launch_template.pool[w]", &Attrs::new()));
    }
}
