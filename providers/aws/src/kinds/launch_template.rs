//! `aws_launch_template`: what a worker pool's auto scaling group launches.
//!
//! Any change but `name` and `tags` creates a new version with the whole
//! desired data; `latest_version` (a string, as auto scaling takes
//! versions) then changes, and the auto scaling group names that version
//! explicitly, which is how it learns to roll. The template's default
//! version is never changed (ModifyLaunchTemplate is outside the seed's
//! policies, docs/iam.md): it stays version 1, and nothing relies on it. `image_id = "auto"` is resolved at create
//! (see `ami.rs`) and kept across versions unless `image_id` itself
//! (or its `ami_lookup`) changes; the image used is `resolved_ami`. `spot_max_price` present means
//! the spot market at that price. Create and new versions pass the
//! operation's ClientToken. Reads describe the templates in one call and
//! each template's latest version with one call each.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplate, LaunchTemplateIamInstanceProfileSpecificationRequest, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateInstanceMarketOptionsRequest, LaunchTemplateSpotMarketOptionsRequest,
    LaunchTemplateTagSpecificationRequest, LaunchTemplateVersion, MarketType, RequestLaunchTemplateData, ResourceType,
    ResponseLaunchTemplateData,
};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::ami::{self, Image};
use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{client_token, FILTER_CHUNK};
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::{self, Tags};

use super::{hit, owner_filters, AwsKind, Hit};

/// The templates named `name` (one at most: names are unique in a
/// region), each as its id and every tag.
async fn by_name(c: &Clients, name: &str) -> Result<Vec<(String, Tags)>, ProviderError> {
    match c
        .call("DescribeLaunchTemplates", Retry::Standard, || {
            c.ec2.describe_launch_templates().launch_template_names(name).send()
        })
        .await
    {
        Ok(out) => Ok(out
            .launch_templates()
            .iter()
            .map(|t| {
                let found = tags::all(t.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))));
                (t.launch_template_id().unwrap_or_default().to_string(), found)
            })
            .collect()),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_launch_template",
    fields: &[
        Field::new("name", Ty::Str)
            .required()
            .replace()
            .at_most(128, "CreateLaunchTemplate: LaunchTemplateName, 3 to 128 characters"),
        Field::new("image_id", Ty::Str).required(),
        Field::new("ami_lookup", Ty::Object(ami::LOOKUP_FIELDS)),
        Field::new("instance_type", Ty::Str).required(),
        Field::new("key_name", Ty::Str),
        Field::new("vpc_security_group_ids", Ty::StrList).default("[]"),
        Field::new("user_data", Ty::Str).at_most(16384, "EC2 user data: 16 KB before base64"),
        Field::new("root_volume_size_gib", Ty::Int),
        Field::new("spot_max_price", Ty::Str),
        Field::new("iam_instance_profile", Ty::Str),
        Field::new("instance_tags", Ty::StrMap).default("{}"),
        TAGS,
    ],
    computed: &["id", "latest_version", "resolved_ami"],
    exclusive: true,
};

