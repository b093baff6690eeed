//! `aws_instance`: one EC2 instance (the bastion, control-plane nodes).
//!
//! Create resolves `ami = "auto"` (see `ami.rs`), launches with the
//! operation's ClientToken (a retried RunInstances returns the same
//! instance), tags the instance and its volumes at launch, and waits until
//! it is `running` to report its addresses. Only the security groups change
//! in place (ModifyInstanceAttribute); every other attribute replaces.
//! AWS does not return `user_data` or `associate_public_ip_address`: reads
//! echo them from the prior attributes. Delete terminates and waits until
//! `terminated`, so the subnet and groups can go next.
//!
//! `load_balancer` names a classic ELB the instance is registered with: at
//! create once it runs, in place when it changes, and deregistered before
//! it is terminated, so a node leaves the load balancer before it stops
//! answering. Reads report it only while the instance is registered there.
//! (No wait for InService: that needs elasticloadbalancing:
//! DescribeInstanceHealth, which the seed's policies do not grant.)
//!
//! `api_wait` (control-plane nodes): create returns once the node is a
//! control-plane member of the cluster, asked of the API server through
//! the endpoint (`apiwait.rs`); skipped with a note where the endpoint
//! does not resolve. It changes nothing in place and reads as written.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, IamInstanceProfileSpecification, Instance,
    InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, ResourceType,
};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use super::elb;
use crate::ami;
use crate::apiwait::{self, ApiWait};
use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{client_token, created_but, filter, id_chunks, FILTER_CHUNK};
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::{self, Tags};
use crate::wait::{self, Poll};

use super::{address_filter, hit, owner_filters, tagged, AwsKind, Hit};

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_instance",
    fields: &[
        Field::new("ami", Ty::Str).required().replace(),
        Field::new("ami_lookup", Ty::Object(ami::LOOKUP_FIELDS)).replace(),
        Field::new("instance_type", Ty::Str).required().replace(),
        Field::new("subnet_id", Ty::Str).required().replace().holds(),
        Field::new("vpc_security_group_ids", Ty::StrList).default("[]").holds(),
        Field::new("key_name", Ty::Str).replace(),
        Field::new("user_data", Ty::Str).replace().at_most(16384, "EC2 user data: 16 KB before base64"),
        Field::new("root_volume_size_gib", Ty::Int).replace(),
        Field::new("associate_public_ip_address", Ty::Bool).replace(),
        Field::new("load_balancer", Ty::Str),
        Field::new("iam_instance_profile", Ty::Str).replace(),
        Field::new("api_wait", Ty::Object(apiwait::FIELDS)),
        TAGS,
    ],
    computed: &["id", "private_ip", "public_ip", "resolved_ami"],
    exclusive: false,
};

