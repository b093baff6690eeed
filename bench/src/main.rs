//! `skyplan-bench`: the engine on generated simulated-cloud graphs.
//!
//! For each size N it generates a spec of N `sim_resource`s in L layers, each
//! resource referring to 1-3 random resources of the layer before, and times
//! the phases a user runs: validate (parse + graph), plan on an empty state,
//! apply, a no-op plan (refresh + diff), and destroy. A second table gives the
//! apply makespan with per-resource delays against the critical path (the
//! lower bound no scheduler can beat), and a third the apply makespan at
//! `--parallelism 10` against a greedy list schedule computed offline; both
//! give the scheduler's makespan in virtual time (deterministic) and the
//! real apply's on the wall clock. Run it with `scripts/bench.sh`.
//!
//! `skyplan-bench noop N REPEAT` and `skyplan-bench plan N REPEAT` time only
//! the no-op plan of N (after one apply) or the plan of N on an empty state,
//! REPEAT times, and print medians of wall and thread CPU time; they are
//! what `scripts/profile.sh` profiles.

use std::sync::Arc;

/// The allocator the `skyplan` binary uses, so the figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use skyplan_bench::{critical_path, generate, list_schedule, virtual_makespan};
use skyplan_engine::apply::{apply, ApplyOptions};
use skyplan_engine::graph::ResourceGraph;
use skyplan_engine::plan::diff;
use skyplan_engine::refresh::refresh;
use skyplan_engine::{Providers, Source, Spec};
use skyplan_sim::SimProvider;
use skyplan_state::{Backend, LocalBackend, State, Writer};

/// Reset the peak RSS so the next reading covers only what follows
/// (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct World {
    _dir: tempfile::TempDir,
    providers: Providers,
    backend: Arc<dyn Backend>,
    state_path: std::path::PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimProvider::open(&dir.path().join("cloud.json")).expect("sim");
    let state_path = dir.path().join("bench.state.json");
    World {
        providers: Providers::new().with(Arc::new(sim)),
        backend: Arc::new(LocalBackend::new(state_path.clone())),
        state_path,
        _dir: dir,
    }
}

fn graph_of(text: &str, providers: &Providers) -> ResourceGraph {
    let spec =
        Spec::parse(Source { path: "bench.toml".into(), text: text.to_string() }).expect("generated spec parses");
    ResourceGraph::build(spec.resources, providers).expect("generated graph is valid")
}

