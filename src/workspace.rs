//! What every command needs: the spec expanded into desired resources, the
//! state backend and its lock, and the providers for the resource types in
//! play. Commands in `commands/` call these and print; they decide nothing
//! about resources themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "aws")]
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use skyplan_engine::graph::ResourceGraph;

use skyplan_aws_blueprint::AwsSpec;
use skyplan_engine::ops::{Hooks, OpsError, Workspace};
use skyplan_engine::Providers;
use skyplan_state::{Backend, LocalBackend, LockInfo, State, StateError};

use crate::cli::Global;

/// Parse, expand and build the graph: every check that needs no cloud call
/// (no credentials are looked up either).
pub fn desired(spec_path: &Path, state_path: &Path, style: skyplan_engine::render::Style) -> Result<ResourceGraph> {
    let mut spec = AwsSpec::load(spec_path)?;
    crate::diagnostics::warn_about(&spec, style);
    let resources = std::mem::take(&mut spec.resources);
    let sim = skyplan_sim::SimProvider::open(&sim_cloud_path(state_path))?;
    let mut providers = Providers::new().with(Arc::new(sim));
    if resources.iter().any(|r| skyplan_aws_blueprint::is_aws_type(&r.address.kind)) {
        providers = with_aws_offline(providers, &spec)?;
    }
    Ok(ResourceGraph::build(resources, &providers).map_err(|d| spec.spec.source.place(d))?)
}

/// Where the state is: `--state`, else `<spec stem>.state.json` beside the
/// spec, else the only `*.state.json` in the current directory.
pub fn state_path(global: &Global, spec: Option<&Path>) -> Result<PathBuf> {
    if let Some(s) = &global.state {
        return Ok(PathBuf::from(s));
    }
    if let Some(spec) = spec {
        let stem = spec.file_stem().ok_or_else(|| anyhow!("{} has no file name", spec.display()))?;
        let mut name = stem.to_os_string();
        name.push(".state.json");
        return Ok(spec.with_file_name(name));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(".")
        .context("cannot list the current directory")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".state.json")))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("no *.state.json in the current directory; name one with --state PATH"),
        _ => {
            bail!("several *.state.json files in the current directory; name one with --state PATH")
        }
    }
}

/// The backend for a state location: `s3://BUCKET/KEY` or a file path.
pub fn backend(location: &Path) -> Result<Arc<dyn Backend>> {
    match location.to_str().filter(|s| s.starts_with("s3://")) {
        Some(url) => s3_backend(url),
        None => Ok(Arc::new(LocalBackend::new(location.to_path_buf()))),
    }
}

#[cfg(feature = "s3")]
fn s3_backend(url: &str) -> Result<Arc<dyn Backend>> {
    let backend = skyplan_state_s3::S3Backend::new(url, None).map_err(|e| anyhow!("--state {url}: {e}"))?;
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "s3"))]
fn s3_backend(url: &str) -> Result<Arc<dyn Backend>> {
    bail!("--state {url}: this build has no AWS support (built without the `aws` feature)")
}

/// Load the state, or start a new one when there is none yet.
pub fn load_state(backend: &dyn Backend) -> Result<State> {
    Ok(backend.load()?.unwrap_or_else(State::new))
}

/// The applied cluster's resources the cluster commands (`output`,
/// `kubeconfig`, `node-config`) read from the state.
pub const API_LOAD_BALANCER: &str = "aws_elb.apiserver";
pub const PKI_SECRET: &str = "aws_secretsmanager_secret.pki";

/// The text attribute `name` of the resource at `address` in the state, if
/// it has been applied.
pub fn state_text(state: &State, address: &str, name: &str) -> Option<String> {
    state.resources.get(address)?.attributes.get(name)?.as_str().map(str::to_string)
}

/// The state lock for one run; released when dropped.
pub struct Lock {
    backend: Arc<dyn Backend>,
    id: String,
}

