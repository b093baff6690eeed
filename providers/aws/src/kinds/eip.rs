//! `aws_eip`: an Elastic IP address in the VPC domain (a NAT gateway's
//! public address).
//!
//! Delete releases the address once nothing holds it: an instance's or a
//! plain network interface's association is removed; a NAT gateway's goes
//! away when the NAT gateway is deleted (the engine deletes the NAT gateway
//! first, as it depends on the address), so the delete waits for that. (The
//! emulator never frees a deleted NAT gateway's address and shows its
//! interface as a plain one: there the association is simply removed.)

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, KindSpec, TAGS};
use crate::clients::Clients;
use crate::ec2util::{filter, id_chunks};
use crate::error::ApiError;
use crate::retry::{self, Retry};
use crate::tags::{self, Tags};
use crate::wait::{self, Poll};

use super::{address_filter, hit, owner_filters, tagged, AwsKind, Hit};

pub(crate) const SPEC: KindSpec =
    KindSpec { kind: "aws_eip", fields: &[TAGS], computed: &["id", "public_ip"], exclusive: false };

/// `aws_eip` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let tags = tags::for_create(attrs, &ctx.address)?;
        let out = c
            .call("AllocateAddress", Retry::Standard, || {
                c.ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(tags::ec2_spec(ResourceType::ElasticIp, &tags))
                    .send()
            })
            .await?;
        let id = out.allocation_id().ok_or_else(|| ProviderError::new("AllocateAddress returned no allocation id"))?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        result.insert("public_ip".into(), json!(out.public_ip()));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut found: HashMap<String, Address> = HashMap::new();
        for ids in id_chunks(reqs) {
            for a in describe(c, ids).await? {
                if let Some(id) = a.allocation_id() {
                    found.insert(id.to_string(), a.clone());
                }
            }
        }
        Ok(reqs
            .iter()
            .map(|req| {
                let a = attrs::id(&req.prior).ok().and_then(|id| found.get(id))?;
                let mut live = Attrs::new();
                live.insert("id".into(), json!(a.allocation_id()));
                live.insert("public_ip".into(), json!(a.public_ip()));
                live.insert("tags".into(), tags::to_value(&tags::from_ec2(a.tags())));
                Some(SPEC.shape(&req.prior, live))
            })
            .collect())
    }

    async fn update(
        &self,
        c: &Clients,
        _ctx: &OpContext,
        prior: &Attrs,
        attrs: &Attrs,
    ) -> Result<Attrs, ProviderError> {
        let id = attrs::id(prior)?;
        tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        result.insert("id".into(), Value::String(id.to_string()));
        result.insert("public_ip".into(), prior.get("public_ip").cloned().unwrap_or(Value::Null));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?;
        let Some(address) = describe(c, vec![id.to_string()]).await?.into_iter().next() else {
            return Ok(());
        };
        if let Some(association) = non_empty(address.association_id()) {
            match nat_gateway_interface(c, &address).await? {
                // Held by a NAT gateway being deleted: AWS frees the address
                // when the gateway is gone; nothing can detach it before.
                Some(eni) => {
                    wait::until(ctx, &format!("{eni} to release Elastic IP {id}"), c.timeouts.nat_gateway, || async {
                        Ok(match describe(c, vec![id.to_string()]).await {
                            Ok(found) => match found.first() {
                                Some(a) if non_empty(a.association_id()).is_some() => {
                                    Poll::Pending("associated".into())
                                }
                                _ => Poll::Ready(()),
                            },
                            Err(e) => Poll::Failed(e.message),
                        })
                    })
                    .await?;
                }
                // An instance's or a plain network interface's: take it back.
                None => {
                    let disassociated = c
                        .call("DisassociateAddress", Retry::Standard, || {
                            c.ec2.disassociate_address().association_id(association).send()
                        })
                        .await;
                    match disassociated {
                        Err(e) if !e.is_not_found() => return Err(e.into()),
                        _ => {}
                    }
                }
            }
        }
        let t = &c.timeouts;
        let released =
            retry::while_blocked(ctx, &format!("Elastic IP {id}"), t.blocked_delete, t.blocked_backoff, || {
                c.call("ReleaseAddress", Retry::Standard, || c.ec2.release_address().allocation_id(id).send())
            })
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let out = c
            .call("DescribeAddresses", Retry::Standard, || {
                c.ec2.describe_addresses().filters(address_filter(address)).send()
            })
            .await?;
        Ok(out
            .addresses()
            .iter()
            .find(|x| tagged(x.tags(), address, inputs))
            .and_then(|x| x.allocation_id())
            .map(str::to_string))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        let out = c
            .call("DescribeAddresses", Retry::Standard, || {
                c.ec2.describe_addresses().set_filters(Some(owner_filters(owner))).send()
            })
            .await?;
        Ok(out.addresses().iter().filter_map(|x| hit(x.allocation_id(), x.tags())).collect())
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

async fn describe(c: &Clients, ids: Vec<String>) -> Result<Vec<Address>, ProviderError> {
    let out = c
        .call("DescribeAddresses", Retry::Standard, || {
            c.ec2.describe_addresses().filters(filter("allocation-id", ids.clone())).send()
        })
        .await?;
    Ok(out.addresses().to_vec())
}

/// The network interface holding `address` when it is a NAT gateway's
/// (AWS marks those `nat_gateway`, requester-managed).
async fn nat_gateway_interface(c: &Clients, address: &Address) -> Result<Option<String>, ProviderError> {
    if non_empty(address.instance_id()).is_some() {
        return Ok(None);
    }
    let Some(eni) = non_empty(address.network_interface_id()) else {
        return Ok(None);
    };
    let out = c
        .call("DescribeNetworkInterfaces", Retry::Standard, || {
            c.ec2.describe_network_interfaces().filters(filter("network-interface-id", [eni])).send()
        })
        .await?;
    let is_nat = out
        .network_interfaces()
        .iter()
        .any(|i| i.interface_type().map(|t| t.as_str()) == Some("nat_gateway") || i.requester_managed() == Some(true));
    Ok(is_nat.then(|| eni.to_string()))
}

#[cfg(test)]
mod request_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_ok, recording_ctx, FakeAws};

    /// AWS refuses to release an address a NAT gateway still holds (the
    /// emulator allows it): the delete waits for the association to go.
    #[tokio::test(start_paused = true)]
    async fn release_waits_until_the_nat_gateway_lets_go() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fake = FakeAws::new(move |req| {
            match req.action.as_str() {
            "DescribeAddresses" => {
                let held = p.fetch_add(1, Ordering::SeqCst) < 3;
                let association = if held {
                    "<associationId>eipassoc-1</associationId><networkInterfaceId>eni-nat</networkInterfaceId>"
                } else {
                    ""
                };
                ec2_ok(
                    "DescribeAddresses",
                    &format!("<addressesSet><item><allocationId>eipalloc-1</allocationId>{association}</item></addressesSet>"),
                )
            }
            "DescribeNetworkInterfaces" => ec2_ok(
                "DescribeNetworkInterfaces",
                "<networkInterfaceSet><item><networkInterfaceId>eni-nat</networkInterfaceId>\
                 <interfaceType>nat_gateway</interfaceType><requesterManaged>true</requesterManaged></item></networkInterfaceSet>",
            ),
            "ReleaseAddress" => ec2_ok("ReleaseAddress", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::keyed("aws_eip", "nat", "us-east-1a"), "t");
        Kind.delete(&c, &ctx, json!({"id": "eipalloc-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(fake.actions().last().map(String::as_str), Some("ReleaseAddress"));
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        assert_eq!(*reports.lock().unwrap(), ["waiting for eni-nat to release Elastic IP eipalloc-1 (now associated)"]);
    }
}

#[cfg(test)]
mod disassociate_tests {
    use serde_json::json;
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_ok, recording_ctx, FakeAws};

    /// An address on an instance (or on a plain interface) is disassociated, not waited for.
    #[tokio::test]
    async fn release_takes_an_instances_address_back_first() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "DescribeAddresses" => ec2_ok(
                "DescribeAddresses",
                "<addressesSet><item><allocationId>eipalloc-1</allocationId><associationId>eipassoc-1</associationId>\
                 <instanceId>i-1</instanceId></item></addressesSet>",
            ),
            "DisassociateAddress" => ec2_ok("DisassociateAddress", "<return>true</return>"),
            "ReleaseAddress" => ec2_ok("ReleaseAddress", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_eip", "x"), "t");
        Kind.delete(&c, &ctx, json!({"id": "eipalloc-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(fake.actions(), ["DescribeAddresses", "DisassociateAddress", "ReleaseAddress"]);
        assert_eq!(fake.sent()[1].param("AssociationId"), Some("eipassoc-1"));
    }
}
