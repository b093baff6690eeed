//! The `skyplan` binary: a thin command line over the engine, state and
//! provider crates. Parses flags (cli.rs), runs one command (commands/),
//! and maps the outcome to the contract's exit codes: 0 success, 1 error,
//! 2 changes present (plan --detailed-exitcode only).

mod cli;
mod commands;
mod diagnostics;
mod events;
mod heartbeat;
mod ui;
mod workspace;

use std::process::ExitCode;

use clap::Parser;
use skyplan_engine::Diagnostics;

/// mimalloc rather than the system allocator: a plan of thousands of
/// resources is mostly small allocations (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.global.verbose, cli.global.color);
    let ui = ui::Ui::new(&cli.global);
    let json = cli.command.json_output();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) if json => {
            events::diagnostics(&err);
            ExitCode::FAILURE
        }
        Err(err) => {
            if let Some(diagnostics) = err.downcast_ref::<Diagnostics>() {
                for d in &diagnostics.0 {
                    eprint!("{}", diagnostics::render(d, "error", ui.style()));
                }
            } else {
                eprintln!("{} {err:#}", ui.style().red(&ui.style().bold("error:")));
            }
            ExitCode::FAILURE
        }
    }
}

/// skyplan's own crates, for the log filter.
const OWN_CRATES: [&str; 6] =
    ["skyplan", "skyplan_engine", "skyplan_state", "skyplan_state_s3", "skyplan_aws", "skyplan_sim"];

/// Logs on stderr. Without `-v` only skyplan's own warnings: the libraries
/// under it (the AWS SDK, its HTTP stack) say nothing, since skyplan turns
/// their failures into its own errors (`WARN aws_runtime::...` lines were
/// noise before the real message). `-v` adds skyplan's info and the
/// libraries' warnings, `-vv` skyplan's debug; the libraries never go below
/// warn, since their debug output includes request details. `RUST_LOG`
/// overrides. Colored as `--color` says, judged on stderr.
fn init_logging(verbose: u8, color: cli::ColorChoice) {
    let (others, own) = match verbose {
        0 => ("off", "warn"),
        1 => ("warn", "info"),
        _ => ("warn", "debug"),
    };
    let level: String = std::iter::once(others.to_string())
        .chain(OWN_CRATES.iter().map(|c| format!("{c}={own}")))
        .collect::<Vec<_>>()
        .join(",");
    let ansi = match color {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => {
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .without_time()
        .try_init();
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`skyplan state list |
/// head -1`) would panic. Like other Unix tools, end quietly instead.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default at start-up,
    // before any thread exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
