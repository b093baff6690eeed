//! The least-privilege IAM policy for a spec (`skyplan policy`), and its
//! split into managed policies that fit AWS's size limit.
//!
//! The actions come from a data table, `data/iam-actions.toml`: per AWS
//! resource type, what the provider calls to refresh, create, update and
//! delete it, plus the actions a run needs whatever the types (preflight,
//! assuming a role, checking a static placement's network). [`policy_for`]
//! takes the rows of the types a spec's resources use and nothing else.
//! This module decides how the actions are grouped into statements and
//! which resource ARNs they are limited to; it never calls AWS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::model::{PlacementMode, SpecFile};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skyplan_engine::{Resource, SpecError};

/// The policy language version every document carries.
pub const VERSION: &str = "2012-10-17";

/// AWS's limit on a customer managed policy: 6,144 characters, whitespace
/// not counted.
pub const MANAGED_POLICY_LIMIT: usize = 6144;

/// An IAM policy document: `{"Version": "2012-10-17", "Statement": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

/// One statement. Only `Allow` exists here: skyplan asks for permissions,
/// it never denies any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    /// What the statement is for: only on the optional features' statements
    /// (`--with-optional`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: Effect,
    /// Sorted, without duplicates.
    pub action: Vec<String>,
    /// `"*"` or ARN patterns; written as a string when there is one.
    #[serde(with = "one_or_many")]
    pub resource: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// `{"StringLike": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}}`.
pub type Condition = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
}

impl PolicyDocument {
    pub fn new(statements: Vec<Statement>) -> Self {
        PolicyDocument { version: VERSION.to_string(), statements }
    }

    /// Every action the document allows, on whatever resource.
    pub fn actions(&self) -> BTreeSet<&str> {
        self.statements.iter().flat_map(|s| s.action.iter().map(String::as_str)).collect()
    }

    /// The size AWS measures against [`MANAGED_POLICY_LIMIT`]: the JSON's
    /// characters, whitespace not counted.
    pub fn size(&self) -> usize {
        let json = serde_json::to_string(self).expect("a policy document serializes");
        json.chars().filter(|c| !c.is_whitespace()).count()
    }
}

