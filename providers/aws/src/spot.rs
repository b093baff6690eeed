//! On-Spot: the current spot price of an instance type per AZ
//! (DescribeSpotPriceHistory), and the wait before a spot pool's auto
//! scaling group is created until that price is within the pool's max.
//!
//! A pool may launch once the spot price is at or below its max price in
//! at least one of its AZs: an auto scaling group places instances in the
//! AZs where its spot requests can be met, so one AZ in range is enough for
//! nodes to start. The wait polls every [`SpotWait::interval`], reports
//! each look through the operation's progress, and gives up after
//! [`SpotWait::bound`] with an error that says which prices stayed above
//! which max. It runs on tokio's clock: the tests below drive it with
//! paused time, since the emulator's spot price never moves.
//!
//! What is not here: the max price itself (the blueprint computes it, the
//! launch template carries it: `launch_template.rs`).
//!
//! `ec2:DescribeSpotPriceHistory` is an optional permission: the seed's
//! policies do not grant it (docs/iam.md). When AWS denies it, `plan` shows
//! no prices and `apply` does not wait; each says so once ([`SKIPPED`]) and
//! goes on. The spot market itself never launches above the max price.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::InstanceType;
use aws_smithy_types::DateTime;
use skyplan_engine::{Attrs, OpContext, ProviderError};
use tokio::time::Instant;

use crate::attrs;
use crate::clients::Clients;
use crate::ec2util::filter;
use crate::error::ApiError;
use crate::retry::Retry;
pub use crate::wait::SpotWait;

/// The product descriptions of Linux spot prices: AWS reports VPC-only
/// accounts' prices as `Linux/UNIX`, older accounts' VPC prices as
/// `Linux/UNIX (Amazon VPC)`.
const LINUX: [&str; 2] = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"];

/// The current spot price in one AZ; `None` when AWS reports none there
/// (the instance type is not offered in that AZ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzPrice {
    pub az: String,
    /// USD per hour, as AWS writes it (`"0.071200"`).
    pub price: Option<String>,
}

impl AzPrice {
    /// Whether a spot request at `max_price` would be met here now.
    pub fn within(&self, max_price: &str) -> bool {
        match (self.price.as_deref().and_then(parse), parse(max_price)) {
            (Some(price), Some(max)) => price <= max,
            _ => false,
        }
    }
}

fn parse(price: &str) -> Option<f64> {
    price.trim().parse::<f64>().ok().filter(|p| p.is_finite())
}

/// A price for people: `$` and at least four decimals, no more than AWS
/// gave (`"0.071200"` -> `$0.0712`, `"0.00001"` -> `$0.00001`).
pub fn usd(price: &str) -> String {
    let Some(value) = parse(price) else { return price.to_string() };
    let mut text = format!("{value:.6}");
    while text.ends_with('0') && text.len() - text.find('.').unwrap_or(0) > 5 {
        text.pop();
    }
    format!("${text}")
}

/// A bound for people: `10m`, `90s`, `1h`.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The IAM action the spot prices need, which the seed's policies lack.
pub const ACTION: &str = "ec2:DescribeSpotPriceHistory";

/// Why spot prices were not read, when AWS denied [`ACTION`].
pub const SKIPPED: &str = "AWS denied ec2:DescribeSpotPriceHistory, an optional permission \
    (`skyplan policy SPEC --with-optional` adds it); the spot market never launches above a pool's max price";

/// Whether AWS refused the call for lack of permission.
pub(crate) fn denied(e: &ApiError) -> bool {
    e.has_code(&["UnauthorizedOperation", "AccessDenied", "AccessDeniedException"])
}

/// The latest Linux spot price of `instance_type` in each of `azs`, in the
/// order given.
pub(crate) async fn current_prices(c: &Clients, instance_type: &str, azs: &[String]) -> Result<Vec<AzPrice>, ApiError> {
    // With start and end time both now, AWS answers the price in effect now
    // in each AZ (the last change before the start time).
    let now = DateTime::from(SystemTime::now());
    let history = c
        .paginate(
            "DescribeSpotPriceHistory",
            Retry::Standard,
            |token| {
                c.ec2
                    .describe_spot_price_history()
                    .instance_types(InstanceType::from(instance_type))
                    .set_product_descriptions(Some(LINUX.iter().map(|d| d.to_string()).collect()))
                    .filters(filter("availability-zone", azs.iter().cloned()))
                    .start_time(now)
                    .end_time(now)
                    .set_next_token(token)
                    .send()
            },
            |page| page.spot_price_history().to_vec(),
            |page| page.next_token().filter(|t| !t.is_empty()),
        )
        .await?;
    let mut latest: BTreeMap<&str, (Option<DateTime>, &str)> = BTreeMap::new();
    for entry in &history {
        let (Some(az), Some(price)) = (entry.availability_zone(), entry.spot_price()) else { continue };
        let at = entry.timestamp().copied();
        if latest.get(az).is_none_or(|(seen, _)| at > *seen) {
            latest.insert(az, (at, price));
        }
    }
    Ok(azs
        .iter()
        .map(|az| AzPrice { az: az.clone(), price: latest.get(az.as_str()).map(|(_, p)| p.to_string()) })
        .collect())
}

