//! CIDR arithmetic for pools and IPAM blocks, on top of `ipnet`.
//!
//! Counts are `u128`; the one value that does not fit (the 2^128 addresses of `::/0`) saturates to
//! `u128::MAX`, which is still "more than any block size can use".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

/// Why a CIDR string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidrError {
    #[error("the CIDR is empty")]
    Empty,
    #[error(
        "'{input}' is not a valid subnet: expected ADDRESS/PREFIX, e.g. 10.244.0.0/16 or fd00:10::/56"
    )]
    Invalid { input: String },
    #[error("'{input}' is not strictly masked: host bits are set (the network is {network})")]
    NotStrictlyMasked { input: String, network: IpNet },
}

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Parses `ADDRESS/PREFIX` and refuses host bits, as Calico does for pool CIDRs.
pub fn parse_strict(input: &str) -> Result<IpNet, CidrError> {
    let net = parse_lenient(input)?;
    if net.addr() != net.network() {
        return Err(CidrError::NotStrictlyMasked {
            input: input.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

/// Parses `ADDRESS/PREFIX`, keeping host bits (use [`canonical`] to drop them).
///
/// Reads what Go's `net.ParseCIDR` reads, which Calico and every component reading a pool use:
/// an IPv4 octet with a leading zero (`010.0.0.0`, octal elsewhere) is refused, a prefix length
/// with leading zeros (`/016`) is read as decimal, and a zone (`%eth0`) is refused. A bare address
/// is not a subnet for a pool.
pub fn parse_lenient(input: &str) -> Result<IpNet, CidrError> {
    if input.is_empty() {
        return Err(CidrError::Empty);
    }
    let invalid = || CidrError::Invalid {
        input: input.to_owned(),
    };
    let (addr, prefix) = input.split_once('/').ok_or_else(invalid)?;
    // The standard parser refuses leading zeros in IPv4 octets and zones, as Go's does.
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let digits = prefix.trim_start_matches('0');
    let prefix = if digits.is_empty() {
        0
    } else if digits.len() > 3 {
        return Err(invalid());
    } else {
        digits.parse::<u8>().map_err(|_| invalid())?
    };
    IpNet::new(addr, prefix).map_err(|_| invalid())
}

/// The network with host bits cleared; `10.0.0.0/16` and `10.0.0.0/16` written differently
/// (`::ffff:0:0/96` vs its long form) compare equal afterwards.
pub fn canonical(net: &IpNet) -> IpNet {
    net.trunc()
}

/// Calico's default `blockSize`: 26 for IPv4, 122 for IPv6.
pub fn default_block_size(family: Family) -> u8 {
    match family {
        Family::V4 => 26,
        Family::V6 => 122,
    }
}

/// The `blockSize` values Calico accepts: 20..=32 for IPv4, 116..=128 for IPv6.
pub fn block_size_range(family: Family) -> RangeInclusive<u8> {
    match family {
        Family::V4 => 20..=32,
        Family::V6 => 116..=128,
    }
}

/// Number of addresses in `net` (saturating at `u128::MAX` for `::/0`).
pub fn address_count(net: &IpNet) -> u128 {
    pow2(Family::of(net).bits() - net.prefix_len())
}

/// Number of `/block_size` blocks in `pool`; 0 when the pool is smaller than one block or
/// `block_size` exceeds the family's width.
pub fn block_count(pool: &IpNet, block_size: u8) -> u128 {
    if block_size < pool.prefix_len() || block_size > Family::of(pool).bits() {
        return 0;
    }
    pow2(block_size - pool.prefix_len())
}

fn pow2(exp: u8) -> u128 {
    if exp >= 128 { u128::MAX } else { 1u128 << exp }
}

/// The `/block_size` blocks of `pool`, in address order; empty when none fit.
pub fn blocks(pool: &IpNet, block_size: u8) -> impl Iterator<Item = IpNet> + use<> {
    let pool = pool.trunc();
    pool.subnets(block_size).into_iter().flatten()
}

/// The `/block_size` block holding `addr`.
///
/// # Panics
/// Never: a `block_size` wider than the family is clamped to the family's width.
pub fn block_of(addr: IpAddr, block_size: u8) -> IpNet {
    let width = Family::of_addr(&addr).bits();
    let prefix = block_size.min(width);
    // The prefix is clamped to the family width, so construction cannot fail.
    match addr {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new_assert(a, prefix).trunc()),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new_assert(a, prefix).trunc()),
    }
}

/// The address at position `ordinal` in `block` (Calico's allocation ordinal), if inside.
pub fn nth_address(block: &IpNet, ordinal: u128) -> Option<IpAddr> {
    if ordinal >= address_count(block) && block.prefix_len() != 0 {
        return None;
    }
    match block.trunc() {
        IpNet::V4(b) => {
            let base = u32::from(b.network()) as u128;
            let v = base.checked_add(ordinal)?;
            u32::try_from(v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v)))
        }
        IpNet::V6(b) => {
            let base = u128::from(b.network());
            base.checked_add(ordinal)
                .map(|v| IpAddr::V6(Ipv6Addr::from(v)))
        }
    }
}

