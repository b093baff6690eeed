//! The tag conventions: every tag the blueprint puts on AWS resources is
//! decided here and nowhere else (as cluster-api-provider-aws's `tags.go`).
//!
//! Every resource carries the user's cluster tags, a `Name` of the form
//! `<cluster>-<role>[-<az>]`, and the two ownership tags that Kubernetes and
//! cluster-api-provider-aws look for. Subnets also carry the role tags that
//! Kubernetes' load-balancer controllers use to discover them.
//!
//! What does not live here: AWS resource *names* (security group, ELB,
//! launch template names) are in `names.rs`; the AWS provider adds its own
//! `skyplan:address` tag, which the blueprint never writes.

use std::collections::BTreeMap;

use serde_json::Value;

/// Value of the ownership tags on everything the cluster creates.
pub const OWNED: &str = "owned";

/// `sigs.k8s.io/cluster-api-provider-aws/cluster/<name>`.
pub fn capa_cluster_key(cluster: &str) -> String {
    format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{cluster}")
}

/// `kubernetes.io/cluster/<name>`.
pub fn kubernetes_cluster_key(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

pub const CAPA_ROLE: &str = "sigs.k8s.io/cluster-api-provider-aws/role";
pub const ELB_ROLE: &str = "kubernetes.io/role/elb";
pub const INTERNAL_ELB_ROLE: &str = "kubernetes.io/role/internal-elb";

/// Tag keys a user may not set in `[cluster] tags`, and why (the help line).
pub fn reserved(key: &str) -> Option<&'static str> {
    if key == "Name" {
        Some("the blueprint names each resource itself (`<cluster>-<role>[-<az>]`)")
    } else if key.to_ascii_lowercase().starts_with("aws:") {
        Some("AWS reserves tag keys starting with `aws:`")
    } else if key.starts_with("skyplan:") {
        Some("skyplan reserves tag keys starting with `skyplan:` (the provider records addresses there)")
    } else if key.starts_with("kubernetes.io/cluster/")
        || key.starts_with("sigs.k8s.io/cluster-api-provider-aws/")
        || key.starts_with("kubernetes.io/role/")
    {
        Some("the blueprint sets the Kubernetes and cluster-api ownership and role tags itself")
    } else {
        None
    }
}

/// A classic load balancer takes at most 10 tags: the Elastic Load
/// Balancing API Reference (version 2012-06-01), AddTags: "Each load
/// balancer can have a maximum of 10 tags". The Classic Load Balancer user
/// guide says 50; the safe reading is taken (the emulator refuses an 11th
/// tag with `TooManyTags`, as the API reference says). Other resources take
/// 50, of which the blueprint adds at most 6 (Name, two ownership tags, two
/// subnet role tags, `skyplan:address`): the load balancer's limit binds.
pub const CLASSIC_ELB_MAX_TAGS: usize = 10;

/// Tags on any other resource the blueprint makes: 50 (Amazon EC2 User
/// Guide, "Tag restrictions"; Auto Scaling: 50 per group).
pub const RESOURCE_MAX_TAGS: usize = 50;

/// What the blueprint and the provider add to the API load balancer's
/// tags: Name, the two ownership tags and `skyplan:address`.
pub const CLASSIC_ELB_BLUEPRINT_TAGS: usize = 4;

/// Which kind of subnet, for the discovery tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetTier {
    Public,
    Private,
}

impl SubnetTier {
    pub fn as_str(self) -> &'static str {
        match self {
            SubnetTier::Public => "public",
            SubnetTier::Private => "private",
        }
    }
}

/// The tag maker for one cluster.
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    cluster: &'a str,
    user: &'a BTreeMap<String, String>,
}

impl<'a> Tags<'a> {
    pub fn new(cluster: &'a str, user: &'a BTreeMap<String, String>) -> Self {
        Tags { cluster, user }
    }

