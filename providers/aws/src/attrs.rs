//! Attributes in and out: each kind's attribute table ([`KindSpec`]), and
//! the helpers that read typed values from `Attrs` and shape what a read
//! returns.
//!
//! A kind's table (docs/aws-resources.md in code) gives each attribute its
//! type, whether it is required, whether a change forces replacement, and its
//! default. From it come the kind's [`Schema`], [`KindSpec::validate`], and
//! [`KindSpec::shape`], which makes a read comparable with the inputs:
//!
//! - an attribute the prior attributes (the inputs, as recorded) have is
//!   reported with its live value;
//! - one they lack is reported only when it has a default and the live value
//!   differs from it (drift on an attribute the user left at its default);
//!   otherwise it is left out, so an unchanged resource diffs clean;
//! - lists AWS returns in its own order are put back in the prior order when
//!   they hold the same items ([`order_like`]).

use std::collections::BTreeSet;

use serde_json::Value;
use skyplan_engine::{Attrs, ProviderError, Schema, UNKNOWN};

/// The type of one attribute.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Bool,
    Int,
    StrList,
    /// A table of string to string (`tags`).
    StrMap,
    /// A table with these fields.
    Object(&'static [Field]),
    /// A list of tables with these fields.
    Objects(&'static [Field]),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub replace: bool,
    /// AWS refuses to delete what this attribute names while this resource
    /// names it (the engine's `Schema::holds`).
    pub holds: bool,
    /// The value an absent attribute means, as JSON text.
    pub default: Option<&'static str>,
    /// AWS's limit on the value: characters of a string (bytes of user
    /// data), entries of a list or table; with where AWS says so.
    pub at_most: Option<(usize, &'static str)>,
}

impl Field {
    pub const fn new(name: &'static str, ty: Ty) -> Self {
        Field { name, ty, required: false, replace: false, holds: false, default: None, at_most: None }
    }
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub const fn replace(mut self) -> Self {
        self.replace = true;
        self
    }
    pub const fn holds(mut self) -> Self {
        self.holds = true;
        self
    }
    /// AWS's limit on the value, and where AWS gives it (the message says both).
    pub const fn at_most(mut self, limit: usize, source: &'static str) -> Self {
        self.at_most = Some((limit, source));
        self
    }
    pub const fn default(mut self, json: &'static str) -> Self {
        self.default = Some(json);
        self
    }
}

/// `tags`, which every kind has.
pub(crate) const TAGS: Field =
    Field::new("tags", Ty::StrMap).default("{}").at_most(50, "EC2 tag restrictions: 50 tags per resource");

#[derive(Debug)]
pub(crate) struct KindSpec {
    pub kind: &'static str,
    pub fields: &'static [Field],
    pub computed: &'static [&'static str],
    /// Names or address ranges AWS keeps exclusive (the engine's
    /// `Schema::exclusive`).
    pub exclusive: bool,
}

impl KindSpec {
    pub fn schema(&self) -> Schema {
        Schema {
            replace_on: self.fields.iter().filter(|f| f.replace).map(|f| f.name.to_string()).collect(),
            computed: self.computed.iter().map(|s| s.to_string()).collect(),
            holds: self.fields.iter().filter(|f| f.holds).map(|f| f.name.to_string()).collect(),
            exclusive: self.exclusive,
        }
    }

    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Type and presence checks; each message names the attribute. Values
    /// that are still references (`${...}`) or unknown are not checked.
    pub fn validate(&self, attrs: &Attrs) -> Vec<String> {
        let mut errors = Vec::new();
        check_fields(self.fields, attrs, "", self.computed, &mut errors);
        if let Some(Value::Object(tags)) = attrs.get("tags") {
            for (key, value) in tags {
                if key.chars().count() > 128 {
                    errors
                        .push(format!("tag key `{key}` is longer than 128 characters, AWS's limit (tag restrictions)"));
                }
                if value.as_str().is_some_and(|v| v.chars().count() > 256) {
                    errors.push(format!(
                        "the value of tag `{key}` is longer than 256 characters, AWS's limit (tag restrictions)"
                    ));
                }
            }
        }
        for key in attrs.keys() {
            if self.computed.contains(&key.as_str()) && self.field(key).is_none() {
                errors.push(format!("`{key}` is computed by AWS and cannot be set"));
            }
        }
        errors
    }

    /// The live attributes as a read reports them, given the prior ones
    /// (see the module comment).
    pub fn shape(&self, prior: &Attrs, live: Attrs) -> Attrs {
        live.into_iter()
            .filter(|(k, v)| {
                if self.computed.contains(&k.as_str()) || prior.contains_key(k) {
                    return true;
                }
                match self.field(k).and_then(|f| f.default) {
                    Some(default) => !is_default(v, default),
                    None => false,
                }
            })
            .collect()
    }

    /// The attribute's value, or its default when absent.
    pub fn value_or_default(&self, attrs: &Attrs, name: &str) -> Value {
        match attrs.get(name) {
            Some(v) if !v.is_null() => v.clone(),
            _ => self.field(name).and_then(|f| f.default).map(parse_default).unwrap_or(Value::Null),
        }
    }
}

fn parse_default(json: &'static str) -> Value {
    serde_json::from_str(json).expect("defaults in the kind tables are valid JSON")
}

fn is_default(value: &Value, default: &'static str) -> bool {
    value.is_null() || *value == parse_default(default)
}

fn is_pending(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.contains("${") || s == UNKNOWN)
}

