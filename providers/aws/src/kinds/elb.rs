//! `aws_elb`: a classic load balancer (the API server's TCP endpoint).
//!
//! `id` is the name (unique per region and account, at most 32 characters).
//! In place: subnets (attach/detach), security groups, listeners (by load
//! balancer port: deleted and re-created when changed), the health check,
//! cross-zone balancing and idle timeout, registered instances, tags. Reads
//! describe all load balancers of the batch in one call (falling back to one
//! call per name when one is gone, as AWS then fails the whole call), their
//! tags in calls of 20, and their attributes one by one only when the prior
//! attributes have them. Delete deregisters the instances first.
//!
//! `instances` is optional: absent, the load balancer's registrations are
//! not its to manage (the cluster blueprint's control-plane instances
//! register themselves through their `load_balancer`, so that each can be
//! replaced on its own); present, it is the exact list.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_elasticloadbalancing::types::{
    ConnectionSettings, CrossZoneLoadBalancing, HealthCheck, Instance, Listener, LoadBalancerAttributes,
    LoadBalancerDescription, TagDescription,
};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty};
use crate::clients::Clients;
use crate::ec2util::created_but;
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::{self, Tags};

use super::{AwsKind, Hit};

const LISTENER: &[Field] = &[
    Field::new("lb_port", Ty::Int).required(),
    Field::new("lb_protocol", Ty::Str).required(),
    Field::new("instance_port", Ty::Int).required(),
    Field::new("instance_protocol", Ty::Str).required(),
];

const HEALTH_CHECK: &[Field] = &[
    Field::new("target", Ty::Str).required(),
    Field::new("interval", Ty::Int).required(),
    Field::new("timeout", Ty::Int).required(),
    Field::new("healthy_threshold", Ty::Int).required(),
    Field::new("unhealthy_threshold", Ty::Int).required(),
];

/// How many names one ELB DescribeTags takes.
const TAG_NAMES: usize = 20;

