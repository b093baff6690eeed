//! Sensitive values: kept out of plan output, the state and error messages.
//!
//! A spec marks some values sensitive (a pack's `sensitive = [...]` keys).
//! They must still reach the cloud (a node's user data needs its registry
//! password), so the config that apply sends keeps them; everything skyplan
//! shows or stores instead has each occurrence replaced by a mask:
//! `(sensitive 1a2b3c4d5e6f)`, where the hex is the start of the value's
//! SHA-256. The mask is the same for the same value, so the diff of a
//! redacted config against a redacted state still sees a changed secret
//! (and shows it as one mask replacing another) without either holding it.
//!
//! Masking works on text: every string anywhere in an attribute value is
//! searched for every secret, longest first, so a secret inside a larger
//! document (a line of cloud-init) is masked where it sits.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::value::Attrs;

/// The sensitive values of one spec and their masks.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (secret, mask), longest secret first.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor for these values (empty ones are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<(String, String)> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| {
                let m = mask(&v);
                (v, m)
            })
            .collect();
        secrets.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        secrets.dedup_by(|a, b| a.0 == b.0);
        Redactor { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret masked.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        self.redact_string(&mut out);
        out
    }

    /// Mask every secret in every string of `value`, however deep.
    pub fn value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.redact_string(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }

    /// Mask every secret in every attribute.
    pub fn attrs(&self, attrs: &mut Attrs) {
        if self.is_empty() {
            return;
        }
        attrs.values_mut().for_each(|v| self.value(v));
    }

    /// Live values read from the cloud, as the state may hold them.
    ///
    /// A live value can hold a secret the spec no longer has (the value was
    /// changed in the spec since it was applied), which this redactor cannot
    /// mask. So wherever the recorded value holds masks, the live one is
    /// checked against it instead: the same text around each mask, and in
    /// each mask's place a value with that digest. If it is, the recorded
    /// value stays (nothing drifted); if not, it changed outside skyplan and
    /// is recorded as [`CHANGED_OUTSIDE`], never as read.
    ///
    /// A spec without sensitive values leaves live values as they are (also
    /// when the state still holds masks from when it had some: those values
    /// are no longer declared secret).
    pub fn live(&self, recorded: &Attrs, live: &mut Attrs) {
        if self.is_empty() {
            return;
        }
        for (key, value) in live.iter_mut() {
            match recorded.get(key) {
                Some(prior) => reconcile(self, prior, value),
                None => self.value(value),
            }
        }
    }

    fn redact_string(&self, s: &mut String) {
        for (secret, mask) in &self.secrets {
            if s.contains(secret.as_str()) {
                *s = s.replace(secret.as_str(), mask);
            }
        }
    }
}

/// What a live value that held sensitive values, and no longer matches
/// what was recorded, is recorded as.
pub const CHANGED_OUTSIDE: &str = "(sensitive value changed outside skyplan)";

const MASK_OPEN: &str = "(sensitive ";
const HEX_LEN: usize = 12;

/// What a secret is shown and stored as.
fn mask(secret: &str) -> String {
    format!("{MASK_OPEN}{})", digest(secret))
}

fn digest(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().take(HEX_LEN / 2).map(|b| format!("{b:02x}")).collect()
}

/// Make `live` what the state records, given what it recorded (`prior`).
fn reconcile(redactor: &Redactor, prior: &Value, live: &mut Value) {
    if prior == live {
        // What the cloud does not return, providers echo from the state.
        return;
    }
    match (prior, &mut *live) {
        (Value::String(p), Value::String(l)) if p.contains(MASK_OPEN) => {
            *live = if matches_masked(p, l) { prior.clone() } else { Value::String(CHANGED_OUTSIDE.to_string()) };
        }
        (Value::Array(p), Value::Array(l)) => {
            for (i, v) in l.iter_mut().enumerate() {
                match p.get(i) {
                    Some(p) => reconcile(redactor, p, v),
                    None => redactor.value(v),
                }
            }
        }
        (Value::Object(p), Value::Object(l)) => {
            for (k, v) in l.iter_mut() {
                match p.get(k) {
                    Some(p) => reconcile(redactor, p, v),
                    None => redactor.value(v),
                }
            }
        }
        (p, l) if contains_mask(p) => *l = Value::String(CHANGED_OUTSIDE.to_string()),
        _ => redactor.value(live),
    }
}

fn contains_mask(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains(MASK_OPEN),
        Value::Array(items) => items.iter().any(contains_mask),
        Value::Object(map) => map.values().any(contains_mask),
        _ => false,
    }
}

