//! A generic walk of a DAG of tasks: each task starts as soon as every task
//! it depends on has succeeded, at most `parallelism` at a time. Among ready
//! tasks the one with the longest remaining path (by estimated cost) goes
//! first, which is what shortens the total time behind slow resources.
//!
//! A task holds its slot until it finishes, or until it hands the slot back
//! early with [`Release::release`] (apply does so once the cloud has done
//! an operation and only its recording remains): the next ready task starts
//! then, while the task's dependents still wait for it to finish.
//!
//! Architecture invariant: this module knows nothing about resources,
//! providers or state; it schedules numbered tasks.

use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Not run because a task it depends on failed or was not run.
    Skipped,
    /// Not run because the walk was asked to stop.
    NotStarted,
}

/// For each task, the cost of the longest path from it to the end of the
/// graph (its own cost included). `deps[i]` lists what task i waits for.
pub fn remaining_path_costs(deps: &[Vec<usize>], cost: &[u64]) -> Vec<u64> {
    let n = deps.len();
    let dependents = dependents(deps);
    let mut pending: Vec<usize> = dependents.iter().map(Vec::len).collect();
    let mut stack: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut best = vec![0u64; n];
    while let Some(i) = stack.pop() {
        let tail = dependents[i].iter().map(|&d| best[d]).max().unwrap_or(0);
        best[i] = cost[i].saturating_add(tail);
        for &d in &deps[i] {
            pending[d] -= 1;
            if pending[d] == 0 {
                stack.push(d);
            }
        }
    }
    best
}

fn dependents(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); deps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            out[d].push(i);
        }
    }
    out
}

/// A running task's handle on its parallelism slot. Dropping it does
/// nothing: the slot is freed when the task finishes, unless released first.
#[derive(Debug)]
pub struct Release {
    task: usize,
    tx: mpsc::UnboundedSender<usize>,
}

impl Release {
    /// Free the task's slot now, for the next ready task; the task itself is
    /// not finished, so nothing that depends on it starts yet.
    pub fn release(self) {
        // The walk outlives its tasks, so the receiver is there.
        let _ = self.tx.send(self.task);
    }
}

/// The tasks that can never start because they wait, directly or through
/// others, on themselves: what is left once every task whose dependencies
/// can all finish is taken away. Empty for an acyclic graph. A walk of a
/// graph with such tasks would stop with them left and nothing running.
pub fn blocked(deps: &[Vec<usize>]) -> Vec<usize> {
    let dependents = dependents(deps);
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut stack: Vec<usize> = (0..deps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut done = vec![false; deps.len()];
    while let Some(i) = stack.pop() {
        done[i] = true;
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                stack.push(d);
            }
        }
    }
    (0..deps.len()).filter(|&i| !done[i]).collect()
}