async fn run_apply(plan: &skyplan_engine::plan::Plan, state: &State, w: &World, parallelism: usize) -> State {
    let writer = Writer::start(w.backend.clone(), state.clone());
    let report = apply(plan, state, &w.providers, &writer, ApplyOptions::new(parallelism)).await;
    assert!(report.is_success(), "bench apply failed: {:?}", report.failed.first());
    writer.finish().await.expect("state persisted")
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

async fn phases(n: usize, layers: usize) -> NoopSteps {
    let text = generate(n, layers, 42, |_| 0);
    let w = world();
    let t = Instant::now();
    let graph = graph_of(&text, &w.providers);
    let validate = t.elapsed();
    drop(graph);

    reset_peak();
    let t = Instant::now();
    let graph = graph_of(&text, &w.providers);
    let plan = diff(&graph, &State::new(), false);
    let plan_time = t.elapsed();
    let plan_peak = peak_rss_mib();
    assert_eq!(plan.summary.create, n);

    reset_peak();
    let t = Instant::now();
    let state = run_apply(&plan, &State::new(), &w, 10).await;
    let apply_time = t.elapsed();
    let apply_peak = peak_rss_mib();
    drop(plan);
    let state_bytes = std::fs::metadata(&w.state_path).map(|m| m.len()).unwrap_or(0);

    // The no-op plan, step by step as the CLI runs it; the total includes
    // dropping the graph, as the CLI does before printing.
    let t = Instant::now();
    let loaded = w.backend.load().expect("load").expect("state exists");
    let load_time = t.elapsed();
    let (refreshed, _) = refresh(loaded, &w.providers, &skyplan_engine::Redactor::default()).await.expect("refresh");
    let refresh_time = t.elapsed() - load_time;
    let spec = Spec::parse(Source { path: "bench.toml".into(), text: text.clone() }).expect("generated spec parses");
    let parse_time = t.elapsed() - load_time - refresh_time;
    let noop_graph = ResourceGraph::build(spec.resources, &w.providers).expect("generated graph is valid");
    let graph_time = t.elapsed() - load_time - refresh_time - parse_time;
    let noop = diff(&noop_graph, &refreshed, false);
    let diff_time = t.elapsed() - load_time - refresh_time - parse_time - graph_time;
    drop(noop_graph);
    let noop_time = t.elapsed();
    assert!(!noop.has_changes(), "a second plan must be empty");

    let t = Instant::now();
    let destroy_plan = diff(&graph, &state, true);
    let after = run_apply(&destroy_plan, &state, &w, 10).await;
    let destroy_time = t.elapsed();
    assert!(after.resources.is_empty());

    println!(
        "| {n} | {layers} | {} | {} | {} | {} | {} | {:.1} | {plan_peak:.0} | {apply_peak:.0} |",
        secs(validate),
        secs(plan_time),
        secs(apply_time),
        secs(noop_time),
        secs(destroy_time),
        state_bytes as f64 / 1_048_576.0,
    );
    NoopSteps { n, load: load_time, refresh: refresh_time, parse: parse_time, graph: graph_time, diff: diff_time }
}

/// Where a no-op plan's time goes.
struct NoopSteps {
    n: usize,
    load: Duration,
    refresh: Duration,
    parse: Duration,
    graph: Duration,
    diff: Duration,
}

/// Apply makespan with per-resource delays of 20-200 ms, against a bound
/// computed offline: the critical path when `parallelism` is unlimited, the
/// greedy list schedule otherwise. Two measurements: the scheduler alone in
/// virtual time (deterministic; see `skyplan_bench::virtual_makespan`) and
/// the real apply, state writes included, on the wall clock (noisy when the
/// machine is loaded).
fn makespan(n: usize, layers: usize, parallelism: usize, rt: &tokio::runtime::Runtime) {
    let text = generate(n, layers, 7, |rng| 20 + rng.below(181));
    let virtual_world = world();
    let graph = graph_of(&text, &virtual_world.providers);
    let plan = diff(&graph, &State::new(), false);
    let bound = if parallelism == usize::MAX { critical_path(&graph) } else { list_schedule(&graph, parallelism) };
    let scheduled = virtual_makespan(&plan, &virtual_world.providers, parallelism);
    let w = world();
    let t = Instant::now();
    rt.block_on(run_apply(&plan, &State::new(), &w, parallelism));
    let took = t.elapsed();
    let p = if parallelism == usize::MAX { "unlimited".to_string() } else { parallelism.to_string() };
    let over = |d: Duration| (d.as_secs_f64() / bound.as_secs_f64() - 1.0) * 100.0;
    println!(
        "| {n} | {layers} | 20-200 | {p} | {} | {} | {:+.1}% | {} | {:+.1}% |",
        secs(bound),
        secs(scheduled),
        over(scheduled),
        secs(took),
        over(took)
    );
}

/// CPU time this thread has run (Linux, /proc/thread-self/schedstat): unlike
/// wall time it does not grow while other processes hold the cores, so it
/// compares code changes on a busy machine.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(stat.split_whitespace().next().and_then(|ns| ns.parse().ok()).unwrap_or(0))
}

/// The median of some durations.
fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// One no-op plan as the CLI makes it (the refresh on `rt`); a plain
/// function, not inlined, so scripts/profile.sh can have callgrind count
/// only inside it.
#[inline(never)]
fn noop_plan(text: &str, w: &World, rt: &tokio::runtime::Runtime) -> skyplan_engine::plan::Plan {
    let loaded = w.backend.load().expect("load").expect("state exists");
    let (refreshed, _) =
        rt.block_on(refresh(loaded, &w.providers, &skyplan_engine::Redactor::default())).expect("refresh");
    let graph = graph_of(text, &w.providers);
    let noop = diff(&graph, &refreshed, false);
    drop(graph);
    noop
}

