//! skyplan's engine: a spec becomes a resource graph, the graph is diffed
//! against the state into a plan, and the executor applies the plan in
//! dependency order through providers.
//!
//! Architecture invariant: this crate knows nothing of AWS (or any cloud).
//! It reaches the outside world only through the [`provider::Provider`]
//! trait and persists only through the callbacks the caller gives it.

pub mod address;
pub mod apply;
pub mod dag;
pub mod diagnostic;
pub mod graph;
pub mod names;
pub mod ops;
pub mod orphans;
pub mod plan;
pub mod planfile;
pub mod provider;
pub mod redact;
pub mod refresh;
pub mod render;
pub mod resource;
pub mod review;
pub mod spec;
pub mod value;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tidy;

pub use address::Address;
pub use diagnostic::{Diagnostic, Diagnostics, Location};
pub use provider::{
    NameConflict, NewResource, OpContext, Owned, Provider, ProviderError, Providers, ReadRequest, Schema,
};
pub use redact::Redactor;
pub use resource::Resource;
pub use spec::{Source, Spec, SpecError};
pub use value::{Attrs, Reference, UNKNOWN};
