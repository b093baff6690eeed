//! The command line: clap structures only. Each subcommand's flags become an
//! options value handed to its module in `commands/`; no logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "skyplan", version, about = "Plan and apply Kubernetes clusters on AWS from one TOML spec")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Where the state lives: a file path (default: <spec stem>.state.json beside the spec)
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<String>,
    /// How long to wait for the state lock, in seconds
    #[arg(long, global = true, value_name = "SECS", default_value_t = 0)]
    pub lock_timeout: u64,
    /// More logs on stderr (-v, -vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Color output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, expand and check the graph; no cloud calls
    Validate { spec: PathBuf },
    /// Show what apply would change
    Plan {
        spec: PathBuf,
        /// Save the plan to apply later exactly as reviewed
        #[arg(long, value_name = "PLANFILE")]
        out: Option<PathBuf>,
        /// Print the plan as JSON
        #[arg(long)]
        json: bool,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error
        #[arg(long)]
        detailed_exitcode: bool,
        /// Diff against the recorded state without reading the cloud
        #[arg(long)]
        no_refresh: bool,
        /// Plan to destroy everything in the state
        #[arg(long)]
        destroy: bool,
    },
    /// Apply a spec (planning first) or a saved plan
    Apply {
        /// A spec, or a plan file from `plan --out`
        target: PathBuf,
        /// Do not ask for confirmation
        #[arg(long)]
        auto_approve: bool,
        /// How many operations run at once
        #[arg(long, value_name = "N", default_value_t = 10)]
        parallelism: usize,
        /// Static placement: add the load-balancer discovery tags the public
        /// subnets lack (the only change skyplan makes to them)
        #[arg(long)]
        tag_subnets: bool,
        /// Do not check first that the AZs, key pair and images exist
        #[arg(long)]
        skip_preflight: bool,
    },
    /// Destroy everything the state records for this spec
    Destroy {
        spec: PathBuf,
        #[arg(long)]
        auto_approve: bool,
        #[arg(long, value_name = "N", default_value_t = 10)]
        parallelism: usize,
    },
    /// Show the state, or a saved plan
    Show {
        planfile: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The resource graph and its dependency layers
    Graph {
        spec: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Inspect or edit the state
    #[command(subcommand)]
    State(StateCommand),
    /// Before apply: AZs, key pair, images and capacity (Elastic IPs, VPCs,
    /// NAT gateways, instances) against what the spec needs
    Preflight { spec: PathBuf },
    /// Remove a stale state lock
    Unlock { lock_id: String },
    /// The IAM policy the plan needs (least privilege); no cloud calls
    Policy {
        spec: PathBuf,
        /// Also write it as managed policies under AWS's size limit:
        /// DIR/skyplan-policy-1.json, -2.json, ...
        #[arg(long, value_name = "DIR")]
        split: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Every address in the state, one a line, sorted
    List,
    /// One resource's recorded attributes
    Show { address: String },
    /// Forget a resource (it stays in the cloud)
    Rm { address: String },
}
