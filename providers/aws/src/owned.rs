//! Listing what carries a cluster's ownership tags (`Provider::owned`), so
//! `plan` and `destroy` can report and remove what the state does not know.
//!
//! One tag-filtered describe per kind asked for (classic ELB has no tag
//! filter: its describe, then DescribeTags for the names). A resource counts
//! only when it carries every ownership tag *and* the `skyplan:address` tag
//! with an address of the same kind: the tags are checked here on every hit,
//! since the emulator ignores some filters (NAT gateways), and the address
//! tag is what tells a resource skyplan created from one the user tagged for
//! the cluster (under static placement the given VPC and subnets carry the
//! cluster's `owned` tag). Instances an auto scaling group launched carry
//! the group's address tag, so the kind check leaves them to the group.
//! What is found and not in `known` is then read as a refresh reads it.

//!
//! How each kind lists its resources is that kind's `AwsKind::list_owned`
//! (`kinds/`); the tag checks and the reads are here, the same for all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};
use skyplan_engine::{Address, Attrs, Owned, ProviderError, ReadRequest};

use crate::clients::Clients;
use crate::kinds::{AwsKind, Hit, KINDS};
use crate::tags::{Tags, ADDRESS_TAG};

/// The address a hit was created for, when it carries every ownership tag
/// and an address tag of this kind.
fn claimed(kind: &dyn AwsKind, owner: &Tags, hit: &Hit) -> Option<Address> {
    if !owner.iter().all(|(k, v)| hit.tags.get(k) == Some(v)) {
        return None;
    }
    let address: Address = hit.tags.get(ADDRESS_TAG)?.parse().ok()?;
    (address.kind == kind.name()).then_some(address)
}

/// A prior that names every attribute of the kind, so the read reports
/// each one the resource has (a refresh reports only what the inputs name).
fn full_prior(kind: &dyn AwsKind, id: &str) -> Attrs {
    let mut prior: Attrs = kind.spec().fields.iter().map(|f| (f.name.to_string(), Value::Null)).collect();
    prior.insert("id".into(), json!(id));
    prior
}

/// What carries every `owner` tag and an address tag of one of `kinds`,
/// except the ids in `known`, read as a refresh reads it. The kinds are
/// looked up concurrently, as a refresh reads them.
pub(crate) async fn owned(
    c: &Arc<Clients>,
    kinds: &BTreeSet<String>,
    owner: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> Result<Vec<Owned>, ProviderError> {
    // A security group rule resource records its AWS rules as one id
    // (`sgr-1,sgr-2`): each of them is known.
    let known: Arc<BTreeSet<String>> =
        Arc::new(known.iter().flat_map(|id| id.split(',')).map(str::to_string).collect());
    let owner = Arc::new(owner.clone());
    let mut tasks = tokio::task::JoinSet::new();
    // By the kind's place in the registry: orphans are reported in its order.
    for (n, kind) in KINDS.iter().copied().enumerate().filter(|(_, k)| kinds.contains(k.name())) {
        let (c, owner, known) = (c.clone(), owner.clone(), known.clone());
        tasks.spawn(async move { (n, owned_of_kind(&c, kind, &owner, &known).await) });
    }
    let mut by_kind = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (n, found) = joined.map_err(|e| ProviderError::new(format!("listing owned resources: {e}")))?;
        let found = found.map_err(|e| ProviderError::new(format!("listing {}: {}", KINDS[n].name(), e.message)))?;
        by_kind.insert(n, found);
    }
    Ok(by_kind.into_values().flatten().collect())
}

async fn owned_of_kind(
    c: &Clients,
    kind: &dyn AwsKind,
    owner: &Tags,
    known: &BTreeSet<String>,
) -> Result<Vec<Owned>, ProviderError> {
    let mut by_address: BTreeMap<Address, Vec<String>> = BTreeMap::new();
    for hit in kind.list_owned(c, owner).await? {
        if known.contains(&hit.id) {
            continue;
        }
        if let Some(address) = claimed(kind, owner, &hit) {
            by_address.entry(address).or_default().push(hit.id);
        }
    }
    let mut requests = Vec::new();
    for (address, ids) in by_address {
        if kind.joins_ids() {
            // The AWS objects one resource made (security group rules) are one.
            let id = ids.join(",");
            requests.push(ReadRequest { address, kind: kind.name().into(), prior: full_prior(kind, &id) });
        } else {
            for id in ids {
                let prior = full_prior(kind, &id);
                requests.push(ReadRequest { address: address.clone(), kind: kind.name().into(), prior });
            }
        }
    }
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let read = kind.read(c, &requests).await?;
    // Gone between the list and the read: nothing to report.
    Ok(requests
        .into_iter()
        .zip(read)
        .filter_map(|(request, attributes)| {
            Some(Owned { address: request.address, kind: request.kind, attributes: attributes? })
        })
        .collect())
}
