//! `aws_vpc`: a VPC and its two DNS attributes.
//!
//! AWS creates a VPC with DNS support on and DNS hostnames off; the kind's
//! defaults are both on (what a Kubernetes cluster needs), so create sets
//! hostnames right after. DescribeVpcs does not return the DNS attributes:
//! read asks DescribeVpcAttribute twice per VPC (the one per-resource call
//! in the refresh, and clusters have one VPC).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Vpc, VpcAttributeName};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::blockers;
use crate::clients::Clients;
use crate::ec2util::{created_but, describe_by_id, filter};
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::{self, Tags};

use super::{address_filter, hit, owner_filters, tagged, AwsKind, Hit};

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_vpc",
    fields: &[
        Field::new("cidr_block", Ty::Str).required().replace(),
        Field::new("enable_dns_support", Ty::Bool).default("true"),
        Field::new("enable_dns_hostnames", Ty::Bool).default("true"),
        TAGS,
    ],
    computed: &["id"],
    exclusive: false,
};

/// `aws_vpc` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let cidr = attrs::req_str(attrs, "cidr_block")?;
        let support = attrs::bool_or(attrs, "enable_dns_support", true)?;
        let hostnames = attrs::bool_or(attrs, "enable_dns_hostnames", true)?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let out = c
            .call("CreateVpc", Retry::Standard, || {
                c.ec2.create_vpc().cidr_block(cidr).tag_specifications(tags::ec2_spec(ResourceType::Vpc, &tags)).send()
            })
            .await?;
        let id = out.vpc().and_then(Vpc::vpc_id).ok_or_else(|| ProviderError::new("CreateVpc returned no VPC id"))?;
        // Hostnames need support; set support first when turning both on, last when off.
        if !support {
            set_dns(c, id, VpcAttributeName::EnableDnsSupport, false)
                .await
                .map_err(|e| created_but(id, &ctx.address, e))?;
        }
        if hostnames {
            set_dns(c, id, VpcAttributeName::EnableDnsHostnames, true)
                .await
                .map_err(|e| created_but(id, &ctx.address, e))?;
        }
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let found: HashMap<String, Vpc> = describe_by_id(
            c,
            "DescribeVpcs",
            reqs,
            |ids, token| c.ec2.describe_vpcs().filters(filter("vpc-id", ids)).set_next_token(token).send(),
            |page| page.vpcs(),
            |item| item.vpc_id(),
            |page| page.next_token(),
        )
        .await?;
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            let Some(vpc) = attrs::id(&req.prior).ok().and_then(|id| found.get(id)) else {
                out.push(None);
                continue;
            };
            let id = vpc.vpc_id().unwrap_or_default();
            let mut live = Attrs::new();
            live.insert("id".into(), json!(id));
            live.insert("cidr_block".into(), json!(vpc.cidr_block()));
            if let Some(v) = dns_attribute(c, id, VpcAttributeName::EnableDnsSupport).await? {
                live.insert("enable_dns_support".into(), json!(v));
            }
            if let Some(v) = dns_attribute(c, id, VpcAttributeName::EnableDnsHostnames).await? {
                live.insert("enable_dns_hostnames".into(), json!(v));
            }
            live.insert("tags".into(), tags::to_value(&tags::from_ec2(vpc.tags())));
            out.push(Some(SPEC.shape(&req.prior, live)));
        }
        Ok(out)
    }

    async fn update(
        &self,
        c: &Clients,
        _ctx: &OpContext,
        prior: &Attrs,
        attrs: &Attrs,
    ) -> Result<Attrs, ProviderError> {
        let id = attrs::id(prior)?;
        let changed = |name: &str| {
            let want = SPEC.value_or_default(attrs, name);
            (want != SPEC.value_or_default(prior, name)).then(|| want.as_bool().unwrap_or(true))
        };
        let support = changed("enable_dns_support");
        let hostnames = changed("enable_dns_hostnames");
        // Support must be on before hostnames go on, and hostnames off before support goes off.
        if support == Some(true) {
            set_dns(c, id, VpcAttributeName::EnableDnsSupport, true).await?;
        }
        if let Some(h) = hostnames {
            set_dns(c, id, VpcAttributeName::EnableDnsHostnames, h).await?;
        }
        if support == Some(false) {
            set_dns(c, id, VpcAttributeName::EnableDnsSupport, false).await?;
        }
        tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        result.insert("id".into(), Value::String(id.to_string()));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?;
        blockers::delete_once_unused(c, ctx, "VPC", "vpc-id", id, || {
            c.call("DeleteVpc", Retry::Standard, || c.ec2.delete_vpc().vpc_id(id).send())
        })
        .await
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let out = c
            .call("DescribeVpcs", Retry::Standard, || c.ec2.describe_vpcs().filters(address_filter(address)).send())
            .await?;
        Ok(out.vpcs().iter().find(|x| tagged(x.tags(), address, inputs)).and_then(|x| x.vpc_id()).map(str::to_string))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        c.paginate(
            "DescribeVpcs",
            Retry::Standard,
            |token| c.ec2.describe_vpcs().set_filters(Some(owner_filters(owner))).set_next_token(token).send(),
            |page| page.vpcs().iter().filter_map(|x| hit(x.vpc_id(), x.tags())).collect(),
            |page| page.next_token(),
        )
        .await
    }
}

async fn set_dns(c: &Clients, id: &str, attribute: VpcAttributeName, value: bool) -> Result<(), ApiError> {
    let v = AttributeBooleanValue::builder().value(value).build();
    c.call("ModifyVpcAttribute", Retry::AfterCreate, || {
        let call = c.ec2.modify_vpc_attribute().vpc_id(id);
        match attribute {
            VpcAttributeName::EnableDnsSupport => call.enable_dns_support(v.clone()),
            _ => call.enable_dns_hostnames(v.clone()),
        }
        .send()
    })
    .await?;
    Ok(())
}

async fn dns_attribute(c: &Clients, id: &str, attribute: VpcAttributeName) -> Result<Option<bool>, ApiError> {
    let out = c
        .call("DescribeVpcAttribute", Retry::Standard, || {
            c.ec2.describe_vpc_attribute().vpc_id(id).attribute(attribute.clone()).send()
        })
        .await?;
    let value = match attribute {
        VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
        _ => out.enable_dns_hostnames(),
    };
    Ok(value.and_then(|v| v.value()))
}
