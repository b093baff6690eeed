//! The conformance suite every state [`Backend`] runs, as Terraform's
//! statemgr `TestFull`: a new backend passes [`run`] or is not a backend.
//!
//! It checks what the [`Backend`] trait and `docs/state.md` promise, through
//! the trait only: an empty store loads as nothing; `persist` then `load`
//! round-trips exactly (the backend never touches `serial` or `lineage`);
//! each run's first save keeps the state before it as the backup, later saves
//! of the run leave it alone, and a first-ever save writes none; what the
//! [`Writer`] commits is loadable by a new handle as soon as the commit
//! returns, one serial per changing group, none for a group that changes
//! nothing, and nothing is left unfolded after the run; a lock is seen by
//! every handle, a second lock is refused naming the holder (at once, or
//! after waiting), `unlock` with another id is refused naming the holder
//! and releases nothing, `unlock` of nothing is refused, a waiting lock is
//! granted when the holder releases, and of many racing lockers exactly one
//! wins.
//!
//! It panics on the first broken promise, so it is meant for tests: the
//! local backend's are in [`crate::local`], S3's in `skyplan-state-s3`.
//! Not part of the crate's API for programs.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::error::StateError;
use crate::lock::LockInfo;
use crate::model::{Mutation, PendingCreate, ResourceState, State};
use crate::writer::Writer;

/// The storage under test.
pub struct Subject<'a> {
    /// A new handle on the storage, as a new run would open it. Every call
    /// must reach the same storage, which is empty when [`run`] starts.
    pub open: &'a (dyn Fn() -> Box<dyn Backend> + Sync),
    /// The stored backup, read by the storage's own means (not through the
    /// backend under test); `None` when there is none.
    pub read_backup: &'a (dyn Fn() -> Option<State> + Sync),
}

/// Runs every check against `subject`, in order (each builds on what the
/// one before stored). Panics naming the first promise that is broken.
pub fn run(subject: &Subject<'_>) {
    let lineage = empty_store_loads_as_nothing(subject);
    persist_then_load_round_trips_exactly(subject, &lineage);
    first_save_of_a_run_keeps_the_backup(subject);
    writer_commits_are_durable_one_serial_per_group(subject);
    locks_are_exclusive_and_name_their_holder(subject);
    a_waiting_lock_is_granted_on_release(subject);
    of_racing_lockers_exactly_one_wins(subject);
}

fn resource(id: &str) -> ResourceState {
    let mut attributes = Map::new();
    attributes.insert("id".into(), Value::String(id.into()));
    attributes.insert("nested".into(), serde_json::json!({"list": [1, 2.5, null, "x"], "flag": true}));
    let mut inputs = Map::new();
    inputs.insert("name".into(), Value::String(format!("name of {id}")));
    ResourceState {
        kind: "test_resource".into(),
        provider: "test".into(),
        id: id.into(),
        inputs,
        attributes,
        dependencies: vec!["test_resource.base".into()],
    }
}

fn sample_state() -> State {
    let mut state = State::new();
    state.resources.insert("test_resource.base".into(), resource("r-base"));
    state.resources.insert("test_resource.child[\"a b\"]".into(), resource("r-child"));
    state.pending.insert(
        "test_resource.pending".into(),
        PendingCreate {
            kind: "test_resource".into(),
            provider: "test".into(),
            client_token: "token-1".into(),
            inputs: Map::new(),
            dependencies: vec![],
        },
    );
    state.deposed.insert("test_resource.base".into(), resource("r-old"));
    state
}

fn load(backend: &dyn Backend) -> Option<State> {
    backend.load().unwrap_or_else(|e| panic!("load of {} failed: {e}", backend.describe()))
}

fn persist(backend: &dyn Backend, state: &State) {
    backend.persist(state).unwrap_or_else(|e| panic!("persist to {} failed: {e}", backend.describe()));
}

/// Returns the lineage the next checks build on.
fn empty_store_loads_as_nothing(subject: &Subject<'_>) -> String {
    let backend = (subject.open)();
    assert!(!backend.describe().is_empty(), "describe() must say where the state lives");
    assert_eq!(load(&*backend), None, "an empty store must load as None");
    assert_eq!(backend.current_lock().expect("current_lock of an empty store"), None, "no lock is held at first");
    assert!(!backend.has_unfolded_changes(), "an empty store has nothing unfolded");
    match backend.unlock("no-such-lock") {
        Err(StateError::NotLocked { state }) => assert_eq!(state, backend.describe()),
        other => panic!("unlock with no lock held must fail with NotLocked, got {other:?}"),
    }
    assert_eq!((subject.read_backup)(), None, "an empty store has no backup");
    State::new().lineage
}

