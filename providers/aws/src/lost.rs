//! Creates and updates whose answer was lost.
//!
//! A call that makes something (`retry::NON_IDEMPOTENT`) and gets no answer
//! or a 5xx may or may not have acted: the connection can drop after AWS
//! created the VPC. Sending it again could make a duplicate (the emulator
//! ignores ClientToken, and most EC2 creates take none) or fail with
//! "already exists", so `Clients::call` does not; the create or update it
//! belongs to stops, and this file decides what happened:
//!
//! - a create looks the resource up the way a crashed run's create is
//!   found again (`find.rs`: by its `skyplan:address` tag, or by name for
//!   ELBs, launch templates and auto scaling groups). Found: it is adopted
//!   and brought to the desired attributes with the kind's update (which
//!   does what the create had not got to: DNS attributes, routes,
//!   associations, health checks). Not found: the create runs again.
//! - an update reads the resource again and runs the update from what is
//!   there now (the update diffs prior against desired, so what the lost
//!   call did is not done twice).
//!
//! Both try at most [`ROUNDS`] times, each after a backoff wait (which also
//! gives AWS's eventually consistent describes time to show the resource).

use serde_json::Value;
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::clients::Clients;
use crate::kinds::AwsKind;

/// Rounds of create (or update) per operation, the first included.
pub(crate) const ROUNDS: u32 = 4;

pub(crate) async fn create(
    c: &Clients,
    kind: &dyn AwsKind,
    ctx: &OpContext,
    attrs: &Attrs,
) -> Result<Attrs, ProviderError> {
    let mut round = 0;
    loop {
        let scope = c.scoped();
        let err = match kind.create(&scope, ctx, attrs).await {
            Ok(created) => return Ok(created),
            Err(e) if scope.lost_answers() > 0 && round + 1 < ROUNDS => e,
            Err(e) => return Err(e),
        };
        tokio::time::sleep(c.retry.backoff.delay(round)).await;
        round += 1;
        let found = crate::find::find(c, kind, &ctx.address, attrs).await?;
        c.retries.looked_up(found.is_some());
        match found {
            Some(live) => {
                let id = live.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                ctx.report(format!(
                    "{} without a sure answer: found {id} by its tag (or name), finishing it",
                    brief(&err.message)
                ));
                return update(c, kind, ctx, &live, attrs).await;
            }
            None => {
                ctx.report(format!("{} without a sure answer: nothing was made, creating again", brief(&err.message)))
            }
        }
    }
}

pub(crate) async fn update(
    c: &Clients,
    kind: &dyn AwsKind,
    ctx: &OpContext,
    prior: &Attrs,
    attrs: &Attrs,
) -> Result<Attrs, ProviderError> {
    let mut prior = prior.clone();
    let mut round = 0;
    loop {
        let scope = c.scoped();
        let err = match kind.update(&scope, ctx, &prior, attrs).await {
            Ok(updated) => return Ok(updated),
            Err(e) if scope.lost_answers() > 0 && round + 1 < ROUNDS => e,
            Err(e) => return Err(e),
        };
        tokio::time::sleep(c.retry.backoff.delay(round)).await;
        round += 1;
        let request = ReadRequest { address: ctx.address.clone(), kind: kind.name().to_string(), prior };
        match kind.read(c, &[request]).await?.into_iter().next().flatten() {
            Some(live) => {
                ctx.report(format!(
                    "{} without a sure answer: read the resource again, updating from there",
                    brief(&err.message)
                ));
                prior = live;
            }
            None => return Err(err),
        }
    }
}