/// `aws_launch_template` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let name = attrs::req_str(attrs, "name")?;
        let image = image_for(c, None, attrs).await?;
        let data = launch_data(attrs, &image)?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let token = client_token(&ctx.client_token);
        let out = c
            .call("CreateLaunchTemplate", Retry::AfterCreate, || {
                c.ec2
                    .create_launch_template()
                    .launch_template_name(name)
                    .client_token(&token)
                    .launch_template_data(data.clone())
                    .tag_specifications(tags::ec2_spec(ResourceType::LaunchTemplate, &tags))
                    .send()
            })
            .await?;
        let lt =
            out.launch_template().ok_or_else(|| ProviderError::new("CreateLaunchTemplate returned no template"))?;
        let id = lt.launch_template_id().ok_or_else(|| ProviderError::new("CreateLaunchTemplate returned no id"))?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        result.insert("latest_version".into(), json!(lt.latest_version_number().unwrap_or(1).to_string()));
        result.insert("resolved_ami".into(), json!(image.id));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut ids: Vec<String> = reqs.iter().filter_map(|r| attrs::id(&r.prior).ok().map(str::to_string)).collect();
        ids.sort();
        ids.dedup();
        let mut found: HashMap<String, LaunchTemplate> = HashMap::new();
        for chunk in ids.chunks(FILTER_CHUNK) {
            for lt in describe_existing(c, chunk).await? {
                if let Some(id) = lt.launch_template_id() {
                    found.insert(id.to_string(), lt);
                }
            }
        }
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            let Some(lt) = attrs::id(&req.prior).ok().and_then(|id| found.get(id)) else {
                out.push(None);
                continue;
            };
            let id = lt.launch_template_id().unwrap_or_default();
            let Some(version) = latest_version(c, id).await? else {
                out.push(None);
                continue;
            };
            let mut live = version.launch_template_data().map(|d| data_attrs(&req.prior, d)).unwrap_or_default();
            live.insert("id".into(), json!(id));
            live.insert("name".into(), json!(lt.launch_template_name()));
            live.insert("latest_version".into(), json!(lt.latest_version_number().map(|v| v.to_string())));
            live.insert("tags".into(), tags::to_value(&tags::from_ec2(lt.tags())));
            out.push(Some(SPEC.shape(&req.prior, live)));
        }
        Ok(out)
    }

    async fn update(&self, c: &Clients, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let id = attrs::id(prior)?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        for computed in ["latest_version", "resolved_ami"] {
            result.insert(computed.into(), prior.get(computed).cloned().unwrap_or(Value::Null));
        }
        let versioned_change =
            VERSIONED.iter().any(|k| SPEC.value_or_default(prior, k) != SPEC.value_or_default(attrs, k));
        if versioned_change {
            let image = image_for(c, Some(prior), attrs).await?;
            let data = launch_data(attrs, &image)?;
            let token = client_token(&ctx.client_token);
            let out = c
                .call("CreateLaunchTemplateVersion", Retry::AfterCreate, || {
                    c.ec2
                        .create_launch_template_version()
                        .launch_template_id(id)
                        .client_token(&token)
                        .launch_template_data(data.clone())
                        .send()
                })
                .await?;
            let version = out
                .launch_template_version()
                .and_then(LaunchTemplateVersion::version_number)
                .ok_or_else(|| ProviderError::new("CreateLaunchTemplateVersion returned no version number"))?
                .to_string();
            result.insert("latest_version".into(), json!(version));
            result.insert("resolved_ami".into(), json!(image.id));
        }
        tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
        Ok(result)
    }

    async fn delete(&self, c: &Clients, _ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?;
        match c
            .call("DeleteLaunchTemplate", Retry::Standard, || {
                c.ec2.delete_launch_template().launch_template_id(id).send()
            })
            .await
        {
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let name = attrs::req_str(inputs, "name")?;
        // The name alone is no proof: another cluster may hold it.
        let named = by_name(c, name).await?;
        Ok(named.into_iter().find(|(_, found)| tags::made_for(found, address, inputs)).map(|(id, _)| id))
    }

    fn unique_name(&self) -> Option<&'static str> {
        Some("launch template")
    }

    async fn name_holder(
        &self,
        c: &Clients,
        name: &str,
        _attrs: &Attrs,
    ) -> Result<Option<(String, Tags)>, ProviderError> {
        Ok(by_name(c, name).await?.into_iter().next())
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        c.paginate(
            "DescribeLaunchTemplates",
            Retry::Standard,
            |token| {
                c.ec2.describe_launch_templates().set_filters(Some(owner_filters(owner))).set_next_token(token).send()
            },
            |page| page.launch_templates().iter().filter_map(|t| hit(t.launch_template_id(), t.tags())).collect(),
            |page| page.next_token(),
        )
        .await
    }
}

/// The attributes that go into a version (all but `name` and `tags`).
const VERSIONED: &[&str] = &[
    "image_id",
    "ami_lookup",
    "instance_type",
    "key_name",
    "vpc_security_group_ids",
    "user_data",
    "root_volume_size_gib",
    "spot_max_price",
    "iam_instance_profile",
    "instance_tags",
];

