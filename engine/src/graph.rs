//! The resource graph: desired resources as vertices, "depends on" as edges.
//!
//! Edges come from `${...}` references and `depends_on`. Building the graph
//! is where a spec's cross-resource mistakes surface: duplicate addresses,
//! types no provider serves, references to missing resources or attributes,
//! and cycles (reported with the addresses on the cycle, in order).

use std::collections::{BTreeSet, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::address::Address;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::provider::{Providers, Schema};
use crate::redact::Redactor;
use crate::resource::Resource;
use crate::value::{Reference, Template};

/// One desired resource with what the planner needs about it.
#[derive(Debug, Clone)]
pub struct Node {
    pub resource: Resource,
    pub schema: Schema,
    pub provider: String,
    /// Every resource this one depends on (references and `depends_on`),
    /// sorted, without repeats.
    pub dependencies: Vec<Address>,
    /// The `${...}` references of the attributes, parsed once here so the
    /// plan resolves them without parsing: for each attribute that has any,
    /// its position in `resource.attrs` and its template.
    pub templates: Vec<(usize, Template)>,
    /// What the templates' reference numbers stand for: the reference and
    /// the index of its target in [`ResourceGraph::nodes`].
    pub references: Vec<(Reference, usize)>,
}

/// The dependency graph of a spec's resources. An edge `a -> b` means b
/// depends on a, so a topological order is a valid creation order.
#[derive(Debug, Clone)]
pub struct ResourceGraph {
    graph: DiGraph<usize, ()>,
    nodes: Vec<Node>,
    index: HashMap<Address, usize>,
    /// Indexes of `nodes` in a topological order.
    order: Vec<usize>,
    /// The spec's sensitive values, masked in everything the plan shows.
    redactor: Redactor,
}

impl ResourceGraph {
    /// Build and check the graph. All problems are reported at once, each
    /// naming the resource address.
    pub fn build(resources: Vec<Resource>, providers: &Providers) -> Result<ResourceGraph, Diagnostics> {
        let mut errors = Vec::new();
        let mut index = HashMap::with_capacity(resources.len());
        let mut nodes = Vec::with_capacity(resources.len());
        for resource in resources {
            if index.contains_key(&resource.address) {
                errors.push(Diagnostic::at_address(&resource.address, "is declared more than once"));
                continue;
            }
            let Some(provider) = providers.for_kind(&resource.address.kind) else {
                errors.push(
                    Diagnostic::at_address(
                        &resource.address,
                        format!("no provider serves resource type `{}`", resource.address.kind),
                    )
                    .with_help("check the spelling; docs/spec.md lists the resource types skyplan serves"),
                );
                continue;
            };
            for problem in provider.validate(&resource.address, &resource.attrs) {
                errors.push(Diagnostic::at_address(&resource.address, problem));
            }
            let schema = provider.schema(&resource.address.kind, &resource.attrs);
            index.insert(resource.address.clone(), nodes.len());
            nodes.push(Node {
                provider: provider.name().to_string(),
                schema,
                dependencies: Vec::new(),
                templates: Vec::new(),
                references: Vec::new(),
                resource,
            });
        }

        let mut graph = DiGraph::with_capacity(nodes.len(), nodes.len());
        for i in 0..nodes.len() {
            graph.add_node(i);
        }
        for i in 0..nodes.len() {
            let mut deps = BTreeSet::new();
            let mut templates = Vec::new();
            let mut refs: Vec<Reference> = Vec::new();
            let mut targets: Vec<usize> = Vec::new();
            let resource = &nodes[i].resource;
            for (position, (attr, v)) in resource.attrs.iter().enumerate() {
                let first = refs.len();
                let template = match Template::compile(v, &mut refs) {
                    Ok(t) => t,
                    Err(e) => {
                        refs.truncate(first);
                        errors.push(Diagnostic::at_address(&resource.address, format!("{attr}: {e}")));
                        continue;
                    }
                };
                if template != Template::Literal {
                    templates.push((position, template));
                }
                for r in &refs[first..] {
                    // Unbound (an error below) until the graph is known good.
                    targets.push(usize::MAX);
                    match index.get(&r.target) {
                        None => {
                            let wanted = r.target.to_string();
                            let names: Vec<String> = index.keys().map(|a: &Address| a.to_string()).collect();
                            let help = match crate::diagnostic::did_you_mean(&wanted, names.iter().map(String::as_str))
                            {
                                Some(m) => format!("did you mean {m}?"),
                                None => "declare that resource, or fix the reference".to_string(),
                            };
                            errors.push(
                                Diagnostic::at_address(
                                    &resource.address,
                                    format!("{attr} refers to {r}, but there is no resource {}", r.target),
                                )
                                .with_help(help),
                            )
                        }
                        Some(&j) => {
                            let target = &nodes[j];
                            if !target.resource.attrs.contains_key(&r.attr) && !target.schema.computed.contains(&r.attr)
                            {
                                let mut known: Vec<&String> =
                                    target.resource.attrs.keys().chain(target.schema.computed.iter()).collect();
                                known.sort();
                                known.dedup();
                                let close = crate::diagnostic::did_you_mean(&r.attr, known.iter().map(|s| s.as_str()));
                                errors.push(
                                    Diagnostic::at_address(
                                        &resource.address,
                                        format!("{attr} refers to {r}, but {} has no attribute `{}`", r.target, r.attr),
                                    )
                                    .with_help(match close {
                                        Some(m) => format!("did you mean {}.{m}?", r.target),
                                        None => format!(
                                            "{} has: {}",
                                            r.target,
                                            known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                                        ),
                                    }),
                                );
                            }
                            *targets.last_mut().expect("just pushed") = j;
                            deps.insert(j);
                        }
                    }
                }
            }
            for dep in &resource.depends_on {
                match index.get(dep) {
                    Some(&j) => {
                        deps.insert(j);
                    }
                    None => {
                        let wanted = dep.to_string();
                        let names: Vec<String> = index.keys().map(|a: &Address| a.to_string()).collect();
                        let mut d = Diagnostic::at_address(
                            &resource.address,
                            format!("depends_on names {dep}, but there is no such resource"),
                        );
                        if let Some(m) = crate::diagnostic::did_you_mean(&wanted, names.iter().map(String::as_str)) {
                            d = d.with_help(format!("did you mean {m}?"));
                        }
                        errors.push(d)
                    }
                }
            }
            for &j in &deps {
                graph.add_edge(NodeIndex::new(j), NodeIndex::new(i), ());
            }
            let mut dependencies: Vec<Address> = deps.iter().map(|&j| nodes[j].resource.address.clone()).collect();
            dependencies.sort();
            nodes[i].dependencies = dependencies;
            nodes[i].templates = templates;
            nodes[i].references = refs.into_iter().zip(targets).collect();
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }

        let order = match petgraph::algo::toposort(&graph, None) {
            Ok(order) => order.into_iter().map(|n| n.index()).collect(),
            Err(_) => return Err(cycle_errors(&graph, &nodes)),
        };
        Ok(ResourceGraph { graph, nodes, index, order, redactor: Redactor::default() })
    }

    /// The graph whose plans mask these sensitive values.
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn get(&self, address: &Address) -> Option<&Node> {
        self.index.get(address).map(|&i| &self.nodes[i])
    }

    /// The position of `address` in [`ResourceGraph::nodes`].
    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.index.get(address).copied()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indexes into [`ResourceGraph::nodes`] in a valid creation order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Nodes in a valid creation order (dependencies first).
    pub fn topological(&self) -> impl Iterator<Item = &Node> {
        self.order.iter().map(|&i| &self.nodes[i])
    }

    /// Dependency layers: layer 0 has no dependencies, layer k depends on
    /// something in layer k-1. Each layer sorted by address.
    pub fn layers(&self) -> Vec<Vec<Address>> {
        let mut depth = vec![0usize; self.nodes.len()];
        for &i in &self.order {
            for dep in self.graph.neighbors_directed(NodeIndex::new(i), Direction::Incoming) {
                depth[i] = depth[i].max(depth[dep.index()] + 1);
            }
        }
        let mut layers: Vec<Vec<Address>> = vec![Vec::new(); depth.iter().max().map_or(0, |d| d + 1)];
        for (i, d) in depth.iter().enumerate() {
            layers[*d].push(self.nodes[i].resource.address.clone());
        }
        for layer in &mut layers {
            layer.sort();
        }
        layers
    }

    /// The graph in Graphviz dot form, edges from dependency to dependent.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph skyplan {\n  rankdir = LR;\n  node [shape = box];\n");
        let mut sorted: Vec<&Node> = self.nodes.iter().collect();
        sorted.sort_by(|a, b| a.resource.address.cmp(&b.resource.address));
        for node in &sorted {
            out.push_str(&format!("  \"{}\";\n", node.resource.address));
        }
        for node in &sorted {
            for dep in &node.dependencies {
                out.push_str(&format!("  \"{dep}\" -> \"{}\";\n", node.resource.address));
            }
        }
        out.push_str("}\n");
        out
    }
}

