//! `aws_security_group`: a VPC security group and its ingress rules (egress
//! stays AWS's default allow-all).
//!
//! Rules are compared as *atoms* (`ingress.rs`, the model this kind shares
//! with `aws_security_group_rule`): one protocol, port range, source and
//! description each. An update revokes the atoms that went and authorizes
//! the new ones; a read regroups the live atoms, giving back each prior
//! rule table unchanged when all its atoms are there.
//!
//! A group written without `ingress` does not manage its rules: neither
//! read nor update looks at them (its rules are `aws_security_group_rule`
//! resources). A group written with `ingress` reports every live rule but
//! those made by `aws_security_group_rule` resources (which record what
//! they are in their `skyplan:rule` tag, read with DescribeTags), so the
//! two kinds can even share a group without fighting. Live rules come from
//! DescribeSecurityGroups' permissions; the rules API
//! (DescribeSecurityGroupRules) is outside the seed's policies and never
//! called (docs/iam.md).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, SecurityGroup};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::blockers;
use crate::clients::Clients;
use crate::ec2util::{created_but, describe_by_id, filter};
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::{self, Tags};

use super::ingress::{atom_changes, authorize, ingress_atoms, permission_atoms, regroup, revoke, Atom};
use super::{address_filter, hit, owner_filters, tagged, AwsKind, Hit};

const RULE: &[Field] = &[
    Field::new("protocol", Ty::Str).required(),
    Field::new("from_port", Ty::Int).required(),
    Field::new("to_port", Ty::Int).required(),
    Field::new("cidr_blocks", Ty::StrList),
    Field::new("source_security_group_ids", Ty::StrList),
    Field::new("self", Ty::Bool),
    Field::new("description", Ty::Str),
];

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_security_group",
    fields: &[
        Field::new("name", Ty::Str)
            .required()
            .replace()
            .at_most(255, "CreateSecurityGroup: GroupName, up to 255 characters"),
        Field::new("description", Ty::Str).required().replace(),
        Field::new("vpc_id", Ty::Str).required().replace().holds(),
        Field::new("ingress", Ty::Objects(RULE)).default("[]").holds(),
        TAGS,
    ],
    computed: &["id"],
    exclusive: true,
};

