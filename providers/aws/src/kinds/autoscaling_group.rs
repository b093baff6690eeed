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
//!
//! A new launch template version for a group that runs instances rolls
//! them: StartInstanceRefresh with the new version as its desired
//! configuration (AWS points the group at it only once the refresh
//! succeeds), at least 90% of the group healthy and up to 110% during the
//! roll, instances already on that version skipped; then the update waits,
//! with progress, until the refresh succeeds, and fails plainly when it
//! fails, is cancelled or rolls back, or takes longer than
//! [`REFRESH_PATIENCE_MINUTES`]. Because the group only moves to the new
//! version with a finished refresh, a failed roll leaves the group on the
//! old version and the next plan shows the update again. An endpoint that
//! does not implement instance refresh (the emulator answers an HTML 500)
//! gets an error saying so; the group is not moved, nothing claims the
//! nodes were rolled.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, DesiredConfiguration, Filter as AsgFilter, InstanceRefresh, InstanceRefreshStatus,
    LaunchTemplateSpecification, RefreshPreferences, RefreshStrategy,
};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::created_but;
use crate::error::ApiError;
use crate::retry::{self, Retry};
use crate::spot;
use crate::tags::{self, Tags, ADDRESS_TAG};
use crate::wait::{self, Poll};

use super::{AwsKind, Hit};

/// The groups DescribeAutoScalingGroups answers for `name`, each as its
/// name and every tag.
async fn by_name(c: &Clients, name: &str) -> Result<Vec<(String, Tags)>, ProviderError> {
    let out = c
        .call("DescribeAutoScalingGroups", Retry::Standard, || {
            c.autoscaling.describe_auto_scaling_groups().auto_scaling_group_names(name).send()
        })
        .await?;
    Ok(out
        .auto_scaling_groups()
        .iter()
        .filter_map(|g| {
            let found = tags::all(g.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))));
            Some((g.auto_scaling_group_name()?.to_string(), found))
        })
        .collect())
}

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_autoscaling_group",
    fields: &[
        Field::new("name", Ty::Str)
            .required()
            .replace()
            .at_most(255, "CreateAutoScalingGroup: AutoScalingGroupName, 1 to 255 characters"),
        Field::new("launch_template_id", Ty::Str).required(),
        // `$Latest`, never `$Default`: a template change is a new version and
        // the default version never moves (launch_template.rs).
        Field::new("launch_template_version", Ty::Str).default("\"$Latest\""),
        Field::new("min_size", Ty::Int).required(),
        Field::new("max_size", Ty::Int).required(),
        Field::new("desired_capacity", Ty::Int),
        Field::new("vpc_zone_identifier", Ty::StrList).required().holds(),
        TAGS,
    ],
    computed: &["id", "arn"],
    exclusive: true,
};