/// `aws_instance` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let ami_attr = attrs::req_str(attrs, "ami")?;
        let instance_type = attrs::req_str(attrs, "instance_type")?;
        let subnet_id = attrs::req_str(attrs, "subnet_id")?;
        let groups = attrs::str_list(attrs, "vpc_security_group_ids")?;
        let key_name = attrs::opt_str(attrs, "key_name")?;
        let user_data = attrs::opt_str(attrs, "user_data")?.map(aws_smithy_types::base64::encode);
        let root_size = attrs::opt_i32(attrs, "root_volume_size_gib")?;
        let public_ip = attrs::opt_bool(attrs, "associate_public_ip_address")?;
        let profile = attrs::opt_str(attrs, "iam_instance_profile")?
            .map(|name| IamInstanceProfileSpecification::builder().name(name).build());
        let tags = tags::for_create(attrs, &ctx.address)?;
        let lookup = ami::Lookup::from_attrs(attrs)?;
        let image = ami::resolve(c, ami_attr, root_size.is_some(), lookup.as_ref()).await?;
        let root_device = match (root_size, &image.root_device_name) {
            (None, _) => None,
            (Some(size), Some(device)) => Some(
                BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(EbsBlockDevice::builder().volume_size(size).delete_on_termination(true).build())
                    .build(),
            ),
            (Some(_), None) => {
                return Err(ProviderError::new(format!("AMI {} has no root device name to size", image.id)));
            }
        };
        // A public IP choice goes on the network interface, and then the subnet and groups must too.
        let interface = public_ip.map(|public| {
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(subnet_id)
                .set_groups(Some(groups.clone()))
                .associate_public_ip_address(public)
                .delete_on_termination(true)
                .build()
        });
        let token = client_token(&ctx.client_token);
        let out = c
            .call("RunInstances", Retry::AfterCreate, || {
                let mut run = c
                    .ec2
                    .run_instances()
                    .image_id(&image.id)
                    .instance_type(InstanceType::from(instance_type))
                    .min_count(1)
                    .max_count(1)
                    .client_token(&token)
                    .set_key_name(key_name.map(str::to_string))
                    .set_user_data(user_data.clone())
                    .set_block_device_mappings(root_device.clone().map(|d| vec![d]))
                    .set_iam_instance_profile(profile.clone())
                    .tag_specifications(tags::ec2_spec(ResourceType::Instance, &tags))
                    .tag_specifications(tags::ec2_spec(ResourceType::Volume, &tags));
                run = match &interface {
                    Some(eni) => run.network_interfaces(eni.clone()),
                    None => run.subnet_id(subnet_id).set_security_group_ids(Some(groups.clone())),
                };
                run.send()
            })
            .await?;
        let id = out
            .instances()
            .first()
            .and_then(Instance::instance_id)
            .ok_or_else(|| ProviderError::new("RunInstances returned no instance"))?
            .to_string();
        let running = wait::until(ctx, &format!("instance {id} to be running"), c.timeouts.instance, || async {
            let found = describe(c, vec![id.clone()], Retry::AfterCreate).await?;
            Ok(poll_running(found.first()))
        })
        .await
        .map_err(|e| created_but(&id, &ctx.address, e))?;
        if let Some(lb) = attrs::opt_str(attrs, "load_balancer")? {
            ctx.report(format!("registering {id} with load balancer {lb}"));
            elb::register_instances(c, lb, std::slice::from_ref(&id))
                .await
                .map_err(|e| created_but(&id, &ctx.address, e))?;
        }
        if let (Some(api), Some(ip)) = (ApiWait::from_attrs(attrs)?, running.private_ip_address()) {
            // The next control plane and the worker pools start once this node is in the cluster.
            apiwait::until_member(c, ctx, &api, ip).await.map_err(|e| created_but(&id, &ctx.address, e))?;
        }
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        result.insert("private_ip".into(), json!(running.private_ip_address()));
        result.insert("public_ip".into(), json!(running.public_ip_address()));
        result.insert("resolved_ami".into(), json!(image.id));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut found: HashMap<String, Instance> = HashMap::new();
        for ids in id_chunks(reqs) {
            for i in describe(c, ids, Retry::Standard).await? {
                if let Some(id) = i.instance_id() {
                    if !is_gone(&i) {
                        found.insert(id.to_string(), i);
                    }
                }
            }
        }
        let volumes: Vec<String> = reqs
            .iter()
            .filter(|r| r.prior.contains_key("root_volume_size_gib"))
            .filter_map(|r| found.get(attrs::id(&r.prior).ok()?))
            .filter_map(|i| root_volume_id(i).map(str::to_string))
            .collect();
        let sizes = if volumes.is_empty() { HashMap::new() } else { root_volume_sizes(c, volumes).await? };
        let mut balancers: Vec<String> =
            reqs.iter().filter_map(|r| r.prior.get("load_balancer")?.as_str().map(str::to_string)).collect();
        balancers.sort();
        balancers.dedup();
        let registered = if balancers.is_empty() { HashMap::new() } else { elb::registrations(c, &balancers).await? };
        Ok(reqs
            .iter()
            .map(|req| {
                let i = attrs::id(&req.prior).ok().and_then(|id| found.get(id))?;
                let image = i.image_id().unwrap_or_default();
                let ami = if ami::reads_as_auto(&req.prior, "ami", image) { ami::AUTO } else { image };
                let groups = instance_groups(i);
                let mut live = Attrs::new();
                live.insert("id".into(), json!(i.instance_id()));
                live.insert("ami".into(), json!(ami));
                live.insert("resolved_ami".into(), json!(image));
                live.insert("instance_type".into(), json!(i.instance_type().map(|t| t.as_str())));
                live.insert("subnet_id".into(), json!(i.subnet_id()));
                live.insert(
                    "vpc_security_group_ids".into(),
                    attrs::order_like(req.prior.get("vpc_security_group_ids"), groups),
                );
                live.insert("key_name".into(), json!(i.key_name()));
                let profile = i.iam_instance_profile().and_then(|p| p.arn()).map(profile_name);
                live.insert("iam_instance_profile".into(), json!(profile));
                if let Some(size) = root_volume_id(i).and_then(|v| sizes.get(v)) {
                    live.insert("root_volume_size_gib".into(), json!(size));
                }
                if let Some(lb) = req.prior.get("load_balancer").and_then(Value::as_str) {
                    let id = i.instance_id().unwrap_or_default();
                    let there = registered.get(lb).is_some_and(|ids| ids.iter().any(|r| r == id));
                    live.insert("load_balancer".into(), if there { json!(lb) } else { Value::Null });
                }
                // Not returned by DescribeInstances: as recorded.
                for echoed in ["user_data", "associate_public_ip_address", "ami_lookup", "api_wait"] {
                    if let Some(v) = req.prior.get(echoed) {
                        live.insert(echoed.into(), v.clone());
                    }
                }
                live.insert("private_ip".into(), json!(i.private_ip_address()));
                live.insert("public_ip".into(), json!(i.public_ip_address()));
                live.insert("tags".into(), tags::to_value(&tags::from_ec2(i.tags())));
                Some(SPEC.shape(&req.prior, live))
            })
            .collect())
    }

    async fn update(&self, c: &Clients, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let id = attrs::id(prior)?;
        let (had, want) = (attrs::opt_str(prior, "load_balancer")?, attrs::opt_str(attrs, "load_balancer")?);
        if had != want {
            let ids = [id.to_string()];
            if let Some(lb) = want {
                ctx.report(format!("registering {id} with load balancer {lb}"));
                elb::register_instances(c, lb, &ids).await?;
            }
            if let Some(lb) = had {
                ctx.report(format!("deregistering {id} from load balancer {lb}"));
                elb::deregister_instances(c, lb, &ids).await?;
            }
        }
        let groups = attrs::str_list(attrs, "vpc_security_group_ids")?;
        if groups != attrs::str_list(prior, "vpc_security_group_ids")? {
            c.call("ModifyInstanceAttribute", Retry::AfterCreate, || {
                c.ec2.modify_instance_attribute().instance_id(id).set_groups(Some(groups.clone())).send()
            })
            .await?;
        }
        tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        for computed in SPEC.computed {
            result.insert(computed.to_string(), prior.get(*computed).cloned().unwrap_or(Value::Null));
        }
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?.to_string();
        if let Some(lb) = attrs::opt_str(prior, "load_balancer")? {
            // Out of the load balancer first: no request goes to a node that is going away.
            ctx.report(format!("deregistering {id} from load balancer {lb}"));
            elb::deregister_instances(c, lb, std::slice::from_ref(&id)).await?;
        }
        let terminated = c
            .call("TerminateInstances", Retry::Standard, || c.ec2.terminate_instances().instance_ids(&id).send())
            .await;
        match terminated {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        wait::until(ctx, &format!("instance {id} to be terminated"), c.timeouts.instance, || async {
            let found = describe(c, vec![id.clone()], Retry::Standard).await?;
            Ok(match found.first() {
                None => Poll::Ready(()),
                Some(i) if state_name(i) == Some(&InstanceStateName::Terminated) => Poll::Ready(()),
                Some(i) => Poll::Pending(state(i).to_string()),
            })
        })
        .await
    }

    async fn find_id(&self, c: &Clients, address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        let out = c
            .call("DescribeInstances", Retry::Standard, || {
                c.ec2.describe_instances().filters(address_filter(address)).filters(live_filter()).send()
            })
            .await?;
        let mut instances = out.reservations().iter().flat_map(|r| r.instances());
        Ok(instances.find(|i| tagged(i.tags(), address, inputs)).and_then(|i| i.instance_id()).map(str::to_string))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        let mut filters = owner_filters(owner);
        filters.push(live_filter());
        c.paginate(
            "DescribeInstances",
            Retry::Standard,
            |token| c.ec2.describe_instances().set_filters(Some(filters.clone())).set_next_token(token).send(),
            |page| {
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter(|i| is_live(i))
                    .filter_map(|i| hit(i.instance_id(), i.tags()))
                    .collect()
            },
            |page| page.next_token(),
        )
        .await
    }
}

