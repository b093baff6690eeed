//! [`LocalBackend`]: state in a file on local disk, and [`write_atomic`], the
//! crash-safe file replace it is built on.
//!
//! Three files sit side by side (for `demo.state.json`):
//!
//! - `demo.state.json`: the state, always replaced atomically (temp file in
//!   the same directory, fsync, rename, fsync of the directory);
//! - `demo.state.json.backup`: the state as it was before this run, written
//!   (atomically) just before a backend's first persist;
//! - `demo.state.json.lock`: present while a run holds the lock; holds the
//!   [`LockInfo`] as JSON and is created with `O_CREAT|O_EXCL`.
//!
//! All three are created with mode 0600: state holds infrastructure details
//! that only their owner should read. The format and guarantees are
//! documented in `docs/state.md`. Remote storage does not belong here.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::Backend;
use crate::error::StateError;
use crate::lock::LockInfo;
use crate::model::{random_id, Mutation, State, FORMAT_VERSION};

/// How often [`LocalBackend::lock`] retries while someone else holds the lock.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// How long a freshly created but still empty lock file is given to receive
/// its content before it is reported as unreadable.
const LOCK_SETTLE: Duration = Duration::from_millis(50);

/// State kept in one JSON file on local disk.
#[derive(Debug)]
pub struct LocalBackend {
    path: PathBuf,
    /// What this run has written. Held for the whole of each persist, so
    /// persists through one value never interleave.
    run: Mutex<RunFiles>,
}

/// The files one backend value has written during its run.
#[derive(Debug, Default)]
struct RunFiles {
    /// Whether the first persist (which saves `.backup`) has happened.
    persisted: bool,
    /// The journal, once a batch has been appended to it.
    journal: Option<File>,
    journal_bytes: u64,
    /// Size of the state file last written: the journal is folded into the
    /// state file once it grows past this (or past [`JOURNAL_MIN_FOLD`]).
    snapshot_bytes: u64,
}

/// The journal is never folded before it holds this much.
const JOURNAL_MIN_FOLD: u64 = 1 << 20;

/// One line of the journal: the mutations that took the state from the
/// previous serial to `serial`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct JournalEntry {
    lineage: String,
    serial: u64,
    mutations: Vec<Mutation>,
}

