//! `aws_nat_gateway`: a public NAT gateway in a subnet, with an Elastic IP.
//!
//! Create passes the operation's ClientToken (a retried create returns the
//! same gateway instead of a second one) and waits until the gateway is
//! `available` (1-3 minutes on AWS), reporting progress; a gateway that
//! ends `failed` fails the create with AWS's reason. Delete waits until it
//! is `deleted`, so its Elastic IP can be released and its subnet deleted.
//! DescribeNatGateways ignores `tag:` filters on the emulator and keeps
//! deleted gateways: reads filter by id and treat `deleting`/`deleted` as
//! gone.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{NatGateway, NatGatewayState, ResourceType};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{client_token, created_but, filter, id_chunks};
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::{self, Tags};
use crate::wait::{self, Poll};

use super::{hit, owner_filters, tagged, AwsKind, Hit};

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_nat_gateway",
    fields: &[
        Field::new("subnet_id", Ty::Str).required().replace().holds(),
        Field::new("allocation_id", Ty::Str).required().replace().holds(),
        TAGS,
    ],
    computed: &["id"],
    exclusive: false,
};

/// `aws_nat_gateway` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let subnet_id = attrs::req_str(attrs, "subnet_id")?;
        let allocation_id = attrs::req_str(attrs, "allocation_id")?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let token = client_token(&ctx.client_token);
        let out = c
            .call("CreateNatGateway", Retry::AfterCreate, || {
                c.ec2
                    .create_nat_gateway()
                    .subnet_id(subnet_id)
                    .allocation_id(allocation_id)
                    .client_token(&token)
                    .tag_specifications(tags::ec2_spec(ResourceType::Natgateway, &tags))
                    .send()
            })
            .await?;
        let id = out
            .nat_gateway()
            .and_then(NatGateway::nat_gateway_id)
            .ok_or_else(|| ProviderError::new("CreateNatGateway returned no id"))?
            .to_string();
        wait::until(ctx, &format!("NAT gateway {id} to be available"), c.timeouts.nat_gateway, || async {
            let found = describe(c, vec![id.clone()], Retry::AfterCreate).await?;
            Ok(poll_available(found.first()))
        })
        .await
        .map_err(|e| created_but(&id, &ctx.address, e))?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut found: HashMap<String, NatGateway> = HashMap::new();
        for ids in id_chunks(reqs) {
            for n in describe(c, ids, Retry::Standard).await? {
                if let Some(id) = n.nat_gateway_id() {
                    found.insert(id.to_string(), n.clone());
                }
            }
        }
        Ok(reqs
            .iter()
            .map(|req| {
                let n = attrs::id(&req.prior).ok().and_then(|id| found.get(id)).filter(|n| !is_gone(n))?;
                let mut live = Attrs::new();
                live.insert("id".into(), json!(n.nat_gateway_id()));
                live.insert("subnet_id".into(), json!(n.subnet_id()));
                let allocation = n.nat_gateway_addresses().iter().find_map(|a| a.allocation_id());
                live.insert("allocation_id".into(), json!(allocation));
                live.insert("tags".into(), tags::to_value(&tags::from_ec2(n.tags())));
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
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?.to_string();
        // Describe first: deleting a gateway that is already gone is not an error.
        let found = describe(c, vec![id.clone()], Retry::Standard).await?;
        match found.first() {
            None => return Ok(()),
            Some(n) if in_state(n, &DELETED) => return Ok(()),
            Some(n) if n.state() == Some(&NatGatewayState::Deleting) => {}
            Some(_) => {
                let deleted = c
                    .call("DeleteNatGateway", Retry::Standard, || c.ec2.delete_nat_gateway().nat_gateway_id(&id).send())
                    .await;
                match deleted {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        wait::until(ctx, &format!("NAT gateway {id} to be deleted"), c.timeouts.nat_gateway, || async {
            let found = describe(c, vec![id.clone()], Retry::Standard).await?;
            Ok(match found.first() {
                None => Poll::Ready(()),
                Some(n) if in_state(n, &DELETED) => Poll::Ready(()),
                Some(n) => Poll::Pending(state(n).to_string()),
            })
        })
        .await
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        // Tag filters on DescribeNatGateways are not honoured everywhere
        // (the emulator ignores them): filter by subnet, check the tag.
        let subnet = attrs::req_str(inputs, "subnet_id")?.to_string();
        let out = c
            .call("DescribeNatGateways", Retry::Standard, || {
                c.ec2.describe_nat_gateways().filter(filter("subnet-id", [subnet.clone()])).send()
            })
            .await?;
        Ok(out
            .nat_gateways()
            .iter()
            .filter(|n| is_live(n))
            .find(|n| tagged(n.tags(), address, inputs))
            .and_then(|n| n.nat_gateway_id())
            .map(str::to_string))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        let mut filters = owner_filters(owner);
        filters.push(filter("state", LIVE.iter().map(|s| s.as_str())));
        c.paginate(
            "DescribeNatGateways",
            Retry::Standard,
            |token| c.ec2.describe_nat_gateways().set_filter(Some(filters.clone())).set_next_token(token).send(),
            |page| {
                page.nat_gateways()
                    .iter()
                    // The emulator ignores the state filter too.
                    .filter(|n| is_live(n))
                    .filter_map(|n| hit(n.nat_gateway_id(), n.tags()))
                    .collect()
            },
            |page| page.next_token(),
        )
        .await
    }
}

/// The states of a gateway that exists or is coming: what a lookup by tag
/// or an orphan listing counts.
const LIVE: [NatGatewayState; 2] = [NatGatewayState::Pending, NatGatewayState::Available];

/// The states of a gateway that is gone or going, whatever AWS says next.
const GONE: [NatGatewayState; 3] = [NatGatewayState::Deleting, NatGatewayState::Deleted, NatGatewayState::Failed];

/// The states in which a delete has nothing left to do.
const DELETED: [NatGatewayState; 2] = [NatGatewayState::Deleted, NatGatewayState::Failed];

fn in_state(nat: &NatGateway, states: &[NatGatewayState]) -> bool {
    nat.state().is_some_and(|s| states.contains(s))
}

fn is_live(nat: &NatGateway) -> bool {
    in_state(nat, &LIVE)
}

fn is_gone(nat: &NatGateway) -> bool {
    in_state(nat, &GONE)
}

/// The state for messages.
fn state(nat: &NatGateway) -> &str {
    nat.state().map(|s| s.as_str()).unwrap_or("unknown")
}

async fn describe(c: &Clients, ids: Vec<String>, retry: Retry) -> Result<Vec<NatGateway>, ApiError> {
    c.paginate(
        "DescribeNatGateways",
        retry,
        |token| {
            c.ec2.describe_nat_gateways().filter(filter("nat-gateway-id", ids.clone())).set_next_token(token).send()
        },
        |page| page.nat_gateways().to_vec(),
        |page| page.next_token(),
    )
    .await
}

/// Whether a NAT gateway in `state` is what `create` waits for.
pub(crate) fn poll_available(nat: Option<&NatGateway>) -> Poll<()> {
    match nat {
        None => Poll::Pending("not visible yet".into()),
        Some(n) => match n.state() {
            Some(NatGatewayState::Available) => Poll::Ready(()),
            Some(NatGatewayState::Pending) => Poll::Pending("pending".into()),
            _ => Poll::Failed(format!(
                "it is {}{}",
                state(n),
                match (n.failure_code(), n.failure_message()) {
                    (Some(code), Some(msg)) => format!(": {code}: {msg}"),
                    (_, Some(msg)) => format!(": {msg}"),
                    _ => String::new(),
                }
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::NatGatewayState;

    use super::*;

    #[test]
    fn availability_by_state() {
        let nat = |s: NatGatewayState| NatGateway::builder().nat_gateway_id("nat-1").state(s).build();
        assert_eq!(poll_available(None), Poll::Pending("not visible yet".into()));
        assert_eq!(poll_available(Some(&nat(NatGatewayState::Pending))), Poll::Pending("pending".into()));
        assert_eq!(poll_available(Some(&nat(NatGatewayState::Available))), Poll::Ready(()));
        let failed = NatGateway::builder()
            .state(NatGatewayState::Failed)
            .failure_code("Gateway.NotAttached")
            .failure_message("Network vpc-1 has no Internet gateway attached")
            .build();
        assert_eq!(
            poll_available(Some(&failed)),
            Poll::Failed("it is failed: Gateway.NotAttached: Network vpc-1 has no Internet gateway attached".into())
        );
    }
}

#[cfg(test)]
mod request_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_ok, recording_ctx, FakeAws};

    const PENDING: &str =
        "<natGatewaySet><item><natGatewayId>nat-1</natGatewayId><state>pending</state></item></natGatewaySet>";
    const AVAILABLE: &str = "<natGatewaySet><item><natGatewayId>nat-1</natGatewayId><state>available</state>\
        <subnetId>subnet-1</subnetId><natGatewayAddressSet><item><allocationId>eipalloc-1</allocationId></item></natGatewayAddressSet>\
        </item></natGatewaySet>";

    /// The emulator makes NAT gateways available at once and ignores
    /// ClientToken; here AWS takes three polls and the token is checked.
    #[tokio::test(start_paused = true)]
    async fn create_sends_the_client_token_and_waits_until_available() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "CreateNatGateway" => ec2_ok(
                "CreateNatGateway",
                "<natGateway><natGatewayId>nat-1</natGatewayId><state>pending</state></natGateway>",
            ),
            "DescribeNatGateways" => match p.fetch_add(1, Ordering::SeqCst) {
                // Not visible yet right after the create, then pending twice.
                0 => ec2_ok("DescribeNatGateways", "<natGatewaySet/>"),
                1 | 2 => ec2_ok("DescribeNatGateways", PENDING),
                _ => ec2_ok("DescribeNatGateways", AVAILABLE),
            },
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::keyed("aws_nat_gateway", "main", "us-east-1a"), "apply-1-nat");
        let attrs =
            json!({"subnet_id": "subnet-1", "allocation_id": "eipalloc-1", "tags": {"Name": "demo-nat-us-east-1a"}});
        let out = Kind.create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap();
        assert_eq!(out["id"], json!("nat-1"));
        assert_eq!(out["subnet_id"], json!("subnet-1"));

        let sent = fake.sent();
        let create_call = &sent[0];
        assert_eq!(create_call.action, "CreateNatGateway");
        assert_eq!(create_call.param("ClientToken"), Some("apply-1-nat"));
        assert_eq!(create_call.param("TagSpecification.1.ResourceType"), Some("natgateway"));
        let tag_values = create_call.values("TagSpecification.1.Tag.", ".Value");
        assert!(tag_values.contains(&"aws_nat_gateway.main[us-east-1a]"), "{tag_values:?}");
        assert!(tag_values.contains(&"demo-nat-us-east-1a"));
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        assert_eq!(
            *reports.lock().unwrap(),
            [
                "waiting for NAT gateway nat-1 to be available (now not visible yet)",
                "waiting for NAT gateway nat-1 to be available (now pending)"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_gateway_fails_the_create_with_awss_reason() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "CreateNatGateway" => ec2_ok("CreateNatGateway", "<natGateway><natGatewayId>nat-1</natGatewayId></natGateway>"),
            _ => ec2_ok(
                "DescribeNatGateways",
                "<natGatewaySet><item><natGatewayId>nat-1</natGatewayId><state>failed</state>\
                 <failureCode>Gateway.NotAttached</failureCode><failureMessage>Network vpc-1 has no Internet gateway attached</failureMessage>\
                 </item></natGatewaySet>",
            ),
        }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_nat_gateway", "main"), "t");
        let attrs = json!({"subnet_id": "subnet-1", "allocation_id": "eipalloc-1"});
        let e = Kind.create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap_err();
        assert!(e.message.contains("nat-1 was created but then"), "{}", e.message);
        assert!(e.message.contains("Network vpc-1 has no Internet gateway attached"), "{}", e.message);
    }

    #[tokio::test(start_paused = true)]
    async fn delete_waits_until_deleted_and_a_gone_gateway_is_fine() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "DeleteNatGateway" => ec2_ok("DeleteNatGateway", "<natGatewayId>nat-1</natGatewayId>"),
            _ => {
                let state = match p.fetch_add(1, Ordering::SeqCst) {
                    0 => "available",
                    1 | 2 => "deleting",
                    _ => "deleted",
                };
                ec2_ok(
                    "DescribeNatGateways",
                    &format!("<natGatewaySet><item><natGatewayId>nat-1</natGatewayId><state>{state}</state></item></natGatewaySet>"),
                )
            }
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::new("aws_nat_gateway", "main"), "t");
        let prior = json!({"id": "nat-1", "subnet_id": "subnet-1", "allocation_id": "eipalloc-1"});
        Kind.delete(&c, &ctx, prior.as_object().unwrap()).await.unwrap();
        assert_eq!(
            fake.actions(),
            [
                "DescribeNatGateways",
                "DeleteNatGateway",
                "DescribeNatGateways",
                "DescribeNatGateways",
                "DescribeNatGateways"
            ]
        );
        assert_eq!(*reports.lock().unwrap(), ["waiting for NAT gateway nat-1 to be deleted (now deleting)"]);

        // Already deleted (the emulator and AWS keep deleted gateways describable): no DeleteNatGateway.
        let gone = FakeAws::new(|_| {
            ec2_ok(
                "DescribeNatGateways",
                "<natGatewaySet><item><natGatewayId>nat-1</natGatewayId><state>deleted</state></item></natGatewaySet>",
            )
        });
        let c = gone.clients().await;
        Kind.delete(&c, &ctx, prior.as_object().unwrap()).await.unwrap();
        assert_eq!(gone.actions(), ["DescribeNatGateways"]);
    }
}
