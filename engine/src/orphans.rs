//! Orphans: resources that carry a cluster's ownership tags and the
//! provider's address mark, but that the state does not record.
//!
//! They come from a state edited by hand (`state rm`), a state restored
//! from an old backup, or a create whose result and intent were both lost.
//! A crash between a create and its recording is *not* one of them: the
//! intent recorded before the call is settled first ([`crate::refresh::settle_pending`]),
//! and what it adopts is in the state by the time orphans are looked for.
//!
//! The engine knows no tag conventions: the caller names the ownership tags
//! and the ids that must never be touched ([`Ownership`]), each provider
//! searches its cloud ([`crate::Provider::owned`]). A plan lists what was
//! found; a destroy plan also deletes it, ordered like the state's
//! resources by the dependencies its address has in the state or the spec.

use std::collections::{BTreeMap, BTreeSet};

use skyplan_state::State;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::graph::ResourceGraph;
pub use crate::plan::Orphan;
use crate::plan::{parse_addresses, Change, Plan};
use crate::provider::Providers;
use crate::value::Attrs;

/// What marks a resource as one cluster's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Tags every resource of the cluster carries (all must match).
    pub tags: BTreeMap<String, String>,
    /// Ids never reported or deleted, whatever they carry: resources the
    /// spec uses but does not own (a given VPC and subnets).
    pub keep: BTreeSet<String>,
}

/// An orphan and its attributes as read, enough to delete it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub orphan: Orphan,
    pub attributes: Attrs,
}

/// Ask every provider for what carries the ownership tags and is not in
/// `state`, sorted by address, then id. Only the types the spec or the state
/// has are looked for: those are the types the run may read (and its IAM
/// policy allows reading).
pub async fn find(
    graph: &ResourceGraph,
    state: &State,
    providers: &Providers,
    ownership: &Ownership,
) -> Result<Vec<Found>, Diagnostics> {
    if ownership.tags.is_empty() {
        return Ok(Vec::new());
    }
    let mut known: BTreeSet<String> = state.resources.values().map(|r| r.id.clone()).collect();
    known.extend(ownership.keep.iter().cloned());
    let mut kinds: BTreeSet<String> = graph.topological().map(|n| n.resource.address.kind.clone()).collect();
    kinds.extend(state.resources.values().map(|r| r.kind.clone()));
    let mut found = Vec::new();
    for provider in providers.all() {
        let served: BTreeSet<String> = kinds.iter().filter(|k| provider.serves(k)).cloned().collect();
        if served.is_empty() {
            continue;
        }
        let owned = provider.owned(&served, &ownership.tags, &known).await.map_err(|e| {
            Diagnostic::new(
                Location::None,
                format!(
                    "looking for resources tagged as this cluster's through the {} provider failed: {e}",
                    provider.name()
                ),
            )
        })?;
        for o in owned {
            let id = o.attributes.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            if id.is_empty() || known.contains(&id) || !provider.serves(&o.kind) {
                continue;
            }
            let orphan = Orphan { address: o.address, kind: o.kind, provider: provider.name().to_string(), id };
            found.push(Found { orphan, attributes: o.attributes });
        }
    }
    found.sort_by(|a, b| (&a.orphan.address, &a.orphan.id).cmp(&(&b.orphan.address, &b.orphan.id)));
    found.dedup_by(|a, b| a.orphan.id == b.orphan.id && a.orphan.kind == b.orphan.kind);
    Ok(found)
}

/// Record the orphans in the plan; a destroy plan also deletes each. An
/// orphan's delete is ordered by the dependencies its address has: those
/// the state records for that address, else those of the spec, so that an
/// orphaned subnet goes before the VPC it is in and after the instances in
/// it, wherever each of them is recorded.
pub fn add_to_plan(plan: &mut Plan, found: Vec<Found>, graph: &ResourceGraph, state: &State) {
    plan.orphans = found.iter().map(|f| f.orphan.clone()).collect();
    if !plan.destroy || found.is_empty() {
        return;
    }
    for Found { orphan, mut attributes } in found {
        graph.redactor().attrs(&mut attributes);
        let recorded = state.resources.get(&orphan.address.to_string()).map(|r| parse_addresses(&r.dependencies));
        let prior_dependencies =
            recorded.or_else(|| graph.get(&orphan.address).map(|node| node.dependencies.clone())).unwrap_or_default();
        plan.summary.delete += 1;
        let mut change = Change::delete(orphan.address, orphan.kind, orphan.provider, attributes, prior_dependencies);
        change.orphan = true;
        plan.changes.push(change);
    }
    plan.changes.sort_by(|a, b| a.address.cmp(&b.address));
}