/// What the group will launch, when it is on the spot market.
struct SpotLaunch {
    instance_type: String,
    max_price: String,
    azs: Vec<String>,
}

/// The instance type and spot max price of the group's launch template
/// version, and the AZs of its subnets; `None` for an on-demand template.
async fn spot_launch(c: &Clients, attrs: &Attrs) -> Result<Option<SpotLaunch>, ProviderError> {
    let template = attrs::req_str(attrs, "launch_template_id")?;
    let version = attrs::opt_str(attrs, "launch_template_version")?.unwrap_or("$Latest");
    let versions = c
        .call("DescribeLaunchTemplateVersions", Retry::AfterCreate, || {
            c.ec2.describe_launch_template_versions().launch_template_id(template).versions(version).send()
        })
        .await?;
    let Some(data) = versions.launch_template_versions().first().and_then(|v| v.launch_template_data()) else {
        return Ok(None);
    };
    let Some(market) = data.instance_market_options().filter(|m| m.market_type().map(|t| t.as_str()) == Some("spot"))
    else {
        return Ok(None);
    };
    let Some(max_price) = market.spot_options().and_then(|s| s.max_price()).map(str::to_string) else {
        // No max price: AWS caps spot at the on-demand price; nothing to wait for.
        return Ok(None);
    };
    let instance_type = data.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
    let subnets = attrs::str_list(attrs, "vpc_zone_identifier")?;
    let described = c
        .call("DescribeSubnets", Retry::AfterCreate, || {
            c.ec2.describe_subnets().filters(filter("subnet-id", subnets.iter().cloned())).send()
        })
        .await?;
    let mut azs: Vec<String> =
        described.subnets().iter().filter_map(|s| s.availability_zone()).map(str::to_string).collect();
    azs.sort();
    azs.dedup();
    Ok(Some(SpotLaunch { instance_type, max_price, azs }))
}

fn listing(prices: &[AzPrice]) -> String {
    let each: Vec<String> = prices
        .iter()
        .map(|p| match &p.price {
            Some(price) => format!("{} {}", p.az, usd(price)),
            None => format!("{} no price", p.az),
        })
        .collect();
    each.join(", ")
}

