//! Terminal output: color choice, notes and warnings, the approval prompt,
//! and progress lines while apply runs.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use skyplan_engine::{Address, Providers};

use anyhow::{bail, Result};
use skyplan_engine::apply::{Event, EventSink, OpKind};
use skyplan_engine::render::Style;

use crate::cli::{ColorChoice, Global};
use crate::heartbeat::{secs, Heartbeat, HEARTBEAT};

#[derive(Clone)]
pub struct Ui {
    pub color: bool,
    pub verbose: u8,
}

impl Ui {
    pub fn new(global: &Global) -> Ui {
        let color = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Ui { color, verbose: global.verbose }
    }

    pub fn style(&self) -> Style {
        Style { color: self.color }
    }

    pub fn note(&self, message: &str) {
        eprintln!("{} {message}", self.style().bold("note:"));
    }

    pub fn warn(&self, message: &str) {
        eprintln!("{} {message}", self.style().yellow(&self.style().bold("warning:")));
    }

    /// What each provider has to say about reaching its cloud (requests
    /// retried, and why), always; with `-v` also how many requests each sent,
    /// on stderr (`-vv`: per operation).
    pub fn requests(&self, providers: &Providers) {
        for provider in providers.all() {
            for note in provider.notes() {
                self.note(&format!("{}: {note}", provider.name()));
            }
        }
        if self.verbose == 0 {
            return;
        }
        for provider in providers.all() {
            let counts = provider.request_counts();
            if counts.is_empty() {
                continue;
            }
            let total: u64 = counts.values().sum();
            eprintln!("{} API requests: {total}", provider.name());
            if self.verbose > 1 {
                for (operation, n) in &counts {
                    eprintln!("  {operation} {n}");
                }
            }
        }
    }

    /// Fail unless a person can answer the approval prompt.
    pub fn require_terminal(&self, operation: &str) -> Result<()> {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to {operation} without approval: standard input is not a terminal; pass --auto-approve to approve non-interactively");
        }
        Ok(())
    }

    /// Ask for `yes` on the terminal.
    pub fn approve(&self, question: &str) -> Result<bool> {
        print!("\nDo you want to {question}?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        Ok(answer.trim() == "yes")
    }

    /// Progress for apply and destroy: a live spinner per running resource
    /// on a terminal, plain lines (like Terraform's) otherwise, or JSON
    /// events (`--json`). Off a terminal, an operation still running gets a
    /// line at least every [`HEARTBEAT`].
    pub fn progress(&self, json: bool) -> Reporter {
        let style = self.style();
        if json {
            let sink = crate::events::sink();
            return Reporter { events: sink, bars: None };
        }
        if std::io::stdout().is_terminal() {
            let bars = MultiProgress::new();
            return Reporter { events: live_progress(style, bars.clone()), bars: Some(bars) };
        }
        let still = Arc::new(move |address: &Address, op: OpKind, elapsed: Duration| {
            println!(
                "{}: Still {}... [{} elapsed]",
                style.bold(&address.to_string()),
                op.verb().to_lowercase(),
                secs(elapsed)
            )
        });
        let running = Heartbeat::start(HEARTBEAT, still);
        let events: EventSink = Arc::new(move |event: &Event| {
            running.track(event);
            match event {
                Event::Started { address, op, .. } => {
                    println!("{}: {}...", style.bold(&address.to_string()), op.verb())
                }
                Event::Progress { address, op, message, elapsed } => {
                    println!(
                        "{}: Still {}... [{} elapsed] {message}",
                        style.bold(&address.to_string()),
                        op.verb().to_lowercase(),
                        secs(*elapsed)
                    )
                }
                Event::Finished { address, op, id, elapsed } => {
                    let id = id.as_ref().map(|i| format!(" [id={i}]")).unwrap_or_default();
                    println!("{}: {} after {}{id}", style.bold(&address.to_string()), op.done(), secs(*elapsed));
                }
                Event::Failed { address, op, error } => {
                    eprintln!("{}: {} failed: {error}", style.red(&address.to_string()), op.noun())
                }
                Event::Skipped { address, .. } => {
                    eprintln!("{}: skipped: a resource it depends on was not applied", address)
                }
            }
        });
        Reporter { events, bars: None }
    }
}

/// Where apply's events go, and the live spinners if there are any.
pub struct Reporter {
    pub events: EventSink,
    bars: Option<MultiProgress>,
}

impl Reporter {
    /// A message on stderr that leaves no spinner frame behind: above the
    /// spinners when there are some.
    pub fn say(&self, message: &str) {
        match &self.bars {
            Some(bars) => bars.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }

    /// Take the spinners off the screen (before exiting mid-run).
    pub fn clear(&self) {
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
    }
}

/// One spinner per running operation showing what it is doing and for how
/// long; finished operations leave one line above the spinners.
fn live_progress(style: Style, bars: MultiProgress) -> EventSink {
    let running: Mutex<HashMap<Address, ProgressBar>> = Mutex::new(HashMap::new());
    let spinner =
        ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} [{elapsed}]").expect("valid template");
    Arc::new(move |event: &Event| match event {
        Event::Started { address, op, .. } => {
            let bar = bars.add(ProgressBar::new_spinner().with_style(spinner.clone()).with_prefix(address.to_string()));
            bar.set_message(format!("{}...", op.verb()));
            bar.enable_steady_tick(Duration::from_millis(120));
            running.lock().expect("progress bars").insert(address.clone(), bar);
        }
        Event::Progress { address, op, message, .. } => {
            if let Some(bar) = running.lock().expect("progress bars").get(address) {
                bar.set_message(format!("{}... {message}", op.verb()));
            }
        }
        Event::Finished { address, op, id, elapsed } => {
            if let Some(bar) = running.lock().expect("progress bars").remove(address) {
                bar.finish_and_clear();
            }
            let id = id.as_ref().map(|i| format!(" [id={i}]")).unwrap_or_default();
            let _ = bars.println(format!(
                "{}: {} after {}{id}",
                style.bold(&address.to_string()),
                op.done(),
                secs(*elapsed)
            ));
        }
        Event::Failed { address, op, error } => {
            if let Some(bar) = running.lock().expect("progress bars").remove(address) {
                bar.finish_and_clear();
            }
            let _ = bars.println(format!("{}: {} failed: {error}", style.red(&address.to_string()), op.noun()));
        }
        Event::Skipped { address, .. } => {
            let _ = bars.println(format!("{address}: skipped: a resource it depends on was not applied"));
        }
    })
}