/// The tags of the load balancer named `name`, as DescribeTags describes
/// them; None when there is no such load balancer.
async fn tags_by_name(c: &Clients, name: &str) -> Result<Option<Vec<TagDescription>>, ProviderError> {
    match c
        .call("DescribeLoadBalancers", Retry::Standard, || {
            c.elb.describe_load_balancers().load_balancer_names(name).send()
        })
        .await
    {
        Ok(out) if out.load_balancer_descriptions().is_empty() => Ok(None),
        Ok(_) => {
            let out = c
                .call("DescribeTags", Retry::Standard, || c.elb.describe_tags().load_balancer_names(name).send())
                .await?;
            Ok(Some(out.tag_descriptions().to_vec()))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_elb",
    fields: &[
        Field::new("name", Ty::Str)
            .required()
            .replace()
            .at_most(32, "CreateLoadBalancer: LoadBalancerName, at most 32 characters"),
        Field::new("internal", Ty::Bool).replace().default("false"),
        Field::new("subnets", Ty::StrList).required().holds(),
        Field::new("security_groups", Ty::StrList).default("[]").holds(),
        Field::new("listeners", Ty::Objects(LISTENER)).required(),
        Field::new("health_check", Ty::Object(HEALTH_CHECK)),
        Field::new("cross_zone_load_balancing", Ty::Bool),
        Field::new("idle_timeout", Ty::Int),
        Field::new("instances", Ty::StrList),
        Field::new("tags", Ty::StrMap).default("{}").at_most(
            10,
            "Classic Load Balancer AddTags: at most 10 tags (its user guide says 50; the API reference's is taken)",
        ),
    ],
    computed: &["id", "dns_name"],
    exclusive: true,
};

/// `aws_elb` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn validate(&self, attrs: &Attrs) -> Vec<String> {
        validate(attrs)
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let name = attrs::req_str(attrs, "name")?;
        if let Some(problem) = name_problem(name) {
            return Err(ProviderError::new(problem));
        }
        let internal = attrs::bool_or(attrs, "internal", false)?;
        let wanted_listeners = listeners(attrs)?;
        let subnets = attrs::str_list(attrs, "subnets")?;
        let groups = attrs::str_list(attrs, "security_groups")?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let out = c
            .call("CreateLoadBalancer", Retry::AfterCreate, || {
                c.elb
                    .create_load_balancer()
                    .load_balancer_name(name)
                    .set_listeners(Some(wanted_listeners.clone()))
                    .set_subnets(Some(subnets.clone()))
                    .set_security_groups((!groups.is_empty()).then(|| groups.clone()))
                    .set_scheme(internal.then(|| "internal".to_string()))
                    .set_tags(Some(tags::elb_tags(&tags)))
                    .send()
            })
            .await?;
        configure(c, name, None, attrs).await.map_err(|e| created_but(name, &ctx.address, e))?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(name));
        result.insert("dns_name".into(), json!(out.dns_name()));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut names: Vec<String> = reqs.iter().filter_map(|r| attrs::id(&r.prior).ok().map(str::to_string)).collect();
        names.sort();
        names.dedup();
        let mut found: HashMap<String, LoadBalancerDescription> = HashMap::new();
        for chunk in names.chunks(20) {
            for lb in describe_existing(c, chunk).await? {
                if let Some(name) = lb.load_balancer_name() {
                    found.insert(name.to_string(), lb);
                }
            }
        }
        let existing: Vec<String> = found.keys().cloned().collect();
        let mut tags_by_name: HashMap<String, tags::Tags> = HashMap::new();
        for chunk in existing.chunks(20) {
            let out = c
                .call("DescribeTags", Retry::Standard, || {
                    c.elb.describe_tags().set_load_balancer_names(Some(chunk.to_vec())).send()
                })
                .await?;
            for d in out.tag_descriptions() {
                if let Some(name) = d.load_balancer_name() {
                    tags_by_name.insert(name.to_string(), tags::from_elb(d.tags()));
                }
            }
        }
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            let Some(lb) = attrs::id(&req.prior).ok().and_then(|n| found.get(n)) else {
                out.push(None);
                continue;
            };
            let name = lb.load_balancer_name().unwrap_or_default();
            let mut live = Attrs::new();
            live.insert("id".into(), json!(name));
            live.insert("name".into(), json!(name));
            live.insert("dns_name".into(), json!(lb.dns_name()));
            live.insert("internal".into(), json!(lb.scheme() == Some("internal")));
            live.insert("subnets".into(), attrs::order_like(req.prior.get("subnets"), lb.subnets().to_vec()));
            live.insert(
                "security_groups".into(),
                attrs::order_like(req.prior.get("security_groups"), lb.security_groups().to_vec()),
            );
            let prior_listeners = attrs::objects(&req.prior, "listeners").unwrap_or_default();
            let live_listeners =
                lb.listener_descriptions().iter().filter_map(|d| d.listener()).map(listener_attrs).collect();
            live.insert("listeners".into(), attrs::objects_like(&prior_listeners, live_listeners, same_listener));
            if let Some(hc) = lb.health_check() {
                let same = health_check(&req.prior).ok().flatten().as_ref() == Some(hc);
                let value = if same { req.prior["health_check"].clone() } else { health_check_attrs(hc) };
                live.insert("health_check".into(), value);
            }
            if req.prior.contains_key("cross_zone_load_balancing") || req.prior.contains_key("idle_timeout") {
                let a = c
                    .call("DescribeLoadBalancerAttributes", Retry::Standard, || {
                        c.elb.describe_load_balancer_attributes().load_balancer_name(name).send()
                    })
                    .await?;
                if let Some(a) = a.load_balancer_attributes() {
                    if let Some(cz) = a.cross_zone_load_balancing() {
                        live.insert("cross_zone_load_balancing".into(), json!(cz.enabled()));
                    }
                    if let Some(cs) = a.connection_settings() {
                        live.insert("idle_timeout".into(), json!(cs.idle_timeout()));
                    }
                }
            }
            if req.prior.contains_key("instances") {
                let registered: Vec<String> =
                    lb.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
                live.insert("instances".into(), attrs::order_like(req.prior.get("instances"), registered));
            }
            live.insert("tags".into(), tags::to_value(tags_by_name.get(name).unwrap_or(&tags::Tags::new())));
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
        let name = attrs::id(prior)?;
        // Subnets: attach the new ones before detaching the old (a load balancer needs one).
        let want = attrs::str_list(attrs, "subnets")?;
        let had = attrs::str_list(prior, "subnets")?;
        let attach: Vec<String> = want.iter().filter(|s| !had.contains(s)).cloned().collect();
        let detach: Vec<String> = had.iter().filter(|s| !want.contains(s)).cloned().collect();
        if !attach.is_empty() {
            c.call("AttachLoadBalancerToSubnets", Retry::AfterCreate, || {
                c.elb
                    .attach_load_balancer_to_subnets()
                    .load_balancer_name(name)
                    .set_subnets(Some(attach.clone()))
                    .send()
            })
            .await?;
        }
        if !detach.is_empty() {
            c.call("DetachLoadBalancerFromSubnets", Retry::Standard, || {
                c.elb
                    .detach_load_balancer_from_subnets()
                    .load_balancer_name(name)
                    .set_subnets(Some(detach.clone()))
                    .send()
            })
            .await?;
        }
        let groups = attrs::str_list(attrs, "security_groups")?;
        if groups != attrs::str_list(prior, "security_groups")? && !groups.is_empty() {
            c.call("ApplySecurityGroupsToLoadBalancer", Retry::AfterCreate, || {
                c.elb
                    .apply_security_groups_to_load_balancer()
                    .load_balancer_name(name)
                    .set_security_groups(Some(groups.clone()))
                    .send()
            })
            .await?;
        }
        // Listeners, by load balancer port: a changed one is deleted and created again.
        let before = listeners(prior)?;
        let after = listeners(attrs)?;
        let gone: Vec<i32> = before.iter().filter(|b| !after.contains(b)).map(Listener::load_balancer_port).collect();
        let new: Vec<Listener> = after.iter().filter(|a| !before.contains(a)).cloned().collect();
        if !gone.is_empty() {
            c.call("DeleteLoadBalancerListeners", Retry::Standard, || {
                c.elb
                    .delete_load_balancer_listeners()
                    .load_balancer_name(name)
                    .set_load_balancer_ports(Some(gone.clone()))
                    .send()
            })
            .await?;
        }
        if !new.is_empty() {
            c.call("CreateLoadBalancerListeners", Retry::Standard, || {
                c.elb.create_load_balancer_listeners().load_balancer_name(name).set_listeners(Some(new.clone())).send()
            })
            .await?;
        }
        configure(c, name, Some(prior), attrs).await?;
        tags::update_elb(c, name, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        result.insert("id".into(), json!(name));
        result.insert("dns_name".into(), prior.get("dns_name").cloned().unwrap_or(Value::Null));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, _ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let name = attrs::id(prior)?;
        let Some(lb) = describe_existing(c, &[name.to_string()]).await?.into_iter().next() else {
            return Ok(());
        };
        let registered: Vec<String> =
            lb.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        if !registered.is_empty() {
            deregister_instances(c, name, &registered).await?;
        }
        match c
            .call("DeleteLoadBalancer", Retry::Standard, || {
                c.elb.delete_load_balancer().load_balancer_name(name).send()
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
        let Some(described) = tags_by_name(c, name).await? else { return Ok(None) };
        let ours = described.iter().any(|d| {
            let found = tags::all(d.tags().iter().map(|t| (t.key(), t.value().unwrap_or(""))));
            d.load_balancer_name() == Some(name) && tags::made_for(&found, address, inputs)
        });
        Ok(ours.then(|| name.to_string()))
    }

    fn unique_name(&self) -> Option<&'static str> {
        Some("load balancer")
    }

    async fn name_holder(
        &self,
        c: &Clients,
        name: &str,
        _attrs: &Attrs,
    ) -> Result<Option<(String, Tags)>, ProviderError> {
        let Some(described) = tags_by_name(c, name).await? else { return Ok(None) };
        let found = described.iter().flat_map(|d| d.tags()).map(|t| (t.key(), t.value().unwrap_or("")));
        Ok(Some((name.to_string(), tags::all(found))))
    }

    async fn list_owned(&self, c: &Clients, _owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        // No tag filter on classic ELB: every name, then their tags.
        let names: Vec<String> = c
            .paginate(
                "DescribeLoadBalancers",
                Retry::Standard,
                |marker| c.elb.describe_load_balancers().set_marker(marker).send(),
                |page| {
                    page.load_balancer_descriptions()
                        .iter()
                        .filter_map(|l| l.load_balancer_name().map(str::to_string))
                        .collect()
                },
                |page| page.next_marker(),
            )
            .await?;
        let mut hits = Vec::new();
        for chunk in names.chunks(TAG_NAMES) {
            let out = c
                .call("DescribeTags", Retry::Standard, || {
                    c.elb.describe_tags().set_load_balancer_names(Some(chunk.to_vec())).send()
                })
                .await?;
            for d in out.tag_descriptions() {
                let Some(name) = d.load_balancer_name() else { continue };
                let tags = d.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or("").to_string()));
                hits.push(Hit { id: name.to_string(), tags: tags.collect() });
            }
        }
        Ok(hits)
    }
}

