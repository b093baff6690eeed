//! The [`Backend`] trait: where a [`State`] is kept and how it is locked.
//! The record of who holds a lock, [`LockInfo`], is in [`crate::lock`].
//!
//! Implementations live in their own modules ([`crate::local`] for a file on
//! disk; an S3 backend can implement the same trait). Nothing here knows
//! which storage is in use.

use std::time::Duration;

use crate::error::StateError;
use crate::lock::LockInfo;
use crate::model::{Mutation, State};

/// A place to load, persist and lock state.
///
/// Object-safe and `Send + Sync`: callers hold an `Arc<dyn Backend>` and use
/// it from any thread. All methods block; async callers should run them on a
/// blocking thread (the [`Writer`](crate::Writer) does).
pub trait Backend: Send + Sync {
    /// Where the state lives, for messages: `local file ./demo.state.json`.
    fn describe(&self) -> String;

    /// Reads the state; `Ok(None)` when no state exists yet. A failed load
    /// never modifies what is stored.
    fn load(&self) -> Result<Option<State>, StateError>;

    /// Replaces the stored state with `state`, atomically: afterwards the
    /// store holds either the old or the new state, never a mixture.
    fn persist(&self, state: &State) -> Result<(), StateError>;

    /// Makes `state` durable after `batch` (the mutations just applied to
    /// the previously persisted state) was applied to it. A backend that can
    /// record only the batch (a journal) does so; the default replaces the
    /// whole state. Afterwards `load` must return `state`.
    fn persist_batch(&self, state: &State, batch: &[Mutation]) -> Result<(), StateError> {
        let _ = batch;
        self.persist(state)
    }

    /// The run is over: fold anything recorded incrementally into the
    /// stored state, so it is one self-contained document again.
    fn finish_run(&self, state: &State) -> Result<(), StateError> {
        let _ = state;
        Ok(())
    }

    /// Takes the lock described by `info`, polling until `timeout` has
    /// passed (a zero timeout tries once). Fails with
    /// [`StateError::Locked`] naming the current holder.
    fn lock(&self, info: &LockInfo, timeout: Duration) -> Result<(), StateError>;

    /// Releases the lock, but only if the held lock's id is `lock_id`;
    /// otherwise fails naming the actual holder
    /// ([`StateError::LockMismatch`], or [`StateError::NotLocked`]).
    fn unlock(&self, lock_id: &str) -> Result<(), StateError>;

    /// The lock currently held, if any.
    fn current_lock(&self) -> Result<Option<LockInfo>, StateError>;

    /// Whether the lock lives on this machine (a file on local disk), so
    /// that a holder recorded with this host's name and a pid that no longer
    /// exists is known to be gone. False for shared stores such as S3, whose
    /// runners may be containers that share a host name but not a process
    /// table: their locks are released only by `unlock`.
    fn lock_is_local(&self) -> bool {
        false
    }

    /// Whether changes persisted by an earlier run are still outside the
    /// state's main copy (a local journal a killed run left unfolded):
    /// `load` includes them, but the file alone does not. A run that holds
    /// the lock and writes nothing else persists the loaded state to fold
    /// them in.
    fn has_unfolded_changes(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_object_safe() {
        fn takes(_: Option<&dyn Backend>) {}
        takes(None);
    }
}
