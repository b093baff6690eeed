//! The user data of cluster nodes: a `#cloud-config` document that writes
//! the node's configuration (cluster, role, taints, the profile's packs with
//! their merged values) to `/etc/skyplan/node.yaml` for the bootstrapper.
//!
//! Plans show user data as a line diff, so the text is deterministic and one
//! value a line: the blueprint's own sections in reading order, the keys of
//! pack values sorted, packs in layer order. It holds no `${...}` references:
//! a `${` in a pack value is written `$${`, which the engine passes through
//! as a literal `${`.
//!
//! YAML is rendered here by hand, for the small subset JSON values need;
//! every string that YAML 1.1 (cloud-init's PyYAML) might read as something
//! else (a number, a boolean, a time) is double-quoted.

use serde_json::Value;

use crate::cluster::{layer_name, Cluster};
use crate::names;

/// Where the node configuration is written on the instance.
pub const NODE_CONFIG_PATH: &str = "/etc/skyplan/node.yaml";
/// The taint that keeps workloads off control-plane nodes.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";
/// The node label that names a node's pool.
pub const POOL_LABEL: &str = "skyplan.io/pool";

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ControlPlane { allow_workloads: bool },
    Worker,
}

/// The user data of the nodes of `pool`.
pub fn render(cluster: &Cluster, pool: &str, role: Role) -> String {
    let role_name = match role {
        Role::ControlPlane { .. } => "control-plane",
        Role::Worker => "worker",
    };
    let mut node = vec![("role", text(role_name)), ("pool", text(pool))];
    let mut taints = Vec::new();
    if let Role::ControlPlane { allow_workloads } = role {
        node.push(("allow_workloads", Yaml::Scalar(allow_workloads.to_string())));
        if !allow_workloads {
            taints.push(text(CONTROL_PLANE_TAINT));
        }
    }
    node.push(("labels", map([(POOL_LABEL, text(pool))])));
    node.push(("taints", Yaml::List(taints)));

    let mut config = vec![
        (
            "cluster",
            map([
                ("name", text(&cluster.name)),
                ("region", text(&cluster.region)),
                (
                    "apiserver",
                    map([
                        ("load_balancer", text(&names::apiserver_elb(&cluster.name))),
                        ("port", Yaml::Scalar(cluster.api_port.to_string())),
                    ]),
                ),
            ]),
        ),
        ("node", map(node)),
    ];
    if let Some(profile) = &cluster.profile {
        let packs = profile.packs.iter().map(|pack| {
            map([
                ("name", text(&pack.name)),
                ("layer", text(layer_name(pack.layer))),
                ("version", text(&pack.version)),
                ("values", Yaml::from(&Value::Object(pack.values.clone()))),
            ])
        });
        config.push(("profile", map([("name", text(&profile.name)), ("packs", Yaml::List(packs.collect()))])));
    }
    let mut content = String::new();
    map(config).write(&mut content, 0);

    let mut out = String::new();
    out.push_str("#cloud-config\n");
    out.push_str(&format!("# skyplan: a {role_name} node of pool {pool} in cluster {}\n", cluster.name));
    out.push_str("write_files:\n");
    out.push_str(&format!("  - path: {NODE_CONFIG_PATH}\n"));
    out.push_str("    owner: root:root\n");
    out.push_str("    permissions: \"0600\"\n");
    out.push_str("    content: |\n");
    for line in content.lines() {
        out.push_str("      ");
        out.push_str(line);
        out.push('\n');
    }
    // The engine reads `${` as a reference; `$${` is its literal form.
    out.replace("${", "$${")
}

/// A YAML document in the order it is written.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    /// Already in YAML form (quoted where needed).
    Scalar(String),
}

fn text(s: &str) -> Yaml {
    Yaml::Scalar(scalar(s))
}

fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Yaml)>) -> Yaml {
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
    fn write(&self, out: &mut String, indent: usize) {
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
    use crate::fixtures;
    use crate::validate::validate;

    fn demo() -> Cluster {
        validate(&fixtures::parse(fixtures::DEMO)).unwrap().unwrap()
    }

    fn control_plane(cluster: &Cluster) -> String {
        render(cluster, "master", Role::ControlPlane { allow_workloads: false })
    }

    #[test]
    fn control_plane_document() {
        let expected = r#"#cloud-config
# skyplan: a control-plane node of pool master in cluster demo
write_files:
  - path: /etc/skyplan/node.yaml
    owner: root:root
    permissions: "0600"
    content: |
      cluster:
        name: demo
        region: us-east-1
        apiserver:
          load_balancer: demo-apiserver
          port: 6443
      node:
        role: control-plane
        pool: master
        allow_workloads: false
        labels:
          skyplan.io/pool: master
        taints:
          - "node-role.kubernetes.io/control-plane:NoSchedule"
      profile:
        name: ubuntu-k8s
        packs:
          - name: ubuntu
            layer: os
            version: "22.04"
            values: {}
          - name: kubernetes
            layer: k8s
            version: "1.30.4"
            values:
              pod_cidr: "172.16.0.0/16"
              service_cidr: "10.96.0.0/12"
          - name: calico
            layer: cni
            version: "3.28.0"
            values:
              mtu: 1440
"#;
        assert_eq!(control_plane(&demo()), expected);
    }

    #[test]
    fn is_deterministic() {
        let cluster = demo();
        assert_eq!(control_plane(&cluster), control_plane(&demo()));
        // The pack values' key order in the spec does not matter.
        let reordered = fixtures::DEMO.replace(
            "values = { pod_cidr = \"192.168.0.0/16\", service_cidr = \"10.96.0.0/12\" }",
            "values = { service_cidr = \"10.96.0.0/12\", pod_cidr = \"192.168.0.0/16\" }",
        );
        assert_ne!(reordered, fixtures::DEMO);
        let other = validate(&fixtures::parse(&reordered)).unwrap().unwrap();
        assert_eq!(control_plane(&cluster), control_plane(&other));
    }

    #[test]
    fn carries_override_values_not_the_pack_defaults() {
        let text = control_plane(&demo());
        assert!(text.contains("pod_cidr: \"172.16.0.0/16\""), "{text}");
        assert!(!text.contains("192.168.0.0/16"), "{text}");
    }

    #[test]
    fn workloads_and_workers_have_no_control_plane_taint() {
        let cluster = demo();
        let allowed = render(&cluster, "master", Role::ControlPlane { allow_workloads: true });
        assert!(allowed.contains("allow_workloads: true\n"), "{allowed}");
        assert!(allowed.contains("taints: []\n"), "{allowed}");
        assert!(!allowed.contains(CONTROL_PLANE_TAINT));
        let worker = render(&cluster, "gpu", Role::Worker);
        assert!(worker.contains("role: worker\n") && worker.contains("skyplan.io/pool: gpu\n"), "{worker}");
        assert!(!worker.contains("allow_workloads"), "{worker}");
        assert!(!worker.contains(CONTROL_PLANE_TAINT));
    }

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

    #[test]
    fn template_text_is_not_a_reference() {
        let spec = fixtures::DEMO.replace("mtu = 1440", "mtu = 1440, script = \"${HOME}/run\"");
        let cluster = validate(&fixtures::parse(&spec)).unwrap().unwrap();
        let text = control_plane(&cluster);
        assert!(text.contains("$${HOME}/run"), "{text}");
        let value = Value::String(text);
        assert!(skyplan_engine::value::references(&value).unwrap().is_empty());
        let resolved = skyplan_engine::value::resolve(&value, &mut |_| unreachable!());
        assert!(resolved.as_str().unwrap().contains("\"${HOME}/run\""));
    }
}
