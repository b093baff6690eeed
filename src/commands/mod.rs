//! One module per command: turn flags into options, call the engine, print.

pub mod apply;
pub mod hooks;
pub mod inspect;
pub mod kubeconfig;
pub mod node_config;
pub mod output;
pub mod plan;
pub mod policy;
pub mod preflight;
pub mod profiles;
pub mod state;

use std::process::ExitCode;

use anyhow::Result;

use clap::CommandFactory;

use crate::cli::{Cli, Command, Shell};
use crate::ui::Ui;
use plan::Selection;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    let ui = Ui::new(global);
    crate::workspace::set_rate_limits(&global.rate_limit)?;
    match cli.command {
        Command::Validate { spec } => inspect::validate(global, &ui, &spec).await,
        Command::Plan { spec, out, json, detailed_exitcode, no_refresh, destroy, select } => {
            let selection = Selection::from_flags(&select.target, &select.replace, select.refresh_only)?;
            if selection.refresh_only && (destroy || out.is_some()) {
                anyhow::bail!("--refresh-only plans record drift; it cannot be combined with --destroy or --out");
            }
            let opts =
                plan::PlanOptions { spec, out, json, detailed_exitcode, refresh: !no_refresh, destroy, selection };
            plan::run(global, &ui, opts).await
        }
        Command::Apply { target, auto_approve, parallelism, tag_subnets, spot_wait, skip_preflight, json, select } => {
            crate::workspace::set_spot_wait(spot_wait);
            let selection = Selection::from_flags(&select.target, &select.replace, select.refresh_only)?;
            let args = apply::ApplyArgs {
                target,
                auto_approve,
                parallelism,
                destroy: false,
                tag_subnets,
                skip_preflight,
                json,
                selection,
            };
            apply::run(global, &ui, args).await
        }
        Command::Destroy { spec, auto_approve, parallelism, json, target } => {
            let selection = Selection::from_flags(&target, &[], false)?;
            let args = apply::ApplyArgs {
                target: spec,
                auto_approve,
                parallelism,
                destroy: true,
                tag_subnets: false,
                skip_preflight: true,
                json,
                selection,
            };
            apply::run(global, &ui, args).await
        }
        Command::Show { planfile, json, format } => inspect::show(global, &ui, planfile.as_deref(), json, format),
        Command::Graph { spec, format } => inspect::graph(global, &ui, &spec, format).await,
        Command::State(command) => state::run(global, command).await,
        Command::Import { address, id, spec } => state::import(global, spec.as_deref(), &address, &id).await,
        Command::Preflight { spec } => preflight::run(global, &ui, &spec).await,
        Command::Unlock { lock_id } => state::unlock(global, &lock_id),
        Command::Policy { spec, split, with_optional } => policy::run(global, &spec, split.as_deref(), with_optional),
        Command::Output { spec, json } => output::run(global, &spec, json),
        Command::Kubeconfig { spec, out } => kubeconfig::run(global, &spec, out.as_deref()).await,
        Command::NodeConfig { spec, address } => node_config::run(global, &spec, &address),
        Command::Completion { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut Cli::command(), "skyplan", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
