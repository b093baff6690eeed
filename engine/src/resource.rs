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
    /// A rolling group: resources of one group that are replaced in one
    /// plan are replaced one at a time, in address order, each new one
    /// created before its old one is deleted (create-before-destroy). Set by
    /// blueprints for members of a pool that must keep serving (the nodes
    /// behind a load balancer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_group: Option<String>,
}

impl Resource {
    pub fn new(address: Address, attrs: Attrs) -> Self {
        Resource { address, attrs, depends_on: Vec::new(), rolling_group: None }
    }
}
