//! The bench's generated graphs and the schedules its makespans are judged
//! against; shared by the `skyplan-bench` binary and the scheduling test
//! below.
//!
//! [`virtual_makespan`] runs apply's own schedule ([`skyplan_engine::apply::schedule`]:
//! the same operations, dependencies and critical-path-first priorities)
//! through the executor's DAG walk ([`skyplan_engine::dag::walk`]), each
//! operation a create in the simulated cloud with its `delay_ms`, on tokio's
//! paused clock. Virtual time moves only when every task waits on a timer,
//! so the makespan it gives is the scheduler's alone: the same on every run,
//! whatever the machine's load. What it leaves out is recording each result
//! in the state (a writer thread, outside the runtime's virtual clock).

use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use skyplan_engine::apply::schedule;
use skyplan_engine::dag::{remaining_path_costs, walk, Outcome};
use skyplan_engine::graph::ResourceGraph;
use skyplan_engine::plan::Plan;
use skyplan_engine::provider::OpContext;
use skyplan_engine::{Address, Providers};

/// xorshift64*: deterministic, so every run benchmarks the same graphs.
pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A spec of `n` `sim_resource`s in `layers` layers, each referring to 1-3
/// random resources of the layer before; `delay` gives each one's delay_ms.
pub fn generate(n: usize, layers: usize, seed: u64, mut delay: impl FnMut(&mut Rng) -> u64) -> String {
    let mut rng = Rng(seed | 1);
    let per_layer = n.div_ceil(layers);
    let mut out = String::with_capacity(n * 120);
    for i in 0..n {
        let layer = i / per_layer;
        out.push_str(&format!(
            "[resource.sim_resource.r{i}]\nsize = {}\nzone = \"z{}\"\n",
            rng.below(100),
            rng.below(3)
        ));
        let d = delay(&mut rng);
        if d > 0 {
            out.push_str(&format!("delay_ms = {d}\n"));
        }
        if layer > 0 {
            let prev = (layer - 1) * per_layer;
            for k in 0..=rng.below(3) {
                let j = prev + rng.below(per_layer as u64) as usize;
                out.push_str(&format!("dep{k} = \"${{sim_resource.r{j}.id}}\"\n"));
            }
        }
    }
    out
}

fn delay_ms(node: &skyplan_engine::graph::Node) -> u64 {
    node.resource.attrs.get("delay_ms").and_then(|v| v.as_u64()).unwrap_or(0)
}

/// The longest delay-weighted path through the graph: a lower bound for
/// any schedule.
pub fn critical_path(graph: &ResourceGraph) -> Duration {
    let mut finish: HashMap<&Address, u64> = HashMap::new();
    for node in graph.topological() {
        let start = node.dependencies.iter().map(|d| finish[d]).max().unwrap_or(0);
        finish.insert(&node.resource.address, start + delay_ms(node));
    }
    Duration::from_millis(finish.values().copied().max().unwrap_or(0))
}

/// The makespan of a greedy list schedule of the graph on `workers`
/// workers, computed offline with no overhead: whenever a worker is free it
/// takes the ready resource with the longest remaining delay-weighted path
/// (critical path first), lowest index first on ties.
pub fn list_schedule(graph: &ResourceGraph, workers: usize) -> Duration {
    use std::cmp::Reverse;
    let nodes = graph.nodes();
    let index: HashMap<&Address, usize> = nodes.iter().enumerate().map(|(i, n)| (&n.resource.address, i)).collect();
    let deps: Vec<Vec<usize>> = nodes.iter().map(|n| n.dependencies.iter().map(|d| index[d]).collect()).collect();
    let cost: Vec<u64> = nodes.iter().map(delay_ms).collect();
    let priority = remaining_path_costs(&deps, &cost);
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<(u64, Reverse<usize>)> =
        (0..nodes.len()).filter(|&i| waiting[i] == 0).map(|i| (priority[i], Reverse(i))).collect();
    // Running tasks by finish time, earliest first.
    let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut now = 0;
    loop {
        while running.len() < workers {
            let Some((_, Reverse(i))) = ready.pop() else { break };
            running.push(Reverse((now + cost[i], i)));
        }
        let Some(Reverse((finish, i))) = running.pop() else { break };
        now = finish;
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push((priority[d], Reverse(d)));
            }
        }
    }
    Duration::from_millis(now)
}