/// `aws_security_group` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn validate(&self, attrs: &Attrs) -> Vec<String> {
        validate(attrs)
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let name = attrs::req_str(attrs, "name")?;
        let description = attrs::req_str(attrs, "description")?;
        let vpc_id = attrs::req_str(attrs, "vpc_id")?;
        let atoms = ingress_atoms(attrs)?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let out = c
            .call("CreateSecurityGroup", Retry::AfterCreate, || {
                c.ec2
                    .create_security_group()
                    .group_name(name)
                    .description(description)
                    .vpc_id(vpc_id)
                    .tag_specifications(tags::ec2_spec(ResourceType::SecurityGroup, &tags))
                    .send()
            })
            .await?;
        let id = out.group_id().ok_or_else(|| ProviderError::new("CreateSecurityGroup returned no id"))?;
        authorize(c, id, &atoms, None).await.map_err(|e| created_but(id, &ctx.address, e))?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let groups: HashMap<String, SecurityGroup> = describe_by_id(
            c,
            "DescribeSecurityGroups",
            reqs,
            |ids, token| c.ec2.describe_security_groups().filters(filter("group-id", ids)).set_next_token(token).send(),
            |page| page.security_groups(),
            |item| item.group_id(),
            |page| page.next_token(),
        )
        .await?;
        // The rules of rule resources on the groups whose ingress is managed
        // here: those are left out.
        let managed: Vec<String> = reqs
            .iter()
            .filter(|r| manages_ingress(&r.prior))
            .filter_map(|r| attrs::id(&r.prior).ok().map(str::to_string))
            .filter(|id| groups.contains_key(id))
            .collect();
        let owned_elsewhere = if managed.is_empty() {
            HashMap::new()
        } else {
            super::security_group_rule::rule_atoms_on(c, &managed).await?
        };
        Ok(reqs
            .iter()
            .map(|req| {
                let id = attrs::id(&req.prior).ok()?;
                let g = groups.get(id)?;
                let mut out = Attrs::new();
                out.insert("id".into(), json!(id));
                out.insert("name".into(), json!(g.group_name()));
                out.insert("description".into(), json!(g.description()));
                out.insert("vpc_id".into(), json!(g.vpc_id()));
                if manages_ingress(&req.prior) {
                    let others = owned_elsewhere.get(id).map(Vec::as_slice).unwrap_or_default();
                    let live: Vec<Atom> = g
                        .ip_permissions()
                        .iter()
                        .flat_map(|p| permission_atoms(p, id))
                        .filter(|a| !others.iter().any(|o| o.key() == a.key()))
                        .collect();
                    let prior_rules = attrs::objects(&req.prior, "ingress").unwrap_or_default();
                    out.insert("ingress".into(), regroup(&prior_rules, live));
                }
                out.insert("tags".into(), tags::to_value(&tags::from_ec2(g.tags())));
                Some(SPEC.shape(&req.prior, out))
            })
            .collect())
    }

    async fn update(
        &self,
        c: &Clients,
        _ctx: &OpContext,
        prior: &Attrs,
        attrs: &Attrs,
    ) -> Result<Attrs, ProviderError> {
        let id = attrs::id(prior)?;
        if manages_ingress(attrs) {
            let (to_revoke, to_authorize) = atom_changes(&ingress_atoms(prior)?, &ingress_atoms(attrs)?);
            revoke(c, id, &to_revoke).await?;
            authorize(c, id, &to_authorize, None).await?;
        }
        tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        result.insert("id".into(), Value::String(id.to_string()));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?;
        blockers::delete_once_unused(c, ctx, "security group", "group-id", id, || {
            c.call("DeleteSecurityGroup", Retry::Standard, || c.ec2.delete_security_group().group_id(id).send())
        })
        .await
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let out = c
            .call("DescribeSecurityGroups", Retry::Standard, || {
                c.ec2.describe_security_groups().filters(address_filter(address)).send()
            })
            .await?;
        Ok(out
            .security_groups()
            .iter()
            .find(|x| tagged(x.tags(), address, inputs))
            .and_then(|x| x.group_id())
            .map(str::to_string))
    }

    fn unique_name(&self) -> Option<&'static str> {
        Some("security group")
    }

    /// Names are unique in a VPC: none is held in one not made yet.
    async fn name_holder(
        &self,
        c: &Clients,
        name: &str,
        attrs: &Attrs,
    ) -> Result<Option<(String, Tags)>, ProviderError> {
        let Some(vpc) = attrs::known_str(attrs, "vpc_id") else { return Ok(None) };
        let filters = vec![filter("group-name", [name]), filter("vpc-id", [vpc])];
        let out = c
            .call("DescribeSecurityGroups", Retry::Standard, || {
                c.ec2.describe_security_groups().set_filters(Some(filters.clone())).send()
            })
            .await?;
        Ok(out.security_groups().iter().find(|g| g.group_name() == Some(name) && g.vpc_id() == Some(vpc)).map(|g| {
            let found = tags::all(g.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))));
            (g.group_id().unwrap_or_default().to_string(), found)
        }))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        c.paginate(
            "DescribeSecurityGroups",
            Retry::Standard,
            |token| {
                c.ec2.describe_security_groups().set_filters(Some(owner_filters(owner))).set_next_token(token).send()
            },
            |page| page.security_groups().iter().filter_map(|x| hit(x.group_id(), x.tags())).collect(),
            |page| page.next_token(),
        )
        .await
    }
}

pub(crate) fn validate(attrs: &Attrs) -> Vec<String> {
    let mut errors = Vec::new();
    if attrs.get("name").and_then(Value::as_str).is_some_and(|n| n.starts_with("sg-")) {
        errors.push("`name` cannot start with `sg-` (CreateSecurityGroup: GroupName)".to_string());
    }
    let Ok(rules) = attrs::objects(attrs, "ingress") else {
        return errors;
    };
    for (n, rule) in rules.iter().enumerate() {
        let any = |k: &str| match rule.get(k) {
            Some(Value::Array(items)) => !items.is_empty(),
            Some(Value::Bool(b)) => *b,
            Some(Value::String(_)) => true, // a reference
            _ => false,
        };
        if !any("cidr_blocks") && !any("source_security_group_ids") && !any("self") {
            errors.push(format!(
                "`ingress[{n}]` allows nothing: give `cidr_blocks`, `source_security_group_ids` or `self = true`"
            ));
        }
    }
    errors
}

