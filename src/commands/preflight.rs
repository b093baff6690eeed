//! `skyplan preflight SPEC`: before apply, what the spec needs from the
//! account and region against what is there (AZs, key pair, images, Elastic
//! IPs, VPCs, NAT gateways per AZ, instances), as a table; exit 1 when
//! something would make apply fail. Read-only: describes only.
//!
//! Permissions too: for every action `skyplan policy SPEC` lists, whether
//! this identity may call it, asked with EC2's `DryRun` (nothing changes);
//! the actions that cannot be asked that way are listed as not checked.
//! Each denied action is named with the policy statement that grants it.
//!
//! `apply` runs the existence checks (AZs, key pairs, images) and the
//! permission dry runs itself through [`before_apply`], with the same table,
//! unless `--skip-preflight`: a denied action stops it before any change.

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
    if !kinds.iter().any(|k| skyplan_aws_blueprint::is_aws_type(k)) {
        println!("{} creates nothing on AWS: nothing to check.", spec_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    // Room is needed only for what apply would create: on a cluster that
    // exists, its own addresses, VPC and instances are not counted against it.
    let recorded = workspace::load_state(&*workspace::backend(&state_path)?)?;
    let to_create: Vec<skyplan_engine::Resource> =
        resources.iter().filter(|r| !recorded.resources.contains_key(&r.address.to_string())).cloned().collect();
    let passed = check(ui, &spec, &resources, &to_create, Scope::Full).await?;
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
    if !resources.iter().any(|r| skyplan_aws_blueprint::is_aws_type(&r.address.kind)) {
        return Ok(());
    }
    if check(ui, spec, resources, resources, Scope::Existence).await? {
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
async fn check(
    ui: &Ui,
    spec: &AwsSpec,
    resources: &[skyplan_engine::Resource],
    to_create: &[skyplan_engine::Resource],
    scope: Scope,
) -> Result<bool> {
    use skyplan_aws::preflight::Needs;

    let zones = spec.spec.file.placement.as_ref().map(|p| p.azs.clone()).unwrap_or_default();
    let aws = workspace::connect_aws(spec).await?;
    let mut checks = match scope {
        Scope::Full => {
            // What must exist: everything the spec names; what needs room:
            // what apply creates.
            let mut checks = aws.existence_checks(&Needs::of(resources, &zones)).await?;
            checks.extend(aws.capacity_checks(&Needs::of(to_create, &zones)).await?);
            checks
        }
        Scope::Existence => aws.existence_checks(&Needs::of(resources, &zones)).await?,
    };
    checks.extend(crate::commands::profiles::checks(spec, &aws).await?);
    if scope == Scope::Full {
        // `apply` checks names in its plan (`names::check`), for what it creates.
        checks.extend(aws.name_checks(resources).await?);
    }
    if let (Scope::Full, Some(placement)) = (scope, workspace::static_placement(spec)) {
        checks.extend(aws.check_placement(&placement).await?);
    }
    let unchecked = permission_checks(spec, resources, &aws, &mut checks).await?;
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
    if !unchecked.is_empty() {
        println!(
            "\nNot checked: {} action(s) have no dry run (only EC2 answers a DryRun request; for the EC2 ones \
             listed, AWS would judge the request's resources before its permission): {}",
            unchecked.len(),
            unchecked.join(", ")
        );
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

/// One row per action the spec's policy lists that a dry run could judge
/// (a denied one is a problem naming the statement to add); the others'
/// names are returned, for the "not checked" line.
#[cfg(feature = "aws")]
async fn permission_checks(
    spec: &AwsSpec,
    resources: &[skyplan_engine::Resource],
    aws: &skyplan_aws::AwsProvider,
    checks: &mut Vec<skyplan_aws::preflight::Check>,
) -> Result<Vec<String>> {
    use skyplan_aws::permissions::Verdict;
    use skyplan_aws_blueprint::policy;

    let doc = policy::policy_for(&spec.spec.file, resources).map_err(|errs| spec.spec.source.diagnostics(&errs))?;
    let actions = doc.actions().into_iter().map(str::to_string).collect();
    let mut unchecked = Vec::new();
    for p in aws.check_permissions(&actions).await {
        let (available, problem) = match &p.verdict {
            Verdict::Allowed => ("allowed", None),
            Verdict::Denied(_) => {
                // The statement of skyplan's policy that grants it, with only this action.
                let statement = doc.statements.iter().find(|s| s.action.contains(&p.action)).map(|s| {
                    let mut one = s.clone();
                    one.action = vec![p.action.clone()];
                    serde_json::to_string(&one).unwrap_or_default()
                });
                let add = statement
                    .unwrap_or_else(|| format!(r#"{{"Effect":"Allow","Action":"{}","Resource":"*"}}"#, p.action));
                let problem = format!(
                    "{} is denied to this identity; add this statement to its policy (`skyplan policy {}` prints the whole policy):\n      {add}",
                    p.action,
                    spec.path().display()
                );
                ("DENIED", Some(problem))
            }
            Verdict::Unchecked(_) => {
                unchecked.push(p.action.clone());
                continue;
            }
        };
        checks.push(skyplan_aws::preflight::Check {
            what: format!("permission {}", p.action),
            need: "allowed".into(),
            available: available.into(),
            problem,
        });
    }
    Ok(unchecked)
}

#[cfg(not(feature = "aws"))]
async fn check(
    _ui: &Ui,
    _spec: &AwsSpec,
    _resources: &[skyplan_engine::Resource],
    _to_create: &[skyplan_engine::Resource],
    _scope: Scope,
) -> Result<bool> {
    anyhow::bail!("this build has no AWS support (built without the `aws` feature)")
}
