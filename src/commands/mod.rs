//! One module per command: turn flags into options, call the engine, print.

pub mod apply;
pub mod hooks;
pub mod inspect;
pub mod output;
pub mod plan;
pub mod policy;
pub mod preflight;
pub mod state;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::ui::Ui;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    let ui = Ui::new(global);
    crate::workspace::set_rate_limits(&global.rate_limit)?;
    match cli.command {
        Command::Validate { spec } => inspect::validate(global, &spec).await,
        Command::Plan { spec, out, json, detailed_exitcode, no_refresh, destroy } => {
            let opts = plan::PlanOptions { spec, out, json, detailed_exitcode, refresh: !no_refresh, destroy };
            plan::run(global, &ui, opts).await
        }
        Command::Apply { target, auto_approve, parallelism, tag_subnets, spot_wait, skip_preflight } => {
            crate::workspace::set_spot_wait(spot_wait);
            let args =
                apply::ApplyArgs { target, auto_approve, parallelism, destroy: false, tag_subnets, skip_preflight };
            apply::run(global, &ui, args).await
        }
        Command::Destroy { spec, auto_approve, parallelism } => {
            apply::run(
                global,
                &ui,
                apply::ApplyArgs {
                    target: spec,
                    auto_approve,
                    parallelism,
                    destroy: true,
                    tag_subnets: false,
                    skip_preflight: true,
                },
            )
            .await
        }
        Command::Show { planfile, json, format } => inspect::show(global, &ui, planfile.as_deref(), json, format),
        Command::Graph { spec, format } => inspect::graph(global, &spec, format).await,
        Command::State(command) => state::run(global, command).await,
        Command::Preflight { spec } => preflight::run(global, &ui, &spec).await,
        Command::Unlock { lock_id } => state::unlock(global, &lock_id),
        Command::Policy { spec, split, with_optional } => policy::run(global, &spec, split.as_deref(), with_optional),
        Command::Output { spec, json } => output::run(global, &spec, json),
    }
}