/// The position of `addr` inside `block`, if it is inside.
pub fn ordinal_of(block: &IpNet, addr: IpAddr) -> Option<u128> {
    if !block.contains(&addr) {
        return None;
    }
    match (block.trunc(), addr) {
        (IpNet::V4(b), IpAddr::V4(a)) => Some((u32::from(a) - u32::from(b.network())) as u128),
        (IpNet::V6(b), IpAddr::V6(a)) => Some(u128::from(a) - u128::from(b.network())),
        _ => None,
    }
}

/// Whether two networks share at least one address (never across families).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    Family::of(a) == Family::of(b) && (a.contains(&b.network()) || b.contains(&a.network()))
}

/// Whether every address of `inner` lies in `outer`.
pub fn contains_net(outer: &IpNet, inner: &IpNet) -> bool {
    Family::of(outer) == Family::of(inner)
        && outer.prefix_len() <= inner.prefix_len()
        && outer.contains(&inner.network())
}

/// First and last address of `net` as integers of its family (for interval sweeps).
pub fn bounds(net: &IpNet) -> (u128, u128) {
    match net.trunc() {
        IpNet::V4(n) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix))
}

const fn v6(first: u16, last: u16, prefix: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, last),
        prefix,
    ))
}

/// The link-local range Calico refuses pools in: 169.254.0.0/16 or fe80::/10.
pub fn link_local(family: Family) -> IpNet {
    match family {
        Family::V4 => v4(169, 254, 0, 0, 16),
        Family::V6 => v6(0xfe80, 0, 10),
    }
}

