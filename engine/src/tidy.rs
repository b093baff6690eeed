//! Architecture invariants as tests, as rust-analyzer's `xtask/src/tidy.rs`
//! (here among the engine's unit tests, which build in seconds, though they
//! check the whole workspace; `cargo test -p skyplan-engine tidy::`):
//! what docs/architecture.md calls an "Architecture invariant" is checked
//! here, so the document and the code cannot drift apart.
//!
//! - The engine's code names no AWS concept (`region`, `vpc`, `subnet`,
//!   `ami`, `aws_` types, `role_arn`, ...), and the engine and state crates
//!   depend, directly or through any crate (read from `Cargo.lock`), on no
//!   provider crate and not on the AWS SDK.
//! - The binary (`src/`) does not route on resource-type names or prefixes
//!   (`"aws_"`, `"sim_resource"`): which types a provider serves is that
//!   provider crate's knowledge.
//! - `providers/aws`'s plumbing imports none of its kinds and nothing that
//!   sits above them (the registry, the provider).
//! - No crate of the workspace has an import circle between its modules:
//!   among the modules of one parent, `use crate::…`, `super::…` and inline
//!   `crate::…` paths form no cycle. No crate is skipped.
//!
//! The scan reads code with comments removed, and leaves out test code
//! (`#[cfg(test)] mod … { … }` and modules declared `#[cfg(test)]`): test
//! fixtures may name things as they like. It is a scanner, not a compiler;
//! its own tests at the end hold it to what it must see.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Words that are AWS concepts, matched against the words of identifiers
/// and string literals (`vpc_id` and `VpcId` both hold `vpc`).
const AWS_WORDS: &[&str] = &[
    "aws",
    "amazon",
    "region",
    "regions",
    "vpc",
    "vpcs",
    "subnet",
    "subnets",
    "ami",
    "amis",
    "ec2",
    "elb",
    "elbv2",
    "autoscaling",
    "asg",
    "iam",
    "arn",
    "arns",
    "sts",
    "s3",
    "cidr",
    "spot",
    "nat",
    "igw",
    "eip",
];

/// Phrases of generic words that together are AWS concepts.
const AWS_PHRASES: &[&str] = &[
    "instance_type",
    "external_id",
    "security_group",
    "launch_template",
    "internet_gateway",
    "route_table",
    "load_balancer",
    "availability_zone",
    "key_pair",
    "instance_profile",
];

/// The workspace's root (this crate is `engine/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `text` with comments replaced by spaces (newlines kept, so line numbers
/// hold); string and char literals are kept.
fn strip_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_char(chars.get(i.wrapping_sub(1))) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let body_start = j + 1;
            let rest: String = chars[body_start..].iter().collect();
            let len = rest.find(&close).map_or(rest.chars().count(), |b| rest[..b].chars().count());
            let end = (body_start + len + close.chars().count()).min(chars.len());
            out.extend(&chars[i..end]);
            i = end;
        } else if c == '"' {
            out.push(c);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            if i < chars.len() {
                out.push('"');
                i += 1;
            }
        } else if c == '\'' && next.is_some() && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('"', '\'', '\n'); a lifetime has no closing quote.
            let end = (i + 2..chars.len()).find(|&j| chars[j] == '\'' && j > i + 1).map_or(chars.len(), |j| j + 1);
            out.extend(&chars[i..end]);
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// `text` without its `#[cfg(test)]` modules (rustfmt puts an inline one's
/// `mod NAME {` and closing `}` at the start of a line).
fn without_test_modules(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            if let Some(next) = lines.peek() {
                let indent = next.len() - next.trim_start().len();
                let item = next.trim();
                if item.starts_with("mod ") || item.starts_with("pub mod ") || item.starts_with("pub(crate) mod ") {
                    let inline = item.ends_with('{');
                    lines.next();
                    if inline {
                        let close = format!("{}}}", " ".repeat(indent));
                        for inner in lines.by_ref() {
                            if inner == close {
                                break;
                            }
                        }
                    }
                    continue;
                }
            }
        }
        out.push(line);
    }
    out.join("\n")
}