    /// `<cluster>-<role>[-<az>]`, the `Name` tag.
    pub fn name(&self, role: &str, az: Option<&str>) -> String {
        match az {
            Some(az) => format!("{}-{role}-{az}", self.cluster),
            None => format!("{}-{role}", self.cluster),
        }
    }

    /// The tags of a resource that plays `role` (in `az`, for per-AZ ones).
    pub fn resource(&self, role: &str, az: Option<&str>) -> BTreeMap<String, String> {
        let mut tags = self.user.clone();
        tags.insert("Name".into(), self.name(role, az));
        tags.extend(ownership(self.cluster));
        tags
    }

    /// The tags of a subnet: a resource's tags plus the discovery tags for
    /// its tier. Its role reads `subnet-public` or `subnet-private`.
    pub fn subnet(&self, tier: SubnetTier, az: &str) -> BTreeMap<String, String> {
        let mut tags = self.resource(&format!("subnet-{}", tier.as_str()), Some(az));
        let elb_role = match tier {
            SubnetTier::Public => ELB_ROLE,
            SubnetTier::Private => INTERNAL_ELB_ROLE,
        };
        tags.insert(elb_role.into(), "1".into());
        tags.insert(CAPA_ROLE.into(), tier.as_str().into());
        tags
    }
}

/// The ownership tags every resource of the cluster carries: what `plan`
/// and `destroy` look for to find the cluster's resources that the state
/// does not record.
pub fn ownership(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(capa_cluster_key(cluster), OWNED.into()), (kubernetes_cluster_key(cluster), OWNED.into())])
}

/// A tag map as an attribute value.
pub fn to_value(tags: BTreeMap<String, String>) -> Value {
    Value::Object(tags.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> BTreeMap<String, String> {
        BTreeMap::from([("team".to_string(), "platform".to_string())])
    }

    #[test]
    fn resource_tags_carry_user_name_and_ownership() {
        let user = user();
        let tags = Tags::new("demo", &user).resource("nat", Some("us-east-1b"));
        assert_eq!(tags["team"], "platform");
        assert_eq!(tags["Name"], "demo-nat-us-east-1b");
        assert_eq!(tags["sigs.k8s.io/cluster-api-provider-aws/cluster/demo"], "owned");
        assert_eq!(tags["kubernetes.io/cluster/demo"], "owned");
        assert_eq!(tags.len(), 4);
        assert_eq!(Tags::new("demo", &user).name("vpc", None), "demo-vpc");
    }

    #[test]
    fn subnet_tags_say_their_tier() {
        let user = user();
        let tags = Tags::new("demo", &user);
        let public = tags.subnet(SubnetTier::Public, "us-east-1a");
        assert_eq!(public["Name"], "demo-subnet-public-us-east-1a");
        assert_eq!(public["kubernetes.io/role/elb"], "1");
        assert_eq!(public["sigs.k8s.io/cluster-api-provider-aws/role"], "public");
        assert!(!public.contains_key("kubernetes.io/role/internal-elb"));
        let private = tags.subnet(SubnetTier::Private, "us-east-1a");
        assert_eq!(private["Name"], "demo-subnet-private-us-east-1a");
        assert_eq!(private["kubernetes.io/role/internal-elb"], "1");
        assert_eq!(private["sigs.k8s.io/cluster-api-provider-aws/role"], "private");
        assert!(!private.contains_key("kubernetes.io/role/elb"));
    }

    #[test]
    fn blueprint_keys_are_reserved() {
        for key in [
            "Name",
            "aws:cloudformation:stack-name",
            "AWS:x",
            "skyplan:address",
            "kubernetes.io/cluster/demo",
            "kubernetes.io/role/elb",
            "sigs.k8s.io/cluster-api-provider-aws/role",
        ] {
            assert!(reserved(key).is_some(), "{key}");
        }
        for key in ["team", "name", "cost-center", "kubernetes.io/other"] {
            assert!(reserved(key).is_none(), "{key}");
        }
    }
}