/// `aws_autoscaling_group` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
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

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
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
                live.insert(
                    "vpc_zone_identifier".into(),
                    attrs::order_like(req.prior.get("vpc_zone_identifier"), zones),
                );
                live.insert("tags".into(), tags::to_value(&tags::from_asg(g.tags())));
                Some(SPEC.shape(&req.prior, live))
            })
            .collect())
    }

    async fn update(&self, c: &Clients, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let name = attrs::id(prior)?;
        let changed = |k: &str| SPEC.value_or_default(prior, k) != SPEC.value_or_default(attrs, k);
        let template_changed = changed("launch_template_id") || changed("launch_template_version");
        // A group that runs instances moves to a new template through an
        // instance refresh; an empty one simply points at it.
        let runs_instances = attrs::opt_i32(prior, "desired_capacity")?.unwrap_or(0) > 0;
        let roll = template_changed && runs_instances;
        let mut call = c.autoscaling.update_auto_scaling_group().auto_scaling_group_name(name);
        let mut any = false;
        if template_changed && !roll {
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
        if roll {
            refresh_instances(c, ctx, name, template(attrs)?).await?;
        }
        tags::update_asg(c, name, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(name));
        result.insert("arn".into(), prior.get("arn").cloned().unwrap_or(Value::Null));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let name = attrs::id(prior)?.to_string();
        let t = &c.timeouts;
        let deleted = retry::while_blocked(
            ctx,
            &format!("auto scaling group {name}"),
            t.blocked_delete,
            t.blocked_backoff,
            || {
                c.call("DeleteAutoScalingGroup", Retry::Standard, || {
                    c.autoscaling.delete_auto_scaling_group().auto_scaling_group_name(&name).force_delete(true).send()
                })
            },
        )
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

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let name = attrs::req_str(inputs, "name")?;
        // The name alone is no proof: another cluster may hold it.
        let named = by_name(c, name).await?;
        Ok(named.into_iter().find(|(_, found)| tags::made_for(found, address, inputs)).map(|(name, _)| name))
    }

    fn unique_name(&self) -> Option<&'static str> {
        Some("auto scaling group")
    }

    async fn name_holder(
        &self,
        c: &Clients,
        name: &str,
        _attrs: &Attrs,
    ) -> Result<Option<(String, Tags)>, ProviderError> {
        Ok(by_name(c, name).await?.into_iter().find(|(n, _)| n == name))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        let mut filters: Vec<AsgFilter> =
            owner.iter().map(|(k, v)| AsgFilter::builder().name(format!("tag:{k}")).values(v).build()).collect();
        filters.push(AsgFilter::builder().name("tag-key").values(ADDRESS_TAG).build());
        c.paginate(
            "DescribeAutoScalingGroups",
            Retry::Standard,
            |token| {
                c.autoscaling
                    .describe_auto_scaling_groups()
                    .set_filters(Some(filters.clone()))
                    .set_next_token(token)
                    .send()
            },
            |page| {
                page.auto_scaling_groups()
                    .iter()
                    .filter_map(|g| {
                        let tags = g
                            .tags()
                            .iter()
                            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())));
                        Some(Hit { id: g.auto_scaling_group_name()?.to_string(), tags: tags.collect() })
                    })
                    .collect()
            },
            |page| page.next_token(),
        )
        .await
    }
}

/// The share of the group kept in service during an instance refresh, and
/// the most it may grow to (new instances launch before old ones go).
pub(crate) const REFRESH_MIN_HEALTHY_PERCENT: i32 = 90;
pub(crate) const REFRESH_MAX_HEALTHY_PERCENT: i32 = 110;
/// How long an instance refresh may take before the update gives up on
/// waiting (the refresh itself goes on in AWS).
pub(crate) const REFRESH_PATIENCE_MINUTES: u64 = 60;

