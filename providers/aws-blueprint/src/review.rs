//! What a plan does to the running cluster, in the words of its reviewers:
//! the seven risk kinds of the contract ("Plans a reviewer can approve")
//! and one more for the bootstrap secrets,
//! and which part of the cluster each address belongs to (network, control
//! plane, each pool), for the reports' grouping.
//!
//! The engine diffed the resources without knowing what they are; this
//! module knows (an `aws_nat_gateway` is the egress path, `aws_instance.
//! control_plane[N]` a control-plane node) and fills the engine's opaque
//! [`Review`]. The cost half is `cost.rs`.

use serde_json::Value;
use skyplan_engine::plan::{Action, Change, Plan};
use skyplan_engine::review::{Part, Risk};

pub const CONTROL_PLANE_ROLL: &str = "control-plane-roll";
pub const WORKER_ROLL: &str = "worker-roll";
pub const EGRESS_IP_CHANGE: &str = "egress-ip-change";
pub const API_ENDPOINT_CHANGE: &str = "api-endpoint-change";
pub const NETWORK_CHANGE: &str = "network-change";
pub const CAPACITY_DROP: &str = "capacity-drop";
pub const QUORUM_CHANGE: &str = "quorum-change";
/// A bootstrap secret (`aws.cluster.x-k8s.io/<cluster>/...`) is made anew
/// while control-plane nodes that booted from the old one stay.
pub const BOOTSTRAP_SECRET_CHANGE: &str = "bootstrap-secret-change";

/// Launch-template attributes that do not reach a node: changing them
/// rolls nothing.
const NOT_LAUNCH_DATA: &[&str] = &["name", "tags", "id", "latest_version", "resolved_ami"];