impl Lock {
    pub fn acquire(backend: &Arc<dyn Backend>, operation: &str, timeout: Duration) -> Result<Lock> {
        let info = LockInfo::new(operation);
        match backend.lock(&info, timeout) {
            Ok(()) => {}
            Err(StateError::Locked(held)) if backend.lock_is_local() && held_by_dead_local_process(&held, &info) => {
                // Its holder was killed on this machine: the lock protects
                // nothing. Release exactly that lock (by its id) and retry.
                eprintln!(
                    "note: releasing the lock {} left by {} (pid {}, {}), which is no longer running",
                    held.id, held.holder, held.pid, held.operation
                );
                backend.unlock(&held.id)?;
                backend.lock(&info, timeout)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Lock { backend: backend.clone(), id: info.id })
    }
}

/// A lock taken on this host by a process that no longer exists. Only asked
/// of locks on local disk; locks from other hosts, and every lock in a
/// shared store, are released only by `skyplan unlock ID`.
fn held_by_dead_local_process(held: &LockInfo, mine: &LockInfo) -> bool {
    held.holder == mine.holder && held.pid != mine.pid && !process_exists(held.pid)
}

/// Whether a process of this id exists, by sending it signal 0 (no signal
/// is delivered; only existence and permission are checked). Works where
/// there is no /proc (macOS). EPERM means it exists under another user.
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only asks the kernel whether the process
    // exists; it has no effect on it and no memory preconditions.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Err(e) = self.backend.unlock(&self.id) {
            eprintln!("warning: could not release the state lock {}: {e}", self.id);
        }
    }
}

/// The simulated cloud's file: `SKYPLAN_SIM_CLOUD`, else the state path
/// with `.sim.json` appended (for state in S3, the key's file name in the
/// current directory).
fn sim_cloud_path(state_path: &Path) -> PathBuf {
    match std::env::var_os("SKYPLAN_SIM_CLOUD") {
        Some(p) => PathBuf::from(p),
        None if state_path.starts_with("s3:") => {
            let name = state_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            PathBuf::from(format!("{name}.sim.json"))
        }
        None => {
            let mut s = state_path.as_os_str().to_os_string();
            s.push(".sim.json");
            PathBuf::from(s)
        }
    }
}

/// The `--rate-limit` values of this run, checked once before anything
/// else, for every AWS provider the run connects.
#[cfg(feature = "aws")]
static RATE_LIMITS: OnceLock<skyplan_aws::RateLimits> = OnceLock::new();

/// Check the `--rate-limit SERVICE=RPS[,BURST]` flags and keep them for
/// [`connect_aws`]: a bad value stops the run before any cloud call.
#[cfg(feature = "aws")]
pub fn set_rate_limits(flags: &[String]) -> Result<()> {
    let mut limits = skyplan_aws::RateLimits::default();
    for flag in flags {
        let (service, limit) = skyplan_aws::RateLimits::parse_flag(flag).map_err(|e| anyhow!("--rate-limit {e}"))?;
        limits.set(service, limit);
    }
    let _ = RATE_LIMITS.set(limits);
    Ok(())
}

#[cfg(not(feature = "aws"))]
pub fn set_rate_limits(flags: &[String]) -> Result<()> {
    if let Some(flag) = flags.first() {
        bail!("--rate-limit {flag}: this build has no AWS support (built without the `aws` feature)");
    }
    Ok(())
}

/// The spec as `plan` and `apply` use it: parsed and checked offline first
/// (a broken spec makes no cloud call), then, when a spot pool gives no
/// `on_demand_price`, parsed again with the on-demand prices the AWS Price
/// List API gave for this run ([`look_up_prices`]). A price neither the
/// API nor the dated table has is then an error at the pool's key.
///
/// A cluster's other charges (NAT gateways, the load balancer, public IPv4
/// addresses, volumes) are asked too, for the cost estimate, unless the API
/// already could not be asked; without an answer the estimate takes the
/// dated table's, and its sources say which came from where.
pub async fn load_priced(spec_path: &Path, ui: &crate::ui::Ui) -> Result<AwsSpec> {
    let mut spec = AwsSpec::load(spec_path)?;
    let needed = skyplan_aws_blueprint::prices::needed(&spec.spec.file);
    let Some(region) = spec.region.clone() else {
        return Ok(spec);
    };
    let (mut looked_up, asked) = if needed.is_empty() {
        (skyplan_aws_blueprint::prices::LookedUp { online: true, ..Default::default() }, true)
    } else {
        look_up_prices(&spec, &needed, ui).await?
    };
    if asked {
        look_up_service_prices(&spec, &region, &mut looked_up).await?;
    }
    if needed.is_empty() {
        spec.prices.services = looked_up.services;
        spec.prices.as_of = skyplan_aws_blueprint::prices::today();
        return Ok(spec);
    }
    Ok(AwsSpec::parse_with(spec.spec.source.clone(), &looked_up)?)
}

