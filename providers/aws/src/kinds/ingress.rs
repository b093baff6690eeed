//! The ingress permission model that `aws_security_group` (its `ingress`
//! tables) and `aws_security_group_rule` (one rule as a resource) share:
//! rules compared as *atoms*, one protocol, port range, source (a CIDR,
//! another group, or the group itself) and description each ([`Atom`]);
//! the user's rule tables expand to atoms, AWS's permissions are atoms
//! already. Here too: authorizing and revoking atoms on a group, and
//! reading a group's live atoms (DescribeSecurityGroups). Neither kind's
//! resource logic lives here; both kinds import this file, not each other.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::types::{IpPermission, IpRange, SecurityGroupRule, UserIdGroupPair};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, ProviderError};

use crate::attrs;
use crate::clients::Clients;
use crate::ec2util::{filter, FILTER_CHUNK};
use crate::error::ApiError;
use crate::retry::Retry;

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

/// Whether AWS reads ports for a protocol: TCP, UDP and the ICMPs (type and
/// code) do; all protocols (`-1`) and any other by number (`4`, IP in IP)
/// allow every port, and AWS ignores what is sent.
pub(crate) fn has_ports(protocol: &str) -> bool {
    matches!(protocol, "tcp" | "udp" | "icmp" | "icmpv6")
}

/// Ports as they identify an atom: protocols without ports ignore them.
pub(crate) fn normalize_ports(protocol: &str, from: i32, to: i32) -> (i32, i32) {
    if has_ports(protocol) {
        (from, to)
    } else {
        (-1, -1)
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
    // Ports for every protocol but all (`-1`): AWS ignores them for a
    // protocol without ports (written -1), and moto fails without them.
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
        let (from, to) = if has_ports(&protocol) { (from, to) } else { (0, 0) };
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
        let ipip = rule_atoms(&obj(json!({"protocol": "4", "from_port": 0, "to_port": 0, "self": true}))).unwrap();
        assert_eq!(ipip[0].key(), ("4", -1, -1, &Source::SelfGroup), "IP in IP has no ports either");
        assert_eq!(permission(&ipip[0], "sg-1").from_port(), Some(-1), "sent, as moto needs; AWS ignores it");
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
}