/// AWS's rule for classic load balancer names.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 32 {
        return Some(format!("`name` {name:?} must be 1 to 32 characters long (it has {})", name.len()));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Some(format!("`name` {name:?} may hold only letters, digits and hyphens"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("`name` {name:?} must not begin or end with a hyphen"));
    }
    None
}

pub(crate) fn validate(attrs: &Attrs) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(Value::String(name)) = attrs.get("name") {
        if !name.contains("${") {
            errors.extend(name_problem(name));
        }
    }
    if let Ok(listeners) = attrs::objects(attrs, "listeners") {
        let mut ports = BTreeMap::new();
        for (n, l) in listeners.iter().enumerate() {
            if let Some(Value::Number(p)) = l.get("lb_port") {
                if let Some(first) = ports.insert(p.to_string(), n) {
                    errors.push(format!("`listeners[{n}]` repeats lb_port {p} of `listeners[{first}]`"));
                }
            }
        }
    }
    errors
}

/// One listener table as the API's listener. Protocols go upper-case, as AWS stores them.
pub(crate) fn listener(obj: &Attrs) -> Result<Listener, ProviderError> {
    Listener::builder()
        .load_balancer_port(attrs::req_i32(obj, "lb_port")?)
        .protocol(attrs::req_str(obj, "lb_protocol")?.to_ascii_uppercase())
        .instance_port(attrs::req_i32(obj, "instance_port")?)
        .instance_protocol(attrs::req_str(obj, "instance_protocol")?.to_ascii_uppercase())
        .build()
        .map_err(|e| ProviderError::new(format!("listener: {e}")))
}

