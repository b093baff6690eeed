//! [`Writer`]: the one place that changes and persists the state during a
//! run, with group commit.
//!
//! The executor finishes operations concurrently and must persist after each
//! one (so that a crash loses nothing that exists in the cloud), but writing
//! and fsyncing the whole state file per operation would cost thousands of
//! writes. Instead every task sends its [`Mutation`]s to a single writer
//! thread. That thread waits for one command, takes everything else already
//! queued, applies it all, bumps `serial` once (only if something changed),
//! persists once, and then answers every waiter of the batch. While it is
//! persisting, new commits queue up and form the next batch; so the number of
//! writes follows the disk's speed, not the number of operations.
//!
//! What the state means is not this module's business: it applies
//! mutations to a map of addresses.

use std::fmt;
use std::sync::Arc;
use std::thread;

use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::error::StateError;
use crate::model::{Mutation, State};

enum Command {
    Commit(Vec<Mutation>, oneshot::Sender<Result<(), StateError>>),
    Finish(oneshot::Sender<Result<State, StateError>>),
}

/// A handle to the state writer thread. Clone it freely; every clone feeds
/// the same thread.
#[derive(Clone)]
pub struct Writer {
    commands: mpsc::UnboundedSender<Command>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("running", &!self.commands.is_closed()).finish()
    }
}

impl Writer {
    /// Starts the writer thread with `state` as the current state (usually
    /// what was just loaded) and `backend` as where to persist it. Nothing
    /// is persisted until a commit changes something.
    ///
    /// Panics if the operating system cannot start a thread, as
    /// [`std::thread::spawn`] does.
    pub fn start(backend: Arc<dyn Backend>, state: State) -> Writer {
        let (commands, queue) = mpsc::unbounded_channel();
        thread::Builder::new()
            .name("skyplan-state-writer".into())
            .spawn(move || run(backend, state, queue))
            .expect("cannot start the state writer thread");
        Writer { commands }
    }

    /// Applies `mutations` (in order, after everything committed before)
    /// and resolves once they are durably persisted, or with the error that
    /// prevented it. After a failed persist, this and every later commit
    /// fail with [`StateError::NotSaved`].
    ///
    /// Dropping the returned future does not withdraw the mutations: once
    /// called, they will be applied and persisted.
    pub async fn commit(&self, mutations: Vec<Mutation>) -> Result<(), StateError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Commit(mutations, reply)).map_err(|_| StateError::WriterClosed)?;
        answer.await.map_err(|_| StateError::WriterClosed)?
    }

    /// Waits until everything committed before this call is persisted, stops
    /// the writer thread and returns the final state. Commits made through
    /// other clones after this call fail with [`StateError::WriterClosed`].
    pub async fn finish(self) -> Result<State, StateError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Finish(reply)).map_err(|_| StateError::WriterClosed)?;
        answer.await.map_err(|_| StateError::WriterClosed)?
    }
}

/// The writer thread: one batch per loop. Ends on `Finish`, or when every
/// [`Writer`] handle is gone and the queue is empty.
fn run(backend: Arc<dyn Backend>, mut state: State, mut queue: mpsc::UnboundedReceiver<Command>) {
    // Set by the first failed persist; from then on nothing is applied or
    // persisted, and every commit gets this error.
    let mut failure: Option<Arc<StateError>> = None;
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(next) = queue.try_recv() {
            batch.push(next);
        }

        let mut waiters = Vec::new();
        let mut finishers = Vec::new();
        let mut applied = Vec::new();
        for command in batch {
            match command {
                Command::Commit(mutations, reply) => {
                    if failure.is_none() {
                        for mutation in mutations {
                            if apply(&mut state, mutation.clone()) {
                                applied.push(mutation);
                            }
                        }
                    }
                    waiters.push(reply);
                }
                Command::Finish(reply) => finishers.push(reply),
            }
        }

        if !applied.is_empty() && failure.is_none() {
            state.serial += 1;
            if let Err(e) = backend.persist_batch(&state, &applied) {
                failure = Some(Arc::new(e));
            }
        }
        if !finishers.is_empty() && failure.is_none() {
            if let Err(e) = backend.finish_run(&state) {
                failure = Some(Arc::new(e));
            }
        }
        let not_saved = |e: &Arc<StateError>| StateError::NotSaved(Arc::clone(e));
        for reply in waiters {
            // A waiter that stopped listening lost nothing: the change is saved.
            let _ = reply.send(failure.as_ref().map_or(Ok(()), |e| Err(not_saved(e))));
        }
        if !finishers.is_empty() {
            for reply in finishers {
                let _ = reply.send(match &failure {
                    None => Ok(state.clone()),
                    Some(e) => Err(not_saved(e)),
                });
            }
            return;
        }
    }
}