/// Every risk of the plan, in the plan's (address) order.
pub fn risks(plan: &Plan) -> Vec<Risk> {
    let live = |c: &&Change| c.action != Action::NoOp && !c.deposed;
    let mut out = Vec::new();
    let (cp_before, cp_after) = control_plane_sizes(plan);
    // A control-plane node that stays as it is runs the cluster made from
    // the secrets as they are now.
    let cluster_stays = plan.changes.iter().any(|c| {
        c.address.kind == "aws_instance"
            && c.address.name == "control_plane"
            && matches!(c.action, Action::NoOp | Action::Update)
            && !c.deposed
    });
    for change in plan.changes.iter().filter(live) {
        let address = change.address.to_string();
        let mut risk =
            |kind: &str, message: String| out.push(Risk { kind: kind.to_string(), address: address.clone(), message });
        let gone = matches!(change.action, Action::Replace | Action::Delete);
        let verb = if change.action == Action::Delete { "deleted" } else { "replaced" };
        match change.address.kind.as_str() {
            "aws_instance" if change.address.name == "control_plane" => match change.action {
                Action::Replace => risk(CONTROL_PLANE_ROLL, control_plane_roll(change)),
                Action::Delete if cp_after < cp_before => risk(QUORUM_CHANGE, quorum(cp_before, cp_after)),
                _ => {}
            },
            "aws_launch_template" => {
                if let Some(message) = template_roll(plan, change) {
                    risk(WORKER_ROLL, message);
                }
            }
            "aws_autoscaling_group" => {
                let before = desired(change.before.as_ref());
                let after = desired(change.after.as_ref());
                let pool = pool_name(change);
                if change.action == Action::Replace && before > 0 {
                    risk(
                        WORKER_ROLL,
                        format!(
                            "{pool}'s auto scaling group is replaced ({}): its {before} running node(s) are terminated \
                             with the old group and {after} new one(s) start in the new group, without draining.",
                            because(change)
                        ),
                    );
                }
                if change.action == Action::Delete && before > 0 {
                    risk(
                        CAPACITY_DROP,
                        format!("{pool} is removed: its {before} running node(s) are terminated and their pods evicted without draining."),
                    );
                } else if change.action != Action::Delete && after < before {
                    risk(
                        CAPACITY_DROP,
                        format!(
                            "{pool} goes from {before} to {after} node(s): the auto scaling group terminates {} running node(s), \
                             evicting their pods without draining.",
                            before - after
                        ),
                    );
                }
            }
            "aws_nat_gateway" if gone => risk(
                EGRESS_IP_CHANGE,
                format!(
                    "the NAT gateway{} is {verb}: private subnets routed through it lose outbound internet until {}, \
                     so allow-lists keyed on the old address must change.",
                    az_of(&change.address).map(|az| format!(" of {az}")).unwrap_or_default(),
                    if change.action == Action::Delete {
                        "another route is set, and then leave from another address"
                    } else {
                        "the new gateway is up, and then leave from a new public address"
                    }
                ),
            ),
            "aws_eip" if gone && change.address.name == "nat" => risk(
                EGRESS_IP_CHANGE,
                format!(
                    "the Elastic IP{} that the cluster's outbound traffic leaves from is {verb}: egress then comes from \
                     a different address, so allow-lists keyed on it must change.",
                    attr_str(change.before.as_ref(), "public_ip").map(|ip| format!(" {ip}")).unwrap_or_default()
                ),
            ),
            "aws_elb" if gone => {
                let dns = attr_str(change.before.as_ref(), "dns_name")
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default();
                risk(
                    API_ENDPOINT_CHANGE,
                    if change.action == Action::Delete {
                        format!("the API load balancer{dns} is deleted: kubectl, kubeconfigs and nodes lose the API endpoint.")
                    } else {
                        format!(
                            "the API load balancer{dns} is replaced ({}): its DNS name changes, so every kubeconfig and \
                             client of the old endpoint fails until it is updated, and nodes' kubelets with it.",
                            because(change)
                        )
                    },
                )
            }
            "aws_secretsmanager_secret"
                if cluster_stays && matches!(change.action, Action::Create | Action::Replace) =>
            {
                if let Some(message) = bootstrap_secret_change(change) {
                    risk(BOOTSTRAP_SECRET_CHANGE, message);
                }
            }
            "aws_vpc" if gone => risk(
                NETWORK_CHANGE,
                format!(
                    "the cluster's VPC is {verb}{}: everything inside it (subnets, gateways, nodes) is {verb} with it.",
                    paren_because(change)
                ),
            ),
            "aws_subnet" if gone => risk(
                NETWORK_CHANGE,
                format!(
                    "the {} subnet{} is {verb}{}: the nodes and gateways in it are {verb} with it.",
                    change.address.name,
                    az_of(&change.address).map(|az| format!(" of {az}")).unwrap_or_default(),
                    paren_because(change)
                ),
            ),
            "aws_route_table" if gone => risk(
                NETWORK_CHANGE,
                format!(
                    "the {} route table{} is {verb}: the subnets it serves lose their default route until {}.",
                    change.address.name,
                    az_of(&change.address).map(|az| format!(" of {az}")).unwrap_or_default(),
                    if change.action == Action::Delete { "another table serves them" } else { "the new table is associated" }
                ),
            ),
            _ => {}
        }
    }
    out
}

/// What a new bootstrap secret does to a cluster whose control plane stays
/// (docs/bootstrap.md): its nodes keep what they booted with, nodes started
/// afterwards read the new value.
fn bootstrap_secret_change(change: &Change) -> Option<String> {
    let made = if change.action == Action::Create { "made again" } else { "replaced" };
    let name = attr_str(change.after.as_ref(), "name").unwrap_or("the secret");
    Some(match attr_str(change.after.as_ref(), "content")? {
        "cluster-pki" => format!(
            "{name} is {made} with new cluster CAs while the running control plane keeps the old ones: control planes \
             and workers started after this cannot join the cluster (a different CA), and kubeconfig signs \
             certificates it does not trust."
        ),
        "join" => format!(
            "{name} is {made} with a new bootstrap token that the running cluster does not know: nodes started after \
             this (a scale-out, a replaced node) fail to join until the token is created in the cluster \
             (`kubeadm token create <token> --ttl 0` on a control plane)."
        ),
        "init-lock" => format!(
            "{name} is {made} on a cluster that is already initialized: a replaced control_plane[0] would take it and \
             initialize a second cluster behind the same endpoint instead of joining."
        ),
        _ => return None,
    })
}

