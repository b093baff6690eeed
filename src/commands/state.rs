//! `skyplan state list|show|rm` and `skyplan unlock`.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::{Address, ReadRequest, Source};
use skyplan_state::{Mutation, ResourceState, Writer};

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
        StateCommand::Mv { from, to } => {
            let (from_a, to_a) = (parse_address(&from)?, parse_address(&to)?);
            if from_a.kind != to_a.kind {
                bail!("cannot move {from} to {to}: an address keeps its type ({} is not {})", from_a.kind, to_a.kind);
            }
            let _lock = Lock::acquire(&backend, "state mv", global.lock_timeout)?;
            let state = workspace::load_state(backend.as_ref())?;
            let Some(record) = state.resources.get(&from).cloned() else {
                let hint = skyplan_engine::diagnostic::did_you_mean(&from, state.resources.keys().map(String::as_str))
                    .map(|m| format!(" (did you mean {m}?)"))
                    .unwrap_or_default();
                bail!("{from} is not in the state {}{hint}; nothing was changed", state_path.display());
            };
            if state.resources.contains_key(&to) {
                bail!("{to} is already in the state; nothing was changed (remove it first, or pick another address)");
            }
            if state.pending.contains_key(&from) || state.deposed.contains_key(&from) {
                bail!("{from} has an unfinished operation in the state; run plan or apply first, then move it");
            }
            // What depended on it now depends on the new address, so deletes
            // still run in the right order.
            let mut mutations = vec![Mutation::Remove(from.clone()), Mutation::Upsert(to.clone(), record)];
            for (address, r) in &state.resources {
                if r.dependencies.contains(&from) {
                    let mut r = r.clone();
                    for d in &mut r.dependencies {
                        if *d == from {
                            d.clone_from(&to);
                        }
                    }
                    mutations.push(Mutation::Upsert(address.clone(), r));
                }
            }
            let writer = Writer::start(backend.clone(), state);
            writer.commit(mutations).await?;
            writer.finish().await?;
            println!("Moved {from} to {to}. Nothing was changed in the cloud.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_address(text: &str) -> Result<Address> {
    text.parse().map_err(|e| anyhow!("{text}: {e}; write an address as TYPE.NAME or TYPE.NAME[KEY]"))
}

/// `skyplan import ADDRESS ID`: read the resource through its provider and
/// record it at ADDRESS. Nothing is written to the cloud; the next plan
/// shows what differs between it and the spec.
pub async fn import(global: &Global, spec_path: Option<&Path>, address: &str, id: &str) -> Result<ExitCode> {
    let parsed = parse_address(address)?;
    let spec = match spec_path {
        Some(path) => AwsSpec::load(path)?,
        // No spec: AWS settings from the environment, as the SDK reads them.
        None => AwsSpec::parse(Source { path: PathBuf::from("(no spec)"), text: String::new() })?,
    };
    // What the spec says of it: the read reports these attributes (a
    // provider reports the ones it was asked about), so the next plan can
    // compare them.
    let mut prior = skyplan_engine::Attrs::new();
    if spec_path.is_some() {
        let resources = &spec.resources;
        if let Some(r) = resources.iter().find(|r| r.address == parsed) {
            prior = r.attrs.clone();
        } else {
            let names: Vec<String> = resources.iter().map(|r| r.address.to_string()).collect();
            let hint = skyplan_engine::diagnostic::did_you_mean(address, names.iter().map(String::as_str))
                .map(|m| format!(" (did you mean {m}?)"))
                .unwrap_or_default();
            bail!("{address} is not in {}{hint}: declare it in the spec first, then import it", spec.path().display());
        }
    }
    let state_path = workspace::state_path(global, spec_path)?;
    let backend = workspace::backend(&state_path)?;
    let _lock = Lock::acquire(&backend, "import", global.lock_timeout)?;
    let state = workspace::load_state(backend.as_ref())?;
    if let Some(existing) = state.resources.get(address) {
        bail!(
            "{address} is already in the state (id {}); nothing was imported. `skyplan state rm {address}` first to adopt another",
            existing.id
        );
    }
    let providers = workspace::providers(&spec, &state_path, &[parsed.kind.as_str()]).await?;
    let Some(provider) = providers.for_kind(&parsed.kind) else {
        bail!("no provider serves resource type `{}`", parsed.kind);
    };
    prior.insert("id".into(), id.into());
    let request = ReadRequest { address: parsed.clone(), kind: parsed.kind.clone(), prior };
    let read = provider.read(std::slice::from_ref(&request)).await.map_err(|e| anyhow!("{address}: {e}"))?;
    let Some(mut attributes) = read.into_iter().next().flatten() else {
        bail!("{address}: {} has no {} with id {id}; nothing was imported", provider.name(), parsed.kind);
    };
    skyplan_engine::Redactor::new(spec.sensitive.clone()).attrs(&mut attributes);
    // Recorded as if applied with what the cloud holds for the attributes
    // the spec names: what refresh watches for drift.
    let inputs = attributes
        .iter()
        .filter(|(k, _)| *k != "id" && request.prior.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let record = ResourceState {
        kind: parsed.kind.clone(),
        provider: provider.name().to_string(),
        id: id.to_string(),
        inputs,
        attributes,
        dependencies: Vec::new(),
    };
    let writer = Writer::start(backend.clone(), state);
    writer.commit(vec![Mutation::Upsert(address.to_string(), record)]).await?;
    writer.finish().await?;
    println!(
        "Imported {address} ({id}). Nothing was changed in the cloud; run plan to see how it differs from the spec."
    );
    for note in provider.notes() {
        eprintln!("note: {}: {note}", provider.name());
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