fn persist_then_load_round_trips_exactly(subject: &Subject<'_>, lineage: &str) {
    let backend = (subject.open)();
    let mut state = sample_state();
    state.lineage = lineage.to_string();
    persist(&*backend, &state);
    assert_eq!(load(&*backend), Some(state.clone()), "load after persist returns exactly what was persisted");
    assert_eq!(load(&*(subject.open)()), Some(state.clone()), "a new handle loads what was persisted");
    assert_eq!((subject.read_backup)(), None, "a first-ever save writes no backup");

    // The backend writes the serial it is given: bumping is the caller's job.
    for serial in [1, 2, 2, 7] {
        state.serial = serial;
        persist(&*backend, &state);
        let loaded = load(&*(subject.open)()).expect("a state after persist");
        assert_eq!((loaded.lineage.as_str(), loaded.serial), (lineage, serial), "persist keeps lineage and serial");
    }
    assert_eq!((subject.read_backup)(), None, "later saves of the first run still write no backup");
}

fn first_save_of_a_run_keeps_the_backup(subject: &Subject<'_>) {
    let before = load(&*(subject.open)()).expect("the state stored by the previous check");

    let run = (subject.open)();
    let mut state = load(&*run).expect("state");
    state.serial += 1;
    state.resources.remove("test_resource.child[\"a b\"]");
    persist(&*run, &state);
    assert_eq!((subject.read_backup)(), Some(before.clone()), "a run's first save backs up the state before the run");
    state.serial += 1;
    persist(&*run, &state);
    assert_eq!((subject.read_backup)(), Some(before), "later saves of a run leave the backup alone");

    let next_run = (subject.open)();
    let last = state.clone();
    state.serial += 1;
    persist(&*next_run, &state);
    assert_eq!((subject.read_backup)(), Some(last), "the next run's first save backs up the previous run's result");
}

fn writer_commits_are_durable_one_serial_per_group(subject: &Subject<'_>) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime for the writer");
    let backend: Arc<dyn Backend> = Arc::from((subject.open)());
    let start = load(&*backend).expect("state");
    let writer = Writer::start(Arc::clone(&backend), start.clone());
    let commit = |mutations: Vec<Mutation>| {
        runtime.block_on(writer.commit(mutations)).unwrap_or_else(|e| panic!("commit failed: {e}"))
    };
    let stored = || load(&*(subject.open)()).expect("state");

    commit(vec![Mutation::Upsert("test_resource.new".into(), resource("r-new"))]);
    let after_one = stored();
    assert_eq!(after_one.serial, start.serial + 1, "a changing commit bumps serial by one");
    assert_eq!(after_one.lineage, start.lineage, "commits keep the lineage");
    assert_eq!(after_one.resources.get("test_resource.new"), Some(&resource("r-new")), "a commit is durable");

    commit(vec![Mutation::Remove("test_resource.absent".into())]);
    assert_eq!(stored().serial, after_one.serial, "a commit that changes nothing keeps the serial");

    commit(vec![
        Mutation::Remove("test_resource.new".into()),
        Mutation::Settle("test_resource.pending".into()),
        Mutation::DeleteDeposed("test_resource.base".into()),
    ]);
    let after_group = stored();
    assert_eq!(after_group.serial, after_one.serial + 1, "one commit of several changes is one serial");
    assert!(after_group.pending.is_empty() && after_group.deposed.is_empty(), "{after_group:?}");
    assert!(!after_group.resources.contains_key("test_resource.new"));

    let finished = runtime.block_on(writer.finish()).unwrap_or_else(|e| panic!("finish failed: {e}"));
    assert_eq!(finished, after_group, "finish returns what is stored");
    let reopened = (subject.open)();
    assert_eq!(load(&*reopened), Some(finished), "after the run the store holds the final state");
    assert!(!reopened.has_unfolded_changes(), "nothing is left unfolded after a run ends");
}

