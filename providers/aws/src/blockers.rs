//! What still uses a VPC, subnet or security group when AWS refuses to
//! delete it (`DependencyViolation`), for the error message.
//!
//! AWS's own message only says "has dependencies"; the network interfaces
//! in the resource name the culprit (an ELB's, a NAT gateway's, an
//! instance's), so after the bounded wait in `retry::while_blocked` the
//! delete error lists them.

use skyplan_engine::ProviderError;

use crate::clients::Clients;
use crate::ec2util::filter;
use crate::error::ApiError;
use crate::retry::Retry;

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
