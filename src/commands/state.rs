//! `skyplan state list|show|rm` and `skyplan unlock`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use skyplan_engine::Address;
use skyplan_state::{Mutation, Writer};

use super::inspect::print_attributes;
use crate::cli::{Global, StateCommand};
use crate::workspace::{self, Lock};

pub async fn run(global: &Global, command: StateCommand) -> Result<ExitCode> {
    let state_path = workspace::state_path(global, None)?;
    let backend = workspace::backend(&state_path)?;
    match command {
        StateCommand::List => {
            let state = workspace::load_state(backend.as_ref())?;
            let mut addresses: Vec<Address> = state.resources.keys().filter_map(|a| a.parse().ok()).collect();
            addresses.sort();
            for a in addresses {
                println!("{a}");
            }
        }
        StateCommand::Show { address } => {
            let state = workspace::load_state(backend.as_ref())?;
            let Some(r) = state.resources.get(&address) else {
                bail!("{address} is not in the state {}; `skyplan state list` shows what is", state_path.display());
            };
            println!("# {address}:");
            print_attributes(&r.attributes);
        }
        StateCommand::Rm { address } => {
            let _lock = Lock::acquire(&backend, "state rm", global.lock_timeout)?;
            let state = workspace::load_state(backend.as_ref())?;
            if !state.resources.contains_key(&address) {
                bail!("{address} is not in the state {}; nothing was changed", state_path.display());
            }
            let writer = Writer::start(backend.clone(), state);
            writer.commit(vec![Mutation::Remove(address.clone())]).await?;
            writer.finish().await?;
            println!("Removed {address} from the state. It still exists in the cloud; skyplan no longer manages it.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn unlock(global: &Global, lock_id: &str) -> Result<ExitCode> {
    let state_path = workspace::state_path(global, None)?;
    let backend = workspace::backend(&state_path)?;
    backend.unlock(lock_id)?;
    println!("Released lock {lock_id} on {}.", backend.describe());
    Ok(ExitCode::SUCCESS)
}
