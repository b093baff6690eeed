//! What still uses a VPC, subnet or security group when AWS refuses to
//! delete it (`DependencyViolation`), for the error message.
//!
//! AWS's own message only says "has dependencies"; the network interfaces
//! in the resource name the culprit (an ELB's, a NAT gateway's, an
//! instance's), so after the bounded wait in `retry::while_blocked` the
//! delete error lists them.

use std::future::Future;

use skyplan_engine::{OpContext, ProviderError};

use crate::clients::Clients;
use crate::ec2util::filter;
use crate::error::ApiError;
use crate::retry::{self, Retry};

/// Delete a VPC, subnet or security group with `delete` (one AWS call):
/// retried while something still uses it, for the bounded time of
/// [`retry::while_blocked`]; one already gone counts as deleted; when the
/// wait runs out, the error lists the network interfaces whose
/// `filter_name` is `id` (see [`explain`]).
pub(crate) async fn delete_once_unused<T, F, Fut>(
    c: &Clients,
    ctx: &OpContext,
    what: &str,
    filter_name: &str,
    id: &str,
    delete: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let t = &c.timeouts;
    match retry::while_blocked(ctx, &format!("{what} {id}"), t.blocked_delete, t.blocked_backoff, delete).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) if e.has_code(retry::BLOCKED) => Err(explain(c, filter_name, id, e).await),
        Err(e) => Err(e.into()),
    }
}

/// `err` plus the network interfaces whose `filter_name` (`vpc-id`,
/// `subnet-id`, `group-id`) is `id`.
pub(crate) async fn explain(c: &Clients, filter_name: &str, id: &str, err: ApiError) -> ProviderError {
    let found = c
        .call("DescribeNetworkInterfaces", Retry::Standard, || {
            c.ec2.describe_network_interfaces().filters(filter(filter_name, [id])).send()
        })
        .await;
    let users: Vec<String> = match found {
        Ok(out) => out
            .network_interfaces()
            .iter()
            .map(|eni| {
                let name = eni.network_interface_id().unwrap_or("?");
                let what = eni
                    .description()
                    .filter(|d| !d.is_empty())
                    .or(eni.interface_type().map(|t| t.as_str()))
                    .unwrap_or("no description");
                match eni.attachment().and_then(|a| a.instance_id()) {
                    Some(instance) => format!("{name} ({what}, attached to {instance})"),
                    None => format!("{name} ({what})"),
                }
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    if users.is_empty() {
        ProviderError::new(format!("{err} (still blocked after waiting)"))
    } else {
        ProviderError::new(format!(
            "{err} (still blocked after waiting; network interfaces in it: {})",
            users.join(", ")
        ))
    }
}
