//! Reading a spec: TOML text -> raw [`Resource`]s plus the top-level tables
//! a provider crate contributes.
//!
//! This module owns the file format and its errors (file, line, column).
//! It knows one table itself, `[resource.TYPE.NAME]`. Every other top-level
//! table belongs to a provider crate, which names them with a serde type
//! (`T` of [`Spec::parse_with`]): its keys and types are checked by serde
//! with the same file:line:column errors, and a table no one declared is an
//! error. The engine does not know what those tables mean: expanding them
//! into resources is a blueprint's job (the AWS one is
//! `skyplan-aws-blueprint`), which reports problems as [`SpecError`]s with
//! key paths that [`Source::locate`] places.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::address::{is_ident, Address};
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::resource::Resource;
use crate::value::{self, Attrs, UNKNOWN};

/// A spec file's path and text, kept to point errors at lines and columns.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A problem with the spec, at a key path such as `node_pool[1].size` or
/// `resource.sim_resource.b.parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub key: String,
    pub message: String,
    pub help: Option<String>,
}

impl SpecError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError { key: key.into(), message: message.into(), help: None }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A parsed spec: its raw resources plus the tables of type `T` a provider
/// crate contributed (none by default).
#[derive(Debug, Clone)]
pub struct Spec<T = NoTables> {
    pub source: Source,
    /// The provider crate's top-level tables, typed.
    pub file: T,
    /// The `[resource.TYPE.NAME]` tables, with `depends_on` taken out.
    pub resources: Vec<Resource>,
}

/// A spec format with no tables but `[resource.TYPE.NAME]`: any other
/// top-level key is an error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoTables {}

/// The engine's own table, read apart from the provider crate's ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceTables {
    #[serde(default)]
    resource: BTreeMap<String, BTreeMap<String, Attrs>>,
}

impl Source {
    pub fn read(path: &Path) -> Result<Source, Diagnostics> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostic::new(Location::None, format!("cannot read spec {}: {e}", path.display())))?;
        Ok(Source { path: path.to_path_buf(), text })
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// Where a key path is written in the file: the deepest part of the path
    /// that exists (so a missing key points at its table).
    pub fn locate(&self, key: &str) -> Option<(usize, usize)> {
        let doc = toml_edit::Document::parse(self.text.as_str()).ok()?;
        let mut best: Option<Range<usize>> = None;
        let mut item: Option<&toml_edit::Item> = None;
        let mut table: Option<&toml_edit::Table> = Some(doc.as_table());
        let mut value: Option<&toml_edit::Value> = None;
        for (name, index) in parse_key_path(key) {
            if !name.is_empty() {
                let next = if let Some(t) = table {
                    if let Some(k) = t.key(&name) {
                        best = k.span().or(best);
                    }
                    t.get(&name)
                } else if let Some(toml_edit::Value::InlineTable(t)) = value {
                    if let Some(k) = t.key(&name) {
                        best = k.span().or(best);
                    }
                    value = t.get(&name);
                    table = None;
                    item = None;
                    if value.is_none() {
                        break;
                    }
                    if let Some(i) = index {
                        value = value.and_then(|v| v.as_array()).and_then(|a| a.get(i));
                        best = value.and_then(|v| v.span()).or(best);
                    }
                    continue;
                } else {
                    break;
                };
                let Some(next) = next else { break };
                item = Some(next);
                table = next.as_table();
                value = next.as_value();
            }
            if let Some(i) = index {
                match item {
                    Some(toml_edit::Item::ArrayOfTables(arr)) => {
                        let Some(t) = arr.get(i) else { break };
                        best = t.span().or(best);
                        table = Some(t);
                        value = None;
                    }
                    _ => {
                        let Some(v) = value.and_then(|v| v.as_array()).and_then(|a| a.get(i)) else {
                            break;
                        };
                        best = v.span().or(best);
                        value = Some(v);
                        table = None;
                    }
                }
                item = None;
            }
        }
        best.map(|r| self.line_col(r.start))
    }

    /// Turn a key-path error into a diagnostic that names file, line and column.
    pub fn diagnostic(&self, err: &SpecError) -> Diagnostic {
        let location = match self.locate(&err.key) {
            Some((line, column)) => Location::File { path: self.path.clone(), line, column },
            None => Location::Key { path: self.path.clone(), key: err.key.clone() },
        };
        let message = if err.key.is_empty() { err.message.clone() } else { format!("{}: {}", err.key, err.message) };
        Diagnostic { location, message, help: err.help.clone() }
    }

    /// Place diagnostics that name a raw resource (`[resource.TYPE.NAME]`)
    /// at its line and column in this file, at the attribute the message
    /// is about when it names one; add a "did you mean" when the message
    /// lists the right names. Others are left as they are.
    pub fn place(&self, diagnostics: Diagnostics) -> Diagnostics {
        let doc = toml_edit::Document::parse(self.text.as_str()).ok();
        let placed = diagnostics
            .0
            .into_iter()
            .map(|mut d| {
                if d.help.is_none() {
                    d.help = crate::diagnostic::suggestion(&d.message);
                }
                let Location::Address(address) = &d.location else { return d };
                let Some(doc) = &doc else { return d };
                let Some(table) = doc
                    .get("resource")
                    .and_then(|t| t.get(&address.kind))
                    .and_then(|t| t.get(&address.name))
                    .filter(|_| address.key.is_none())
                else {
                    return d;
                };
                let attr = attribute_named(&d.message);
                let span = attr
                    .and_then(|a| table.as_table_like().and_then(|t| t.get_key_value(a)).and_then(|(k, _)| k.span()))
                    .or_else(|| table.as_table().and_then(|t| t.span()));
                if let Some(span) = span {
                    let (line, column) = self.line_col(span.start);
                    d.message = format!("{address}: {}", d.message);
                    d.location = Location::File { path: self.path.clone(), line, column };
                }
                d
            })
            .collect();
        Diagnostics(placed)
    }

    pub fn diagnostics(&self, errs: &[SpecError]) -> Diagnostics {
        Diagnostics(errs.iter().map(|e| self.diagnostic(e)).collect())
    }
}

