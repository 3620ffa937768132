use ippool_ipam::fixtures::{Used, block, pool};

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn blocks_sit_in_the_cells_of_their_slots_by_node_and_use() {
    let pools = [pool("default", "10.0.0.0/24", Some(26), false)];
    let used: [Used<'_>; 2] = [(0, "h0", &[]), (1, "h1", &[])];
    let blocks = [
        block("10.0.0.64/26", Some("node-b"), &used),
        block("10.0.0.192/26", Some("node-a"), &[]),
    ];
    let map = layout(&MapInput {
        pools: &pools,
        blocks: &blocks,
        ..MapInput::default()
    });
    assert_eq!(map.nodes, ["node-a", "node-b"]);
    let grid = &map.pools[0];
    assert_eq!((grid.slots, grid.slots_per_cell, grid.claimed), (4, 1, 2));
    assert_eq!(grid.addresses_in_use, 2);
    let cells: Vec<Option<(usize, u64)>> = grid
        .cells
        .iter()
        .map(|c| c.blocks.first().map(|b| (b.node.unwrap(), b.in_use)))
        .collect();
    assert_eq!(cells, [None, Some((1, 2)), None, Some((0, 0))]);
    assert!(map.leftovers.is_empty());
}

#[test]
fn wrong_sizes_leftovers_and_large_pools_are_marked() {
    let pools = [
        pool("default", "10.0.0.0/16", Some(26), false),
        pool("wide", "fd00::/48", None, false),
    ];
    let blocks = [
        // A /24 in a pool of /26 blocks covers four slots.
        block("10.0.1.0/24", Some("node-a"), &[]),
        block("10.9.0.0/26", None, &[]),
        block("fd00::40/122", Some("node-a"), &[]),
    ];
    let map = layout(&MapInput {
        pools: &pools,
        blocks: &blocks,
        cluster_cidrs: &[net("10.0.0.0/8")],
        ..MapInput::default()
    });
    let default = &map.pools[0];
    assert_eq!(default.slots, 1024);
    let wrong: Vec<usize> = (0..default.cells.len())
        .filter(|i| default.cells[*i].blocks.iter().any(|b| b.wrong_size))
        .collect();
    assert_eq!(wrong, [4, 5, 6, 7]);
    assert_eq!(default.claimed, 4);
    // A /48 of /122 blocks has 2^74 slots: the grid folds them into 4096 cells.
    let wide = &map.pools[1];
    assert_eq!(wide.slots, 1 << 74);
    assert_eq!(wide.cells.len() as u128, MAX_CELLS);
    assert_eq!(wide.slots_per_cell, 1 << 62);
    assert_eq!(wide.cells[0].blocks.len(), 1);
    assert_eq!(
        map.leftovers.iter().map(|b| b.cidr).collect::<Vec<_>>(),
        [net("10.9.0.0/26")]
    );
    // The cluster CIDR holds the IPv4 pool and the leftover; the IPv6 pool gets a span of its own.
    assert_eq!(map.spaces.len(), 2);
    let v4 = &map.spaces[0];
    assert!(v4.cluster_cidr);
    let kinds: Vec<(MarkKind, f64)> = v4.marks.iter().map(|m| (m.kind, m.start)).collect();
    assert_eq!(
        kinds,
        [(MarkKind::Pool, 0.0), (MarkKind::Leftover, 9.0 / 256.0)]
    );
    assert_eq!(map.spaces[1].cidr, net("fd00::/48"));
    assert!(!map.spaces[1].cluster_cidr);
}

#[test]
fn a_proposed_pool_stands_for_its_namesake_and_the_projection_fills_free_cells() {
    let pools = [
        pool("old", "10.0.0.0/24", Some(26), false),
        pool("a", "10.1.0.0/24", Some(26), false),
    ];
    let proposed = [
        pool("old", "10.0.0.0/24", Some(26), true),
        pool("b", "10.9.0.0/26", Some(26), false),
    ];
    let blocks = [block("10.1.0.0/26", Some("n"), &[])];
    let projected = [("a".to_owned(), 5)];
    let map = layout(&MapInput {
        pools: &pools,
        proposed: &proposed,
        blocks: &blocks,
        projected: &projected,
        ..MapInput::default()
    });
    let names: Vec<(&str, bool, bool)> = map
        .pools
        .iter()
        .map(|g| (g.name.as_str(), g.proposed, g.enabled))
        .collect();
    assert_eq!(
        names,
        [("a", false, true), ("old", true, false), ("b", true, true)]
    );
    let a = &map.pools[0];
    assert_eq!(a.cells.iter().filter(|c| c.projected).count(), 3);
    assert_eq!(a.projected_short, 2);
    // Pools of one family that no cluster CIDR holds share one span.
    assert_eq!(map.spaces.len(), 1);
    assert_eq!(map.spaces[0].cidr, net("10.0.0.0/12"));
    assert_eq!(map.spaces[0].marks.len(), 3);
}

#[test]
fn nonsense_from_pasted_text_draws_what_it_can() {
    let pools = [
        pool("too-small", "10.0.0.0/16", Some(33), false),
        pool("whole", "::/0", Some(128), false),
        pool("no-cidr", "", None, false),
    ];
    let blocks = [block("::/120", Some("n"), &[])];
    let map = layout(&MapInput {
        pools: &pools,
        blocks: &blocks,
        ..MapInput::default()
    });
    let names: Vec<&str> = map.pools.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["whole"]);
    assert_eq!(map.pools[0].cells.len() as u128, MAX_CELLS);
    assert!(map.pools[0].cells[0].blocks[0].wrong_size);
}
