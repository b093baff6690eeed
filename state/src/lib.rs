//! skyplan's state: what was applied, kept durably between runs.
//!
//! - [`model`]: the [`State`] document (lineage, serial, one
//!   [`ResourceState`] per address) and its JSON format.
//! - [`backend`]: the [`Backend`] trait (load, persist, lock) every storage
//!   implements, and [`LockInfo`].
//! - [`local`]: [`LocalBackend`], a state file on local disk with atomic
//!   replace, a `.backup` of the previous run and a `.lock` file; plus
//!   [`write_atomic`] for other files that need the same care.
//! - [`writer`]: [`Writer`], a single writer thread that group-commits
//!   mutations so the executor can persist after every operation.
//!
//! Architecture invariant: this crate knows nothing of providers, resources'
//! meaning or the engine (it must not depend on `skyplan-engine`). Addresses
//! are plain strings and attributes plain JSON maps; the engine translates.
//! The on-disk format is described in `docs/state.md`.

pub mod backend;
pub mod error;
pub mod local;
pub mod model;
pub mod writer;

pub use backend::{Backend, LockInfo};
pub use error::StateError;
pub use local::{parse_state, write_atomic, LocalBackend};
pub use model::{PendingCreate, ResourceState, State, FORMAT_VERSION};
pub use writer::{Mutation, Writer};
