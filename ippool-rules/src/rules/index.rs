//! Finding overlapping networks without comparing every pair.
//!
//! Two CIDRs either nest or are disjoint. So the items overlapping a query network are those
//! that start inside it (a binary search over start addresses) plus those that contain it, which
//! are found by looking up each shorter prefix of the query network.

use std::collections::HashMap;

use ipnet::IpNet;

use crate::cidr::{self, Family};

pub(crate) struct NetIndex<'a, T> {
    /// Sorted by (family, first address).
    sorted: Vec<(Family, u128, &'a T, IpNet)>,
    /// Where each network's run of entries starts in `sorted`, and its length (equal networks
    /// sort next to each other).
    by_net: HashMap<IpNet, (usize, usize)>,
    /// The distinct prefix lengths present, ascending: only those can hold a containing network.
    prefixes: Vec<u8>,
}

impl<'a, T> NetIndex<'a, T> {
    pub fn new(items: impl Iterator<Item = (IpNet, &'a T)>) -> NetIndex<'a, T> {
        let mut sorted: Vec<_> = items
            .map(|(net, item)| (Family::of(&net), cidr::bounds(&net).0, item, net))
            .collect();
        sorted.sort_by_key(|(family, start, _, net)| (*family, *start, net.prefix_len()));
        let mut by_net: HashMap<IpNet, (usize, usize)> = HashMap::with_capacity(sorted.len());
        for (i, (_, _, _, net)) in sorted.iter().enumerate() {
            by_net.entry(*net).or_insert((i, 0)).1 += 1;
        }
        let mut prefixes: Vec<u8> = sorted.iter().map(|(.., net)| net.prefix_len()).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        NetIndex {
            sorted,
            by_net,
            prefixes,
        }
    }

    /// Items whose network shares an address with `net`, in address order.
    pub fn overlapping(&self, net: &IpNet) -> Vec<(IpNet, &'a T)> {
        let net = cidr::canonical(net);
        let family = Family::of(&net);
        let (start, end) = cidr::bounds(&net);
        let first = self
            .sorted
            .partition_point(|(f, s, _, _)| (*f, *s) < (family, start));
        let mut hits: Vec<usize> = self.sorted[first..]
            .iter()
            .take_while(|(f, s, _, _)| *f == family && *s <= end)
            .enumerate()
            .map(|(i, _)| first + i)
            .collect();
        let shorter = self.prefixes.iter().take_while(|p| **p < net.prefix_len());
        for &prefix in shorter {
            let Ok(outer) = IpNet::new(net.addr(), prefix) else {
                continue;
            };
            if let Some(&(first, len)) = self.by_net.get(&outer.trunc()) {
                hits.extend(first..first + len);
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter()
            .map(|i| (self.sorted[i].3, self.sorted[i].2))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_contained_containing_and_equal_networks() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "10.2.0.0/16",
            "192.168.0.0/16",
            "fd00::/64",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let index = NetIndex::new(nets.iter().map(|n| (*n, n)));
        let names = |q: &str| -> Vec<String> {
            index
                .overlapping(&q.parse().unwrap())
                .into_iter()
                .map(|(n, _)| n.to_string())
                .collect()
        };
        assert_eq!(
            names("10.1.0.0/16"),
            ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]
        );
        assert_eq!(
            names("10.1.2.128/25"),
            ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]
        );
        assert_eq!(names("172.16.0.0/12"), Vec::<String>::new());
        assert_eq!(names("0.0.0.0/0").len(), 5);
        assert_eq!(names("fd00::/48"), ["fd00::/64"]);
    }
}