/// The failed call of an error message, without the transport details
/// ("CreateVpc failed", "rtb-1 was created but then CreateRoute failed").
fn brief(message: &str) -> &str {
    match message.find(" failed") {
        Some(at) => &message[..at + " failed".len()],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_engine::Address;

    use super::*;
    use crate::testing::{ec2_error, ec2_ok, recording_ctx, FakeAws};

    /// An endpoint whose first CreateVpc fails with a 500 (AWS may have
    /// acted); `made` says whether it did.
    fn vpc_endpoint(made: bool) -> FakeAws {
        let failed_once = Arc::new(AtomicBool::new(false));
        let exists = Arc::new(AtomicBool::new(false));
        FakeAws::new(move |req| match req.action.as_str() {
            "CreateVpc" => {
                if !failed_once.swap(true, Ordering::SeqCst) {
                    exists.store(made, Ordering::SeqCst);
                    return ec2_error(500, "InternalError", "An internal error has occurred");
                }
                exists.store(true, Ordering::SeqCst);
                ec2_ok("CreateVpc", "<vpc><vpcId>vpc-1</vpcId><cidrBlock>10.0.0.0/16</cidrBlock></vpc>")
            }
            "DescribeVpcs" if exists.load(Ordering::SeqCst) => ec2_ok(
                "DescribeVpcs",
                "<vpcSet><item><vpcId>vpc-1</vpcId><cidrBlock>10.0.0.0/16</cidrBlock><tagSet>\
                 <item><key>skyplan:address</key><value>aws_vpc.main</value></item></tagSet></item></vpcSet>",
            ),
            "DescribeVpcs" => ec2_ok("DescribeVpcs", "<vpcSet/>"),
            "DescribeVpcAttribute" => {
                let attr = req.param("Attribute").unwrap_or_default().to_string();
                ec2_ok("DescribeVpcAttribute", &format!("<{attr}><value>false</value></{attr}>"))
            }
            "ModifyVpcAttribute" => ec2_ok("ModifyVpcAttribute", "<return>true</return>"),
            other => panic!("unexpected {other}"),
        })
    }

    fn vpc() -> &'static dyn AwsKind {
        crate::kinds::get("aws_vpc").unwrap()
    }

    fn desired() -> Attrs {
        json!({"cidr_block": "10.0.0.0/16"}).as_object().unwrap().clone()
    }

    /// The 500 came after AWS made the VPC: it is found by its tag and
    /// finished (DNS hostnames on), and CreateVpc is not sent again.
    #[tokio::test(start_paused = true)]
    async fn a_create_that_happened_is_found_and_finished_not_repeated() {
        let fake = vpc_endpoint(true);
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::new("aws_vpc", "main"), "tok");
        let out = create(&c, vpc(), &ctx, &desired()).await.unwrap();
        assert_eq!(out["id"], json!("vpc-1"));
        let actions = fake.actions();
        assert_eq!(actions.iter().filter(|a| *a == "CreateVpc").count(), 1, "{actions:?}");
        assert!(actions.contains(&"ModifyVpcAttribute".to_string()), "finished: {actions:?}");
        let found = fake.sent().into_iter().find(|s| s.action == "DescribeVpcs").unwrap();
        assert_eq!(found.param("Filter.1.Name"), Some("tag:skyplan:address"));
        let stats = c.retries.snapshot();
        assert_eq!((stats.lost_answers, stats.found, stats.not_found, stats.retried()), (1, 1, 0, 0));
        let reports = reports.lock().unwrap();
        assert!(
            reports.iter().any(|r| r.contains("CreateVpc failed without a sure answer: found vpc-1")),
            "{reports:?}"
        );
    }

    /// The 500 came before AWS acted: nothing is found, the create runs again.
    #[tokio::test(start_paused = true)]
    async fn a_create_that_did_not_happen_runs_again() {
        let fake = vpc_endpoint(false);
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_vpc", "main"), "tok");
        let out = create(&c, vpc(), &ctx, &desired()).await.unwrap();
        assert_eq!(out["id"], json!("vpc-1"));
        assert_eq!(fake.actions().iter().filter(|a| *a == "CreateVpc").count(), 2);
        let stats = c.retries.snapshot();
        assert_eq!((stats.lost_answers, stats.found, stats.not_found), (1, 0, 1));
    }

    #[test]
    fn brief_names_the_failed_call() {
        assert_eq!(super::brief("CreateVpc failed: dispatch failure: io error: reset"), "CreateVpc failed");
        assert_eq!(
            super::brief("rtb-1 was created but then CreateRoute failed: dispatch failure"),
            "rtb-1 was created but then CreateRoute failed"
        );
        assert_eq!(super::brief("something else"), "something else");
    }
}
