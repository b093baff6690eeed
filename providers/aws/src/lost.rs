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
use crate::provider::Kind;

/// Rounds of create (or update) per operation, the first included.
pub(crate) const ROUNDS: u32 = 4;

pub(crate) async fn create(c: &Clients, kind: Kind, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
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
                    "the answer to the create was lost ({}); found {id} by its tag, finishing it",
                    err.message
                ));
                return update(c, kind, ctx, &live, attrs).await;
            }
            None => ctx.report(format!(
                "the answer to the create was lost ({}); nothing was made, creating again",
                err.message
            )),
        }
    }
}

pub(crate) async fn update(
    c: &Clients,
    kind: Kind,
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
        let request = ReadRequest { address: ctx.address.clone(), kind: kind.spec().kind.to_string(), prior };
        match kind.read(c, &[request]).await?.into_iter().next().flatten() {
            Some(live) => {
                ctx.report(format!(
                    "an answer was lost ({}); read the resource again, updating from there",
                    err.message
                ));
                prior = live;
            }
            None => return Err(err),
        }
    }
}