/// Run `plan` (creates and updates) with apply's schedule at `parallelism`
/// through the executor's walk on a paused tokio clock, each operation the
/// provider's own call (the simulated cloud sleeps its `delay_ms`); the slot
/// is released once the cloud has answered, as apply does. Returns the
/// makespan in virtual time. Must not be called inside a runtime.
pub fn virtual_makespan(plan: &Plan, providers: &Providers, parallelism: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a paused runtime");
    let sched = schedule(plan, providers);
    let plan = Arc::new(plan.clone());
    let ops = Arc::new(sched.ops);
    let providers = providers.clone();
    rt.block_on(async move {
        let start = tokio::time::Instant::now();
        let outcomes = walk(&sched.deps, &sched.priority, parallelism, Arc::new(AtomicBool::new(false)), |i, slot| {
            let (plan, ops, providers) = (plan.clone(), ops.clone(), providers.clone());
            async move {
                let change = &plan.changes[ops[i].change];
                let provider = providers.for_kind(&change.kind).expect("a provider serves it");
                let ctx = OpContext::new(change.address.clone(), format!("virtual-{i}"), None);
                let config = change.config.clone().unwrap_or_default();
                let ok = provider.create(&ctx, &config).await.is_ok();
                slot.release();
                ok
            }
        })
        .await;
        assert!(outcomes.iter().all(|o| *o == Outcome::Succeeded), "every virtual operation succeeds");
        start.elapsed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan_engine::plan::diff;
    use skyplan_engine::{Source, Spec};
    use skyplan_sim::SimProvider;
    use skyplan_state::State;

    fn setup(n: usize, layers: usize) -> (tempfile::TempDir, Providers, ResourceGraph, Plan) {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProvider::open(&dir.path().join("cloud.json")).unwrap();
        let providers = Providers::new().with(Arc::new(sim));
        let text = generate(n, layers, 7, |rng| 20 + rng.below(181));
        let spec = Spec::parse(Source { path: "bench.toml".into(), text }).unwrap();
        let graph = ResourceGraph::build(spec.resources, &providers).unwrap();
        let plan = diff(&graph, &State::new(), false);
        (dir, providers, graph, plan)
    }

    fn over(took: Duration, bound: Duration) -> f64 {
        took.as_secs_f64() / bound.as_secs_f64() - 1.0
    }

    // The scheduling contract in virtual time (not a timed test: the paused
    // clock makes the makespan exact and the same on every run).
    #[test]
    fn apply_schedule_is_within_3_percent_of_the_list_schedule_at_parallelism_10() {
        for (n, layers) in [(200, 10), (1_000, 20)] {
            let (_dir, providers, graph, plan) = setup(n, layers);
            let list = list_schedule(&graph, 10);
            let took = virtual_makespan(&plan, &providers, 10);
            assert!(took >= critical_path(&graph), "no schedule beats the critical path");
            assert!(over(took, list) <= 0.03, "{n} resources: {took:?} against a list schedule of {list:?}");
        }
    }

    #[test]
    fn unbounded_apply_schedule_meets_the_critical_path() {
        for (n, layers) in [(200, 10), (1_000, 20)] {
            let (_dir, providers, graph, plan) = setup(n, layers);
            let cp = critical_path(&graph);
            let took = virtual_makespan(&plan, &providers, usize::MAX);
            assert!(took >= cp && over(took, cp) <= 0.03, "{n} resources: {took:?} against {cp:?}");
        }
    }

    #[test]
    fn the_virtual_makespan_is_the_same_every_run() {
        let (_dir, providers, _graph, plan) = setup(200, 10);
        let first = virtual_makespan(&plan, &providers, 10);
        let (_dir2, providers2, _graph2, _) = setup(200, 10);
        assert_eq!(virtual_makespan(&plan, &providers2, 10), first);
        drop(providers);
    }
}