impl LocalBackend {
    /// A backend for the state file at `path`. Nothing is read or created
    /// until it is used.
    pub fn new(path: PathBuf) -> LocalBackend {
        LocalBackend { path, run: Mutex::new(RunFiles::default()) }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<path>.backup`: the state as it was before this run's first persist.
    pub fn backup_path(&self) -> PathBuf {
        with_suffix(&self.path, ".backup")
    }

    /// `<path>.journal`: batches persisted since the state file was last
    /// replaced, one JSON line each; folded into the file at the end of a run.
    pub fn journal_path(&self) -> PathBuf {
        with_suffix(&self.path, ".journal")
    }

    /// Replace the state file (saving `.backup` first on this value's first
    /// persist) and drop the journal, which the new file now includes.
    fn write_snapshot(&self, run: &mut RunFiles, state: &State) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(StateError::Encode)?;
        bytes.push(b'\n');
        if !run.persisted {
            let backup = self.backup_path();
            match fs::read(&self.path) {
                Ok(previous) => write_atomic(&backup, &previous)
                    .map_err(|cause| StateError::Backup { path: backup.clone(), cause })?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(cause) => return Err(StateError::Backup { path: backup, cause }),
            }
            run.persisted = true;
        }
        write_atomic(&self.path, &bytes).map_err(|cause| StateError::Write { path: self.path.clone(), cause })?;
        run.snapshot_bytes = bytes.len() as u64;
        // The file now holds everything the journal did. A crash before the
        // journal is gone is harmless: replay skips entries the file has.
        run.journal = None;
        run.journal_bytes = 0;
        match fs::remove_file(self.journal_path()) {
            Ok(()) => sync_dir(&parent_dir(&self.path))
                .map_err(|cause| StateError::Write { path: self.journal_path(), cause }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(cause) => Err(StateError::Write { path: self.journal_path(), cause }),
        }
    }

    /// Append one batch to the journal and make it durable.
    fn append_journal(&self, run: &mut RunFiles, state: &State, batch: &[Mutation]) -> Result<(), StateError> {
        let journal_path = self.journal_path();
        let write_error = |cause| StateError::Write { path: journal_path.clone(), cause };
        let entry = JournalEntry { lineage: state.lineage.clone(), serial: state.serial, mutations: batch.to_vec() };
        let mut line = serde_json::to_vec(&entry).map_err(StateError::Encode)?;
        line.push(b'\n');
        if run.journal.is_none() {
            let file = create_private(&journal_path).map_err(write_error)?;
            sync_dir(&parent_dir(&journal_path)).map_err(write_error)?;
            run.journal = Some(file);
        }
        let file = run.journal.as_mut().expect("journal just opened");
        file.write_all(&line).and_then(|()| file.sync_data()).map_err(write_error)?;
        run.journal_bytes += line.len() as u64;
        Ok(())
    }

    /// Apply the journal's complete entries newer than `state` to it. A last
    /// line without its newline is an append a crash cut short; its commit
    /// was never acknowledged, so it is ignored.
    fn replay_journal(&self, mut state: State) -> Result<State, StateError> {
        let journal_path = self.journal_path();
        let bytes = match fs::read(&journal_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
            Err(cause) => return Err(StateError::Read { path: journal_path, cause }),
        };
        let corrupt = |line: usize, detail: String| StateError::Corrupt {
            path: journal_path.clone(),
            line,
            column: 1,
            detail,
            hint: format!(
                "the journal holds changes made after {} was written; it was left untouched",
                self.path.display()
            ),
        };
        let mut rest = &bytes[..];
        let mut line_no = 0;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            line_no += 1;
            let entry: JournalEntry =
                serde_json::from_slice(&rest[..end]).map_err(|e| corrupt(line_no, e.to_string()))?;
            rest = &rest[end + 1..];
            if entry.lineage != state.lineage {
                return Err(corrupt(
                    line_no,
                    format!("entry of lineage {} in the journal of state lineage {}", entry.lineage, state.lineage),
                ));
            }
            if entry.serial <= state.serial {
                continue;
            }
            for mutation in entry.mutations {
                crate::writer::apply(&mut state, mutation);
            }
            state.serial = entry.serial;
        }
        Ok(state)
    }

    /// `<path>.lock`: exists while the state is locked.
    pub fn lock_path(&self) -> PathBuf {
        with_suffix(&self.path, ".lock")
    }

    /// Creates the lock file if it does not exist. `Ok(false)` when it does.
    fn try_lock(&self, info: &LockInfo) -> Result<bool, StateError> {
        let lock_path = self.lock_path();
        let lock_io = |cause| StateError::LockIo { path: lock_path.clone(), cause };
        let mut json = serde_json::to_vec_pretty(info).map_err(StateError::Encode)?;
        json.push(b'\n');
        let mut file = match create_private(&lock_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(lock_io(e)),
        };
        let written =
            file.write_all(&json).and_then(|()| file.sync_all()).and_then(|()| sync_dir(&parent_dir(&lock_path)));
        if let Err(e) = written {
            // We created it, so it is ours to remove: never leave a lock
            // nobody can read behind.
            let _ = fs::remove_file(&lock_path);
            return Err(lock_io(e));
        }
        Ok(true)
    }

    /// Reads the lock file: `None` if absent, `Some(Err(detail))` if its
    /// content is not a lock. An empty or partial file is re-read for a
    /// moment first, since its creator may still be writing it.
    fn read_lock(&self) -> Result<Option<Result<LockInfo, String>>, StateError> {
        let lock_path = self.lock_path();
        let deadline = Instant::now() + LOCK_SETTLE;
        loop {
            let bytes = match fs::read(&lock_path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(cause) => return Err(StateError::LockIo { path: lock_path, cause }),
            };
            match serde_json::from_slice::<LockInfo>(&bytes) {
                Ok(info) => return Ok(Some(Ok(info))),
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Err(e) => return Ok(Some(Err(e.to_string()))),
            }
        }
    }

    fn unreadable(&self, detail: String) -> StateError {
        StateError::LockUnreadable { path: self.lock_path(), detail }
    }
}

impl Backend for LocalBackend {
    fn describe(&self) -> String {
        format!("local file {}", self.path.display())
    }

    fn has_unfolded_changes(&self) -> bool {
        self.journal_path().exists()
    }

    fn load(&self) -> Result<Option<State>, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => return Err(StateError::Read { path: self.path.clone(), cause }),
        };
        let state = parse_state(&self.path, &self.backup_path(), &bytes)?;
        self.replay_journal(state).map(Some)
    }

    fn persist(&self, state: &State) -> Result<(), StateError> {
        let mut run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_snapshot(&mut run, state)
    }

    /// The first persist of a run replaces the file (and saves `.backup`);
    /// later ones append the batch to the journal, an fsynced line of a few
    /// hundred bytes per resource instead of the whole state, and fold the
    /// journal into the file once it outgrows it.
    fn persist_batch(&self, state: &State, batch: &[Mutation]) -> Result<(), StateError> {
        let mut run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
        if !run.persisted {
            return self.write_snapshot(&mut run, state);
        }
        self.append_journal(&mut run, state, batch)?;
        if run.journal_bytes > run.snapshot_bytes.max(JOURNAL_MIN_FOLD) {
            self.write_snapshot(&mut run, state)?;
        }
        Ok(())
    }

    fn finish_run(&self, state: &State) -> Result<(), StateError> {
        let mut run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
        if run.journal.is_some() {
            self.write_snapshot(&mut run, state)?;
        }
        Ok(())
    }

    fn lock(&self, info: &LockInfo, timeout: Duration) -> Result<(), StateError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.try_lock(info)? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                match self.read_lock()? {
                    Some(Ok(held)) => return Err(StateError::Locked(held)),
                    Some(Err(detail)) => return Err(self.unreadable(detail)),
                    // Released between our try and our read: try again.
                    None => continue,
                }
            }
            thread::sleep(LOCK_POLL.min(deadline - now));
        }
    }

    fn unlock(&self, lock_id: &str) -> Result<(), StateError> {
        let not_locked = || StateError::NotLocked { state: self.describe() };
        match self.read_lock()? {
            None => Err(not_locked()),
            Some(Err(detail)) => Err(self.unreadable(detail)),
            Some(Ok(held)) if held.id != lock_id => {
                Err(StateError::LockMismatch { requested: lock_id.to_string(), held: Box::new(held) })
            }
            Some(Ok(_)) => match fs::remove_file(self.lock_path()) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_locked()),
                Err(cause) => Err(StateError::LockIo { path: self.lock_path(), cause }),
            },
        }
    }

    fn lock_is_local(&self) -> bool {
        true
    }

    fn current_lock(&self) -> Result<Option<LockInfo>, StateError> {
        match self.read_lock()? {
            None => Ok(None),
            Some(Ok(info)) => Ok(Some(info)),
            Some(Err(detail)) => Err(self.unreadable(detail)),
        }
    }
}

/// Replaces the file at `path` with `bytes` so that a crash at any moment
/// leaves either the old content or the new, never a mixture: writes a
/// temporary file (mode 0600) in the same directory, fsyncs it, renames it
/// over `path` and fsyncs the directory. The result has mode 0600.
///
/// For any file that must survive a crash intact: state, plan files, the
/// simulated cloud. A crash can leave a stray `.<name>.<random>.tmp` beside
/// `path`; it is never read and can be deleted.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} does not name a file", path.display()))
    })?;
    let dir = parent_dir(path);
    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", &random_id()[..8]));
    let tmp = dir.join(tmp_name);

    let written = create_private(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// Creates a new file (failing if it exists) readable only by its owner.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // The umask can only remove bits; set them exactly.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Makes a rename or create in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` with `suffix` appended to its file name: `a.json` -> `a.json.lock`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Parse state content read from `path` (a file, or an `s3://` URL as a
/// path) with the same checks and messages for every backend: the shape (an
/// object) is checked and newer formats are refused before fields are
/// read, since a newer format may differ anywhere.
///
/// The common case, a well-formed current state, is parsed once, straight
/// into [`State`]; only content that does not parse so is looked at as an
/// untyped document to tell which of those errors it gets.
pub fn parse_state(path: &Path, backup: &Path, bytes: &[u8]) -> Result<State, StateError> {
    let newer = |found: u64| StateError::NewerFormat { path: path.to_path_buf(), found, supported: FORMAT_VERSION };
    let typed_error = match serde_json::from_slice::<State>(bytes) {
        Ok(state) if state.format_version > FORMAT_VERSION => return Err(newer(state.format_version.into())),
        Ok(state) => return Ok(state),
        Err(e) => e,
    };
    let corrupt = |e: &serde_json::Error| corrupt_error(path, backup, e);
    let document: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(&e))?;
    let Some(object) = document.as_object() else {
        let (line, column) = first_token_position(bytes);
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            line,
            column,
            detail: "expected a JSON object".to_string(),
            hint: backup_hint(path, backup),
        });
    };
    let found = object.get("format_version").and_then(Value::as_u64);
    if let Some(found) = found.filter(|v| *v > u64::from(FORMAT_VERSION)) {
        return Err(newer(found));
    }
    // The typed parse's error, which carries the position.
    Err(corrupt(&typed_error))
}