/// The launch data for `attrs` with `image` as the image.
pub(crate) fn launch_data(attrs: &Attrs, image: &Image) -> Result<RequestLaunchTemplateData, ProviderError> {
    let mut data = RequestLaunchTemplateData::builder()
        .image_id(&image.id)
        .instance_type(InstanceType::from(attrs::req_str(attrs, "instance_type")?))
        .set_key_name(attrs::opt_str(attrs, "key_name")?.map(str::to_string))
        .set_security_group_ids(Some(attrs::str_list(attrs, "vpc_security_group_ids")?))
        .set_user_data(attrs::opt_str(attrs, "user_data")?.map(aws_smithy_types::base64::encode));
    if let Some(profile) = attrs::opt_str(attrs, "iam_instance_profile")? {
        data = data.iam_instance_profile(LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(profile).build());
    }
    if let Some(size) = attrs::opt_i32(attrs, "root_volume_size_gib")? {
        let device = image
            .root_device_name
            .as_deref()
            .ok_or_else(|| ProviderError::new(format!("AMI {} has no root device name to size", image.id)))?;
        data = data.block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(device)
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(size)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        );
    }
    if let Some(price) = attrs::opt_str(attrs, "spot_max_price")? {
        data = data.instance_market_options(
            LaunchTemplateInstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(LaunchTemplateSpotMarketOptionsRequest::builder().max_price(price).build())
                .build(),
        );
    }
    let instance_tags = tags::from_attrs(attrs, "instance_tags")?;
    if !instance_tags.is_empty() {
        for rt in [ResourceType::Instance, ResourceType::Volume] {
            data = data.tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(rt)
                    .set_tags(Some(tags::ec2_tags(&instance_tags)))
                    .build(),
            );
        }
    }
    Ok(data.build())
}

/// The image for a new version: the one already resolved while `image_id`
/// stays "auto", so an unrelated change does not swap the image.
async fn image_for(c: &Clients, prior: Option<&Attrs>, attrs: &Attrs) -> Result<Image, ProviderError> {
    let image_id = attrs::req_str(attrs, "image_id")?;
    let need_root = attrs::opt_int(attrs, "root_volume_size_gib")?.is_some();
    let kept = prior
        .filter(|p| p.get("image_id") == attrs.get("image_id") && p.get("ami_lookup") == attrs.get("ami_lookup"))
        .and_then(|p| attrs::opt_str(p, "resolved_ami").ok().flatten());
    match kept {
        Some(resolved) if image_id == ami::AUTO => ami::resolve(c, resolved, need_root, None).await,
        _ => ami::resolve(c, image_id, need_root, ami::Lookup::from_attrs(attrs)?.as_ref()).await,
    }
}

async fn describe_templates(c: &Clients, ids: &[String]) -> Result<Vec<LaunchTemplate>, ApiError> {
    c.paginate(
        "DescribeLaunchTemplates",
        Retry::Standard,
        |token| {
            c.ec2.describe_launch_templates().set_launch_template_ids(Some(ids.to_vec())).set_next_token(token).send()
        },
        |page| page.launch_templates().to_vec(),
        |page| page.next_token(),
    )
    .await
}

