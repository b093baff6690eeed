//! Attribute values and `${TYPE.NAME[KEY].ATTR}` references.
//!
//! A resource's attributes are a JSON object (`Attrs`). A string may refer to
//! another resource's attribute with `${...}`; a string that is exactly one
//! reference takes the referenced value whole (a list stays a list), a string
//! with text around references is interpolated. `$${` is a literal `${`.
//!
//! A value that is not known until apply (the `id` of a resource not yet
//! created) is the string [`UNKNOWN`], which is also how the contract's JSON
//! shows it. Specs may not contain that string literally (see `spec`).

use serde_json::Value;

use crate::address::Address;

pub type Attrs = serde_json::Map<String, Value>;

/// The placeholder for a value that apply will compute.
pub const UNKNOWN: &str = "(known after apply)";

pub fn unknown() -> Value {
    Value::String(UNKNOWN.to_string())
}

/// True when the value is, or contains, an unknown.
pub fn contains_unknown(value: &Value) -> bool {
    match value {
        Value::String(s) => s == UNKNOWN,
        Value::Array(items) => items.iter().any(contains_unknown),
        Value::Object(map) => map.values().any(contains_unknown),
        _ => false,
    }
}

/// `${TYPE.NAME[KEY].ATTR}`: the attribute `attr` of the resource at `target`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    pub target: Address,
    pub attr: String,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${{{}.{}}}", self.target, self.attr)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("unterminated `${{` in {0:?}")]
    Unterminated(String),
    #[error("`${{{0}}}` is not a reference (expected ${{TYPE.NAME.ATTR}} or ${{TYPE.NAME[KEY].ATTR}})")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Ref(Reference),
}

fn parse_reference(inner: &str) -> Result<Reference, ReferenceError> {
    let malformed = || ReferenceError::Malformed(inner.to_string());
    // The attribute is what follows the last dot outside the key brackets.
    let split = match inner.rfind(']') {
        Some(close) => close + 1 + inner[close + 1..].find('.').ok_or_else(malformed)?,
        None => inner.rfind('.').ok_or_else(malformed)?,
    };
    let (target, attr) = (&inner[..split], &inner[split + 1..]);
    let target: Address = target.parse().map_err(|_| malformed())?;
    let attr_ok = !attr.is_empty() && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !attr_ok || (target.key.is_none() && !target.name.chars().all(|c| c != '[')) {
        return Err(malformed());
    }
    Ok(Reference { target, attr: attr.to_string() })
}

fn parse_template(s: &str) -> Result<Vec<Segment>, ReferenceError> {
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            // `$${` is a literal `${`.
            text.push_str(&rest[..pos - 1]);
            text.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        text.push_str(&rest[..pos]);
        let end = rest[pos..].find('}').ok_or_else(|| ReferenceError::Unterminated(s.to_string()))?;
        if !text.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut text)));
        }
        segments.push(Segment::Ref(parse_reference(&rest[pos + 2..pos + end])?));
        rest = &rest[pos + end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    Ok(segments)
}

/// Every reference in a value, in order of appearance.
pub fn references(value: &Value) -> Result<Vec<Reference>, ReferenceError> {
    let mut out = Vec::new();
    collect(value, &mut out)?;
    Ok(out)
}

fn collect(value: &Value, out: &mut Vec<Reference>) -> Result<(), ReferenceError> {
    match value {
        Value::String(s) if s.contains("${") => {
            for seg in parse_template(s)? {
                if let Segment::Ref(r) = seg {
                    out.push(r);
                }
            }
        }
        Value::Array(items) => items.iter().try_for_each(|v| collect(v, out))?,
        Value::Object(map) => map.values().try_for_each(|v| collect(v, out))?,
        _ => {}
    }
    Ok(())
}

/// Replace every reference with the value `lookup` gives for it. A lookup
/// that yields [`UNKNOWN`] makes a whole-string reference unknown and an
/// interpolated string unknown. References must have been validated first
/// (`references` succeeded); a malformed one is left as written.
pub fn resolve(value: &Value, lookup: &mut dyn FnMut(&Reference) -> Value) -> Value {
    match value {
        Value::String(s) if s.contains("${") => {
            let Ok(segments) = parse_template(s) else {
                return value.clone();
            };
            if let [Segment::Ref(r)] = segments.as_slice() {
                return lookup(r);
            }
            let mut out = String::new();
            for seg in segments {
                match seg {
                    Segment::Text(t) => out.push_str(&t),
                    Segment::Ref(r) => match lookup(&r) {
                        Value::String(s) if s == UNKNOWN => return unknown(),
                        Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, lookup)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), resolve(v, lookup))).collect()),
        other => other.clone(),
    }
}

/// `resolve` over every attribute of a resource.
pub fn resolve_attrs(attrs: &Attrs, lookup: &mut dyn FnMut(&Reference) -> Value) -> Attrs {
    attrs.iter().map(|(k, v)| (k.clone(), resolve(v, lookup))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refs(v: Value) -> Vec<String> {
        references(&v).unwrap().iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn finds_references_anywhere() {
        let v = json!({"a": "${aws_vpc.main.id}", "b": ["x-${aws_subnet.private[us-east-1a].id}-y"], "c": 3});
        assert_eq!(refs(v), ["${aws_vpc.main.id}", "${aws_subnet.private[us-east-1a].id}"]);
    }

    #[test]
    fn dollar_dollar_is_literal() {
        assert!(refs(json!("$${not.a.ref}")).is_empty());
        let v = resolve(&json!("$${x}"), &mut |_| unreachable!());
        assert_eq!(v, json!("${x}"));
    }

    #[test]
    fn malformed_references_are_errors() {
        for s in ["${aws_vpc.main}", "${aws_vpc}", "${a.b[c].}", "${a.b.c", "${a.b[x.y}"] {
            assert!(references(&json!(s)).is_err(), "{s} should be an error");
        }
    }

    #[test]
    fn keys_may_contain_dots() {
        let r = references(&json!("${aws_instance.cp[a.b].id}")).unwrap();
        assert_eq!(r[0].target.key.as_deref(), Some("a.b"));
        assert_eq!(r[0].attr, "id");
    }

    #[test]
    fn whole_reference_keeps_type_interpolation_stringifies() {
        let mut lookup = |r: &Reference| {
            if r.attr == "ids" {
                json!(["a", "b"])
            } else {
                json!(7)
            }
        };
        assert_eq!(resolve(&json!("${x.y.ids}"), &mut lookup), json!(["a", "b"]));
        assert_eq!(resolve(&json!("n=${x.y.n}"), &mut lookup), json!("n=7"));
    }

    #[test]
    fn unknown_spreads_to_interpolated_strings() {
        let mut lookup = |_: &Reference| unknown();
        assert_eq!(resolve(&json!("vpc-${x.y.id}"), &mut lookup), unknown());
        assert!(contains_unknown(&resolve(&json!({"l": ["${x.y.id}"]}), &mut lookup)));
    }
}
