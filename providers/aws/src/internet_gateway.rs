//! `aws_internet_gateway`: an internet gateway and its attachment to a VPC.
//!
//! `vpc_id` is the attachment: changing it detaches from the old VPC and
//! attaches to the new one in place. Delete detaches first (AWS refuses to
//! delete an attached gateway), retrying while public addresses are still
//! mapped in the VPC (`DependencyViolation`, e.g. a NAT gateway's EIP that
//! is being released).

use std::collections::HashMap;

use aws_sdk_ec2::types::{InternetGateway, ResourceType};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{created_but, describe_by_id, filter};
use crate::error::ApiError;
use crate::retry::{self, Retry};
use crate::tags;

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_internet_gateway",
    fields: &[Field::new("vpc_id", Ty::Str).holds(), TAGS],
    computed: &["id"],
    exclusive: false,
};

async fn attach(c: &Clients, id: &str, vpc_id: &str) -> Result<(), ApiError> {
    c.call("AttachInternetGateway", Retry::AfterCreate, || {
        c.ec2.attach_internet_gateway().internet_gateway_id(id).vpc_id(vpc_id).send()
    })
    .await?;
    Ok(())
}

async fn detach(c: &Clients, ctx: &OpContext, id: &str, vpc_id: &str) -> Result<(), ApiError> {
    let t = &c.timeouts;
    let detached =
        retry::while_blocked(ctx, &format!("internet gateway {id}"), t.blocked_delete, t.blocked_backoff, || {
            c.call("DetachInternetGateway", Retry::Standard, || {
                c.ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc_id).send()
            })
        })
        .await;
    match detached {
        Ok(_) => Ok(()),
        // Already detached, or gone.
        Err(e) if e.code() == "Gateway.NotAttached" || e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn create(c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
    let vpc_id = attrs::opt_str(attrs, "vpc_id")?;
    let tags = tags::for_create(attrs, &ctx.address)?;
    let out = c
        .call("CreateInternetGateway", Retry::Standard, || {
            c.ec2
                .create_internet_gateway()
                .tag_specifications(tags::ec2_spec(ResourceType::InternetGateway, &tags))
                .send()
        })
        .await?;
    let id = out
        .internet_gateway()
        .and_then(InternetGateway::internet_gateway_id)
        .ok_or_else(|| ProviderError::new("CreateInternetGateway returned no id"))?;
    if let Some(vpc_id) = vpc_id {
        attach(c, id, vpc_id).await.map_err(|e| created_but(id, &ctx.address, e))?;
    }
    let mut result = attrs.clone();
    result.insert("id".into(), json!(id));
    Ok(result)
}

/// The VPC the gateway is attached to. (AWS says `available` for an
/// attached gateway, a state the SDK does not model: compare strings.)
fn attached_vpc(igw: &InternetGateway) -> Option<&str> {
    igw.attachments()
        .iter()
        .find(|a| matches!(a.state().map(|s| s.as_str()), Some("available" | "attached" | "attaching")))
        .and_then(|a| a.vpc_id())
}

pub(crate) async fn read(c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
    let found: HashMap<String, InternetGateway> = describe_by_id(
        c,
        "DescribeInternetGateways",
        reqs,
        |ids, token| {
            c.ec2.describe_internet_gateways().filters(filter("internet-gateway-id", ids)).set_next_token(token).send()
        },
        |page| page.internet_gateways(),
        |item| item.internet_gateway_id(),
        |page| page.next_token(),
    )
    .await?;
    Ok(reqs
        .iter()
        .map(|req| {
            let g = attrs::id(&req.prior).ok().and_then(|id| found.get(id))?;
            let mut live = Attrs::new();
            live.insert("id".into(), json!(g.internet_gateway_id()));
            live.insert("vpc_id".into(), json!(attached_vpc(g)));
            live.insert("tags".into(), tags::to_value(&tags::from_ec2(g.tags())));
            // Detached outside skyplan while the spec wants it attached: `vpc_id` reads null, a diff.
            Some(SPEC.shape(&req.prior, live))
        })
        .collect())
}

pub(crate) async fn update(c: &Clients, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
    let id = attrs::id(prior)?;
    let old = attrs::opt_str(prior, "vpc_id")?;
    let new = attrs::opt_str(attrs, "vpc_id")?;
    if old != new {
        if let Some(old) = old {
            detach(c, ctx, id, old).await?;
        }
        if let Some(new) = new {
            attach(c, id, new).await?;
        }
    }
    tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
    let mut result = attrs.clone();
    result.insert("id".into(), Value::String(id.to_string()));
    Ok(result)
}

pub(crate) async fn delete(c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
    let id = attrs::id(prior)?;
    // Detach from whatever VPC it is attached to now, not only the recorded one.
    let described = c
        .call("DescribeInternetGateways", Retry::Standard, || {
            c.ec2.describe_internet_gateways().filters(filter("internet-gateway-id", [id])).send()
        })
        .await?;
    let Some(igw) = described.internet_gateways().first() else {
        return Ok(());
    };
    for vpc_id in igw.attachments().iter().filter_map(|a| a.vpc_id()) {
        detach(c, ctx, id, vpc_id).await?;
    }
    let t = &c.timeouts;
    let deleted =
        retry::while_blocked(ctx, &format!("internet gateway {id}"), t.blocked_delete, t.blocked_backoff, || {
            c.call("DeleteInternetGateway", Retry::Standard, || {
                c.ec2.delete_internet_gateway().internet_gateway_id(id).send()
            })
        })
        .await;
    match deleted {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod request_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_error, ec2_ok, recording_ctx, FakeAws};

    /// Delete detaches first, and waits out "mapped public address(es)"
    /// (AWS refuses to detach while a NAT gateway's EIP is being released;
    /// the emulator does not).
    #[tokio::test(start_paused = true)]
    async fn delete_detaches_first_waiting_out_mapped_addresses() {
        let detaches = Arc::new(AtomicUsize::new(0));
        let d = detaches.clone();
        let fake = FakeAws::new(move |req| {
            match req.action.as_str() {
            "DescribeInternetGateways" => ec2_ok(
                "DescribeInternetGateways",
                "<internetGatewaySet><item><internetGatewayId>igw-1</internetGatewayId>\
                 <attachmentSet><item><vpcId>vpc-1</vpcId><state>available</state></item></attachmentSet></item></internetGatewaySet>",
            ),
            "DetachInternetGateway" => {
                if d.fetch_add(1, Ordering::SeqCst) == 0 {
                    ec2_error(400, "DependencyViolation", "Network vpc-1 has some mapped public address(es). Please unmap those public address(es) before detaching the gateway.")
                } else {
                    ec2_ok("DetachInternetGateway", "<return>true</return>")
                }
            }
            "DeleteInternetGateway" => ec2_ok("DeleteInternetGateway", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::new("aws_internet_gateway", "main"), "t");
        delete(&c, &ctx, json!({"id": "igw-1", "vpc_id": "vpc-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(
            fake.actions(),
            ["DescribeInternetGateways", "DetachInternetGateway", "DetachInternetGateway", "DeleteInternetGateway"]
        );
        assert!(reports.lock().unwrap()[0].contains("mapped public address"), "{:?}", reports.lock().unwrap());
    }
}
