//! IPv4 CIDR blocks: parsing what the user wrote, and carving a VPC block
//! into equal subnets.
//!
//! Small on purpose: the blueprint needs to check `vpc_cidr` and `ssh_cidrs`
//! and to split one block into power-of-two pieces, nothing more. Which piece
//! becomes which subnet is the network layout's business (`network.rs`).

use std::fmt;
use std::str::FromStr;

/// An IPv4 network in canonical form: `addr` has no bits set past `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    addr: u32,
    prefix: u8,
}

/// Why a string is not a canonical IPv4 CIDR block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// Not `A.B.C.D/N` with octets 0..=255 and N 0..=32.
    Malformed,
    /// A well-formed address with host bits set (`10.0.0.1/16`); AWS wants
    /// the network address, given here.
    HostBitsSet { canonical: Ipv4Cidr },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Malformed => write!(f, "is not an IPv4 CIDR block (A.B.C.D/N)"),
            CidrError::HostBitsSet { canonical } => {
                write!(f, "has host bits set past /{}; the network is {canonical}", canonical.prefix)
            }
        }
    }
}

impl Ipv4Cidr {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// The prefix of the pieces when this block is cut into at least `count`
    /// equal power-of-two pieces (`count` rounded up to a power of two).
    pub fn split_prefix(&self, count: usize) -> u32 {
        u32::from(self.prefix) + count.max(1).next_power_of_two().trailing_zeros()
    }

    /// The first `count` of the equal power-of-two pieces this block cuts
    /// into, in address order. `None` when the pieces would be smaller than a
    /// single address.
    pub fn split(&self, count: usize) -> Option<Vec<Ipv4Cidr>> {
        let prefix = self.split_prefix(count);
        if prefix > 32 {
            return None;
        }
        let step = 1u64 << (32 - prefix);
        Some(
            (0..count as u64)
                .map(|i| Ipv4Cidr { addr: (u64::from(self.addr) + i * step) as u32, prefix: prefix as u8 })
                .collect(),
        )
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.addr.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}/{}", self.prefix)
    }
}

/// A decimal number without sign or leading zeros (`010` is ambiguous:
/// some tools read it as octal).
fn parse_decimal(s: &str, max: u32) -> Option<u32> {
    let ok =
        !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    let n: u32 = if ok { s.parse().ok()? } else { return None };
    (n <= max).then_some(n)
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = s.split_once('/').ok_or(CidrError::Malformed)?;
        let prefix = parse_decimal(prefix, 32).ok_or(CidrError::Malformed)? as u8;
        let octets: Vec<&str> = ip.split('.').collect();
        if octets.len() != 4 {
            return Err(CidrError::Malformed);
        }
        let mut addr = 0u32;
        for octet in octets {
            addr = addr << 8 | parse_decimal(octet, 255).ok_or(CidrError::Malformed)?;
        }
        let canonical = Ipv4Cidr { addr: addr & Self::mask(prefix), prefix };
        if canonical.addr != addr {
            return Err(CidrError::HostBitsSet { canonical });
        }
        Ok(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    impl Ipv4Cidr {
        /// How many addresses the block holds.
        fn size(&self) -> u64 {
            1u64 << (32 - u32::from(self.prefix))
        }

        /// Whether `other` lies wholly inside this block.
        fn contains(&self, other: &Ipv4Cidr) -> bool {
            other.prefix >= self.prefix && other.addr & Self::mask(self.prefix) == self.addr
        }

        fn overlaps(&self, other: &Ipv4Cidr) -> bool {
            self.contains(other) || other.contains(self)
        }
    }

    #[test]
    fn parses_and_prints() {
        for s in ["10.0.0.0/16", "0.0.0.0/0", "203.0.113.7/32", "192.168.0.0/24"] {
            assert_eq!(cidr(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "10.0.0.0",
            "10.0.0/16",
            "10.0.0.0.0/16",
            "10.0.0.256/32",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/",
            "10.00.0.0/16",
            "10.0.0.0/016",
            "+1.0.0.0/8",
            "a.b.c.d/8",
            " 10.0.0.0/16",
            "::/0",
        ] {
            assert_eq!(s.parse::<Ipv4Cidr>(), Err(CidrError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn host_bits_name_the_network() {
        let err = "10.0.0.1/16".parse::<Ipv4Cidr>().unwrap_err();
        assert_eq!(err, CidrError::HostBitsSet { canonical: cidr("10.0.0.0/16") });
        assert!(err.to_string().contains("10.0.0.0/16"), "{err}");
    }

    #[test]
    fn containment_and_overlap() {
        let vpc = cidr("10.0.0.0/16");
        assert!(vpc.contains(&cidr("10.0.255.0/24")));
        assert!(!vpc.contains(&cidr("10.1.0.0/24")));
        assert!(!vpc.contains(&cidr("10.0.0.0/8")));
        assert!(vpc.overlaps(&cidr("10.0.0.0/8")));
        assert!(!cidr("10.0.0.0/17").overlaps(&cidr("10.0.128.0/17")));
        assert!(cidr("0.0.0.0/0").contains(&vpc));
    }

    #[test]
    fn split_rounds_up_to_a_power_of_two() {
        let vpc = cidr("10.0.0.0/16");
        let pieces: Vec<String> = vpc.split(6).unwrap().iter().map(|c| c.to_string()).collect();
        assert_eq!(
            pieces,
            ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19", "10.0.96.0/19", "10.0.128.0/19", "10.0.160.0/19"]
        );
        assert_eq!(vpc.split(1).unwrap(), vec![vpc]);
        assert_eq!(vpc.split_prefix(2), 17);
        assert_eq!(vpc.split_prefix(12), 20);
        assert!(cidr("10.0.0.0/31").split(4).is_none());
    }

    /// The property the network layout relies on, for every AZ count the
    /// blueprint allows and the VPC sizes users pick most.
    #[test]
    fn carving_two_subnets_per_az_never_overlaps_and_stays_inside() {
        for vpc in ["10.0.0.0/16", "172.20.16.0/20"].map(cidr) {
            for azs in 1..=6 {
                let pieces = vpc.split(2 * azs).unwrap();
                assert_eq!(pieces.len(), 2 * azs);
                for (i, a) in pieces.iter().enumerate() {
                    assert!(vpc.contains(a), "{a} outside {vpc}");
                    assert_eq!(u32::from(a.prefix()), vpc.split_prefix(2 * azs));
                    for b in &pieces[i + 1..] {
                        assert!(!a.overlaps(b), "{a} overlaps {b} ({azs} AZs in {vpc})");
                    }
                }
                let used: u64 = pieces.iter().map(Ipv4Cidr::size).sum();
                assert!(used * 2 > vpc.size(), "at least half of {vpc} is used");
            }
        }
    }
}