fn template(attrs: &Attrs) -> Result<LaunchTemplateSpecification, ProviderError> {
    Ok(LaunchTemplateSpecification::builder()
        .launch_template_id(attrs::req_str(attrs, "launch_template_id")?)
        .version(attrs::opt_str(attrs, "launch_template_version")?.unwrap_or("$Latest"))
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

/// Replace the group's instances with ones launched from `template`, and
/// wait until AWS reports the refresh successful.
async fn refresh_instances(
    c: &Clients,
    ctx: &OpContext,
    name: &str,
    template: LaunchTemplateSpecification,
) -> Result<(), ProviderError> {
    let version = template.version().unwrap_or("$Latest").to_string();
    let preferences = RefreshPreferences::builder()
        .min_healthy_percentage(REFRESH_MIN_HEALTHY_PERCENT)
        .max_healthy_percentage(REFRESH_MAX_HEALTHY_PERCENT)
        .skip_matching(true)
        .build();
    let desired = DesiredConfiguration::builder().launch_template(template).build();
    let started = c
        .call("StartInstanceRefresh", Retry::AfterCreate, || {
            c.autoscaling
                .start_instance_refresh()
                .auto_scaling_group_name(name)
                .strategy(RefreshStrategy::Rolling)
                .desired_configuration(desired.clone())
                .preferences(preferences.clone())
                .send()
        })
        .await;
    let out = match started {
        Ok(out) => out,
        Err(e) if e.code() == "InstanceRefreshInProgress" => {
            return Err(ProviderError::new(format!(
                "auto scaling group {name} already has an instance refresh in progress ({e}); wait for it to \
                 finish (aws autoscaling describe-instance-refreshes --auto-scaling-group-name {name}) or cancel it, \
                 then apply again"
            )));
        }
        Err(e) if e.code.is_none() && e.status.is_some_and(|s| s >= 500) => {
            // AWS answers errors with a code; a bare 5xx page is an endpoint
            // (the emulator) that has no such operation.
            return Err(ProviderError::new(format!(
                "the endpoint does not implement instance refresh (StartInstanceRefresh answered HTTP {} without \
                 an AWS error): auto scaling group {name} was not moved to launch template version {version} and \
                 its instances were not replaced; apply against AWS, or replace the instances yourself",
                e.status.unwrap_or_default()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let id = out
        .instance_refresh_id()
        .ok_or_else(|| ProviderError::new("StartInstanceRefresh returned no instance refresh id"))?
        .to_string();
    ctx.report(format!("instance refresh {id} started: rolling {name} to launch template version {version}"));
    let patience = wait::Patience::minutes(REFRESH_PATIENCE_MINUTES);
    let what = format!("instance refresh {id} of auto scaling group {name}");
    wait::until(ctx, &what, patience, || async {
        let out = c
            .call("DescribeInstanceRefreshes", Retry::Standard, || {
                c.autoscaling
                    .describe_instance_refreshes()
                    .auto_scaling_group_name(name)
                    .instance_refresh_ids(&id)
                    .send()
            })
            .await?;
        Ok(poll_refresh(out.instance_refreshes().iter().find(|r| r.instance_refresh_id() == Some(id.as_str()))))
    })
    .await
}

/// What waiting for an instance refresh makes of its description.
pub(crate) fn poll_refresh(r: Option<&InstanceRefresh>) -> Poll<()> {
    let Some(r) = r else {
        return Poll::Pending("not visible yet".into());
    };
    let status = r.status().map(|s| s.as_str()).unwrap_or("unknown");
    let reason = r.status_reason().map(|m| format!(": {m}")).unwrap_or_default();
    match r.status() {
        Some(InstanceRefreshStatus::Successful) => Poll::Ready(()),
        Some(
            InstanceRefreshStatus::Failed
            | InstanceRefreshStatus::Cancelled
            | InstanceRefreshStatus::RollbackSuccessful
            | InstanceRefreshStatus::RollbackFailed,
        ) => {
            Poll::Failed(format!("it ended {status}{reason}; the group stays on its previous launch template version"))
        }
        _ => {
            let mut now = status.to_string();
            if let Some(p) = r.percentage_complete() {
                now.push_str(&format!(", {p}% complete"));
            }
            if let Some(n) = r.instances_to_update() {
                now.push_str(&format!(", {n} instances to update"));
            }
            Poll::Pending(now)
        }
    }
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
        Kind.delete(&c, &ctx, json!({"id": "demo-worker"}).as_object().unwrap()).await.unwrap();
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
        let out = Kind.create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap();
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
        // An empty group: a new template version needs no instance refresh.
        let prior = json!({"id": "demo-worker", "arn": "arn:x", "name": "demo-worker", "launch_template_id": "lt-1",
            "launch_template_version": "1", "min_size": 0, "max_size": 6, "desired_capacity": 0, "vpc_zone_identifier": ["subnet-a", "subnet-b"]});
        let mut desired = prior.as_object().unwrap().clone();
        desired.remove("id");
        desired.remove("arn");
        desired.insert("desired_capacity".into(), json!(5));
        desired.insert("launch_template_version".into(), json!("2"));
        let out = Kind.update(&c, &ctx, prior.as_object().unwrap(), &desired).await.unwrap();
        assert_eq!(out["arn"], json!("arn:x"));
        let sent = fake.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].param("DesiredCapacity"), Some("5"));
        assert_eq!(sent[0].param("LaunchTemplate.Version"), Some("2"));
        assert_eq!(sent[0].param("MinSize"), None);
        assert_eq!(sent[0].param("VPCZoneIdentifier"), None);
    }

    fn refresh(status: &str, extra: &str) -> String {
        format!(
            "<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId>\
             <AutoScalingGroupName>demo-worker</AutoScalingGroupName><Status>{status}</Status>{extra}</member></InstanceRefreshes>"
        )
    }

    fn asg_error(code: &str, message: &str) -> (u16, String) {
        (
            400,
            format!(
                r#"<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"#
            ),
        )
    }

    /// A running group whose template version changes, and its desired size.
    fn rolled() -> (Attrs, Attrs) {
        let prior = json!({"id": "demo-worker", "arn": "arn:x", "name": "demo-worker", "launch_template_id": "lt-1",
            "launch_template_version": "1", "min_size": 3, "max_size": 6, "desired_capacity": 3,
            "vpc_zone_identifier": ["subnet-a", "subnet-b"]});
        let mut desired = prior.as_object().unwrap().clone();
        desired.remove("id");
        desired.remove("arn");
        desired.insert("launch_template_version".into(), json!("2"));
        (prior.as_object().unwrap().clone(), desired)
    }

    /// A new template version on a running group: no UpdateAutoScalingGroup
    /// of the template, but StartInstanceRefresh with the version as the
    /// desired configuration and the roll's preferences; then wait through
    /// Pending and InProgress (reported with the percentage) to Successful.
    #[tokio::test(start_paused = true)]
    async fn a_new_template_version_rolls_the_instances_and_waits_for_the_refresh() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "StartInstanceRefresh" => asg_ok("StartInstanceRefresh", "<InstanceRefreshId>ir-1</InstanceRefreshId>"),
            "DescribeInstanceRefreshes" => {
                assert_eq!(req.param("InstanceRefreshIds.member.1"), Some("ir-1"));
                let body = match p.fetch_add(1, Ordering::SeqCst) {
                    0 => refresh("Pending", ""),
                    1 | 2 => refresh(
                        "InProgress",
                        "<PercentageComplete>33</PercentageComplete><InstancesToUpdate>2</InstancesToUpdate>",
                    ),
                    3 => refresh(
                        "InProgress",
                        "<PercentageComplete>66</PercentageComplete><InstancesToUpdate>1</InstancesToUpdate>",
                    ),
                    _ => refresh("Successful", "<PercentageComplete>100</PercentageComplete>"),
                };
                asg_ok("DescribeInstanceRefreshes", &body)
            }
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "worker"), "t");
        let (prior, desired) = rolled();
        let out = Kind.update(&c, &ctx, &prior, &desired).await.unwrap();
        assert_eq!(out["launch_template_version"], json!("2"));
        assert_eq!(polls.load(Ordering::SeqCst), 5);
        let sent = fake.sent();
        assert_eq!(sent[0].action, "StartInstanceRefresh", "the template moves with the refresh, not before it");
        let start = &sent[0];
        assert_eq!(start.param("AutoScalingGroupName"), Some("demo-worker"));
        assert_eq!(start.param("Strategy"), Some("Rolling"));
        assert_eq!(start.param("DesiredConfiguration.LaunchTemplate.LaunchTemplateId"), Some("lt-1"));
        assert_eq!(start.param("DesiredConfiguration.LaunchTemplate.Version"), Some("2"));
        assert_eq!(start.param("Preferences.MinHealthyPercentage"), Some("90"));
        assert_eq!(start.param("Preferences.MaxHealthyPercentage"), Some("110"));
        assert_eq!(start.param("Preferences.SkipMatching"), Some("true"));
        assert!(sent[1..].iter().all(|s| s.action == "DescribeInstanceRefreshes"));
        assert_eq!(
            *reports.lock().unwrap(),
            [
                "instance refresh ir-1 started: rolling demo-worker to launch template version 2",
                "waiting for instance refresh ir-1 of auto scaling group demo-worker (now Pending)",
                "waiting for instance refresh ir-1 of auto scaling group demo-worker (now InProgress, 33% complete, 2 instances to update)",
                "waiting for instance refresh ir-1 of auto scaling group demo-worker (now InProgress, 66% complete, 1 instances to update)",
            ]
        );
    }

    /// A refresh that fails, is cancelled or rolls back fails the update with
    /// AWS's reason; nothing claims the roll happened.
    #[tokio::test(start_paused = true)]
    async fn a_failed_or_cancelled_refresh_fails_the_update_with_the_reason() {
        for (status, reason) in [
            ("Failed", "Instances failed to launch: insufficient capacity"),
            ("Cancelled", "Cancelled by the user"),
            ("RollbackSuccessful", "Rolled back after an alarm"),
        ] {
            let fake = FakeAws::new(move |req| match req.action.as_str() {
                "StartInstanceRefresh" => asg_ok("StartInstanceRefresh", "<InstanceRefreshId>ir-1</InstanceRefreshId>"),
                "DescribeInstanceRefreshes" => asg_ok(
                    "DescribeInstanceRefreshes",
                    &refresh(status, &format!("<StatusReason>{reason}</StatusReason>")),
                ),
                other => panic!("unexpected call {other}"),
            });
            let c = fake.clients().await;
            let (ctx, _) = recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "worker"), "t");
            let (prior, desired) = rolled();
            let err = Kind.update(&c, &ctx, &prior, &desired).await.unwrap_err();
            assert!(err.message.contains(&format!("ended {status}: {reason}")), "{err}");
            assert!(err.message.contains("stays on its previous launch template version"), "{err}");
        }
    }

    /// Waiting is bounded: a refresh that never finishes ends the update with
    /// a timeout naming the refresh and its last state.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_refresh_is_bounded() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "StartInstanceRefresh" => asg_ok("StartInstanceRefresh", "<InstanceRefreshId>ir-1</InstanceRefreshId>"),
            _ => asg_ok(
                "DescribeInstanceRefreshes",
                &refresh("InProgress", "<PercentageComplete>50</PercentageComplete>"),
            ),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "worker"), "t");
        let (prior, desired) = rolled();
        let started = tokio::time::Instant::now();
        let err = Kind.update(&c, &ctx, &prior, &desired).await.unwrap_err();
        assert!(err.message.starts_with("timed out after 3600s waiting for instance refresh ir-1"), "{err}");
        assert!(err.message.contains("InProgress, 50% complete"), "{err}");
        assert!(started.elapsed() <= std::time::Duration::from_secs(REFRESH_PATIENCE_MINUTES * 60));
    }

    /// An endpoint without instance refresh (the emulator answers an HTML
    /// 500 page) and a refresh already running each get an error that says
    /// so; neither moves the group.
    #[tokio::test(start_paused = true)]
    async fn no_instance_refresh_at_the_endpoint_is_an_error_not_a_success() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "StartInstanceRefresh" => (500, "<!doctype html><title>500 Internal Server Error</title>".to_string()),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "worker"), "t");
        let (prior, desired) = rolled();
        let err = Kind.update(&c, &ctx, &prior, &desired).await.unwrap_err();
        assert!(err.message.starts_with("the endpoint does not implement instance refresh"), "{err}");
        assert!(err.message.contains("not moved to launch template version 2"), "{err}");
        assert!(fake.actions().iter().all(|a| a == "StartInstanceRefresh"), "{:?}", fake.actions());

        let busy =
            FakeAws::new(|_| asg_error("InstanceRefreshInProgress", "An Instance Refresh is already in progress"));
        let c = busy.clients().await;
        let err = Kind.update(&c, &ctx, &prior, &desired).await.unwrap_err();
        assert!(err.message.contains("already has an instance refresh in progress"), "{err}");
        assert_eq!(busy.actions(), ["StartInstanceRefresh"], "an answer, not retried");
    }
}
