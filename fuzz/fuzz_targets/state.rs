//! Any bytes given as a state file must be refused with an error, never
//! panic, and what loads must save and load back unchanged.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = skyplan_state::parse_state(Path::new("fuzz.state.json"), Path::new("fuzz.state.json.backup"), data) {
        let bytes = serde_json::to_vec(&state).expect("a loaded state serializes");
        let again = skyplan_state::parse_state(Path::new("a"), Path::new("b"), &bytes).expect("a saved state loads");
        assert_eq!(state, again);
    }
});