/// `noop N REPEAT`: apply N resources once, then time the no-op plan (load,
/// refresh, parse, graph, diff, as the CLI runs it) REPEAT times; prints each
/// run and the median. What scripts/profile.sh records.
fn repeat_noop(n: usize, repeat: usize, rt: &tokio::runtime::Runtime) {
    let text = generate(n, 20, 42, |_| 0);
    let w = world();
    let graph = graph_of(&text, &w.providers);
    let plan = diff(&graph, &State::new(), false);
    rt.block_on(run_apply(&plan, &State::new(), &w, 10));
    drop((plan, graph));
    let (mut runs, mut cpu) = (Vec::with_capacity(repeat), Vec::with_capacity(repeat));
    for _ in 0..repeat {
        let (t, c) = (Instant::now(), thread_cpu());
        let noop = noop_plan(&text, &w, rt);
        runs.push(t.elapsed());
        cpu.push(thread_cpu() - c);
        assert!(!noop.has_changes(), "a second plan must be empty");
    }
    let each: Vec<String> = runs.iter().map(|d| secs(*d)).collect();
    println!(
        "no-op plan of {n}, {repeat} runs: {} s; median {} s wall, {} s CPU",
        each.join(" "),
        secs(median(runs)),
        secs(median(cpu))
    );
}

/// A plan on an empty state (parse, graph, diff); not inlined, for
/// scripts/profile.sh.
#[inline(never)]
fn plan_empty(text: &str, providers: &Providers) -> skyplan_engine::plan::Plan {
    let graph = graph_of(text, providers);
    diff(&graph, &State::new(), false)
}

/// `plan N REPEAT`: time the plan of N resources on an empty state (parse,
/// graph, diff) REPEAT times; prints each run and the median.
fn repeat_plan(n: usize, repeat: usize) {
    let text = generate(n, 20, 42, |_| 0);
    let providers = world().providers;
    let (mut runs, mut cpu) = (Vec::with_capacity(repeat), Vec::with_capacity(repeat));
    for _ in 0..repeat {
        let (t, c) = (Instant::now(), thread_cpu());
        let plan = plan_empty(&text, &providers);
        runs.push(t.elapsed());
        cpu.push(thread_cpu() - c);
        assert_eq!(plan.summary.create, n);
    }
    let each: Vec<String> = runs.iter().map(|d| secs(*d)).collect();
    println!(
        "plan of {n} (empty state), {repeat} runs: {} s; median {} s wall, {} s CPU",
        each.join(" "),
        secs(median(runs)),
        secs(median(cpu))
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let number = |i: usize, default: usize| -> usize {
        args.get(i).map_or(default, |a| a.parse().expect("sizes and counts are numbers"))
    };
    match args.first().map(String::as_str) {
        Some("noop") => return repeat_noop(number(1, 10_000), number(2, 5), &rt),
        Some("plan") => return repeat_plan(number(1, 100_000), number(2, 3)),
        _ => {}
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![1_000, 10_000]
    } else {
        args.iter().map(|a| a.parse().expect("sizes are numbers")).collect()
    };
    rt.block_on(async {
        println!("Phases, zero delay (seconds; parallelism 10):\n");
        println!("| resources | layers | validate | plan (empty state) | apply | no-op plan (refresh + diff) | destroy | state MiB | peak RSS during plan, MiB | peak RSS during apply, MiB |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let mut steps = Vec::new();
        for &n in &sizes {
            steps.push(phases(n, 20).await);
        }
        println!("\nNo-op plan by step (seconds):\n");
        println!("| resources | state load | refresh | spec parse | graph | diff |");
        println!("|---|---|---|---|---|---|");
        for s in &steps {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                s.n,
                secs(s.load),
                secs(s.refresh),
                secs(s.parse),
                secs(s.graph),
                secs(s.diff)
            );
        }
    });
    println!("\nMakespan with per-resource delays against the critical path (seconds):\n");
    println!("| resources | layers | delay ms | parallelism | critical path | scheduler, virtual time | over | apply, wall clock | over |");
    println!("|---|---|---|---|---|---|---|---|---|");
    makespan(200, 10, usize::MAX, &rt);
    makespan(1_000, 20, usize::MAX, &rt);
    println!("\nMakespan at a parallelism bound against a greedy list schedule (seconds):\n");
    println!("| resources | layers | delay ms | parallelism | list schedule | scheduler, virtual time | over | apply, wall clock | over |");
    println!("|---|---|---|---|---|---|---|---|---|");
    makespan(200, 10, 10, &rt);
    makespan(1_000, 20, 10, &rt);
}