/// Check `attrs` against `fields`; keys in `reported_elsewhere` are not "unknown".
fn check_fields(fields: &[Field], attrs: &Attrs, prefix: &str, reported_elsewhere: &[&str], errors: &mut Vec<String>) {
    for f in fields {
        match attrs.get(f.name) {
            None | Some(Value::Null) if f.required => errors.push(format!("`{prefix}{}` is required", f.name)),
            None | Some(Value::Null) => {}
            Some(v) => {
                let path = format!("{prefix}{}", f.name);
                check_type(f.ty, v, &path, errors);
                if let Some((limit, source)) = f.at_most {
                    check_limit(v, limit, source, &path, errors);
                }
            }
        }
    }
    for key in attrs.keys() {
        if !fields.iter().any(|f| f.name == key) && !reported_elsewhere.contains(&key.as_str()) {
            let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
            errors.push(format!("unknown attribute `{prefix}{key}` (expected one of: {})", known.join(", ")));
        }
    }
}

/// A value over AWS's limit: the limit and its source in the message.
fn check_limit(v: &Value, limit: usize, source: &str, path: &str, errors: &mut Vec<String>) {
    if is_pending(v) {
        return;
    }
    let (size, unit) = match v {
        Value::String(s) if path.ends_with("user_data") => (s.len(), "bytes"),
        Value::String(s) => (s.chars().count(), "characters"),
        Value::Array(items) => (items.len(), "entries"),
        Value::Object(map) => (map.len(), "entries"),
        _ => return,
    };
    if size > limit {
        errors.push(format!("`{path}` has {size} {unit}; AWS allows at most {limit} ({source})"));
    }
}

fn check_type(ty: Ty, v: &Value, path: &str, errors: &mut Vec<String>) {
    if is_pending(v) {
        return;
    }
    let ok = match (ty, v) {
        (Ty::Str, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => true,
        (Ty::Int, Value::Number(n)) => n.is_i64(),
        (Ty::StrList, Value::Array(items)) => {
            for (n, item) in items.iter().enumerate() {
                if !item.is_string() {
                    errors.push(format!("`{path}[{n}]` must be a string"));
                }
            }
            true
        }
        (Ty::StrMap, Value::Object(map)) => {
            for (k, item) in map {
                if !item.is_string() && !is_pending(item) {
                    errors.push(format!("`{path}.{k}` must be a string"));
                }
            }
            true
        }
        (Ty::Object(fields), Value::Object(map)) => {
            check_fields(fields, map, &format!("{path}."), &[], errors);
            true
        }
        (Ty::Objects(fields), Value::Array(items)) => {
            for (n, item) in items.iter().enumerate() {
                match item {
                    Value::Object(map) => check_fields(fields, map, &format!("{path}[{n}]."), &[], errors),
                    _ if is_pending(item) => {}
                    _ => errors.push(format!("`{path}[{n}]` must be a table")),
                }
            }
            true
        }
        _ => false,
    };
    if !ok {
        let expected = match ty {
            Ty::Str => "a string",
            Ty::Bool => "true or false",
            Ty::Int => "an integer",
            Ty::StrList => "a list of strings",
            Ty::StrMap => "a table of strings",
            Ty::Object(_) => "a table",
            Ty::Objects(_) => "a list of tables",
        };
        errors.push(format!("`{path}` must be {expected}, not {v}"));
    }
}

// ---- Reading typed values; errors name the attribute ----

fn bad(name: &str, expected: &str, v: &Value) -> ProviderError {
    ProviderError::new(format!("`{name}` must be {expected}, not {v}"))
}

/// A string attribute known at plan time: present, not unknown, no
/// reference left in it.
pub(crate) fn known_str<'a>(attrs: &'a Attrs, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(|v| v.as_str()).filter(|s| !s.contains("${") && *s != skyplan_engine::UNKNOWN)
}

