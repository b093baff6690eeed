//! The command line: clap structures only. Each subcommand's flags become an
//! options value handed to its module in `commands/`; no logic lives here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "skyplan",
    version,
    about = "Plan and apply Kubernetes clusters on AWS from one TOML spec",
    after_help = "Examples:\n  skyplan plan cluster.toml\n  skyplan apply cluster.toml --auto-approve\n  skyplan destroy cluster.toml\n\nEvery command: skyplan help COMMAND. Documentation: docs/cli.md."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Where the state lives: a file path or s3://BUCKET/KEY (default:
    /// <spec stem>.state.json beside the spec)
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<String>,
    /// How long to wait for the state lock: seconds (`30`) or a duration
    /// with a unit (`30s`, `5m`)
    #[arg(long, global = true, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// More logs on stderr: -v one line per AWS call, -vv also request ids
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// When to color the output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// At most RPS requests per second to one AWS service (ec2,
    /// elasticloadbalancing, autoscaling, secretsmanager), bursts of BURST; repeatable.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The spec argument every planning command takes.
const SPEC_HELP: &str = "The cluster spec (TOML)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, expand and check the graph; no cloud calls
    #[command(after_help = "Example:\n  skyplan validate cluster.toml")]
    Validate {
        #[arg(help = SPEC_HELP)]
        spec: PathBuf,
    },
    /// Show what apply would change
    #[command(
        after_help = "Examples:\n  skyplan plan cluster.toml\n  skyplan plan cluster.toml --out cluster.plan && skyplan apply cluster.plan\n  skyplan plan cluster.toml --refresh-only --detailed-exitcode"
    )]
    Plan {
        #[arg(help = SPEC_HELP)]
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
        #[command(flatten)]
        select: Select,
    },
    /// Apply a spec (planning first) or a saved plan
    #[command(
        after_help = "Examples:\n  skyplan apply cluster.toml\n  skyplan apply cluster.plan\n  skyplan apply cluster.toml --auto-approve --json > events.jsonl"
    )]
    Apply {
        /// A spec, or a plan file from `plan --out`
        #[arg(id = "spec_or_plan", value_name = "SPEC|PLANFILE")]
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
        /// Progress as one JSON object per line on stdout (docs/json-events.md)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        select: Select,
    },
    /// Destroy everything the state records for this spec
    #[command(
        after_help = "Examples:\n  skyplan destroy cluster.toml\n  skyplan destroy cluster.toml --auto-approve --target sim_resource.cache"
    )]
    Destroy {
        #[arg(help = SPEC_HELP)]
        spec: PathBuf,
        /// Do not ask for confirmation
        #[arg(long)]
        auto_approve: bool,
        /// How many operations run at once
        #[arg(long, value_name = "N", default_value_t = 10)]
        parallelism: usize,
        /// Progress as one JSON object per line on stdout (docs/json-events.md)
        #[arg(long)]
        json: bool,
        /// Only these resources and what depends on them (repeatable);
        /// for exceptional cases, not routine use
        #[arg(long, value_name = "ADDRESS")]
        target: Vec<String>,
    },
    /// Show the state, a saved plan, or a saved run
    #[command(
        after_help = "Examples:\n  skyplan show\n  skyplan show cluster.plan --json\n  skyplan show cluster.plan --format markdown\n  skyplan apply cluster.plan --json > run.jsonl && skyplan show run.jsonl --format html > run.html"
    )]
    Show {
        /// A plan file from `plan --out`, or a run saved from `apply --json`
        /// or `destroy --json` (its timeline and critical path); default:
        /// the state
        planfile: Option<PathBuf>,
        /// Print as JSON
        #[arg(long)]
        json: bool,
        /// A saved plan for review: a pull-request comment (markdown) or
        /// one self-contained page (html); a saved run: its timeline (html)
        #[arg(long, value_enum, conflicts_with = "json")]
        format: Option<ShowFormat>,
    },
    /// The resource graph and its dependency layers
    #[command(
        after_help = "Examples:\n  skyplan graph cluster.toml\n  skyplan graph cluster.toml --format dot | dot -Tsvg > graph.svg"
    )]
    Graph {
        #[arg(help = SPEC_HELP)]
        spec: PathBuf,
        /// Layers as text, or Graphviz dot
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Inspect or edit the state
    #[command(subcommand)]
    State(StateCommand),
    /// Adopt an existing cloud resource at ADDRESS: read it, record it
    #[command(
        after_help = "Examples:\n  skyplan import aws_vpc.main vpc-0a1b2c3d --spec cluster.toml\n  skyplan import sim_resource.net sim-3 --state app.state.json\n\nNothing changes in the cloud. The next plan shows what differs between the resource and the spec."
    )]
    Import {
        /// The address to record it at (TYPE.NAME or TYPE.NAME[KEY])
        address: String,
        /// The resource's id in its cloud
        id: String,
        /// The spec the address belongs to: where the state is and which
        /// AWS account and region to read (default: the state from
        /// --state, AWS settings from the environment)
        #[arg(long, value_name = "SPEC")]
        spec: Option<PathBuf>,
    },
    /// Before apply: AZs, key pair, images and capacity (Elastic IPs, VPCs,
    /// NAT gateways, instances) against what the spec needs
    #[command(after_help = "Example:\n  skyplan preflight cluster.toml")]
    Preflight {
        #[arg(help = SPEC_HELP)]
        spec: PathBuf,
    },
    /// Remove a stale state lock
    #[command(after_help = "Example:\n  skyplan unlock 3f2a9c4e-lock-id")]
    Unlock {
        /// The lock's id, as the error that reported it printed it
        lock_id: String,
    },
    /// The IAM policy the plan needs (least privilege); no cloud calls
    #[command(
        after_help = "Examples:\n  skyplan policy cluster.toml\n  skyplan policy cluster.toml --split policies/"
    )]
    Policy {
        #[arg(help = SPEC_HELP)]
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
    #[command(after_help = "Examples:\n  skyplan output cluster.toml\n  skyplan output cluster.toml --json")]
    Output {
        #[arg(help = SPEC_HELP)]
        spec: PathBuf,
        /// Print them as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// An administrator's kubeconfig for the applied cluster (a fresh client certificate signed by the cluster CA)
    #[command(
        after_help = "The kubeconfig holds a private key: --out writes it with mode 0600.\n\nExamples:\n  skyplan kubeconfig cluster.toml --out cluster.kubeconfig\n  KUBECONFIG=cluster.kubeconfig kubectl get nodes"
    )]
    Kubeconfig {
        #[arg(help = SPEC_HELP)]
        spec: PathBuf,
        /// Write it to FILE (mode 0600) instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The kubeadm configuration a node boots with, secrets masked
    #[command(
        after_help = "ADDRESS is a control-plane instance (aws_instance.control_plane[N]) or a worker pool's launch \
                      template (aws_launch_template.pool[NAME]). The endpoint and the CA hash come from the state; \
                      before apply the endpoint reads (known after apply).\n\nExamples:\n  skyplan node-config \
                      cluster.toml 'aws_instance.control_plane[0]'\n  skyplan node-config cluster.toml \
                      'aws_launch_template.pool[worker]'"
    )]
    NodeConfig {
        #[arg(help = SPEC_HELP)]
        spec: PathBuf,
        /// The node's address
        address: String,
    },
    /// A shell completion script on stdout
    #[command(
        after_help = "Examples:\n  skyplan completion bash > /etc/bash_completion.d/skyplan\n  skyplan completion zsh > \"${fpath[1]}/_skyplan\"\n  skyplan completion fish > ~/.config/fish/completions/skyplan.fish"
    )]
    Completion {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: Shell,
    },
    /// The manual page (roff) on stdout
    #[command(after_help = "Example:\n  skyplan man > /usr/local/share/man/man1/skyplan.1")]
    Man,
}

