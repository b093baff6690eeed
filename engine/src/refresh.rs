//! Refresh: read the live attributes of everything in the state, so the plan
//! diffs against the cloud as it is, not as it was last recorded.
//!
//! Requests are grouped per provider and handed over in one call each; the
//! provider batches per kind (one paginated Describe per AWS kind). A
//! resource that no longer exists leaves the refreshed state, so the plan
//! creates it again.

use std::collections::BTreeMap;

use skyplan_state::{ResourceState, State};

use crate::address::Address;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::provider::{Providers, ReadRequest};
use crate::redact::Redactor;

/// What refresh found that differs from the recorded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The resource is gone from the cloud.
    Deleted(Address),
    /// These attributes changed outside skyplan.
    Changed(Address, Vec<String>),
    /// An interrupted run had started creating it; the resource was found
    /// in the cloud and is now recorded.
    Adopted(Address, String),
    /// An interrupted run had started creating it; nothing was created.
    NotCreated(Address),
}

/// Resolve the creates an interrupted run left unrecorded: look each up
/// through its provider and adopt what exists. Done on every plan, even with
/// `--no-refresh`, since skipping it could create a duplicate.
///
/// What is found is recorded with `redactor`'s sensitive values masked.
pub async fn settle_pending(
    state: &mut State,
    providers: &Providers,
    redactor: &Redactor,
) -> Result<Vec<Drift>, Diagnostics> {
    let mut drift = Vec::new();
    for (address, pending) in std::mem::take(&mut state.pending) {
        let parsed: Address = address.parse().map_err(|_| {
            Diagnostic::new(Location::None, format!("the state holds `{address}`, which is not a resource address"))
        })?;
        let provider = providers.for_kind(&pending.kind).ok_or_else(|| {
            Diagnostic::at_address(
                &parsed,
                format!("no provider serves type `{}`, which the state holds", pending.kind),
            )
        })?;
        let found = provider.find(&pending.kind, &parsed, &pending.inputs).await.map_err(|e| {
            Diagnostic::at_address(&parsed, format!("looking for what an interrupted run created failed: {e}"))
        })?;
        match found {
            Some(mut attributes) => {
                redactor.live(&pending.inputs, &mut attributes);
                let id = attributes.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                if let Some(old) = state.resources.get(&address).filter(|r| r.id != id) {
                    // A create-before-destroy replacement was interrupted
                    // during its create: the recorded object is the old one,
                    // still to be deleted.
                    state.deposed.insert(address.clone(), old.clone());
                }
                drift.push(Drift::Adopted(parsed, id.clone()));
                state.resources.insert(
                    address,
                    ResourceState {
                        kind: pending.kind,
                        provider: pending.provider,
                        id,
                        inputs: pending.inputs,
                        attributes,
                        dependencies: pending.dependencies,
                    },
                );
            }
            None => drift.push(Drift::NotCreated(parsed)),
        }
    }
    Ok(drift)
}

/// The state with live attributes, and what drifted. Live values are masked
/// with `redactor` before they are compared with the (masked) state.
pub async fn refresh(
    state: State,
    providers: &Providers,
    redactor: &Redactor,
) -> Result<(State, Vec<Drift>), Diagnostics> {
    let mut refreshed = state;
    let mut by_provider: BTreeMap<&'static str, (Vec<ReadRequest>, Vec<String>)> = BTreeMap::new();
    let mut errors = Vec::new();
    // Each request takes the recorded attributes instead of a copy: the live
    // ones replace them, and the drift check compares against the request's.
    for (address, resource) in &mut refreshed.resources {
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
                format!("no provider serves type `{}`, which the state holds", resource.kind),
            ));
            continue;
        };
        let entry = by_provider.entry(provider.name()).or_default();
        let prior = std::mem::take(&mut resource.attributes);
        entry.0.push(ReadRequest { address: parsed, kind: resource.kind.clone(), prior });
        entry.1.push(address.clone());
    }
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }

    let mut drift = Vec::new();
    for (name, (requests, addresses)) in by_provider {
        let provider = providers.for_kind(&requests[0].kind).expect("grouped by a serving provider");
        let results = provider
            .read(&requests)
            .await
            .map_err(|e| Diagnostic::new(Location::None, format!("refresh through the {name} provider failed: {e}")))?;
        if results.len() != requests.len() {
            return Err(Diagnostic::new(
                Location::None,
                format!("the {name} provider answered {} of {} reads", results.len(), requests.len()),
            )
            .into());
        }
        for ((request, address), result) in requests.into_iter().zip(addresses).zip(results) {
            match result {
                None => {
                    refreshed.resources.remove(&address);
                    drift.push(Drift::Deleted(request.address));
                }
                Some(mut live) => {
                    redactor.live(&request.prior, &mut live);
                    let record = refreshed.resources.get_mut(&address).expect("from the state");
                    let changed: Vec<String> =
                        record.inputs.keys().filter(|k| live.get(*k) != request.prior.get(*k)).cloned().collect();
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