pub(crate) fn req_str<'a>(attrs: &'a Attrs, name: &str) -> Result<&'a str, ProviderError> {
    match attrs.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ProviderError::new(format!("`{name}` is required"))),
        Some(v) => Err(bad(name, "a string", v)),
    }
}

pub(crate) fn opt_str<'a>(attrs: &'a Attrs, name: &str) -> Result<Option<&'a str>, ProviderError> {
    match attrs.get(name) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(v) => Err(bad(name, "a string", v)),
    }
}

pub(crate) fn bool_or(attrs: &Attrs, name: &str, default: bool) -> Result<bool, ProviderError> {
    match attrs.get(name) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Ok(default),
        Some(v) => Err(bad(name, "true or false", v)),
    }
}

pub(crate) fn opt_bool(attrs: &Attrs, name: &str) -> Result<Option<bool>, ProviderError> {
    match attrs.get(name) {
        Some(Value::Bool(b)) => Ok(Some(*b)),
        None | Some(Value::Null) => Ok(None),
        Some(v) => Err(bad(name, "true or false", v)),
    }
}

pub(crate) fn opt_int(attrs: &Attrs, name: &str) -> Result<Option<i64>, ProviderError> {
    match attrs.get(name) {
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        None | Some(Value::Null) => Ok(None),
        Some(v) => Err(bad(name, "an integer", v)),
    }
}

pub(crate) fn req_int(attrs: &Attrs, name: &str) -> Result<i64, ProviderError> {
    opt_int(attrs, name)?.ok_or_else(|| ProviderError::new(format!("`{name}` is required")))
}

/// An `i32` API field (ports, sizes, counts).
pub(crate) fn req_i32(attrs: &Attrs, name: &str) -> Result<i32, ProviderError> {
    let n = req_int(attrs, name)?;
    i32::try_from(n).map_err(|_| ProviderError::new(format!("`{name}` = {n} is out of range")))
}

pub(crate) fn opt_i32(attrs: &Attrs, name: &str) -> Result<Option<i32>, ProviderError> {
    match opt_int(attrs, name)? {
        None => Ok(None),
        Some(n) => {
            i32::try_from(n).map(Some).map_err(|_| ProviderError::new(format!("`{name}` = {n} is out of range")))
        }
    }
}

pub(crate) fn str_list(attrs: &Attrs, name: &str) -> Result<Vec<String>, ProviderError> {
    match attrs.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(name, "a list of strings", &Value::Array(items.clone())))
            })
            .collect(),
        Some(v) => Err(bad(name, "a list of strings", v)),
    }
}

pub(crate) fn objects<'a>(attrs: &'a Attrs, name: &str) -> Result<Vec<&'a Attrs>, ProviderError> {
    match attrs.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            items.iter().map(|i| i.as_object().ok_or_else(|| bad(name, "a list of tables", i))).collect()
        }
        Some(v) => Err(bad(name, "a list of tables", v)),
    }
}

pub(crate) fn id(attrs: &Attrs) -> Result<&str, ProviderError> {
    match attrs.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s != UNKNOWN => Ok(s),
        _ => Err(ProviderError::new("the state has no `id` for this resource")),
    }
}

pub(crate) fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> Value {
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}