/// One line per orphan for messages: `ADDRESS (ID)`.
pub fn describe(orphans: &[Orphan]) -> Vec<String> {
    orphans.iter().map(|o| format!("{} ({})", o.address, o.id)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_state::{Backend, LocalBackend, PendingCreate, ResourceState, Writer};

    use super::*;
    use crate::address::Address;
    use crate::apply::{apply, ApplyOptions};
    use crate::plan::diff;
    use crate::provider::Owned;
    use crate::refresh::settle_pending;
    use crate::testing::{graph, Fake};

    const SPEC: &str = r#"
[resource.test_vpc.main]
cidr = "10.0.0.0/16"
[resource.test_subnet.a]
vpc_id = "${test_vpc.main.id}"
[resource.test_instance.x]
subnet = "${test_subnet.a.id}"
"#;

    fn owned(address: &str, id: &str) -> Owned {
        let address: Address = address.parse().unwrap();
        let kind = address.kind.clone();
        Owned { address, kind, attributes: json!({"id": id}).as_object().unwrap().clone() }
    }

    fn recorded(state: &mut State, address: &str, id: &str, dependencies: &[&str]) {
        let kind = address.split('.').next().unwrap().to_string();
        state.resources.insert(
            address.into(),
            ResourceState {
                kind,
                provider: "fake".into(),
                id: id.into(),
                inputs: Attrs::new(),
                attributes: json!({"id": id}).as_object().unwrap().clone(),
                dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            },
        );
    }

    fn ownership(keep: &[&str]) -> Ownership {
        Ownership {
            tags: BTreeMap::from([("owner/demo".to_string(), "owned".to_string())]),
            keep: keep.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn orphans_are_what_the_state_does_not_record_once_adoption_has_run() {
        let fake = Arc::new(Fake::default());
        let providers = Providers::new().with(fake.clone());
        let g = graph(SPEC, fake.clone()).unwrap();
        let mut state = State::new();
        recorded(&mut state, "test_vpc.main", "f-1", &[]);
        // A create of test_subnet.a was interrupted after the cloud made f-2.
        state.pending.insert(
            "test_subnet.a".into(),
            PendingCreate {
                kind: "test_subnet".into(),
                provider: "fake".into(),
                client_token: "t".into(),
                inputs: Attrs::new(),
                dependencies: vec!["test_vpc.main".into()],
            },
        );
        *fake.cloud.lock().unwrap() = vec![
            owned("test_vpc.main", "f-1"),      // recorded
            owned("test_subnet.a", "f-2"),      // what the interrupted create made: adopted
            owned("test_instance.old", "f-4"),  // an address the spec no longer has
            owned("test_vpc.given", "vpc-own"), // an id the spec uses without owning it
            owned("test_unused.z", "f-5"),      // a type neither the spec nor the state has
        ];

        settle_pending(&mut state, &providers, &crate::Redactor::default()).await.unwrap();
        assert_eq!(state.resources["test_subnet.a"].id, "f-2", "adopted before orphans are looked for");
        // A duplicate made for the same address is an orphan all the same.
        fake.cloud.lock().unwrap().push(owned("test_subnet.a", "f-3"));

        let found = find(&g, &state, &providers, &ownership(&["vpc-own"])).await.unwrap();
        let ids: Vec<(String, &str)> =
            found.iter().map(|f| (f.orphan.address.to_string(), f.orphan.id.as_str())).collect();
        assert_eq!(ids, [("test_instance.old".to_string(), "f-4"), ("test_subnet.a".to_string(), "f-3")]);
        assert_eq!(found[0].orphan.provider, "fake");
        let asked = fake.owned_asked.lock().unwrap().clone();
        let kinds: Vec<BTreeSet<String>> =
            vec![["test_instance", "test_subnet", "test_vpc"].iter().map(|k| k.to_string()).collect()];
        assert_eq!(asked, kinds, "only the types of the spec and the state are looked for");

        // Without ownership tags (no cluster) nothing is asked at all.
        assert!(find(&g, &state, &providers, &Ownership::default()).await.unwrap().is_empty());
        assert_eq!(fake.owned_asked.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_plan_lists_orphans_and_a_destroy_deletes_them_in_order_recording_nothing_for_them() {
        let fake = Arc::new(Fake::default());
        let providers = Providers::new().with(fake.clone());
        let g = graph(SPEC, fake.clone()).unwrap();
        let mut state = State::new();
        recorded(&mut state, "test_vpc.main", "f-1", &[]);
        recorded(&mut state, "test_subnet.a", "f-2", &["test_vpc.main"]);
        *fake.cloud.lock().unwrap() = vec![owned("test_subnet.a", "f-3"), owned("test_instance.x", "f-4")];
        let found = find(&g, &state, &providers, &ownership(&[])).await.unwrap();

        // Any other plan reports them and changes nothing for them.
        let mut plan = diff(&g, &state, false);
        let before = (plan.changes.clone(), plan.summary);
        add_to_plan(&mut plan, found.clone(), &g, &state);
        assert_eq!((plan.changes.clone(), plan.summary), before);
        assert_eq!(describe(&plan.orphans), ["test_instance.x (f-4)", "test_subnet.a (f-3)"]);
        let text = crate::render::human::plan(&plan, crate::render::Style { color: false });
        assert!(text.contains("Warning: 2 resources tagged as this cluster's but not in the state"), "{text}");

        // A destroy deletes them too: the orphaned instance (its spec
        // address depends on test_subnet.a) before both subnets, both
        // subnets before the VPC.
        let mut plan = diff(&g, &state, true);
        add_to_plan(&mut plan, found, &g, &state);
        assert_eq!(plan.summary.delete, 4);
        let orphaned: Vec<String> = plan.changes.iter().filter(|c| c.orphan).map(|c| c.address.to_string()).collect();
        assert_eq!(orphaned, ["test_instance.x", "test_subnet.a"]);
        let json = crate::render::json::plan(&plan);
        assert_eq!(
            json["orphans"][1],
            json!({"address": "test_subnet.a", "type": "test_subnet", "provider": "fake", "id": "f-3"})
        );
        assert_eq!(json["changes"].as_array().unwrap().iter().filter(|c| c["orphan"] == true).count(), 2);
        let text = crate::render::human::plan(&plan, crate::render::Style { color: false });
        assert!(text.contains("2 resources tagged as this cluster's but not in the state: test_instance.x (f-4), test_subnet.a (f-3); destroying them too."), "{text}");
        assert!(
            text.contains("# test_instance.x will be destroyed (tagged as this cluster's but not in the state)"),
            "{text}"
        );

        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("s.json")));
        let writer = Writer::start(backend, state.clone());
        let report = apply(&plan, &state, &providers, &writer, ApplyOptions::new(4)).await;
        assert!(report.is_success(), "{report:?}");
        assert_eq!(report.succeeded.len(), 4);
        let log = fake.log.lock().unwrap().clone();
        let at = |entry: &str| log.iter().enumerate().filter(|(_, l)| *l == entry).map(|(i, _)| i).collect::<Vec<_>>();
        let (instance, subnets, vpc) =
            (at("delete test_instance.x"), at("delete test_subnet.a"), at("delete test_vpc.main"));
        assert_eq!((instance.len(), subnets.len(), vpc.len()), (1, 2, 1), "{log:?}");
        assert!(instance[0] < subnets[0] && subnets[1] < vpc[0], "{log:?}");
        assert!(writer.finish().await.unwrap().resources.is_empty());
    }

    #[tokio::test]
    async fn an_orphan_delete_leaves_the_states_resource_of_the_same_address_recorded() {
        let fake = Arc::new(Fake::default());
        let providers = Providers::new().with(fake.clone());
        let g = graph(SPEC, fake.clone()).unwrap();
        let mut state = State::new();
        recorded(&mut state, "test_vpc.main", "f-1", &[]);
        recorded(&mut state, "test_subnet.a", "f-2", &["test_vpc.main"]);
        *fake.cloud.lock().unwrap() = vec![owned("test_subnet.a", "f-3")];
        let found = find(&g, &state, &providers, &ownership(&[])).await.unwrap();
        let mut plan = diff(&g, &state, true);
        add_to_plan(&mut plan, found, &g, &state);
        let text = crate::render::human::plan(&plan, crate::render::Style { color: false });
        assert!(
            text.contains(
                "1 resource tagged as this cluster's but not in the state: test_subnet.a (f-3); destroying it too."
            ),
            "{text}"
        );
        // Only the orphan's delete runs (as a plan keeping the rest would).
        plan.changes.retain(|c| c.orphan);
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("s.json")));
        let writer = Writer::start(backend, state.clone());
        let report = apply(&plan, &state, &providers, &writer, ApplyOptions::new(4)).await;
        assert!(report.is_success());
        let after = writer.finish().await.unwrap();
        assert_eq!(after.resources["test_subnet.a"].id, "f-2", "the recorded subnet is still recorded");
    }
}
