//! `aws_route_table`: a route table, its routes (to an internet gateway or
//! a NAT gateway) and the subnets associated with it.
//!
//! Routes are keyed by destination: an update creates the new ones,
//! replaces those whose target changed and deletes the rest
//! ([`route_changes`]); associations likewise by subnet. The VPC's `local`
//! route is AWS's and never reported. Delete disassociates every subnet
//! first, as AWS refuses to delete an associated table.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, RouteTable, RouteTableAssociationStateCode};
use serde_json::{json, Value};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty, TAGS};
use crate::clients::Clients;
use crate::ec2util::{created_but, filter, id_chunks};
use crate::error::ApiError;
use crate::retry::{self, Retry};
use crate::tags::{self, Tags};

use super::{address_filter, hit, owner_filters, tagged, AwsKind, Hit};

const ROUTE: &[Field] = &[
    Field::new("destination_cidr_block", Ty::Str).required(),
    Field::new("gateway_id", Ty::Str),
    Field::new("nat_gateway_id", Ty::Str),
];

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_route_table",
    fields: &[
        Field::new("vpc_id", Ty::Str).required().replace().holds(),
        Field::new("routes", Ty::Objects(ROUTE)).default("[]"),
        Field::new("subnet_ids", Ty::StrList).default("[]"),
        TAGS,
    ],
    computed: &["id"],
    exclusive: false,
};

