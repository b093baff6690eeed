//! `aws_autoscaling_group`: a worker pool's auto scaling group over private
//! subnets, launching from a launch template.
//!
//! `id` is the name. Sizes, the launch template (id and version) and the
//! subnets change in place with one UpdateAutoScalingGroup; tags through
//! CreateOrUpdateTags/DeleteTags, always with PropagateAtLaunch so the
//! instances the group launches carry them (the address tag included).
//! Create first waits, for a launch template on the spot market, until the
//! spot price is in range (`spot.rs`). Delete uses ForceDelete (terminating
//! the instances) and waits until the
//! group is gone, so the launch template, subnets and groups can follow.

use std::collections::HashMap;

use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::created_but;
use crate::error::ApiError;
use crate::retry::{self, Retry};
use crate::wait::{self, Poll};
use crate::{spot, tags};

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_autoscaling_group",
    fields: &[
        Field::new("name", Ty::Str).required().replace(),
        Field::new("launch_template_id", Ty::Str).required(),
        Field::new("launch_template_version", Ty::Str).default("\"$Default\""),
        Field::new("min_size", Ty::Int).required(),
        Field::new("max_size", Ty::Int).required(),
        Field::new("desired_capacity", Ty::Int),
        Field::new("vpc_zone_identifier", Ty::StrList).required(),
        TAGS,
    ],
    computed: &["id", "arn"],
};

fn template(attrs: &Attrs) -> Result<LaunchTemplateSpecification, ProviderError> {
    Ok(LaunchTemplateSpecification::builder()
        .launch_template_id(attrs::req_str(attrs, "launch_template_id")?)
        .version(attrs::opt_str(attrs, "launch_template_version")?.unwrap_or("$Default"))
        .build())
}

fn zone_identifier(attrs: &Attrs) -> Result<String, ProviderError> {
    Ok(attrs::str_list(attrs, "vpc_zone_identifier")?.join(","))
}

async fn describe(c: &Clients, names: &[String]) -> Result<Vec<AutoScalingGroup>, ApiError> {
    c.paginate(
        "DescribeAutoScalingGroups",
        Retry::Standard,
        |token| {
            c.autoscaling
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(names.to_vec()))
                .set_next_token(token)
                .send()
        },
        |page| page.auto_scaling_groups().to_vec(),
        |page| page.next_token(),
    )
    .await
}

fn is_deleting(g: &AutoScalingGroup) -> bool {
    g.status().is_some_and(|s| s.starts_with("Delete"))
}

pub(crate) async fn create(c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
    let name = attrs::req_str(attrs, "name")?;
    let lt = template(attrs)?;
    let zones = zone_identifier(attrs)?;
    let min = attrs::req_i32(attrs, "min_size")?;
    let max = attrs::req_i32(attrs, "max_size")?;
    let desired = attrs::opt_i32(attrs, "desired_capacity")?;
    let tags = tags::for_create(attrs, &ctx.address)?;
    // A spot pool starts only once its spot price is within its max price.
    spot::wait_until_in_range(c, ctx, attrs).await?;
    c.call("CreateAutoScalingGroup", Retry::AfterCreate, || {
        c.autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_template(lt.clone())
            .min_size(min)
            .max_size(max)
            .set_desired_capacity(desired)
            .vpc_zone_identifier(&zones)
            .set_tags(Some(tags::asg_tags(name, &tags)))
            .send()
    })
    .await?;
    let created = describe(c, &[name.to_string()]).await.map_err(|e| created_but(name, &ctx.address, e))?;
    let mut result = attrs.clone();
    result.insert("id".into(), json!(name));
    result.insert("arn".into(), json!(created.first().and_then(|g| g.auto_scaling_group_arn())));
    Ok(result)
}

