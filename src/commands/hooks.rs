//! [`SpecHooks`]: the provider side of a run of `plan` and `apply`, which
//! the engine's `ops` calls at the right steps through its `Hooks` trait:
//! the providers for the types in play (from `workspace`), an AWS static
//! placement's checks before planning (`workspace::check_static_placement`),
//! preflight's existence checks before applying (`preflight.rs`) and the
//! shared instance profiles: noted at plan, created after approval
//! (`profiles.rs`). It
//! lives among the commands because it calls one of them; `workspace`
//! takes any `Hooks` and knows none of this.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::ops::{HookError, Hooks};
use skyplan_engine::plan::Plan;
use skyplan_engine::Providers;

use crate::commands::{preflight, profiles};
use crate::ui::Ui;
use crate::workspace;

/// The provider side of a run for the specs this binary reads: the
/// providers (the simulated cloud, AWS when an AWS type is in play),
/// an AWS static placement's checks before planning, and AWS preflight's
/// existence checks before applying. The engine's `ops` calls these
/// through [`Hooks`] without knowing what they check.
pub struct SpecHooks {
    spec: Arc<AwsSpec>,
    state_path: PathBuf,
    ui: Ui,
    /// Static placement: add missing load-balancer tags to the public
    /// subnets before checking them (`apply --tag-subnets`).
    pub tag_subnets: bool,
}

impl SpecHooks {
    pub fn new(spec: Arc<AwsSpec>, state_path: &Path, ui: &Ui) -> SpecHooks {
        SpecHooks { spec, state_path: state_path.to_path_buf(), ui: ui.clone(), tag_subnets: false }
    }
}

#[async_trait::async_trait]
impl Hooks for SpecHooks {
    async fn providers(&self, kinds: &BTreeSet<String>) -> Result<Providers, HookError> {
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        workspace::providers(&self.spec, &self.state_path, &kinds).await.map_err(hook_error)
    }

    async fn before_plan(&self) -> Result<(), HookError> {
        workspace::check_static_placement(&self.spec, &self.ui, self.tag_subnets).await.map_err(hook_error)?;
        profiles::plan_note(&self.ui, &self.spec).await.map_err(hook_error)
    }

    async fn before_apply(&self, _plan: &Plan) -> Result<(), HookError> {
        preflight::before_apply(&self.ui, &self.spec).await.map_err(hook_error)
    }

    /// The shared instance profiles the nodes run with, when missing.
    async fn before_changes(&self, _plan: &Plan) -> Result<(), HookError> {
        profiles::create_shared(&self.ui, &self.spec).await.map_err(hook_error)
    }

    /// The blueprint's review: risks, parts, and the cost with instance
    /// prices the Price List API gave for this run (the spot pools'), else
    /// from the shipped table.
    fn review(&self, plan: &Plan) -> skyplan_engine::review::Review {
        let instances = self
            .spec
            .region
            .as_deref()
            .map(|region| skyplan_aws_blueprint::cost::InstancePrices::for_run(region, &self.spec.prices));
        skyplan_aws_blueprint::review(&self.spec.spec.file, plan, instances)
    }
}

fn hook_error(e: anyhow::Error) -> HookError {
    format!("{e:#}").into()
}
