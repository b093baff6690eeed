//! `skyplan preflight SPEC`: before apply, what the spec needs from the
//! account and region against what is there (AZs, key pair, images, Elastic
//! IPs, VPCs, NAT gateways per AZ, instances), as a table; exit 1 when
//! something would make apply fail. Read-only: describes only.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use skyplan_engine::graph::ResourceGraph;
use skyplan_engine::Spec;

use crate::cli::Global;
use crate::ui::Ui;
use crate::workspace;

pub async fn run(global: &Global, ui: &Ui, spec_path: &Path) -> Result<ExitCode> {
    let spec = Spec::load(spec_path)?;
    let resources = workspace::resources(&spec)?;
    let state_path = workspace::state_path(global, Some(spec_path))?;
    let kinds: Vec<&str> = resources.iter().map(|r| r.address.kind.as_str()).collect();
    let providers = workspace::providers(&spec, &state_path, &kinds).await?;
    // Everything validate checks comes first: a broken spec is not "ready".
    ResourceGraph::build(resources.clone(), &providers)?;
    if !kinds.iter().any(|k| k.starts_with("aws_")) {
        println!("{} creates nothing on AWS: nothing to check.", spec_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    check(ui, &spec, &resources).await
}

#[cfg(feature = "aws")]
async fn check(ui: &Ui, spec: &Spec, resources: &[skyplan_engine::Resource]) -> Result<ExitCode> {
    use skyplan_aws::preflight::Needs;

    let zones = spec.file.placement.as_ref().map(|p| p.azs.clone()).unwrap_or_default();
    let needs = Needs::of(resources, &zones);
    let aws = workspace::connect_aws(spec).await?;
    let mut checks = aws.preflight(&needs).await?;
    if let Some(placement) = workspace::static_placement(spec) {
        checks.extend(aws.check_placement(&placement).await?);
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
    let problems: Vec<&String> = checks.iter().filter_map(|c| c.problem.as_ref()).collect();
    ui.requests(&skyplan_engine::Providers::new().with(std::sync::Arc::new(aws)));
    if problems.is_empty() {
        println!("\nReady: apply will find everything it needs.");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("\n{} check(s) failed; apply would fail:", problems.len());
    for p in problems {
        eprintln!("  - {p}");
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(not(feature = "aws"))]
async fn check(_ui: &Ui, _spec: &Spec, _resources: &[skyplan_engine::Resource]) -> Result<ExitCode> {
    anyhow::bail!("this build has no AWS support (built without the `aws` feature)")
}