pub(crate) async fn read(c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
    let mut names: Vec<String> = reqs.iter().filter_map(|r| attrs::id(&r.prior).ok().map(str::to_string)).collect();
    names.sort();
    names.dedup();
    let mut found: HashMap<String, AutoScalingGroup> = HashMap::new();
    // AWS takes at most 50 names per call.
    for chunk in names.chunks(50) {
        for g in describe(c, chunk).await? {
            if let (Some(name), false) = (g.auto_scaling_group_name(), is_deleting(&g)) {
                found.insert(name.to_string(), g.clone());
            }
        }
    }
    Ok(reqs
        .iter()
        .map(|req| {
            let g = attrs::id(&req.prior).ok().and_then(|n| found.get(n))?;
            let mut live = Attrs::new();
            live.insert("id".into(), json!(g.auto_scaling_group_name()));
            live.insert("name".into(), json!(g.auto_scaling_group_name()));
            live.insert("arn".into(), json!(g.auto_scaling_group_arn()));
            let lt = g.launch_template();
            live.insert("launch_template_id".into(), json!(lt.and_then(|t| t.launch_template_id())));
            live.insert("launch_template_version".into(), json!(lt.and_then(|t| t.version())));
            live.insert("min_size".into(), json!(g.min_size()));
            live.insert("max_size".into(), json!(g.max_size()));
            live.insert("desired_capacity".into(), json!(g.desired_capacity()));
            let zones: Vec<String> = g
                .vpc_zone_identifier()
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            live.insert("vpc_zone_identifier".into(), attrs::order_like(req.prior.get("vpc_zone_identifier"), zones));
            live.insert("tags".into(), tags::to_value(&tags::from_asg(g.tags())));
            Some(SPEC.shape(&req.prior, live))
        })
        .collect())
}

pub(crate) async fn update(
    c: &Clients,
    _ctx: &OpContext,
    prior: &Attrs,
    attrs: &Attrs,
) -> Result<Attrs, ProviderError> {
    let name = attrs::id(prior)?;
    let changed = |k: &str| SPEC.value_or_default(prior, k) != SPEC.value_or_default(attrs, k);
    let mut call = c.autoscaling.update_auto_scaling_group().auto_scaling_group_name(name);
    let mut any = false;
    if changed("launch_template_id") || changed("launch_template_version") {
        call = call.launch_template(template(attrs)?);
        any = true;
    }
    if changed("min_size") {
        call = call.min_size(attrs::req_i32(attrs, "min_size")?);
        any = true;
    }
    if changed("max_size") {
        call = call.max_size(attrs::req_i32(attrs, "max_size")?);
        any = true;
    }
    if changed("desired_capacity") {
        call = call.set_desired_capacity(attrs::opt_i32(attrs, "desired_capacity")?);
        any = true;
    }
    if changed("vpc_zone_identifier") {
        call = call.vpc_zone_identifier(zone_identifier(attrs)?);
        any = true;
    }
    if any {
        c.call("UpdateAutoScalingGroup", Retry::AfterCreate, || call.clone().send()).await?;
    }
    tags::update_asg(c, name, &tags::diff_attrs(prior, attrs)?).await?;
    let mut result = attrs.clone();
    result.insert("id".into(), json!(name));
    result.insert("arn".into(), prior.get("arn").cloned().unwrap_or(Value::Null));
    Ok(result)
}

