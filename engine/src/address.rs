//! Resource addresses: `TYPE.NAME` or `TYPE.NAME[KEY]`.
//!
//! An address names one resource in the spec, the plan and the state. It is
//! the user's handle on a resource (`skyplan state show aws_vpc.main`), so its
//! text form is part of the contract. Parsing and printing live here; nothing
//! about what a resource *is* does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Text with its runs of ASCII digits compared as numbers (leading zeros
/// aside, then by length, so `01` and `1` still differ).
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                let (ta, tb) = (trim_zeros(na), trim_zeros(nb));
                let order = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb)).then_with(|| na.len().cmp(&nb.len()));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

/// `TYPE.NAME[KEY]`, e.g. `aws_subnet.private[us-east-1a]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub kind: String,
    pub name: String,
    pub key: Option<String>,
}

impl Address {
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Address { kind: kind.into(), name: name.into(), key: None }
    }

    pub fn keyed(kind: impl Into<String>, name: impl Into<String>, key: impl Into<String>) -> Self {
        Address { kind: kind.into(), name: name.into(), key: Some(key.into()) }
    }
}

impl Address {
    /// The order people count in: like `Ord`, but runs of digits in the
    /// name and key compare as numbers (`cp[2]` before `cp[10]`, which the
    /// text order puts after it). Rolling groups roll in this order.
    pub fn natural_cmp(&self, other: &Address) -> std::cmp::Ordering {
        self.kind.cmp(&other.kind).then_with(|| natural(&self.name, &other.name)).then_with(|| {
            match (&self.key, &other.key) {
                (Some(a), Some(b)) => natural(a, b),
                (a, b) => a.cmp(b),
            }
        })
    }

    /// Replace `out` with the text form (what `Display` writes), reusing its
    /// buffer: cheaper than formatting when done for every resource.
    pub fn write_to(&self, out: &mut String) {
        out.clear();
        out.push_str(&self.kind);
        out.push('.');
        out.push_str(&self.name);
        if let Some(key) = &self.key {
            out.push('[');
            out.push_str(key);
            out.push(']');
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.name)?;
        if let Some(key) = &self.key {
            write!(f, "[{key}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a resource address (expected TYPE.NAME or TYPE.NAME[KEY])")]
pub struct AddressError(pub String);

/// A letter or `_`, then letters, digits, `_` and `-` (ASCII only, so
/// checked byte by byte: any byte of a non-ASCII character fails).
pub(crate) fn is_ident(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!(bytes.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && bytes[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// The parts of an address's text form, `(TYPE, NAME, KEY)`, borrowed; None
/// when it is not one. What [`Address::from_str`] accepts, without allocating.
pub(crate) fn parse_parts(s: &str) -> Option<(&str, &str, Option<&str>)> {
    let (base, key) = match byte_find(s, b'[') {
        Some(open) => {
            let key = s[open + 1..].strip_suffix(']')?;
            if key.is_empty() || key.contains(['[', ']']) {
                return None;
            }
            (&s[..open], Some(key))
        }
        None => (s, None),
    };
    let dot = byte_find(base, b'.')?;
    let (kind, name) = (&base[..dot], &base[dot + 1..]);
    if !is_ident(kind) || !is_ident(name) {
        return None;
    }
    Some((kind, name, key))
}

/// `s.find(c)` for an ASCII byte, as a plain loop: addresses and references
/// are short, where `str::find`'s memchr costs more than it saves.
pub(crate) fn byte_find(s: &str, c: u8) -> Option<usize> {
    s.bytes().position(|b| b == c)
}

/// `s.rfind(c)` for an ASCII byte; see [`byte_find`].
pub(crate) fn byte_rfind(s: &str, c: u8) -> Option<usize> {
    s.bytes().rposition(|b| b == c)
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name, key) = parse_parts(s).ok_or_else(|| AddressError(s.to_string()))?;
        Ok(Address { kind: kind.to_string(), name: name.to_string(), key: key.map(str::to_string) })
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_counts_numbers() {
        let mut addresses: Vec<Address> =
            [10, 2, 1, 0, 11].iter().map(|n| Address::keyed("aws_instance", "control_plane", n.to_string())).collect();
        addresses.push(Address::new("aws_instance", "bastion"));
        addresses.push(Address::new("aws_node", "cp10"));
        addresses.push(Address::new("aws_node", "cp9"));
        addresses.sort_by(|a, b| a.natural_cmp(b));
        let text: Vec<String> = addresses.iter().map(Address::to_string).collect();
        assert_eq!(
            text,
            [
                "aws_instance.bastion",
                "aws_instance.control_plane[0]",
                "aws_instance.control_plane[1]",
                "aws_instance.control_plane[2]",
                "aws_instance.control_plane[10]",
                "aws_instance.control_plane[11]",
                "aws_node.cp9",
                "aws_node.cp10",
            ]
        );
        assert_eq!(natural("a01", "a1"), std::cmp::Ordering::Greater, "equal numbers, the longer text after");
        assert_eq!(natural("us-east-1a", "us-east-1b"), std::cmp::Ordering::Less);
    }

    #[test]
    fn round_trips() {
        for s in ["aws_vpc.main", "aws_subnet.private[us-east-1a]", "aws_instance.control_plane[2]"] {
            assert_eq!(s.parse::<Address>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in ["", "vpc", ".a", "a.", "a.b[", "a.b[]", "a.b[x]y", "1a.b", "a.b c"] {
            assert!(s.parse::<Address>().is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn write_to_is_display() {
        let mut out = String::from("left over");
        for s in ["aws_vpc.main", "aws_subnet.private[us-east-1a]"] {
            let a: Address = s.parse().unwrap();
            a.write_to(&mut out);
            assert_eq!(out, a.to_string());
        }
    }

    #[test]
    fn orders_by_type_name_key() {
        let mut v: Vec<Address> = ["b.a", "a.b[2]", "a.b[1]", "a.b"].iter().map(|s| s.parse().unwrap()).collect();
        v.sort();
        let s: Vec<String> = v.iter().map(|a| a.to_string()).collect();
        assert_eq!(s, ["a.b", "a.b[1]", "a.b[2]", "b.a"]);
    }
}
