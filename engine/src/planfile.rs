//! Saved plans (`plan --out FILE`): the plan exactly as reviewed, the spec
//! text it was made from (for provider settings), and the lineage and serial
//! of the state it was made against, so `apply FILE` can refuse a stale one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

pub const KIND: &str = "skyplan-plan";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    /// Always `skyplan-plan`: tells a plan file from a spec.
    pub kind: String,
    pub format_version: u32,
    pub skyplan_version: String,
    /// The spec's path when planned (absolute) and its text.
    pub spec_path: PathBuf,
    pub spec_text: String,
    /// Where the state was (`--state` or the default beside the spec).
    pub state: String,
    pub plan: Plan,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not a skyplan plan file: {1}")]
    Invalid(PathBuf, String),
    #[error("{0} was written by a newer skyplan (plan format {1}, this one reads {FORMAT_VERSION})")]
    Newer(PathBuf, u32),
}

impl PlanFile {
    pub fn load(path: &Path) -> Result<PlanFile, PlanFileError> {
        let bytes = std::fs::read(path).map_err(|e| PlanFileError::Read(path.to_path_buf(), e))?;
        let file: PlanFile =
            serde_json::from_slice(&bytes).map_err(|e| PlanFileError::Invalid(path.to_path_buf(), e.to_string()))?;
        if file.kind != KIND {
            return Err(PlanFileError::Invalid(path.to_path_buf(), format!("kind is {:?}", file.kind)));
        }
        if file.format_version > FORMAT_VERSION {
            return Err(PlanFileError::Newer(path.to_path_buf(), file.format_version));
        }
        Ok(file)
    }

    /// Whether a file looks like a saved plan rather than a TOML spec.
    pub fn sniff(path: &Path) -> bool {
        std::fs::read(path).map(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{')).unwrap_or(false)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("plan serializes")
    }
}
