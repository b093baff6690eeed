//! `skyplan policy`: the IAM policy a spec's plan, apply and destroy need,
//! printed as one document, inside the seed's policies; `--with-optional`
//! adds the optional features' statements; with `--split DIR`, also
//! written as managed policies that fit AWS's size limit. Parses and expands the spec, nothing
//! more: no provider, no credentials, no cloud call. What goes into the
//! policy is `skyplan_aws_blueprint::policy`'s decision.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use skyplan_aws_blueprint::policy::{self, PolicyDocument, MANAGED_POLICY_LIMIT};
use skyplan_aws_blueprint::AwsSpec;

use crate::cli::Global;

/// The names `--split` writes: skyplan-policy-1.json, -2.json, ...
const SPLIT_PREFIX: &str = "skyplan-policy-";

pub fn run(global: &Global, spec_path: &Path, split: Option<&Path>, with_optional: bool) -> Result<ExitCode> {
    let spec = AwsSpec::load(spec_path)?;
    let mut doc =
        policy::policy_for(&spec.spec.file, &spec.resources).map_err(|errs| spec.spec.source.diagnostics(&errs))?;
    if with_optional {
        doc.statements.extend(policy::optional_statements(&spec.resources));
    }
    if let Some(url) = global.state.as_deref().filter(|s| s.starts_with("s3://")) {
        // The state lives in S3: the runs need that bucket too.
        let (bucket, key) = url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .with_context(|| format!("--state {url}: expected s3://BUCKET/KEY"))?;
        doc.statements.extend(policy::state_in_s3(bucket, key));
    }
    if doc.statements.is_empty() {
        eprintln!("note: {} has no AWS resources; it needs no AWS permissions.", spec_path.display());
    }
    // Files first: a failed write leaves nothing on stdout to mistake for success.
    if let Some(dir) = split {
        write_split(dir, &policy::split(&doc, MANAGED_POLICY_LIMIT))?;
    }
    let text = serde_json::to_string_pretty(&doc)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        // `skyplan policy SPEC | head` stopped reading: not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("cannot write the policy to stdout"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn write_split(dir: &Path, parts: &[PolicyDocument]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let path = dir.join(format!("{SPLIT_PREFIX}{}.json", i + 1));
        let text = serde_json::to_string_pretty(part)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(format!("{} ({} of {MANAGED_POLICY_LIMIT} characters)", path.display(), part.size()));
    }
    // Parts left by an earlier, larger policy would grant what this one does not.
    let stale = stale_parts(dir, parts.len())?;
    for path in &stale {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    match written.len() {
        0 => eprintln!("Wrote no managed policy to {}: there is nothing to allow.", dir.display()),
        1 => eprintln!("Wrote 1 managed policy: {}", written[0]),
        n => eprintln!("Wrote {n} managed policies:\n  {}", written.join("\n  ")),
    }
    for path in &stale {
        eprintln!("Removed {}, left by an earlier run.", path.display());
    }
    Ok(())
}

/// `skyplan-policy-N.json` files in `dir` with N beyond `count`.
fn stale_parts(dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(SPLIT_PREFIX))
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<usize>().ok());
        if number.is_some_and(|n| n > count) {
            stale.push(path);
        }
    }
    stale.sort();
    Ok(stale)
}
