//! `aws_internet_gateway`: an internet gateway and its attachment to a VPC.
//!
//! `vpc_id` is the attachment: changing it detaches from the old VPC and
//! attaches to the new one in place. Delete detaches first (AWS refuses to
//! delete an attached gateway), retrying while public addresses are still
//! mapped in the VPC (`DependencyViolation`, e.g. a NAT gateway's EIP that
//! is being released).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttachmentStatus, InternetGateway, ResourceType};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{created_but, describe_by_id, filter};
use crate::error::ApiError;
use crate::retry::{self, Retry};
use crate::tags::{self, Tags};

use super::{address_filter, hit, owner_filters, tagged, AwsKind, Hit};

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_internet_gateway",
    fields: &[Field::new("vpc_id", Ty::Str).holds(), TAGS],
    computed: &["id"],
    exclusive: false,
};

/// `aws_internet_gateway` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
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

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let found: HashMap<String, InternetGateway> = describe_by_id(
            c,
            "DescribeInternetGateways",
            reqs,
            |ids, token| {
                c.ec2
                    .describe_internet_gateways()
                    .filters(filter("internet-gateway-id", ids))
                    .set_next_token(token)
                    .send()
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

    async fn update(&self, c: &Clients, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
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

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
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

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let out = c
            .call("DescribeInternetGateways", Retry::Standard, || {
                c.ec2.describe_internet_gateways().filters(address_filter(address)).send()
            })
            .await?;
        Ok(out
            .internet_gateways()
            .iter()
            .find(|x| tagged(x.tags(), address, inputs))
            .and_then(|x| x.internet_gateway_id())
            .map(str::to_string))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        c.paginate(
            "DescribeInternetGateways",
            Retry::Standard,
            |token| {
                c.ec2.describe_internet_gateways().set_filters(Some(owner_filters(owner))).set_next_token(token).send()
            },
            |page| page.internet_gateways().iter().filter_map(|x| hit(x.internet_gateway_id(), x.tags())).collect(),
            |page| page.next_token(),
        )
        .await
    }
}

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

/// The VPC the gateway is attached to. (AWS says `available` for an
/// attached gateway, a state the SDK does not model: that one is compared
/// as a string.)
fn attached_vpc(igw: &InternetGateway) -> Option<&str> {
    igw.attachments()
        .iter()
        .find(|a| match a.state() {
            Some(AttachmentStatus::Attached | AttachmentStatus::Attaching) => true,
            Some(other) => other.as_str() == "available",
            None => false,
        })
        .and_then(|a| a.vpc_id())
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
        Kind.delete(&c, &ctx, json!({"id": "igw-1", "vpc_id": "vpc-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(
            fake.actions(),
            ["DescribeInternetGateways", "DetachInternetGateway", "DetachInternetGateway", "DeleteInternetGateway"]
        );
        assert!(reports.lock().unwrap()[0].contains("mapped public address"), "{:?}", reports.lock().unwrap());
    }
}
