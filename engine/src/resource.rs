//! A desired resource: what the spec (or a blueprint) says should exist.
//!
//! Raw `[resource.TYPE.NAME]` tables and blueprint expansions both become
//! `Resource`s; from here on the engine does not care where one came from.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::value::Attrs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub address: Address,
    /// Attributes as written: strings may hold `${...}` references.
    pub attrs: Attrs,
    /// Explicit dependencies beyond those that references imply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
}

impl Resource {
    pub fn new(address: Address, attrs: Attrs) -> Self {
        Resource { address, attrs, depends_on: Vec::new() }
    }
}