/// A live listener as a listener table.
pub(crate) fn listener_attrs(l: &Listener) -> Attrs {
    let mut obj = Attrs::new();
    obj.insert("lb_port".into(), json!(l.load_balancer_port()));
    obj.insert("lb_protocol".into(), json!(l.protocol()));
    obj.insert("instance_port".into(), json!(l.instance_port()));
    obj.insert("instance_protocol".into(), json!(l.instance_protocol().unwrap_or(l.protocol())));
    obj
}

/// Listener tables mean the same listener (protocols compare case-blind).
fn same_listener(a: &Attrs, b: &Attrs) -> bool {
    matches!((listener(a), listener(b)), (Ok(x), Ok(y)) if x == y)
}

fn listeners(attrs: &Attrs) -> Result<Vec<Listener>, ProviderError> {
    attrs::objects(attrs, "listeners")?.into_iter().map(listener).collect()
}

pub(crate) fn health_check(attrs: &Attrs) -> Result<Option<HealthCheck>, ProviderError> {
    let Some(Value::Object(hc)) = attrs.get("health_check") else {
        return Ok(None);
    };
    HealthCheck::builder()
        .target(attrs::req_str(hc, "target")?)
        .interval(attrs::req_i32(hc, "interval")?)
        .timeout(attrs::req_i32(hc, "timeout")?)
        .healthy_threshold(attrs::req_i32(hc, "healthy_threshold")?)
        .unhealthy_threshold(attrs::req_i32(hc, "unhealthy_threshold")?)
        .build()
        .map(Some)
        .map_err(|e| ProviderError::new(format!("health_check: {e}")))
}

