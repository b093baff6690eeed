//! The command line: clap structures only. Each subcommand's flags become an
//! options value handed to its module in `commands/`; no logic lives here.

use std::path::PathBuf;
use std::time::Duration;

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
    /// At most RPS requests per second to one AWS service (ec2,
    /// elasticloadbalancing, autoscaling), bursts of BURST; repeatable.
    /// Defaults: docs/aws-resources.md
    #[arg(long = "rate-limit", global = true, value_name = "SERVICE=RPS[,BURST]")]
    pub rate_limit: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    Markdown,
    Html,
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
        /// How long a spot pool waits for its spot price to come within its
        /// max price before its auto scaling group is created (`90s`, `10m`,
        /// `1h`; `0` looks once); then that pool fails, the rest goes on
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
        spot_wait: Duration,
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
        /// A saved plan for review: a pull-request comment (markdown) or
        /// one self-contained page (html)
        #[arg(long, value_enum, conflicts_with = "json")]
        format: Option<ShowFormat>,
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
        /// Add the optional features' actions (beyond the seed's policies),
        /// each in a statement whose Sid says what it enables
        #[arg(long)]
        with_optional: bool,
    },
    /// The applied cluster's outputs (API endpoint, Kubernetes version, VPC, bastion address)
    Output {
        spec: PathBuf,
        /// Print them as one JSON object
        #[arg(long)]
        json: bool,
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

/// `90s`, `10m`, `1h`, or a bare number of seconds (`0`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: write a number with s, m or h (e.g. 10m)")),
    };
    let n: u64 = number.parse().map_err(|_| format!("{text:?}: write a number with s, m or h (e.g. 10m)"))?;
    n.checked_mul(seconds).map(Duration::from_secs).ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_minutes_or_hours() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "m", "10x", "1.5m", "-1s", "10 m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