impl Command {
    /// Whether the command prints JSON on stdout, so its errors must be
    /// JSON too.
    pub fn json_output(&self) -> bool {
        match self {
            Command::Plan { json, .. }
            | Command::Apply { json, .. }
            | Command::Destroy { json, .. }
            | Command::Show { json, .. } => *json,
            _ => false,
        }
    }
}

/// Which resources a plan covers, and what it forces.
#[derive(Debug, Args, Default, Clone)]
pub struct Select {
    /// Only this resource and what it depends on (repeatable); for
    /// exceptional cases, not routine use
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Replace this resource although it did not change (repeatable)
    #[arg(long, value_name = "ADDRESS")]
    pub replace: Vec<String>,
    /// Record in the state what changed outside skyplan; change nothing in the cloud
    #[arg(long, conflicts_with_all = ["replace", "target"])]
    pub refresh_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Every address in the state, one a line, sorted
    #[command(after_help = "Example:\n  skyplan state list --state cluster.state.json")]
    List,
    /// One resource's recorded attributes
    #[command(after_help = "Example:\n  skyplan state show aws_vpc.main")]
    Show {
        /// The resource's address
        address: String,
    },
    /// Forget a resource (it stays in the cloud)
    #[command(after_help = "Example:\n  skyplan state rm aws_instance.bastion")]
    Rm {
        /// The resource's address
        address: String,
    },
    /// Record a resource under another address (nothing changes in the cloud)
    #[command(after_help = "Example:\n  skyplan state mv sim_resource.net sim_resource.network")]
    Mv {
        /// Its address now
        from: String,
        /// The address to record it at
        to: String,
    },
}