/// The policy `skyplan plan`, `apply` and `destroy` need for the given
/// resources (the spec's raw resources plus what [`crate::expand`] made of
/// its `[cluster]`): the rows of data/iam-actions.toml for the AWS types
/// present, all four phases, plus the run-wide actions the spec calls for
/// (the Price List API's `pricing:GetProducts` when a spot pool gives no
/// `on_demand_price`).
///
/// Statements: one per service on `"*"`; the auto scaling group actions
/// IAM can limit, on the groups of this cluster (`<cluster>-*`); creating
/// the service-linked roles of auto scaling and ELB, on exactly those roles;
/// `sts:AssumeRole` on exactly `[account] role_arn`. Types that are not
/// AWS's (`sim_resource`) need no permission. An `aws_*` type the table does
/// not know is an error at its `resource.TYPE.NAME` key.
pub fn policy_for(spec: &SpecFile, resources: &[Resource]) -> Result<PolicyDocument, Vec<SpecError>> {
    let table = table();
    let mut errors = Vec::new();
    let mut kinds: BTreeMap<&str, &KindActions> = BTreeMap::new();
    for r in resources.iter().filter(|r| r.address.kind.starts_with("aws_")) {
        match table.kinds.get(&r.address.kind) {
            Some(row) => {
                kinds.insert(&r.address.kind, row);
            }
            None => errors.push(
                SpecError::new(
                    format!("resource.{}.{}", r.address.kind, r.address.name),
                    format!("skyplan does not manage the AWS type `{}`", r.address.kind),
                )
                .with_help("the types it manages are those of docs/aws-resources.md"),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut grants = Grants::default();
    if !kinds.is_empty() || spec.cluster.is_some() {
        grants.everywhere(&table.run.always);
    }
    let static_placement = spec.placement.as_ref().is_some_and(|p| p.mode == PlacementMode::Static);
    if spec.cluster.is_some() && static_placement {
        grants.everywhere(&table.run.static_placement);
    }
    if !crate::prices::needed(spec).is_empty() {
        grants.everywhere(&table.run.price_list);
    }
    if resources.iter().any(names_a_key_pair) {
        grants.everywhere(&table.run.key_pair);
    }
    if let Some(role_arn) = spec.account.as_ref().and_then(|a| a.role_arn.as_deref()) {
        for action in &table.run.assume_role {
            grants.add(action, vec![role_arn.to_string()], None);
        }
    }
    for secret in api_wait_secrets(resources) {
        // Secrets Manager ARNs end in `-` and six random characters.
        for action in &table.run.api_wait {
            grants.add(action, vec![format!("arn:*:secretsmanager:*:*:secret:{secret}-*")], None);
        }
    }
    let profiles = instance_profiles(resources);
    if !profiles.is_empty() {
        grants.everywhere(&table.run.instance_profile);
    }
    for profile in &profiles {
        if SHARED_PROFILES.contains(&profile.as_str()) {
            grants.everywhere(&table.run.shared_instance_profiles);
            for action in &table.run.shared_instance_profile_roles {
                grants.add(action, vec![role_arn(profile)], None);
            }
        } else {
            // A profile of the user's: its role's name is not known here.
            grants.add("iam:PassRole", vec![role_arn("*")], None);
        }
    }

    for (kind, row) in kinds {
        let scoped = row.scoped.as_ref().map(|s| (s, scoped_resources(s, spec, resources, kind)));
        for action in row.all_actions() {
            match &scoped {
                Some((s, arns)) if s.actions.contains(action) => grants.add(action, arns.clone(), None),
                _ => grants.add(action, vec!["*".into()], None),
            }
        }
        if let Some(slr) = &row.service_linked_role {
            let arn = format!("arn:*:iam::*:role/aws-service-role/{}/{}", slr.service, slr.role);
            let condition = Condition::from([(
                "StringLike".into(),
                BTreeMap::from([("iam:AWSServiceName".into(), slr.service.clone())]),
            )]);
            grants.add("iam:CreateServiceLinkedRole", vec![arn], Some(condition));
        }
    }
    Ok(grants.into_document())
}

/// An optional feature (data/iam-actions.toml `[optional.*]`): actions
/// beyond the seed's policies that skyplan skips, saying so, when AWS
/// denies them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionalFeature {
    /// The resource type whose operations use it.
    pub kind: String,
    /// The Sid of its statement.
    pub sid: String,
    pub actions: Vec<String>,
    /// What it enables, and what is lost without it (docs/iam.md).
    pub enables: String,
    pub lost: String,
}

/// Every optional feature, by name.
pub fn optional_features() -> &'static BTreeMap<String, OptionalFeature> {
    &table().optional
}

/// `--with-optional`: a statement for each optional feature whose type
/// the resources use, on `"*"`, with the feature's Sid. Kept apart from
/// [`policy_for`]'s statements so each says what it enables.
pub fn optional_statements(resources: &[Resource]) -> Vec<Statement> {
    let kinds: BTreeSet<&str> = resources.iter().map(|r| r.address.kind.as_str()).collect();
    table()
        .optional
        .values()
        .filter(|f| kinds.contains(f.kind.as_str()))
        .map(|f| {
            let mut action = f.actions.clone();
            action.sort();
            action.dedup();
            Statement {
                sid: Some(f.sid.clone()),
                effect: Effect::Allow,
                action,
                resource: vec!["*".into()],
                condition: None,
            }
        })
        .collect()
}

/// What keeping the state in `s3://BUCKET/KEY` needs: read, replace and
/// delete the state, its `.backup` and its `.lock` objects, and list the
/// bucket (without `s3:ListBucket`, reading a missing key answers 403
/// instead of 404, and a first run could not tell "no state yet").
pub fn state_in_s3(bucket: &str, key: &str) -> Vec<Statement> {
    let object = |suffix: &str| format!("arn:aws:s3:::{bucket}/{key}{suffix}");
    vec![
        Statement {
            sid: None,
            effect: Effect::Allow,
            action: vec!["s3:DeleteObject".into(), "s3:GetObject".into(), "s3:PutObject".into()],
            resource: vec![object(""), object(".backup"), object(".lock")],
            condition: None,
        },
        Statement {
            sid: None,
            effect: Effect::Allow,
            action: vec!["s3:ListBucket".into()],
            resource: vec![format!("arn:aws:s3:::{bucket}")],
            condition: None,
        },
    ]
}

/// `doc` as managed policies, each at most `limit` characters by
/// [`PolicyDocument::size`], allowing together exactly what `doc` allows.
///
/// Statements are packed in order; a statement that does not fit in an
/// empty document is cut into statements with fewer actions (same resource
/// and condition). A single action too large for an empty document alone,
/// which no real limit comes near, is still emitted, in a document of its
/// own. No statements, no documents.
pub fn split(doc: &PolicyDocument, limit: usize) -> Vec<PolicyDocument> {
    let empty = PolicyDocument::new(Vec::new());
    let mut out = Vec::new();
    let mut current = empty.clone();
    for statement in &doc.statements {
        let mut rest = statement.clone();
        loop {
            if fits(&current, &rest, limit) {
                current.statements.push(rest);
                break;
            }
            if !current.statements.is_empty() && fits(&empty, &rest, limit) {
                out.push(std::mem::replace(&mut current, empty.clone()));
                continue;
            }
            // Too big for any one document: as many actions as fit here.
            let mut n = most_actions_that_fit(&current, &rest, limit);
            if n == 0 && !current.statements.is_empty() {
                out.push(std::mem::replace(&mut current, empty.clone()));
                continue;
            }
            n = n.max(1);
            let mut head = rest.clone();
            head.action = rest.action.drain(..n).collect();
            current.statements.push(head);
            if rest.action.is_empty() {
                break;
            }
            out.push(std::mem::replace(&mut current, empty.clone()));
        }
    }
    if !current.statements.is_empty() {
        out.push(current);
    }
    out
}

fn fits(doc: &PolicyDocument, statement: &Statement, limit: usize) -> bool {
    let mut with = doc.clone();
    with.statements.push(statement.clone());
    with.size() <= limit
}

/// The largest n such that `doc` plus `statement` cut to its first n
/// actions fits (sizes grow with n, so a binary search).
fn most_actions_that_fit(doc: &PolicyDocument, statement: &Statement, limit: usize) -> usize {
    let (mut lo, mut hi) = (0, statement.action.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let head = Statement { action: statement.action[..mid].to_vec(), ..statement.clone() };
        if fits(doc, &head, limit) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// What a statement is keyed by: service, resources, condition.
type StatementKey = (String, Vec<String>, Option<Condition>);

/// Actions by statement key: one statement each.
#[derive(Default)]
struct Grants(BTreeMap<StatementKey, BTreeSet<String>>);

impl Grants {
    fn add(&mut self, action: &str, resources: Vec<String>, condition: Option<Condition>) {
        let service = action.split_once(':').map_or(action, |(s, _)| s).to_string();
        self.0.entry((service, resources, condition)).or_default().insert(action.to_string());
    }

    fn everywhere(&mut self, actions: &[String]) {
        for action in actions {
            self.add(action, vec!["*".into()], None);
        }
    }

    fn into_document(self) -> PolicyDocument {
        let statements = self
            .0
            .into_iter()
            .map(|((_, resource, condition), actions)| Statement {
                sid: None,
                effect: Effect::Allow,
                action: actions.into_iter().collect(),
                resource,
                condition,
            })
            .collect();
        PolicyDocument::new(statements)
    }
}

/// The shared instance profiles, each with a role of the same name.
const SHARED_PROFILES: [&str; 2] = [crate::cluster::CONTROL_PLANE_PROFILE, crate::cluster::NODES_PROFILE];

/// The role `name` in any partition and account, as IAM scopes it.
fn role_arn(name: &str) -> String {
    format!("arn:*:iam::*:role/{name}")
}

/// The instance profiles instances and launch templates run with.
pub fn instance_profiles(resources: &[Resource]) -> BTreeSet<String> {
    resources
        .iter()
        .filter(|r| matches!(r.address.kind.as_str(), "aws_instance" | "aws_launch_template"))
        .filter_map(|r| r.attrs.get("iam_instance_profile")?.as_str())
        .filter(|name| !name.contains("${"))
        .map(str::to_string)
        .collect()
}

/// The PKI secrets control-plane instances read to wait on the API server
/// (`api_wait.pki_secret`).
fn api_wait_secrets(resources: &[Resource]) -> BTreeSet<String> {
    resources
        .iter()
        .filter(|r| r.address.kind == "aws_instance")
        .filter_map(|r| r.attrs.get("api_wait")?.get("pki_secret")?.as_str())
        .filter(|name| !name.contains("${"))
        .map(str::to_string)
        .collect()
}

/// The seed's policy `name` ("Control Plane Policy", "Nodes Policy"): what
/// the shared instance profiles' roles may do (data/seed-policies.json).
pub fn seed_policy(name: &str) -> Option<Value> {
    static SEED: OnceLock<Value> = OnceLock::new();
    let seed = SEED.get_or_init(|| {
        serde_json::from_str(include_str!("../data/seed-policies.json"))
            .unwrap_or_else(|e| panic!("data/seed-policies.json does not parse: {e}"))
    });
    seed["policies"].get(name).cloned()
}

/// An instance or launch template that names a key pair, which preflight
/// checks exists.
fn names_a_key_pair(r: &Resource) -> bool {
    matches!(r.address.kind.as_str(), "aws_instance" | "aws_launch_template")
        && r.attrs.get("key_name").is_some_and(|v| !v.is_null())
}

/// The resource ARNs for a kind's scoped actions: `{name}` in the table's
/// pattern becomes `<cluster>-*` for the resources named like the
/// cluster's, their literal name for others, and `*` as soon as one name is
/// not known before apply (a reference).
fn scoped_resources(scoped: &Scoped, spec: &SpecFile, resources: &[Resource], kind: &str) -> Vec<String> {
    let prefix = spec.cluster.as_ref().map(|c| format!("{}-", c.name));
    let mut names = BTreeSet::new();
    for r in resources.iter().filter(|r| r.address.kind == kind) {
        let pattern = match r.attrs.get("name") {
            Some(Value::String(name)) if !name.contains("${") && !name.contains('*') => match &prefix {
                Some(p) if name.starts_with(p.as_str()) => format!("{p}*"),
                _ => name.clone(),
            },
            _ => "*".to_string(),
        };
        names.insert(pattern);
    }
    if names.contains("*") {
        names = BTreeSet::from(["*".to_string()]);
    }
    names.into_iter().map(|name| scoped.resource.replace("{name}", &name)).collect()
}

/// data/iam-actions.toml, parsed once.
fn table() -> &'static ActionTable {
    static TABLE: OnceLock<ActionTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        toml::from_str(include_str!("../data/iam-actions.toml"))
            .unwrap_or_else(|e| panic!("data/iam-actions.toml does not parse (its unit test says why): {e}"))
    })
}