/// A group manages its ingress only when it is written with `ingress`;
/// without, its rules are `aws_security_group_rule` resources' (or nobody's).
fn manages_ingress(attrs: &Attrs) -> bool {
    attrs.get("ingress").is_some_and(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_name_awss_ids_use_is_refused_and_long_names_name_the_limit() {
        // As the provider checks a resource: the table's rules, then the kind's.
        let check = |a: Attrs| {
            let mut errors = SPEC.validate(&a);
            errors.extend(validate(&a));
            errors
        };
        let errors = check(obj(json!({"name": "sg-web", "description": "d", "vpc_id": "vpc-1"})));
        assert_eq!(errors, ["`name` cannot start with `sg-` (CreateSecurityGroup: GroupName)"]);
        let errors = check(obj(json!({"name": "n".repeat(256), "description": "d", "vpc_id": "vpc-1"})));
        assert_eq!(
            errors,
            ["`name` has 256 characters; AWS allows at most 255 (CreateSecurityGroup: GroupName, up to 255 characters)"]
        );
    }

    #[test]
    fn a_rule_must_allow_something() {
        let errs = validate(&obj(json!({"ingress": [{"protocol": "tcp", "from_port": 1, "to_port": 1}]})));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("`ingress[0]` allows nothing"));
    }
}