/// One diagnostic per cycle, listing the addresses along it.
fn cycle_errors(graph: &DiGraph<usize, ()>, nodes: &[Node]) -> Diagnostics {
    let mut errors = Vec::new();
    for scc in tarjan_scc(graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *members.iter().min_by_key(|n| &nodes[n.index()].resource.address).expect("non-empty");
        let path = cycle_through(graph, &members, start);
        let mut names: Vec<String> = path.iter().map(|n| nodes[n.index()].resource.address.to_string()).collect();
        names.push(nodes[start.index()].resource.address.to_string());
        errors.push(
            Diagnostic::at_address(
                &nodes[start.index()].resource.address,
                format!("dependency cycle: {}", names.join(" -> ")),
            )
            .with_help("break the cycle: remove one of these references or depends_on entries"),
        );
    }
    Diagnostics(errors)
}

/// A path start -> ... -> (edge back to start) inside one strongly connected
/// component, found by breadth-first search over dependents.
fn cycle_through(graph: &DiGraph<usize, ()>, members: &BTreeSet<NodeIndex>, start: NodeIndex) -> Vec<NodeIndex> {
    // Walk against the edges (dependent -> dependency) so the printed path
    // reads "a depends on b depends on ... depends on a".
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for next in graph.neighbors_directed(n, Direction::Incoming) {
            if !members.contains(&next) {
                continue;
            }
            if next == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(next) {
                e.insert(n);
                queue.push_back(next);
            }
        }
    }
    vec![start]
}
