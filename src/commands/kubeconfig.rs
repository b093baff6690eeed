//! `skyplan kubeconfig SPEC [--out FILE]`: an administrator's kubeconfig
//! for the applied cluster. The cluster CA comes from the cluster's `pki`
//! secret (GetSecretValue, never written anywhere), which signs a fresh
//! admin client certificate; the server is the API load balancer's DNS name
//! from the state and `api_server.port`. Works on any machine with the
//! state and the operator's credentials (docs/bootstrap.md, "Where the CA
//! key lives"). The kubeconfig holds a private key: `--out` writes it with
//! mode 0600.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use skyplan_aws_blueprint::bootstrap::{admin_kubeconfig, KubeconfigTarget};
use skyplan_aws_blueprint::AwsSpec;

use crate::cli::Global;
use crate::workspace;

use workspace::{API_LOAD_BALANCER as ELB_ADDRESS, PKI_SECRET as PKI_ADDRESS};

pub async fn run(global: &Global, spec_path: &Path, out: Option<&Path>) -> Result<ExitCode> {
    let spec = AwsSpec::load(spec_path)?;
    let Some(facts) =
        skyplan_aws_blueprint::cluster_facts(&spec.spec.file).map_err(|e| spec.spec.source.diagnostics(&e))?
    else {
        bail!("{} has no [cluster]: there is no cluster to make a kubeconfig for", spec_path.display());
    };
    let state_path = workspace::state_path(global, Some(spec_path))?;
    let backend = workspace::backend(&state_path)?;
    let state = workspace::load_state(backend.as_ref())?;
    let attr = |address: &str, name: &str| workspace::state_text(&state, address, name);
    let (Some(dns), Some(secret)) = (attr(ELB_ADDRESS, "dns_name"), attr(PKI_ADDRESS, "id")) else {
        bail!(
            "cluster {} is not applied: the state ({}) has no {ELB_ADDRESS} and {PKI_ADDRESS}; run `skyplan apply {}` first",
            facts.name,
            state_path.display(),
            spec_path.display()
        );
    };
    let pki = cluster_pki(&spec, &secret).await?;
    let target =
        KubeconfigTarget { cluster_name: facts.name.clone(), server: format!("https://{dns}:{}", facts.api_port) };
    let text = admin_kubeconfig(&pki.cluster_ca, &target, std::time::SystemTime::now())
        .map_err(|e| anyhow::anyhow!("could not sign an admin certificate with the cluster CA: {e}"))?;
    drop(pki);
    match out {
        Some(path) => write_private(path, &text)?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "aws")]
async fn cluster_pki(spec: &AwsSpec, secret: &str) -> Result<skyplan_aws_blueprint::bootstrap::ClusterPki> {
    let aws = workspace::connect_aws(spec).await?;
    aws.cluster_pki(secret).await.map_err(|e| anyhow::anyhow!("could not read the cluster CA: {e}"))
}

#[cfg(not(feature = "aws"))]
async fn cluster_pki(_spec: &AwsSpec, _secret: &str) -> Result<skyplan_aws_blueprint::bootstrap::ClusterPki> {
    bail!("this skyplan was built without the AWS provider: it cannot read the cluster CA")
}

/// Write `text` to `path` readable by its owner only (0600), also when
/// the file was there before with wider permissions.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("could not make {} private (mode 0600)", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}