#[derive(Debug, Deserialize)]
struct ActionTable {
    run: RunActions,
    #[serde(default)]
    optional: BTreeMap<String, OptionalFeature>,
    /// `aws_vpc`, `aws_subnet`, ...: every other table.
    #[serde(flatten)]
    kinds: BTreeMap<String, KindActions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunActions {
    always: Vec<String>,
    key_pair: Vec<String>,
    assume_role: Vec<String>,
    price_list: Vec<String>,
    static_placement: Vec<String>,
    instance_profile: Vec<String>,
    shared_instance_profiles: Vec<String>,
    shared_instance_profile_roles: Vec<String>,
    api_wait: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindActions {
    refresh: Vec<String>,
    create: Vec<String>,
    update: Vec<String>,
    delete: Vec<String>,
    scoped: Option<Scoped>,
    service_linked_role: Option<ServiceLinkedRole>,
}

impl KindActions {
    fn all_actions(&self) -> impl Iterator<Item = &String> {
        self.refresh.iter().chain(&self.create).chain(&self.update).chain(&self.delete)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scoped {
    resource: String,
    actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceLinkedRole {
    service: String,
    role: String,
}

/// `"Resource": "*"` for one, `"Resource": [...]` for several.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(items: &[String], s: S) -> Result<S::Ok, S::Error> {
        match items {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

#[cfg(test)]
mod state_bucket_tests {
    use super::*;

    #[test]
    fn state_in_s3_covers_the_three_objects_and_listing() {
        let statements = state_in_s3("team-state", "clusters/demo.state.json");
        let doc = PolicyDocument::new(statements);
        let text = serde_json::to_string(&doc).unwrap();
        for needed in [
            "arn:aws:s3:::team-state/clusters/demo.state.json\"",
            "arn:aws:s3:::team-state/clusters/demo.state.json.lock",
            "arn:aws:s3:::team-state/clusters/demo.state.json.backup",
            "s3:ListBucket",
            "s3:PutObject",
        ] {
            assert!(text.contains(needed), "{needed} missing from {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, demo_with, edit, parse};

    /// The seed's four policies (data/seed-policies.json, a copy of the
    /// seed's JSON) as documents.
    fn seed_documents() -> Vec<PolicyDocument> {
        let seed: Value = serde_json::from_str(include_str!("../data/seed-policies.json")).unwrap();
        let policies = seed["policies"].as_object().unwrap();
        assert_eq!(policies.len(), 4, "Controller, Control Plane, Nodes, Deployment");
        policies
            .values()
            .map(|p| {
                let mut p = p.clone();
                // Actions and resources as lists, as this module writes them.
                for s in p["Statement"].as_array_mut().unwrap() {
                    if let Value::String(one) = &s["Action"] {
                        s["Action"] = Value::Array(vec![Value::String(one.clone())]);
                    }
                }
                serde_json::from_value(p).unwrap()
            })
            .collect()
    }

    fn seed_actions() -> BTreeSet<String> {
        let seed: Value = serde_json::from_str(include_str!("../data/seed-policies.json")).unwrap();
        let policies = seed["policies"].as_object().unwrap();
        assert_eq!(policies.len(), 4, "Controller, Control Plane, Nodes, Deployment");
        let mut actions = BTreeSet::new();
        for policy in policies.values() {
            for statement in policy["Statement"].as_array().unwrap() {
                match &statement["Action"] {
                    Value::String(a) => {
                        actions.insert(a.clone());
                    }
                    Value::Array(list) => actions.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
                    other => panic!("Action {other}"),
                }
            }
        }
        actions
    }

    /// Every action the table can ask for, where it asks for it.
    fn table_actions() -> Vec<(String, String)> {
        let t = table();
        let run = [
            ("run.always", &t.run.always),
            ("run.key_pair", &t.run.key_pair),
            ("run.assume_role", &t.run.assume_role),
            ("run.price_list", &t.run.price_list),
            ("run.static_placement", &t.run.static_placement),
            ("run.instance_profile", &t.run.instance_profile),
            ("run.shared_instance_profiles", &t.run.shared_instance_profiles),
            ("run.shared_instance_profile_roles", &t.run.shared_instance_profile_roles),
            ("run.api_wait", &t.run.api_wait),
        ];
        let mut out: Vec<(String, String)> =
            run.iter().flat_map(|(row, actions)| actions.iter().map(|a| (row.to_string(), a.clone()))).collect();
        for (kind, row) in &t.kinds {
            out.extend(row.all_actions().map(|a| (kind.clone(), a.clone())));
            if row.service_linked_role.is_some() {
                out.push((kind.clone(), "iam:CreateServiceLinkedRole".into()));
            }
        }
        out
    }

    /// Every optional feature's actions, with the feature's name.
    fn optional_actions() -> Vec<(String, String)> {
        table().optional.iter().flat_map(|(name, f)| f.actions.iter().map(|a| (name.clone(), a.clone()))).collect()
    }

    /// Whether `pattern` (IAM's `*` and `?`) matches `text`, read literally.
    fn glob(pattern: &str, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some(pi);
                mark = ti;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ti = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }

    /// Whether one of `docs`' statements allows `action` on everything
    /// `resource` names (a seed pattern that matches the printed pattern read
    /// literally: `*` printed needs `*` in the seed) under the same
    /// condition or none. moto cannot judge resources or conditions
    /// (docs/testing.md): this is where they are checked.
    fn granted(docs: &[PolicyDocument], action: &str, resource: &str, condition: &Option<Condition>) -> bool {
        docs.iter().flat_map(|d| &d.statements).any(|s| {
            s.action.iter().any(|a| glob(a, action))
                && s.resource.iter().any(|r| glob(r, resource))
                && (s.condition.is_none() || &s.condition == condition)
        })
    }

    fn policy(text: &str) -> PolicyDocument {
        let spec = parse(text);
        let resources = crate::expand(&spec).unwrap();
        policy_for(&spec, &resources).unwrap()
    }

    fn example(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_table_parses_and_each_row_is_sorted_and_well_formed() {
        let t = table();
        let mut rows: Vec<(String, &Vec<String>)> = vec![
            ("run.always".into(), &t.run.always),
            ("run.key_pair".into(), &t.run.key_pair),
            ("run.assume_role".into(), &t.run.assume_role),
            ("run.static_placement".into(), &t.run.static_placement),
            ("run.instance_profile".into(), &t.run.instance_profile),
            ("run.shared_instance_profiles".into(), &t.run.shared_instance_profiles),
            ("run.shared_instance_profile_roles".into(), &t.run.shared_instance_profile_roles),
            ("run.api_wait".into(), &t.run.api_wait),
        ];
        for (kind, row) in &t.kinds {
            for (phase, actions) in
                [("refresh", &row.refresh), ("create", &row.create), ("update", &row.update), ("delete", &row.delete)]
            {
                assert!(!actions.is_empty(), "{kind}.{phase} is empty");
                rows.push((format!("{kind}.{phase}"), actions));
            }
            if let Some(scoped) = &row.scoped {
                assert!(scoped.resource.contains("{name}"), "{kind}.scoped.resource has no {{name}}");
                let all: BTreeSet<&String> = row.all_actions().collect();
                for a in &scoped.actions {
                    assert!(all.contains(a), "{kind}.scoped: {a} is in no phase of {kind}");
                }
                rows.push((format!("{kind}.scoped"), &scoped.actions));
            }
        }
        for (row, actions) in rows {
            let mut sorted = actions.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(actions, &sorted, "{row}: keep actions sorted and unique");
            for a in actions {
                let (service, name) = a.split_once(':').unwrap_or_else(|| panic!("{row}: `{a}` is not service:Action"));
                assert!(
                    !service.is_empty() && service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                    "{row}: {a}"
                );
                assert!(name.starts_with(|c: char| c.is_ascii_uppercase()), "{row}: {a}");
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{row}: {a} (no wildcards)");
            }
        }
    }

    /// The contract: every command works with exactly the seed's union.
    #[test]
    fn every_action_the_table_asks_for_is_in_the_seeds_policies() {
        let seed = seed_actions();
        for (row, action) in table_actions() {
            assert!(
                seed.contains(&action),
                "{row}: {action} is in none of the seed's four policies; do the work with seed actions, \
                 or make it an [optional.*] feature that is skipped when denied"
            );
        }
    }

    #[test]
    fn optional_features_are_beyond_the_seed_and_say_what_they_enable() {
        let seed = seed_actions();
        let required: BTreeSet<String> = table_actions().into_iter().map(|(_, a)| a).collect();
        let t = table();
        assert!(!t.optional.is_empty());
        for (name, f) in &t.optional {
            assert!(t.kinds.contains_key(&f.kind), "optional.{name}: no type {}", f.kind);
            assert!(
                !f.sid.is_empty() && f.sid.chars().all(|c| c.is_ascii_alphanumeric()),
                "optional.{name}: Sid {:?}",
                f.sid
            );
            assert!(!f.enables.is_empty() && !f.lost.is_empty(), "optional.{name}");
            for a in &f.actions {
                assert!(!seed.contains(a), "optional.{name}: {a} is in the seed: make it a required action");
                assert!(!required.contains(a), "optional.{name}: {a} is also required by a phase");
            }
        }
        let with_pools = policy(&example("spot-pool.toml"));
        assert!(!with_pools.actions().contains("ec2:DescribeSpotPriceHistory"), "not without --with-optional");
    }

    /// `policy` prints, for every example, only what the seed's union
    /// grants: each action on each resource, under its condition.
    #[test]
    fn every_action_policy_prints_for_every_example_is_granted_by_the_seed() {
        let seed = seed_documents();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let doc = policy(&std::fs::read_to_string(&path).unwrap());
            assert!(!doc.statements.is_empty(), "{}", path.display());
            for s in &doc.statements {
                for action in &s.action {
                    for resource in &s.resource {
                        assert!(
                            granted(&seed, action, resource, &s.condition),
                            "{}: {action} on {resource} ({:?}) is not granted by the seed's policies",
                            path.display(),
                            s.condition
                        );
                    }
                }
            }
            checked += 1;
        }
        assert!(checked >= 4, "the examples: {checked}");
        // With a role to assume, too.
        let arn = "arn:aws:iam::123456789012:role/SpectroCloudRole";
        let text = format!("{}\n[account]\nrole_arn = \"{arn}\"\nexternal_id = \"from-the-ui\"\n", fixtures::DEMO);
        for s in policy(&text).statements {
            for a in &s.action {
                assert!(granted(&seed, a, &s.resource[0], &s.condition), "{a}");
            }
        }
        // The check can fail: an optional action is not granted.
        assert!(!granted(&seed, "ec2:DescribeSpotPriceHistory", "*", &None));
        assert!(!granted(&seed, "autoscaling:CreateAutoScalingGroup", "*", &None), "the seed scopes it to groups");
    }

    #[test]
    fn optional_statements_name_what_they_enable_only_for_the_types_used() {
        let spec = parse(&example("spot-pool.toml"));
        let resources = crate::expand(&spec).unwrap();
        let optional = optional_statements(&resources);
        assert_eq!(optional.len(), 1);
        assert_eq!(optional[0].sid.as_deref(), Some("OptionalSpotPricesInPlanAndSpotWaitInApply"));
        assert_eq!(optional[0].action, ["ec2:DescribeSpotPriceHistory"]);
        let json = serde_json::to_value(&optional[0]).unwrap();
        assert_eq!(json["Sid"], "OptionalSpotPricesInPlanAndSpotWaitInApply");
        let only_network = "[resource.aws_vpc.main]\ncidr_block = \"10.0.0.0/16\"\n";
        let spec = skyplan_engine::Spec::<SpecFile>::parse_with(source(only_network)).unwrap();
        assert!(optional_statements(&spec.resources).is_empty());
        // Required statements carry no Sid.
        let doc = policy(fixtures::DEMO);
        assert!(serde_json::to_string(&doc).unwrap().find("Sid").is_none());
    }

    /// Keeps the table and docs/aws-resources.md (what the provider serves)
    /// the same set of types.
    #[test]
    fn every_documented_type_has_a_row_and_no_other_does() {
        let doc = include_str!("../../../docs/aws-resources.md");
        let documented: BTreeSet<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `aws_"))
            .map(|rest| format!("aws_{}", rest.split('`').next().unwrap()))
            // The kinds table, not the addresses table (`aws_vpc.main`).
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        assert_eq!(documented.len(), 13, "{documented:?}");
        let rows: BTreeSet<String> = table().kinds.keys().cloned().collect();
        assert_eq!(rows, documented);
    }

    /// The operation names in `c.call("Op", ...)` and `c.paginate(\n "Op", ...)`.
    fn called_operations(text: &str) -> Vec<&str> {
        let mut ops = Vec::new();
        for marker in ["call(", "paginate("] {
            for rest in text.split(marker).skip(1) {
                if let Some(quoted) = rest.trim_start().strip_prefix('"') {
                    ops.extend(quoted.split('"').next());
                }
            }
        }
        ops
    }

    /// Every API operation the AWS provider calls (`c.call("Op", ...)`) is
    /// in the table: in its kind's row when called from that kind's file
    /// (`kinds/vpc.rs` for `aws_vpc`), somewhere when called from a shared
    /// one (`tags.rs`). Reads the provider's source, so it needs no SDK build.
    #[test]
    fn every_operation_the_provider_calls_is_in_the_table() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../aws/src");
        let t = table();
        let op = |action: &String| action.split_once(':').map(|(_, o)| o.to_string()).unwrap();
        let anywhere: BTreeSet<String> =
            table_actions().iter().chain(&optional_actions()).map(|(_, a)| op(a)).collect();
        let mut files = Vec::new();
        for dir in [src.clone(), src.join("kinds")] {
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                files.push(entry.unwrap().path());
            }
        }
        let mut kind_files = 0;
        for path in files {
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            // `kinds/ingress.rs` is the security group's permission model
            // (shared with its rules): its calls are in that kind's row.
            let kind = if stem == "ingress" { "aws_security_group".to_string() } else { format!("aws_{stem}") };
            let row = t.kinds.get(&kind);
            kind_files += usize::from(row.is_some() && stem != "ingress");
            for called in called_operations(&text) {
                match row {
                    Some(row) => assert!(
                        row.all_actions().any(|a| op(a) == called),
                        "{stem}.rs calls {called}, which is in no phase of aws_{stem} in data/iam-actions.toml"
                    ),
                    None => assert!(
                        anywhere.contains(called),
                        "{stem}.rs calls {called}, which data/iam-actions.toml lacks"
                    ),
                }
            }
        }
        assert_eq!(kind_files, t.kinds.len(), "every kind's file was read");
    }

    #[test]
    fn a_dynamic_cluster_may_build_its_whole_network() {
        let doc = policy(&example("dynamic-cluster.toml"));
        let actions = doc.actions();
        for needed in [
            "ec2:CreateVpc",
            "ec2:CreateSubnet",
            "ec2:CreateNatGateway",
            "ec2:CreateInternetGateway",
            "ec2:AllocateAddress",
            "ec2:RunInstances",
            "ec2:CreateLaunchTemplate",
            "elasticloadbalancing:CreateLoadBalancer",
            "autoscaling:CreateAutoScalingGroup",
            "ec2:DescribeAvailabilityZones",
            "ec2:DescribeAccountAttributes",
            "ec2:DeleteVpc",
            "secretsmanager:CreateSecret",
            "secretsmanager:GetSecretValue",
        ] {
            assert!(actions.contains(needed), "{needed} missing from {actions:?}");
        }
        // Nothing the spec does not call for: no role, no key pair, no static checks beyond what its types read.
        assert!(!actions.contains("sts:AssumeRole"));
        assert!(!actions.contains("ec2:DescribeKeyPairs"));
        assert!(actions.iter().all(|a| !a.starts_with("eks:")));
        // The secrets' actions on the cluster's own secrets only.
        let secrets = doc.statements.iter().filter(|s| s.action[0].starts_with("secretsmanager:"));
        let resources: BTreeSet<&str> = secrets.flat_map(|s| &s.resource).map(String::as_str).collect();
        assert_eq!(
            resources.into_iter().collect::<Vec<_>>(),
            [
                "arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/demo/init-lock-*",
                "arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/demo/join-*",
                "arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/demo/pki-*",
            ]
        );
        // Secrets Manager: reading the PKI secret for the wait on the API server.
        assert!(actions.contains("secretsmanager:GetSecretValue"));
    }

    #[test]
    fn a_static_placement_never_builds_or_deletes_the_network() {
        let doc = policy(&example("static-placement.toml"));
        let actions = doc.actions();
        for never in [
            "ec2:CreateVpc",
            "ec2:DeleteVpc",
            "ec2:CreateSubnet",
            "ec2:DeleteSubnet",
            "ec2:CreateNatGateway",
            "ec2:CreateInternetGateway",
            "ec2:AllocateAddress",
            "ec2:CreateRouteTable",
            "ec2:CreateRoute",
            "ec2:ModifyVpcAttribute",
        ] {
            assert!(!actions.contains(never), "{never} in a static placement's policy");
        }
        for check in ["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables"] {
            assert!(actions.contains(check), "{check}: a static placement's network is checked");
        }
        assert!(actions.contains("autoscaling:CreateAutoScalingGroup"));
        assert!(actions.contains("elasticloadbalancing:CreateLoadBalancer"));
        // The example disables the bastion and has no key pair.
        assert!(!actions.contains("ec2:DescribeKeyPairs"));
    }

    #[test]
    fn statements_are_allow_only_grouped_by_service_sorted_and_unique() {
        let doc = policy(fixtures::DEMO);
        assert_eq!(doc.version, "2012-10-17");
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["Version"], "2012-10-17");
        for s in json["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow", "{s}");
        }
        let mut seen = BTreeSet::new();
        for s in &doc.statements {
            let services: BTreeSet<&str> = s.action.iter().map(|a| a.split_once(':').unwrap().0).collect();
            assert_eq!(services.len(), 1, "one service per statement: {s:?}");
            let mut sorted = s.action.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(s.action, sorted);
            for a in &s.action {
                assert!(seen.insert((a.clone(), s.resource.clone())), "{a} twice on {:?}", s.resource);
            }
        }
        let star: Vec<&Statement> = doc.statements.iter().filter(|s| s.resource == ["*"]).collect();
        let services: Vec<&str> = star.iter().map(|s| s.action[0].split_once(':').unwrap().0).collect();
        assert_eq!(services, ["autoscaling", "ec2", "elasticloadbalancing", "iam"]);
        assert_eq!(json["Statement"][0]["Resource"], "*", "one resource is written as a string");
    }

    #[test]
    fn auto_scaling_group_changes_are_limited_to_the_clusters_groups() {
        let doc = policy(fixtures::DEMO);
        let scoped = doc
            .statements
            .iter()
            .find(|s| s.action.contains(&"autoscaling:CreateAutoScalingGroup".to_string()))
            .unwrap();
        assert_eq!(scoped.resource, ["arn:*:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/demo-*"]);
        assert_eq!(
            scoped.action,
            [
                "autoscaling:CreateAutoScalingGroup",
                "autoscaling:CreateOrUpdateTags",
                "autoscaling:DeleteAutoScalingGroup",
                "autoscaling:DeleteTags",
                "autoscaling:StartInstanceRefresh",
                "autoscaling:UpdateAutoScalingGroup",
            ]
        );
        let describe =
            doc.statements.iter().find(|s| s.action.contains(&"autoscaling:DescribeAutoScalingGroups".into())).unwrap();
        assert_eq!(describe.resource, ["*"], "IAM cannot limit Describe* to a group");
    }

    #[test]
    fn raw_groups_are_limited_to_their_names_or_not_at_all() {
        let raw = |name: &str| {
            format!(
                "[resource.aws_autoscaling_group.extra]\nname = {name}\nlaunch_template_id = \"lt-1\"\n\
                 launch_template_version = \"1\"\nmin_size = 1\nmax_size = 1\nvpc_zone_identifier = [\"subnet-1\"]\n"
            )
        };
        let scoped = |text: &str| {
            let spec = parse(text);
            let mut resources = crate::expand(&spec).unwrap();
            resources.extend(skyplan_engine::Spec::<SpecFile>::parse_with(source(text)).unwrap().resources);
            let doc = policy_for(&spec, &resources).unwrap();
            doc.statements
                .into_iter()
                .find(|s| s.action.contains(&"autoscaling:UpdateAutoScalingGroup".into()))
                .unwrap()
                .resource
        };
        let arn = |n: &str| format!("arn:*:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/{n}");
        assert_eq!(scoped(&raw("\"batch\"")), [arn("batch")]);
        assert_eq!(scoped(&format!("{}\n{}", fixtures::DEMO, raw("\"batch\""))), [arn("batch"), arn("demo-*")]);
        assert_eq!(scoped(&format!("{}\n{}", fixtures::DEMO, raw("\"demo-batch\""))), [arn("demo-*")]);
        assert_eq!(scoped(&raw("\"${aws_launch_template.x.name}\"")), [arn("*")]);
    }

    fn source(text: &str) -> skyplan_engine::Source {
        skyplan_engine::Source { path: "spec.toml".into(), text: text.to_string() }
    }

    #[test]
    fn service_linked_roles_only_for_the_services_in_use() {
        let doc = policy(fixtures::DEMO);
        let roles: Vec<(&Vec<String>, &Condition)> = doc
            .statements
            .iter()
            .filter(|s| s.action == ["iam:CreateServiceLinkedRole"])
            .map(|s| (&s.resource, s.condition.as_ref().expect("a service-linked role statement has a condition")))
            .collect();
        assert_eq!(roles.len(), 2);
        assert_eq!(
            roles[0].0,
            &["arn:*:iam::*:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
        );
        assert_eq!(roles[0].1["StringLike"]["iam:AWSServiceName"], "autoscaling.amazonaws.com");
        assert_eq!(roles[1].1["StringLike"]["iam:AWSServiceName"], "elasticloadbalancing.amazonaws.com");
        assert!(doc.statements.iter().all(|s| s.action != ["iam:CreateServiceLinkedRole"] || s.condition.is_some()));

        let only_network = "[resource.aws_vpc.main]\ncidr_block = \"10.0.0.0/16\"\n";
        let spec = skyplan_engine::Spec::<SpecFile>::parse_with(source(only_network)).unwrap();
        let doc = policy_for(&spec.file, &spec.resources).unwrap();
        assert!(!doc.actions().iter().any(|a| a.starts_with("iam:") || a.starts_with("autoscaling:")));
        assert!(doc.actions().contains("ec2:CreateVpc"));
    }

    #[test]
    fn the_shared_profiles_are_made_on_their_own_roles_only() {
        let doc = policy(fixtures::DEMO);
        let on = |action: &str| -> Vec<String> {
            doc.statements
                .iter()
                .filter(|s| s.action.iter().any(|a| a == action))
                .flat_map(|s| s.resource.clone())
                .collect()
        };
        let roles = [
            "arn:*:iam::*:role/control-plane.cluster-api-provider-aws.sigs.k8s.io".to_string(),
            "arn:*:iam::*:role/nodes.cluster-api-provider-aws.sigs.k8s.io".to_string(),
        ];
        for action in ["iam:CreateRole", "iam:AttachRolePolicy", "iam:GetRole", "iam:PassRole"] {
            assert_eq!(on(action), roles, "{action}");
        }
        for action in
            ["iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:CreatePolicy", "iam:GetInstanceProfile"]
        {
            assert_eq!(on(action), ["*"], "{action}");
        }
        // A pool's own profile is only looked up, and its unknown role passed.
        let own = policy(&edit(
            fixtures::DEMO,
            "instance_type = \"m5.xlarge\"",
            "instance_type = \"m5.xlarge\"\ninstance_profile = \"mine\"",
        ));
        assert!(own
            .statements
            .iter()
            .any(|s| s.action == ["iam:PassRole"] && s.resource.contains(&"arn:*:iam::*:role/*".to_string())));
        let no_nodes = !own
            .statements
            .iter()
            .any(|s| s.resource.iter().any(|r| r.ends_with("role/nodes.cluster-api-provider-aws.sigs.k8s.io")));
        assert!(no_nodes, "the workers' shared profile is not used");
        // No instances, no IAM.
        let only_network = "[resource.aws_vpc.main]\ncidr_block = \"10.0.0.0/16\"\n";
        let spec = skyplan_engine::Spec::<SpecFile>::parse_with(source(only_network)).unwrap();
        let doc = policy_for(&spec.file, &spec.resources).unwrap();
        assert!(!doc.actions().iter().any(|a| a.starts_with("iam:")));
        // The wait on the API server reads the cluster's PKI secret, and only it.
        let doc = policy(fixtures::DEMO);
        let reads: Vec<&Statement> =
            doc.statements.iter().filter(|s| s.action.contains(&"secretsmanager:GetSecretValue".to_string())).collect();
        // (The secrets kind reads its own three secrets too.)
        let resources: BTreeSet<&str> = reads.iter().flat_map(|s| &s.resource).map(String::as_str).collect();
        assert!(resources.contains("arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/demo/pki-*"), "{resources:?}");
        assert!(
            resources.iter().all(|r| r.starts_with("arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/demo/")),
            "{resources:?}"
        );
        // The roles get the seed's own documents.
        for name in ["Control Plane Policy", "Nodes Policy"] {
            assert!(seed_policy(name).unwrap()["Statement"].as_array().is_some_and(|s| !s.is_empty()), "{name}");
        }
    }

    #[test]
    fn a_role_to_assume_is_allowed_exactly() {
        let arn = "arn:aws:iam::123456789012:role/SpectroCloudRole";
        let text = format!("{}\n[account]\nrole_arn = \"{arn}\"\nexternal_id = \"from-the-ui\"\n", fixtures::DEMO);
        let doc = policy(&text);
        let sts: Vec<&Statement> = doc.statements.iter().filter(|s| s.action[0].starts_with("sts:")).collect();
        assert_eq!(sts.len(), 1);
        assert_eq!(sts[0].action, ["sts:AssumeRole"]);
        assert_eq!(sts[0].resource, [arn]);
    }

    /// A spot pool without `on_demand_price` has its price asked of the
    /// Price List API: `pricing:GetProducts` (a seed action), only then.
    #[test]
    fn the_price_list_api_only_for_a_spot_pool_without_its_price() {
        let spot = example("spot-pool.toml");
        assert!(policy(&spot).actions().contains("pricing:GetProducts"));
        let priced = edit(
            &spot,
            "spot = { max_price_percent = 60 }",
            "spot = { max_price_percent = 60, on_demand_price = 0.192 }",
        );
        assert!(!policy(&priced).actions().contains("pricing:GetProducts"));
        assert!(!policy(fixtures::DEMO).actions().contains("pricing:GetProducts"));
    }

    #[test]
    fn a_key_pair_is_checked_only_when_named() {
        assert!(policy(fixtures::DEMO).actions().contains("ec2:DescribeKeyPairs"), "DEMO sets ssh_key_name");
        let without = edit(fixtures::DEMO, "ssh_key_name = \"ops\"\n", "");
        assert!(!policy(&without).actions().contains("ec2:DescribeKeyPairs"));
    }

    #[test]
    fn only_the_types_present_are_granted() {
        let with_bastion = policy(fixtures::DEMO).actions().len();
        let no_bastion = policy(&demo_with("[bastion]", "[bastion]\nenabled = false"));
        // The bastion adds no type the control plane does not already use.
        assert_eq!(no_bastion.actions().len(), with_bastion);

        let sim = "[resource.sim_resource.a]\nsize = 3\n";
        let spec = skyplan_engine::Spec::<SpecFile>::parse_with(source(sim)).unwrap();
        let doc = policy_for(&spec.file, &spec.resources).unwrap();
        assert!(doc.statements.is_empty(), "the simulated cloud needs no AWS permission: {doc:?}");
    }

    #[test]
    fn an_unknown_aws_type_is_an_error_at_its_table() {
        let text = "[resource.aws_s3_bucket.logs]\nbucket = \"x\"\n";
        let spec = skyplan_engine::Spec::<SpecFile>::parse_with(source(text)).unwrap();
        let errs = policy_for(&spec.file, &spec.resources).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "resource.aws_s3_bucket.logs");
        assert!(errs[0].message.contains("aws_s3_bucket"), "{}", errs[0].message);
    }

    #[test]
    fn the_document_round_trips_as_json() {
        let doc = policy(fixtures::DEMO);
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let back: PolicyDocument = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
        assert!(doc.size() < text.len(), "size does not count whitespace");
        assert!(doc.size() <= MANAGED_POLICY_LIMIT, "a whole cluster fits one managed policy: {}", doc.size());
    }

    /// (action, resource, condition) triples: what a set of documents allows.
    fn grants(docs: &[PolicyDocument]) -> BTreeSet<(String, Vec<String>, Option<Condition>)> {
        docs.iter()
            .flat_map(|d| &d.statements)
            .flat_map(|s| s.action.iter().map(|a| (a.clone(), s.resource.clone(), s.condition.clone())))
            .collect()
    }

    #[test]
    fn split_documents_fit_and_allow_exactly_the_same() {
        let arn = "arn:aws:iam::123456789012:role/SpectroCloudRole";
        let text = format!("{}\n[account]\nrole_arn = \"{arn}\"\nexternal_id = \"from-the-ui\"\n", fixtures::DEMO);
        let doc = policy(&text);
        for limit in [MANAGED_POLICY_LIMIT, 2048, 1000, 600, 400] {
            let parts = split(&doc, limit);
            assert!(!parts.is_empty());
            for (i, part) in parts.iter().enumerate() {
                assert!(part.size() <= limit, "limit {limit}: part {i} is {} characters", part.size());
                assert_eq!(part.version, VERSION);
                assert!(part.statements.iter().all(|s| !s.action.is_empty()));
            }
            assert_eq!(grants(&parts), grants(std::slice::from_ref(&doc)), "limit {limit}");
            let union: BTreeSet<&str> = parts.iter().flat_map(|p| p.actions()).collect();
            assert_eq!(union, doc.actions());
            if doc.size() > limit {
                assert!(parts.len() > 1, "limit {limit}");
            }
        }
        assert_eq!(split(&doc, MANAGED_POLICY_LIMIT), vec![doc.clone()], "what fits stays one document");
        assert!(split(&PolicyDocument::new(Vec::new()), MANAGED_POLICY_LIMIT).is_empty());
    }

    #[test]
    fn split_cuts_a_statement_too_big_for_one_document() {
        let actions: Vec<String> = (0..400).map(|i| format!("ec2:DescribeSomethingNumber{i:03}")).collect();
        let doc = PolicyDocument::new(vec![
            Statement {
                sid: None,
                effect: Effect::Allow,
                action: vec!["autoscaling:X".into()],
                resource: vec!["*".into()],
                condition: None,
            },
            Statement {
                sid: None,
                effect: Effect::Allow,
                action: actions,
                resource: vec!["*".into()],
                condition: None,
            },
        ]);
        assert!(doc.size() > MANAGED_POLICY_LIMIT);
        let parts = split(&doc, MANAGED_POLICY_LIMIT);
        assert!(parts.len() >= 3, "{} parts", parts.len());
        for part in &parts {
            assert!(part.size() <= MANAGED_POLICY_LIMIT, "{}", part.size());
        }
        assert_eq!(grants(&parts), grants(&[doc]));
        // A limit below one action's document still terminates, one action a document.
        let tiny = PolicyDocument::new(vec![Statement {
            sid: None,
            effect: Effect::Allow,
            action: vec!["ec2:A".into(), "ec2:B".into()],
            resource: vec!["*".into()],
            condition: None,
        }]);
        assert_eq!(split(&tiny, 10).len(), 2);
    }
}
