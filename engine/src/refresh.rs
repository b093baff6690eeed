//! Refresh: read the live attributes of everything in the state, so the plan
//! diffs against the cloud as it is, not as it was last recorded.
//!
//! Requests are grouped per provider and handed over in one call each; the
//! provider batches per kind (one paginated Describe per AWS kind). A
//! resource that no longer exists leaves the refreshed state, so the plan
//! creates it again.

use std::collections::BTreeMap;

use skyplan_state::State;

use crate::address::Address;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::provider::{Providers, ReadRequest};

/// What refresh found that differs from the recorded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The resource is gone from the cloud.
    Deleted(Address),
    /// These attributes changed outside skyplan.
    Changed(Address, Vec<String>),
}

/// The state with live attributes, and what drifted.
pub async fn refresh(
    state: &State,
    providers: &Providers,
) -> Result<(State, Vec<Drift>), Diagnostics> {
    let mut by_provider: BTreeMap<&'static str, (Vec<ReadRequest>, Vec<&String>)> = BTreeMap::new();
    let mut errors = Vec::new();
    for (address, resource) in &state.resources {
        let Ok(parsed) = address.parse::<Address>() else {
            errors.push(Diagnostic::new(
                Location::None,
                format!("the state holds `{address}`, which is not a resource address"),
            ));
            continue;
        };
        let Some(provider) = providers.for_kind(&resource.kind) else {
            errors.push(Diagnostic::at_address(
                &parsed,
                format!(
                    "no provider serves type `{}`, which the state holds",
                    resource.kind
                ),
            ));
            continue;
        };
        let entry = by_provider.entry(provider.name()).or_default();
        entry.0.push(ReadRequest {
            address: parsed,
            kind: resource.kind.clone(),
            prior: resource.attributes.clone(),
        });
        entry.1.push(address);
    }
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }

    let mut refreshed = state.clone();
    let mut drift = Vec::new();
    for (name, (requests, addresses)) in by_provider {
        let provider = providers
            .for_kind(&requests[0].kind)
            .expect("grouped by a serving provider");
        let results = provider.read(&requests).await.map_err(|e| {
            Diagnostic::new(
                Location::None,
                format!("refresh through the {name} provider failed: {e}"),
            )
        })?;
        if results.len() != requests.len() {
            return Err(Diagnostic::new(
                Location::None,
                format!(
                    "the {name} provider answered {} of {} reads",
                    results.len(),
                    requests.len()
                ),
            )
            .into());
        }
        for ((request, address), result) in requests.into_iter().zip(addresses).zip(results) {
            match result {
                None => {
                    refreshed.resources.remove(address);
                    drift.push(Drift::Deleted(request.address));
                }
                Some(live) => {
                    let record = refreshed
                        .resources
                        .get_mut(address)
                        .expect("from the state");
                    let changed: Vec<String> = record
                        .inputs
                        .keys()
                        .filter(|k| live.get(*k) != record.attributes.get(*k))
                        .cloned()
                        .collect();
                    if !changed.is_empty() {
                        drift.push(Drift::Changed(request.address, changed));
                    }
                    record.attributes = live;
                }
            }
        }
    }
    Ok((refreshed, drift))
}
