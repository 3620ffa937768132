//! Properties of the CIDR arithmetic, for IPv4 and IPv6, checked against plain integer intervals.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ippool_rules::cidr::{
    CidrError, address_count, block_count, block_of, blocks, bounds, canonical, contains_net,
    nth_address, ordinal_of, overlaps, parse_strict,
};
use proptest::prelude::*;

fn v4_net() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, p)| block_of(IpAddr::V4(Ipv4Addr::from(a)), p))
}

fn v6_net() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, p)| block_of(IpAddr::V6(Ipv6Addr::from(a)), p))
}

fn any_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![v4_net(), v6_net()]
}

/// A network and another inside or near it, so overlaps are common.
fn related_pair() -> impl Strategy<Value = (IpNet, IpNet)> {
    prop_oneof![
        (any::<u32>(), 0u8..=32, 0u8..=32, any::<u32>()).prop_map(|(a, p, q, flip)| {
            let b = a ^ (flip >> p.min(31));
            (
                block_of(IpAddr::V4(Ipv4Addr::from(a)), p),
                block_of(IpAddr::V4(Ipv4Addr::from(b)), q),
            )
        }),
        (any::<u128>(), 0u8..=128, 0u8..=128, any::<u128>()).prop_map(|(a, p, q, flip)| {
            let b = a ^ (flip >> p.min(127));
            (
                block_of(IpAddr::V6(Ipv6Addr::from(a)), p),
                block_of(IpAddr::V6(Ipv6Addr::from(b)), q),
            )
        }),
        (v4_net(), v6_net()),
    ]
}

fn same_family(a: &IpNet, b: &IpNet) -> bool {
    matches!(
        (a, b),
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
    )
}

proptest! {
    #[test]
    fn text_round_trips_strictly(net in any_net()) {
        prop_assert_eq!(parse_strict(&net.to_string()), Ok(net));
        prop_assert_eq!(canonical(&net), net);
    }

    #[test]
    fn host_bits_are_refused_with_the_network(net in any_net(), offset in 1u128..1000) {
        prop_assume!(address_count(&net) > offset);
        let inside = nth_address(&net, offset).unwrap();
        let written = format!("{inside}/{}", net.prefix_len());
        let refused = matches!(
            parse_strict(&written),
            Err(CidrError::NotStrictlyMasked { network, .. }) if network == net
        );
        prop_assert!(refused);
    }

    #[test]
    fn overlap_and_containment_match_intervals((a, b) in related_pair()) {
        let (a0, a1) = bounds(&a);
        let (b0, b1) = bounds(&b);
        let same = same_family(&a, &b);
        prop_assert_eq!(overlaps(&a, &b), same && a0 <= b1 && b0 <= a1);
        prop_assert_eq!(overlaps(&a, &b), overlaps(&b, &a));
        prop_assert_eq!(contains_net(&a, &b), same && a0 <= b0 && b1 <= a1);
        prop_assert_eq!(overlaps(&a, &b), contains_net(&a, &b) || contains_net(&b, &a));
    }

    #[test]
    fn counts_match_interval_sizes(net in any_net()) {
        let (first, last) = bounds(&net);
        let expected = (last - first).saturating_add(1);
        prop_assert_eq!(address_count(&net), expected);
    }

    #[test]
    fn blocks_tile_the_pool(net in any_net(), extra in 0u8..=8) {
        let width = if matches!(net, IpNet::V4(_)) { 32 } else { 128 };
        let block_size = net.prefix_len().saturating_add(extra).min(width);
        let count = block_count(&net, block_size);
        prop_assert_eq!(count, 1u128 << (block_size - net.prefix_len()));
        let tiles: Vec<IpNet> = blocks(&net, block_size).collect();
        prop_assert_eq!(tiles.len() as u128, count);
        prop_assert!(tiles.iter().all(|t| contains_net(&net, t) && t.prefix_len() == block_size));
        prop_assert!(tiles.windows(2).all(|w| !overlaps(&w[0], &w[1])));
        prop_assert_eq!(block_count(&net, net.prefix_len().saturating_sub(1)), u128::from(net.prefix_len() == 0));
    }

    #[test]
    fn ordinals_invert_addresses(net in any_net(), ordinal in any::<u128>(), block_extra in 0u8..=16) {
        let ordinal = ordinal % address_count(&net).max(1);
        let addr = nth_address(&net, ordinal).unwrap();
        prop_assert!(net.contains(&addr));
        prop_assert_eq!(ordinal_of(&net, addr), Some(ordinal));
        let width = if matches!(net, IpNet::V4(_)) { 32 } else { 128 };
        let block = block_of(addr, net.prefix_len().saturating_add(block_extra).min(width));
        prop_assert!(contains_net(&net, &block));
        prop_assert!(block.contains(&addr));
    }
}
