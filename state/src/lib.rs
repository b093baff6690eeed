//! skyplan's state: what was applied, kept durably between runs.
//!
//! - [`model`]: the [`State`] document (lineage, serial, one
//!   [`ResourceState`] per address), its JSON format, and [`Mutation`], one
//!   change to it.
//! - [`backend`]: the [`Backend`] trait (load, persist, lock) every storage
//!   implements; [`lock`]: [`LockInfo`], who holds a lock.
//! - [`local`]: [`LocalBackend`], a state file on local disk with atomic
//!   replace, a `.backup` of the previous run and a `.lock` file; plus
//!   [`write_atomic`] for other files that need the same care.
//! - `conformance`: the checks every backend's tests run (`conformance::run`),
//!   as Terraform's statemgr `TestFull`.
//! - [`writer`]: [`Writer`], a single writer thread that group-commits
//!   mutations so the executor can persist after every operation.
//!
//! Architecture invariant: this crate knows nothing of providers, resources'
//! meaning or the engine (it must not depend on `skyplan-engine`). Addresses
//! are plain strings and attributes plain JSON maps; the engine translates.
//! The on-disk format is described in `docs/state.md`.

pub mod backend;
/// The suite every [`Backend`] passes (tests only; see the module).
#[doc(hidden)]
pub mod conformance;
pub mod error;
pub mod local;
pub mod lock;
pub mod model;
pub mod writer;

pub use backend::Backend;
pub use error::StateError;
pub use local::{parse_state, write_atomic, LocalBackend};
pub use lock::LockInfo;
pub use model::{Mutation, PendingCreate, ResourceState, State, FORMAT_VERSION};
pub use writer::Writer;
