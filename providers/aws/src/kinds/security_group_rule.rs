//! `aws_security_group_rule`: one ingress rule on a group, as a resource of
//! its own (for rules between groups that reference each other, which as
//! `ingress` tables would form a dependency cycle).
//!
//! Every attribute but `tags` forces replacement. The rule is created with
//! the address tag on its AWS rule id(s) (`sgr-...`). With several
//! `cidr_blocks` AWS makes one rule per CIDR: `id` is their ids joined by
//! commas. An existing identical permission (a create retried after a
//! crash, or one made by hand) is taken over: revoked and authorized again
//! with the rule's tags, since only the rules API would tell its rule id.
//!
//! Only what the seed's policies grant is used (docs/iam.md): the rule is
//! read from its group's permissions (DescribeSecurityGroups, as Terraform
//! reads it) and its tags through DescribeTags, never through
//! DescribeSecurityGroupRules. Since only that API maps a rule id to its
//! group and permission, the AWS rules also carry `skyplan:rule` = `GROUP
//! PROTOCOL FROM TO SOURCES` ([`rule_tag`]): how a rule found as an orphan,
//! by its tags alone, is read.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use super::ingress::{self, Atom, Source};
use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{filter, FILTER_CHUNK};
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::{self, Tags, ADDRESS_TAG};

use super::{hit, tagged, AwsKind, Hit};

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_security_group_rule",
    fields: &[
        Field::new("security_group_id", Ty::Str).required().replace(),
        Field::new("type", Ty::Str).required().replace(),
        Field::new("protocol", Ty::Str).required().replace(),
        Field::new("from_port", Ty::Int).required().replace(),
        Field::new("to_port", Ty::Int).required().replace(),
        Field::new("cidr_blocks", Ty::StrList).replace(),
        Field::new("source_security_group_id", Ty::Str).replace().holds(),
        Field::new("description", Ty::Str).replace(),
        TAGS,
    ],
    computed: &["id"],
    exclusive: false,
};

