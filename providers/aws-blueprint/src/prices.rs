//! The on-demand price table shipped as data (`data/on-demand-prices.toml`):
//! Linux on-demand USD per hour by region and instance type, with the date
//! and source of each region's prices (regions come from different
//! sources, of different dates: [`PriceTable::as_of_for`]). A spot pool
//! without `on_demand_price` takes its on-demand price from here (see
//! `validate.rs`) when the AWS Price List API, asked first by `plan` and
//! `apply` ([`LookedUp`]), has none.
//!
//! What is not here: current prices. The table is dated; the spot price
//! itself is read from AWS at plan and apply time (the AWS provider).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// The day the prices were taken (`YYYY-MM-DD`).
    pub as_of: String,
    /// Where they were taken from.
    pub source: String,
    /// Regions whose prices have another date and source than `as_of` and
    /// `source`, by a name for that provenance.
    #[serde(default)]
    provenance: BTreeMap<String, Provenance>,
    /// region -> instance type -> USD per hour.
    prices: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The date and source of some regions' prices.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Provenance {
    as_of: String,
    source: String,
    regions: Vec<String>,
}

impl PriceTable {
    /// The on-demand price of `instance_type` in `region`, if the table has it.
    pub fn on_demand(&self, region: &str, instance_type: &str) -> Option<f64> {
        self.prices.get(region)?.get(instance_type).copied()
    }

    /// Every price of one region (instance type -> USD per hour).
    pub fn region(&self, region: &str) -> Option<&BTreeMap<String, f64>> {
        self.prices.get(region)
    }

    /// The day `region`'s prices were taken (`YYYY-MM-DD`): its
    /// provenance's, else the table's `as_of`.
    pub fn as_of_for(&self, region: &str) -> &str {
        self.provenance_of(region).map_or(&self.as_of, |p| &p.as_of)
    }

    /// Where `region`'s prices were taken from.
    pub fn source_for(&self, region: &str) -> &str {
        self.provenance_of(region).map_or(&self.source, |p| &p.source)
    }

    fn provenance_of(&self, region: &str) -> Option<&Provenance> {
        self.provenance.values().find(|p| p.regions.iter().any(|r| r == region))
    }

    /// The regions the table covers.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.prices.keys().map(String::as_str)
    }
}

/// On-demand prices looked up in the cloud for one run (the AWS Price List
/// API, asked by the caller: the blueprint makes no cloud call), used before
/// the table for spot pools without `on_demand_price`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LookedUp {
    /// Whether this run could ask the cloud (`plan`, `apply`): then a price
    /// that neither the spec, the lookup nor the table has is an error.
    /// Without (`validate`, `graph`), such a max price is left unknown.
    pub online: bool,
    /// (region, instance type) -> USD per hour.
    pub prices: BTreeMap<(String, String), f64>,
    /// The day the prices were asked for (`YYYY-MM-DD`, [`today`]).
    pub as_of: String,
    /// (region, charge) -> USD per hour (per GB-month for volumes): the
    /// prices besides instances the API gave, for the cost estimate.
    pub services: BTreeMap<(String, ServiceItem), f64>,
}

impl LookedUp {
    pub fn get(&self, region: &str, instance_type: &str) -> Option<f64> {
        self.prices.get(&(region.to_string(), instance_type.to_string())).copied()
    }
}

/// The (region, instance type) of every spot pool of `spec` that gives no
/// `on_demand_price`: what a run asks the Price List API for.
pub fn needed(spec: &crate::model::SpecFile) -> Vec<(String, String)> {
    let Some(cluster) = &spec.cluster else { return Vec::new() };
    let mut out: Vec<(String, String)> = spec
        .node_pool
        .iter()
        .filter(|p| p.spot.as_ref().is_some_and(|s| s.on_demand_price.is_none()))
        .map(|p| (cluster.region.clone(), p.instance_type.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Today's date in UTC (`YYYY-MM-DD`): the date of prices asked for now.
pub fn today() -> String {
    let now = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
}

/// The shipped table, parsed once.
pub fn table() -> &'static PriceTable {
    static TABLE: OnceLock<PriceTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        toml::from_str(include_str!("../data/on-demand-prices.toml"))
            .unwrap_or_else(|e| panic!("data/on-demand-prices.toml does not parse (its unit test says why): {e}"))
    })
}

/// The prices besides instances that the estimate uses, one per kind of
/// charge: what the Price List API is asked for (`skyplan_aws::pricing`)
/// and what `data/service-prices.toml` holds, by the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceItem {
    /// A NAT gateway, USD per hour.
    NatGatewayHour,
    /// A classic load balancer, USD per hour.
    ClassicLoadBalancerHour,
    /// A public IPv4 address in use, USD per hour.
    PublicIpv4Hour,
    /// A gp3 volume, USD per GB-month.
    Gp3GbMonth,
}

