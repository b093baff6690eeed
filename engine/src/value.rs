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

use crate::address::{byte_find, byte_rfind, Address};

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

/// The target's text and the attribute of `${TARGET.ATTR}`'s inside, borrowed;
/// None when it is not a reference.
fn split_reference(inner: &str) -> Option<(&str, &str)> {
    // The attribute is what follows the last dot outside the key brackets.
    let split = match byte_rfind(inner, b']') {
        Some(close) => close + 1 + byte_find(&inner[close + 1..], b'.')?,
        None => byte_rfind(inner, b'.')?,
    };
    let (target, attr) = (&inner[..split], &inner[split + 1..]);
    let (_, name, key) = crate::address::parse_parts(target)?;
    let attr_ok = !attr.is_empty() && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !attr_ok || (key.is_none() && !name.chars().all(|c| c != '[')) {
        return None;
    }
    Some((target, attr))
}

fn parse_reference(inner: &str) -> Result<Reference, ReferenceError> {
    let (target, attr) = split_reference(inner).ok_or_else(|| ReferenceError::Malformed(inner.to_string()))?;
    let (kind, name, key) = crate::address::parse_parts(target).expect("split_reference checked it");
    let target = Address { kind: kind.to_string(), name: name.to_string(), key: key.map(str::to_string) };
    Ok(Reference { target, attr: attr.to_string() })
}