/// Run every task once its dependencies succeeded. `run(i, release)` returns
/// whether task i succeeded; a failure skips everything that depends on it
/// while independent tasks go on. At most `parallelism` tasks hold a slot at
/// a time (see [`Release`]). Once `stop` is set, nothing new starts and the
/// running tasks are awaited. The graph must be acyclic.
pub async fn walk<F, Fut>(
    deps: &[Vec<usize>],
    priority: &[u64],
    parallelism: usize,
    stop: Arc<AtomicBool>,
    mut run: F,
) -> Vec<Outcome>
where
    F: FnMut(usize, Release) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let n = deps.len();
    let parallelism = parallelism.max(1);
    let dependents = dependents(deps);
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    let mut ready: BinaryHeap<(u64, std::cmp::Reverse<usize>)> =
        (0..n).filter(|&i| waiting[i] == 0).map(|i| (priority[i], std::cmp::Reverse(i))).collect();
    let mut running: JoinSet<(usize, bool)> = JoinSet::new();
    // Which tasks hold a slot, and how many do.
    let mut holding = vec![false; n];
    let mut busy = 0;
    let (release_tx, mut released) = mpsc::unbounded_channel();

    loop {
        while busy < parallelism && !stop.load(Ordering::SeqCst) {
            let Some((_, std::cmp::Reverse(i))) = ready.pop() else {
                break;
            };
            holding[i] = true;
            busy += 1;
            let fut = run(i, Release { task: i, tx: release_tx.clone() });
            running.spawn(async move { (i, fut.await) });
        }
        if running.is_empty() {
            break;
        }
        let joined = tokio::select! {
            biased;
            Some(i) = released.recv() => {
                if std::mem::take(&mut holding[i]) {
                    busy -= 1;
                }
                continue;
            }
            Some(joined) = running.join_next() => joined,
        };
        let (i, ok) = match joined {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if std::mem::take(&mut holding[i]) {
            busy -= 1;
        }
        if ok {
            outcome[i] = Some(Outcome::Succeeded);
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 && outcome[d].is_none() {
                    ready.push((priority[d], std::cmp::Reverse(d)));
                }
            }
        } else {
            outcome[i] = Some(Outcome::Failed);
            let mut stack = dependents[i].clone();
            while let Some(d) = stack.pop() {
                if outcome[d].is_none() {
                    outcome[d] = Some(Outcome::Skipped);
                    stack.extend(dependents[d].iter().copied());
                }
            }
        }
    }
    outcome.into_iter().map(|o| o.unwrap_or(Outcome::NotStarted)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::Instant;

    fn never() -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(false))
    }

    #[test]
    fn remaining_path_costs_take_the_longest_branch() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3 with costs 1, 5, 2, 1
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert_eq!(remaining_path_costs(&deps, &[1, 5, 2, 1]), vec![7, 6, 3, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_starts_before_its_dependencies_finish_and_branches_overlap() {
        // Diamond plus an independent chain; every task takes 10 ms.
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2], vec![], vec![4]];
        let log: Arc<Mutex<Vec<(usize, Instant, Instant)>>> = Arc::default();
        let l = log.clone();
        let outcome = walk(&deps, &[0; 6], usize::MAX, never(), move |i, _| {
            let l = l.clone();
            async move {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                l.lock().unwrap().push((i, start, Instant::now()));
                true
            }
        })
        .await;
        assert!(outcome.iter().all(|o| *o == Outcome::Succeeded));
        let log = log.lock().unwrap();
        let at = |i: usize| log.iter().find(|e| e.0 == i).copied().unwrap();
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                assert!(at(i).1 >= at(d).2, "task {i} started before its dependency {d} finished");
            }
        }
        // 1 and 2 run at the same time, and so does the independent chain.
        assert_eq!(at(1).1, at(2).1);
        assert_eq!(at(4).1, at(0).1);
        let makespan = log.iter().map(|e| e.2).max().unwrap() - log.iter().map(|e| e.1).min().unwrap();
        assert_eq!(makespan, Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_failure_skips_dependents_only() {
        let deps = vec![vec![], vec![0], vec![1], vec![]];
        let outcome = walk(&deps, &[0; 4], 2, never(), |i, _| async move { i != 0 }).await;
        assert_eq!(outcome, vec![Outcome::Failed, Outcome::Skipped, Outcome::Skipped, Outcome::Succeeded]);
    }

    #[tokio::test(start_paused = true)]
    async fn parallelism_bounds_running_tasks() {
        let deps = vec![vec![]; 8];
        let now = Arc::new(Mutex::new((0usize, 0usize)));
        let n = now.clone();
        walk(&deps, &[0; 8], 3, never(), move |_, _| {
            let n = n.clone();
            async move {
                {
                    let mut g = n.lock().unwrap();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                n.lock().unwrap().0 -= 1;
                true
            }
        })
        .await;
        assert_eq!(now.lock().unwrap().1, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn critical_path_first_under_a_bound() {
        // Two slots, two short roots (0 and 1, 10 ms each) and a long chain
        // (2 -> 3, 100 ms each) listed LAST, so index order would start the
        // short ones first and finish at 210 ms. Longest path first starts
        // the chain at once: 200 ms.
        let deps = vec![vec![], vec![], vec![], vec![2]];
        let cost = [10, 10, 100, 100];
        let prio = remaining_path_costs(&deps, &cost);
        let start = Instant::now();
        let started: Arc<Mutex<Vec<usize>>> = Arc::default();
        let s = started.clone();
        walk(&deps, &prio, 2, never(), move |i, _| {
            s.lock().unwrap().push(i);
            async move {
                tokio::time::sleep(Duration::from_millis(cost[i])).await;
                true
            }
        })
        .await;
        assert_eq!(started.lock().unwrap()[0], 2, "the chain's head starts first");
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_slot_starts_the_next_task_but_not_the_dependents() {
        // One slot. Task 0 works 10 ms, releases its slot, then takes 50 ms
        // more to finish; 1 (independent) starts at the release, 2 (depends
        // on 0) only once 0 has finished.
        let deps = vec![vec![], vec![], vec![0]];
        let start = Instant::now();
        let log: Arc<Mutex<Vec<(usize, Duration)>>> = Arc::default();
        let l = log.clone();
        walk(&deps, &[2, 1, 0], 1, never(), move |i, release| {
            let l = l.clone();
            async move {
                l.lock().unwrap().push((i, start.elapsed()));
                tokio::time::sleep(Duration::from_millis(10)).await;
                if i == 0 {
                    release.release();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                true
            }
        })
        .await;
        let log = log.lock().unwrap();
        assert_eq!(*log, vec![(0, Duration::ZERO), (1, Duration::from_millis(10)), (2, Duration::from_millis(60))]);
    }

    #[test]
    fn blocked_tasks_are_those_on_or_behind_a_cycle() {
        assert!(blocked(&[vec![], vec![0], vec![1]]).is_empty());
        // 1 and 2 wait on each other, 3 waits on 2; 0 is free.
        assert_eq!(blocked(&[vec![], vec![0, 2], vec![1], vec![2]]), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn stop_starts_nothing_new() {
        let deps = vec![vec![], vec![0]];
        let stop = never();
        let s = stop.clone();
        let outcome = walk(&deps, &[0; 2], 1, stop, move |_, _| {
            s.store(true, Ordering::SeqCst);
            async { true }
        })
        .await;
        assert_eq!(outcome, vec![Outcome::Succeeded, Outcome::NotStarted]);
    }
}