/// The states of an instance that exists and may run again: what a lookup
/// by tag or an orphan listing counts.
const LIVE: [InstanceStateName; 4] =
    [InstanceStateName::Pending, InstanceStateName::Running, InstanceStateName::Stopping, InstanceStateName::Stopped];

/// The states of an instance that is gone or going.
const GONE: [InstanceStateName; 2] = [InstanceStateName::ShuttingDown, InstanceStateName::Terminated];

fn state_name(i: &Instance) -> Option<&InstanceStateName> {
    i.state().and_then(|s| s.name())
}

fn is_live(i: &Instance) -> bool {
    state_name(i).is_some_and(|s| LIVE.contains(s))
}

fn is_gone(i: &Instance) -> bool {
    state_name(i).is_some_and(|s| GONE.contains(s))
}

/// The EC2 filter that selects [`LIVE`] instances.
fn live_filter() -> aws_sdk_ec2::types::Filter {
    filter("instance-state-name", LIVE.iter().map(|s| s.as_str()))
}

/// An instance profile's name from its ARN
/// (`arn:aws:iam::ACCOUNT:instance-profile/PATH/NAME`): DescribeInstances
/// reports only the ARN.
pub(crate) fn profile_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The state for messages.
fn state(i: &Instance) -> &str {
    state_name(i).map(|n| n.as_str()).unwrap_or("unknown")
}