/// 1-based line and column of the first non-whitespace byte.
fn first_token_position(bytes: &[u8]) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for &b in bytes {
        match b {
            b'\n' => (line, column) = (line + 1, 1),
            b' ' | b'\t' | b'\r' => column += 1,
            _ => break,
        }
    }
    (line, column)
}

fn corrupt_error(path: &Path, backup: &Path, e: &serde_json::Error) -> StateError {
    let full = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let detail = full.strip_suffix(&position).unwrap_or(&full).to_string();
    StateError::Corrupt {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        detail,
        hint: backup_hint(path, backup),
    }
}

/// What to do about a damaged state file: restore from `.backup`.
fn backup_hint(path: &Path, backup: &Path) -> String {
    if backup.exists() {
        format!(
            "{} holds the state as it was before the run that last wrote this file: \
             check it, and if it is right, copy it over {}.",
            backup.display(),
            path.display()
        )
    } else {
        format!(
            "There is no {} to restore from; repair the file by hand or restore it from another copy.",
            backup.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceState;
    use serde_json::{json, Map};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    fn sample_state() -> State {
        let mut state = State::new();
        state.serial = 7;
        let obj = |v: Value| -> Map<String, Value> { v.as_object().unwrap().clone() };
        state.resources.insert(
            "aws_vpc.main".into(),
            ResourceState {
                kind: "aws_vpc".into(),
                provider: "aws".into(),
                id: "vpc-0abc".into(),
                inputs: obj(json!({"cidr_block": "10.0.0.0/16", "tags": {"team": "platform"}})),
                attributes: obj(json!({"id": "vpc-0abc", "cidr_block": "10.0.0.0/16"})),
                dependencies: vec![],
            },
        );
        state.resources.insert(
            "aws_subnet.private[us-east-1a]".into(),
            ResourceState {
                kind: "aws_subnet".into(),
                provider: "aws".into(),
                id: "subnet-1".into(),
                inputs: obj(json!({"vpc_id": "vpc-0abc", "cidr_block": "10.0.1.0/24"})),
                attributes: obj(json!({"id": "subnet-1", "vpc_id": "vpc-0abc"})),
                dependencies: vec!["aws_vpc.main".into()],
            },
        );
        state
    }

    fn backend_in(dir: &tempfile::TempDir) -> LocalBackend {
        LocalBackend::new(dir.path().join("demo.state.json"))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Writes `bytes` as the state file, loads it, and checks the load
    /// failed and left the file byte-identical. Returns the error text.
    fn refused(bytes: &[u8]) -> (StateError, String) {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend_in(&dir);
        fs::write(backend.path(), bytes).unwrap();
        let err = backend.load().unwrap_err();
        assert_eq!(fs::read(backend.path()).unwrap(), bytes, "file was modified");
        assert!(!backend.backup_path().exists());
        let text = err.to_string();
        (err, text)
    }

    #[test]
    fn passes_the_backend_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.state.json");
        let open = || Box::new(LocalBackend::new(path.clone())) as Box<dyn Backend>;
        let backup = LocalBackend::new(path.clone()).backup_path();
        let read_backup = || {
            let bytes = fs::read(&backup).ok()?;
            Some(parse_state(&backup, &backup, &bytes).expect("the backup is valid state"))
        };
        crate::conformance::run(&crate::conformance::Subject { open: &open, read_backup: &read_backup });
    }

    #[test]
    fn missing_file_loads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(backend_in(&dir).load().unwrap(), None);
    }

    #[test]
    fn persist_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend_in(&dir);
        let state = sample_state();
        backend.persist(&state).unwrap();
        assert_eq!(backend.load().unwrap(), Some(state.clone()));
        // A second value (another run) reads the same.
        assert_eq!(backend_in(&dir).load().unwrap(), Some(state));
    }

    #[test]
    fn file_uses_the_documented_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend_in(&dir);
        backend.persist(&sample_state()).unwrap();
        let v: Value = serde_json::from_slice(&fs::read(backend.path()).unwrap()).unwrap();
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["serial"], 7);
        let subnet = &v["resources"]["aws_subnet.private[us-east-1a]"];
        assert_eq!(subnet["type"], "aws_subnet");
        assert_eq!(subnet["dependencies"], json!(["aws_vpc.main"]));
    }

    #[test]
    fn invalid_json_is_refused_with_position_and_backup_hint() {
        let (err, text) = refused(b"{\n  \"format_version\": 1,\n  \"lineage\": oops\n}\n");
        match err {
            StateError::Corrupt { line, column, .. } => assert_eq!((line, column), (3, 14)),
            other => panic!("{other:?}"),
        }
        assert!(text.contains("demo.state.json"), "{text}");
        assert!(text.contains("line 3, column 14"), "{text}");
        assert!(text.contains("left untouched"), "{text}");
        assert!(text.contains("demo.state.json.backup"), "{text}");
    }

    #[test]
    fn truncated_file_is_refused() {
        let full = serde_json::to_vec_pretty(&sample_state()).unwrap();
        let (err, text) = refused(&full[..full.len() / 2]);
        assert!(matches!(err, StateError::Corrupt { .. }), "{text}");
        assert!(text.contains("EOF"), "{text}");
    }

    #[test]
    fn empty_file_is_refused() {
        let (err, _) = refused(b"");
        assert!(matches!(err, StateError::Corrupt { .. }));
    }

    #[test]
    fn missing_field_is_refused() {
        let (err, text) = refused(br#"{"format_version": 1, "serial": 3, "resources": {}}"#);
        assert!(matches!(err, StateError::Corrupt { .. }));
        assert!(text.contains("missing field `lineage`"), "{text}");
    }

    #[test]
    fn non_object_is_refused() {
        let (err, text) = refused(b"\n  [1, 2]");
        match err {
            StateError::Corrupt { line, column, .. } => assert_eq!((line, column), (2, 3)),
            other => panic!("{other:?}"),
        }
        assert!(text.contains("expected a JSON object"), "{text}");
    }

    #[test]
    fn newer_format_is_refused() {
        let (err, text) = refused(br#"{"format_version": 2, "lineage": "x", "something_new": true}"#);
        assert!(matches!(err, StateError::NewerFormat { found: 2, .. }), "{text}");
        assert!(text.contains("written by a newer skyplan"), "{text}");
    }

    #[test]
    fn corrupt_hint_points_at_an_existing_backup() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend_in(&dir);
        backend.persist(&sample_state()).unwrap();
        backend.persist(&sample_state()).unwrap();
        // A new run (new backend value) writes the backup, then the file is damaged.
        let second = backend_in(&dir);
        second.persist(&sample_state()).unwrap();
        assert!(second.backup_path().exists());
        fs::write(second.path(), b"{").unwrap();
        let text = second.load().unwrap_err().to_string();
        assert!(text.contains("holds the state as it was before"), "{text}");
    }

    #[test]
    fn state_backup_and_lock_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.state.json");
        fs::write(&path, b"{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();

        let backend = LocalBackend::new(path.clone());
        backend.persist(&sample_state()).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&backend.backup_path()), 0o600);

        backend.lock(&LockInfo::new("apply"), Duration::ZERO).unwrap();
        assert_eq!(mode(&backend.lock_path()), 0o600);
    }

    #[test]
    fn backup_holds_the_state_from_before_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = sample_state();

        let first_run = backend_in(&dir);
        first_run.persist(&state).unwrap();
        assert!(!first_run.backup_path().exists(), "no previous state, no backup");
        let before_second_run = fs::read(first_run.path()).unwrap();

        let second_run = backend_in(&dir);
        for serial in 10..15 {
            state.serial = serial;
            second_run.persist(&state).unwrap();
        }
        // Several persists later, .backup is still the file as the run found it.
        assert_eq!(fs::read(second_run.backup_path()).unwrap(), before_second_run);
        assert_eq!(second_run.load().unwrap().unwrap().serial, 14);
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [OsString::from("plan.json")]);
    }

    #[test]
    fn write_atomic_reports_unusable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("x.json");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(write_atomic(Path::new("/"), b"x").is_err());
    }

    #[test]
    fn relative_paths_write_beside_the_working_directory() {
        assert_eq!(parent_dir(Path::new("demo.state.json")), PathBuf::from("."));
        assert_eq!(with_suffix(Path::new("./demo.state.json"), ".lock"), PathBuf::from("./demo.state.json.lock"));
        let backend = LocalBackend::new(PathBuf::from("./demo.state.json"));
        assert_eq!(backend.describe(), "local file ./demo.state.json");
    }

    #[test]
    fn second_lock_fails_at_once_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = LockInfo::new("apply");
        backend_in(&dir).lock(&held, Duration::ZERO).unwrap();

        let started = Instant::now();
        let err = backend_in(&dir).lock(&LockInfo::new("plan"), Duration::ZERO).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        match &err {
            StateError::Locked(info) => assert_eq!(info, &held),
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "state is locked by {} (pid {}, apply, since {}): lock id {}",
                held.holder, held.pid, held.created, held.id
            )),
            "{text}"
        );
        assert!(text.ends_with(&format!("release it with: skyplan unlock {}", held.id)), "{text}");
        assert_eq!(backend_in(&dir).current_lock().unwrap(), Some(held));
    }

    #[test]
    fn lock_with_timeout_waits_for_release_by_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let holder = Arc::new(backend_in(&dir));
        let held = LockInfo::new("apply");
        holder.lock(&held, Duration::ZERO).unwrap();

        let releaser = {
            let holder = Arc::clone(&holder);
            let id = held.id.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(300));
                holder.unlock(&id).unwrap();
            })
        };
        let waiter = backend_in(&dir);
        let mine = LockInfo::new("destroy");
        let started = Instant::now();
        waiter.lock(&mine, Duration::from_secs(10)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        releaser.join().unwrap();
        assert_eq!(waiter.current_lock().unwrap(), Some(mine));
    }

    #[test]
    fn lock_with_timeout_gives_up_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        backend_in(&dir).lock(&LockInfo::new("apply"), Duration::ZERO).unwrap();
        let started = Instant::now();
        let err = backend_in(&dir).lock(&LockInfo::new("apply"), Duration::from_millis(350)).unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(err, StateError::Locked(_)));
        assert!(waited >= Duration::from_millis(350), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }

    #[test]
    fn unlock_requires_the_held_id() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend_in(&dir);
        let held = LockInfo::new("apply");
        backend.lock(&held, Duration::ZERO).unwrap();

        let err = backend.unlock("not-the-id").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StateError::LockMismatch { .. }));
        assert!(text.contains(&held.holder) && text.contains(&held.id), "{text}");
        assert!(backend.lock_path().exists(), "a refused unlock must keep the lock");

        backend.unlock(&held.id).unwrap();
        assert!(!backend.lock_path().exists());
        assert_eq!(backend.current_lock().unwrap(), None);
        let text = backend.unlock(&held.id).unwrap_err().to_string();
        assert!(text.starts_with("no lock is held"), "{text}");
    }

    #[test]
    fn unreadable_lock_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend_in(&dir);
        fs::write(backend.lock_path(), b"").unwrap();
        let err = backend.lock(&LockInfo::new("apply"), Duration::ZERO).unwrap_err();
        assert!(matches!(err, StateError::LockUnreadable { .. }), "{err}");
        assert!(err.to_string().contains("demo.state.json.lock"), "{err}");
        assert!(backend.current_lock().is_err());
        assert!(backend.unlock("any").is_err());
        assert_eq!(fs::read(backend.lock_path()).unwrap(), b"");
    }

    #[test]
    fn only_one_of_many_racing_lockers_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.state.json");
        let winners: usize = (0..8)
            .map(|_| {
                let path = path.clone();
                thread::spawn(move || LocalBackend::new(path).lock(&LockInfo::new("apply"), Duration::ZERO).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(winners, 1);
    }
}

#[cfg(test)]
mod journal_tests {
    use super::*;
    use crate::model::ResourceState;
    use serde_json::Map;

    fn resource(id: &str) -> ResourceState {
        ResourceState {
            kind: "sim_resource".into(),
            provider: "sim".into(),
            id: id.into(),
            inputs: Map::new(),
            attributes: Map::new(),
            dependencies: vec![],
        }
    }

    /// Apply a batch the way the writer does and persist it.
    fn commit(backend: &LocalBackend, state: &mut State, batch: Vec<Mutation>) {
        for m in batch.clone() {
            crate::writer::apply(state, m);
        }
        state.serial += 1;
        backend.persist_batch(state, &batch).unwrap();
    }

    /// What a killed run leaves (a journal never folded) is reported, so
    /// the next run that writes nothing else can fold it in.
    #[test]
    fn an_unfolded_journal_is_reported_until_a_persist_folds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let backend = LocalBackend::new(path.clone());
        let mut state = State::new();
        commit(&backend, &mut state, vec![Mutation::Upsert("a.a".into(), resource("1"))]);
        assert!(!backend.has_unfolded_changes(), "the first batch replaces the file");
        commit(&backend, &mut state, vec![Mutation::Upsert("b.b".into(), resource("2"))]);
        drop(backend); // killed: finish_run never ran

        let next = LocalBackend::new(path.clone());
        assert!(next.has_unfolded_changes());
        let loaded = next.load().unwrap().unwrap();
        assert_eq!(loaded.resources.len(), 2);
        next.persist(&loaded).unwrap();
        assert!(!next.has_unfolded_changes());
        let file: State = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(file.resources.len(), 2, "the file alone is complete");
    }

    #[test]
    fn batches_go_to_the_journal_and_load_replays_them() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path().join("s.json"));
        let mut state = State::new();
        commit(&backend, &mut state, vec![Mutation::Upsert("a.a".into(), resource("1"))]);
        assert!(!backend.journal_path().exists(), "the first persist of a run writes the file");
        commit(&backend, &mut state, vec![Mutation::Upsert("a.b".into(), resource("2"))]);
        commit(
            &backend,
            &mut state,
            vec![Mutation::Remove("a.a".into()), Mutation::Upsert("a.c".into(), resource("3"))],
        );
        assert!(backend.journal_path().exists());
        assert_eq!(mode(&backend.journal_path()), 0o600);

        // A new process (a crash here) sees every acknowledged batch.
        let loaded = LocalBackend::new(backend.path().to_path_buf()).load().unwrap().unwrap();
        assert_eq!(loaded, state);

        backend.finish_run(&state).unwrap();
        assert!(!backend.journal_path().exists(), "the run's end folds the journal into the file");
        let on_disk: State = serde_json::from_slice(&fs::read(backend.path()).unwrap()).unwrap();
        assert_eq!(on_disk, state);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_corrupt_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path().join("s.json"));
        let mut state = State::new();
        commit(&backend, &mut state, vec![Mutation::Upsert("a.a".into(), resource("1"))]);
        commit(&backend, &mut state, vec![Mutation::Upsert("a.b".into(), resource("2"))]);
        let acknowledged = state.clone();
        // A crash in the middle of the next append.
        let mut journal = OpenOptions::new().append(true).open(backend.journal_path()).unwrap();
        journal.write_all(br#"{"lineage":"x","serial":99,"mutat"#).unwrap();
        let loaded = LocalBackend::new(backend.path().to_path_buf()).load().unwrap().unwrap();
        assert_eq!(loaded, acknowledged);

        // Garbage before the last line is damage, not a torn append.
        let before = fs::read(backend.journal_path()).unwrap();
        let mut damaged = b"not json\n".to_vec();
        damaged.extend_from_slice(&before);
        fs::write(backend.journal_path(), &damaged).unwrap();
        let err = LocalBackend::new(backend.path().to_path_buf()).load().unwrap_err();
        assert!(err.to_string().contains("s.json.journal"), "{err}");
        assert_eq!(fs::read(backend.journal_path()).unwrap(), damaged, "a failed load changes nothing");
    }

    #[test]
    fn entries_the_file_already_has_are_skipped_and_other_lineages_refused() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path().join("s.json"));
        let mut state = State::new();
        commit(&backend, &mut state, vec![Mutation::Upsert("a.a".into(), resource("1"))]);
        commit(&backend, &mut state, vec![Mutation::Upsert("a.b".into(), resource("2"))]);
        let journal = fs::read(backend.journal_path()).unwrap();
        // A crash after the file was replaced but before the journal was removed.
        backend.persist(&state).unwrap();
        fs::write(backend.journal_path(), &journal).unwrap();
        assert_eq!(LocalBackend::new(backend.path().to_path_buf()).load().unwrap().unwrap(), state);

        let mut other = State::new();
        other.serial = 1;
        fs::write(backend.path(), serde_json::to_vec(&other).unwrap()).unwrap();
        let err = LocalBackend::new(backend.path().to_path_buf()).load().unwrap_err();
        assert!(err.to_string().contains("lineage"), "{err}");
    }

    #[test]
    fn the_journal_is_folded_once_it_outgrows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path().join("s.json"));
        let mut state = State::new();
        commit(&backend, &mut state, vec![Mutation::Upsert("a.0".into(), resource("0"))]);
        let big = "x".repeat(4096);
        for i in 1..400 {
            commit(&backend, &mut state, vec![Mutation::Upsert(format!("a.{i}"), resource(&big))]);
        }
        let journal = fs::metadata(backend.journal_path()).map(|m| m.len()).unwrap_or(0);
        assert!(journal <= JOURNAL_MIN_FOLD + 8192, "journal of {journal} bytes was never folded");
        assert_eq!(LocalBackend::new(backend.path().to_path_buf()).load().unwrap().unwrap(), state);
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}