/// The files of `src` declared as test-only modules (`#[cfg(test)] mod x;`).
fn test_only_files(src: &Path, files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(file).unwrap();
        let dir = if file.file_name().is_some_and(|n| n == "lib.rs" || n == "main.rs" || n == "mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() != "#[cfg(test)]" {
                continue;
            }
            let Some(next) = lines.next() else { break };
            let item = next.trim().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
            if let Some(name) = item.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                out.insert(dir.join(format!("{name}.rs")));
                out.insert(dir.join(name).join("mod.rs"));
            }
        }
    }
    let _ = src;
    out
}

/// The product code of the crate whose sources are in `src`: each file
/// with comments and test modules removed, test-only files left out.
fn product_code(src: &Path) -> Vec<(PathBuf, String)> {
    let files = rust_files(src);
    let tests = test_only_files(src, &files);
    files
        .into_iter()
        .filter(|f| !tests.contains(f))
        .map(|f| {
            let text = without_test_modules(&strip_comments(&fs::read_to_string(&f).unwrap()));
            (f, text)
        })
        .collect()
}

/// The lowercase words of `text`: identifiers and literal contents split at
/// non-alphanumerics, underscores and lower-to-upper case changes.
fn words(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut word = String::new();
        let mut prev_lower = false;
        for c in line.chars().chain(std::iter::once(' ')) {
            let boundary = !c.is_alphanumeric() || (c.is_uppercase() && prev_lower);
            if boundary && !word.is_empty() {
                out.push((n + 1, std::mem::take(&mut word).to_lowercase()));
            }
            if c.is_alphanumeric() {
                word.push(c);
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Where `text` names an AWS concept: (line, what).
fn aws_concepts(text: &str) -> Vec<(usize, String)> {
    let mut found: Vec<(usize, String)> =
        words(text).into_iter().filter(|(_, w)| AWS_WORDS.contains(&w.as_str())).collect();
    for (n, line) in text.lines().enumerate() {
        let lower = line.to_lowercase();
        found.extend(AWS_PHRASES.iter().filter(|p| lower.contains(*p)).map(|p| (n + 1, p.to_string())));
    }
    found.sort();
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

#[test]
fn the_engine_names_no_aws_concept() {
    let mut problems = Vec::new();
    for (file, code) in product_code(&root().join("engine/src")) {
        for (line, what) in aws_concepts(&code) {
            problems.push(format!("{}:{line}: names `{what}`", relative(&file)));
        }
    }
    assert!(
        problems.is_empty(),
        "the engine must know nothing of AWS (docs/architecture.md); move this to a provider crate \
         or to the blueprint:\n{}",
        problems.join("\n")
    );
}

/// The workspace's members: (directory, package name).
fn workspace_members() -> Vec<(String, String)> {
    let manifest: toml::Table = fs::read_to_string(root().join("Cargo.toml")).unwrap().parse().unwrap();
    let members = manifest["workspace"]["members"].as_array().expect("workspace.members");
    members
        .iter()
        .map(|m| {
            let dir = m.as_str().unwrap().to_string();
            let own: toml::Table = fs::read_to_string(root().join(&dir).join("Cargo.toml")).unwrap().parse().unwrap();
            let name = own["package"]["name"].as_str().unwrap().to_string();
            (dir, name)
        })
        .collect()
}

/// The dependencies a manifest declares, of every kind and target, by the
/// package they name (`package = "…"` renames resolved).
fn declared_dependencies(manifest: &toml::Table) -> BTreeSet<String> {
    fn from_tables(table: &toml::Table, out: &mut BTreeSet<String>) {
        for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
            for (name, spec) in table.get(kind).and_then(|t| t.as_table()).into_iter().flatten() {
                let package = spec.get("package").and_then(|p| p.as_str()).unwrap_or(name);
                out.insert(package.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    from_tables(manifest, &mut out);
    for target in manifest.get("target").and_then(|t| t.as_table()).into_iter().flat_map(|t| t.values()) {
        if let Some(target) = target.as_table() {
            from_tables(target, &mut out);
        }
    }
    out
}

/// Every package `package` depends on through `Cargo.lock`, itself excluded
/// (dev-dependencies of workspace members included, as the lock lists them).
fn locked_closure(package: &str) -> BTreeSet<String> {
    let lock: toml::Table = fs::read_to_string(root().join("Cargo.lock")).unwrap().parse().unwrap();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in lock["package"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        let list = p.get("dependencies").and_then(|d| d.as_array()).into_iter().flatten();
        // An entry is `name` or `name version` when two versions are locked.
        let names = list.map(|d| d.as_str().unwrap().split(' ').next().unwrap().to_string());
        deps.entry(name).or_default().extend(names);
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_string()];
    while let Some(p) = todo.pop() {
        for d in deps.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_engine_and_state_depend_on_no_provider_and_not_on_the_aws_sdk() {
    let members = workspace_members();
    let package = |dir: &str| members.iter().find(|(d, _)| d == dir).map(|(_, n)| n.clone()).unwrap();
    let mut problems = Vec::new();
    // What each may use of the workspace; every other member is off limits.
    for (dir, allowed) in [("engine", vec![package("state")]), ("state", vec![])] {
        let name = package(dir);
        let forbidden = |dep: &str| {
            dep.starts_with("aws-")
                || dep.starts_with("aws_")
                || (members.iter().any(|(_, n)| n == dep) && dep != name && !allowed.iter().any(|a| a == dep))
        };
        let manifest: toml::Table = fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap().parse().unwrap();
        for dep in declared_dependencies(&manifest).into_iter().filter(|d| forbidden(d)) {
            problems.push(format!("{dir}/Cargo.toml depends on {dep}"));
        }
        for dep in locked_closure(&name).into_iter().filter(|d| forbidden(d)) {
            problems.push(format!("{name} depends on {dep} (through Cargo.lock)"));
        }
        assert!(
            !locked_closure(&name).is_empty(),
            "Cargo.lock lists no dependency of {name}: the check would pass on nothing"
        );
    }
    assert!(
        problems.is_empty(),
        "the engine and state crates must not depend on a provider crate or the AWS SDK \
         (docs/architecture.md):\n{}",
        problems.join("\n")
    );
}

/// String literals of `code` that are a resource type or type prefix of
/// one of the workspace's providers: (line, literal).
fn type_name_literals(code: &str, prefixes: &[&str]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for literal in line.split('"').skip(1).step_by(2) {
            let is_type = literal.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if is_type && prefixes.iter().any(|p| literal.starts_with(p)) {
                out.push((n + 1, format!("\"{literal}\"")));
            }
        }
    }
    out
}

#[test]
fn the_cli_does_not_route_on_resource_types() {
    let mut problems = Vec::new();
    for (file, code) in product_code(&root().join("src")) {
        for (line, literal) in type_name_literals(&code, &["aws_", "sim_"]) {
            problems.push(format!("{}:{line}: {literal}", relative(&file)));
        }
    }
    assert!(
        problems.is_empty(),
        "src/ names resource types to decide what to do; ask the provider crate that knows them \
         (e.g. skyplan_aws_blueprint::is_aws_type):\n{}",
        problems.join("\n")
    );
}

/// The module path of a file of `src`: `lib.rs` is `[]`, `a/mod.rs` and
/// `a.rs` are `[a]`, `a/b.rs` is `[a, b]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod") || (parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main")) {
        parts.pop();
    }
    parts
}

/// Every path that `code` (of the module at `own`) reaches through
/// `crate::`, `super::` or `self::`, as absolute segments (groups like
/// `crate::{a::X, b}` expanded).
fn module_paths_used(code: &str, own: &[String]) -> Vec<(usize, Vec<String>)> {
    fn tree(chars: &[char], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
        loop {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if chars.get(i) == Some(&'{') {
                i += 1;
                loop {
                    i = tree(chars, i, prefix.clone(), out);
                    while i < chars.len() && chars[i].is_whitespace() {
                        i += 1;
                    }
                    match chars.get(i) {
                        Some(',') => i += 1,
                        Some('}') => return i + 1,
                        _ => return i,
                    }
                    while i < chars.len() && chars[i].is_whitespace() {
                        i += 1;
                    }
                    if chars.get(i) == Some(&'}') {
                        return i + 1;
                    }
                }
            }
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if i > start {
                prefix.push(chars[start..i].iter().collect());
            }
            if i > start && chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
                i += 2;
                continue;
            }
            out.push(prefix);
            return i;
        }
    }
    let chars: Vec<char> = code.chars().collect();
    let mut line_of = Vec::with_capacity(chars.len());
    let mut line = 1;
    for c in &chars {
        line_of.push(line);
        if *c == '\n' {
            line += 1;
        }
    }
    let starts_with = |i: usize, s: &str| s.chars().enumerate().all(|(k, c)| chars.get(i + k) == Some(&c));
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !(chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | ':' | '$'));
        let base = if !boundary {
            None
        } else if starts_with(i, "crate::") {
            i += 7;
            Some(Vec::new())
        } else if starts_with(i, "self::") {
            i += 6;
            Some(own.to_vec())
        } else if starts_with(i, "super::") {
            let mut base = own.to_vec();
            while starts_with(i, "super::") {
                base.pop();
                i += 7;
            }
            Some(base)
        } else {
            None
        };
        match base {
            Some(base) => {
                let at = line_of[i.min(chars.len() - 1)];
                let mut paths = Vec::new();
                i = tree(&chars, i, base, &mut paths);
                out.extend(paths.into_iter().map(|p| (at, p)));
            }
            None => i += 1,
        }
    }
    out
}

/// The import circles among sibling modules of the crate in `src`, each as
/// its modules and the uses that close it.
fn import_circles(src: &Path) -> Vec<String> {
    let code = product_code(src);
    let modules: BTreeSet<Vec<String>> = code.iter().map(|(f, _)| module_path(src, f)).collect();
    // Edges between siblings: parent -> (from child, to child) -> where.
    let mut edges: BTreeMap<Vec<String>, BTreeMap<(String, String), String>> = BTreeMap::new();
    for (file, text) in &code {
        let own = module_path(src, file);
        for (line, path) in module_paths_used(text, &own) {
            // The deepest module the path names.
            let depth = (0..=path.len()).rev().find(|&n| modules.contains(&path[..n])).unwrap_or(0);
            let target = &path[..depth];
            let common = own.iter().zip(target).take_while(|(a, b)| a == b).count();
            if common == own.len() || common == target.len() {
                continue; // a module and its ancestor or descendant
            }
            let key = (own[common].clone(), target[common].clone());
            let place = format!("{}:{line} uses {}", relative(file), target.join("::"));
            edges.entry(own[..common].to_vec()).or_default().entry(key).or_insert(place);
        }
    }
    let mut circles = Vec::new();
    for (parent, edges) in &edges {
        let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (from, to) in edges.keys() {
            next.entry(from.as_str()).or_default().push(to.as_str());
        }
        for component in strongly_connected(&next) {
            if component.len() < 2 {
                continue;
            }
            let inside: Vec<&String> = edges
                .iter()
                .filter(|((a, b), _)| component.contains(&a.as_str()) && component.contains(&b.as_str()))
                .map(|(_, place)| place)
                .collect();
            let scope = if parent.is_empty() { "crate".to_string() } else { parent.join("::") };
            circles.push(format!(
                "in {scope}: {} import each other:\n    {}",
                component.join(", "),
                inside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n    ")
            ));
        }
    }
    circles
}

/// Tarjan's strongly connected components of a small graph.
fn strongly_connected<'a>(next: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    struct Walk<'a, 'g> {
        next: &'g BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<&'a str>>,
    }
    impl<'a> Walk<'a, '_> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for &w in self.next.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort();
                self.out.push(component);
            }
        }
    }
    let mut walk = Walk { next, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), out: Vec::new() };
    for &v in next.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.out
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (dir, _) in workspace_members() {
        let src = root().join(&dir).join("src");
        problems.extend(import_circles(&src).into_iter().map(|c| format!("{dir}: {c}")));
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} crates were checked");
    assert!(
        problems.is_empty(),
        "import circles (move the shared type to the module it belongs to; see docs/architecture.md):\n{}",
        problems.join("\n")
    );
}