/// The cost estimate's other charges in `region`, from the Price List API,
/// into `looked_up.services`; none after the first that could not be asked
/// (the table's then, silently: the plan's cost sources name it).
#[cfg(feature = "aws")]
async fn look_up_service_prices(
    spec: &AwsSpec,
    region: &str,
    looked_up: &mut skyplan_aws_blueprint::prices::LookedUp,
) -> Result<()> {
    use skyplan_aws_blueprint::cost::ServiceItem;
    let aws = connect_aws(spec).await?;
    for item in ServiceItem::ALL {
        match aws.service_price(region, item).await {
            Ok(Some(usd)) => {
                looked_up.services.insert((region.to_string(), item), usd);
            }
            Ok(None) => {}
            // Denied or unreachable: the rest would be too.
            Err(_) => break,
        }
    }
    if looked_up.as_of.is_empty() {
        looked_up.as_of = skyplan_aws_blueprint::prices::today();
    }
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn look_up_service_prices(
    _spec: &AwsSpec,
    _region: &str,
    _looked_up: &mut skyplan_aws_blueprint::prices::LookedUp,
) -> Result<()> {
    Ok(())
}

/// Ask the Price List API (through the AWS provider) for each (region,
/// instance type) of `needed`. When it cannot be asked (denied,
/// unreachable) or has no price, say so once, naming the table and its date
/// the prices come from instead, and ask no more after a failure: the
/// validation falls back on the table by itself. Also says whether the API
/// could be asked (false after a denial or an unreachable endpoint).
#[cfg(feature = "aws")]
async fn look_up_prices(
    spec: &AwsSpec,
    needed: &[(String, String)],
    ui: &crate::ui::Ui,
) -> Result<(skyplan_aws_blueprint::prices::LookedUp, bool)> {
    use skyplan_aws::pricing::Source;
    use skyplan_aws_blueprint::prices;

    let mut looked_up = prices::LookedUp { online: true, as_of: prices::today(), ..Default::default() };
    let aws = connect_aws(spec).await?;
    let table = prices::table();
    for (i, (region, instance_type)) in needed.iter().enumerate() {
        let why = match aws.on_demand_price(region, instance_type).await {
            Ok(price) => match price.source {
                Source::PriceList => {
                    looked_up.prices.insert((region.clone(), instance_type.clone()), price.usd_per_hour);
                    continue;
                }
                Source::Table { why, .. } => why,
            },
            // Neither has it: the validation's error at the pool follows.
            Err(why) => why,
        };
        if !why.starts_with(skyplan_aws::pricing::NOT_ASKED) {
            // The API has no such product: this type alone falls back.
            ui.note(&match table.on_demand(region, instance_type) {
                Some(_) => format!(
                    "{why}; its on-demand price comes from skyplan's price table as of {}",
                    table.as_of_for(region)
                ),
                None => why,
            });
            continue;
        }
        // Denied or unreachable: no use asking again; one note for every
        // price still to find (those the table lacks get the validation's
        // error at their pool).
        let from_table: Vec<&str> =
            needed[i..].iter().filter(|(r, t)| table.on_demand(r, t).is_some()).map(|(_, t)| t.as_str()).collect();
        ui.note(&if from_table.is_empty() {
            why
        } else {
            format!(
                "{why}; the on-demand prices of {} in {region} come from skyplan's price table as of {}",
                from_table.join(", "),
                table.as_of_for(region)
            )
        });
        return Ok((looked_up, false));
    }
    Ok((looked_up, true))
}

#[cfg(not(feature = "aws"))]
async fn look_up_prices(
    _spec: &AwsSpec,
    _needed: &[(String, String)],
    _ui: &crate::ui::Ui,
) -> Result<(skyplan_aws_blueprint::prices::LookedUp, bool)> {
    Ok((skyplan_aws_blueprint::prices::LookedUp { online: true, ..Default::default() }, false))
}

/// Providers for the given resource types: the simulated cloud always, AWS
/// when an AWS type is in play (desired or in the state).
pub async fn providers(spec: &AwsSpec, state_path: &Path, kinds: &[&str]) -> Result<Providers> {
    let sim = skyplan_sim::SimProvider::open(&sim_cloud_path(state_path))?;
    let providers = Providers::new().with(Arc::new(sim));
    if kinds.iter().any(|k| skyplan_aws_blueprint::is_aws_type(k)) {
        return with_aws(providers, spec).await;
    }
    Ok(providers)
}

#[cfg(feature = "aws")]
async fn with_aws(providers: Providers, spec: &AwsSpec) -> Result<Providers> {
    Ok(providers.with(Arc::new(connect_aws(spec).await?)))
}

/// `apply --spot-wait`: set once per process, before the providers are
/// built (the binary runs one command per process). Unset, the AWS
/// provider's default bound applies.
static SPOT_WAIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

pub fn set_spot_wait(bound: Duration) {
    // Set once, by the one command this process runs.
    let _ = SPOT_WAIT.set(bound);
}

/// A spot pool for `plan`: its max price, where its on-demand price came
/// from, and the current spot price in each of its AZs when read.
pub struct SpotStatus {
    pub pool: skyplan_aws_blueprint::SpotPool,
    pub prices: SpotPrices,
}

pub enum SpotPrices {
    /// `--no-refresh`, or a build without AWS: the cloud was not asked.
    NotRead,
    /// AWS could not be asked (no network, an error): why.
    Failed(String),
    /// AWS denied the optional `ec2:DescribeSpotPriceHistory`: skipped,
    /// said once for all pools (`skyplan_aws::spot::SKIPPED`).
    Skipped,
    Read(Vec<AzSpot>),
}

/// The spot price in one AZ against the pool's max price.
pub struct AzSpot {
    pub az: String,
    /// USD per hour as AWS writes it; `None` when AWS has none there.
    pub price: Option<String>,
    /// The price for people (`$0.0712`).
    pub shown: String,
    pub in_range: bool,
}

/// The spot pools of the spec, with their current spot prices when
/// `read_prices` (DescribeSpotPriceHistory through the AWS provider). A
/// failed read is reported in the result, not as an error: the plan stands
/// without it.
pub async fn spot_status(spec: &AwsSpec, read_prices: bool) -> Result<Vec<SpotStatus>> {
    let pools = spec.spot_pools.clone();
    if pools.is_empty() {
        return Ok(Vec::new());
    }
    let prices = if read_prices { read_spot_prices(spec, &pools).await } else { Vec::new() };
    let mut prices = prices.into_iter();
    Ok(pools
        .into_iter()
        .map(|pool| SpotStatus { pool, prices: prices.next().unwrap_or(SpotPrices::NotRead) })
        .collect())
}

#[cfg(feature = "aws")]
async fn read_spot_prices(spec: &AwsSpec, pools: &[skyplan_aws_blueprint::SpotPool]) -> Vec<SpotPrices> {
    let aws = match connect_aws(spec).await {
        Ok(aws) => aws,
        Err(e) => return pools.iter().map(|_| SpotPrices::Failed(e.to_string())).collect(),
    };
    let mut out = Vec::new();
    for pool in pools {
        out.push(match aws.spot_prices(&pool.instance_type, &pool.azs).await {
            Ok(None) => SpotPrices::Skipped,
            Ok(Some(prices)) => SpotPrices::Read(
                prices
                    .into_iter()
                    .map(|p| AzSpot {
                        in_range: p.within(&pool.max_price),
                        shown: p.price.as_deref().map(skyplan_aws::spot::usd).unwrap_or_default(),
                        price: p.price,
                        az: p.az,
                    })
                    .collect(),
            ),
            Err(e) => SpotPrices::Failed(e.message),
        });
    }
    out
}

#[cfg(not(feature = "aws"))]
async fn read_spot_prices(_spec: &AwsSpec, _pools: &[skyplan_aws_blueprint::SpotPool]) -> Vec<SpotPrices> {
    Vec::new()
}

#[cfg(feature = "aws")]
fn with_aws_offline(providers: Providers, spec: &AwsSpec) -> Result<Providers> {
    Ok(providers.with(Arc::new(skyplan_aws::AwsProvider::offline(&region(spec)?))))
}

#[cfg(not(feature = "aws"))]
fn with_aws_offline(providers: Providers, _spec: &AwsSpec) -> Result<Providers> {
    Ok(providers)
}

/// The region of a spec's AWS resources: `[cluster] region`, else the SDK's
/// AWS_REGION.
#[cfg(feature = "aws")]
fn region(spec: &AwsSpec) -> Result<String> {
    spec.region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .ok_or_else(|| {
            anyhow!("{}: aws_* resources need a region: set [cluster] region or AWS_REGION", spec.path().display())
        })
}

/// The AWS provider for a spec: region from `[cluster]` (else the SDK's
/// AWS_REGION), account settings from `[account]`, `--rate-limit` and
/// `--spot-wait` applied.
///
/// Connected once per process (the binary runs one command, for one spec):
/// every caller (the provider registry, static placement checks, apply's
/// preflight, plan's spot prices) gets a handle on the same clients, so
/// credentials are resolved once and every request shares one rate limiter
/// and one request count.
#[cfg(feature = "aws")]
pub async fn connect_aws(spec: &AwsSpec) -> Result<skyplan_aws::AwsProvider> {
    static AWS: tokio::sync::OnceCell<skyplan_aws::AwsProvider> = tokio::sync::OnceCell::const_new();
    let aws = AWS
        .get_or_try_init(|| async {
            let file = &spec.spec.file;
            let region = region(spec)?;
            let account = file.account.clone().unwrap_or_default();
            let settings = skyplan_aws::AwsSettings {
                region,
                profile: account.profile,
                role_arn: account.role_arn,
                external_id: account.external_id,
            };
            let limits = RATE_LIMITS.get().cloned().unwrap_or_default();
            let mut aws = skyplan_aws::AwsProvider::connect(settings).await?.with_rate_limits(&limits);
            if let Some(bound) = SPOT_WAIT.get() {
                aws = aws.with_spot_wait(*bound);
            }
            anyhow::Ok(aws)
        })
        .await?;
    Ok(aws.clone())
}

#[cfg(not(feature = "aws"))]
async fn with_aws(providers: Providers, _spec: &AwsSpec) -> Result<Providers> {
    // Without the AWS provider, aws_* types are reported as unserved by the
    // graph check, naming each resource.
    Ok(providers)
}

/// `[placement] mode = "static"`, as the AWS provider checks it.
#[cfg(feature = "aws")]
pub fn static_placement(spec: &AwsSpec) -> Option<skyplan_aws::placement::StaticPlacement> {
    let placement = spec.spec.file.placement.as_ref()?;
    if placement.mode != skyplan_aws_blueprint::model::PlacementMode::Static {
        return None;
    }
    Some(skyplan_aws::placement::StaticPlacement {
        cluster: spec.spec.file.cluster.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        vpc_id: placement.vpc_id.clone().unwrap_or_default(),
        subnets: placement.subnet.iter().map(|s| (s.az.clone(), s.public.clone(), s.private.clone())).collect(),
    })
}

/// Before any change under static placement: check the given VPC and
/// subnets (after adding missing subnet tags when `tag_subnets`), and stop
/// with every problem when one is not ready. No-op for dynamic placement.
#[cfg(feature = "aws")]
pub async fn check_static_placement(spec: &AwsSpec, ui: &crate::ui::Ui, tag_subnets: bool) -> Result<()> {
    let Some(placement) = static_placement(spec) else { return Ok(()) };
    let aws = connect_aws(spec).await?;
    if tag_subnets {
        for tagged in aws.tag_public_subnets(&placement).await? {
            ui.note(&format!("tagged {tagged}"));
        }
    }
    let problems: Vec<String> = aws.check_placement(&placement).await?.into_iter().filter_map(|c| c.problem).collect();
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{}: the static placement is not ready, so nothing was changed:\n  - {}",
        spec.path().display(),
        problems.join("\n  - ")
    )
}

