//! The plan: the graph diffed against the state, one [`Change`] per address.
//!
//! For each desired resource (in dependency order) the config's references
//! are resolved as far as they are known, then compared with the state's
//! attributes: nothing differs -> no-op; an attribute of the schema's
//! replace-on set differs -> replace; otherwise -> update in place. Resources
//! in the state but not in the spec are deleted. A plan is plain data: it is
//! saved to a plan file and applied later exactly as it was reviewed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use skyplan_state::State;

use crate::address::Address;
use crate::graph::{Node, ResourceGraph};
use crate::review::Review;
use crate::value::{contains_unknown, unknown, Attrs, Reference};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
        }
    }
}

/// What the plan will do to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    /// The state's (refreshed) attributes; None for a create.
    pub before: Option<Attrs>,
    /// The attributes after apply as far as known now (unknown values are
    /// `(known after apply)`); None for a delete.
    pub after: Option<Attrs>,
    #[serde(rename = "type")]
    pub kind: String,
    pub provider: String,
    /// For a replace: the attributes whose change forces it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_because: Vec<String>,
    /// The resource as written, references unresolved: apply resolves it
    /// with the values its dependencies have by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Attrs>,
    /// What it depends on in the spec (orders creates and updates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Address>,
    /// What it depended on when last applied (orders deletes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prior_dependencies: Vec<Address>,
    /// A delete of a resource the state does not record (an orphan, found
    /// by the cluster's ownership tags): applying it changes no state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphan: bool,
    /// For a replace: its rolling group, when it has one: the new object is
    /// created before the old one is deleted, and the group's replacements
    /// run one at a time (see [`crate::resource::Resource::rolling_group`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_group: Option<String>,
    /// A delete of the object a create-before-destroy replacement left
    /// behind (the state's `deposed`), not of the address's current one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deposed: bool,
    /// Of `prior_dependencies`, those whose current objects this one holds
    /// in the cloud (named through an attribute of [`Schema::holds`]):
    /// their deletes wait for this one's update or delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holding: Vec<Address>,
    /// Its kind's values are exclusive in the cloud ([`Schema::exclusive`]):
    /// its create waits for the plan's deletes of the kind.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
}

impl Change {
    /// A delete of an object the cloud holds: `before` is what is known of
    /// it, `prior_dependencies` what it depended on when created (their
    /// deletes wait for this one).
    pub fn delete(
        address: Address,
        kind: String,
        provider: String,
        before: Attrs,
        prior_dependencies: Vec<Address>,
    ) -> Change {
        Change {
            address,
            action: Action::Delete,
            before: Some(before),
            after: None,
            kind,
            provider,
            replace_because: Vec::new(),
            config: None,
            dependencies: Vec::new(),
            prior_dependencies,
            orphan: false,
            rolling_group: None,
            deposed: false,
            holding: Vec::new(),
            exclusive: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.create + self.update + self.replace + self.delete == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// True for a `plan --destroy` / `destroy` plan.
    pub destroy: bool,
    /// Lineage and serial of the state the plan was made against: applying
    /// it to any other state is refused.
    pub lineage: String,
    pub serial: u64,
    /// Sorted by address.
    pub changes: Vec<Change>,
    pub summary: Summary,
    /// Resources that carry the cluster's ownership tags but that the state
    /// does not record (see [`crate::orphans`]); a destroy plan also deletes
    /// them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<Orphan>,
    /// Risks, cost and parts, filled by whoever knows the resources
    /// (see [`crate::review`]); empty until then.
    #[serde(default, skip_serializing_if = "Review::is_empty")]
    pub review: Review,
}

/// One orphan, as a plan reports it (found and deleted by
/// [`crate::orphans`]). Part of the plan's data, so it lives with the plan:
/// `orphans` depends on `plan`, never the reverse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// The address it was created for (not one the state records for it).
    pub address: Address,
    #[serde(rename = "type")]
    pub kind: String,
    pub provider: String,
    pub id: String,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.summary.is_empty()
    }
}