/// The modules of `providers/aws` that sit above its kinds: the registry
/// itself and what reaches the kinds through it.
const AWS_ABOVE_THE_KINDS: &[&str] =
    &["kinds", "provider", "find", "owned", "lost", "names", "preflight", "placement", "permissions", "iam"];

/// `providers/aws` in layers: its plumbing (clients, calls, retry, tags,
/// errors, waits, ...) imports no kind and nothing above the kinds, so the
/// kinds can use all of it and the provider reaches kinds only through the
/// registry (docs/architecture.md).
#[test]
fn the_aws_plumbing_imports_no_kind_and_not_the_provider() {
    let src = root().join("providers/aws/src");
    let mut problems = Vec::new();
    let mut checked = 0;
    for (file, code) in product_code(&src) {
        let own = module_path(&src, &file);
        match own.first() {
            None => continue, // lib.rs declares them all
            Some(top) if AWS_ABOVE_THE_KINDS.contains(&top.as_str()) => continue,
            Some(_) => checked += 1,
        }
        for (line, path) in module_paths_used(&code, &own) {
            if path.first().is_some_and(|m| AWS_ABOVE_THE_KINDS.contains(&m.as_str())) {
                problems.push(format!("{}:{line} uses {}", relative(&file), path.join("::")));
            }
        }
    }
    assert!(checked >= 10, "only {checked} plumbing modules of providers/aws were read");
    assert!(
        problems.is_empty(),
        "providers/aws's plumbing must not import a kind or what sits above the kinds; move what it needs \
         down into the plumbing:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scanner_sees_what_it_must() {
    // Comments go, literals stay, line numbers hold.
    let code = strip_comments("let a = 1; // vpc\n/* ami /* nested */ */ let b = \"s3://x\"; let c = '\"';\nr#\"x\"#");
    assert_eq!(code.lines().count(), 3);
    assert!(!code.contains("vpc") && !code.contains("ami") && code.contains("\"s3://x\"") && code.contains("'\"'"));
    assert!(code.lines().nth(1).unwrap().contains("let b"), "{code}");

    // Test modules are not product code.
    let code = without_test_modules("fn a() {}\n#[cfg(test)]\nmod tests {\n    fn vpc() {}\n}\nfn b() {}\n");
    assert_eq!(code, "fn a() {}\nfn b() {}");

    // AWS concepts are found inside identifiers of either case.
    let found: Vec<String> = aws_concepts("let vpc_id = x.VpcId; let r = region; s.instance_type; let dynamic = 1;")
        .into_iter()
        .map(|f| f.1)
        .collect();
    assert_eq!(found, ["instance_type", "region", "vpc", "vpc"]);

    // Type names in literals, not messages that mention them.
    let found = type_name_literals(
        r#"k.starts_with("aws_"); x == "sim_resource"; bail!("aws_* need a region")"#,
        &["aws_", "sim_"],
    );
    assert_eq!(found.iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["\"aws_\"", "\"sim_resource\""]);

    // Paths through use groups, super and inline calls.
    let own = vec!["ops".to_string(), "plan".to_string()];
    let used: Vec<String> = module_paths_used("use crate::{a::X, b::{self, Y}};\nsuper::c::f();\nx::crate::no;", &own)
        .into_iter()
        .map(|(_, p)| p.join("::"))
        .collect();
    assert_eq!(used, ["a::X", "b::self", "b::Y", "ops::c::f"]);

    // A planted circle is found, and a module using its parent is not one.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir(src.join("ops")).unwrap();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\nmod ops;\npub use a::A;\n").unwrap();
    fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    fs::write(src.join("b.rs"), "pub struct B(crate::c::C);\n").unwrap();
    fs::write(src.join("c.rs"), "use crate::a::A;\npub struct C;\n#[cfg(test)]\nmod tests {\n    use crate::ops;\n}\n")
        .unwrap();
    fs::write(src.join("ops/mod.rs"), "mod run;\npub struct Hooks;\n").unwrap();
    fs::write(src.join("ops/run.rs"), "use super::Hooks;\nuse crate::c::C;\n").unwrap();
    let circles = import_circles(src);
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert!(circles[0].starts_with("in crate: a, b, c import each other"), "{}", circles[0]);
    assert!(!circles[0].contains("ops"), "{}", circles[0]);
}
