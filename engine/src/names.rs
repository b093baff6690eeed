//! Names a plan is about to take that something else already holds.
//!
//! Some clouds make a resource's name unique (an AWS launch template, auto
//! scaling group or classic load balancer in a region, a security group in
//! a VPC). When another cluster, or anyone, already holds a name the plan
//! creates, the create would fail half-way through the apply, after other
//! resources were made. Each provider is asked about the creates it serves
//! (`Provider::name_conflicts`) and every conflict is an error at the
//! resource's address, before anything changes.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::plan::{Action, Plan};
use crate::provider::{NewResource, Providers};

/// Every name `plan` creates that something else holds, as errors.
pub async fn check(plan: &Plan, providers: &Providers) -> Result<(), Diagnostics> {
    let mut by_provider: BTreeMap<&'static str, Vec<NewResource>> = BTreeMap::new();
    for change in &plan.changes {
        if !matches!(change.action, Action::Create | Action::Replace) || change.orphan || change.deposed {
            continue;
        }
        let (Some(attrs), Some(provider)) = (&change.after, providers.for_kind(&change.kind)) else { continue };
        by_provider.entry(provider.name()).or_default().push(NewResource {
            address: change.address.clone(),
            kind: change.kind.clone(),
            attrs: attrs.clone(),
        });
    }
    let mut errors = Vec::new();
    for (name, creates) in by_provider {
        let provider = providers.for_kind(&creates[0].kind).expect("grouped by a serving provider");
        let conflicts = provider.name_conflicts(&creates).await.map_err(|e| {
            Diagnostic::new(
                Location::None,
                format!("checking the names the plan uses through the {name} provider: {e}"),
            )
        })?;
        errors.extend(conflicts.into_iter().map(|c| Diagnostic::at_address(&c.address, c.message)));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errors))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use skyplan_state::State;

    use super::*;
    use crate::plan::diff;
    use crate::testing::{graph, Fake};
    use crate::{Address, Owned};

    #[tokio::test]
    async fn a_name_held_by_another_address_fails_the_plan_naming_both() {
        let fake = Arc::new(Fake::default());
        let providers = Providers::new().with(fake.clone());
        let g =
            graph("[resource.test_lt.w]\nname = \"adv-a-b-w\"\n[resource.test_lt.x]\nname = \"free\"\n", fake.clone())
                .unwrap();
        let plan = diff(&g, &State::new(), false);
        assert!(check(&plan, &providers).await.is_ok());
        let attributes = json!({"id": "lt-1", "name": "adv-a-b-w"}).as_object().unwrap().clone();
        let holder = Owned { address: Address::new("test_lt", "other"), kind: "test_lt".into(), attributes };
        fake.cloud.lock().unwrap().push(holder);
        let errors = check(&plan, &providers).await.unwrap_err().to_string();
        assert!(errors.contains("test_lt.w"), "{errors}");
        assert!(errors.contains("`adv-a-b-w` is held by test_lt.other (\"lt-1\")"), "{errors}");
        assert!(!errors.contains("test_lt.x"), "{errors}");
    }
}