/// What `create` waits for: `running`.
pub(crate) fn poll_running(i: Option<&Instance>) -> Poll<Instance> {
    match i {
        None => Poll::Pending("not visible yet".into()),
        Some(i) => match state_name(i) {
            Some(InstanceStateName::Running) => Poll::Ready(i.clone()),
            Some(InstanceStateName::Pending) => Poll::Pending("pending".into()),
            _ => Poll::Failed(format!(
                "it is {}{}",
                state(i),
                i.state_reason().and_then(|r| r.message()).map(|m| format!(": {m}")).unwrap_or_default()
            )),
        },
    }
}

async fn describe(c: &Clients, ids: Vec<String>, retry: Retry) -> Result<Vec<Instance>, ApiError> {
    c.paginate(
        "DescribeInstances",
        retry,
        |token| c.ec2.describe_instances().filters(filter("instance-id", ids.clone())).set_next_token(token).send(),
        |page| page.reservations().iter().flat_map(|r| r.instances().iter().cloned()).collect(),
        |page| page.next_token(),
    )
    .await
}

/// Root volume sizes by volume id, for the instances whose prior sets one.
async fn root_volume_sizes(c: &Clients, volume_ids: Vec<String>) -> Result<HashMap<String, i32>, ApiError> {
    let mut sizes = HashMap::new();
    for chunk in volume_ids.chunks(FILTER_CHUNK) {
        let volumes = c
            .paginate(
                "DescribeVolumes",
                Retry::Standard,
                |token| {
                    c.ec2.describe_volumes().filters(filter("volume-id", chunk.to_vec())).set_next_token(token).send()
                },
                |page| page.volumes().to_vec(),
                |page| page.next_token(),
            )
            .await?;
        for v in volumes {
            if let (Some(id), Some(size)) = (v.volume_id(), v.size()) {
                sizes.insert(id.to_string(), size);
            }
        }
    }
    Ok(sizes)
}

