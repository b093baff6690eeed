//! User-facing errors about input: where (file, line, column, or a resource
//! address) and what to do.
//!
//! Everything that rejects a spec or a state before any cloud call returns
//! `Diagnostic`s, so the CLI prints them the same way and exits 1.

use std::fmt;
use std::path::PathBuf;

use crate::address::Address;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A place in a file (1-based line and column).
    File {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// A key path in the spec that could not be placed in the source
    /// (`node_pool[1].size`).
    Key {
        path: PathBuf,
        key: String,
    },
    Address(Address),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Diagnostic { location, message: message.into(), help: None }
    }

    pub fn at_address(address: &Address, message: impl Into<String>) -> Self {
        Diagnostic::new(Location::Address(address.clone()), message)
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { path, line, column } => write!(f, "{}:{line}:{column}: ", path.display())?,
            Location::Key { path, key } => write!(f, "{}: {key}: ", path.display())?,
            Location::Address(a) => write!(f, "{a}: ")?,
            Location::None => {}
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// A list of diagnostics as one error value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// The candidate closest to `wrong`, when one is close enough to be a typo
/// of it (Jaro-Winkler similarity of at least 0.8, or a small edit
/// distance for short names): for "did you mean ...?" hints.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        if c == wrong {
            continue;
        }
        let score = strsim::jaro_winkler(wrong, c);
        let close = score >= 0.8 || strsim::levenshtein(wrong, c) <= wrong.len().min(c.len()) / 4 + 1;
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// A "did you mean" for the messages that name a wrong key or value and
/// list the right ones: the provider's `unknown attribute `X` (expected one
/// of: a, b)` and serde's `unknown field `X`, expected one of `a`, `b``
/// (also `unknown variant`).
pub fn suggestion(message: &str) -> Option<String> {
    for (marker, list_start) in [
        ("unknown attribute `", "expected one of: "),
        ("unknown field `", "expected one of "),
        ("unknown variant `", "expected one of "),
    ] {
        let Some(at) = message.find(marker) else { continue };
        let rest = &message[at + marker.len()..];
        let wrong = &rest[..rest.find('`')?];
        let list = &rest[rest.find(list_start)? + list_start.len()..];
        let candidates: Vec<&str> = list
            .split(',')
            .map(|c| c.trim().trim_end_matches(')').trim_matches('`'))
            .filter(|c| !c.is_empty())
            .collect();
        // The last segment of a dotted key (`tags.nmae`) is what was typed.
        let typed = wrong.rsplit('.').next().unwrap_or(wrong);
        return did_you_mean(typed, candidates).map(|m| format!("did you mean `{m}`?"));
    }
    None
}

/// A hint for a TOML error: the likely fix for a syntax error, or the
/// spec reference for a key or type error.
pub fn toml_hint(message: &str) -> String {
    if let Some(s) = suggestion(message) {
        return s;
    }
    let m = message.to_ascii_lowercase();
    if m.contains("invalid type") || m.contains("missing field") || m.contains("unknown") {
        return "see the spec reference in docs/spec.md for the keys and their types".to_string();
    }
    if m.contains("duplicate key") || m.contains("redefin") {
        return "each key and table may appear once; merge the two".to_string();
    }
    if m.contains("unterminated") || m.contains("string") || m.contains("invalid basic") {
        return "strings are written in double quotes on one line (\"...\"), or in triple quotes (\"\"\"...\"\"\") across lines".to_string();
    }
    if m.contains("invalid table header") || m.contains("`]`") {
        return "a table header is a dotted key in brackets: [resource.TYPE.NAME] or [[node_pool]]".to_string();
    }
    if m.contains("expected `.`, `=`")
        || m.contains("expected `=`")
        || m.contains("invalid key")
        || m.contains("invalid unquoted key")
    {
        return "a line is `key = value`: a bare key (letters, digits, `_`, `-`) or a quoted one, then `=`, then a value".to_string();
    }
    if m.contains("expected") && (m.contains("value") || m.contains("`,`")) {
        return "values are strings in quotes, numbers, true/false, [lists] or { inline = \"tables\" }; list items are separated by commas".to_string();
    }
    "this is TOML syntax (https://toml.io): check the line above it for an unclosed quote, bracket or brace".to_string()
}

#[cfg(test)]
mod tests {
    use super::{did_you_mean, suggestion, toml_hint};

    #[test]
    fn messages_that_list_the_right_names_get_a_suggestion() {
        assert_eq!(
            suggestion("unknown attribute `descripton` (expected one of: vpc_id, description, name)").as_deref(),
            Some("did you mean `description`?")
        );
        assert_eq!(
            suggestion("unknown field `flavor`, expected one of `name`, `region`, `flavour`").as_deref(),
            Some("did you mean `flavour`?")
        );
        assert_eq!(suggestion("unknown field `zzzz`, expected one of `name`"), None);
        assert!(
            toml_hint("invalid string\nexpected `\"`").contains("double quotes"),
            "{}",
            toml_hint("invalid string")
        );
        assert!(toml_hint("expected `.`, `=`").contains("key = value"));
    }

    #[test]
    fn near_misses_get_a_suggestion_and_strangers_none() {
        let names = ["sim_resource.net", "sim_resource.subnet", "sim_resource.node"];
        assert_eq!(did_you_mean("sim_resource.nett", names), Some("sim_resource.net"));
        assert_eq!(did_you_mean("descripton", ["description", "vpc_id", "name"]), Some("description"));
        assert_eq!(did_you_mean("depend_on", ["depends_on"]), Some("depends_on"));
        assert_eq!(did_you_mean("zzz", ["description", "vpc_id"]), None);
    }
}