/// Applies one mutation; true if the state changed.
pub(crate) fn apply(state: &mut State, mutation: Mutation) -> bool {
    match mutation {
        Mutation::Upsert(address, resource) => {
            let settled = state.pending.remove(&address).is_some();
            if state.resources.get(&address) == Some(&resource) {
                settled
            } else {
                state.resources.insert(address, resource);
                true
            }
        }
        Mutation::Remove(address) => state.resources.remove(&address).is_some(),
        Mutation::Intend(address, pending) => state.pending.insert(address, pending.clone()).as_ref() != Some(&pending),
        Mutation::Settle(address) => state.pending.remove(&address).is_some(),
        Mutation::Depose(address, resource) => {
            state.deposed.insert(address, resource.clone()).as_ref() != Some(&resource)
        }
        Mutation::DeleteDeposed(address) => state.deposed.remove(&address).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalBackend;
    use crate::lock::LockInfo;
    use crate::model::ResourceState;
    use serde_json::{json, Map};
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command as Process, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    fn resource(id: &str) -> ResourceState {
        let attributes: Map<String, serde_json::Value> = json!({"id": id}).as_object().unwrap().clone();
        ResourceState {
            kind: "sim_resource".into(),
            provider: "sim".into(),
            id: id.into(),
            inputs: Map::new(),
            attributes,
            dependencies: vec![],
        }
    }

    fn upsert(address: &str) -> Mutation {
        Mutation::Upsert(address.to_string(), resource(&format!("id-{address}")))
    }

    /// Wraps a backend, counting persists and recording each persisted
    /// serial; optionally slows persists down like a real disk, and fails
    /// every persist after the first `fail_after`.
    struct Recording {
        inner: LocalBackend,
        delay: Duration,
        fail_after: Option<usize>,
        persists: AtomicUsize,
        serials: Mutex<Vec<u64>>,
    }

    impl Recording {
        fn new(path: PathBuf, delay: Duration) -> Recording {
            Recording {
                inner: LocalBackend::new(path),
                delay,
                fail_after: None,
                persists: AtomicUsize::new(0),
                serials: Mutex::new(Vec::new()),
            }
        }
        fn persists(&self) -> usize {
            self.persists.load(Ordering::SeqCst)
        }
    }

    impl Backend for Recording {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn load(&self) -> Result<Option<State>, StateError> {
            self.inner.load()
        }
        fn persist(&self, state: &State) -> Result<(), StateError> {
            let n = self.persists.fetch_add(1, Ordering::SeqCst);
            if self.fail_after.is_some_and(|limit| n >= limit) {
                return Err(StateError::Write {
                    path: self.inner.path().to_path_buf(),
                    cause: std::io::Error::other("disk full (simulated)"),
                });
            }
            std::thread::sleep(self.delay);
            self.serials.lock().unwrap().push(state.serial);
            self.inner.persist(state)
        }
        fn lock(&self, info: &LockInfo, timeout: Duration) -> Result<(), StateError> {
            self.inner.lock(info, timeout)
        }
        fn unlock(&self, lock_id: &str) -> Result<(), StateError> {
            self.inner.unlock(lock_id)
        }
        fn current_lock(&self) -> Result<Option<LockInfo>, StateError> {
            self.inner.current_lock()
        }
    }

    fn load(path: &Path) -> State {
        LocalBackend::new(path.to_path_buf()).load().unwrap().expect("a state file")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_are_all_durable_and_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.state.json");
        // 2 ms per persist, like a disk's fsync.
        let backend = Arc::new(Recording::new(path.clone(), Duration::from_millis(2)));
        let writer = Writer::start(backend.clone(), State::new());

        let tasks: Vec<_> = (0..50)
            .map(|task| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        let address = format!("sim_resource.r[{task}-{i}]");
                        writer.commit(vec![upsert(&address)]).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let final_state = writer.finish().await.unwrap();

        assert_eq!(final_state.resources.len(), 1000);
        assert_eq!(load(&path), final_state, "the file holds every commit");
        let persists = backend.persists();
        assert_eq!(final_state.serial, persists as u64, "one serial per persist");
        let serials = backend.serials.lock().unwrap().clone();
        assert!(serials.windows(2).all(|w| w[1] == w[0] + 1), "{serials:?}");
        assert!(persists <= 200, "group commit: {persists} persists for 1000 commits");
    }

    #[tokio::test]
    async fn sequential_commits_persist_each_and_bump_serial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.state.json");
        let backend = Arc::new(Recording::new(path.clone(), Duration::ZERO));
        let mut start = State::new();
        start.serial = 41;
        let lineage = start.lineage.clone();
        let writer = Writer::start(backend.clone(), start);

        writer.commit(vec![upsert("a.x"), upsert("a.y")]).await.unwrap();
        assert_eq!(load(&path).serial, 42);
        writer.commit(vec![Mutation::Remove("a.x".into())]).await.unwrap();
        let on_disk = load(&path);
        assert_eq!(on_disk.serial, 43);
        assert_eq!(on_disk.lineage, lineage);
        assert_eq!(on_disk.resources.keys().collect::<Vec<_>>(), ["a.y"]);
        assert_eq!(backend.persists(), 2);
        assert_eq!(writer.finish().await.unwrap(), on_disk);
    }

    #[tokio::test]
    async fn commits_that_change_nothing_are_not_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.state.json");
        let backend = Arc::new(Recording::new(path.clone(), Duration::ZERO));
        let writer = Writer::start(backend.clone(), State::new());

        writer.commit(vec![upsert("a.x")]).await.unwrap();
        writer.commit(vec![upsert("a.x")]).await.unwrap();
        writer.commit(vec![Mutation::Remove("a.gone".into())]).await.unwrap();
        writer.commit(vec![]).await.unwrap();
        let state = writer.finish().await.unwrap();
        assert_eq!(backend.persists(), 1);
        assert_eq!(state.serial, 1);
    }

    #[tokio::test]
    async fn finish_without_commits_returns_the_state_unsaved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.state.json");
        let state = State::new();
        let writer = Writer::start(Arc::new(LocalBackend::new(path.clone())), state.clone());
        assert_eq!(writer.finish().await.unwrap(), state);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_failed_persist_fails_its_batch_and_every_later_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.state.json");
        let mut recording = Recording::new(path.clone(), Duration::ZERO);
        recording.fail_after = Some(1);
        let backend = Arc::new(recording);
        let writer = Writer::start(backend.clone(), State::new());

        writer.commit(vec![upsert("a.saved")]).await.unwrap();
        let err = writer.commit(vec![upsert("a.lost")]).await.unwrap_err();
        assert!(matches!(err, StateError::NotSaved(_)), "{err}");
        assert!(err.to_string().contains("disk full (simulated)"), "{err}");
        let later = writer.commit(vec![upsert("a.later")]).await.unwrap_err();
        assert!(matches!(later, StateError::NotSaved(_)), "{later}");
        assert!(writer.finish().await.is_err());

        assert_eq!(backend.persists(), 2, "nothing is persisted after a failure");
        let on_disk = load(&path);
        assert_eq!(on_disk.resources.keys().collect::<Vec<_>>(), ["a.saved"]);
    }

    #[tokio::test]
    async fn commits_after_finish_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(Arc::new(LocalBackend::new(dir.path().join("s.state.json"))), State::new());
        let other = writer.clone();
        assert_eq!(format!("{other:?}"), "Writer { running: true }");
        writer.finish().await.unwrap();
        let err = other.commit(vec![upsert("a.x")]).await.unwrap_err();
        assert!(matches!(err, StateError::WriterClosed), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_writer_mid_run_leaves_every_resolved_commit_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.state.json");
        let backend = Arc::new(Recording::new(path.clone(), Duration::from_millis(1)));
        let writer = Writer::start(backend, State::new());

        for i in 0..20 {
            writer.commit(vec![upsert(&format!("a.done[{i}]"))]).await.unwrap();
        }
        // More in flight when the run "crashes": handles dropped, no finish.
        let in_flight = {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    if writer.commit(vec![upsert(&format!("a.late[{i}]"))]).await.is_err() {
                        break;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(writer);
        // Read while the writer thread may still be persisting.
        let on_disk: State =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("the file is valid state at any moment");
        for i in 0..20 {
            assert!(on_disk.resources.contains_key(&format!("a.done[{i}]")));
        }
        in_flight.abort();
    }

    /// Kills (SIGKILL) a process that is committing concurrently, at three
    /// different moments, and checks the file it leaves: valid state holding
    /// every mutation whose commit had resolved. The process is this test
    /// binary running [`crash_child`].
    #[test]
    fn a_killed_run_leaves_valid_state_with_every_resolved_commit() {
        for kill_after in [25, 120, 400] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("crash.state.json");
            let mut child = Process::new(std::env::current_exe().unwrap())
                .args(["writer::tests::crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CRASH_FILE_VAR, &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let mut resolved = Vec::new();
            while resolved.len() < kill_after {
                let line = lines.next().expect("child ended early").unwrap();
                if let Some(address) = line.strip_prefix("resolved ") {
                    resolved.push(address.to_string());
                }
            }
            child.kill().unwrap();
            child.wait().unwrap();
            // Lines already in the pipe were resolved before the kill too.
            for line in lines.map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("resolved ") {
                    resolved.push(address.to_string());
                }
            }

            let on_disk = load(&path);
            let missing: Vec<_> = resolved.iter().filter(|a| !on_disk.resources.contains_key(*a)).collect();
            assert!(missing.is_empty(), "lost after kill: {missing:?}");
        }
    }

    const CRASH_FILE_VAR: &str = "SKYPLAN_STATE_CRASH_TEST_FILE";

    /// Not a test on its own: the process that
    /// [`a_killed_run_leaves_valid_state_with_every_resolved_commit`] kills.
    /// Commits from 8 tasks and prints `resolved ADDRESS` after each commit
    /// resolves. Gives up after 20 s in case nobody kills it.
    #[test]
    #[ignore = "run by a_killed_run_leaves_valid_state_with_every_resolved_commit"]
    fn crash_child() {
        let Some(path) = std::env::var_os(CRASH_FILE_VAR) else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let writer = Writer::start(Arc::new(LocalBackend::new(path.into())), State::new());
            let tasks: Vec<_> = (0..8)
                .map(|task| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        for i in 0.. {
                            let address = format!("sim_resource.c[{task}-{i}]");
                            writer.commit(vec![upsert(&address)]).await.unwrap();
                            println!("resolved {address}");
                        }
                    })
                })
                .collect();
            let _ = tokio::time::timeout(Duration::from_secs(20), async {
                for task in tasks {
                    let _ = task.await;
                }
            })
            .await;
        });
    }
}
