//! `aws_security_group_rule`: one ingress rule on a group, as a resource of
//! its own (for rules between groups that reference each other, which as
//! `ingress` tables would form a dependency cycle).
//!
//! Every attribute but `tags` forces replacement. The rule is created with
//! the address tag on its AWS rule id(s) (`sgr-...`), which is how a
//! group's read tells these rules from its own `ingress`. With several
//! `cidr_blocks` AWS makes one rule per CIDR: `id` is their ids joined by
//! commas. An existing identical permission (a create retried after a
//! crash) is adopted, not an error.

use std::collections::HashMap;

use aws_sdk_ec2::types::{ResourceType, SecurityGroupRule};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{filter, FILTER_CHUNK};
use crate::retry::Retry;
use crate::security_group::{self as sg, Atom, Source};
use crate::tags;

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_security_group_rule",
    fields: &[
        Field::new("security_group_id", Ty::Str).required().replace(),
        Field::new("type", Ty::Str).required().replace(),
        Field::new("protocol", Ty::Str).required().replace(),
        Field::new("from_port", Ty::Int).required().replace(),
        Field::new("to_port", Ty::Int).required().replace(),
        Field::new("cidr_blocks", Ty::StrList).replace(),
        Field::new("source_security_group_id", Ty::Str).replace(),
        Field::new("description", Ty::Str).replace(),
        TAGS,
    ],
    computed: &["id"],
};

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
    sg::rule_atoms(&rule)
}