/// `aws_security_group_rule` in the registry (`kinds/mod.rs`).
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
        let group_id = attrs::req_str(attrs, "security_group_id")?;
        let wanted = atoms(attrs)?;
        let mut tags = tags::for_create(attrs, &ctx.address)?;
        if let Some(rule) = rule_tag(attrs)? {
            tags.insert(tags::RULE_TAG.to_string(), rule);
        }
        let spec = tags::ec2_spec(ResourceType::SecurityGroupRule, &tags);
        let created = ingress::authorize(c, group_id, &wanted, Some(spec.clone())).await?;
        let made: Vec<Atom> = created.iter().filter_map(|r| ingress::live_atom(r, group_id)).collect();
        let mut ids: Vec<String> =
            created.iter().filter_map(|r| r.security_group_rule_id().map(str::to_string)).collect();
        let existed: Vec<Atom> = wanted.iter().filter(|w| !made.iter().any(|m| m.key() == w.key())).cloned().collect();
        if !existed.is_empty() && ids.len() < wanted.len() {
            // Some existed already: their rule ids are only in the rules API,
            // which the seed's policies do not grant. Take them over by
            // authorizing them again, tagged as this rule.
            ingress::revoke(c, group_id, &existed).await?;
            let again = ingress::authorize(c, group_id, &existed, Some(spec)).await?;
            ids.extend(again.iter().filter_map(|r| r.security_group_rule_id().map(str::to_string)));
        }
        if ids.is_empty() {
            return Err(ProviderError::new(format!("AWS reported no rule id for the rule on {group_id}")));
        }
        let mut result = attrs.clone();
        result.insert("id".into(), json!(ids.join(",")));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut all_ids: Vec<String> =
            reqs.iter().filter_map(|r| attrs::id(&r.prior).ok()).flat_map(split_ids).collect();
        all_ids.sort();
        all_ids.dedup();
        let tags = tags_of(c, &all_ids).await?;
        // A prior without its group (an orphan found by its tags): what the
        // rule is, from its `skyplan:rule` tag.
        let resolved: Vec<ReadRequest> = reqs
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if attrs::opt_str(&r.prior, "security_group_id").ok().flatten().is_none() {
                    let recorded = attrs::id(&r.prior)
                        .ok()
                        .map(split_ids)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|id| tags.get(id))
                        .flat_map(|list| list.iter())
                        .find(|t| t.key() == Some(tags::RULE_TAG))
                        .and_then(|t| from_rule_tag(t.value().unwrap_or("")));
                    for (k, v) in recorded.unwrap_or_default() {
                        r.prior.insert(k, v);
                    }
                }
                r
            })
            .collect();
        let reqs = &resolved[..];
        let mut group_ids: Vec<String> = reqs
            .iter()
            .filter_map(|r| attrs::opt_str(&r.prior, "security_group_id").ok().flatten())
            .map(str::to_string)
            .collect();
        group_ids.sort();
        group_ids.dedup();
        let permissions = ingress::group_atoms(c, group_ids).await?;
        Ok(reqs
            .iter()
            .map(|req| {
                let group_id = attrs::opt_str(&req.prior, "security_group_id").ok().flatten()?;
                let live = permissions.get(group_id)?;
                let wanted = atoms(&req.prior).ok()?;
                // The live permissions this rule is (descriptions as AWS has them).
                let present: Vec<&Atom> =
                    wanted.iter().filter_map(|w| live.iter().find(|l| l.key() == w.key())).collect();
                let first = *present.first()?;
                let ids = split_ids(attrs::id(&req.prior).ok()?);
                let mut out = Attrs::new();
                out.insert("id".into(), json!(ids.join(",")));
                out.insert("security_group_id".into(), json!(group_id));
                out.insert("type".into(), json!("ingress"));
                for k in ["protocol", "from_port", "to_port"] {
                    out.insert(k.into(), req.prior.get(k).cloned().unwrap_or(Value::Null));
                }
                match &first.source {
                    Source::Group(g) => {
                        out.insert("source_security_group_id".into(), json!(g));
                    }
                    Source::SelfGroup => {
                        out.insert("source_security_group_id".into(), json!(group_id));
                    }
                    Source::Cidr(_) => {
                        let cidrs: Vec<String> = present
                            .iter()
                            .filter_map(|a| if let Source::Cidr(c) = &a.source { Some(c.clone()) } else { None })
                            .collect();
                        out.insert("cidr_blocks".into(), attrs::order_like(req.prior.get("cidr_blocks"), cidrs));
                    }
                }
                if !first.description.is_empty() || req.prior.contains_key("description") {
                    out.insert("description".into(), json!(first.description));
                }
                let tagged: BTreeMap<String, String> =
                    ids.iter().find_map(|id| tags.get(id)).map(|list| tags::from_ec2(list)).unwrap_or_default();
                out.insert("tags".into(), tags::to_value(&tagged));
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
        let diff = tags::diff_attrs(prior, attrs)?;
        for rule_id in split_ids(id) {
            tags::update_ec2(c, &rule_id, &diff).await?;
        }
        let mut result = attrs.clone();
        result.insert("id".into(), Value::String(id.to_string()));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, _ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let group_id = attrs::req_str(prior, "security_group_id")?;
        match ingress::revoke(c, group_id, &atoms(prior)?).await {
            Err(e) if e.code() == "InvalidGroup.NotFound" => Ok(()),
            other => other.map_err(Into::into),
        }
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        // Rule ids and tags through DescribeTags: the rules API is
        // outside the seed's policies. First the rules with this address,
        // then every tag of each, for the ownership check. One rule per
        // CIDR: every id.
        let by_address = vec![filter("key", [ADDRESS_TAG]), filter("value", [tags::filter_pattern(address)])];
        let candidates: Vec<String> = rule_tags(c, by_address).await?.into_keys().collect();
        let mut ids: Vec<String> = if candidates.is_empty() {
            Vec::new()
        } else {
            rule_tags(c, vec![filter("resource-id", candidates)])
                .await?
                .into_iter()
                .filter(|(_, list)| tagged(list, address, inputs))
                .map(|(id, _)| id)
                .collect()
        };
        ids.sort();
        Ok((!ids.is_empty()).then(|| ids.join(",")))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        // DescribeTags (the rules API is outside the seed's policies): the
        // rules carrying one ownership tag (DescribeTags filters match one
        // tag at a time), then all their tags.
        let first = match owner.iter().next() {
            Some((k, v)) => vec![filter("key", [k.as_str()]), filter("value", [tags::filter_pattern(v)])],
            None => vec![filter("key", [ADDRESS_TAG])],
        };
        let ids: Vec<String> = rule_tags(c, first).await?.into_keys().collect();
        let all = tags_of(c, &ids).await?;
        Ok(all.iter().filter_map(|(id, list)| hit(Some(id.as_str()), list)).collect())
    }

    fn joins_ids(&self) -> bool {
        true
    }
}

pub(crate) fn validate(attrs: &Attrs) -> Vec<String> {
    let mut errors = Vec::new();
    match attrs.get("type") {
        Some(Value::String(t)) if t == "ingress" || t.contains("${") => {}
        Some(Value::String(t)) => {
            errors.push(format!("`type` must be \"ingress\", not {t:?} (egress stays allow-all)"))
        }
        _ => {}
    }
    let has_cidrs = matches!(attrs.get("cidr_blocks"), Some(Value::Array(a)) if !a.is_empty())
        || matches!(attrs.get("cidr_blocks"), Some(Value::String(_)));
    let has_group = attrs.get("source_security_group_id").is_some_and(|v| !v.is_null());
    if has_cidrs == has_group {
        errors.push("give exactly one of `cidr_blocks` and `source_security_group_id`".to_string());
    }
    errors
}

/// The rule's atoms (one per CIDR, or one for the source group).
fn atoms(attrs: &Attrs) -> Result<Vec<Atom>, ProviderError> {
    let mut rule = Attrs::new();
    for k in ["protocol", "from_port", "to_port", "cidr_blocks", "description"] {
        if let Some(v) = attrs.get(k) {
            rule.insert(k.into(), v.clone());
        }
    }
    if let Some(g) = attrs::opt_str(attrs, "source_security_group_id")? {
        rule.insert("source_security_group_ids".into(), json!([g]));
    }
    // A rule from its own group is a self rule, as the group's permissions
    // report it.
    let own = attrs::opt_str(attrs, "security_group_id")?.map(str::to_string);
    Ok(ingress::rule_atoms(&rule)?
        .into_iter()
        .map(|mut a| {
            if matches!(&a.source, Source::Group(g) if Some(g) == own.as_ref()) {
                a.source = Source::SelfGroup;
            }
            a
        })
        .collect())
}

/// The `skyplan:rule` tag's value: `sg-1 tcp 443 443 10.0.0.0/16,10.1.0.0/16`
/// (sources: CIDRs, or the source group). None when over AWS's 256
/// characters (then an orphan of it is not found).
fn rule_tag(attrs: &Attrs) -> Result<Option<String>, ProviderError> {
    let group = attrs::req_str(attrs, "security_group_id")?;
    let sources = match attrs::opt_str(attrs, "source_security_group_id")? {
        Some(g) => g.to_string(),
        None => attrs::str_list(attrs, "cidr_blocks")?.join(","),
    };
    let value = format!(
        "{group} {} {} {} {sources}",
        attrs::req_str(attrs, "protocol")?,
        attrs::req_i32(attrs, "from_port")?,
        attrs::req_i32(attrs, "to_port")?
    );
    Ok((value.len() <= 256).then_some(value))
}

/// The attributes a `skyplan:rule` tag records, for reading an orphan.
fn from_rule_tag(value: &str) -> Option<Attrs> {
    let mut parts = value.split(' ');
    let (group, protocol, from, to, sources) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let mut attrs = Attrs::new();
    attrs.insert("security_group_id".into(), json!(group));
    attrs.insert("protocol".into(), json!(protocol));
    attrs.insert("from_port".into(), json!(from.parse::<i64>().ok()?));
    attrs.insert("to_port".into(), json!(to.parse::<i64>().ok()?));
    if sources.starts_with("sg-") {
        attrs.insert("source_security_group_id".into(), json!(sources));
    } else {
        attrs.insert("cidr_blocks".into(), json!(sources.split(',').collect::<Vec<_>>()));
    }
    Some(attrs)
}

fn split_ids(id: &str) -> Vec<String> {
    id.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Tags of security group rules as DescribeTags lists them, by rule id,
/// for the rules DescribeTags `filters` select (`resource-type` is added).
pub(crate) async fn rule_tags(c: &Clients, filters: Vec<Filter>) -> Result<HashMap<String, Vec<Tag>>, ApiError> {
    let mut filters = filters;
    filters.push(filter("resource-type", ["security-group-rule"]));
    let described = c
        .paginate(
            "DescribeTags",
            Retry::Standard,
            |token| c.ec2.describe_tags().set_filters(Some(filters.clone())).set_next_token(token).send(),
            |page| page.tags().to_vec(),
            |page| page.next_token().filter(|t| !t.is_empty()),
        )
        .await?;
    let mut out: HashMap<String, Vec<Tag>> = HashMap::new();
    for d in described {
        let (Some(id), Some(key)) = (d.resource_id(), d.key()) else { continue };
        out.entry(id.to_string()).or_default().push(Tag::builder().key(key).value(d.value().unwrap_or("")).build());
    }
    Ok(out)
}

/// The atoms that `aws_security_group_rule` resources made on each of
/// `group_ids`, from their `skyplan:rule` tags (DescribeTags), by group:
/// what a group that manages its own `ingress` leaves out.
pub(crate) async fn rule_atoms_on(
    c: &Clients,
    group_ids: &[String],
) -> Result<HashMap<String, Vec<Atom>>, ProviderError> {
    let mut out: HashMap<String, Vec<Atom>> = HashMap::new();
    for chunk in group_ids.chunks(FILTER_CHUNK) {
        let values: Vec<String> = chunk.iter().map(|g| format!("{g} *")).collect();
        let tagged = rule_tags(c, vec![filter("key", [tags::RULE_TAG]), filter("value", values)]).await?;
        for list in tagged.values() {
            for t in list.iter().filter(|t| t.key() == Some(tags::RULE_TAG)) {
                let Some(attrs) = from_rule_tag(t.value().unwrap_or("")) else { continue };
                let group = attrs::req_str(&attrs, "security_group_id")?.to_string();
                if chunk.contains(&group) {
                    out.entry(group).or_default().extend(atoms(&attrs)?);
                }
            }
        }
    }
    Ok(out)
}

/// [`rule_tags`] of the given rule ids.
async fn tags_of(c: &Clients, ids: &[String]) -> Result<HashMap<String, Vec<Tag>>, ApiError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(FILTER_CHUNK) {
        out.extend(rule_tags(c, vec![filter("resource-id", chunk.to_vec())]).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn exactly_one_source_and_ingress_only() {
        let both = obj(json!({"type": "ingress", "cidr_blocks": ["1.2.3.4/32"], "source_security_group_id": "sg-1"}));
        assert_eq!(validate(&both).len(), 1);
        let neither = obj(json!({"type": "ingress"}));
        assert_eq!(validate(&neither).len(), 1);
        let egress = obj(json!({"type": "egress", "source_security_group_id": "sg-1"}));
        assert!(validate(&egress)[0].contains("must be \"ingress\""));
        let ok = obj(json!({"type": "ingress", "source_security_group_id": "${aws_security_group.node.id}"}));
        assert!(validate(&ok).is_empty());
    }

    #[test]
    fn a_group_source_is_one_atom() {
        let rule = obj(json!({"security_group_id": "sg-cp", "type": "ingress", "protocol": "tcp",
                              "from_port": 10250, "to_port": 10250, "source_security_group_id": "sg-node"}));
        let a = atoms(&rule).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].source, Source::Group("sg-node".into()));
        assert_eq!(split_ids("sgr-1,sgr-2"), ["sgr-1", "sgr-2"]);
        let own = obj(json!({"security_group_id": "sg-cp", "type": "ingress", "protocol": "-1",
                             "from_port": 0, "to_port": 0, "source_security_group_id": "sg-cp"}));
        assert_eq!(atoms(&own).unwrap()[0].source, Source::SelfGroup, "as the group's permissions report it");
    }

    const CP_GROUP: &str = "<securityGroupInfo><item><groupId>sg-cp</groupId><groupName>cp</groupName><vpcId>vpc-1</vpcId>\
        <ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>10250</fromPort><toPort>10250</toPort>\
          <groups><item><groupId>sg-node</groupId><description>kubelet</description></item></groups></item></ipPermissions>\
        </item></securityGroupInfo>";

    const RULE_TAGS: &str = "<tagSet>\
        <item><resourceId>sgr-1</resourceId><resourceType>security-group-rule</resourceType><key>skyplan:address</key><value>aws_security_group_rule.kubelet</value></item>\
        <item><resourceId>sgr-1</resourceId><resourceType>security-group-rule</resourceType><key>skyplan:rule</key><value>sg-cp tcp 10250 10250 sg-node</value></item>\
        <item><resourceId>sgr-1</resourceId><resourceType>security-group-rule</resourceType><key>team</key><value>a</value></item>\
        </tagSet>";

    /// Read from the group's permissions and DescribeTags: the rules API
    /// (outside the seed's policies) is never called. A recorded rule and an
    /// orphan known only by its id read the same.
    #[tokio::test]
    async fn read_uses_the_groups_permissions_and_describe_tags() {
        use crate::testing::{ec2_ok, FakeAws};
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "DescribeSecurityGroups" => ec2_ok("DescribeSecurityGroups", CP_GROUP),
            "DescribeTags" => ec2_ok("DescribeTags", RULE_TAGS),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let recorded = obj(json!({"id": "sgr-1", "security_group_id": "sg-cp", "type": "ingress", "protocol": "tcp",
            "from_port": 10250, "to_port": 10250, "source_security_group_id": "sg-node", "description": "kubelet",
            "tags": {"team": "a"}}));
        let address = skyplan_engine::Address::new("aws_security_group_rule", "kubelet");
        let req = |prior: Attrs| ReadRequest { address: address.clone(), kind: SPEC.kind.into(), prior };
        let out = Kind.read(&c, &[req(recorded.clone())]).await.unwrap();
        assert_eq!(out[0].as_ref(), Some(&recorded));
        assert_eq!(fake.actions(), ["DescribeTags", "DescribeSecurityGroups"]);

        let mut orphan: Attrs = SPEC.fields.iter().map(|f| (f.name.to_string(), Value::Null)).collect();
        orphan.insert("id".into(), json!("sgr-1"));
        let found = Kind.read(&c, &[req(orphan)]).await.unwrap().remove(0).expect("the orphan is read from its tags");
        assert_eq!(found["security_group_id"], json!("sg-cp"));
        assert_eq!(found["source_security_group_id"], json!("sg-node"));
        assert_eq!(found["from_port"], json!(10250));
        assert_eq!(found["tags"], json!({"team": "a"}), "skyplan's own tags are not the user's");

        // The permission revoked by hand: gone.
        let gone = FakeAws::new(|req| match req.action.as_str() {
            "DescribeSecurityGroups" => ec2_ok(
                "DescribeSecurityGroups",
                "<securityGroupInfo><item><groupId>sg-cp</groupId><ipPermissions/></item></securityGroupInfo>",
            ),
            "DescribeTags" => ec2_ok("DescribeTags", "<tagSet/>"),
            other => panic!("unexpected call {other}"),
        });
        let c = gone.clients().await;
        assert_eq!(Kind.read(&c, &[req(recorded)]).await.unwrap(), [None]);
    }

    /// Created with the address and rule tags; a permission that existed
    /// already is revoked and authorized again, tagged (its id is only in
    /// the rules API).
    #[tokio::test]
    async fn create_tags_the_rule_and_takes_over_an_existing_permission() {
        use crate::testing::{ec2_error, ec2_ok, recording_ctx, FakeAws};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let authorized = std::sync::Arc::new(AtomicUsize::new(0));
        let n = authorized.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "AuthorizeSecurityGroupIngress" if n.fetch_add(1, Ordering::SeqCst) == 0 => {
                ec2_error(400, "InvalidPermission.Duplicate", "the specified rule already exists")
            }
            "AuthorizeSecurityGroupIngress" => ec2_ok(
                "AuthorizeSecurityGroupIngress",
                "<return>true</return><securityGroupRuleSet><item><securityGroupRuleId>sgr-9</securityGroupRuleId>\
                 <groupId>sg-cp</groupId><ipProtocol>tcp</ipProtocol><fromPort>10250</fromPort><toPort>10250</toPort>\
                 <referencedGroupInfo><groupId>sg-node</groupId></referencedGroupInfo></item></securityGroupRuleSet>",
            ),
            "RevokeSecurityGroupIngress" => ec2_ok("RevokeSecurityGroupIngress", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(skyplan_engine::Address::new("aws_security_group_rule", "kubelet"), "t");
        let attrs = obj(json!({"security_group_id": "sg-cp", "type": "ingress", "protocol": "tcp",
            "from_port": 10250, "to_port": 10250, "source_security_group_id": "sg-node"}));
        let out = Kind.create(&c, &ctx, &attrs).await.unwrap();
        assert_eq!(out["id"], json!("sgr-9"));
        assert_eq!(
            fake.actions(),
            ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupIngress"]
        );
        let sent = fake.sent();
        let tags = sent[2].values("TagSpecification.1.Tag.", ".Value");
        assert!(tags.contains(&"aws_security_group_rule.kubelet"), "{tags:?}");
        assert!(tags.contains(&"sg-cp tcp 10250 10250 sg-node"), "{tags:?}");
    }
}
