//! [`StateError`]: everything that can go wrong loading, saving or locking
//! state, worded for the person at the terminal: each message names the file
//! (or lock holder) involved and says what to do next.
//!
//! Each message is complete on its own: it already includes the underlying
//! OS or parser error, so errors carry no `source()` chain that would print
//! the same text twice under `anyhow`'s `{:#}`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::lock::LockInfo;

/// An error from a state [`Backend`](crate::Backend) or the
/// [`Writer`](crate::Writer).
#[derive(Debug, Error)]
pub enum StateError {
    /// The state file exists but could not be read.
    #[error("cannot read state file {}: {cause}", path.display())]
    Read { path: PathBuf, cause: io::Error },

    /// The state file is not valid state: bad JSON, missing or unknown
    /// fields, or cut short. It was not modified.
    #[error(
        "state file {} is not valid skyplan state: {detail} at line {line}, column {column}. \
         The file was left untouched. {hint}",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        /// 1-based line of the problem, as reported by the JSON parser.
        line: usize,
        /// 1-based column of the problem (0 when the file is empty).
        column: usize,
        detail: String,
        /// What to do about it (restore from `<path>.backup`).
        hint: String,
    },

    /// The state file was written by a newer skyplan with a format this
    /// build does not know. It was not modified.
    #[error(
        "state file {} has format_version {found}: it was written by a newer skyplan \
         (this one reads format {supported} and older). Upgrade skyplan; the file was left untouched.",
        path.display()
    )]
    NewerFormat { path: PathBuf, found: u64, supported: u32 },

    /// Writing the new state failed; the previous state file is intact.
    #[error("cannot write state file {}: {cause}; the previous state file is unchanged", path.display())]
    Write { path: PathBuf, cause: io::Error },

    /// Keeping a copy of the previous state before the first write failed;
    /// nothing was written.
    #[error("cannot save the previous state to {} before writing the new one: {cause}", path.display())]
    Backup { path: PathBuf, cause: io::Error },

    /// The state could not be encoded as JSON.
    #[error("cannot encode the state as JSON: {0}")]
    Encode(serde_json::Error),

    /// Someone else holds the lock.
    #[error(
        "state is locked by {} (pid {}, {}, since {}): lock id {}; \
         if that run is gone, release it with: skyplan unlock {}",
        .0.holder, .0.pid, .0.operation, .0.created, .0.id, .0.id
    )]
    Locked(LockInfo),

    /// A lock exists but its content cannot be read as a lock (for example a
    /// crash right after it was created).
    #[error(
        "lock file {} exists but is not a readable lock ({detail}); \
         if no skyplan run is using this state, delete that file",
        path.display()
    )]
    LockUnreadable { path: PathBuf, detail: String },

    /// Creating, reading or removing the lock failed.
    #[error("cannot use lock file {}: {cause}", path.display())]
    LockIo { path: PathBuf, cause: io::Error },

    /// `unlock` was asked for but nothing holds the lock.
    #[error("no lock is held on {state}")]
    NotLocked {
        /// The backend's [`describe`](crate::Backend::describe) text.
        state: String,
    },

    /// `unlock` was given an id that is not the held lock's.
    #[error(
        "lock id {requested} is not the lock held on this state: it is locked by {} \
         (pid {}, {}, since {}) with lock id {}",
        held.holder, held.pid, held.operation, held.created, held.id
    )]
    LockMismatch { requested: String, held: Box<LockInfo> },

    /// A persist failed in the [`Writer`](crate::Writer). Returned to every
    /// commit of the failed batch and to every later commit: the writer
    /// saves nothing more in this run.
    #[error("state not saved: {0}; no further changes will be saved in this run")]
    NotSaved(Arc<StateError>),

    /// The [`Writer`](crate::Writer) has finished (or its thread died) and
    /// accepts no more commits.
    #[error("the state writer has stopped; no further changes can be saved in this run")]
    WriterClosed,
}