fn locks_are_exclusive_and_name_their_holder(subject: &Subject<'_>) {
    let (a, b) = ((subject.open)(), (subject.open)());
    let first = LockInfo::new("apply");
    let second = LockInfo::new("destroy");
    a.lock(&first, Duration::ZERO).unwrap_or_else(|e| panic!("a free lock must be granted: {e}"));
    assert_eq!(a.current_lock().unwrap(), Some(first.clone()), "the holder sees its lock");
    assert_eq!(b.current_lock().unwrap(), Some(first.clone()), "every handle sees the lock");

    for timeout in [Duration::ZERO, Duration::from_millis(300)] {
        match b.lock(&second, timeout) {
            Err(err @ StateError::Locked(_)) => {
                let StateError::Locked(held) = &err else { unreachable!() };
                assert_eq!(held, &first, "a refused lock names the holder");
                let text = err.to_string();
                assert!(text.contains(&first.id) && text.contains(&first.holder), "{text}");
            }
            other => panic!("a second lock (timeout {timeout:?}) must be refused with Locked, got {other:?}"),
        }
    }
    assert_eq!(a.current_lock().unwrap(), Some(first.clone()), "a refused lock leaves the holder's");

    match b.unlock(&second.id) {
        Err(StateError::LockMismatch { requested, held }) => {
            assert_eq!(requested, second.id);
            assert_eq!(*held, first, "a refused unlock names the holder");
        }
        other => panic!("unlock with another id must fail with LockMismatch, got {other:?}"),
    }
    assert_eq!(b.current_lock().unwrap(), Some(first.clone()), "a refused unlock releases nothing");

    // The lock is advisory: its holder still loads and saves.
    let state = load(&*a).expect("state");
    persist(&*a, &state);

    // `skyplan unlock ID` runs in another process: any handle with the id releases.
    b.unlock(&first.id).unwrap_or_else(|e| panic!("unlock with the held id must succeed: {e}"));
    assert_eq!(a.current_lock().unwrap(), None, "unlock releases the lock");
    assert!(matches!(a.unlock(&first.id), Err(StateError::NotLocked { .. })), "a second unlock finds nothing");
    b.lock(&second, Duration::ZERO).unwrap_or_else(|e| panic!("a released lock must be granted again: {e}"));
    b.unlock(&second.id).expect("unlock");
}

fn a_waiting_lock_is_granted_on_release(subject: &Subject<'_>) {
    let holder = LockInfo::new("apply");
    let waiter = LockInfo::new("apply");
    let a = (subject.open)();
    a.lock(&holder, Duration::ZERO).expect("a free lock");
    let waiting = thread::scope(|s| {
        let waiting = s.spawn(|| (subject.open)().lock(&waiter, Duration::from_secs(20)));
        thread::sleep(Duration::from_millis(300));
        a.unlock(&holder.id).expect("the holder releases");
        waiting.join().expect("the waiting thread")
    });
    waiting.unwrap_or_else(|e| panic!("a lock waiting with a timeout must be granted on release: {e}"));
    assert_eq!(a.current_lock().unwrap(), Some(waiter.clone()));
    a.unlock(&waiter.id).expect("unlock");
}

fn of_racing_lockers_exactly_one_wins(subject: &Subject<'_>) {
    const RACERS: usize = 4;
    let barrier = Barrier::new(RACERS);
    let results: BTreeMap<String, Result<(), String>> = thread::scope(|s| {
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                s.spawn(|| {
                    let backend = (subject.open)();
                    let info = LockInfo::new("apply");
                    barrier.wait();
                    (info.id.clone(), backend.lock(&info, Duration::ZERO).map_err(|e| e.to_string()))
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().expect("a racing thread")).collect()
    });
    let winners: Vec<&String> = results.iter().filter(|(_, r)| r.is_ok()).map(|(id, _)| id).collect();
    assert_eq!(winners.len(), 1, "exactly one racing locker wins: {results:?}");
    let held = (subject.open)().current_lock().unwrap().expect("the winner's lock");
    assert_eq!(&held.id, winners[0], "the lock held is the winner's");
    for (id, result) in &results {
        if let Err(text) = result {
            assert!(text.contains(&held.id), "loser {id} must be told the winner: {text}");
        }
    }
    (subject.open)().unlock(&held.id).expect("unlock");
}