/// The parts of the cluster the plan's addresses belong to, in the order
/// a reviewer reads them: network, security groups, control plane,
/// bastion, then each pool.
pub fn parts(plan: &Plan) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    let mut add = |name: String, address: String| match parts.iter_mut().find(|p| p.name == name) {
        Some(p) => p.addresses.push(address),
        None => parts.push(Part { name, addresses: vec![address] }),
    };
    for change in &plan.changes {
        let a = &change.address;
        let part = match (a.kind.as_str(), a.name.as_str()) {
            ("aws_vpc" | "aws_internet_gateway" | "aws_subnet" | "aws_nat_gateway" | "aws_route_table", _)
            | ("aws_eip", "nat") => "network".to_string(),
            ("aws_security_group" | "aws_security_group_rule", _) => "security groups".to_string(),
            ("aws_secretsmanager_secret", _) => "bootstrap secrets".to_string(),
            ("aws_instance", "control_plane") | ("aws_elb", "apiserver") => "control plane".to_string(),
            ("aws_instance", "bastion") => "bastion".to_string(),
            ("aws_launch_template" | "aws_autoscaling_group", "pool") => match &a.key {
                Some(pool) => format!("pool {pool}"),
                None => continue,
            },
            _ => continue,
        };
        add(part, a.to_string());
    }
    let rank = |name: &str| match name {
        "network" => 0,
        "security groups" => 1,
        "bootstrap secrets" => 2,
        "control plane" => 3,
        "bastion" => 4,
        _ => 5,
    };
    parts.sort_by(|a, b| rank(&a.name).cmp(&rank(&b.name)).then_with(|| a.name.cmp(&b.name)));
    parts
}

/// How many control-plane instances there are before and after the plan.
fn control_plane_sizes(plan: &Plan) -> (usize, usize) {
    let nodes = plan.changes.iter().filter(|c| c.address.kind == "aws_instance" && c.address.name == "control_plane");
    let (mut before, mut after) = (0, 0);
    for c in nodes.filter(|c| !c.deposed) {
        before += usize::from(c.before.is_some());
        after += usize::from(c.after.is_some());
    }
    (before, after)
}

fn control_plane_roll(change: &Change) -> String {
    let order = if change.rolling_group.is_some() {
        "a new node is created and registered with the API load balancer first, then this one is deregistered \
         and terminated, one node at a time"
    } else {
        "this node is terminated first, then a new one is created and joins"
    };
    format!("this control-plane node is replaced ({}): {order}.", because(change))
}

fn quorum(before: usize, after: usize) -> String {
    if after == 0 {
        return format!("the control plane goes from {before} node(s) to none: the cluster's API and etcd go away.");
    }
    let tolerates = |n: usize| (n - 1) / 2;
    format!(
        "the control plane goes from {before} to {after} node(s): etcd then survives {} failed member(s) instead of {}.",
        tolerates(after),
        tolerates(before)
    )
}

