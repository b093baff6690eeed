//! Finding what a create made when the run that sent it was killed before
//! recording the result (`Provider::find`). Everything this provider creates
//! carries the `skyplan:address` tag from the start, so the id is found by
//! that tag; where the emulator or the API makes a tag filter unreliable, by
//! the create's inputs (the NAT gateway's subnet, the rule's group) and the
//! tag checked here; where the name is the identity (ELB, auto scaling
//! group, launch template), by name. Whatever the lookup, a hit counts only
//! when it carries the address tag with exactly this address and exactly
//! the ownership tags the create gave it (`tags::made_for`): a resource of
//! the same name or address that another cluster made is never adopted.
//! The resource is then read exactly as a refresh reads it.

//!
//! How each kind looks itself up is that kind's `AwsKind::find_id`
//! (`kinds/`); this file only reads what it finds.

use serde_json::json;
use skyplan_engine::{Address, Attrs, ProviderError, ReadRequest};

use crate::clients::Clients;
use crate::kinds::AwsKind;

/// The attributes of what a create of `address` with `inputs` made, read as
/// a refresh would, or None when it made nothing.
pub(crate) async fn find(
    c: &Clients,
    kind: &dyn AwsKind,
    address: &Address,
    inputs: &Attrs,
) -> Result<Option<Attrs>, ProviderError> {
    let Some(id) = kind.find_id(c, &address.to_string(), inputs).await? else { return Ok(None) };
    let mut prior = inputs.clone();
    prior.insert("id".into(), json!(id));
    let request = ReadRequest { address: address.clone(), kind: kind.name().to_string(), prior };
    // An image written as `auto` reads back as `auto` (the lost create
    // recorded no resolution): `ami::reads_as_auto`.
    Ok(kind.read(c, &[request]).await?.into_iter().next().flatten())
}