#[cfg(test)]
mod request_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_error, ec2_ok, recording_ctx, FakeAws};

    /// The emulator deletes a group still in use; AWS answers
    /// DependencyViolation until the ENIs using it are gone.
    #[tokio::test(start_paused = true)]
    async fn delete_retries_while_in_use_then_succeeds() {
        let tries = Arc::new(AtomicUsize::new(0));
        let t = tries.clone();
        let fake = FakeAws::new(move |_| {
            if t.fetch_add(1, Ordering::SeqCst) < 3 {
                ec2_error(400, "DependencyViolation", "resource sg-1 has a dependent object")
            } else {
                ec2_ok("DeleteSecurityGroup", "<return>true</return>")
            }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_security_group", "node"), "t");
        Kind.delete(&c, &ctx, json!({"id": "sg-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn delete_gives_up_after_its_limit_naming_what_uses_the_group() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "DeleteSecurityGroup" => ec2_error(400, "DependencyViolation", "resource sg-1 has a dependent object"),
            "DescribeNetworkInterfaces" => {
                assert_eq!(req.param("Filter.1.Name"), Some("group-id"));
                ec2_ok(
                    "DescribeNetworkInterfaces",
                    "<networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId>\
                     <description>ELB demo-apiserver</description></item></networkInterfaceSet>",
                )
            }
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_security_group", "apiserver_lb"), "t");
        let start = tokio::time::Instant::now();
        let e = Kind.delete(&c, &ctx, json!({"id": "sg-1"}).as_object().unwrap()).await.unwrap_err();
        assert!(e.message.contains("DependencyViolation"), "{}", e.message);
        assert!(e.message.contains("eni-1 (ELB demo-apiserver)"), "{}", e.message);
        assert!(start.elapsed() <= c.timeouts.blocked_delete);
    }

    #[tokio::test]
    async fn update_revokes_and_authorizes_only_the_difference() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "RevokeSecurityGroupIngress" => ec2_ok("RevokeSecurityGroupIngress", "<return>true</return>"),
            "AuthorizeSecurityGroupIngress" => ec2_ok("AuthorizeSecurityGroupIngress", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_security_group", "bastion"), "t");
        let prior = json!({"id": "sg-1", "name": "b", "description": "d", "vpc_id": "vpc-1", "ingress": [
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["203.0.113.0/24", "198.51.100.0/24"]}]});
        let desired = json!({"name": "b", "description": "d", "vpc_id": "vpc-1", "ingress": [
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["203.0.113.0/24", "192.0.2.0/24"]}]});
        Kind.update(&c, &ctx, prior.as_object().unwrap(), desired.as_object().unwrap()).await.unwrap();
        let sent = fake.sent();
        assert_eq!(fake.actions(), ["RevokeSecurityGroupIngress", "AuthorizeSecurityGroupIngress"]);
        assert_eq!(sent[0].param("IpPermissions.1.IpRanges.1.CidrIp"), Some("198.51.100.0/24"));
        assert_eq!(sent[1].param("IpPermissions.1.IpRanges.1.CidrIp"), Some("192.0.2.0/24"));
        assert_eq!(sent[1].param("IpPermissions.1.FromPort"), Some("22"));
    }
}

#[cfg(test)]
mod read_tests {
    use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};
    use serde_json::json;
    use skyplan_engine::Address;

    use super::super::ingress::Source;
    use super::*;
    use crate::testing::{ec2_ok, FakeAws};

    const GROUPS: &str = "<securityGroupInfo>\
        <item><groupId>sg-cp</groupId><groupName>cp</groupName><groupDescription>control plane</groupDescription><vpcId>vpc-1</vpcId>\
          <ipPermissions>\
            <item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>\
              <groups><item><groupId>sg-bastion</groupId><description>ssh from the bastion</description></item></groups></item>\
            <item><ipProtocol>-1</ipProtocol><groups><item><groupId>sg-node</groupId></item></groups></item>\
          </ipPermissions></item>\
        <item><groupId>sg-node</groupId><groupName>node</groupName><groupDescription>nodes</groupDescription><vpcId>vpc-1</vpcId>\
          <ipPermissions><item><ipProtocol>-1</ipProtocol><groups><item><groupId>sg-cp</groupId></item></groups></item></ipPermissions></item>\
        </securityGroupInfo>";

    /// The control-plane group manages its ingress; the rule from the node
    /// group belongs to an `aws_security_group_rule` (its `skyplan:rule`
    /// tag, through DescribeTags) and is left out. The node group has no
    /// `ingress`: its rules are not looked at. No rules API (outside the
    /// seed's policies).
    #[tokio::test]
    async fn read_reports_managed_ingress_only_and_skips_rule_resources() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "DescribeSecurityGroups" => ec2_ok("DescribeSecurityGroups", GROUPS),
            "DescribeTags" => {
                assert_eq!(req.values("Filter.2.Value.", ""), ["sg-cp *"], "rules only of groups that manage ingress");
                ec2_ok(
                    "DescribeTags",
                    "<tagSet><item><resourceId>sgr-2</resourceId><resourceType>security-group-rule</resourceType>\
                     <key>skyplan:rule</key><value>sg-cp -1 0 0 sg-node</value></item></tagSet>",
                )
            }
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let cp = json!({"id": "sg-cp", "name": "cp", "description": "control plane", "vpc_id": "vpc-1", "ingress": [
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "source_security_group_ids": ["sg-bastion"], "description": "ssh from the bastion"}]});
        let node = json!({"id": "sg-node", "name": "node", "description": "nodes", "vpc_id": "vpc-1"});
        let reqs = [
            ReadRequest {
                address: Address::new("aws_security_group", "control_plane"),
                kind: SPEC.kind.into(),
                prior: cp.as_object().unwrap().clone(),
            },
            ReadRequest {
                address: Address::new("aws_security_group", "node"),
                kind: SPEC.kind.into(),
                prior: node.as_object().unwrap().clone(),
            },
        ];
        let out = Kind.read(&c, &reqs).await.unwrap();
        assert_eq!(out[0].as_ref(), Some(&reqs[0].prior), "the description comes from the group's permissions");
        assert_eq!(out[1].as_ref(), Some(&reqs[1].prior), "no `ingress` written, none reported");
        assert_eq!(fake.actions(), ["DescribeSecurityGroups", "DescribeTags"]);
    }

    #[test]
    fn permissions_expand_to_atoms_with_descriptions() {
        let p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(22)
            .to_port(22)
            .ip_ranges(IpRange::builder().cidr_ip("1.2.3.0/24").description("office").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
            .build();
        let atoms = permission_atoms(&p, "sg-1");
        assert_eq!(atoms.len(), 2);
        assert_eq!(atoms[0].source, Source::Cidr("1.2.3.0/24".into()));
        assert_eq!(atoms[0].description, "office");
        assert_eq!(atoms[1].source, Source::SelfGroup);
    }
}