/// A launch template whose change reaches the nodes of a pool that has
/// some: the instance refresh that rolls them.
fn template_roll(plan: &Plan, template: &Change) -> Option<String> {
    if !matches!(template.action, Action::Update | Action::Replace) {
        return None;
    }
    let (before, after) = (template.before.as_ref()?, template.after.as_ref()?);
    let mut changed: Vec<&str> = after
        .iter()
        .filter(|(k, v)| !NOT_LAUNCH_DATA.contains(&k.as_str()) && before.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    changed.extend(
        before.keys().filter(|k| !NOT_LAUNCH_DATA.contains(&k.as_str()) && !after.contains_key(*k)).map(|k| k.as_str()),
    );
    if changed.is_empty() {
        return None;
    }
    // The pool's group: same name and key (the blueprint's pairs).
    let group = plan.changes.iter().find(|c| {
        c.address.kind == "aws_autoscaling_group"
            && c.address.name == template.address.name
            && c.address.key == template.address.key
    })?;
    // A replaced or deleted group says what happens to its nodes itself.
    if matches!(group.action, Action::Replace | Action::Delete) {
        return None;
    }
    let nodes = desired(group.before.as_ref());
    if nodes == 0 {
        return None;
    }
    Some(format!(
        "{}'s {nodes} running node(s) are replaced by an instance refresh onto the new launch template ({} changes), \
         a few at a time with at least 90% of the pool healthy.",
        pool_name(group),
        changed.join(", ")
    ))
}

fn pool_name(change: &Change) -> String {
    match &change.address.key {
        Some(key) if change.address.name == "pool" => format!("pool {key}"),
        _ => change.address.to_string(),
    }
}

fn desired(attrs: Option<&skyplan_engine::Attrs>) -> u64 {
    attrs.and_then(|a| a.get("desired_capacity")).and_then(Value::as_u64).unwrap_or(0)
}

fn attr_str<'a>(attrs: Option<&'a skyplan_engine::Attrs>, key: &str) -> Option<&'a str> {
    attrs?.get(key)?.as_str().filter(|s| *s != skyplan_engine::UNKNOWN)
}

/// `instance_type changes` / `replacement requested`: why a replace happens.
fn because(change: &Change) -> String {
    match change.replace_because.as_slice() {
        [] => "replacement requested".to_string(),
        attrs => format!("{} changes", attrs.join(", ")),
    }
}

fn paren_because(change: &Change) -> String {
    if change.action == Action::Replace {
        format!(" ({})", because(change))
    } else {
        String::new()
    }
}

/// The AZ a per-AZ address is keyed by.
fn az_of(address: &skyplan_engine::Address) -> Option<&str> {
    address.key.as_deref().filter(|k| k.chars().last().is_some_and(|c| c.is_ascii_lowercase()) && k.contains('-'))
}

#[cfg(test)]
pub(crate) mod test_plan {
    //! Plans built by hand, change by change, and plans of the blueprint's
    //! own resources, for the review's and the cost's tests.

    use serde_json::Value;
    use skyplan_engine::plan::{Action, Change, Plan, Summary};
    use skyplan_engine::Attrs;

    fn attrs(v: Value) -> Attrs {
        match v {
            Value::Object(m) => m,
            other => panic!("{other} is not an object"),
        }
    }

    pub fn change(address: &str, action: Action, before: Option<Value>, after: Option<Value>) -> Change {
        let address: skyplan_engine::Address = address.parse().unwrap();
        Change {
            kind: address.kind.clone(),
            address,
            action,
            before: before.map(attrs),
            after: after.map(attrs),
            provider: "aws".into(),
            replace_because: Vec::new(),
            config: None,
            dependencies: Vec::new(),
            prior_dependencies: Vec::new(),
            orphan: false,
            rolling_group: None,
            deposed: false,
            holding: vec![],
            exclusive: false,
        }
    }

    pub fn replace(address: &str, because: &[&str], before: Value, after: Value) -> Change {
        let mut c = change(address, Action::Replace, Some(before), Some(after));
        c.replace_because = because.iter().map(|s| s.to_string()).collect();
        c
    }

    pub fn same(address: &str, attrs: Value) -> Change {
        change(address, Action::NoOp, Some(attrs.clone()), Some(attrs))
    }

