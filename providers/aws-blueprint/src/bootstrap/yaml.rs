//! YAML rendered by hand, for the small subset kubeadm configuration and
//! cloud-config need; every string that YAML 1.1 (cloud-init's PyYAML) or
//! YAML 1.2 (kubeadm's sigs.k8s.io/yaml) might read as something else (a
//! number, a boolean, a time) is double-quoted.

use serde_json::Value;

/// A YAML document in the order it is written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Yaml {
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    /// Already in YAML form (quoted where needed).
    Scalar(String),
}

pub(crate) fn text(s: &str) -> Yaml {
    Yaml::Scalar(scalar(s))
}

/// An empty map (`{}`) or list (`[]`).
pub(crate) fn empty_map() -> Yaml {
    Yaml::Map(Vec::new())
}

pub(crate) fn list(items: impl IntoIterator<Item = Yaml>) -> Yaml {
    Yaml::List(items.into_iter().collect())
}

pub(crate) fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Yaml)>) -> Yaml {
    Yaml::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// JSON values (pack values) with their map keys sorted, whatever order
/// serde_json keeps them in.
impl From<&Value> for Yaml {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => Yaml::Scalar("null".into()),
            Value::Bool(b) => Yaml::Scalar(b.to_string()),
            Value::Number(n) => Yaml::Scalar(n.to_string()),
            Value::String(s) => text(s),
            Value::Array(items) => Yaml::List(items.iter().map(Yaml::from).collect()),
            Value::Object(entries) => {
                let mut entries: Vec<(String, Yaml)> =
                    entries.iter().map(|(k, v)| (k.clone(), Yaml::from(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Yaml::Map(entries)
            }
        }
    }
}

impl Yaml {
    /// A non-empty map or list, which takes lines of its own.
    fn is_block(&self) -> bool {
        match self {
            Yaml::Map(entries) => !entries.is_empty(),
            Yaml::List(items) => !items.is_empty(),
            Yaml::Scalar(_) => false,
        }
    }

    /// The value on its key's or dash's line: a scalar, `{}` or `[]`.
    fn inline(&self) -> &str {
        match self {
            Yaml::Map(_) => "{}",
            Yaml::List(_) => "[]",
            Yaml::Scalar(s) => s,
        }
    }

    /// The lines of a block collection at `indent`.
    /// The document's lines.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    pub(crate) fn write(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        match self {
            Yaml::Map(entries) => {
                for (key, value) in entries {
                    if value.is_block() {
                        out.push_str(&format!("{pad}{}:\n", scalar(key)));
                        value.write(out, indent + 2);
                    } else {
                        out.push_str(&format!("{pad}{}: {}\n", scalar(key), value.inline()));
                    }
                }
            }
            Yaml::List(items) => {
                for item in items {
                    if item.is_block() {
                        // Written two deeper, then the dash takes the place
                        // of the first line's indentation.
                        let mut nested = String::new();
                        item.write(&mut nested, indent + 2);
                        out.push_str(&format!("{pad}- {}", &nested[indent + 2..]));
                    } else {
                        out.push_str(&format!("{pad}- {}\n", item.inline()));
                    }
                }
            }
            Yaml::Scalar(s) => out.push_str(&format!("{pad}{s}\n")),
        }
    }
}

/// A string as a YAML scalar: plain when it cannot be read as anything but
/// that string, double-quoted (JSON escapes are valid YAML) otherwise.
pub(crate) fn scalar(s: &str) -> String {
    if is_plain(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string always serializes")
    }
}

/// Starts with a letter, holds only letters, digits and `_ . / -`, and is
/// not one of YAML 1.1's words for booleans, null and special floats.
fn is_plain(s: &str) -> bool {
    const WORDS: [&str; 10] = ["y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan"];
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_and_tricky_strings() {
        let values = serde_json::json!({
            "list": [1, "two", {"b": true, "a": null}, [], ["x"]],
            "empty": {},
            "word": "yes",
            "time": "22:22",
            "number": "1e3",
            "template": "${HOME}/bin",
            "multi": "a\nb",
            "key with space": "plain-text_1.2/x",
        });
        let mut out = String::new();
        Yaml::from(&values).write(&mut out, 0);
        let expected = r#"empty: {}
"key with space": plain-text_1.2/x
list:
  - 1
  - two
  - a: null
    b: true
  - []
  - - x
multi: "a\nb"
number: "1e3"
template: "${HOME}/bin"
time: "22:22"
word: "yes"
"#;
        assert_eq!(out, expected);
    }
}
