//! `aws_security_group`: a VPC security group and its ingress rules (egress
//! stays AWS's default allow-all).
//!
//! Rules are compared as *atoms*: one protocol, port range, source (a CIDR,
//! another group, or the group itself) and description each ([`Atom`]).
//! The user's rule tables expand to atoms; AWS's rules are atoms already.
//! An update revokes the atoms that went and authorizes the new ones
//! ([`atom_changes`]); a read regroups the live atoms, giving back each
//! prior rule table unchanged when all its atoms are there.
//!
//! A group written without `ingress` does not manage its rules: neither
//! read nor update looks at them (its rules are `aws_security_group_rule`
//! resources). A group written with `ingress` reports every live rule but
//! those made by `aws_security_group_rule` resources (which record what
//! they are in their `skyplan:rule` tag, read with DescribeTags), so the
//! two kinds can even share a group without fighting. Live rules come from
//! DescribeSecurityGroups' permissions; the rules API
//! (DescribeSecurityGroupRules) is outside the seed's policies and never
//! called (docs/iam.md). The atom model is shared with
//! `security_group_rule.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, SecurityGroup, SecurityGroupRule, UserIdGroupPair};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::blockers;
use crate::clients::Clients;
use crate::ec2util::{created_but, describe_by_id, filter, FILTER_CHUNK};
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags;

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
        Field::new("name", Ty::Str).required().replace(),
        Field::new("description", Ty::Str).required().replace(),
        Field::new("vpc_id", Ty::Str).required().replace().holds(),
        Field::new("ingress", Ty::Objects(RULE)).default("[]").holds(),
        TAGS,
    ],
    computed: &["id"],
    exclusive: true,
};

/// Where traffic an atom allows comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Source {
    Cidr(String),
    Group(String),
    /// The group the rule is on.
    SelfGroup,
}

/// One protocol, port range and source: the unit AWS authorizes and revokes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Atom {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub source: Source,
    pub description: String,
}

impl Atom {
    /// What identifies the permission to AWS (the description does not).
    pub fn key(&self) -> (&str, i32, i32, &Source) {
        (&self.protocol, self.from_port, self.to_port, &self.source)
    }
}

/// AWS's spelling of a protocol: `tcp`, `udp`, `icmp`, `icmpv6`, or `-1` for all.
pub(crate) fn normalize_protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "all" | "-1" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        other => other.to_string(),
    }
}

/// Ports as they identify an atom: all protocols ignore them.
pub(crate) fn normalize_ports(protocol: &str, from: i32, to: i32) -> (i32, i32) {
    if protocol == "-1" {
        (-1, -1)
    } else {
        (from, to)
    }
}

fn port(obj: &Attrs, name: &str) -> Result<i32, ProviderError> {
    attrs::req_i32(obj, name)
}

/// The atoms of one `ingress` rule table.
pub(crate) fn rule_atoms(rule: &Attrs) -> Result<Vec<Atom>, ProviderError> {
    let protocol = normalize_protocol(attrs::req_str(rule, "protocol")?);
    let (from_port, to_port) = normalize_ports(&protocol, port(rule, "from_port")?, port(rule, "to_port")?);
    let description = attrs::opt_str(rule, "description")?.unwrap_or("").to_string();
    let mut sources: Vec<Source> = attrs::str_list(rule, "cidr_blocks")?.into_iter().map(Source::Cidr).collect();
    sources.extend(attrs::str_list(rule, "source_security_group_ids")?.into_iter().map(Source::Group));
    if attrs::bool_or(rule, "self", false)? {
        sources.push(Source::SelfGroup);
    }
    Ok(sources
        .into_iter()
        .map(|source| Atom { protocol: protocol.clone(), from_port, to_port, source, description: description.clone() })
        .collect())
}

pub(crate) fn ingress_atoms(attrs: &Attrs) -> Result<Vec<Atom>, ProviderError> {
    let mut out = Vec::new();
    for rule in attrs::objects(attrs, "ingress")? {
        out.extend(rule_atoms(rule)?);
    }
    Ok(out)
}