    pub fn plan(changes: Vec<Change>) -> Plan {
        let summary = skyplan_engine::plan::summarize(&changes);
        Plan {
            destroy: false,
            lineage: "l".into(),
            serial: 1,
            changes,
            summary,
            orphans: Vec::new(),
            review: Default::default(),
        }
    }

    /// A plan that creates every resource the spec expands into (the
    /// config as the after values, references unresolved).
    pub fn creating(spec: &str) -> Plan {
        let resources = crate::expand(&crate::fixtures::parse(spec)).unwrap();
        plan(
            resources
                .into_iter()
                .map(|r| change(&r.address.to_string(), Action::Create, None, Some(Value::Object(r.attrs))))
                .collect(),
        )
    }

    /// The spec's resources as they would be after being applied: a plan
    /// of no-ops (before = after = config).
    pub fn applied(spec: &str) -> Plan {
        let mut p = creating(spec);
        for c in &mut p.changes {
            c.action = Action::NoOp;
            c.before = c.after.clone();
        }
        p.summary = Summary::default();
        p
    }

    /// `applied(from)` diffed by hand against `to`: what the engine's diff
    /// gives, with every attribute change an update except those listed
    /// in `replace_on` (type -> attributes), plus deletes and creates.
    pub fn diff(from: &str, to: &str, replace_on: &[(&str, &[&str])]) -> Plan {
        let old = applied(from);
        let new = creating(to);
        let mut changes = Vec::new();
        for n in new.changes {
            let Some(o) = old.changes.iter().find(|o| o.address == n.address) else {
                changes.push(n);
                continue;
            };
            let (b, a) = (o.before.clone().unwrap(), n.after.clone().unwrap());
            let mut changed: Vec<String> =
                a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
            changed.sort();
            changed.dedup();
            let forcing: Vec<String> = changed
                .iter()
                .filter(|k| replace_on.iter().any(|(t, attrs)| *t == n.kind && attrs.contains(&k.as_str())))
                .cloned()
                .collect();
            let mut c = change(
                &n.address.to_string(),
                if !forcing.is_empty() {
                    Action::Replace
                } else if changed.is_empty() {
                    Action::NoOp
                } else {
                    Action::Update
                },
                Some(Value::Object(b)),
                Some(Value::Object(a)),
            );
            if c.action == Action::Replace && n.address.name == "control_plane" {
                c.rolling_group = Some("control-plane".into());
            }
            c.replace_because = forcing;
            changes.push(c);
        }
        for o in old.changes {
            if !changes.iter().any(|c| c.address == o.address) {
                changes.push(change(&o.address.to_string(), Action::Delete, o.before.map(Value::Object), None));
            }
        }
        changes.sort_by(|a, b| a.address.cmp(&b.address));
        plan(changes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use skyplan_engine::plan::Action;

    use super::test_plan::{change, diff, plan, replace, same};
    use super::*;
    use crate::fixtures::{demo_with, DEMO};

    /// The replace-on attributes of docs/aws-resources.md that the
    /// blueprint's changes below touch.
    const REPLACE_ON: &[(&str, &[&str])] = &[
        ("aws_instance", &["instance_type", "user_data", "subnet_id", "ami", "root_volume_size_gib"]),
        ("aws_launch_template", &["name"]),
        ("aws_autoscaling_group", &["name"]),
        ("aws_elb", &["name"]),
        ("aws_subnet", &["vpc_id", "cidr_block", "availability_zone"]),
        ("aws_nat_gateway", &["subnet_id", "allocation_id"]),
        ("aws_security_group", &["name"]),
    ];

    fn kinds(risks: &[Risk]) -> Vec<(&str, &str)> {
        risks.iter().map(|r| (r.kind.as_str(), r.address.as_str())).collect()
    }

    #[test]
    fn a_control_plane_instance_type_change_rolls_the_control_plane_node_by_node() {
        let p = diff(DEMO, &demo_with("instance_type = \"m5.large\"", "instance_type = \"m5.2xlarge\""), REPLACE_ON);
        let risks = risks(&p);
        assert_eq!(
            kinds(&risks),
            [
                (CONTROL_PLANE_ROLL, "aws_instance.control_plane[0]"),
                (CONTROL_PLANE_ROLL, "aws_instance.control_plane[1]"),
                (CONTROL_PLANE_ROLL, "aws_instance.control_plane[2]"),
            ]
        );
        let m = &risks[0].message;
        assert!(m.contains("instance_type changes") && m.contains("one node at a time"), "{m}");
        assert!(m.ends_with('.') && !m.contains('\n'), "one sentence: {m}");
    }

    #[test]
    fn a_launch_data_change_rolls_a_pool_with_nodes_and_not_an_empty_one() {
        let to = demo_with("instance_type = \"m5.xlarge\"", "instance_type = \"m5.2xlarge\"");
        let risks = risks(&diff(DEMO, &to, REPLACE_ON));
        assert_eq!(kinds(&risks), [(WORKER_ROLL, "aws_launch_template.pool[worker]")]);
        assert!(risks[0].message.contains("3 running node(s)"), "{}", risks[0].message);
        assert!(risks[0].message.contains("instance_type changes"), "{}", risks[0].message);

        let empty_from = demo_with("size = 3\nmin = 3", "size = 0\nmin = 0");
        let empty_to =
            crate::fixtures::edit(&empty_from, "instance_type = \"m5.xlarge\"", "instance_type = \"m5.2xlarge\"");
        assert_eq!(kinds(&super::risks(&diff(&empty_from, &empty_to, REPLACE_ON))), []);

        // The template's own tags reach no node: no roll. (Its
        // `instance_tags` do: a new version, and the refresh rolls.)
        let template = |team: &str| json!({"instance_type": "m5.xlarge", "tags": {"team": team}});
        let p = plan(vec![
            same("aws_autoscaling_group.pool[worker]", json!({"desired_capacity": 3})),
            change("aws_launch_template.pool[worker]", Action::Update, Some(template("a")), Some(template("b"))),
        ]);
        assert_eq!(super::risks(&p), []);
    }

    #[test]
    fn a_replaced_nat_gateway_or_its_elastic_ip_changes_the_egress_address() {
        let nat = json!({"subnet_id": "subnet-1", "allocation_id": "eipalloc-1", "id": "nat-1"});
        let p = plan(vec![
            replace("aws_nat_gateway.main[us-east-1a]", &["allocation_id"], nat.clone(), nat.clone()),
            change("aws_eip.nat[us-east-1b]", Action::Delete, Some(json!({"public_ip": "198.51.100.7"})), None),
            change("aws_nat_gateway.main[us-east-1c]", Action::Update, Some(nat.clone()), Some(nat)),
        ]);
        let risks = risks(&p);
        assert_eq!(
            kinds(&risks),
            [(EGRESS_IP_CHANGE, "aws_nat_gateway.main[us-east-1a]"), (EGRESS_IP_CHANGE, "aws_eip.nat[us-east-1b]")]
        );
        assert!(risks[1].message.contains("198.51.100.7"), "{}", risks[1].message);
        assert!(risks[0].message.contains("of us-east-1a"), "{}", risks[0].message);
    }

    #[test]
    fn a_replaced_load_balancer_moves_the_api_endpoint() {
        let elb = |name: &str| json!({"name": name, "dns_name": format!("{name}-1.elb.amazonaws.com")});
        let p = plan(vec![replace("aws_elb.apiserver", &["name"], elb("demo-apiserver"), elb("prod-apiserver"))]);
        let risks = risks(&p);
        assert_eq!(kinds(&risks), [(API_ENDPOINT_CHANGE, "aws_elb.apiserver")]);
        assert!(risks[0].message.contains("demo-apiserver-1.elb.amazonaws.com"), "{}", risks[0].message);
        // Updated in place (listeners, subnets): the name stays.
        let p = plan(vec![change("aws_elb.apiserver", Action::Update, Some(elb("a")), Some(elb("a")))]);
        assert_eq!(super::risks(&p), []);
    }

    #[test]
    fn removing_an_az_changes_the_network_the_egress_and_the_control_plane() {
        let to = demo_with(
            "azs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]",
            "azs = [\"us-east-1a\", \"us-east-1b\"]",
        );
        let risks = risks(&diff(DEMO, &to, REPLACE_ON));
        let found = kinds(&risks);
        for expected in [
            (NETWORK_CHANGE, "aws_subnet.private[us-east-1c]"),
            (NETWORK_CHANGE, "aws_subnet.public[us-east-1c]"),
            (NETWORK_CHANGE, "aws_route_table.private[us-east-1c]"),
            (EGRESS_IP_CHANGE, "aws_nat_gateway.main[us-east-1c]"),
            (EGRESS_IP_CHANGE, "aws_eip.nat[us-east-1c]"),
        ] {
            assert!(found.contains(&expected), "{expected:?} not in {found:?}");
        }
        // Two AZs carve the VPC into larger subnets: the remaining AZs'
        // subnets are replaced too, and the control-plane node that was in
        // us-east-1c moves (round robin).
        for expected in [
            (NETWORK_CHANGE, "aws_subnet.private[us-east-1a]"),
            (NETWORK_CHANGE, "aws_subnet.public[us-east-1b]"),
            (CONTROL_PLANE_ROLL, "aws_instance.control_plane[2]"),
        ] {
            assert!(found.contains(&expected), "{expected:?} not in {found:?}");
        }
        assert!(!found.iter().any(|(_, a)| *a == "aws_vpc.main" || *a == "aws_route_table.public"), "{found:?}");
        let vpc = json!({"cidr_block": "10.0.0.0/16"});
        let p = plan(vec![replace("aws_vpc.main", &["cidr_block"], vpc.clone(), vpc)]);
        assert_eq!(kinds(&super::risks(&p)), [(NETWORK_CHANGE, "aws_vpc.main")]);
    }

    #[test]
    fn a_pool_scaled_down_or_removed_drops_capacity_and_scaled_up_does_not() {
        let down = demo_with("size = 3\nmin = 3", "size = 1\nmin = 1");
        let risks = risks(&diff(DEMO, &down, REPLACE_ON));
        assert_eq!(kinds(&risks), [(CAPACITY_DROP, "aws_autoscaling_group.pool[worker]")]);
        assert!(
            risks[0].message.contains("from 3 to 1") && risks[0].message.contains("2 running"),
            "{}",
            risks[0].message
        );

        let up = demo_with("size = 3\nmin = 3", "size = 5\nmin = 5");
        assert_eq!(super::risks(&diff(DEMO, &up, REPLACE_ON)), []);

        let group = json!({"desired_capacity": 2, "name": "demo-gpu"});
        let p = plan(vec![change("aws_autoscaling_group.pool[gpu]", Action::Delete, Some(group), None)]);
        let risks = super::risks(&p);
        assert_eq!(kinds(&risks), [(CAPACITY_DROP, "aws_autoscaling_group.pool[gpu]")]);
        assert!(risks[0].message.contains("pool gpu is removed"), "{}", risks[0].message);
    }

    #[test]
    fn a_smaller_control_plane_changes_the_quorum() {
        let to = demo_with("size = 3\ninstance_type = \"m5.large\"", "size = 1\ninstance_type = \"m5.large\"");
        let risks = risks(&diff(DEMO, &to, REPLACE_ON));
        assert_eq!(
            kinds(&risks),
            [(QUORUM_CHANGE, "aws_instance.control_plane[1]"), (QUORUM_CHANGE, "aws_instance.control_plane[2]")]
        );
        assert!(
            risks[0].message.contains("from 3 to 1") && risks[0].message.contains("0 failed member(s) instead of 1")
        );
        // Growing is no risk.
        let up = demo_with("size = 3\ninstance_type = \"m5.large\"", "size = 5\ninstance_type = \"m5.large\"");
        assert_eq!(super::risks(&diff(DEMO, &up, REPLACE_ON)), []);
    }

    #[test]
    fn renaming_the_cluster_replaces_pools_and_the_endpoint() {
        let to = demo_with("name = \"demo\"", "name = \"prod\"");
        let risks = risks(&diff(DEMO, &to, REPLACE_ON));
        let found = kinds(&risks);
        assert!(found.contains(&(WORKER_ROLL, "aws_autoscaling_group.pool[worker]")), "{found:?}");
        assert!(found.contains(&(API_ENDPOINT_CHANGE, "aws_elb.apiserver")), "{found:?}");
        // The launch template's own replace leaves the roll to its group.
        assert!(!found.iter().any(|(_, a)| *a == "aws_launch_template.pool[worker]"), "{found:?}");
    }

    #[test]
    fn a_bootstrap_secret_made_anew_under_a_running_control_plane_is_named() {
        let base = super::test_plan::applied(DEMO);
        let remade = |address: &str, action: Action| {
            let mut p = base.clone();
            let c = p.changes.iter_mut().find(|c| c.address.to_string() == address).unwrap();
            c.action = action;
            if action == Action::Create {
                c.before = None;
            }
            p
        };
        for (secret, words) in [
            ("aws_secretsmanager_secret.pki", "new cluster CAs"),
            ("aws_secretsmanager_secret.join", "new bootstrap token"),
            ("aws_secretsmanager_secret.init_lock", "second cluster"),
        ] {
            for action in [Action::Create, Action::Replace] {
                let r = risks(&remade(secret, action));
                assert_eq!(kinds(&r), [(BOOTSTRAP_SECRET_CHANGE, secret)], "{secret} {action:?}");
                assert!(
                    r[0].message.contains(words) && r[0].message.contains("aws.cluster.x-k8s.io/demo/"),
                    "{}",
                    r[0].message
                );
            }
        }
        // A new cluster, or one whose control plane is replaced with its
        // secrets (a rename): nothing keeps the old secrets.
        assert!(risks(&super::test_plan::creating(DEMO)).iter().all(|r| r.kind != BOOTSTRAP_SECRET_CHANGE));
        let renamed = diff(DEMO, &demo_with("name = \"demo\"", "name = \"prod\""), REPLACE_ON);
        assert!(risks(&renamed).iter().all(|r| r.kind != BOOTSTRAP_SECRET_CHANGE), "{:?}", kinds(&risks(&renamed)));
    }

    #[test]
    fn deposed_objects_and_no_ops_carry_no_risk() {
        let mut gone = change("aws_instance.control_plane[0]", Action::Delete, Some(json!({})), None);
        gone.deposed = true;
        let p = plan(vec![gone, same("aws_instance.control_plane[0]", json!({"instance_type": "m5.large"}))]);
        assert_eq!(risks(&p), []);
    }

    #[test]
    fn parts_group_the_cluster_network_first_then_control_plane_then_pools() {
        let p = super::test_plan::creating(DEMO);
        let parts = parts(&p);
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["network", "security groups", "bootstrap secrets", "control plane", "bastion", "pool worker"]
        );
        assert_eq!(parts[2].addresses.len(), 3);
        let cp = &parts[3].addresses;
        assert!(cp.contains(&"aws_elb.apiserver".to_string()) && cp.len() == 4, "{cp:?}");
        // Every blueprint address is in a part.
        let placed: usize = parts.iter().map(|p| p.addresses.len()).sum();
        assert_eq!(placed, p.changes.len());
    }
}