/// The root volume: the mapping on the root device name, else the only one.
fn root_volume_id(i: &Instance) -> Option<&str> {
    let mappings = i.block_device_mappings();
    let root = mappings.iter().find(|m| m.device_name().is_some() && m.device_name() == i.root_device_name());
    let root = root.or(if mappings.len() == 1 { mappings.first() } else { None })?;
    root.ebs()?.volume_id()
}

/// The instance's security groups; those of its primary network interface
/// when the instance lists none (the emulator, for an instance launched
/// with a network interface specification).
fn instance_groups(i: &Instance) -> Vec<String> {
    let groups: Vec<String> = i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect();
    if !groups.is_empty() {
        return groups;
    }
    let interfaces = i.network_interfaces();
    interfaces
        .iter()
        .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0) || interfaces.len() == 1)
        .map(|n| n.groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{InstanceState, InstanceStateName, StateReason};

    use super::*;

    fn instance(s: InstanceStateName) -> Instance {
        Instance::builder().instance_id("i-1").state(InstanceState::builder().name(s).build()).build()
    }

    #[test]
    fn running_by_state() {
        assert_eq!(poll_running(None), Poll::Pending("not visible yet".into()));
        assert_eq!(poll_running(Some(&instance(InstanceStateName::Pending))), Poll::Pending("pending".into()));
        assert!(matches!(poll_running(Some(&instance(InstanceStateName::Running))), Poll::Ready(_)));
        let failed = Instance::builder()
            .state(InstanceState::builder().name(InstanceStateName::Terminated).build())
            .state_reason(StateReason::builder().message("Server.InsufficientInstanceCapacity").build())
            .build();
        assert_eq!(
            poll_running(Some(&failed)),
            Poll::Failed("it is terminated: Server.InsufficientInstanceCapacity".into())
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

    /// RunInstances carries the ClientToken (ignored by the emulator), the
    /// image "auto" resolved to, the root volume on the image's root device,
    /// user data base64-encoded, and the public IP choice on the network
    /// interface; create then waits through `pending` (immediate on the
    /// emulator) and reports the addresses.
    #[tokio::test(start_paused = true)]
    async fn create_resolves_auto_sends_the_token_and_waits_until_running() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fake = FakeAws::new(move |req| {
            match req.action.as_str() {
            "DescribeImages" => {
                assert_eq!(req.param("Owner.1"), Some("amazon"));
                assert_eq!(req.values("Filter.", ".Name"), ["name", "architecture", "state"]);
                ec2_ok(
                    "DescribeImages",
                    "<imagesSet><item><imageId>ami-old</imageId><name>al2023-ami-2023.5.20240701.0-kernel-6.1-x86_64</name>\
                     <creationDate>2024-07-01T00:00:00.000Z</creationDate><rootDeviceName>/dev/xvda</rootDeviceName></item>\
                     <item><imageId>ami-new</imageId><name>al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64</name>\
                     <creationDate>2024-12-12T00:00:00.000Z</creationDate><rootDeviceName>/dev/xvda</rootDeviceName></item></imagesSet>",
                )
            }
            "RunInstances" => ec2_ok(
                "RunInstances",
                "<instancesSet><item><instanceId>i-1</instanceId><instanceState><code>0</code><name>pending</name></instanceState></item></instancesSet>",
            ),
            "DescribeInstances" => {
                let state = if p.fetch_add(1, Ordering::SeqCst) < 2 { "pending" } else { "running" };
                ec2_ok(
                    "DescribeInstances",
                    &format!(
                        "<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId>\
                         <instanceState><name>{state}</name></instanceState><privateIpAddress>10.0.1.5</privateIpAddress>\
                         <ipAddress>203.0.113.9</ipAddress></item></instancesSet></item></reservationSet>"
                    ),
                )
            }
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::new("aws_instance", "bastion"), "apply-3-bastion");
        let attrs = json!({
            "ami": "auto", "instance_type": "t3.micro", "subnet_id": "subnet-pub", "vpc_security_group_ids": ["sg-bastion"],
            "key_name": "ops", "user_data": "#!/bin/sh\necho hello\n", "root_volume_size_gib": 20,
            "associate_public_ip_address": true, "tags": {"Name": "demo-bastion"}
        });
        let out = Kind.create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap();
        assert_eq!(out["id"], json!("i-1"));
        assert_eq!(out["ami"], json!("auto"), "the attribute stays auto");
        assert_eq!(out["resolved_ami"], json!("ami-new"), "the newest image");
        assert_eq!(out["private_ip"], json!("10.0.1.5"));
        assert_eq!(out["public_ip"], json!("203.0.113.9"));

        let sent = fake.sent();
        let run = sent.iter().find(|s| s.action == "RunInstances").unwrap();
        assert_eq!(run.param("ClientToken"), Some("apply-3-bastion"));
        assert_eq!(run.param("ImageId"), Some("ami-new"));
        assert_eq!(run.param("UserData"), Some(aws_smithy_types::base64::encode("#!/bin/sh\necho hello\n").as_str()));
        assert_eq!(run.param("BlockDeviceMapping.1.DeviceName"), Some("/dev/xvda"));
        assert_eq!(run.param("BlockDeviceMapping.1.Ebs.VolumeSize"), Some("20"));
        assert_eq!(run.param("NetworkInterface.1.AssociatePublicIpAddress"), Some("true"));
        assert_eq!(run.param("NetworkInterface.1.SubnetId"), Some("subnet-pub"));
        assert_eq!(run.param("NetworkInterface.1.SecurityGroupId.1"), Some("sg-bastion"));
        assert_eq!(run.param("SubnetId"), None, "the subnet goes on the interface");
        assert_eq!(run.values("TagSpecification.", ".ResourceType"), ["instance", "volume"]);
        assert_eq!(*reports.lock().unwrap(), ["waiting for instance i-1 to be running (now pending)"]);
    }

    #[tokio::test(start_paused = true)]
    async fn delete_terminates_and_waits_and_a_gone_instance_is_fine() {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "TerminateInstances" => ec2_ok("TerminateInstances", "<instancesSet/>"),
            _ => {
                let state = if p.fetch_add(1, Ordering::SeqCst) < 3 { "shutting-down" } else { "terminated" };
                ec2_ok(
                    "DescribeInstances",
                    &format!("<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><instanceState><name>{state}</name></instanceState></item></instancesSet></item></reservationSet>"),
                )
            }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_instance", "bastion"), "t");
        Kind.delete(&c, &ctx, json!({"id": "i-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 4);

        let gone = FakeAws::new(|_| {
            crate::testing::ec2_error(400, "InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist")
        });
        let c = gone.clients().await;
        Kind.delete(&c, &ctx, json!({"id": "i-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(gone.actions(), ["TerminateInstances"], "not retried: on delete NotFound is an answer");
    }

    fn elb_ok(action: &str) -> (u16, String) {
        (
            200,
            format!(
                r#"<{action}Response xmlns="http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/"><{action}Result><Instances/></{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"#
            ),
        )
    }

    fn described(state: &str) -> (u16, String) {
        ec2_ok(
            "DescribeInstances",
            &format!(
                "<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId>\
                 <instanceState><name>{state}</name></instanceState></item></instancesSet></item></reservationSet>"
            ),
        )
    }

    /// A control-plane node joins its load balancer once it runs, and leaves
    /// it before it is terminated: no request reaches a node going away.
    #[tokio::test(start_paused = true)]
    async fn a_node_registers_once_running_and_deregisters_before_termination() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "RunInstances" => ec2_ok(
                "RunInstances",
                "<instancesSet><item><instanceId>i-1</instanceId><instanceState><name>pending</name></instanceState></item></instancesSet>",
            ),
            "DescribeInstances" => described("running"),
            "RegisterInstancesWithLoadBalancer" | "DeregisterInstancesFromLoadBalancer" => {
                assert_eq!(req.param("LoadBalancerName"), Some("demo-apiserver"));
                assert_eq!(req.param("Instances.member.1.InstanceId"), Some("i-1"));
                elb_ok(&req.action)
            }
            "TerminateInstances" => ec2_ok("TerminateInstances", "<instancesSet/>"),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_instance", "control_plane", "0"), "t");
        let attrs = json!({"ami": "ami-1", "instance_type": "m5.large", "subnet_id": "subnet-a",
            "vpc_security_group_ids": ["sg-cp"], "load_balancer": "demo-apiserver"});
        let out = Kind.create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap();
        assert_eq!(out["load_balancer"], json!("demo-apiserver"));
        assert_eq!(fake.actions(), ["RunInstances", "DescribeInstances", "RegisterInstancesWithLoadBalancer"]);

        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "DeregisterInstancesFromLoadBalancer" => elb_ok("DeregisterInstancesFromLoadBalancer"),
            "TerminateInstances" => ec2_ok("TerminateInstances", "<instancesSet/>"),
            "DescribeInstances" => described("terminated"),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        Kind.delete(&c, &ctx, &out).await.unwrap();
        assert_eq!(fake.actions(), ["DeregisterInstancesFromLoadBalancer", "TerminateInstances", "DescribeInstances"]);
    }

    /// A node that has left its load balancer (or never joined) reads as
    /// unregistered, so the next plan registers it again in place.
    #[tokio::test]
    async fn read_reports_the_load_balancer_only_while_registered() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "DescribeInstances" => ec2_ok(
                "DescribeInstances",
                "<reservationSet><item><instancesSet>\
                 <item><instanceId>i-1</instanceId><instanceState><name>running</name></instanceState></item>\
                 <item><instanceId>i-2</instanceId><instanceState><name>running</name></instanceState></item>\
                 </instancesSet></item></reservationSet>",
            ),
            "DescribeLoadBalancers" => (
                200,
                r#"<DescribeLoadBalancersResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/"><DescribeLoadBalancersResult><LoadBalancerDescriptions><member><LoadBalancerName>demo-apiserver</LoadBalancerName><Instances><member><InstanceId>i-1</InstanceId></member></Instances></member></LoadBalancerDescriptions></DescribeLoadBalancersResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeLoadBalancersResponse>"#
                    .to_string(),
            ),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let req = |id: &str| ReadRequest {
            address: Address::keyed("aws_instance", "control_plane", id),
            kind: "aws_instance".into(),
            prior: json!({"id": id, "load_balancer": "demo-apiserver"}).as_object().unwrap().clone(),
        };
        let out = Kind.read(&c, &[req("i-1"), req("i-2")]).await.unwrap();
        assert_eq!(out[0].as_ref().unwrap()["load_balancer"], json!("demo-apiserver"));
        assert_eq!(out[1].as_ref().unwrap().get("load_balancer"), Some(&Value::Null));
        assert_eq!(fake.actions().iter().filter(|a| *a == "DescribeLoadBalancers").count(), 1, "one call for both");
    }
}