fn health_check_attrs(hc: &HealthCheck) -> Value {
    json!({
        "target": hc.target(), "interval": hc.interval(), "timeout": hc.timeout(),
        "healthy_threshold": hc.healthy_threshold(), "unhealthy_threshold": hc.unhealthy_threshold()
    })
}

/// The attributes to set, when any is given.
fn lb_attributes(attrs: &Attrs) -> Result<Option<LoadBalancerAttributes>, ProviderError> {
    let cross_zone = attrs::opt_bool(attrs, "cross_zone_load_balancing")?;
    let idle = attrs::opt_i32(attrs, "idle_timeout")?;
    if cross_zone.is_none() && idle.is_none() {
        return Ok(None);
    }
    let mut a = LoadBalancerAttributes::builder();
    if let Some(enabled) = cross_zone {
        a = a.cross_zone_load_balancing(CrossZoneLoadBalancing::builder().enabled(enabled).build());
    }
    if let Some(idle) = idle {
        let settings = ConnectionSettings::builder()
            .idle_timeout(idle)
            .build()
            .map_err(|e| ProviderError::new(format!("idle_timeout: {e}")))?;
        a = a.connection_settings(settings);
    }
    Ok(Some(a.build()))
}

fn instances(ids: &[String]) -> Vec<Instance> {
    ids.iter().map(|id| Instance::builder().instance_id(id).build()).collect()
}

async fn configure(c: &Clients, name: &str, prior: Option<&Attrs>, attrs: &Attrs) -> Result<(), ProviderError> {
    let changed = |key: &str| prior.is_none_or(|p| p.get(key) != attrs.get(key));
    if changed("health_check") {
        if let Some(hc) = health_check(attrs)? {
            c.call("ConfigureHealthCheck", Retry::AfterCreate, || {
                c.elb.configure_health_check().load_balancer_name(name).health_check(hc.clone()).send()
            })
            .await?;
        }
    }
    if changed("cross_zone_load_balancing") || changed("idle_timeout") {
        if let Some(a) = lb_attributes(attrs)? {
            c.call("ModifyLoadBalancerAttributes", Retry::AfterCreate, || {
                c.elb
                    .modify_load_balancer_attributes()
                    .load_balancer_name(name)
                    .load_balancer_attributes(a.clone())
                    .send()
            })
            .await?;
        }
    }
    if attrs.get("instances").is_none_or(|v| v.is_null()) {
        return Ok(());
    }
    let want = attrs::str_list(attrs, "instances")?;
    let had = match prior {
        Some(p) => attrs::str_list(p, "instances")?,
        None => Vec::new(),
    };
    let register: Vec<String> = want.iter().filter(|i| !had.contains(i)).cloned().collect();
    let deregister: Vec<String> = had.iter().filter(|i| !want.contains(i)).cloned().collect();
    if !register.is_empty() {
        register_instances(c, name, &register).await?;
    }
    if !deregister.is_empty() {
        deregister_instances(c, name, &deregister).await?;
    }
    Ok(())
}

pub(crate) async fn register_instances(c: &Clients, name: &str, ids: &[String]) -> Result<(), ApiError> {
    c.call("RegisterInstancesWithLoadBalancer", Retry::AfterCreate, || {
        c.elb
            .register_instances_with_load_balancer()
            .load_balancer_name(name)
            .set_instances(Some(instances(ids)))
            .send()
    })
    .await?;
    Ok(())
}

/// The instances registered with each of `names` that exists.
pub(crate) async fn registrations(c: &Clients, names: &[String]) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut out = HashMap::new();
    for chunk in names.chunks(20) {
        for lb in describe_existing(c, chunk).await? {
            let ids = lb.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
            out.insert(lb.load_balancer_name().unwrap_or_default().to_string(), ids);
        }
    }
    Ok(out)
}

pub(crate) async fn deregister_instances(c: &Clients, name: &str, ids: &[String]) -> Result<(), ApiError> {
    let out = c
        .call("DeregisterInstancesFromLoadBalancer", Retry::Standard, || {
            c.elb
                .deregister_instances_from_load_balancer()
                .load_balancer_name(name)
                .set_instances(Some(instances(ids)))
                .send()
        })
        .await;
    match out {
        // Already gone (the instance, or the load balancer).
        Err(e) if !(e.is_not_found() || e.code() == "InvalidInstance") => Err(e),
        _ => Ok(()),
    }
}