#[cfg(not(feature = "aws"))]
pub async fn check_static_placement(_spec: &AwsSpec, _ui: &crate::ui::Ui, _tag_subnets: bool) -> Result<()> {
    Ok(())
}

/// A run's [`Workspace`] on the state at `state_path`, locked for
/// `operation` until the returned [`Lock`] is dropped.
pub fn open(
    global: &Global,
    state_path: &Path,
    operation: &str,
    hooks: impl Hooks + 'static,
) -> Result<(Workspace, Lock)> {
    let backend = backend(state_path)?;
    let lock = Lock::acquire(&backend, operation, global.lock_timeout)?;
    let ws = Workspace { backend, state_location: state_path.display().to_string(), hooks: Arc::new(hooks) };
    Ok((ws, lock))
}

/// An engine error as the CLI reports it (diagnostics one per line).
pub fn ops_error(e: OpsError) -> anyhow::Error {
    ops_error_in(e, None)
}

/// [`ops_error`], with a spec's graph errors placed at its lines and columns.
pub fn ops_error_in(e: OpsError, spec: Option<&AwsSpec>) -> anyhow::Error {
    if let (OpsError::Spec(d), Some(spec)) = (&e, spec) {
        return spec.spec.source.place(d.clone()).into();
    }
    match e {
        OpsError::Spec(d) => d.into(),
        OpsError::State(e) => e.into(),
        other => anyhow!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::process_exists;

    #[test]
    fn signal_zero_tells_live_from_dead_processes() {
        assert!(process_exists(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        // Reaped: the id is free (reuse within this instant is not expected).
        assert!(!process_exists(pid));
        assert!(!process_exists(0));
    }
}