/// The templates that exist among `ids` (AWS fails the whole call when one is gone).
async fn describe_existing(c: &Clients, ids: &[String]) -> Result<Vec<LaunchTemplate>, ApiError> {
    match describe_templates(c, ids).await {
        Err(e) if e.is_not_found() => {
            let mut found = Vec::new();
            for id in ids {
                match describe_templates(c, std::slice::from_ref(id)).await {
                    Ok(lts) => found.extend(lts),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        }
        other => other,
    }
}

async fn latest_version(c: &Clients, id: &str) -> Result<Option<LaunchTemplateVersion>, ApiError> {
    let out = c
        .call("DescribeLaunchTemplateVersions", Retry::Standard, || {
            c.ec2.describe_launch_template_versions().launch_template_id(id).versions("$Latest").send()
        })
        .await;
    match out {
        Ok(out) => Ok(out.launch_template_versions().first().cloned()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The live launch data as attributes, given what was written.
pub(crate) fn data_attrs(prior: &Attrs, data: &ResponseLaunchTemplateData) -> Attrs {
    let mut live = Attrs::new();
    let image = data.image_id().unwrap_or_default();
    let auto = ami::reads_as_auto(prior, "image_id", image);
    live.insert("image_id".into(), json!(if auto { ami::AUTO } else { image }));
    live.insert("resolved_ami".into(), json!(image));
    live.insert("instance_type".into(), json!(data.instance_type().map(|t| t.as_str())));
    // Not part of the launch data: as written.
    if let Some(lookup) = prior.get("ami_lookup") {
        live.insert("ami_lookup".into(), lookup.clone());
    }
    live.insert("key_name".into(), json!(data.key_name()));
    let profile = data.iam_instance_profile().and_then(|p| p.name().or(p.arn().map(super::instance::profile_name)));
    live.insert("iam_instance_profile".into(), json!(profile));
    live.insert(
        "vpc_security_group_ids".into(),
        attrs::order_like(prior.get("vpc_security_group_ids"), data.security_group_ids().to_vec()),
    );
    let user_data = data.user_data().map(|b64| {
        aws_smithy_types::base64::decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| b64.to_string())
    });
    live.insert("user_data".into(), json!(user_data));
    let root = data.block_device_mappings().iter().find_map(|m| m.ebs().and_then(|e| e.volume_size()));
    live.insert("root_volume_size_gib".into(), json!(root));
    let spot = data.instance_market_options().filter(|m| m.market_type().map(|t| t.as_str()) == Some("spot"));
    let price = spot.map(|m| {
        // As written when AWS has a price: it may reformat it ("0.1152" as "0.115200").
        match (prior.get("spot_max_price"), m.spot_options().and_then(|s| s.max_price())) {
            (Some(Value::String(p)), Some(_)) => p.clone(),
            (_, Some(live)) => live.to_string(),
            (_, None) => String::new(),
        }
    });
    live.insert("spot_max_price".into(), json!(price));
    let instance_tags = data
        .tag_specifications()
        .iter()
        .find(|t| t.resource_type().map(|r| r.as_str()) == Some("instance"))
        .map(|t| tags::from_ec2(t.tags()))
        .unwrap_or_default();
    live.insert("instance_tags".into(), tags::to_value(&instance_tags));
    live
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{
        LaunchTemplateInstanceMarketOptions, LaunchTemplateSpotMarketOptions, LaunchTemplateTagSpecification, Tag,
    };

    use super::*;

    fn obj(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    fn image() -> Image {
        Image { id: "ami-1".into(), root_device_name: Some("/dev/xvda".into()) }
    }

    #[test]
    fn spot_pools_carry_the_spot_market_and_price() {
        let a = obj(json!({"name": "demo-worker", "image_id": "auto", "instance_type": "m5.xlarge",
            "vpc_security_group_ids": ["sg-node"], "user_data": "#!/bin/sh\necho hi\n",
            "root_volume_size_gib": 60, "spot_max_price": "0.1152", "instance_tags": {"Name": "demo-worker"},
            "iam_instance_profile": "nodes.cluster-api-provider-aws.sigs.k8s.io"}));
        let d = launch_data(&a, &image()).unwrap();
        assert_eq!(d.image_id(), Some("ami-1"));
        let profile = d.iam_instance_profile().unwrap();
        assert_eq!((profile.name(), profile.arn()), (Some("nodes.cluster-api-provider-aws.sigs.k8s.io"), None));
        let market = d.instance_market_options().unwrap();
        assert_eq!(market.market_type(), Some(&MarketType::Spot));
        assert_eq!(market.spot_options().unwrap().max_price(), Some("0.1152"));
        assert_eq!(d.user_data(), Some(aws_smithy_types::base64::encode("#!/bin/sh\necho hi\n").as_str()));
        let root = &d.block_device_mappings()[0];
        assert_eq!(root.device_name(), Some("/dev/xvda"));
        assert_eq!(root.ebs().unwrap().volume_size(), Some(60));
        let kinds: Vec<&str> =
            d.tag_specifications().iter().filter_map(|t| t.resource_type()).map(|r| r.as_str()).collect();
        assert_eq!(kinds, ["instance", "volume"]);
        let on_demand = launch_data(&obj(json!({"image_id": "ami-1", "instance_type": "m5.large"})), &image()).unwrap();
        assert!(on_demand.instance_market_options().is_none());
        assert!(on_demand.iam_instance_profile().is_none());
        assert!(on_demand.block_device_mappings().is_empty());
    }

    #[test]
    fn live_data_reads_back_as_written() {
        let prior = obj(
            json!({"name": "demo-worker", "image_id": "auto", "resolved_ami": "ami-1", "instance_type": "m5.xlarge",
            "vpc_security_group_ids": ["sg-b", "sg-a"], "user_data": "#!/bin/sh\n", "spot_max_price": "0.1152",
            "instance_tags": {"Name": "w"}, "iam_instance_profile": "nodes.x"}),
        );
        let data = ResponseLaunchTemplateData::builder()
            .image_id("ami-1")
            .iam_instance_profile(
                aws_sdk_ec2::types::LaunchTemplateIamInstanceProfileSpecification::builder().name("nodes.x").build(),
            )
            .instance_type(InstanceType::from("m5.xlarge"))
            .security_group_ids("sg-a")
            .security_group_ids("sg-b")
            .user_data(aws_smithy_types::base64::encode("#!/bin/sh\n"))
            .instance_market_options(
                LaunchTemplateInstanceMarketOptions::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(LaunchTemplateSpotMarketOptions::builder().max_price("0.115200").build())
                    .build(),
            )
            .tag_specifications(
                LaunchTemplateTagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key("Name").value("w").build())
                    .build(),
            )
            .build();
        let live = data_attrs(&prior, &data);
        for k in [
            "image_id",
            "instance_type",
            "vpc_security_group_ids",
            "user_data",
            "spot_max_price",
            "instance_tags",
            "iam_instance_profile",
        ] {
            assert_eq!(live[k], prior[k], "{k}");
        }
        // A template no longer on the spot market reads as no price: a diff.
        let on_demand = ResponseLaunchTemplateData::builder().image_id("ami-1").build();
        assert_eq!(data_attrs(&prior, &on_demand)["spot_max_price"], Value::Null);
        // Another image than the one resolved reads as that image: a diff from "auto".
        let other = ResponseLaunchTemplateData::builder().image_id("ami-2").build();
        assert_eq!(data_attrs(&prior, &other)["image_id"], json!("ami-2"));
    }
}

#[cfg(test)]
mod request_tests {
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_ok, recording_ctx, FakeAws};

    /// The emulator ignores ClientToken and does not apply spot options to
    /// what it launches: check what CreateLaunchTemplate sends instead.
    #[tokio::test]
    async fn create_sends_the_client_token_and_the_spot_price() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "CreateLaunchTemplate" => ec2_ok(
                "CreateLaunchTemplate",
                "<launchTemplate><launchTemplateId>lt-1</launchTemplateId><launchTemplateName>demo-worker</launchTemplateName>\
                 <latestVersionNumber>1</latestVersionNumber></launchTemplate>",
            ),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_launch_template", "pool", "worker"), "apply-9-lt");
        let attrs = json!({"name": "demo-worker", "image_id": "ami-1", "instance_type": "m5.xlarge",
            "spot_max_price": "0.1152", "tags": {"Name": "demo-worker"}});
        let out = Kind.create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap();
        assert_eq!(out["id"], json!("lt-1"));
        assert_eq!(out["latest_version"], json!("1"), "a string, as auto scaling takes versions");
        let sent = fake.sent();
        assert_eq!(
            fake.actions(),
            ["CreateLaunchTemplate"],
            "an explicit image without root size needs no DescribeImages"
        );
        let call = &sent[0];
        assert_eq!(call.param("ClientToken"), Some("apply-9-lt"));
        assert_eq!(call.param("LaunchTemplateData.InstanceMarketOptions.MarketType"), Some("spot"));
        assert_eq!(call.param("LaunchTemplateData.InstanceMarketOptions.SpotOptions.MaxPrice"), Some("0.1152"));
        assert_eq!(call.param("TagSpecification.1.ResourceType"), Some("launch-template"));
    }

    #[tokio::test]
    async fn a_change_makes_a_new_version_a_tag_change_does_not() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "CreateLaunchTemplateVersion" => ec2_ok(
                "CreateLaunchTemplateVersion",
                "<launchTemplateVersion><launchTemplateId>lt-1</launchTemplateId><versionNumber>2</versionNumber></launchTemplateVersion>",
            ),
            "CreateTags" => ec2_ok("CreateTags", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_launch_template", "pool", "worker"), "apply-10-lt");
        let prior = json!({"id": "lt-1", "latest_version": "1", "resolved_ami": "ami-1", "name": "demo-worker",
            "image_id": "auto", "instance_type": "m5.xlarge"});
        let bigger = json!({"name": "demo-worker", "image_id": "auto", "instance_type": "m5.2xlarge"});
        let out = Kind.update(&c, &ctx, prior.as_object().unwrap(), bigger.as_object().unwrap()).await.unwrap();
        assert_eq!(out["latest_version"], json!("2"));
        assert_eq!(out["resolved_ami"], json!("ami-1"), "the image stays while image_id stays auto");
        let sent = fake.sent();
        assert_eq!(fake.actions(), ["CreateLaunchTemplateVersion"], "the default version is never changed");
        assert_eq!(sent[0].param("LaunchTemplateData.ImageId"), Some("ami-1"));
        assert_eq!(sent[0].param("ClientToken"), Some("apply-10-lt"));

        let tagged =
            json!({"name": "demo-worker", "image_id": "auto", "instance_type": "m5.xlarge", "tags": {"team": "a"}});
        let out = Kind.update(&c, &ctx, prior.as_object().unwrap(), tagged.as_object().unwrap()).await.unwrap();
        assert_eq!(out["latest_version"], json!("1"));
        assert_eq!(fake.actions().last().map(String::as_str), Some("CreateTags"));
    }
}
