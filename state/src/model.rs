//! The state document: what skyplan last applied, one entry per resource
//! address, plus the identity (`lineage`) and version (`serial`) that let a
//! saved plan detect that the state moved under it.
//!
//! This module holds only the data and its JSON shape. Reading and writing
//! files lives in [`crate::local`]; ordering of concurrent updates in
//! [`crate::writer`]. The format is documented in `docs/state.md`.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The newest state format this build reads and the one it writes.
///
/// A file with a greater `format_version` is refused rather than read and
/// rewritten, which could silently drop what a newer skyplan recorded.
pub const FORMAT_VERSION: u32 = 1;

/// Everything skyplan knows about what it has applied.
///
/// Unknown fields are refused on load (see `docs/state.md`): rewriting a
/// state we only partly understood would lose data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format of this document; [`FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    /// Random id fixed when the state is created and kept for its whole
    /// life; two states with different lineages describe different
    /// deployments.
    pub lineage: String,
    /// Incremented by one on every persist that changes the content.
    pub serial: u64,
    /// Resources keyed by address text, e.g. `aws_subnet.private[us-east-1a]`.
    pub resources: BTreeMap<String, ResourceState>,
    /// Creates that were started but whose result is not recorded (a run was
    /// killed during the call): the resource may exist in the cloud. The
    /// next run looks each up by its address and adopts what it finds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, PendingCreate>,
    /// Objects replaced create-before-destroy whose replacement exists (and
    /// is in `resources`) but which are not deleted yet, by address. The
    /// next plan deletes each; until then nothing forgets them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deposed: BTreeMap<String, ResourceState>,
}

/// The intent to create a resource, recorded before the cloud is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingCreate {
    #[serde(rename = "type")]
    pub kind: String,
    pub provider: String,
    /// The idempotency token sent with the create (ClientToken on AWS).
    pub client_token: String,
    /// The resolved configuration sent with the create.
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// One applied resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceState {
    /// Resource type, e.g. `aws_vpc` (serialized as `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Provider that manages it: `sim`, `aws`.
    pub provider: String,
    /// The cloud's id for it.
    pub id: String,
    /// The resolved configuration it was last applied with.
    pub inputs: Map<String, Value>,
    /// Observed attributes, including `id` and computed ones.
    pub attributes: Map<String, Value>,
    /// Addresses it depended on when applied, so that it can be deleted in
    /// the right order once it is gone from the spec.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl State {
    /// An empty state with a fresh lineage and serial 0.
    pub fn new() -> State {
        State {
            format_version: FORMAT_VERSION,
            lineage: random_id(),
            serial: 0,
            resources: BTreeMap::new(),
            pending: BTreeMap::new(),
            deposed: BTreeMap::new(),
        }
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

/// A random id in UUID version 4 form (`8-4-4-4-12` lowercase hex).
///
/// Uses 16 bytes of `/dev/urandom`. Where that device cannot be read, falls
/// back to the standard library's randomly keyed hasher mixed with the time
/// and pid: not cryptographic, but ids only need to be unique.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let from_os = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_err() {
        bytes = fallback_random_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn fallback_random_bytes() -> [u8; 16] {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        // Each RandomState is keyed from OS randomness at thread start and
        // then perturbed per instance.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// One change to the state's resources.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mutation {
    /// Insert or replace the resource at this address.
    Upsert(String, ResourceState),
    /// Remove the resource at this address (nothing if it is absent).
    Remove(String),
    /// Record that a create of this address is about to be sent. An
    /// `Upsert` of the address (the create's result) clears it.
    Intend(String, PendingCreate),
    /// Forget a recorded intent (the create is known to have made nothing).
    Settle(String),
    /// Keep the object an address had before a create-before-destroy
    /// replacement, until [`Mutation::DeleteDeposed`].
    Depose(String, ResourceState),
    /// The deposed object of this address is deleted.
    DeleteDeposed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_state_is_empty_with_a_fresh_lineage() {
        let a = State::new();
        let b = State::new();
        assert_eq!(a.format_version, FORMAT_VERSION);
        assert_eq!(a.serial, 0);
        assert!(a.resources.is_empty());
        assert_ne!(a.lineage, b.lineage);
    }

    #[test]
    fn random_ids_look_like_uuid_v4() {
        let id = random_id();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn fallback_bytes_differ_between_calls() {
        assert_ne!(fallback_random_bytes(), fallback_random_bytes());
    }

    #[test]
    fn resource_kind_is_serialized_as_type_and_dependencies_default_to_empty() {
        let text = json!({
            "type": "aws_vpc",
            "provider": "aws",
            "id": "vpc-1",
            "inputs": {"cidr_block": "10.0.0.0/16"},
            "attributes": {"id": "vpc-1", "cidr_block": "10.0.0.0/16"}
        });
        let r: ResourceState = serde_json::from_value(text).unwrap();
        assert_eq!(r.kind, "aws_vpc");
        assert!(r.dependencies.is_empty());
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["type"], "aws_vpc");
        assert!(back.get("kind").is_none());
    }

    /// The JSON blocks of `docs/state.md`, in order.
    fn documented_examples() -> Vec<String> {
        let doc = include_str!("../../docs/state.md");
        doc.split("```json\n").skip(1).map(|block| block.split("```").next().unwrap().to_string()).collect()
    }

    #[test]
    fn the_documented_examples_parse() {
        let examples = documented_examples();
        let state: State = serde_json::from_str(&examples[0]).unwrap();
        assert_eq!(state.format_version, FORMAT_VERSION);
        assert_eq!(state.resources.len(), 2);
        // Written back, it is the same text: the example is what we write.
        let mut written = serde_json::to_string_pretty(&state).unwrap();
        written.push('\n');
        assert_eq!(written, examples[0]);
        let lock: crate::LockInfo = serde_json::from_str(&examples[1]).unwrap();
        assert_eq!(lock.operation, "apply");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = json!({
            "format_version": 1, "lineage": "x", "serial": 0, "resources": {},
            "outputs": {}
        });
        let err = serde_json::from_value::<State>(text).unwrap_err();
        assert!(err.to_string().contains("outputs"), "{err}");
    }
}
