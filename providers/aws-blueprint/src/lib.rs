// TEMPORARY STUB (not committed): replaced by the blueprint branch.
use skyplan_engine::spec::{SpecError, SpecFile};
use skyplan_engine::Resource;
pub fn expand(_spec: &SpecFile) -> Result<Vec<Resource>, Vec<SpecError>> {
    Ok(vec![])
}
