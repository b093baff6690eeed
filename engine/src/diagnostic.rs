//! User-facing errors about input: where (file, line, column, or a resource
//! address) and what to do.
//!
//! Everything that rejects a spec or a state before any cloud call returns
//! `Diagnostic`s, so the CLI prints them the same way and exits 1.

use std::fmt;
use std::path::PathBuf;

use crate::address::Address;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A place in a file (1-based line and column).
    File {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// A key path in the spec that could not be placed in the source
    /// (`node_pool[1].size`).
    Key {
        path: PathBuf,
        key: String,
    },
    Address(Address),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Diagnostic { location, message: message.into(), help: None }
    }

    pub fn at_address(address: &Address, message: impl Into<String>) -> Self {
        Diagnostic::new(Location::Address(address.clone()), message)
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { path, line, column } => write!(f, "{}:{line}:{column}: ", path.display())?,
            Location::Key { path, key } => write!(f, "{}: {key}: ", path.display())?,
            Location::Address(a) => write!(f, "{a}: ")?,
            Location::None => {}
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// A list of diagnostics as one error value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}