pub(crate) async fn delete(c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
    let name = attrs::id(prior)?.to_string();
    let t = &c.timeouts;
    let deleted =
        retry::while_blocked(ctx, &format!("auto scaling group {name}"), t.blocked_delete, t.blocked_backoff, || {
            c.call("DeleteAutoScalingGroup", Retry::Standard, || {
                c.autoscaling.delete_auto_scaling_group().auto_scaling_group_name(&name).force_delete(true).send()
            })
        })
        .await;
    match deleted {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    wait::until(
        ctx,
        &format!("auto scaling group {name} and its instances to be deleted"),
        t.autoscaling_group,
        || async {
            let found = describe(c, std::slice::from_ref(&name)).await?;
            Ok(match found.first() {
                None => Poll::Ready(()),
                Some(g) => Poll::Pending(format!("{} instances left", g.instances().len())),
            })
        },
    )
    .await
}

#[cfg(test)]
mod request_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{recording_ctx, FakeAws};

    fn asg_ok(action: &str, result: &str) -> (u16, String) {
        (
            200,
            format!(
                r#"<{action}Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"#
            ),
        )
    }

    /// ForceDelete, then wait while the group is still listed (minutes on
    /// AWS while its instances terminate; immediate on the emulator).
    #[tokio::test(start_paused = true)]
    async fn delete_forces_and_waits_until_the_group_is_gone() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "DeleteAutoScalingGroup" => {
                assert_eq!(req.param("ForceDelete"), Some("true"));
                (200, r#"<DeleteAutoScalingGroupResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteAutoScalingGroupResponse>"#.to_string())
            }
            "DescribeAutoScalingGroups" => {
                let groups = if p.fetch_add(1, Ordering::SeqCst) < 2 {
                    "<member><AutoScalingGroupName>demo-worker</AutoScalingGroupName><Status>Delete in progress</Status>\
                     <MinSize>0</MinSize><MaxSize>0</MaxSize><DesiredCapacity>0</DesiredCapacity><DefaultCooldown>300</DefaultCooldown>\
                     <AvailabilityZones><member>us-east-1a</member></AvailabilityZones><HealthCheckType>EC2</HealthCheckType>\
                     <CreatedTime>2024-01-01T00:00:00Z</CreatedTime>\
                     <Instances><member><InstanceId>i-1</InstanceId><AvailabilityZone>us-east-1a</AvailabilityZone>\
                     <LifecycleState>Terminating</LifecycleState><HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member></Instances>\
                     </member>"
                } else {
                    ""
                };
                asg_ok("DescribeAutoScalingGroups", &format!("<AutoScalingGroups>{groups}</AutoScalingGroups>"))
            }
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "worker"), "t");
        delete(&c, &ctx, json!({"id": "demo-worker"}).as_object().unwrap()).await.unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 3);
        assert_eq!(
            *reports.lock().unwrap(),
            ["waiting for auto scaling group demo-worker and its instances to be deleted (now 1 instances left)"]
        );
    }

    /// The emulator puts every instance in the first subnet: check instead
    /// that the group is created over all of them, with every tag
    /// (the address tag too) propagated at launch.
    #[tokio::test]
    async fn create_spans_every_subnet_and_propagates_every_tag() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "CreateAutoScalingGroup" => (
                200,
                r#"<CreateAutoScalingGroupResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></CreateAutoScalingGroupResponse>"#.to_string(),
            ),
            "DescribeAutoScalingGroups" => asg_ok(
                "DescribeAutoScalingGroups",
                "<AutoScalingGroups><member><AutoScalingGroupName>demo-worker</AutoScalingGroupName>\
                 <AutoScalingGroupARN>arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/demo-worker</AutoScalingGroupARN>\
                 </member></AutoScalingGroups>",
            ),
            // An on-demand template: no spot price to wait for (spot.rs).
            "DescribeLaunchTemplateVersions" => crate::testing::ec2_ok(
                "DescribeLaunchTemplateVersions",
                "<launchTemplateVersionSet><item><launchTemplateData><instanceType>m5.xlarge</instanceType>\
                 </launchTemplateData></item></launchTemplateVersionSet>",
            ),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "worker"), "t");
        let attrs = json!({"name": "demo-worker", "launch_template_id": "lt-1", "launch_template_version": "3",
            "min_size": 1, "max_size": 3, "desired_capacity": 2, "vpc_zone_identifier": ["subnet-a", "subnet-b", "subnet-c"],
            "tags": {"Name": "demo-worker", "kubernetes.io/cluster/demo": "owned"}});
        let out = create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap();
        assert_eq!(out["id"], json!("demo-worker"));
        assert!(out["arn"].as_str().unwrap().ends_with("autoScalingGroupName/demo-worker"));
        assert_eq!(
            fake.actions(),
            ["DescribeLaunchTemplateVersions", "CreateAutoScalingGroup", "DescribeAutoScalingGroups"]
        );
        let sent = fake.sent();
        let call = &sent[1];
        assert_eq!(call.param("VPCZoneIdentifier"), Some("subnet-a,subnet-b,subnet-c"));
        assert_eq!(call.param("LaunchTemplate.LaunchTemplateId"), Some("lt-1"));
        assert_eq!(call.param("LaunchTemplate.Version"), Some("3"));
        let keys = call.values("Tags.member.", ".Key");
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(keys.contains(&"skyplan:address"));
        assert_eq!(call.values("Tags.member.", ".PropagateAtLaunch"), ["true", "true", "true"]);
    }

    #[tokio::test]
    async fn update_sends_only_what_changed() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "UpdateAutoScalingGroup" => (200, r#"<UpdateAutoScalingGroupResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></UpdateAutoScalingGroupResponse>"#.to_string()),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "worker"), "t");
        let prior = json!({"id": "demo-worker", "arn": "arn:x", "name": "demo-worker", "launch_template_id": "lt-1",
            "launch_template_version": "1", "min_size": 3, "max_size": 6, "desired_capacity": 3, "vpc_zone_identifier": ["subnet-a", "subnet-b"]});
        let mut desired = prior.as_object().unwrap().clone();
        desired.remove("id");
        desired.remove("arn");
        desired.insert("desired_capacity".into(), json!(5));
        desired.insert("launch_template_version".into(), json!("2"));
        let out = update(&c, &ctx, prior.as_object().unwrap(), &desired).await.unwrap();
        assert_eq!(out["arn"], json!("arn:x"));
        let sent = fake.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].param("DesiredCapacity"), Some("5"));
        assert_eq!(sent[0].param("LaunchTemplate.Version"), Some("2"));
        assert_eq!(sent[0].param("MinSize"), None);
        assert_eq!(sent[0].param("VPCZoneIdentifier"), None);
    }
}
