//! `skyplan preflight SPEC`: before apply, what the spec needs from the
//! account and region against what is there (AZs, key pair, images, Elastic
//! IPs, VPCs, NAT gateways per AZ, instances), as a table; exit 1 when
//! something would make apply fail. Read-only: describes only.
//!
//! `apply` runs the existence checks (AZs, key pairs, images) itself through
//! [`before_apply`], with the same table, unless `--skip-preflight`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::graph::ResourceGraph;

use crate::cli::Global;
use crate::ui::Ui;
use crate::workspace;

pub async fn run(global: &Global, ui: &Ui, spec_path: &Path) -> Result<ExitCode> {
    let spec = AwsSpec::load(spec_path)?;
    let resources = spec.resources.clone();
    let state_path = workspace::state_path(global, Some(spec_path))?;
    let kinds: Vec<&str> = resources.iter().map(|r| r.address.kind.as_str()).collect();
    let providers = workspace::providers(&spec, &state_path, &kinds).await?;
    // Everything validate checks comes first: a broken spec is not "ready".
    ResourceGraph::build(resources.clone(), &providers)?;
    if !kinds.iter().any(|k| k.starts_with("aws_")) {
        println!("{} creates nothing on AWS: nothing to check.", spec_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let passed = check(ui, &spec, &resources, Scope::Full).await?;
    if passed {
        println!("\nReady: apply will find everything it needs.");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::FAILURE)
}

/// Before `apply` changes anything: the existence checks of `spec`. Prints
/// the preflight table and returns an error when one fails.
pub async fn before_apply(ui: &Ui, spec: &AwsSpec) -> Result<()> {
    let resources = &spec.resources;
    if !resources.iter().any(|r| r.address.kind.starts_with("aws_")) {
        return Ok(());
    }
    if check(ui, spec, resources, Scope::Existence).await? {
        return Ok(());
    }
    anyhow::bail!(
        "preflight failed: nothing was changed (`skyplan preflight {}` shows every check; --skip-preflight \
         applies without these checks)",
        spec.path().display()
    )
}

/// Which checks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Everything: existence, capacity, static placement.
    Full,
    /// What apply checks itself: the AZs, key pairs and images exist.
    Existence,
}

/// Run the checks, print the table (and on failure, each problem on
/// stderr); whether every check passed.
#[cfg(feature = "aws")]
async fn check(ui: &Ui, spec: &AwsSpec, resources: &[skyplan_engine::Resource], scope: Scope) -> Result<bool> {
    use skyplan_aws::preflight::Needs;

    let zones = spec.spec.file.placement.as_ref().map(|p| p.azs.clone()).unwrap_or_default();
    let needs = Needs::of(resources, &zones);
    let aws = workspace::connect_aws(spec).await?;
    let mut checks = match scope {
        Scope::Full => aws.preflight(&needs).await?,
        Scope::Existence => aws.existence_checks(&needs).await?,
    };
    if let (Scope::Full, Some(placement)) = (scope, workspace::static_placement(spec)) {
        checks.extend(aws.check_placement(&placement).await?);
    }
    let problems: Vec<&String> = checks.iter().filter_map(|c| c.problem.as_ref()).collect();
    if scope == Scope::Existence && problems.is_empty() {
        // Quiet when apply may go on.
        return Ok(true);
    }

    let rows: Vec<[String; 4]> = checks
        .iter()
        .map(|c| {
            let result = if c.problem.is_none() { "ok" } else { "FAIL" };
            [c.what.clone(), c.need.clone(), c.available.clone(), result.to_string()]
        })
        .collect();
    let header = ["check".to_string(), "need".into(), "available".into(), "result".into()];
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let style = ui.style();
    for (i, row) in std::iter::once(&header).chain(&rows).enumerate() {
        let line =
            format!("{:w0$}  {:w1$}  {:w2$}  ", row[0], row[1], row[2], w0 = widths[0], w1 = widths[1], w2 = widths[2]);
        let result = match (i, row[3].as_str()) {
            (0, r) => style.bold(r),
            (_, "ok") => style.green("ok"),
            (_, r) => style.red(r),
        };
        println!("{line}{result}");
    }
    ui.requests(&skyplan_engine::Providers::new().with(std::sync::Arc::new(aws)));
    if problems.is_empty() {
        return Ok(true);
    }
    let verdict = match scope {
        Scope::Full => "apply would fail",
        Scope::Existence => "apply stopped before any change",
    };
    eprintln!("\n{} check(s) failed; {verdict}:", problems.len());
    for p in problems {
        eprintln!("  - {p}");
    }
    Ok(false)
}

#[cfg(not(feature = "aws"))]
async fn check(_ui: &Ui, _spec: &AwsSpec, _resources: &[skyplan_engine::Resource], _scope: Scope) -> Result<bool> {
    anyhow::bail!("this build has no AWS support (built without the `aws` feature)")
}
