//! Errors about input, printed as a compiler prints them: the place
//! (`file:line:column:`) and the message, the source line with a caret
//! under the token, and the help; or as JSON for `--json` commands.

use std::fmt::Write;

use serde_json::{json, Value};
use skyplan_engine::{Diagnostic, Location};

use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::render::Style;

/// One diagnostic for people. The source line is read from the file the
/// location names; when it cannot be, the location alone is printed.
pub fn render(d: &Diagnostic, severity: &str, style: Style) -> String {
    let label =
        if severity == "error" { style.red(&style.bold("error:")) } else { style.yellow(&style.bold("warning:")) };
    let mut out = String::new();
    match &d.location {
        Location::File { path, line, column } => {
            // `file:line:column: message` on the first line, as compilers
            // and editors expect it, then the line itself.
            let _ = writeln!(out, "{label} {}:{line}:{column}: {}", path.display(), d.message);
            if let Some(text) =
                std::fs::read_to_string(path).ok().and_then(|t| t.lines().nth(line - 1).map(str::to_string))
            {
                let number = line.to_string();
                let pad = " ".repeat(number.len());
                let before: String =
                    text.chars().take(column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
                let width = token_width(&text, *column);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{number} | {text}");
                let _ = writeln!(out, "{pad} | {before}{}", style.red(&"^".repeat(width)));
            }
        }
        Location::Key { path, key } if key.is_empty() => {
            let _ = writeln!(out, "{label} {}: {}", path.display(), d.message);
        }
        Location::Key { path, key } => {
            let _ = writeln!(out, "{label} {}: {key}: {}", path.display(), d.message);
        }
        Location::Address(a) => {
            let _ = writeln!(out, "{label} {a}: {}", d.message);
        }
        Location::None => {
            let _ = writeln!(out, "{label} {}", d.message);
        }
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "  = help: {help}");
    }
    out
}

/// Keys on a raw resource that look like a misspelt meta-argument
/// (`depend_on` for `depends_on`): kept as attributes, since a raw
/// resource may hold any, but most likely a mistake worth a warning.
pub fn lint(spec: &AwsSpec) -> Vec<Diagnostic> {
    const META: &[&str] = &["depends_on"];
    let source = &spec.spec.source;
    let mut warnings = Vec::new();
    for r in &spec.resources {
        for key in r.attrs.keys() {
            let Some(meant) = skyplan_engine::diagnostic::did_you_mean(key, META.iter().copied()) else { continue };
            let path = format!("resource.{}.{}.{key}", r.address.kind, r.address.name);
            let location = match source.locate(&path) {
                Some((line, column)) => Location::File { path: source.path.clone(), line, column },
                None => Location::Address(r.address.clone()),
            };
            warnings.push(
                Diagnostic::new(
                    location,
                    format!("{}: `{key}` is kept as an attribute, not read as `{meant}`", r.address),
                )
                .with_help(format!("did you mean `{meant}`?")),
            );
        }
    }
    warnings
}

/// Print the spec's warnings on stderr.
pub fn warn_about(spec: &AwsSpec, style: Style) {
    for w in lint(spec) {
        eprint!("{}", render(&w, "warning", style));
    }
}

/// How many characters the token at a 1-based column spans: a quoted
/// string, a bare key or word, else one character.
fn token_width(line: &str, column: usize) -> usize {
    let rest: Vec<char> = line.chars().skip(column.saturating_sub(1)).collect();
    match rest.first() {
        None => 1,
        Some('"') => rest[1..].iter().position(|&c| c == '"').map_or(rest.len(), |end| end + 2),
        Some(_) => rest.iter().take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')).count().max(1),
    }
}

/// A diagnostic as JSON, in the shape of Terraform's `diagnostic` object:
/// `severity`, `summary`, `detail` (the help), and `range` / `address`
/// when it has a place.
pub fn to_json(d: &Diagnostic) -> Value {
    let mut v = json!({"severity": "error", "summary": d.message, "detail": d.help.clone().unwrap_or_default()});
    match &d.location {
        Location::File { path, line, column } => {
            v["range"] = json!({"filename": path.display().to_string(), "start": {"line": line, "column": column}});
        }
        Location::Key { path, key } => {
            v["range"] = json!({"filename": path.display().to_string(), "key": key});
        }
        Location::Address(a) => v["address"] = a.to_string().into(),
        Location::None => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_cover_the_token() {
        assert_eq!(token_width("flavour = 1", 1), 7);
        assert_eq!(token_width("size = \"three\"", 8), 7);
        assert_eq!(token_width("x = [", 5), 1);
        assert_eq!(token_width("", 1), 1);
    }
}
