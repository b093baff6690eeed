//! Property: from any state, applying the plan yields exactly the desired
//! resources, each recorded with its configuration resolved, and planning
//! again shows no changes.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use skyplan_state::{Backend, LocalBackend, State, Writer};

use crate::apply::{apply, ApplyOptions};
use crate::plan::diff;
use crate::testing::{graph, Fake};
use crate::value::{self, Reference};
use crate::Address;

/// One resource: its attribute values and which earlier resources it refers to.
#[derive(Debug, Clone)]
struct Gen {
    size: u8,
    zone: u8,
    refs: Vec<usize>,
    replace_on_zone: bool,
}

fn spec_strategy() -> impl Strategy<Value = Vec<Option<Gen>>> {
    // Up to 12 slots; a None slot is absent from this spec, so two specs
    // over the same slots share some addresses and differ in others.
    prop::collection::vec(
        prop::option::weighted(0.8, (0u8..3, 0u8..2, prop::collection::vec(0usize..12, 0..3), any::<bool>())),
        12,
    )
    .prop_map(|slots| {
        slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.map(|(size, zone, refs, replace_on_zone)| Gen {
                    size,
                    zone,
                    // Only earlier slots: the graph stays acyclic.
                    refs: refs.into_iter().filter(|&r| r < i).collect(),
                    replace_on_zone,
                })
            })
            .collect()
    })
}

fn render(slots: &[Option<Gen>]) -> String {
    let mut out = String::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(g) = slot else { continue };
        out.push_str(&format!("[resource.test_r.r{i}]\nsize = {}\nzone = \"z{}\"\n", g.size, g.zone));
        if g.replace_on_zone {
            out.push_str("replace_on = [\"zone\"]\n");
        }
        let refs: Vec<usize> = g.refs.iter().copied().filter(|&r| slots[r].is_some()).collect();
        for (k, r) in refs.iter().enumerate() {
            out.push_str(&format!("ref{k} = \"${{test_r.r{r}.id}}\"\n"));
        }
    }
    out
}

/// Settle what an interrupted run left, plan and apply, as `apply` does.
async fn run_once(text: &str, state: State, fake: &Arc<Fake>) -> (State, crate::apply::ApplyReport) {
    let providers = crate::Providers::new().with(fake.clone());
    let mut state = state;
    crate::refresh::settle_pending(&mut state, &providers, &crate::Redactor::default()).await.unwrap();
    let g = graph(text, fake.clone()).expect("generated specs are valid");
    let plan = diff(&g, &state, false);
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("s.json")));
    let writer = Writer::start(backend, state.clone());
    let report = apply(&plan, &state, &providers, &writer, ApplyOptions::new(3)).await;
    (writer.finish().await.unwrap(), report)
}

/// What the cloud holds is exactly what the state records.
fn assert_cloud_is_the_state(fake: &Fake, state: &State) {
    let recorded: BTreeSet<String> = state.resources.values().map(|r| r.id.clone()).collect();
    assert_eq!(fake.ids(), recorded, "the cloud's ids must be the state's");
}

async fn run(text: &str, state: State, fake: &Arc<Fake>) -> State {
    let (state, report) = run_once(text, state, fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_cloud_is_the_state(fake, &state);
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn applying_a_plan_yields_the_desired_resources(first in spec_strategy(), second in spec_strategy()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let fake = Arc::new(Fake::default());
            let (a, b) = (render(&first), render(&second));
            let state = run(&a, State::new(), &fake).await;
            let state = run(&b, state, &fake).await;

            let g = graph(&b, fake.clone()).unwrap();
            let desired: BTreeSet<String> = g.nodes().iter().map(|n| n.resource.address.to_string()).collect();
            let recorded: BTreeSet<String> = state.resources.keys().cloned().collect();
            assert_eq!(recorded, desired);
            for node in g.nodes() {
                let record = &state.resources[&node.resource.address.to_string()];
                let mut lookup = |r: &Reference| {
                    state.resources[&r.target.to_string()].attributes.get(&r.attr).cloned().unwrap_or_else(value::unknown)
                };
                let resolved = value::resolve_attrs(&node.resource.attrs, &mut lookup);
                assert_eq!(record.inputs, resolved, "{}", node.resource.address);
                let deps: Vec<Address> = record.dependencies.iter().map(|d| d.parse().unwrap()).collect();
                assert_eq!(deps, node.dependencies);
            }
            assert!(!diff(&g, &state, false).has_changes(), "a second plan must be empty");
        });
    }

    /// The same with a crash: the second apply dies right after the cloud
    /// made its `crash`-th create, before the state recorded it. Applying
    /// again adopts what was made, converges in that one run, and the cloud
    /// holds exactly what the state records, with nothing left over.
    #[test]
    fn a_crash_at_any_create_then_one_apply_converges(
        first in spec_strategy(),
        second in spec_strategy(),
        crash in 0usize..12,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let fake = Arc::new(Fake::default());
            let (a, b) = (render(&first), render(&second));
            let state = run(&a, State::new(), &fake).await;
            *fake.crash_after.lock().unwrap() = Some(crash);
            let (state, _) = run_once(&b, state, &fake).await;
            let crashed = fake.crash_after.lock().unwrap().is_none();
            *fake.crash_after.lock().unwrap() = None;
            if crashed {
                assert_eq!(state.pending.len(), 1, "the crashed create's intent is kept");
            }
            let state = run(&b, state, &fake).await;
            assert!(state.pending.is_empty());
            let g = graph(&b, fake.clone()).unwrap();
            assert!(!diff(&g, &state, false).has_changes(), "one apply after the crash converges");
        });
    }
}