fn split_ids(id: &str) -> Vec<String> {
    id.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

pub(crate) async fn create(c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
    let group_id = attrs::req_str(attrs, "security_group_id")?;
    let wanted = atoms(attrs)?;
    let tags = tags::for_create(attrs, &ctx.address)?;
    let spec = tags::ec2_spec(ResourceType::SecurityGroupRule, &tags);
    let created = sg::authorize(c, group_id, &wanted, Some(spec)).await?;
    let mut ids: Vec<String> = created.iter().filter_map(|r| r.security_group_rule_id().map(str::to_string)).collect();
    if ids.len() < wanted.len() {
        // Some existed already (or AWS did not say): find them, and tag them as ours.
        let live = sg::describe_rules(c, "group-id", vec![group_id.to_string()]).await?;
        ids = wanted
            .iter()
            .filter_map(|w| {
                live.iter()
                    .find(|r| sg::live_atom(r, group_id).is_some_and(|a| a.key() == w.key()))?
                    .security_group_rule_id()
            })
            .map(str::to_string)
            .collect();
        let ours = tags::TagDiff { set: tags.clone(), remove: Vec::new() };
        for id in &ids {
            tags::update_ec2(c, id, &ours).await?;
        }
    }
    if ids.is_empty() {
        return Err(ProviderError::new(format!("AWS reported no rule id for the rule on {group_id}")));
    }
    let mut result = attrs.clone();
    result.insert("id".into(), json!(ids.join(",")));
    Ok(result)
}

/// Descriptions of rules the rules API left empty, looked up in the groups'
/// permissions (the emulator drops group-sourced rules' descriptions from
/// the rules API; AWS does not, so there this runs only for rules that
/// really lost theirs).
async fn described_atoms(c: &Clients, group_ids: Vec<String>) -> Result<HashMap<String, Vec<Atom>>, ProviderError> {
    let mut atoms: HashMap<String, Vec<Atom>> = HashMap::new();
    for ids in group_ids.chunks(FILTER_CHUNK) {
        let out = c
            .call("DescribeSecurityGroups", Retry::Standard, || {
                c.ec2.describe_security_groups().filters(filter("group-id", ids.to_vec())).send()
            })
            .await?;
        for g in out.security_groups() {
            let id = g.group_id().unwrap_or_default();
            atoms.insert(id.to_string(), g.ip_permissions().iter().flat_map(|p| sg::permission_atoms(p, id)).collect());
        }
    }
    Ok(atoms)
}

pub(crate) async fn read(c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
    let mut all_ids: Vec<String> = reqs.iter().filter_map(|r| attrs::id(&r.prior).ok()).flat_map(split_ids).collect();
    all_ids.sort();
    all_ids.dedup();
    let mut found: HashMap<String, SecurityGroupRule> = HashMap::new();
    for chunk in all_ids.chunks(FILTER_CHUNK) {
        for r in sg::describe_rules(c, "security-group-rule-id", chunk.to_vec()).await? {
            if let Some(id) = r.security_group_rule_id() {
                found.insert(id.to_string(), r);
            }
        }
    }
    // Rules written with a description that the rules API shows without one.
    let mut missing: Vec<String> = reqs
        .iter()
        .filter(|r| attrs::opt_str(&r.prior, "description").ok().flatten().is_some_and(|d| !d.is_empty()))
        .filter_map(|r| attrs::id(&r.prior).ok())
        .flat_map(split_ids)
        .filter_map(|id| found.get(&id))
        .filter(|r| r.description().unwrap_or("").is_empty())
        .filter_map(|r| r.group_id().map(str::to_string))
        .collect();
    missing.sort();
    missing.dedup();
    let permissions = if missing.is_empty() { HashMap::new() } else { described_atoms(c, missing).await? };
    Ok(reqs
        .iter()
        .map(|req| {
            let ids = split_ids(attrs::id(&req.prior).ok()?);
            let present: Vec<(&String, &SecurityGroupRule)> =
                ids.iter().filter_map(|id| Some((id, found.get(id)?))).collect();
            let (_, first) = present.first()?;
            let group_id = first.group_id().unwrap_or_default();
            let mut atom = sg::live_atom(first, group_id)?;
            if atom.description.is_empty() {
                let described = permissions.get(group_id).and_then(|ps| ps.iter().find(|p| p.key() == atom.key()));
                if let Some(live) = described {
                    atom.description = live.description.clone();
                }
            }
            let mut live = Attrs::new();
            live.insert("id".into(), json!(present.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(",")));
            live.insert("security_group_id".into(), json!(group_id));
            live.insert("type".into(), json!("ingress"));
            // The protocol and ports as written, when AWS's spelling means the same.
            let prior_atoms = atoms(&req.prior).unwrap_or_default();
            let same_permission = prior_atoms.first().is_some_and(|p| {
                (p.protocol.as_str(), p.from_port, p.to_port) == (atom.protocol.as_str(), atom.from_port, atom.to_port)
            });
            if same_permission {
                for k in ["protocol", "from_port", "to_port"] {
                    live.insert(k.into(), req.prior.get(k).cloned().unwrap_or(Value::Null));
                }
            } else {
                live.insert("protocol".into(), json!(atom.protocol));
                live.insert("from_port".into(), json!(first.from_port()));
                live.insert("to_port".into(), json!(first.to_port()));
            }
            match &atom.source {
                Source::Group(g) => {
                    live.insert("source_security_group_id".into(), json!(g));
                }
                Source::SelfGroup => {
                    live.insert("source_security_group_id".into(), json!(group_id));
                }
                Source::Cidr(_) => {
                    let cidrs: Vec<String> =
                        present.iter().filter_map(|(_, r)| r.cidr_ipv4().map(str::to_string)).collect();
                    live.insert("cidr_blocks".into(), attrs::order_like(req.prior.get("cidr_blocks"), cidrs));
                }
            }
            if !atom.description.is_empty() || req.prior.contains_key("description") {
                live.insert("description".into(), json!(atom.description));
            }
            live.insert("tags".into(), tags::to_value(&tags::from_ec2(first.tags())));
            Some(SPEC.shape(&req.prior, live))
        })
        .collect())
}

pub(crate) async fn update(
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

pub(crate) async fn delete(c: &Clients, _ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
    let group_id = attrs::req_str(prior, "security_group_id")?;
    match sg::revoke(c, group_id, &atoms(prior)?).await {
        Err(e) if e.code() == "InvalidGroup.NotFound" => Ok(()),
        other => other.map_err(Into::into),
    }
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
    }
}
