//! The plan's monthly cost estimate: what the cluster's resources cost
//! before and after the plan, at on-demand prices (a spot pool at its max
//! price, the most it can cost) over 730 hours a month.
//!
//! Priced: instances (the bastion, each control-plane node, each pool at
//! its desired size) and their root volumes (gp3 per GB-month), NAT
//! gateways, the classic load balancer, and public IPv4 addresses (Elastic
//! IPs, an instance's public address, one per subnet of an internet-facing
//! load balancer). Not priced: traffic (NAT and ELB per-GB processing, data
//! transfer), which depends on use.
//!
//! Instance prices come in an [`InstancePrices`] (from the shipped table,
//! or from the Price List API when the CLI reached it); the other prices
//! from `data/service-prices.toml`. Nothing here calls AWS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;
use skyplan_engine::plan::{Action, Change, Plan};
use skyplan_engine::review::{Cost, CostItem, PriceSource};
use skyplan_engine::Attrs;

use crate::prices;

pub const HOURS_PER_MONTH: f64 = 730.0;

/// On-demand USD per hour of instance types in one region, and where they
/// came from: the shipped table (`source`, `as_of`), except the types in
/// `from_price_list`, whose prices the AWS Price List API gave on
/// `price_list_as_of`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePrices {
    pub region: String,
    pub prices: BTreeMap<String, f64>,
    pub source: String,
    pub as_of: String,
    pub from_price_list: BTreeSet<String>,
    pub price_list_as_of: String,
    /// The prices besides instances that the Price List API gave for
    /// `region` in this run (on `price_list_as_of`); the others come from
    /// `data/service-prices.toml`.
    pub services_from_price_list: BTreeMap<ServiceItem, f64>,
}

impl InstancePrices {
    /// The shipped table's prices for `region` (none when it has none).
    pub fn from_table(region: &str) -> InstancePrices {
        let table = prices::table();
        InstancePrices {
            region: region.to_string(),
            prices: table.region(region).cloned().unwrap_or_default(),
            source: format!("skyplan's price table ({})", table.source_for(region)),
            as_of: table.as_of_for(region).to_string(),
            from_price_list: BTreeSet::new(),
            price_list_as_of: String::new(),
            services_from_price_list: BTreeMap::new(),
        }
    }

    /// The prices of a run: those the Price List API gave for `region`
    /// (`looked_up`, the same answers the spot pools' max prices use) over
    /// the table's.
    pub fn for_run(region: &str, looked_up: &prices::LookedUp) -> InstancePrices {
        let mut out = InstancePrices::from_table(region);
        for ((r, instance_type), usd) in &looked_up.prices {
            if r == region {
                out.prices.insert(instance_type.clone(), *usd);
                out.from_price_list.insert(instance_type.clone());
            }
        }
        for ((r, item), usd) in &looked_up.services {
            if r == region {
                out.services_from_price_list.insert(*item, *usd);
            }
        }
        out.price_list_as_of = looked_up.as_of.clone();
        out
    }
}

pub use crate::prices::ServiceItem;

/// What the dated table charges for `item` in a region.
fn in_table(item: ServiceItem, p: &RegionPrices) -> f64 {
    match item {
        ServiceItem::NatGatewayHour => p.nat_gateway_hour,
        ServiceItem::ClassicLoadBalancerHour => p.classic_load_balancer_hour,
        ServiceItem::PublicIpv4Hour => p.public_ipv4_hour,
        ServiceItem::Gp3GbMonth => p.gp3_gb_month,
    }
}