/// Before a spot pool's group is created: wait, within `c.spot_wait`,
/// until the spot price is within the template's max price in at least
/// one of the group's AZs. Returns at once for on-demand templates.
pub(crate) async fn wait_until_in_range(c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<(), ProviderError> {
    let Some(launch) = spot_launch(c, attrs).await? else { return Ok(()) };
    let SpotLaunch { instance_type, max_price, azs } = &launch;
    let max = usd(max_price);
    let wait = c.spot_wait;
    let deadline = Instant::now() + wait.bound;
    loop {
        let prices = match current_prices(c, instance_type, azs).await {
            Ok(prices) => prices,
            Err(e) if denied(&e) => {
                c.skip_once(format!("skipped the wait for spot prices within the max: {SKIPPED}"));
                ctx.report("not waiting for the spot price: no permission to read it (see the note at the end)");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let ok: Vec<&AzPrice> = prices.iter().filter(|p| p.within(max_price)).collect();
        if !ok.is_empty() {
            let ok: Vec<AzPrice> = ok.into_iter().cloned().collect();
            ctx.report(format!("spot price for {instance_type} within max {max}/h in {}", listing(&ok)));
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            let waited = if wait.bound.is_zero() {
                format!("is above max {max}/h (--spot-wait 0)")
            } else {
                format!("stayed above max {max}/h for {}", duration(wait.bound))
            };
            return Err(ProviderError::new(format!(
                "spot price for {instance_type} in {} {waited} (now {}); raise max_price_percent or retry later",
                azs.join(","),
                listing(&prices)
            )));
        }
        let next = wait.interval.min(deadline - now);
        ctx.report(format!(
            "spot price for {instance_type} above max {max}/h in every AZ ({}); looking again in {}, giving up in {}",
            listing(&prices),
            duration(next),
            duration(deadline - now)
        ));
        tokio::time::sleep(next).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_ok, recording_ctx, FakeAws, Sent};

    #[test]
    fn prices_read_like_money_and_compare_as_numbers() {
        assert_eq!(usd("0.071200"), "$0.0712");
        assert_eq!(usd("0.00001"), "$0.00001");
        assert_eq!(usd("0.1152"), "$0.1152");
        assert_eq!(usd("3"), "$3.0000");
        let at = |price: &str| AzPrice { az: "us-east-1a".into(), price: Some(price.into()) };
        assert!(at("0.115200").within("0.1152"), "equal to the max is in range");
        assert!(at("0.0712").within("0.1152"));
        assert!(!at("0.1301").within("0.1152"));
        assert!(!AzPrice { az: "us-east-1a".into(), price: None }.within("0.1152"), "no price is not in range");
        assert_eq!(duration(Duration::from_secs(600)), "10m");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_secs(7200)), "2h");
    }

    fn spot_template() -> (u16, String) {
        ec2_ok(
            "DescribeLaunchTemplateVersions",
            "<launchTemplateVersionSet><item><launchTemplateId>lt-1</launchTemplateId><versionNumber>3</versionNumber>\
             <launchTemplateData><instanceType>m5.xlarge</instanceType><instanceMarketOptions><marketType>spot</marketType>\
             <spotOptions><maxPrice>0.1152</maxPrice></spotOptions></instanceMarketOptions></launchTemplateData></item>\
             </launchTemplateVersionSet>",
        )
    }

    fn subnets() -> (u16, String) {
        ec2_ok(
            "DescribeSubnets",
            "<subnetSet><item><subnetId>subnet-a</subnetId><availabilityZone>us-east-1a</availabilityZone></item>\
             <item><subnetId>subnet-b</subnetId><availabilityZone>us-east-1b</availabilityZone></item></subnetSet>",
        )
    }

    /// A DescribeSpotPriceHistory answer: (AZ, price, timestamp) entries.
    fn history(entries: &[(&str, &str, &str)]) -> (u16, String) {
        let items: String = entries
            .iter()
            .map(|(az, price, at)| {
                format!(
                    "<item><instanceType>m5.xlarge</instanceType><productDescription>Linux/UNIX</productDescription>\
                     <spotPrice>{price}</spotPrice><timestamp>{at}</timestamp><availabilityZone>{az}</availabilityZone></item>"
                )
            })
            .collect();
        ec2_ok("DescribeSpotPriceHistory", &format!("<spotPriceHistorySet>{items}</spotPriceHistorySet><nextToken/>"))
    }

    fn group() -> Attrs {
        json!({"name": "demo-spot", "launch_template_id": "lt-1", "launch_template_version": "3",
            "vpc_zone_identifier": ["subnet-a", "subnet-b"]})
        .as_object()
        .unwrap()
        .clone()
    }

    /// A fake whose spot price answers are `answers` in turn (the last one
    /// repeated), counting the price lookups.
    fn fake(answers: Vec<Vec<(&'static str, &'static str, &'static str)>>) -> (FakeAws, Arc<AtomicUsize>) {
        let looks = Arc::new(AtomicUsize::new(0));
        let counter = looks.clone();
        let fake = FakeAws::new(move |req: &Sent| match req.action.as_str() {
            "DescribeLaunchTemplateVersions" => spot_template(),
            "DescribeSubnets" => subnets(),
            "DescribeSpotPriceHistory" => {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                history(&answers[n.min(answers.len() - 1)])
            }
            other => panic!("unexpected call {other}"),
        });
        (fake, looks)
    }

    async fn clients(fake: &FakeAws, bound: Duration) -> Clients {
        let mut c = fake.clients().await;
        c.spot_wait = SpotWait::bounded(bound);
        c
    }

    fn ctx() -> (OpContext, Arc<std::sync::Mutex<Vec<String>>>) {
        recording_ctx(Address::keyed("aws_autoscaling_group", "pool", "spot"), "apply-1-asg")
    }

    const T0: &str = "2026-11-24T09:00:00Z";

    #[tokio::test(start_paused = true)]
    async fn a_price_in_range_at_once_does_not_wait() {
        let (fake, looks) = fake(vec![vec![("us-east-1a", "0.1301", T0), ("us-east-1b", "0.0712", T0)]]);
        let c = clients(&fake, Duration::from_secs(600)).await;
        let (ctx, reports) = ctx();
        let start = Instant::now();
        wait_until_in_range(&c, &ctx, &group()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(looks.load(Ordering::SeqCst), 1);
        assert_eq!(fake.actions(), ["DescribeLaunchTemplateVersions", "DescribeSubnets", "DescribeSpotPriceHistory"]);
        let sent = fake.sent();
        assert_eq!(sent[0].param("LaunchTemplateId"), Some("lt-1"));
        assert_eq!(sent[0].param("LaunchTemplateVersion.1"), Some("3"));
        let prices = &sent[2];
        assert_eq!(prices.param("InstanceType.1"), Some("m5.xlarge"));
        assert_eq!(prices.values("ProductDescription.", ""), ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]);
        assert_eq!(prices.param("Filter.1.Name"), Some("availability-zone"));
        assert_eq!(prices.values("Filter.1.Value.", ""), ["us-east-1a", "us-east-1b"]);
        assert!(prices.param("StartTime").is_some() && prices.param("EndTime").is_some());
        assert_eq!(*reports.lock().unwrap(), ["spot price for m5.xlarge within max $0.1152/h in us-east-1b $0.0712"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_latest_price_per_az_counts() {
        // An older low price in us-east-1a does not count; its latest is high.
        let (fake, _) = fake(vec![vec![
            ("us-east-1a", "0.0500", "2026-11-24T08:00:00Z"),
            ("us-east-1a", "0.1400", T0),
            ("us-east-1b", "0.1500", T0),
        ]]);
        let c = clients(&fake, Duration::ZERO).await;
        let prices = current_prices(&c, "m5.xlarge", &["us-east-1a".into(), "us-east-1b".into(), "us-east-1c".into()])
            .await
            .unwrap();
        let got: Vec<(&str, Option<&str>)> = prices.iter().map(|p| (p.az.as_str(), p.price.as_deref())).collect();
        assert_eq!(got, [("us-east-1a", Some("0.1400")), ("us-east-1b", Some("0.1500")), ("us-east-1c", None)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_price_that_comes_into_range_after_some_looks_is_waited_for() {
        let high = vec![("us-east-1a", "0.1301", T0), ("us-east-1b", "0.1350", T0)];
        let later = vec![("us-east-1a", "0.1100", T0), ("us-east-1b", "0.1350", T0)];
        let (fake, looks) = fake(vec![high.clone(), high.clone(), high, later]);
        let c = clients(&fake, Duration::from_secs(600)).await;
        let (ctx, reports) = ctx();
        let start = Instant::now();
        wait_until_in_range(&c, &ctx, &group()).await.unwrap();
        assert_eq!(looks.load(Ordering::SeqCst), 4);
        assert_eq!(start.elapsed(), Duration::from_secs(90), "three waits of 30 s");
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 4);
        assert_eq!(
            reports[0],
            "spot price for m5.xlarge above max $0.1152/h in every AZ (us-east-1a $0.1301, us-east-1b $0.1350); \
             looking again in 30s, giving up in 10m"
        );
        assert_eq!(reports[3], "spot price for m5.xlarge within max $0.1152/h in us-east-1a $0.1100");
    }

    #[tokio::test(start_paused = true)]
    async fn a_price_that_never_comes_into_range_fails_plainly_at_the_bound() {
        let (fake, looks) = fake(vec![vec![("us-east-1a", "0.1301", T0), ("us-east-1b", "0.1350", T0)]]);
        let c = clients(&fake, Duration::from_secs(600)).await;
        let (ctx, _) = ctx();
        let start = Instant::now();
        let e = wait_until_in_range(&c, &ctx, &group()).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(600), "bounded by --spot-wait");
        assert_eq!(looks.load(Ordering::SeqCst), 21, "at 0 s and every 30 s up to 600 s");
        assert_eq!(
            e.message,
            "spot price for m5.xlarge in us-east-1a,us-east-1b stayed above max $0.1152/h for 10m \
             (now us-east-1a $0.1301, us-east-1b $0.1350); raise max_price_percent or retry later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_looks_once() {
        let (fake, looks) = fake(vec![vec![("us-east-1a", "0.1301", T0)]]);
        let c = clients(&fake, Duration::ZERO).await;
        let (ctx, _) = ctx();
        let e = wait_until_in_range(&c, &ctx, &group()).await.unwrap_err();
        assert_eq!(looks.load(Ordering::SeqCst), 1);
        assert!(e.message.contains("is above max $0.1152/h (--spot-wait 0)"), "{}", e.message);
        assert!(e.message.contains("us-east-1b no price"), "{}", e.message);
    }

    #[tokio::test(start_paused = true)]
    async fn an_on_demand_template_is_not_checked() {
        let fake = FakeAws::new(|req: &Sent| match req.action.as_str() {
            "DescribeLaunchTemplateVersions" => ec2_ok(
                "DescribeLaunchTemplateVersions",
                "<launchTemplateVersionSet><item><launchTemplateData><instanceType>m5.xlarge</instanceType>\
                 </launchTemplateData></item></launchTemplateVersionSet>",
            ),
            other => panic!("unexpected call {other}"),
        });
        let c = clients(&fake, Duration::from_secs(600)).await;
        let (ctx, reports) = ctx();
        wait_until_in_range(&c, &ctx, &group()).await.unwrap();
        assert_eq!(fake.actions(), ["DescribeLaunchTemplateVersions"]);
        assert!(reports.lock().unwrap().is_empty());
    }
}
