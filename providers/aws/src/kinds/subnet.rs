//! `aws_subnet`: a subnet in one availability zone, optionally mapping
//! public IPs to the instances launched in it (public subnets).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet};
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
    kind: "aws_subnet",
    fields: &[
        Field::new("vpc_id", Ty::Str).required().replace().holds(),
        Field::new("cidr_block", Ty::Str).required().replace(),
        Field::new("availability_zone", Ty::Str).required().replace(),
        Field::new("map_public_ip_on_launch", Ty::Bool).default("false"),
        TAGS,
    ],
    computed: &["id"],
    exclusive: true,
};

/// `aws_subnet` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let vpc_id = attrs::req_str(attrs, "vpc_id")?;
        let cidr = attrs::req_str(attrs, "cidr_block")?;
        let az = attrs::req_str(attrs, "availability_zone")?;
        let map_public = attrs::bool_or(attrs, "map_public_ip_on_launch", false)?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let out = c
            .call("CreateSubnet", Retry::AfterCreate, || {
                c.ec2
                    .create_subnet()
                    .vpc_id(vpc_id)
                    .cidr_block(cidr)
                    .availability_zone(az)
                    .tag_specifications(tags::ec2_spec(ResourceType::Subnet, &tags))
                    .send()
            })
            .await?;
        let id = out
            .subnet()
            .and_then(Subnet::subnet_id)
            .ok_or_else(|| ProviderError::new("CreateSubnet returned no id"))?;
        if map_public {
            set_map_public_ip(c, id, true).await.map_err(|e| created_but(id, &ctx.address, e))?;
        }
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let found: HashMap<String, Subnet> = describe_by_id(
            c,
            "DescribeSubnets",
            reqs,
            |ids, token| c.ec2.describe_subnets().filters(filter("subnet-id", ids)).set_next_token(token).send(),
            |page| page.subnets(),
            |item| item.subnet_id(),
            |page| page.next_token(),
        )
        .await?;
        Ok(reqs
            .iter()
            .map(|req| {
                let s = attrs::id(&req.prior).ok().and_then(|id| found.get(id))?;
                let mut live = Attrs::new();
                live.insert("id".into(), json!(s.subnet_id()));
                live.insert("vpc_id".into(), json!(s.vpc_id()));
                live.insert("cidr_block".into(), json!(s.cidr_block()));
                live.insert("availability_zone".into(), json!(s.availability_zone()));
                live.insert("map_public_ip_on_launch".into(), json!(s.map_public_ip_on_launch().unwrap_or(false)));
                live.insert("tags".into(), tags::to_value(&tags::from_ec2(s.tags())));
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
        let want = attrs::bool_or(attrs, "map_public_ip_on_launch", false)?;
        if want != attrs::bool_or(prior, "map_public_ip_on_launch", false)? {
            set_map_public_ip(c, id, want).await?;
        }
        tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        result.insert("id".into(), Value::String(id.to_string()));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?;
        blockers::delete_once_unused(c, ctx, "subnet", "subnet-id", id, || {
            c.call("DeleteSubnet", Retry::Standard, || c.ec2.delete_subnet().subnet_id(id).send())
        })
        .await
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let out = c
            .call("DescribeSubnets", Retry::Standard, || {
                c.ec2.describe_subnets().filters(address_filter(address)).send()
            })
            .await?;
        Ok(out
            .subnets()
            .iter()
            .find(|x| tagged(x.tags(), address, inputs))
            .and_then(|x| x.subnet_id())
            .map(str::to_string))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        c.paginate(
            "DescribeSubnets",
            Retry::Standard,
            |token| c.ec2.describe_subnets().set_filters(Some(owner_filters(owner))).set_next_token(token).send(),
            |page| page.subnets().iter().filter_map(|x| hit(x.subnet_id(), x.tags())).collect(),
            |page| page.next_token(),
        )
        .await
    }
}

async fn set_map_public_ip(c: &Clients, id: &str, value: bool) -> Result<(), ApiError> {
    let v = AttributeBooleanValue::builder().value(value).build();
    c.call("ModifySubnetAttribute", Retry::AfterCreate, || {
        c.ec2.modify_subnet_attribute().subnet_id(id).map_public_ip_on_launch(v.clone()).send()
    })
    .await?;
    Ok(())
}