/// The attribute a resource diagnostic is about: `ATTR refers to ...`,
/// `ATTR: ...`, `unknown attribute `ATTR``, or `` `ATTR` is required``.
fn attribute_named(message: &str) -> Option<&str> {
    if let Some(rest) = message.split_once("unknown attribute `").map(|(_, r)| r) {
        return rest.split('`').next().map(|a| a.split('.').next().unwrap_or(a));
    }
    if let Some(rest) = message.strip_prefix('`') {
        return rest.split('`').next().map(|a| a.split('.').next().unwrap_or(a));
    }
    let first = message.split([' ', ':']).next()?;
    let named = message[first.len()..].starts_with(" refers to") || message[first.len()..].starts_with(": ");
    (named && is_ident(first)).then_some(first)
}

/// `a.b[2].c` -> [("a", None), ("b", Some(2)), ("c", None)].
fn parse_key_path(key: &str) -> Vec<(String, Option<usize>)> {
    key.split('.')
        .filter(|s| !s.is_empty())
        .map(|part| match part.split_once('[') {
            Some((name, rest)) => (name.to_string(), rest.trim_end_matches(']').parse().ok()),
            None => (part.to_string(), None),
        })
        .collect()
}

impl Spec {
    /// A spec of raw resources only.
    pub fn load(path: &Path) -> Result<Spec, Diagnostics> {
        Spec::parse(Source::read(path)?)
    }

    pub fn parse(source: Source) -> Result<Spec, Diagnostics> {
        Spec::parse_with(source)
    }
}

impl<T: DeserializeOwned> Spec<T> {
    /// A spec whose top-level tables besides `resource` are `T`'s.
    pub fn load_with(path: &Path) -> Result<Spec<T>, Diagnostics> {
        Spec::parse_with(Source::read(path)?)
    }

