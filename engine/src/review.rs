//! What a reviewer reads beside the changes: the risks of a plan to the
//! running system, its monthly cost before and after, and which part of the
//! system each address belongs to.
//!
//! The engine computes none of it: it knows no cloud, so it cannot tell a
//! NAT gateway from a database. Whoever knows the resources (for an AWS
//! cluster, the blueprint crate) fills a [`Review`] from the [`crate::plan::Plan`]
//! and hangs it on the plan; the engine only carries it (in the plan file)
//! and shows it (`render/`). Kinds, messages and parts are opaque strings here.

use serde::{Deserialize, Serialize};

/// One change that does something to the running system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// What kind of thing happens (`control-plane-roll`, ...).
    pub kind: String,
    /// The change's address.
    pub address: String,
    /// One sentence: what happens to the running system.
    pub message: String,
}

/// A monthly cost estimate, before and after the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// ISO 4217 (`USD`).
    pub currency: String,
    /// Hours in a month the hourly prices are multiplied by.
    pub hours_per_month: f64,
    /// Which prices, in the words of whoever priced it (`on-demand prices
    /// (spot pools at their max)`): the engine knows no price model.
    #[serde(default)]
    pub basis: String,
    pub monthly_before: f64,
    pub monthly_after: f64,
    pub items: Vec<CostItem>,
    /// Where each kind of price came from, for people (`instances: AWS Price
    /// List API, ...`), in the order they should be read.
    pub sources: Vec<PriceSource>,
    /// What could not be priced (and so is not in the totals), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
}

/// One priced thing: a resource's share of the monthly cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostItem {
    pub address: String,
    /// What is charged (`3 x m5.xlarge on-demand`, `NAT gateway`, ...),
    /// after the plan (before, for a delete).
    pub description: String,
    pub monthly_before: f64,
    pub monthly_after: f64,
}

/// Where some prices came from and as of when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSource {
    /// What is priced from this source (`instances`, `NAT gateways, ...`).
    pub prices: String,
    /// The source, for people.
    pub source: String,
    /// The day the prices are of (`YYYY-MM-DD`).
    pub as_of: String,
}

/// A named part of the system and the addresses in it, for grouping the
/// changes in the reports (`network`, `control plane`, `pool worker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub addresses: Vec<String>,
}

/// Everything a reviewer reads beside the changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<Risk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// In the order the reports show them; an address in none is shown
    /// under "other".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
}

impl Review {
    pub fn is_empty(&self) -> bool {
        self.risks.is_empty() && self.cost.is_none() && self.parts.is_empty()
    }

    /// The risks of one kind after another, in the order kinds first
    /// appear, each kind with its addresses (for the human plan's one line
    /// per kind and message).
    pub fn risks_grouped(&self) -> Vec<(&str, &str, Vec<&str>)> {
        let mut out: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for r in &self.risks {
            match out.iter_mut().find(|(k, m, _)| *k == r.kind && *m == r.message) {
                Some((_, _, addresses)) => addresses.push(&r.address),
                None => out.push((&r.kind, &r.message, vec![&r.address])),
            }
        }
        out
    }

    /// The part an address is in, if any.
    pub fn part_of(&self, address: &str) -> Option<&str> {
        self.parts.iter().find(|p| p.addresses.iter().any(|a| a == address)).map(|p| p.name.as_str())
    }
}

impl Cost {
    pub fn change(&self) -> f64 {
        self.monthly_after - self.monthly_before
    }
}

/// `$1,234.56`, `-$12.00`: a monthly figure for people.
pub fn money(amount: f64) -> String {
    let cents = (amount.abs() * 100.0).round() as u64;
    let (units, cents) = (cents / 100, cents % 100);
    let digits = units.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount < 0.0 && (units > 0 || cents > 0) { "-" } else { "" };
    format!("{sign}${grouped}.{cents:02}")
}

/// `+$12.00`, `-$3.50`, `$0.00`: a change for people.
pub fn money_change(amount: f64) -> String {
    let shown = money(amount);
    if shown.starts_with('-') || shown == "$0.00" {
        shown
    } else {
        format!("+{shown}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands_and_rounds_to_cents() {
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(1234.567), "$1,234.57");
        assert_eq!(money(1_000_000.0), "$1,000,000.00");
        assert_eq!(money(-12.0), "-$12.00");
        assert_eq!(money(-0.001), "$0.00");
        assert_eq!(money_change(70.08), "+$70.08");
        assert_eq!(money_change(-70.08), "-$70.08");
        assert_eq!(money_change(0.0), "$0.00");
    }

    #[test]
    fn risks_group_by_kind_and_message_in_first_seen_order() {
        let risk = |k: &str, a: &str| Risk { kind: k.into(), address: a.into(), message: format!("{k} happens") };
        let review = Review { risks: vec![risk("b", "x[0]"), risk("a", "y"), risk("b", "x[1]")], ..Review::default() };
        assert_eq!(
            review.risks_grouped(),
            vec![("b", "b happens", vec!["x[0]", "x[1]"]), ("a", "a happens", vec!["y"])]
        );
    }
}
