//! The `skyplan` binary: a thin command line over the engine, state and
//! provider crates. Parses flags (cli.rs), runs one command (commands/),
//! and maps the outcome to the contract's exit codes: 0 success, 1 error,
//! 2 changes present (plan --detailed-exitcode only).

mod cli;
mod commands;
mod diagnostics;
mod events;
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
    init_logging(cli.global.verbose);
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

/// `-v` logs skyplan's own crates at info, `-vv` at debug, on stderr; the
/// libraries under them (the AWS SDK, its HTTP stack) stay at warn, since
/// their debug output includes request details. `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "warn,skyplan=info,skyplan_engine=info,skyplan_state=info,skyplan_state_s3=info,skyplan_aws=info,skyplan_sim=info",
        _ => "warn,skyplan=debug,skyplan_engine=debug,skyplan_state=debug,skyplan_state_s3=debug,skyplan_aws=debug,skyplan_sim=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().try_init();
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
