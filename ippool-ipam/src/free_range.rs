//! Free address ranges: the first range of a given length inside the cluster CIDR(s) that no
//! pool, block or service range touches (the temporary pool of a resize, `migrate --cidr auto`).

use ipnet::IpNet;
use ippool_rules::cidr::{self, Family};

/// The first range of length `prefix` inside one of `cluster` (of `family`) that overlaps none of
/// `taken`. Skips past taken ranges instead of walking every candidate, so that IPv6 ranges are
/// searched quickly.
pub fn free_range(cluster: &[IpNet], taken: &[IpNet], prefix: u8) -> Option<IpNet> {
    for outer in cluster {
        if outer.prefix_len() > prefix {
            continue;
        }
        let family = Family::of(outer);
        let bits = family.bits();
        let size: u128 = 1u128 << (bits - prefix);
        let (start, end) = cidr::bounds(outer);
        let mut candidate = start;
        loop {
            let last = candidate.checked_add(size - 1)?;
            if last > end {
                break;
            }
            let clash = taken
                .iter()
                .filter(|t| Family::of(t) == family)
                .map(cidr::bounds)
                .filter(|(s, e)| *s <= last && *e >= candidate)
                .map(|(_, e)| e)
                .max();
            match clash {
                None => return net_at(family, candidate, prefix),
                Some(taken_end) => {
                    let next = taken_end.checked_add(1)?;
                    candidate = next.div_ceil(size).checked_mul(size)?;
                }
            }
        }
    }
    None
}

fn net_at(family: Family, start: u128, prefix: u8) -> Option<IpNet> {
    let address: std::net::IpAddr = match family {
        Family::V4 => std::net::Ipv4Addr::from(u32::try_from(start).ok()?).into(),
        Family::V6 => std::net::Ipv6Addr::from(start).into(),
    };
    IpNet::new(address, prefix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn free_ranges_skip_pools_and_blocks() {
        let cluster = [net("10.0.0.0/8")];
        let taken = [net("10.0.0.0/16"), net("10.1.0.0/26")];
        assert_eq!(free_range(&cluster, &taken, 24), Some(net("10.1.1.0/24")));
        assert_eq!(free_range(&cluster, &[], 24), Some(net("10.0.0.0/24")));
        // Full: nothing.
        assert_eq!(
            free_range(&[net("10.0.0.0/24")], &[net("10.0.0.0/24")], 25),
            None
        );
        // IPv6: a taken /64 inside a /48 is skipped at once.
        let v6 = [net("fd00:10::/48")];
        assert_eq!(
            free_range(&v6, &[net("fd00:10::/64")], 120),
            Some(net("fd00:10:0:1::/120"))
        );
        // Other families are ignored.
        assert_eq!(
            free_range(&v6, &[net("10.0.0.0/8")], 64),
            Some(net("fd00:10::/64"))
        );
    }
}