async fn describe(c: &Clients, names: &[String]) -> Result<Vec<LoadBalancerDescription>, ApiError> {
    c.paginate(
        "DescribeLoadBalancers",
        Retry::Standard,
        |marker| {
            c.elb.describe_load_balancers().set_load_balancer_names(Some(names.to_vec())).set_marker(marker).send()
        },
        |page| page.load_balancer_descriptions().to_vec(),
        |page| page.next_marker(),
    )
    .await
}

/// The load balancers that exist among `names`.
async fn describe_existing(c: &Clients, names: &[String]) -> Result<Vec<LoadBalancerDescription>, ApiError> {
    match describe(c, names).await {
        Err(e) if e.is_not_found() => {
            let mut found = Vec::new();
            for name in names {
                match describe(c, std::slice::from_ref(name)).await {
                    Ok(lbs) => found.extend(lbs),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn names_follow_awss_rules() {
        assert_eq!(name_problem("demo-apiserver"), None);
        assert_eq!(name_problem(&"a".repeat(32)), None);
        assert!(name_problem(&"a".repeat(33)).unwrap().contains("1 to 32 characters"));
        assert!(name_problem("demo_apiserver").unwrap().contains("letters, digits and hyphens"));
        assert!(name_problem("-demo").unwrap().contains("hyphen"));
        assert!(name_problem("").is_some());
    }

    #[test]
    fn listeners_map_both_ways() {
        let written =
            obj(json!({"lb_port": 6443, "lb_protocol": "tcp", "instance_port": 6443, "instance_protocol": "tcp"}));
        let l = listener(&written).unwrap();
        assert_eq!(
            (l.load_balancer_port(), l.protocol(), l.instance_port(), l.instance_protocol()),
            (6443, "TCP", 6443, Some("TCP"))
        );
        let back = listener_attrs(&l);
        assert_eq!(
            back,
            obj(json!({"lb_port": 6443, "lb_protocol": "TCP", "instance_port": 6443, "instance_protocol": "TCP"}))
        );
        assert!(same_listener(&written, &back), "protocols compare case-blind");
        let other =
            obj(json!({"lb_port": 443, "lb_protocol": "TCP", "instance_port": 6443, "instance_protocol": "TCP"}));
        assert!(!same_listener(&written, &other));
        // A read gives back the listener tables as written.
        let out = attrs::objects_like(&[&written], vec![back], same_listener);
        assert_eq!(out, json!([written]));
    }

    #[test]
    fn health_check_and_attributes() {
        let a = obj(json!({"health_check": {"target": "TCP:6443", "interval": 10, "timeout": 5,
            "healthy_threshold": 2, "unhealthy_threshold": 3}, "cross_zone_load_balancing": true, "idle_timeout": 3600}));
        let hc = health_check(&a).unwrap().unwrap();
        assert_eq!(
            (hc.target(), hc.interval(), hc.timeout(), hc.healthy_threshold(), hc.unhealthy_threshold()),
            ("TCP:6443", 10, 5, 2, 3)
        );
        assert_eq!(health_check_attrs(&hc), a["health_check"]);
        let attributes = lb_attributes(&a).unwrap().unwrap();
        assert!(attributes.cross_zone_load_balancing().unwrap().enabled());
        assert_eq!(attributes.connection_settings().unwrap().idle_timeout(), 3600);
        assert!(lb_attributes(&Attrs::new()).unwrap().is_none(), "nothing to set when neither is given");
    }

    #[test]
    fn validate_names_and_duplicate_ports() {
        let a = obj(json!({"name": "x_y", "listeners": [
            {"lb_port": 6443, "lb_protocol": "TCP", "instance_port": 6443, "instance_protocol": "TCP"},
            {"lb_port": 6443, "lb_protocol": "TCP", "instance_port": 443, "instance_protocol": "TCP"}]}));
        let errs = validate(&a);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[1].contains("repeats lb_port 6443"));
    }
}
