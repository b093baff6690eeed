//! Any text given as a spec: parsing, reference extraction, error placement
//! and the cluster blueprint must return errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyplan_aws_blueprint::model::SpecFile;
use skyplan_engine::spec::{Source, Spec};
use skyplan_engine::value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = Source { path: "fuzz.toml".into(), text: text.to_string() };
    // Error placement walks arbitrary key paths through arbitrary documents.
    for key in ["cluster.name", "node_pool[1].size", "placement.azs[2]", "resource.a.b.c", "node_pool[0].spot.x"] {
        let _ = source.locate(key);
    }
    let _ = value::references(&serde_json::Value::String(text.to_string()));
    if let Ok(spec) = Spec::<SpecFile>::parse_with(source) {
        for resource in &spec.resources {
            for v in resource.attrs.values() {
                let _ = value::references(v);
            }
        }
        let _ = skyplan_aws_blueprint::expand(&spec.file);
    }
});