    pub fn parse_with(source: Source) -> Result<Spec<T>, Diagnostics> {
        let toml_error = |e: toml::de::Error| {
            let location = match e.span() {
                Some(span) => {
                    let (line, column) = source.line_col(span.start);
                    Location::File { path: source.path.clone(), line, column }
                }
                None => Location::Key { path: source.path.clone(), key: String::new() },
            };
            let message = e.message().trim().to_string();
            let help = crate::diagnostic::toml_hint(&message);
            Diagnostic::new(location, message).with_help(help)
        };
        // One parse, split at the top level: `resource` is the engine's, the
        // rest the provider crate's. Both halves keep the spans of the text.
        let root = toml::de::DeTable::parse(&source.text).map_err(toml_error)?;
        let span = root.span();
        let (ours, theirs): (Vec<_>, Vec<_>) =
            root.into_inner().into_iter().partition(|(k, _)| k.get_ref() == "resource");
        let half = |entries: Vec<_>| {
            toml::de::Deserializer::from(toml::Spanned::new(span.clone(), entries.into_iter().collect()))
        };
        let file = T::deserialize(half(theirs)).map_err(toml_error)?;
        let tables = ResourceTables::deserialize(half(ours)).map_err(toml_error)?;
        let mut errors = Vec::new();
        let mut resources = Vec::new();
        for (kind, by_name) in tables.resource {
            for (name, attrs) in by_name {
                if !is_ident(&kind) || !is_ident(&name) {
                    errors.push(SpecError::new(
                        format!("resource.{kind}.{name}"),
                        "resource type and name must start with a letter and hold only letters, digits, `_` and `-`",
                    ));
                    continue;
                }
                match raw_resource(Address::new(&kind, name), attrs) {
                    Ok(r) => resources.push(r),
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        if !errors.is_empty() {
            return Err(source.diagnostics(&errors));
        }
        Ok(Spec { source, file, resources })
    }
}

fn raw_resource(address: Address, mut attrs: Attrs) -> Result<Resource, Vec<SpecError>> {
    let mut errors = Vec::new();
    // The key path of errors, made only when there is one.
    let key = || format!("resource.{}.{}", address.kind, address.name);
    let mut depends_on = Vec::new();
    if let Some(deps) = attrs.remove("depends_on") {
        match deps {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().map(str::parse::<Address>) {
                        Some(Ok(a)) => depends_on.push(a),
                        _ => errors.push(
                            SpecError::new(
                                format!("{}.depends_on[{i}]", key()),
                                format!("{item} is not a resource address"),
                            )
                            .with_help("write addresses as strings: depends_on = [\"TYPE.NAME\"]"),
                        ),
                    }
                }
            }
            other => errors.push(SpecError::new(
                format!("{}.depends_on", key()),
                format!("must be a list of addresses, not {other}"),
            )),
        }
    }
    for (name, v) in &attrs {
        if let Err(e) = value::check_references(v) {
            errors.push(SpecError::new(format!("{}.{name}", key()), e.to_string()));
        }
        if value::contains_unknown(v) {
            errors.push(SpecError::new(
                format!("{}.{name}", key()),
                format!("the text {UNKNOWN:?} is reserved for computed values"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(Resource { address, attrs, depends_on, rolling_group: None })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec, Diagnostics> {
        Spec::parse(Source { path: "spec.toml".into(), text: text.to_string() })
    }

    #[test]
    fn raw_resources_with_depends_on() {
        let spec = parse(
            "[resource.sim_resource.a]\nsize = 3\n[resource.sim_resource.b]\nparent = \"${sim_resource.a.id}\"\ndepends_on = [\"sim_resource.a\"]\n",
        )
        .unwrap();
        assert_eq!(spec.resources.len(), 2);
        assert_eq!(spec.resources[1].depends_on, vec![Address::new("sim_resource", "a")]);
        assert!(!spec.resources[1].attrs.contains_key("depends_on"));
    }

    /// A provider crate's tables, as the AWS blueprint's are declared.
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tables {
        cluster: Option<Cluster>,
        #[serde(default)]
        node_pool: Vec<Pool>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cluster {
        name: String,
        region: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Pool {
        name: String,
        size: u32,
    }

    fn parse_tables(text: &str) -> Result<Spec<Tables>, Diagnostics> {
        Spec::parse_with(Source { path: "spec.toml".into(), text: text.to_string() })
    }

    #[test]
    fn contributed_tables_beside_raw_resources() {
        let spec =
            parse_tables("[cluster]\nname = \"demo\"\nregion = \"r\"\n[resource.sim_resource.a]\nsize = 1\n").unwrap();
        assert_eq!(spec.file.cluster.unwrap().name, "demo");
        assert_eq!(spec.resources.len(), 1);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse_tables("[cluster]\nname = \"demo\"\nregion = \"us-east-1\"\nflavour = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("spec.toml:4:1:"), "{text}");
        assert!(text.contains("flavour"), "{text}");
    }

    #[test]
    fn undeclared_table_is_an_error_at_its_line() {
        let err = parse("[resource.sim_resource.a]\nsize = 1\n\n[cluster]\nname = \"demo\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("spec.toml:4:"), "{text}");
        assert!(text.contains("cluster"), "{text}");
    }

    #[test]
    fn wrong_type_names_line_and_column() {
        let err = parse_tables("[[node_pool]]\nname = \"w\"\nsize = \"three\"\n").unwrap_err();
        assert!(err.to_string().starts_with("spec.toml:3:8:"), "{err}");
        let err = parse("[resource]\nsim_resource = 3\n").unwrap_err();
        assert!(err.to_string().starts_with("spec.toml:2:"), "{err}");
    }

    #[test]
    fn bad_reference_is_located() {
        let err = parse("[resource.sim_resource.a]\n\nparent = \"${nope}\"\n").unwrap_err();
        assert!(err.to_string().starts_with("spec.toml:3:1:"), "{err}");
    }

    #[test]
    fn locate_walks_arrays_of_tables_and_inline_values() {
        let src = Source {
            path: "s.toml".into(),
            text: "[placement]\nazs = [\"a\", \"b\"]\n\n[[node_pool]]\nname = \"cp\"\n\n[[node_pool]]\nname = \"w\"\nsize = 2\nspot = { max_price_percent = 60 }\n".into(),
        };
        assert_eq!(src.locate("placement.azs[1]"), Some((2, 13)));
        assert_eq!(src.locate("node_pool[1].size"), Some((9, 1)));
        assert_eq!(src.locate("node_pool[1].spot.max_price_percent"), Some((10, 10)));
        // A missing key points at the deepest part that exists.
        assert_eq!(src.locate("node_pool[1].disk_gib"), Some((7, 1)));
    }

    #[test]
    fn reserved_unknown_text_is_rejected() {
        let err = parse("[resource.sim_resource.a]\nx = \"(known after apply)\"\n").unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }
}