/// Where the first `${` starts: `str::find("${")`, by a byte search for `$`
/// (most strings hold none), which is cheaper than a substring search.
fn find_open(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'$') {
        let at = from + at;
        if bytes.get(at + 1) == Some(&b'{') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A piece of a template string, borrowed from it.
enum Piece<'s> {
    /// Literal text (`$${` already turned into `${`).
    Text(&'s str),
    /// The inside of a `${...}`, not yet checked.
    Ref(&'s str),
}

/// Walk a template string's pieces in order, without allocating.
fn scan<'s>(s: &'s str, on: &mut dyn FnMut(Piece<'s>) -> Result<(), ReferenceError>) -> Result<(), ReferenceError> {
    let mut rest = s;
    while let Some(pos) = find_open(rest) {
        if rest[..pos].ends_with('$') {
            // `$${` is a literal `${`.
            on(Piece::Text(&rest[..pos - 1]))?;
            on(Piece::Text("${"))?;
            rest = &rest[pos + 2..];
            continue;
        }
        on(Piece::Text(&rest[..pos]))?;
        let end = byte_find(&rest[pos..], b'}').ok_or_else(|| ReferenceError::Unterminated(s.to_string()))?;
        on(Piece::Ref(&rest[pos + 2..pos + end]))?;
        rest = &rest[pos + end + 1..];
    }
    on(Piece::Text(rest))
}

fn parse_template(s: &str) -> Result<Vec<Segment>, ReferenceError> {
    let mut segments = Vec::new();
    let mut text = String::new();
    scan(s, &mut |piece| {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Ref(inner) => {
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Ref(parse_reference(inner)?));
            }
        }
        Ok(())
    })?;
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
        Value::String(s) if find_open(s).is_some() => {
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

/// Check every reference in a value as [`references`] does (same first
/// error), without building them.
pub fn check_references(value: &Value) -> Result<(), ReferenceError> {
    match value {
        Value::String(s) if find_open(s).is_some() => scan(s, &mut |piece| match piece {
            Piece::Text(_) => Ok(()),
            Piece::Ref(inner) => match split_reference(inner) {
                Some(_) => Ok(()),
                None => Err(ReferenceError::Malformed(inner.to_string())),
            },
        }),
        Value::Array(items) => items.iter().try_for_each(check_references),
        Value::Object(map) => map.values().try_for_each(check_references),
        _ => Ok(()),
    }
}

/// A value's references parsed once (by the graph), so resolving it again
/// and again needs no parsing. References are numbers into the list
/// [`Template::compile`] filled.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// Nothing to resolve: the value as written.
    Literal,
    /// A string that is exactly one reference: that value, whole.
    Whole(usize),
    /// A string of text and references (or only `$${` escapes), interpolated.
    Interpolated(Vec<Part>),
    Array(Vec<Template>),
    /// The members' templates, in the object's order.
    Object(Vec<Template>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Ref(usize),
}

impl Template {
    /// Parse a value's references, appending them to `refs` in order of
    /// appearance (what [`references`] returns).
    pub fn compile(value: &Value, refs: &mut Vec<Reference>) -> Result<Template, ReferenceError> {
        Ok(match value {
            Value::String(s) if find_open(s).is_some() => {
                let mut parts = Vec::new();
                for seg in parse_template(s)? {
                    parts.push(match seg {
                        Segment::Text(t) => Part::Text(t),
                        Segment::Ref(r) => {
                            refs.push(r);
                            Part::Ref(refs.len() - 1)
                        }
                    });
                }
                match parts.as_slice() {
                    [Part::Ref(i)] => Template::Whole(*i),
                    _ => Template::Interpolated(parts),
                }
            }
            Value::Array(items) => {
                let items = items.iter().map(|v| Template::compile(v, refs)).collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(|t| *t == Template::Literal) {
                    Template::Literal
                } else {
                    Template::Array(items)
                }
            }
            Value::Object(map) => {
                let members = map.values().map(|v| Template::compile(v, refs)).collect::<Result<Vec<_>, _>>()?;
                if members.iter().all(|t| *t == Template::Literal) {
                    Template::Literal
                } else {
                    Template::Object(members)
                }
            }
            _ => Template::Literal,
        })
    }

    /// What [`resolve`] gives for `value` (the value this was compiled
    /// from), with `lookup` answering by reference number.
    pub fn resolve(&self, value: &Value, lookup: &mut dyn FnMut(usize) -> Value) -> Value {
        match (self, value) {
            (Template::Whole(i), _) => lookup(*i),
            (Template::Interpolated(parts), _) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Ref(i) => match lookup(*i) {
                            Value::String(s) if s == UNKNOWN => return unknown(),
                            Value::String(s) => out.push_str(&s),
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(out)
            }
            (Template::Array(items), Value::Array(values)) => {
                Value::Array(items.iter().zip(values).map(|(t, v)| t.resolve(v, lookup)).collect())
            }
            (Template::Object(members), Value::Object(map)) => {
                Value::Object(members.iter().zip(map).map(|(t, (k, v))| (k.clone(), t.resolve(v, lookup))).collect())
            }
            _ => value.clone(),
        }
    }
}

/// Replace every reference with the value `lookup` gives for it. A lookup
/// that yields [`UNKNOWN`] makes a whole-string reference unknown and an
/// interpolated string unknown. References must have been validated first
/// (`references` succeeded); a malformed one is left as written.
pub fn resolve(value: &Value, lookup: &mut dyn FnMut(&Reference) -> Value) -> Value {
    match value {
        Value::String(s) if find_open(s).is_some() => {
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
    fn templates_resolve_as_resolve_does() {
        let answer = |r: &Reference| match r.attr.as_str() {
            "id" => unknown(),
            "n" => json!(7),
            _ => json!(["l"]),
        };
        let values = [
            json!("${a.b.id}"),
            json!("${a.b.list}"),
            json!("x-${a.b.n}-y"),
            json!("x-${a.b.id}"),
            json!("$${literal}"),
            json!("plain"),
            json!(["${a.b.n}", 3, {"k": "v=${a.b[k.1].n}", "m": "$${x}"}]),
            json!({"a": 1, "b": [true, null]}),
            json!("pre ${a.b.n} $${x} ${a.c.list}"),
        ];
        for v in values {
            let mut refs = Vec::new();
            let template = Template::compile(&v, &mut refs).unwrap();
            assert_eq!(refs, references(&v).unwrap(), "{v}");
            assert_eq!(template.resolve(&v, &mut |i| answer(&refs[i])), resolve(&v, &mut |r| answer(r)), "{v}");
        }
    }

    #[test]
    fn check_references_gives_the_errors_references_gives() {
        for s in ["${aws_vpc.main}", "${a.b.c", "ok ${a.b.c} then ${bad}", "${a.b[x.y}", "${a.b.c}", "$${x}", "plain"] {
            let v = json!({"k": [s]});
            assert_eq!(check_references(&v), references(&v).map(|_| ()), "{s}");
        }
    }

    #[test]
    fn unknown_spreads_to_interpolated_strings() {
        let mut lookup = |_: &Reference| unknown();
        assert_eq!(resolve(&json!("vpc-${x.y.id}"), &mut lookup), unknown());
        assert!(contains_unknown(&resolve(&json!({"l": ["${x.y.id}"]}), &mut lookup)));
    }
}