/// A bare number of seconds (`30`, `0`) or a duration with units
/// (`90s`, `10m`, `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?}: {e}; write seconds (30) or a number with a unit (30s, 5m, 1h)"))
}

/// docs/cli.md: every command's `--help`, generated from the clap
/// structures above (its examples included), so it cannot drift from them.
#[cfg(test)]
pub fn reference() -> String {
    use clap::CommandFactory;
    let mut root = Cli::command();
    root.build();
    let mut out = String::from(
        "# The skyplan command line\n\n\
         Every command and flag with its description and examples, exactly as `skyplan help COMMAND` prints \
         them. Generated from the source: `cargo test --workspace --bin skyplan cli_md` fails when \
         this file and the help differ, and rewrites it when run with `SKYPLAN_BLESS=1`.\n\n\
         Durations (`--lock-timeout`, `--spot-wait`) take seconds (`30`) or a number with a unit \
         (`30s`, `5m`, `1h30m`). Machine-readable progress (`apply --json`, `destroy --json`): \
         [json-events.md](json-events.md).\n",
    );
    fn walk(cmd: &clap::Command, path: &str, out: &mut String) {
        let help = cmd.clone().render_long_help().to_string();
        out.push_str(&format!("\n## {path}\n\n```text\n{}\n```\n", help.trim_end()));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    walk(&root, "skyplan", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command says what it does and shows an example; every flag and
    /// argument says what it is.
    #[test]
    fn every_command_has_an_example_and_every_flag_a_description() {
        fn check(cmd: &clap::Command, path: &str) {
            assert!(cmd.get_about().is_some(), "{path} has no description");
            let after = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            if !cmd.has_subcommands() {
                assert!(after.contains("Example"), "{path} has no example");
                assert!(after.contains(path), "{path}'s example does not run it");
            }
            for arg in cmd.get_arguments() {
                if matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path}: {} has no description", arg.get_id());
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        check(&cmd, "skyplan");
        cmd.debug_assert();
    }

    /// docs/cli.md is the help, as generated now.
    #[test]
    fn cli_md_matches_the_help() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");
        let generated = reference();
        if std::env::var_os("SKYPLAN_BLESS").is_some() {
            std::fs::write(path, &generated).expect("write docs/cli.md");
        }
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == generated,
            "docs/cli.md differs from the help; regenerate it: SKYPLAN_BLESS=1 cargo test --workspace --bin skyplan cli_md"
        );
        for command in ["plan", "apply", "destroy", "import", "state mv", "completion", "man"] {
            assert!(written.contains(&format!("## skyplan {command}\n")), "{command}");
        }
        for flag in ["--target", "--replace", "--refresh-only", "--json", "--lock-timeout"] {
            assert!(written.contains(flag), "{flag}");
        }
    }

    #[test]
    fn durations_are_seconds_minutes_or_hours() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "m", "10x", "-1s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