/// "a, b and c".
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The fixed prices of `data/service-prices.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePrices {
    pub as_of: String,
    pub source: String,
    prices: BTreeMap<String, RegionPrices>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPrices {
    pub nat_gateway_hour: f64,
    pub classic_load_balancer_hour: f64,
    pub public_ipv4_hour: f64,
    pub gp3_gb_month: f64,
}

impl ServicePrices {
    pub fn region(&self, region: &str) -> Option<RegionPrices> {
        self.prices.get(region).copied()
    }
}

/// The shipped service prices, parsed once.
pub fn service_prices() -> &'static ServicePrices {
    static TABLE: OnceLock<ServicePrices> = OnceLock::new();
    TABLE.get_or_init(|| {
        toml::from_str(include_str!("../data/service-prices.toml"))
            .unwrap_or_else(|e| panic!("data/service-prices.toml does not parse (its unit test says why): {e}"))
    })
}

/// Every instance type the plan's instances and launch templates name,
/// before or after, sorted: what a Price List API client is asked for.
pub fn instance_types(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.kind.as_str(), "aws_instance" | "aws_launch_template"))
        .flat_map(|c| [c.before.as_ref(), c.after.as_ref()])
        .filter_map(|a| text(a, "instance_type"))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The plan's monthly cost before and after, item by item.
pub fn cost(plan: &Plan, instances: &InstancePrices) -> Cost {
    let services = service_prices();
    let table = services.region(&instances.region);
    // Each charge: the API's price of this run, else the table's for the region.
    let service_prices: BTreeMap<ServiceItem, f64> = ServiceItem::ALL
        .into_iter()
        .filter_map(|item| {
            let price = instances.services_from_price_list.get(&item).copied();
            Some((item, price.or_else(|| table.as_ref().map(|t| in_table(item, t)))?))
        })
        .collect();
    let mut pricer = Pricer { instances, services: service_prices, unpriced: Vec::new() };
    let mut items = Vec::new();
    for change in &plan.changes {
        let before = change.before.as_ref().filter(|_| !matches!(change.action, Action::Create));
        let after = change.after.as_ref().filter(|_| !matches!(change.action, Action::Delete));
        let priced_before = pricer.price(plan, change, before, Side::Before);
        let priced_after = pricer.price(plan, change, after, Side::After);
        let description = match (&priced_after, &priced_before) {
            (Some((_, d)), _) | (None, Some((_, d))) => d.clone(),
            (None, None) => continue,
        };
        items.push(CostItem {
            address: change.address.to_string(),
            description,
            monthly_before: cents(priced_before.map_or(0.0, |p| p.0)),
            monthly_after: cents(priced_after.map_or(0.0, |p| p.0)),
        });
    }
    let mut unpriced = pricer.unpriced;
    unpriced.sort();
    unpriced.dedup();
    let mut sources = Vec::new();
    let from_api = &instances.from_price_list;
    if !from_api.is_empty() {
        sources.push(PriceSource {
            prices: format!("instances of type {}", from_api.iter().cloned().collect::<Vec<_>>().join(", ")),
            source: "the AWS Price List API".to_string(),
            as_of: instances.price_list_as_of.clone(),
        });
    }
    sources.push(PriceSource {
        prices: if from_api.is_empty() { "instances" } else { "other instances" }.to_string(),
        source: instances.source.clone(),
        as_of: instances.as_of.clone(),
    });
    let (api, rest): (Vec<ServiceItem>, Vec<ServiceItem>) =
        ServiceItem::ALL.into_iter().partition(|i| instances.services_from_price_list.contains_key(i));
    if !api.is_empty() {
        sources.push(PriceSource {
            prices: and_list(&api.iter().map(|i| i.what()).collect::<Vec<_>>()),
            source: "the AWS Price List API".to_string(),
            as_of: instances.price_list_as_of.clone(),
        });
    }
    // Those neither has are named in `unpriced`, not as from the table.
    let rest: Vec<&str> = rest.iter().filter(|_| table.is_some()).map(|i| i.what()).collect();
    if !rest.is_empty() {
        sources.push(PriceSource {
            prices: and_list(&rest),
            source: format!("skyplan's price table ({})", services.source),
            as_of: services.as_of.clone(),
        });
    }
    Cost {
        currency: "USD".to_string(),
        hours_per_month: HOURS_PER_MONTH,
        basis: "on-demand prices (spot pools at their max)".to_string(),
        monthly_before: cents(items.iter().map(|i| i.monthly_before).sum()),
        monthly_after: cents(items.iter().map(|i| i.monthly_after).sum()),
        items,
        sources,
        unpriced,
    }
}

#[derive(Clone, Copy)]
enum Side {
    Before,
    After,
}

struct Pricer<'a> {
    instances: &'a InstancePrices,
    /// The prices besides instances known for the region.
    services: BTreeMap<ServiceItem, f64>,
    unpriced: Vec<String>,
}

impl Pricer<'_> {
    /// One side of a change: its monthly price and what it is, or None
    /// when it costs nothing (or nothing known).
    fn price(&mut self, plan: &Plan, change: &Change, attrs: Option<&Attrs>, side: Side) -> Option<(f64, String)> {
        let attrs = attrs?;
        let address = change.address.to_string();
        match change.kind.as_str() {
            "aws_instance" => {
                let mut parts = Vec::new();
                let mut total = 0.0;
                if let Some((hourly, what)) = self.instance(&address, attrs, 1) {
                    total += hourly * HOURS_PER_MONTH;
                    parts.push(what);
                }
                if let Some((monthly, what)) = self.volumes(&address, attrs, 1) {
                    total += monthly;
                    parts.push(what);
                }
                if attrs.get("associate_public_ip_address") == Some(&Value::Bool(true)) {
                    if let Some(ipv4) = self.service(&address, ServiceItem::PublicIpv4Hour, "a public IPv4 address") {
                        total += ipv4 * HOURS_PER_MONTH;
                        parts.push("public IPv4".to_string());
                    }
                }
                (!parts.is_empty()).then(|| (total, parts.join(" + ")))
            }
            "aws_autoscaling_group" => {
                let size = attrs.get("desired_capacity").and_then(Value::as_u64).unwrap_or(0);
                let template = launch_template(plan, change, side)?;
                let mut parts = Vec::new();
                let mut total = 0.0;
                if let Some((hourly, what)) = self.instance(&address, template, size) {
                    total += hourly * HOURS_PER_MONTH * size as f64;
                    parts.push(what);
                }
                if let Some((monthly, what)) = self.volumes(&address, template, size) {
                    total += monthly;
                    parts.push(what);
                }
                Some((total, parts.join(" + ")))
            }
            "aws_nat_gateway" => {
                let hourly = self.service(&address, ServiceItem::NatGatewayHour, "a NAT gateway")?;
                Some((hourly * HOURS_PER_MONTH, "NAT gateway (hours; traffic not estimated)".to_string()))
            }
            "aws_eip" => {
                let hourly = self.service(&address, ServiceItem::PublicIpv4Hour, "an Elastic IP")?;
                Some((hourly * HOURS_PER_MONTH, "public IPv4 address (Elastic IP)".to_string()))
            }
            "aws_elb" => {
                let balancer =
                    self.service(&address, ServiceItem::ClassicLoadBalancerHour, "a classic load balancer")?;
                let internal = attrs.get("internal") == Some(&Value::Bool(true));
                let addresses = if internal {
                    0
                } else {
                    attrs.get("subnets").and_then(Value::as_array).map_or(1, |s| s.len().max(1))
                };
                let ipv4 = if addresses == 0 {
                    0.0
                } else {
                    self.service(&address, ServiceItem::PublicIpv4Hour, "a public IPv4 address")?
                };
                Some((
                    (balancer + ipv4 * addresses as f64) * HOURS_PER_MONTH,
                    format!("classic load balancer (hours; traffic not estimated) + {addresses} public IPv4"),
                ))
            }
            _ => None,
        }
    }

    /// The hourly price of one instance of the type `attrs` names (its
    /// spot max price when it has one), and what it is for `count` of
    /// them: `(USD per hour, "N x TYPE on-demand $P/h")`.
    fn instance(&mut self, address: &str, attrs: &Attrs, count: u64) -> Option<(f64, String)> {
        let instance_type = text(Some(attrs), "instance_type")?;
        let spot = text(Some(attrs), "spot_max_price").and_then(|p| p.parse::<f64>().ok());
        let counted = if count == 1 { instance_type.to_string() } else { format!("{count} x {instance_type}") };
        if let Some(max) = spot {
            return Some((max, format!("{counted} spot at its max ${max}/h")));
        }
        match self.instances.prices.get(instance_type) {
            Some(price) => Some((*price, format!("{counted} on-demand ${price}/h"))),
            None => {
                self.unpriced
                    .push(format!("{address}: no on-demand price for {instance_type} in {}", self.instances.region));
                None
            }
        }
    }

    /// `count` root volumes of the size `attrs` gives, as gp3.
    fn volumes(&mut self, address: &str, attrs: &Attrs, count: u64) -> Option<(f64, String)> {
        let gib = attrs.get("root_volume_size_gib").and_then(Value::as_u64)?;
        let gb_month = self.service(address, ServiceItem::Gp3GbMonth, "volumes")?;
        let what = if count == 1 { format!("{gib} GiB gp3") } else { format!("{count} x {gib} GiB gp3") };
        Some((gb_month * (gib * count) as f64, what))
    }

    /// The price of `item` in the region, or None, named as unpriced.
    fn service(&mut self, address: &str, item: ServiceItem, what: &str) -> Option<f64> {
        let price = self.services.get(&item).copied();
        if price.is_none() {
            self.unpriced.push(format!("{address}: no price for {what} in {}", self.instances.region));
        }
        price
    }
}

/// The launch template a pool's group runs on that side of the plan: the
/// template change of the same name and key (the blueprint's pairs), else
/// the one whose id the group names.
fn launch_template<'a>(plan: &'a Plan, group: &Change, side: Side) -> Option<&'a Attrs> {
    let attrs_of = |c: &'a Change| match side {
        Side::Before => c.before.as_ref(),
        Side::After => c.after.as_ref(),
    };
    let templates = || plan.changes.iter().filter(|c| c.kind == "aws_launch_template" && !c.deposed);
    let paired = templates()
        .find(|c| c.address.name == group.address.name && c.address.key == group.address.key)
        .and_then(attrs_of);
    paired.or_else(|| {
        let side_attrs = match side {
            Side::Before => group.before.as_ref(),
            Side::After => group.after.as_ref(),
        };
        let id = text(side_attrs, "launch_template_id")?;
        templates().filter_map(attrs_of).find(|t| text(Some(t), "id") == Some(id))
    })
}

fn text<'a>(attrs: Option<&'a Attrs>, key: &str) -> Option<&'a str> {
    attrs?.get(key)?.as_str().filter(|s| *s != skyplan_engine::UNKNOWN)
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use skyplan_engine::plan::Action;

    use super::*;
    use crate::fixtures::{demo_with, DEMO};
    use crate::review::test_plan::{applied, change, creating, diff, plan};

    /// The prices the expectations below are computed with, pinned: a
    /// change of the tables shows here first.
    #[test]
    fn the_prices_these_tests_assume_are_the_tables() {
        let t = InstancePrices::from_table("us-east-1");
        assert_eq!(t.prices["t3.micro"], 0.0104);
        assert_eq!(t.prices["m5.large"], 0.096);
        assert_eq!(t.prices["m5.xlarge"], 0.192);
        assert_eq!(t.prices["m5.2xlarge"], 0.384);
        let s = service_prices().region("us-east-1").unwrap();
        assert_eq!(
            (s.nat_gateway_hour, s.classic_load_balancer_hour, s.public_ipv4_hour, s.gp3_gb_month),
            (0.045, 0.025, 0.005, 0.08)
        );
    }

    #[test]
    fn the_service_table_parses_and_is_dated() {
        let t: ServicePrices = toml::from_str(include_str!("../data/service-prices.toml")).unwrap();
        assert_eq!(t.as_of.len(), 10, "{}", t.as_of);
        assert!(!t.source.trim().is_empty());
        for (region, p) in &t.prices {
            for price in [p.nat_gateway_hour, p.classic_load_balancer_hour, p.public_ipv4_hour, p.gp3_gb_month] {
                assert!(price.is_finite() && price > 0.0, "{region}: {price}");
            }
        }
    }

    fn item<'a>(cost: &'a Cost, address: &str) -> &'a CostItem {
        cost.items.iter().find(|i| i.address == address).unwrap_or_else(|| panic!("no item {address}"))
    }

    #[test]
    fn a_new_demo_cluster_costs_its_instances_nats_balancer_addresses_and_volumes() {
        let cost = cost(&creating(DEMO), &InstancePrices::from_table("us-east-1"));
        assert_eq!(cost.currency, "USD");
        assert_eq!(cost.monthly_before, 0.0);
        // bastion: t3.micro 0.0104 x 730 + 20 GiB x 0.08 + one IPv4 0.005 x 730
        assert_eq!(item(&cost, "aws_instance.bastion").monthly_after, 12.84);
        // each control-plane node: m5.large 0.096 x 730 + 60 GiB x 0.08
        assert_eq!(item(&cost, "aws_instance.control_plane[0]").monthly_after, 74.88);
        // the worker pool: 3 x m5.xlarge 0.192 x 730 + 3 x 60 GiB x 0.08
        let pool = item(&cost, "aws_autoscaling_group.pool[worker]");
        assert_eq!(pool.monthly_after, 434.88);
        assert!(pool.description.contains("3 x m5.xlarge on-demand"), "{}", pool.description);
        // each NAT gateway 0.045 x 730, each Elastic IP 0.005 x 730
        assert_eq!(item(&cost, "aws_nat_gateway.main[us-east-1a]").monthly_after, 32.85);
        assert_eq!(item(&cost, "aws_eip.nat[us-east-1a]").monthly_after, 3.65);
        // the ELB 0.025 x 730 and its three public addresses
        assert_eq!(item(&cost, "aws_elb.apiserver").monthly_after, 29.2);
        // 12.842 + 3 x 74.88 + 434.88 + 3 x 32.85 + 3 x 3.65 + 29.2
        assert_eq!(cost.monthly_after, 811.06);
        assert!(cost.unpriced.is_empty(), "{:?}", cost.unpriced);
        assert!(cost.sources.iter().all(|s| !s.as_of.is_empty()));
        // Nothing else is priced (subnets, route tables, groups are free).
        assert_eq!(cost.items.len(), 1 + 3 + 1 + 3 + 3 + 1);
    }

    #[test]
    fn an_applied_cluster_costs_the_same_before_and_after() {
        let cost = cost(&applied(DEMO), &InstancePrices::from_table("us-east-1"));
        assert_eq!((cost.monthly_before, cost.monthly_after), (811.06, 811.06));
    }

    #[test]
    fn instance_types_and_pool_sizes_move_the_estimate() {
        let prices = InstancePrices::from_table("us-east-1");
        // Control plane m5.large -> m5.2xlarge: 3 x (0.384 - 0.096) x 730 more.
        let to = demo_with("instance_type = \"m5.large\"", "instance_type = \"m5.2xlarge\"");
        let c = cost(&diff(DEMO, &to, &[]), &prices);
        assert_eq!(c.monthly_before, 811.06);
        assert_eq!(c.monthly_after, 1441.78); // 811.06 + 630.72
                                              // Worker pool 3 -> 1: two m5.xlarge and their volumes less.
        let to = demo_with("size = 3\nmin = 3", "size = 1\nmin = 1");
        let c = cost(&diff(DEMO, &to, &[]), &prices);
        assert_eq!(item(&c, "aws_autoscaling_group.pool[worker]").monthly_after, 144.96);
        assert_eq!(c.monthly_after, 521.14); // 811.06 - 289.92
                                             // One AZ less: a NAT gateway, its Elastic IP and one ELB address.
        let to = demo_with(
            "azs = [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]",
            "azs = [\"us-east-1a\", \"us-east-1b\"]",
        );
        let c = cost(&diff(DEMO, &to, &[]), &prices);
        assert_eq!(item(&c, "aws_nat_gateway.main[us-east-1c]").monthly_after, 0.0);
        assert_eq!(item(&c, "aws_nat_gateway.main[us-east-1c]").monthly_before, 32.85);
        assert_eq!(c.monthly_after, 770.91); // 811.06 - 32.85 - 3.65 - 3.65
    }

    #[test]
    fn a_spot_pool_costs_its_max_price() {
        let template = json!({"instance_type": "m5.xlarge", "spot_max_price": "0.1152", "root_volume_size_gib": 60});
        let group = json!({"desired_capacity": 2});
        let p = plan(vec![
            change("aws_autoscaling_group.pool[spot]", Action::Create, None, Some(group)),
            change("aws_launch_template.pool[spot]", Action::Create, None, Some(template)),
        ]);
        let c = cost(&p, &InstancePrices::from_table("us-east-1"));
        let pool = item(&c, "aws_autoscaling_group.pool[spot]");
        // 2 x 0.1152 x 730 + 2 x 60 x 0.08
        assert_eq!(pool.monthly_after, 177.79);
        assert!(pool.description.contains("spot at its max $0.1152/h"), "{}", pool.description);
    }

    #[test]
    fn what_has_no_price_is_named_and_left_out_of_the_totals() {
        let p = plan(vec![change(
            "aws_instance.x",
            Action::Create,
            None,
            Some(json!({"instance_type": "m5.large", "root_volume_size_gib": 10})),
        )]);
        let c = cost(&p, &InstancePrices::from_table("af-south-1"));
        assert_eq!(c.monthly_after, 0.0);
        assert_eq!(
            c.unpriced,
            [
                "aws_instance.x: no on-demand price for m5.large in af-south-1",
                "aws_instance.x: no price for volumes in af-south-1"
            ]
        );
    }

    /// The Price List API's answers of the run price their types, and the
    /// sources say which prices came from where and of what date.
    #[test]
    fn prices_the_api_gave_come_before_the_table_and_are_named() {
        let p = plan(vec![
            change("aws_instance.a", Action::Create, None, Some(json!({"instance_type": "m5.xlarge"}))),
            change("aws_instance.b", Action::Create, None, Some(json!({"instance_type": "m5.large"}))),
        ]);
        let mut looked_up = prices::LookedUp { online: true, as_of: "2026-12-02".into(), ..Default::default() };
        looked_up.prices.insert(("us-east-1".into(), "m5.xlarge".into()), 0.2);
        looked_up.prices.insert(("eu-west-1".into(), "m5.large".into()), 9.0);
        let c = cost(&p, &InstancePrices::for_run("us-east-1", &looked_up));
        // 0.2 x 730 from the API; m5.large 0.096 x 730 from the table (the
        // eu-west-1 answer is another region's).
        assert_eq!(item(&c, "aws_instance.a").monthly_after, 146.0);
        assert_eq!(item(&c, "aws_instance.b").monthly_after, 70.08);
        assert_eq!(c.sources[0].prices, "instances of type m5.xlarge");
        assert_eq!(
            (c.sources[0].source.as_str(), c.sources[0].as_of.as_str()),
            ("the AWS Price List API", "2026-12-02")
        );
        assert_eq!(c.sources[1].prices, "other instances");
        assert_eq!(c.sources[1].as_of, prices::table().as_of_for("us-east-1"));
        // Nothing looked up: the table alone, as before.
        let c = cost(&p, &InstancePrices::for_run("us-east-1", &prices::LookedUp::default()));
        assert_eq!(c.sources[0].prices, "instances");
        assert_eq!(item(&c, "aws_instance.a").monthly_after, 140.16);
    }

    /// The other charges' prices the API gave for the region come before
    /// the table's, per charge, and the sources say which came from where;
    /// in a region the table lacks, what the API did not price is named.
    #[test]
    fn other_charges_the_api_priced_come_before_the_table_and_are_named() {
        let p = plan(vec![
            change("aws_nat_gateway.main[a]", Action::Create, None, Some(json!({}))),
            change("aws_eip.nat[a]", Action::Create, None, Some(json!({}))),
            change("aws_elb.apiserver", Action::Create, None, Some(json!({"subnets": ["s1", "s2"]}))),
            change(
                "aws_instance.x",
                Action::Create,
                None,
                Some(json!({"instance_type": "m5.large", "root_volume_size_gib": 10})),
            ),
        ]);
        let mut looked_up = prices::LookedUp { online: true, as_of: "2026-12-02".into(), ..Default::default() };
        looked_up.services.insert(("us-east-1".into(), ServiceItem::NatGatewayHour), 0.05);
        looked_up.services.insert(("us-east-1".into(), ServiceItem::Gp3GbMonth), 0.1);
        looked_up.services.insert(("af-south-1".into(), ServiceItem::PublicIpv4Hour), 9.0);
        let c = cost(&p, &InstancePrices::for_run("us-east-1", &looked_up));
        assert_eq!(item(&c, "aws_nat_gateway.main[a]").monthly_after, 36.5, "0.05 x 730 from the API");
        assert_eq!(item(&c, "aws_eip.nat[a]").monthly_after, 3.65, "0.005 x 730 from the table");
        assert_eq!(item(&c, "aws_elb.apiserver").monthly_after, 25.55, "(0.025 + 2 x 0.005) x 730, the table's");
        assert_eq!(item(&c, "aws_instance.x").monthly_after, 71.08, "0.096 x 730 + 10 x 0.1 (gp3 from the API)");
        let named: Vec<(&str, &str, &str)> =
            c.sources.iter().map(|s| (s.prices.as_str(), s.source.as_str(), s.as_of.as_str())).collect();
        assert_eq!(named[1], ("NAT gateways and volumes", "the AWS Price List API", "2026-12-02"));
        assert_eq!(named[2].0, "the load balancer and public IPv4 addresses");
        assert!(named[2].1.starts_with("skyplan's price table ("), "{named:?}");
        assert_eq!(named[2].2, service_prices().as_of);
        assert!(c.unpriced.is_empty(), "{:?}", c.unpriced);

        // af-south-1: in neither table; the API priced the IPv4 addresses alone.
        let c = cost(&p, &InstancePrices::for_run("af-south-1", &looked_up));
        assert_eq!(item(&c, "aws_eip.nat[a]").monthly_after, 6570.0, "9.0 x 730, the API's");
        assert!(c.items.iter().all(|i| i.address != "aws_nat_gateway.main[a]"), "{:?}", c.items);
        assert_eq!(
            c.unpriced,
            [
                "aws_elb.apiserver: no price for a classic load balancer in af-south-1",
                "aws_instance.x: no on-demand price for m5.large in af-south-1",
                "aws_instance.x: no price for volumes in af-south-1",
                "aws_nat_gateway.main[a]: no price for a NAT gateway in af-south-1",
            ]
        );
        let named: Vec<&str> = c.sources.iter().map(|s| s.prices.as_str()).collect();
        assert_eq!(named, ["instances", "public IPv4 addresses"], "the table has no af-south-1 prices to name");
    }

    #[test]
    fn instance_types_lists_both_sides_once() {
        let to = demo_with("instance_type = \"m5.large\"", "instance_type = \"m5.2xlarge\"");
        assert_eq!(instance_types(&diff(DEMO, &to, &[])), ["m5.2xlarge", "m5.large", "m5.xlarge", "t3.micro"]);
    }
}