/// `aws_route_table` in the registry (`kinds/mod.rs`).
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
        let vpc_id = attrs::req_str(attrs, "vpc_id")?;
        let wanted_routes = routes(attrs)?;
        let subnets = attrs::str_list(attrs, "subnet_ids")?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let out = c
            .call("CreateRouteTable", Retry::AfterCreate, || {
                c.ec2
                    .create_route_table()
                    .vpc_id(vpc_id)
                    .tag_specifications(tags::ec2_spec(ResourceType::RouteTable, &tags))
                    .send()
            })
            .await?;
        let id = out
            .route_table()
            .and_then(RouteTable::route_table_id)
            .ok_or_else(|| ProviderError::new("CreateRouteTable returned no id"))?;
        for change in route_changes(&[], &wanted_routes) {
            apply_route(c, id, &change).await.map_err(|e| created_but(id, &ctx.address, e))?;
        }
        for subnet in &subnets {
            associate(c, id, subnet).await.map_err(|e| created_but(id, &ctx.address, e))?;
        }
        let mut result = attrs.clone();
        result.insert("id".into(), json!(id));
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let mut found: HashMap<String, RouteTable> = HashMap::new();
        for ids in id_chunks(reqs) {
            for rt in describe(c, ids).await? {
                if let Some(id) = rt.route_table_id() {
                    found.insert(id.to_string(), rt);
                }
            }
        }
        Ok(reqs
            .iter()
            .map(|req| {
                let rt = attrs::id(&req.prior).ok().and_then(|id| found.get(id))?;
                let prior_routes: Vec<&Attrs> = attrs::objects(&req.prior, "routes").unwrap_or_default();
                let live: Vec<Attrs> = live_routes(rt).iter().map(Route::to_attrs).collect();
                let same = |p: &Attrs, l: &Attrs| Route::parse(p).ok() == Route::parse(l).ok();
                let mut out = Attrs::new();
                out.insert("id".into(), json!(rt.route_table_id()));
                out.insert("vpc_id".into(), json!(rt.vpc_id()));
                out.insert("routes".into(), attrs::objects_like(&prior_routes, live, same));
                let subnets = associations(rt).into_iter().map(|(s, _)| s).collect();
                out.insert("subnet_ids".into(), attrs::order_like(req.prior.get("subnet_ids"), subnets));
                out.insert("tags".into(), tags::to_value(&tags::from_ec2(rt.tags())));
                Some(SPEC.shape(&req.prior, out))
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
        for change in route_changes(&routes(prior)?, &routes(attrs)?) {
            apply_route(c, id, &change).await?;
        }
        let want = attrs::str_list(attrs, "subnet_ids")?;
        if want != attrs::str_list(prior, "subnet_ids")? {
            // Work from the live associations: their ids are needed to disassociate.
            let live = describe(c, vec![id.to_string()]).await?;
            let current = live.first().map(associations).unwrap_or_default();
            for (subnet, association) in &current {
                if !want.contains(subnet) {
                    disassociate(c, association).await?;
                }
            }
            for subnet in &want {
                if !current.iter().any(|(s, _)| s == subnet) {
                    associate(c, id, subnet).await?;
                }
            }
        }
        tags::update_ec2(c, id, &tags::diff_attrs(prior, attrs)?).await?;
        let mut result = attrs.clone();
        result.insert("id".into(), Value::String(id.to_string()));
        Ok(result)
    }

    async fn delete(&self, c: &Clients, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        let id = attrs::id(prior)?;
        let Some(rt) = describe(c, vec![id.to_string()]).await?.into_iter().next() else {
            return Ok(());
        };
        for (_, association) in associations(&rt) {
            disassociate(c, &association).await?;
        }
        let t = &c.timeouts;
        let deleted =
            retry::while_blocked(ctx, &format!("route table {id}"), t.blocked_delete, t.blocked_backoff, || {
                c.call("DeleteRouteTable", Retry::Standard, || c.ec2.delete_route_table().route_table_id(id).send())
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
            .call("DescribeRouteTables", Retry::Standard, || {
                c.ec2.describe_route_tables().filters(address_filter(address)).send()
            })
            .await?;
        Ok(out
            .route_tables()
            .iter()
            .find(|x| tagged(x.tags(), address, inputs))
            .and_then(|x| x.route_table_id())
            .map(str::to_string))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        c.paginate(
            "DescribeRouteTables",
            Retry::Standard,
            |token| c.ec2.describe_route_tables().set_filters(Some(owner_filters(owner))).set_next_token(token).send(),
            |page| page.route_tables().iter().filter_map(|x| hit(x.route_table_id(), x.tags())).collect(),
            |page| page.next_token(),
        )
        .await
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Gateway(String),
    NatGateway(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub destination: String,
    pub target: Target,
}

impl Route {
    fn parse(obj: &Attrs) -> Result<Route, ProviderError> {
        let destination = attrs::req_str(obj, "destination_cidr_block")?.to_string();
        let target = match (attrs::opt_str(obj, "gateway_id")?, attrs::opt_str(obj, "nat_gateway_id")?) {
            (Some(g), None) => Target::Gateway(g.to_string()),
            (None, Some(n)) => Target::NatGateway(n.to_string()),
            _ => {
                return Err(ProviderError::new(format!(
                    "route to {destination}: give exactly one of `gateway_id` and `nat_gateway_id`"
                )))
            }
        };
        Ok(Route { destination, target })
    }

    fn to_attrs(&self) -> Attrs {
        let mut obj = Attrs::new();
        obj.insert("destination_cidr_block".into(), json!(self.destination));
        match &self.target {
            Target::Gateway(g) => obj.insert("gateway_id".into(), json!(g)),
            Target::NatGateway(n) => obj.insert("nat_gateway_id".into(), json!(n)),
        };
        obj
    }
}

pub(crate) fn routes(attrs: &Attrs) -> Result<Vec<Route>, ProviderError> {
    attrs::objects(attrs, "routes")?.into_iter().map(Route::parse).collect()
}

pub(crate) fn validate(attrs: &Attrs) -> Vec<String> {
    let Ok(objs) = attrs::objects(attrs, "routes") else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    let mut seen = BTreeMap::new();
    for (n, obj) in objs.iter().enumerate() {
        let has = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
        if has("gateway_id") == has("nat_gateway_id") {
            errors.push(format!("`routes[{n}]` needs exactly one of `gateway_id` and `nat_gateway_id`"));
        }
        if let Some(Value::String(d)) = obj.get("destination_cidr_block") {
            if let Some(first) = seen.insert(d.clone(), n) {
                errors.push(format!("`routes[{n}]` repeats the destination {d} of `routes[{first}]`"));
            }
        }
    }
    errors
}

/// One step of turning the prior routes into the desired ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteChange {
    Create(Route),
    Replace(Route),
    Delete(String),
}

/// What to do, keyed by destination: deletes first (they may free a
/// destination another route wants), then replaces and creates.
pub(crate) fn route_changes(prior: &[Route], desired: &[Route]) -> Vec<RouteChange> {
    let before: BTreeMap<&str, &Route> = prior.iter().map(|r| (r.destination.as_str(), r)).collect();
    let after: BTreeMap<&str, &Route> = desired.iter().map(|r| (r.destination.as_str(), r)).collect();
    let mut changes: Vec<RouteChange> =
        before.keys().filter(|d| !after.contains_key(*d)).map(|d| RouteChange::Delete(d.to_string())).collect();
    for (dest, route) in &after {
        match before.get(dest) {
            None => changes.push(RouteChange::Create((*route).clone())),
            Some(old) if old.target != route.target => changes.push(RouteChange::Replace((*route).clone())),
            Some(_) => {}
        }
    }
    changes
}

async fn create_route(c: &Clients, id: &str, r: &Route) -> Result<(), ApiError> {
    c.call("CreateRoute", Retry::AfterCreate, || {
        let call = c.ec2.create_route().route_table_id(id).destination_cidr_block(&r.destination);
        match &r.target {
            Target::Gateway(g) => call.gateway_id(g),
            Target::NatGateway(n) => call.nat_gateway_id(n),
        }
        .send()
    })
    .await?;
    Ok(())
}

async fn delete_route(c: &Clients, id: &str, dest: &str) -> Result<(), ApiError> {
    let deleted = c
        .call("DeleteRoute", Retry::Standard, || {
            c.ec2.delete_route().route_table_id(id).destination_cidr_block(dest).send()
        })
        .await;
    match deleted {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

async fn apply_route(c: &Clients, id: &str, change: &RouteChange) -> Result<(), ProviderError> {
    match change {
        RouteChange::Create(r) => create_route(c, id, r).await?,
        // A new target: DeleteRoute + CreateRoute. ReplaceRoute would keep
        // the route through the change, but it is outside the seed's
        // policies (docs/iam.md); traffic to the destination stops between
        // the two calls.
        RouteChange::Replace(r) => {
            delete_route(c, id, &r.destination).await?;
            create_route(c, id, r).await.map_err(|e| {
                ProviderError::new(format!(
                    "the route to {} of {id} was deleted to change its target, then {e}; \
                     the next apply creates it again",
                    r.destination
                ))
            })?;
        }
        RouteChange::Delete(dest) => delete_route(c, id, dest).await?,
    }
    Ok(())
}

async fn associate(c: &Clients, id: &str, subnet: &str) -> Result<(), ApiError> {
    c.call("AssociateRouteTable", Retry::AfterCreate, || {
        c.ec2.associate_route_table().route_table_id(id).subnet_id(subnet).send()
    })
    .await?;
    Ok(())
}

async fn disassociate(c: &Clients, association: &str) -> Result<(), ApiError> {
    match c
        .call("DisassociateRouteTable", Retry::Standard, || {
            c.ec2.disassociate_route_table().association_id(association).send()
        })
        .await
    {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

async fn describe(c: &Clients, ids: Vec<String>) -> Result<Vec<RouteTable>, ApiError> {
    c.paginate(
        "DescribeRouteTables",
        Retry::Standard,
        |token| {
            c.ec2.describe_route_tables().filters(filter("route-table-id", ids.clone())).set_next_token(token).send()
        },
        |page| page.route_tables().to_vec(),
        |page| page.next_token(),
    )
    .await
}

/// The routes a user manages: not the VPC's `local` route, not propagated ones.
fn live_routes(rt: &RouteTable) -> Vec<Route> {
    rt.routes()
        .iter()
        .filter(|r| r.origin().map(|o| o.as_str()) != Some("CreateRouteTable") && r.gateway_id() != Some("local"))
        .filter(|r| r.origin().map(|o| o.as_str()) != Some("EnableVgwRoutePropagation"))
        .filter_map(|r| {
            let destination = r.destination_cidr_block()?.to_string();
            let target = match (r.gateway_id(), r.nat_gateway_id()) {
                (Some(g), _) => Target::Gateway(g.to_string()),
                (None, Some(n)) => Target::NatGateway(n.to_string()),
                _ => return None,
            };
            Some(Route { destination, target })
        })
        .collect()
}

/// Associated subnets, with their association ids.
fn associations(rt: &RouteTable) -> Vec<(String, String)> {
    rt.associations()
        .iter()
        .filter(|a| a.main() != Some(true))
        .filter(|a| {
            !matches!(
                a.association_state().and_then(|s| s.state()),
                Some(RouteTableAssociationStateCode::Disassociating | RouteTableAssociationStateCode::Disassociated)
            )
        })
        .filter_map(|a| Some((a.subnet_id()?.to_string(), a.route_table_association_id()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn igw(dest: &str, id: &str) -> Route {
        Route { destination: dest.into(), target: Target::Gateway(id.into()) }
    }
    fn nat(dest: &str, id: &str) -> Route {
        Route { destination: dest.into(), target: Target::NatGateway(id.into()) }
    }

    #[test]
    fn route_changes_by_destination() {
        let prior = [nat("0.0.0.0/0", "nat-a"), igw("10.1.0.0/16", "igw-1"), igw("10.2.0.0/16", "igw-1")];
        let desired = [nat("0.0.0.0/0", "nat-b"), igw("10.2.0.0/16", "igw-1"), igw("10.3.0.0/16", "igw-1")];
        assert_eq!(
            route_changes(&prior, &desired),
            [
                RouteChange::Delete("10.1.0.0/16".into()),
                RouteChange::Replace(nat("0.0.0.0/0", "nat-b")),
                RouteChange::Create(igw("10.3.0.0/16", "igw-1")),
            ]
        );
        assert!(route_changes(&desired, &desired).is_empty());
        // A target kind switch (internet gateway -> NAT) is a replace, not delete + create.
        assert_eq!(
            route_changes(&[igw("0.0.0.0/0", "igw-1")], &[nat("0.0.0.0/0", "nat-1")]),
            [RouteChange::Replace(nat("0.0.0.0/0", "nat-1"))]
        );
    }

    #[test]
    fn routes_need_exactly_one_target() {
        let attrs = json!({"vpc_id": "vpc-1", "routes": [
            {"destination_cidr_block": "0.0.0.0/0"},
            {"destination_cidr_block": "0.0.0.0/0", "gateway_id": "igw-1", "nat_gateway_id": "nat-1"},
            {"destination_cidr_block": "10.0.0.0/8", "gateway_id": "igw-1"}
        ]});
        let errs = validate(attrs.as_object().unwrap());
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("routes[0]"));
        assert!(errs[2].contains("repeats the destination 0.0.0.0/0"));
        assert!(Route::parse(json!({"destination_cidr_block": "0.0.0.0/0"}).as_object().unwrap()).is_err());
    }

    #[test]
    fn local_and_propagated_routes_are_not_reported() {
        use aws_sdk_ec2::types::{Route as Ec2Route, RouteOrigin};
        let rt = RouteTable::builder()
            .routes(
                Ec2Route::builder()
                    .destination_cidr_block("10.0.0.0/16")
                    .gateway_id("local")
                    .origin(RouteOrigin::CreateRouteTable)
                    .build(),
            )
            .routes(
                Ec2Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id("nat-1")
                    .origin(RouteOrigin::CreateRoute)
                    .build(),
            )
            .routes(
                Ec2Route::builder()
                    .destination_cidr_block("172.16.0.0/12")
                    .gateway_id("vgw-1")
                    .origin(RouteOrigin::EnableVgwRoutePropagation)
                    .build(),
            )
            .build();
        assert_eq!(live_routes(&rt), [nat("0.0.0.0/0", "nat-1")]);
    }
}

#[cfg(test)]
mod request_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_error, ec2_ok, recording_ctx, FakeAws};

    /// A route to a NAT gateway created a moment ago may meet
    /// InvalidNatGatewayID.NotFound (EC2's eventual consistency): retried.
    #[tokio::test(start_paused = true)]
    async fn create_retries_a_just_created_target_that_is_not_visible_yet() {
        let tries = Arc::new(AtomicUsize::new(0));
        let t = tries.clone();
        let fake = FakeAws::new(move |req| match req.action.as_str() {
            "CreateRouteTable" => {
                ec2_ok("CreateRouteTable", "<routeTable><routeTableId>rtb-1</routeTableId></routeTable>")
            }
            "CreateRoute" => {
                if t.fetch_add(1, Ordering::SeqCst) < 2 {
                    ec2_error(400, "InvalidNatGatewayID.NotFound", "The natGateway ID 'nat-1' does not exist")
                } else {
                    ec2_ok("CreateRoute", "<return>true</return>")
                }
            }
            "AssociateRouteTable" => ec2_ok("AssociateRouteTable", "<associationId>rtbassoc-1</associationId>"),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_route_table", "private", "us-east-1a"), "t");
        let attrs = json!({"vpc_id": "vpc-1", "routes": [{"destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": "nat-1"}],
                           "subnet_ids": ["subnet-1"]});
        let out = Kind.create(&c, &ctx, attrs.as_object().unwrap()).await.unwrap();
        assert_eq!(out["id"], json!("rtb-1"));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert_eq!(
            fake.actions(),
            ["CreateRouteTable", "CreateRoute", "CreateRoute", "CreateRoute", "AssociateRouteTable"]
        );
    }

    /// A route whose target changes is deleted and created again (the
    /// seed's policies grant DeleteRoute and CreateRoute, not ReplaceRoute).
    #[tokio::test]
    async fn a_new_target_is_delete_route_then_create_route() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "DeleteRoute" => ec2_ok("DeleteRoute", "<return>true</return>"),
            "CreateRoute" => ec2_ok("CreateRoute", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::keyed("aws_route_table", "private", "us-east-1a"), "t");
        let prior = json!({"id": "rtb-1", "vpc_id": "vpc-1", "subnet_ids": ["subnet-1"],
                           "routes": [{"destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": "nat-a"}]});
        let desired = json!({"vpc_id": "vpc-1", "subnet_ids": ["subnet-1"],
                             "routes": [{"destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": "nat-b"}]});
        Kind.update(&c, &ctx, prior.as_object().unwrap(), desired.as_object().unwrap()).await.unwrap();
        assert_eq!(fake.actions(), ["DeleteRoute", "CreateRoute"]);
        let sent = fake.sent();
        assert_eq!(sent[0].param("DestinationCidrBlock"), Some("0.0.0.0/0"));
        assert_eq!(sent[1].param("NatGatewayId"), Some("nat-b"));
    }

    /// When the create after the delete fails, the error says the route is
    /// gone and that the next apply makes it.
    #[tokio::test]
    async fn a_failed_recreate_says_the_route_is_gone() {
        let fake = FakeAws::new(|req| match req.action.as_str() {
            "DeleteRoute" => ec2_ok("DeleteRoute", "<return>true</return>"),
            "CreateRoute" => {
                ec2_error(400, "InvalidParameterValue", "route table and gateway are in different networks")
            }
            other => panic!("unexpected call {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_route_table", "public"), "t");
        let prior = json!({"id": "rtb-1", "vpc_id": "vpc-1", "subnet_ids": [],
                           "routes": [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": "igw-1"}]});
        let desired = json!({"vpc_id": "vpc-1", "subnet_ids": [],
                             "routes": [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": "igw-x"}]});
        let err = Kind.update(&c, &ctx, prior.as_object().unwrap(), desired.as_object().unwrap()).await.unwrap_err();
        assert!(err.message.starts_with("the route to 0.0.0.0/0 of rtb-1 was deleted to change its target, then CreateRoute failed: InvalidParameterValue"), "{}", err.message);
        assert!(err.message.contains("the next apply creates it again"), "{}", err.message);
    }

    #[tokio::test]
    async fn delete_disassociates_subnets_first_and_leaves_the_main_association() {
        let fake = FakeAws::new(|req| {
            match req.action.as_str() {
            "DescribeRouteTables" => ec2_ok(
                "DescribeRouteTables",
                "<routeTableSet><item><routeTableId>rtb-1</routeTableId><associationSet>\
                 <item><routeTableAssociationId>rtbassoc-a</routeTableAssociationId><subnetId>subnet-a</subnetId><main>false</main></item>\
                 <item><routeTableAssociationId>rtbassoc-b</routeTableAssociationId><subnetId>subnet-b</subnetId><main>false</main></item>\
                 </associationSet></item></routeTableSet>",
            ),
            "DisassociateRouteTable" => ec2_ok("DisassociateRouteTable", "<return>true</return>"),
            "DeleteRouteTable" => ec2_ok("DeleteRouteTable", "<return>true</return>"),
            other => panic!("unexpected call {other}"),
        }
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_route_table", "public"), "t");
        Kind.delete(&c, &ctx, json!({"id": "rtb-1"}).as_object().unwrap()).await.unwrap();
        assert_eq!(
            fake.actions(),
            ["DescribeRouteTables", "DisassociateRouteTable", "DisassociateRouteTable", "DeleteRouteTable"]
        );
        let sent = fake.sent();
        assert_eq!(sent[1].param("AssociationId"), Some("rtbassoc-a"));
        assert_eq!(sent[2].param("AssociationId"), Some("rtbassoc-b"));
    }
}