/// A live rule as an atom, seen from group `group_id`.
pub(crate) fn live_atom(rule: &SecurityGroupRule, group_id: &str) -> Option<Atom> {
    let protocol = normalize_protocol(rule.ip_protocol()?);
    let (from_port, to_port) = normalize_ports(&protocol, rule.from_port().unwrap_or(-1), rule.to_port().unwrap_or(-1));
    let source = match (rule.cidr_ipv4(), rule.referenced_group_info().and_then(|g| g.group_id())) {
        (Some(cidr), _) => Source::Cidr(cidr.to_string()),
        (None, Some(g)) if g == group_id => Source::SelfGroup,
        (None, Some(g)) => Source::Group(g.to_string()),
        // IPv6 and prefix-list rules are not modelled.
        _ => return None,
    };
    Some(Atom { protocol, from_port, to_port, source, description: rule.description().unwrap_or("").to_string() })
}

/// The atoms of one live permission of group `group_id` (as
/// DescribeSecurityGroups reports them, descriptions included).
pub(crate) fn permission_atoms(p: &IpPermission, group_id: &str) -> Vec<Atom> {
    let Some(protocol) = p.ip_protocol().map(normalize_protocol) else {
        return Vec::new();
    };
    let (from_port, to_port) = normalize_ports(&protocol, p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
    let atom = |source: Source, description: Option<&str>| Atom {
        protocol: protocol.clone(),
        from_port,
        to_port,
        source,
        description: description.unwrap_or("").to_string(),
    };
    let mut atoms: Vec<Atom> = p
        .ip_ranges()
        .iter()
        .filter_map(|r| Some(atom(Source::Cidr(r.cidr_ip()?.to_string()), r.description())))
        .collect();
    atoms.extend(p.user_id_group_pairs().iter().filter_map(|u| {
        let g = u.group_id()?;
        let source = if g == group_id { Source::SelfGroup } else { Source::Group(g.to_string()) };
        Some(atom(source, u.description()))
    }));
    atoms
}

/// The permission AWS takes for one atom on group `group_id`.
pub(crate) fn permission(atom: &Atom, group_id: &str) -> IpPermission {
    let mut p = IpPermission::builder().ip_protocol(&atom.protocol);
    if atom.protocol != "-1" {
        p = p.from_port(atom.from_port).to_port(atom.to_port);
    }
    let description = (!atom.description.is_empty()).then(|| atom.description.clone());
    match &atom.source {
        Source::Cidr(cidr) => p.ip_ranges(IpRange::builder().cidr_ip(cidr).set_description(description).build()),
        Source::Group(g) => {
            p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).set_description(description).build())
        }
        Source::SelfGroup => {
            p.user_id_group_pairs(UserIdGroupPair::builder().group_id(group_id).set_description(description).build())
        }
    }
    .build()
}

/// Atoms to revoke and to authorize to go from `prior` to `desired`. A
/// changed description is a revoke and an authorize of the same permission.
pub(crate) fn atom_changes(prior: &[Atom], desired: &[Atom]) -> (Vec<Atom>, Vec<Atom>) {
    let before: BTreeSet<&Atom> = prior.iter().collect();
    let after: BTreeSet<&Atom> = desired.iter().collect();
    let revoke = before.difference(&after).map(|a| (*a).clone()).collect();
    let authorize = after.difference(&before).map(|a| (*a).clone()).collect();
    (revoke, authorize)
}