/// Diff the desired graph against the state. With `destroy`, every resource
/// in the state is deleted and nothing is created.
pub fn diff(graph: &ResourceGraph, state: &State, destroy: bool) -> Plan {
    diff_replacing(graph, state, destroy, &BTreeSet::new())
}

/// [`diff`], with the resources of `replace` replaced even when nothing
/// about them changed (`--replace`); their dependents see their computed
/// attributes as unknown, as with any replacement.
pub fn diff_replacing(graph: &ResourceGraph, state: &State, destroy: bool, replace: &BTreeSet<Address>) -> Plan {
    let mut changes: Vec<Change> = Vec::with_capacity(graph.len() + state.resources.len());
    // What each node (by index) was planned as, for references from dependents.
    let nodes = graph.nodes();
    let mut planned: Vec<Option<Planned>> = vec![None; nodes.len()];
    // How many of the state's resources the spec still has: when all, no
    // state address needs parsing to find the deletes.
    let mut kept = 0;
    let mut key = String::new();

    if !destroy {
        for &n in graph.order() {
            let node = &nodes[n];
            let address = &node.resource.address;
            address.write_to(&mut key);
            let prior = state.resources.get(&key);
            kept += usize::from(prior.is_some());
            let mut lookup = |r: usize| lookup_planned(nodes, &planned, &changes, &node.references[r]);
            let mut resolved = resolve_node(node, &mut lookup);
            // Compared and shown masked, as the state holds them; `config`
            // below keeps the values apply must send.
            graph.redactor().attrs(&mut resolved);

            let (action, before, replace_because) = match prior {
                None => (Action::Create, None, Vec::new()),
                Some(prior) => {
                    let differs = |k: &String, after: &Value| {
                        let before = prior.attributes.get(k).or_else(|| prior.inputs.get(k)).unwrap_or(&Value::Null);
                        after != before || contains_unknown(after)
                    };
                    // The keys of both sides, each once, in order.
                    let mut changed: Vec<&String> =
                        resolved.iter().filter(|(k, after)| differs(k, after)).map(|(k, _)| k).collect();
                    changed
                        .extend(prior.inputs.keys().filter(|k| !resolved.contains_key(*k) && differs(k, &Value::Null)));
                    changed.sort_unstable();
                    let forcing: Vec<String> = changed
                        .iter()
                        .filter(|k| node.schema.replace_on.contains(**k))
                        .map(|k| k.to_string())
                        .collect();
                    let action = if !forcing.is_empty() || replace.contains(address) {
                        Action::Replace
                    } else if !changed.is_empty() {
                        Action::Update
                    } else {
                        Action::NoOp
                    };
                    (action, Some(prior.attributes.clone()), forcing)
                }
            };

            // A dependency replaced old first: its new object comes only
            // after its old one is gone.
            let replaced_old_first = |d: &Address| {
                let planned = graph.index_of(d).and_then(|i| planned[i]);
                planned.is_some_and(|p| p.action == Action::Replace && changes[p.change].rolling_group.is_none())
            };

            // What the current object holds in the cloud, of what it
            // depended on, and through which attributes: those deletes wait
            // for this one to move off.
            let held: Vec<(Address, Vec<String>)> = match prior {
                Some(prior) if !node.schema.holds.is_empty() => parse_addresses(&prior.dependencies)
                    .into_iter()
                    .filter_map(|d| {
                        let id = &state.resources.get(&d.to_string())?.id;
                        let through: Vec<String> = node
                            .schema
                            .holds
                            .iter()
                            .filter(|k| {
                                prior
                                    .attributes
                                    .get(*k)
                                    .or_else(|| prior.inputs.get(*k))
                                    .is_some_and(|v| names_id(v, id))
                            })
                            .cloned()
                            .collect();
                        (!through.is_empty()).then_some((d, through))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            // An update cannot move off something replaced old first: that
            // one's new object (which the update names) comes only after its
            // old one is gone, and the cloud keeps the old one while this
            // names it. Then this one is replaced too, before it.
            let mut forced: Vec<String> = held
                .iter()
                .filter(|(d, _)| action == Action::Update && node.dependencies.contains(d) && replaced_old_first(d))
                .flat_map(|(_, through)| through.iter().cloned())
                .collect();
            forced.sort();
            forced.dedup();
            let (action, replace_because) =
                if forced.is_empty() { (action, replace_because) } else { (Action::Replace, forced) };
            let holding: Vec<Address> = held.into_iter().map(|(d, _)| d).collect();

            let mut after = resolved;
            for attr in &node.schema.computed {
                if after.contains_key(attr) {
                    continue;
                }
                let known = match action {
                    Action::NoOp => before.as_ref().and_then(|b| b.get(attr)).cloned(),
                    Action::Update if attr == "id" => before.as_ref().and_then(|b| b.get(attr)).cloned(),
                    _ => None,
                };
                after.insert(attr.clone(), known.unwrap_or_else(unknown));
            }

            // A rolling replacement makes its new object while the old one
            // runs. It cannot when something it depends on is replaced old
            // first: the new object needs that one's new object, which waits
            // for its old one to go, which waits for this one's old object.
            // Then this one is replaced old first too.
            let rolling_group = node
                .resource
                .rolling_group
                .clone()
                .filter(|_| action == Action::Replace && !node.dependencies.iter().any(replaced_old_first));

            planned[n] = Some(Planned { action, change: changes.len() });
            changes.push(Change {
                address: address.clone(),
                action,
                before,
                after: Some(after),
                kind: address.kind.clone(),
                provider: node.provider.clone(),
                replace_because,
                // Only what apply will run needs the unresolved config.
                config: (action != Action::NoOp).then(|| node.resource.attrs.clone()),
                dependencies: node.dependencies.clone(),
                prior_dependencies: prior.map(|p| parse_addresses(&p.dependencies)).unwrap_or_default(),
                orphan: false,
                rolling_group,
                deposed: false,
                holding,
                exclusive: node.schema.exclusive,
            });
        }
    }

    let all_kept = !destroy && kept == state.resources.len();
    for (address, prior) in state.resources.iter().filter(|_| !all_kept) {
        let Ok(parsed) = address.parse::<Address>() else {
            continue;
        };
        if !destroy && graph.get(&parsed).is_some() {
            continue;
        }
        changes.push(Change::delete(
            parsed,
            prior.kind.clone(),
            prior.provider.clone(),
            prior.attributes.clone(),
            parse_addresses(&prior.dependencies),
        ));
    }
    // What an interrupted create-before-destroy replacement left: deleted
    // now, before anything else happens to the address.
    for (address, prior) in &state.deposed {
        let Ok(parsed) = address.parse::<Address>() else {
            continue;
        };
        let mut change = Change::delete(
            parsed,
            prior.kind.clone(),
            prior.provider.clone(),
            prior.attributes.clone(),
            parse_addresses(&prior.dependencies),
        );
        change.deposed = true;
        changes.push(change);
    }

    // Sorted through indexes: a Change is large, and moving each once is
    // cheaper than the sort's many moves.
    let mut order: Vec<usize> = (0..changes.len()).collect();
    order.sort_by(|&a, &b| changes[a].address.cmp(&changes[b].address));
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    let changes: Vec<Change> = order.into_iter().map(|i| slots[i].take().expect("each index once")).collect();
    let summary = summarize(&changes);
    Plan {
        destroy,
        lineage: state.lineage.clone(),
        serial: state.serial,
        changes,
        summary,
        orphans: Vec::new(),
        review: Review::default(),
    }
}

/// Keep only the changes to `targets` and what they need (`--target`): for
/// a plan that creates and updates, what each target depends on, through
/// the spec and the state; for a destroy, what depends on each target, so
/// nothing is left pointing at a deleted resource. Orphans are left out
/// unless targeted. Returns the addresses kept beyond the targets.
pub fn target(plan: &mut Plan, targets: &BTreeSet<Address>) -> BTreeSet<Address> {
    let mut keep: BTreeSet<Address> = targets.clone();
    let mut edges: BTreeMap<&Address, Vec<&Address>> = BTreeMap::new();
    for c in &plan.changes {
        if plan.destroy {
            // X's dependents are kept with X.
            for d in &c.prior_dependencies {
                edges.entry(d).or_default().push(&c.address);
            }
        } else {
            let deps = edges.entry(&c.address).or_default();
            deps.extend(c.dependencies.iter());
            if c.action == Action::Delete {
                deps.extend(c.prior_dependencies.iter());
            }
        }
    }
    let mut stack: Vec<Address> = targets.iter().cloned().collect();
    while let Some(a) = stack.pop() {
        for next in edges.get(&a).into_iter().flatten() {
            if keep.insert((*next).clone()) {
                stack.push((*next).clone());
            }
        }
    }
    plan.changes.retain(|c| keep.contains(&c.address) && (!c.orphan || targets.contains(&c.address)));
    plan.orphans.retain(|o| targets.contains(&o.address));
    plan.summary = summarize(&plan.changes);
    keep.retain(|a| !targets.contains(a));
    keep
}

/// The counts of a plan's changes by action.
pub fn summarize(changes: &[Change]) -> Summary {
    let mut summary = Summary::default();
    for c in changes {
        match c.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Delete => summary.delete += 1,
            Action::NoOp => {}
        }
    }
    summary
}

pub(crate) fn parse_addresses(list: &[String]) -> Vec<Address> {
    list.iter().filter_map(|a| a.parse().ok()).collect()
}

/// A resource the diff has planned: its action and the index of its change.
#[derive(Clone, Copy)]
struct Planned {
    action: Action,
    change: usize,
}

/// The node's attributes with their references resolved through its
/// parsed templates (what `value::resolve_attrs` gives, without parsing).
fn resolve_node(node: &Node, lookup: &mut dyn FnMut(usize) -> Value) -> Attrs {
    let mut templates = node.templates.iter().peekable();
    node.resource
        .attrs
        .iter()
        .enumerate()
        .map(|(position, (k, v))| {
            let value = match templates.next_if(|(p, _)| *p == position) {
                Some((_, template)) => template.resolve(v, lookup),
                None => v.clone(),
            };
            (k.clone(), value)
        })
        .collect()
}

/// The value a reference (with its target's node index) will have, as far
/// as the plan knows it.
/// Whether `value` names `id` (itself, or in a list or table).
fn names_id(value: &Value, id: &str) -> bool {
    match value {
        Value::String(s) => s == id,
        Value::Array(items) => items.iter().any(|v| names_id(v, id)),
        Value::Object(map) => map.values().any(|v| names_id(v, id)),
        _ => false,
    }
}

fn lookup_planned(nodes: &[Node], planned: &[Option<Planned>], changes: &[Change], r: &(Reference, usize)) -> Value {
    let (r, target) = (&r.0, r.1);
    let Some(Planned { action, change: i }) = planned.get(target).copied().flatten() else {
        return unknown();
    };
    let change = &changes[i];
    let after = change.after.as_ref().and_then(|a| a.get(&r.attr));
    let is_config = nodes[target].resource.attrs.contains_key(&r.attr);
    match action {
        _ if is_config => after.cloned().unwrap_or_else(unknown),
        Action::NoOp => change.before.as_ref().and_then(|b| b.get(&r.attr)).cloned().unwrap_or_else(unknown),
        Action::Update if r.attr == "id" => {
            change.before.as_ref().and_then(|b| b.get("id")).cloned().unwrap_or_else(unknown)
        }
        _ => unknown(),
    }
}