/// `live` in the order of `prior`'s list when both hold the same strings;
/// otherwise the items still in `prior` in its order, then the new ones
/// sorted (a stable, readable diff).
pub(crate) fn order_like(prior: Option<&Value>, live: Vec<String>) -> Value {
    let prior: Vec<&str> = match prior {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let live_set: BTreeSet<&str> = live.iter().map(String::as_str).collect();
    let mut out: Vec<String> = Vec::new();
    for p in &prior {
        if live_set.contains(p) && !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    }
    let mut rest: Vec<String> = live.iter().filter(|l| !prior.contains(&l.as_str())).cloned().collect();
    rest.sort();
    rest.dedup();
    out.extend(rest);
    strings(out)
}

/// Objects of `live` in the order of equal objects in `prior` (by `same`),
/// with the prior object itself standing for its live equal so an unchanged
/// list reads back exactly as written; the rest after, in live order.
pub(crate) fn objects_like(prior: &[&Attrs], live: Vec<Attrs>, same: impl Fn(&Attrs, &Attrs) -> bool) -> Value {
    let mut remaining = live;
    let mut out = Vec::new();
    for p in prior {
        if let Some(pos) = remaining.iter().position(|l| same(p, l)) {
            remaining.remove(pos);
            out.push(Value::Object((*p).clone()));
        }
    }
    out.extend(remaining.into_iter().map(Value::Object));
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RULE: &[Field] = &[Field::new("port", Ty::Int).required(), Field::new("cidrs", Ty::StrList)];
    const SPEC: KindSpec = KindSpec {
        kind: "aws_thing",
        fields: &[
            Field::new("name", Ty::Str).required().replace(),
            Field::new("enabled", Ty::Bool).default("true"),
            Field::new("size", Ty::Int),
            Field::new("rules", Ty::Objects(RULE)),
            TAGS,
        ],
        computed: &["id", "arn"],
        exclusive: false,
    };

    #[test]
    fn values_over_awss_limits_name_the_limit_and_its_source() {
        const LIMITED: KindSpec = KindSpec {
            kind: "aws_thing",
            fields: &[
                Field::new("name", Ty::Str).at_most(5, "CreateThing: Name"),
                Field::new("user_data", Ty::Str).at_most(4, "user data"),
                TAGS,
            ],
            computed: &["id"],
            exclusive: false,
        };
        assert!(LIMITED.validate(&attrs(json!({"name": "abcde", "user_data": "abcd"}))).is_empty());
        // Characters for names, bytes for user data.
        let errors = LIMITED.validate(&attrs(json!({"name": "abcdéf", "user_data": "ééx"})));
        assert_eq!(
            errors,
            [
                "`name` has 6 characters; AWS allows at most 5 (CreateThing: Name)",
                "`user_data` has 5 bytes; AWS allows at most 4 (user data)",
            ]
        );
        let many: serde_json::Map<String, Value> = (0..51).map(|n| (format!("k{n}"), json!("v"))).collect();
        let errors = LIMITED.validate(&attrs(json!({ "tags": many })));
        assert_eq!(
            errors,
            ["`tags` has 51 entries; AWS allows at most 50 (EC2 tag restrictions: 50 tags per resource)"]
        );
        let long = attrs(json!({"tags": {"k".repeat(129): "v", "ok": "v".repeat(257)}}));
        let errors = LIMITED.validate(&long);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("longer than 128 characters")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("longer than 256 characters")), "{errors:?}");
        // A reference is not measured.
        assert!(LIMITED.validate(&attrs(json!({"name": "${aws_vpc.main.id}"}))).is_empty());
    }

    fn attrs(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn schema_from_the_table() {
        let s = SPEC.schema();
        assert_eq!(s.replace_on.into_iter().collect::<Vec<_>>(), ["name"]);
        assert_eq!(s.computed.into_iter().collect::<Vec<_>>(), ["arn", "id"]);
    }

    #[test]
    fn validate_names_each_bad_attribute() {
        let errs = SPEC.validate(&attrs(json!({
            "enabled": "yes", "size": 1.5, "colour": "red", "id": "x",
            "rules": [{"port": "22"}, {"cidrs": ["a", 1]}, 3],
            "tags": {"a": 1}
        })));
        let want = [
            "`name` is required",
            "`enabled` must be true or false, not \"yes\"",
            "`size` must be an integer, not 1.5",
            "`rules[0].port` must be an integer, not \"22\"",
            "`rules[1].port` is required",
            "`rules[1].cidrs[1]` must be a string",
            "`rules[2]` must be a table",
            "`tags.a` must be a string",
            "unknown attribute `colour`",
            "`id` is computed by AWS and cannot be set",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errs:#?}");
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
    }

    #[test]
    fn validate_skips_references_and_unknowns() {
        let errs = SPEC.validate(&attrs(json!({"name": "${aws_x.y.name}", "size": "${aws_x.y.n}", "rules": UNKNOWN})));
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn shape_reports_inputs_and_drift_from_defaults_only() {
        let prior = attrs(json!({"name": "a", "size": 3}));
        let live = attrs(json!({"id": "t-1", "name": "a", "size": 4, "enabled": true, "rules": [], "tags": {}}));
        assert_eq!(SPEC.shape(&prior, live), attrs(json!({"id": "t-1", "name": "a", "size": 4})));
        let drifted = attrs(json!({"id": "t-1", "name": "a", "enabled": false, "tags": {"x": "y"}}));
        assert_eq!(
            SPEC.shape(&prior, drifted),
            attrs(json!({"id": "t-1", "name": "a", "enabled": false, "tags": {"x": "y"}}))
        );
    }

    #[test]
    fn lists_keep_the_prior_order() {
        let prior = json!(["b", "a", "c"]);
        assert_eq!(order_like(Some(&prior), vec!["a".into(), "b".into(), "c".into()]), json!(["b", "a", "c"]));
        assert_eq!(
            order_like(Some(&prior), vec!["z".into(), "c".into(), "a".into(), "y".into()]),
            json!(["a", "c", "y", "z"])
        );
        assert_eq!(order_like(None, vec!["b".into(), "a".into()]), json!(["a", "b"]));
    }
}