/// Whether `live` is `masked` with each mask standing for a value of its
/// digest.
fn matches_masked(masked: &str, live: &str) -> bool {
    let mut literals = Vec::new();
    let mut digests = Vec::new();
    let mut rest = masked;
    while let Some(at) = rest.find(MASK_OPEN) {
        let hex = &rest[at + MASK_OPEN.len()..];
        let is_mask = hex.len() > HEX_LEN
            && hex.as_bytes()[HEX_LEN] == b')'
            && hex[..HEX_LEN].bytes().all(|b| b.is_ascii_hexdigit());
        if !is_mask {
            return false;
        }
        literals.push(&rest[..at]);
        digests.push(&hex[..HEX_LEN]);
        rest = &hex[HEX_LEN + 1..];
    }
    literals.push(rest);
    matches_from(&literals, &digests, live)
}

/// `live` is `literals[0]`, then a value of `digests[0]`, then
/// `literals[1]`, ... Each mask's value ends where the next literal can
/// begin; every such place is tried.
fn matches_from(literals: &[&str], digests: &[&str], live: &str) -> bool {
    let Some(rest) = live.strip_prefix(literals[0]) else {
        return false;
    };
    let Some((want, digests)) = digests.split_first() else {
        return rest.is_empty();
    };
    let next = literals[1];
    (1..=rest.len())
        .filter(|&end| rest.is_char_boundary(end) && rest[end..].starts_with(next))
        .any(|end| digest(&rest[..end]) == *want && matches_from(&literals[1..], digests, &rest[end..]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_every_occurrence_at_any_depth() {
        let r = Redactor::new(["hunter22".to_string()]);
        let mut v = json!({"a": "pw: hunter22\nagain hunter22", "b": ["x", {"c": "hunter22"}], "n": 3});
        r.value(&mut v);
        let text = v.to_string();
        assert!(!text.contains("hunter22"), "{text}");
        assert_eq!(text.matches("(sensitive ").count(), 3, "{text}");
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn the_mask_tells_values_apart_without_holding_them() {
        let a = Redactor::new(["first-secret".to_string()]).text("x first-secret");
        let a_again = Redactor::new(["first-secret".to_string()]).text("x first-secret");
        let b = Redactor::new(["other-secret".to_string()]).text("x other-secret");
        assert_eq!(a, a_again, "the same value masks the same way (so a no-op plan stays empty)");
        assert_ne!(a, b, "a changed value shows as a changed mask");
        assert!(a.starts_with("x (sensitive ") && a.len() == "x (sensitive 123456789abc)".len(), "{a}");
    }

    #[test]
    fn a_secret_inside_another_is_masked_by_the_longer_first() {
        let r = Redactor::new(["abcd".to_string(), "abcdefgh".to_string()]);
        let out = r.text("abcdefgh abcd");
        assert!(!out.contains("abcd"), "{out}");
        let long = Redactor::new(["abcdefgh".to_string()]).text("abcdefgh");
        assert!(out.starts_with(&long), "the longer value keeps its own mask: {out}");
    }

    #[test]
    fn live_values_keep_their_recorded_masks_while_they_match() {
        let before = Redactor::new(["old-secret".to_string()]);
        let recorded: Attrs = serde_json::from_value(json!({
            "user_data": before.text("a: old-secret\nb: 1\nc: old-secret\n"),
            "size": 1,
        }))
        .unwrap();
        // The spec now has another secret; the cloud still the old one.
        let now = Redactor::new(["new-secret".to_string()]);
        let mut live: Attrs = serde_json::from_value(
            json!({"user_data": "a: old-secret\nb: 1\nc: old-secret\n", "size": 2, "new": "x new-secret"}),
        )
        .unwrap();
        now.live(&recorded, &mut live);
        assert_eq!(live["user_data"], recorded["user_data"], "unchanged: the recorded masks stay");
        let mut echoed = recorded.clone();
        now.live(&recorded, &mut echoed);
        assert_eq!(echoed, recorded, "a value echoed from the state stays as it is");
        assert_eq!(live["size"], 2);
        assert!(!live["new"].as_str().unwrap().contains("new-secret"));

        // Changed outside skyplan: the text around it, or the secret itself.
        for changed in ["a: old-secret\nb: 2\nc: old-secret\n", "a: old-secret\nb: 1\nc: other-one\n"] {
            let mut live: Attrs = serde_json::from_value(json!({"user_data": changed})).unwrap();
            now.live(&recorded, &mut live);
            assert_eq!(live["user_data"], CHANGED_OUTSIDE, "{changed}");
        }
    }

    #[test]
    fn adjacent_masks_and_masks_at_the_ends_match() {
        let r = Redactor::new(["one1".to_string(), "two2".to_string()]);
        let text = "one1two2 and one1";
        assert!(matches_masked(&r.text(text), text));
        assert!(!matches_masked(&r.text(text), "one1two2 and one"));
        assert!(!matches_masked("(sensitive nothex)", "x"));
    }

    #[test]
    fn empty_values_mask_nothing() {
        let r = Redactor::new([String::new()]);
        assert!(r.is_empty());
        assert_eq!(r.text("anything"), "anything");
    }
}