/// Ranges no pod address may come from: loopback, multicast and the unspecified address (for
/// IPv4 the whole "this network" 0.0.0.0/8), and IPv4-mapped IPv6 addresses (never on the wire;
/// Calico's family test reads such a pool as IPv4 with a 96-128 bit prefix), with their names.
pub fn unusable_ranges(family: Family) -> &'static [(&'static str, IpNet)] {
    const V4: &[(&str, IpNet)] = &[
        ("unspecified (\"this network\")", v4(0, 0, 0, 0, 8)),
        ("loopback", v4(127, 0, 0, 0, 8)),
        ("multicast", v4(224, 0, 0, 0, 4)),
    ];
    const V6: &[(&str, IpNet)] = &[
        ("unspecified", v6(0, 0, 128)),
        ("loopback", v6(0, 1, 128)),
        ("multicast", v6(0xff00, 0, 8)),
        (
            "IPv4-mapped",
            IpNet::V6(Ipv6Net::new_assert(
                Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
                96,
            )),
        ),
    ];
    match family {
        Family::V4 => V4,
        Family::V6 => V6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn strict_parse_rejects_host_bits_and_names_the_network() {
        assert_eq!(parse_strict("10.0.0.0/16").unwrap(), net("10.0.0.0/16"));
        match parse_strict("10.0.0.1/16") {
            Err(CidrError::NotStrictlyMasked { network, .. }) => {
                assert_eq!(network, net("10.0.0.0/16"))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(parse_strict(""), Err(CidrError::Empty));
        assert!(matches!(
            parse_strict("10.0.0.0"),
            Err(CidrError::Invalid { .. })
        ));
        assert!(matches!(
            parse_strict("10.0.0.0/33"),
            Err(CidrError::Invalid { .. })
        ));
        assert!(matches!(
            parse_strict("fd00::1/64"),
            Err(CidrError::NotStrictlyMasked { .. })
        ));
    }

    #[test]
    fn parse_reads_what_gos_parse_cidr_reads() {
        assert_eq!(parse_strict("10.0.0.0/016").unwrap(), net("10.0.0.0/16"));
        assert_eq!(parse_strict("0.0.0.0/00").unwrap(), net("0.0.0.0/0"));
        assert_eq!(parse_strict("fd00::/0064").unwrap(), net("fd00::/64"));
        assert_eq!(
            parse_strict("10.0.0.0/0000000000000000000000000008").unwrap(),
            net("10.0.0.0/8")
        );
        for refused in [
            "010.0.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/-8",
            "10.0.0.0/",
            "10.0.0.0/8/8",
            "10.0.0.0/ 8",
            "10.0.0.0/256",
            "10.0.0.0/1000",
            "fd00::%eth0/64",
            "::ffff:010.0.0.0/104",
        ] {
            assert!(
                matches!(parse_lenient(refused), Err(CidrError::Invalid { .. })),
                "{refused}"
            );
        }
    }

    #[test]
    fn counts() {
        assert_eq!(address_count(&net("10.0.0.0/16")), 65536);
        assert_eq!(address_count(&net("::/0")), u128::MAX);
        assert_eq!(block_count(&net("10.0.0.0/16"), 26), 1024);
        assert_eq!(block_count(&net("10.0.0.0/27"), 26), 0);
        assert_eq!(block_count(&net("fd00::/64"), 122), 1 << 58);
        assert_eq!(blocks(&net("10.0.0.0/24"), 26).count(), 4);
        assert_eq!(blocks(&net("10.0.0.0/27"), 26).count(), 0);
    }

    #[test]
    fn block_and_ordinals() {
        let addr: IpAddr = "10.0.1.70".parse().unwrap();
        let b = block_of(addr, 26);
        assert_eq!(b, net("10.0.1.64/26"));
        assert_eq!(ordinal_of(&b, addr), Some(6));
        assert_eq!(nth_address(&b, 6), Some(addr));
        assert_eq!(nth_address(&b, 64), None);
        assert_eq!(ordinal_of(&b, "10.0.2.0".parse().unwrap()), None);
        let v6 = block_of("fd00::5".parse().unwrap(), 122);
        assert_eq!(v6, net("fd00::/122"));
        assert_eq!(nth_address(&v6, 5), Some("fd00::5".parse().unwrap()));
    }

    #[test]
    fn overlap_and_containment() {
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(!overlaps(&net("10.0.0.0/16"), &net("10.1.0.0/16")));
        assert!(!overlaps(&net("0.0.0.0/0"), &net("::/0")));
        assert!(contains_net(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(!contains_net(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert_eq!(bounds(&net("10.0.0.0/30")), (0x0a000000, 0x0a000003));
        assert_eq!(link_local(Family::V6), net("fe80::/10"));
        assert_eq!(unusable_ranges(Family::V6)[1].1, net("::1/128"));
        assert_eq!(unusable_ranges(Family::V4)[2].1, net("224.0.0.0/4"));
        assert_eq!(unusable_ranges(Family::V6)[3].1, net("::ffff:0:0/96"));
    }
}