/// Group live atoms back into rule tables: every prior rule whose atoms are
/// all present comes back as written; the rest are grouped by protocol,
/// ports and description, with only the non-empty fields.
pub(crate) fn regroup(prior_rules: &[&Attrs], live: Vec<Atom>) -> Value {
    let mut remaining: Vec<Atom> = live;
    let mut out = Vec::new();
    for rule in prior_rules {
        let Ok(atoms) = rule_atoms(rule) else {
            continue;
        };
        if !atoms.is_empty() && atoms.iter().all(|a| remaining.contains(a)) {
            remaining.retain(|a| !atoms.contains(a));
            out.push(Value::Object((*rule).clone()));
        }
    }
    let mut groups: BTreeMap<(String, i32, i32, String), Vec<Source>> = BTreeMap::new();
    for a in remaining {
        groups.entry((a.protocol, a.from_port, a.to_port, a.description)).or_default().push(a.source);
    }
    for ((protocol, from, to, description), mut sources) in groups {
        sources.sort();
        sources.dedup();
        let (from, to) = if protocol == "-1" { (0, 0) } else { (from, to) };
        let mut rule = Attrs::new();
        rule.insert("protocol".into(), json!(protocol));
        rule.insert("from_port".into(), json!(from));
        rule.insert("to_port".into(), json!(to));
        let cidrs: Vec<&str> =
            sources.iter().filter_map(|s| if let Source::Cidr(c) = s { Some(c.as_str()) } else { None }).collect();
        let groups: Vec<&str> =
            sources.iter().filter_map(|s| if let Source::Group(g) = s { Some(g.as_str()) } else { None }).collect();
        if !cidrs.is_empty() {
            rule.insert("cidr_blocks".into(), json!(cidrs));
        }
        if !groups.is_empty() {
            rule.insert("source_security_group_ids".into(), json!(groups));
        }
        if sources.contains(&Source::SelfGroup) {
            rule.insert("self".into(), json!(true));
        }
        if !description.is_empty() {
            rule.insert("description".into(), json!(description));
        }
        out.push(Value::Object(rule));
    }
    Value::Array(out)
}