impl ServiceItem {
    pub const ALL: [ServiceItem; 4] = [
        ServiceItem::NatGatewayHour,
        ServiceItem::ClassicLoadBalancerHour,
        ServiceItem::PublicIpv4Hour,
        ServiceItem::Gp3GbMonth,
    ];

    /// What it prices, as the plan's sources name it.
    pub fn what(self) -> &'static str {
        match self {
            ServiceItem::NatGatewayHour => "NAT gateways",
            ServiceItem::ClassicLoadBalancerHour => "the load balancer",
            ServiceItem::PublicIpv4Hour => "public IPv4 addresses",
            ServiceItem::Gp3GbMonth => "volumes",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_is_dated_and_every_price_is_a_price() {
        let t: PriceTable = toml::from_str(include_str!("../data/on-demand-prices.toml")).unwrap();
        let date: Vec<&str> = t.as_of.split('-').collect();
        assert!(
            date.len() == 3 && date[0].len() == 4 && date.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())),
            "as_of {:?} is not YYYY-MM-DD",
            t.as_of
        );
        assert!(!t.source.trim().is_empty());
        for (name, p) in &t.provenance {
            assert!(p.as_of.len() == 10 && p.as_of.as_bytes()[4] == b'-', "{name}: as_of {:?}", p.as_of);
            assert!(!p.source.trim().is_empty() && !p.regions.is_empty(), "{name}");
            for region in &p.regions {
                assert!(t.prices.contains_key(region), "{name} names {region}, which has no prices");
                let claimed = t.provenance.values().filter(|q| q.regions.contains(region)).count();
                assert_eq!(claimed, 1, "{region} has {claimed} provenances");
            }
        }
        for (region, types) in &t.prices {
            assert!(!types.is_empty(), "{region} has no prices");
            for (instance_type, price) in types {
                assert!(price.is_finite() && *price > 0.0, "{region} {instance_type}: {price}");
                assert!(instance_type.contains('.'), "{region}: {instance_type} is not an instance type");
            }
        }
    }

    /// The instance types of the examples in the regions that carry the table.
    #[test]
    fn the_examples_instance_types_are_in_the_table() {
        let t = table();
        for instance_type in ["t3.micro", "m5.large", "m5.xlarge", "g4dn.xlarge"] {
            assert!(t.on_demand("us-east-1", instance_type).is_some(), "{instance_type}");
        }
        assert_eq!(t.on_demand("us-east-1", "m5.xlarge"), Some(0.192));
        assert_eq!(t.on_demand("us-east-1", "no.such"), None);
        assert_eq!(t.on_demand("xx-nowhere-1", "m5.xlarge"), None);
        assert_eq!(t.on_demand("us-gov-west-1", "m5.xlarge"), Some(0.242));
    }

    /// The common commercial regions carry the types of the examples and the
    /// contract (the GPU type where its price is known), each region dated
    /// by its own provenance.
    #[test]
    fn the_common_regions_are_in_the_table_with_their_own_date() {
        let t = table();
        let regions = [
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ca-central-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-central-1",
            "eu-north-1",
            "ap-south-1",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "sa-east-1",
        ];
        for region in regions {
            for instance_type in ["t3.micro", "m5.large", "m5.xlarge"] {
                assert!(t.on_demand(region, instance_type).is_some(), "{instance_type} in {region}");
            }
            // Within a family, each size is twice the one below.
            let (large, xlarge) = (t.on_demand(region, "m5.large").unwrap(), t.on_demand(region, "m5.xlarge").unwrap());
            assert!((xlarge - 2.0 * large).abs() < 1e-9, "{region}: m5.xlarge {xlarge} vs m5.large {large}");
        }
        assert_eq!(t.on_demand("us-west-2", "g4dn.xlarge"), Some(0.526));
        assert_eq!(t.on_demand("eu-west-1", "m5.xlarge"), Some(0.214));
        assert_eq!(t.as_of_for("us-east-1"), t.as_of);
        assert_eq!(t.as_of_for("us-gov-west-1"), t.as_of);
        assert_eq!(t.as_of_for("eu-west-1"), "2025-01-01");
        assert!(t.source_for("eu-west-1").contains("not checked against a live source"));
        assert_eq!(t.source_for("us-east-1"), t.source);
        // Outside the table: the Price List API or on_demand_price.
        assert_eq!(t.on_demand("af-south-1", "m5.xlarge"), None);
    }

    #[test]
    fn today_is_a_date() {
        let d = today();
        assert!(d.len() == 10 && d.starts_with("20") && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-', "{d}");
    }
}