pub(crate) fn validate(attrs: &Attrs) -> Vec<String> {
    let Ok(rules) = attrs::objects(attrs, "ingress") else {
        return Vec::new();
    };
    let mut errors = Vec::new();
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

/// Authorize atoms on a group; a permission that already exists is fine.
pub(crate) async fn authorize(
    c: &Clients,
    group_id: &str,
    atoms: &[Atom],
    tag_spec: Option<aws_sdk_ec2::types::TagSpecification>,
) -> Result<Vec<SecurityGroupRule>, ApiError> {
    if atoms.is_empty() {
        return Ok(Vec::new());
    }
    let perms: Vec<IpPermission> = atoms.iter().map(|a| permission(a, group_id)).collect();
    let all = c
        .call("AuthorizeSecurityGroupIngress", Retry::AfterCreate, || {
            c.ec2
                .authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(perms.clone()))
                .set_tag_specifications(tag_spec.clone().map(|t| vec![t]))
                .send()
        })
        .await;
    match all {
        Ok(out) => Ok(out.security_group_rules().to_vec()),
        // One of them exists already: add them one by one, skipping those.
        Err(e) if e.code() == "InvalidPermission.Duplicate" && perms.len() > 1 => {
            let mut rules = Vec::new();
            for perm in perms {
                let one = c
                    .call("AuthorizeSecurityGroupIngress", Retry::AfterCreate, || {
                        c.ec2
                            .authorize_security_group_ingress()
                            .group_id(group_id)
                            .ip_permissions(perm.clone())
                            .set_tag_specifications(tag_spec.clone().map(|t| vec![t]))
                            .send()
                    })
                    .await;
                match one {
                    Ok(out) => rules.extend(out.security_group_rules().iter().cloned()),
                    Err(e) if e.code() == "InvalidPermission.Duplicate" => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(rules)
        }
        Err(e) if e.code() == "InvalidPermission.Duplicate" => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Revoke atoms from a group; a permission that is already gone is fine.
pub(crate) async fn revoke(c: &Clients, group_id: &str, atoms: &[Atom]) -> Result<(), ApiError> {
    for atom in atoms {
        let perm = permission(atom, group_id);
        let revoked = c
            .call("RevokeSecurityGroupIngress", Retry::Standard, || {
                c.ec2.revoke_security_group_ingress().group_id(group_id).ip_permissions(perm.clone()).send()
            })
            .await;
        match revoked {
            Err(e) if !(e.is_not_found() || e.code() == "InvalidPermission.NotFound") => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The live ingress atoms of the given groups, by group id, as
/// DescribeSecurityGroups reports them (descriptions included). A group
/// that is gone is absent.
pub(crate) async fn group_atoms(c: &Clients, group_ids: Vec<String>) -> Result<HashMap<String, Vec<Atom>>, ApiError> {
    let mut atoms: HashMap<String, Vec<Atom>> = HashMap::new();
    for ids in group_ids.chunks(FILTER_CHUNK) {
        let groups = c
            .paginate(
                "DescribeSecurityGroups",
                Retry::Standard,
                |token| {
                    c.ec2
                        .describe_security_groups()
                        .filters(filter("group-id", ids.to_vec()))
                        .set_next_token(token)
                        .send()
                },
                |page| page.security_groups().to_vec(),
                |page| page.next_token(),
            )
            .await?;
        for g in groups {
            let id = g.group_id().unwrap_or_default();
            atoms.insert(id.to_string(), g.ip_permissions().iter().flat_map(|p| permission_atoms(p, id)).collect());
        }
    }
    Ok(atoms)
}

pub(crate) async fn create(c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
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

/// A group manages its ingress only when it is written with `ingress`;
/// without, its rules are `aws_security_group_rule` resources' (or nobody's).
fn manages_ingress(attrs: &Attrs) -> bool {
    attrs.get("ingress").is_some_and(|v| !v.is_null())
}

pub(crate) async fn read(c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
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
        crate::security_group_rule::rule_atoms_on(c, &managed).await?
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

pub(crate) async fn update(
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

pub(crate) async fn delete(c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
    let id = attrs::id(prior)?;
    blockers::delete_once_unused(c, ctx, "security group", "group-id", id, || {
        c.call("DeleteSecurityGroup", Retry::Standard, || c.ec2.delete_security_group().group_id(id).send())
    })
    .await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::ReferencedSecurityGroup;
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    fn atom(p: &str, from: i32, to: i32, s: Source, d: &str) -> Atom {
        Atom { protocol: p.into(), from_port: from, to_port: to, source: s, description: d.into() }
    }

    #[test]
    fn a_rule_table_expands_to_one_atom_per_source() {
        let rule = obj(json!({
            "protocol": "TCP", "from_port": 6443, "to_port": 6443,
            "cidr_blocks": ["10.0.0.0/16", "10.1.0.0/16"], "source_security_group_ids": ["sg-b"],
            "self": true, "description": "api"
        }));
        let atoms = rule_atoms(&rule).unwrap();
        assert_eq!(
            atoms,
            [
                atom("tcp", 6443, 6443, Source::Cidr("10.0.0.0/16".into()), "api"),
                atom("tcp", 6443, 6443, Source::Cidr("10.1.0.0/16".into()), "api"),
                atom("tcp", 6443, 6443, Source::Group("sg-b".into()), "api"),
                atom("tcp", 6443, 6443, Source::SelfGroup, "api"),
            ]
        );
    }

    #[test]
    fn all_protocols_ignore_ports() {
        let a = rule_atoms(&obj(json!({"protocol": "all", "from_port": 0, "to_port": 0, "self": true}))).unwrap();
        let b = rule_atoms(&obj(json!({"protocol": "-1", "from_port": 0, "to_port": 65535, "self": true}))).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].key(), ("-1", -1, -1, &Source::SelfGroup));
    }

    #[test]
    fn changes_revoke_what_went_and_authorize_what_came() {
        let ssh = atom("tcp", 22, 22, Source::Cidr("203.0.113.0/24".into()), "");
        let api = atom("tcp", 6443, 6443, Source::Group("sg-lb".into()), "");
        let api_described = atom("tcp", 6443, 6443, Source::Group("sg-lb".into()), "from the LB");
        let all_self = atom("-1", -1, -1, Source::SelfGroup, "");
        let (revoke, authorize) =
            atom_changes(&[ssh.clone(), api.clone(), all_self.clone()], &[all_self, api_described.clone()]);
        assert_eq!(revoke, [ssh, api]);
        assert_eq!(authorize, [api_described]);
    }

    #[test]
    fn permissions_carry_the_source_and_description() {
        let p = permission(&atom("tcp", 22, 22, Source::Cidr("1.2.3.0/24".into()), "ssh"), "sg-1");
        assert_eq!((p.ip_protocol(), p.from_port(), p.to_port()), (Some("tcp"), Some(22), Some(22)));
        assert_eq!(p.ip_ranges()[0].cidr_ip(), Some("1.2.3.0/24"));
        assert_eq!(p.ip_ranges()[0].description(), Some("ssh"));
        let s = permission(&atom("-1", -1, -1, Source::SelfGroup, ""), "sg-1");
        assert_eq!((s.from_port(), s.to_port()), (None, None), "no ports for all protocols");
        assert_eq!(s.user_id_group_pairs()[0].group_id(), Some("sg-1"));
        assert_eq!(s.user_id_group_pairs()[0].description(), None);
    }

    #[test]
    fn live_rules_become_atoms_relative_to_their_group() {
        let r = SecurityGroupRule::builder()
            .group_id("sg-1")
            .ip_protocol("-1")
            .from_port(-1)
            .to_port(-1)
            .referenced_group_info(ReferencedSecurityGroup::builder().group_id("sg-1").build())
            .build();
        assert_eq!(live_atom(&r, "sg-1"), Some(atom("-1", -1, -1, Source::SelfGroup, "")));
        let v6 = SecurityGroupRule::builder().ip_protocol("tcp").from_port(1).to_port(1).cidr_ipv6("::/0").build();
        assert_eq!(live_atom(&v6, "sg-1"), None);
    }

    #[test]
    fn regroup_gives_back_prior_tables_and_groups_the_rest() {
        let written =
            obj(json!({"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["203.0.113.0/24"]}));
        let live = vec![
            atom("tcp", 22, 22, Source::Cidr("203.0.113.0/24".into()), ""),
            atom("tcp", 80, 80, Source::Cidr("0.0.0.0/0".into()), "web"),
            atom("tcp", 80, 80, Source::Group("sg-x".into()), "web"),
            atom("-1", -1, -1, Source::SelfGroup, ""),
        ];
        let out = regroup(&[&written], live);
        assert_eq!(
            out,
            json!([
                {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["203.0.113.0/24"]},
                {"protocol": "-1", "from_port": 0, "to_port": 0, "self": true},
                {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"],
                 "source_security_group_ids": ["sg-x"], "description": "web"}
            ])
        );
        // A prior table with one atom missing is not given back as written.
        let partial = regroup(&[&written], vec![]);
        assert_eq!(partial, json!([]));
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
        delete(&c, &ctx, json!({"id": "sg-1"}).as_object().unwrap()).await.unwrap();
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
        let e = delete(&c, &ctx, json!({"id": "sg-1"}).as_object().unwrap()).await.unwrap_err();
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
        update(&c, &ctx, prior.as_object().unwrap(), desired.as_object().unwrap()).await.unwrap();
        let sent = fake.sent();
        assert_eq!(fake.actions(), ["RevokeSecurityGroupIngress", "AuthorizeSecurityGroupIngress"]);
        assert_eq!(sent[0].param("IpPermissions.1.IpRanges.1.CidrIp"), Some("198.51.100.0/24"));
        assert_eq!(sent[1].param("IpPermissions.1.IpRanges.1.CidrIp"), Some("192.0.2.0/24"));
        assert_eq!(sent[1].param("IpPermissions.1.FromPort"), Some("22"));
    }
}

#[cfg(test)]
mod read_tests {
    use serde_json::json;
    use skyplan_engine::Address;

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
        let out = read(&c, &reqs).await.unwrap();
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
