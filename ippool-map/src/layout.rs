//! Where everything sits on the map: each address space (a cluster CIDR, or the span of the pools
//! of one family when the cluster CIDRs are not known) with its pools and stray blocks marked, and
//! each pool as a grid of block-sized cells holding the blocks claimed from it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_ipam::index::host_of_affinity;
use ippool_rules::cidr::{self, Family};
use ippool_rules::model::{IpPool, IpamBlock};

/// A pool's grid has at most this many cells; a larger pool puts several block slots in a cell.
pub const MAX_CELLS: u128 = 4096;

/// What the map is drawn from.
#[derive(Debug, Clone, Copy, Default)]
pub struct MapInput<'a> {
    /// The cluster's pod CIDRs, when known.
    pub cluster_cidrs: &'a [IpNet],
    /// The pools in the cluster.
    pub pools: &'a [IpPool],
    /// Pools not in the cluster yet (being written): drawn dashed; one with the name of a pool in
    /// the cluster stands for it.
    pub proposed: &'a [IpPool],
    pub blocks: &'a [IpamBlock],
    /// Blocks each pool's projected growth claims, by pool name.
    pub projected: &'a [(String, u128)],
}

/// The whole map.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressMap {
    pub spaces: Vec<Space>,
    pub pools: Vec<PoolGrid>,
    /// Blocks outside every pool (left over from a deleted or edited pool).
    pub leftovers: Vec<BlockCell>,
    /// Every node holding a block, in order: a node's index picks its colour.
    pub nodes: Vec<String>,
}

/// One address space drawn as a strip, with what lies in it marked along it.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    pub cidr: IpNet,
    /// A cluster CIDR (else the span of pools that no cluster CIDR holds).
    pub cluster_cidr: bool,
    pub marks: Vec<Mark>,
}

/// A range of a strip, as fractions of its address space.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub label: String,
    pub cidr: IpNet,
    pub start: f64,
    pub end: f64,
    pub kind: MarkKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Pool,
    ProposedPool,
    Leftover,
}

/// One pool as a grid of cells, each covering `slots_per_cell` block-sized slots.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolGrid {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub enabled: bool,
    pub proposed: bool,
    pub slots: u128,
    pub slots_per_cell: u128,
    pub cells: Vec<Cell>,
    /// Slots that hold a block.
    pub claimed: u128,
    pub addresses_in_use: u128,
    /// Blocks the projected growth claims, and how many of those the pool has no room for.
    pub projected: u128,
    pub projected_short: u128,
}

/// One cell of a pool's grid.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    pub blocks: Vec<BlockCell>,
    /// Free, and claimed by the projected growth.
    pub projected: bool,
}

/// One block as the map shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockCell {
    pub cidr: IpNet,
    /// Index into [`AddressMap::nodes`] of the node it is affine to.
    pub node: Option<usize>,
    pub in_use: u64,
    pub size: u64,
    /// Its size is not its pool's blockSize.
    pub wrong_size: bool,
}

/// Lays out the map.
pub fn layout(input: &MapInput<'_>) -> AddressMap {
    let pools = merged_pools(input);
    let nodes: Vec<String> = input
        .blocks
        .iter()
        .filter_map(|b| host_of_affinity(b.spec.affinity.as_deref()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let node_index = |block: &IpamBlock| {
        host_of_affinity(block.spec.affinity.as_deref())
            .and_then(|n| nodes.binary_search_by(|x| x.as_str().cmp(n)).ok())
    };
    let mut grids: Vec<PoolGrid> = pools
        .iter()
        .filter_map(|(pool, proposed)| grid_of(pool, *proposed, input.projected))
        .collect();
    let mut leftovers = Vec::new();
    for block in input.blocks {
        let Some(net) = block.cidr() else { continue };
        let cell = |block_size: Option<u8>| BlockCell {
            cidr: net,
            node: node_index(block),
            in_use: block.allocated_count() as u64,
            size: addresses_of(&net).min(u128::from(u64::MAX)) as u64,
            wrong_size: block_size.is_some_and(|b| b != net.prefix_len()),
        };
        match grids.iter_mut().find(|g| g.cidr.contains(&net)) {
            Some(grid) => {
                let block = cell(Some(grid.block_size));
                grid.place(block);
            }
            None => leftovers.push(cell(None)),
        }
    }
    for grid in &mut grids {
        grid.mark_projected();
    }
    let spaces = spaces_of(input.cluster_cidrs, &grids, &leftovers);
    AddressMap {
        spaces,
        pools: grids,
        leftovers,
        nodes,
    }
}

/// The cluster's pools, each proposed pool standing in for the pool of its name; the flag says
/// whether a pool is proposed.
fn merged_pools<'a>(input: &MapInput<'a>) -> Vec<(&'a IpPool, bool)> {
    let proposed: BTreeSet<&str> = input.proposed.iter().map(IpPool::name).collect();
    input
        .pools
        .iter()
        .filter(|p| !proposed.contains(p.name()))
        .map(|p| (p, false))
        .chain(input.proposed.iter().map(|p| (p, true)))
        .collect()
}

fn grid_of(pool: &IpPool, proposed: bool, projected: &[(String, u128)]) -> Option<PoolGrid> {
    let spec = pool.spec.defaulted();
    let net = cidr::canonical(&spec.cidr?);
    let block_size = spec
        .block_size
        .filter(|b| (net.prefix_len()..=net.max_prefix_len()).contains(b))?;
    let slots = 1u128
        .checked_shl(u32::from(block_size - net.prefix_len()))
        .unwrap_or(u128::MAX);
    let slots_per_cell = slots.div_ceil(MAX_CELLS).next_power_of_two();
    let cells = usize::try_from(slots.div_ceil(slots_per_cell)).unwrap_or(0);
    Some(PoolGrid {
        name: pool.name().to_owned(),
        cidr: net,
        block_size,
        enabled: pool.is_enabled(),
        proposed,
        slots,
        slots_per_cell,
        cells: vec![Cell::default(); cells],
        claimed: 0,
        addresses_in_use: 0,
        projected: projected
            .iter()
            .find(|(name, _)| name == pool.name())
            .map_or(0, |(_, blocks)| *blocks),
        projected_short: 0,
    })
}

impl PoolGrid {
    /// Puts a block into the cells of the slots it covers.
    fn place(&mut self, block: BlockCell) {
        let slot_bits = u32::from(self.cidr.max_prefix_len() - self.block_size);
        let offset = address_value(block.cidr.network()) - address_value(self.cidr.network());
        let first = offset >> slot_bits;
        // A block wider than the pool's blockSize (a wrong-size block) covers several slots.
        let span = if block.cidr.prefix_len() >= self.block_size {
            1
        } else {
            1u128
                .checked_shl(u32::from(self.block_size - block.cidr.prefix_len()))
                .unwrap_or(u128::MAX)
        };
        self.claimed = self.claimed.saturating_add(span);
        self.addresses_in_use += u128::from(block.in_use);
        let last_cell = self.cells.len().saturating_sub(1);
        let cell_of = |slot: u128| {
            usize::try_from(slot / self.slots_per_cell).map_or(last_cell, |c| c.min(last_cell))
        };
        let (from, to) = (cell_of(first), cell_of(first.saturating_add(span - 1)));
        for cell in self.cells.iter_mut().take(to + 1).skip(from) {
            cell.blocks.push(block.clone());
        }
    }

    /// Marks the first free cells as the projected growth's claims; what does not fit is short.
    fn mark_projected(&mut self) {
        let mut left = self.projected;
        for cell in self.cells.iter_mut().filter(|c| c.blocks.is_empty()) {
            if left == 0 {
                break;
            }
            cell.projected = true;
            left = left.saturating_sub(self.slots_per_cell);
        }
        self.projected_short = left;
    }
}

/// The strips: every cluster CIDR, then for each family the span of what no cluster CIDR holds.
fn spaces_of(cluster_cidrs: &[IpNet], grids: &[PoolGrid], leftovers: &[BlockCell]) -> Vec<Space> {
    let mut spaces: Vec<Space> = cluster_cidrs
        .iter()
        .map(|c| Space {
            cidr: cidr::canonical(c),
            cluster_cidr: true,
            marks: Vec::new(),
        })
        .collect();
    let marks = grids
        .iter()
        .map(|g| {
            let kind = if g.proposed {
                MarkKind::ProposedPool
            } else {
                MarkKind::Pool
            };
            (g.name.clone(), g.cidr, kind)
        })
        .chain(
            leftovers
                .iter()
                .map(|b| (b.cidr.to_string(), b.cidr, MarkKind::Leftover)),
        );
    for (label, net, kind) in marks {
        let index = match spaces
            .iter()
            .position(|s| s.cidr.contains(&net) || net.contains(&s.cidr))
        {
            Some(index) => index,
            None => {
                let family = Family::of(&net);
                match spaces
                    .iter()
                    .position(|s| !s.cluster_cidr && Family::of(&s.cidr) == family)
                {
                    Some(index) => {
                        spaces[index].cidr = covering(&spaces[index].cidr, &net);
                        index
                    }
                    None => {
                        spaces.push(Space {
                            cidr: net,
                            cluster_cidr: false,
                            marks: Vec::new(),
                        });
                        spaces.len() - 1
                    }
                }
            }
        };
        spaces[index].marks.push(Mark {
            label,
            cidr: net,
            start: 0.0,
            end: 0.0,
            kind,
        });
    }
    for space in &mut spaces {
        let base = address_value(space.cidr.network());
        let size = addresses_of(&space.cidr) as f64;
        for mark in &mut space.marks {
            // A pool wider than the cluster CIDR (a finding of its own) is drawn to its edges.
            let start = address_value(mark.cidr.network()).saturating_sub(base) as f64;
            let end = start + addresses_of(&mark.cidr) as f64;
            mark.start = (start / size).clamp(0.0, 1.0);
            mark.end = (end / size).clamp(0.0, 1.0);
        }
    }
    spaces
}

/// The smallest network holding both.
fn covering(a: &IpNet, b: &IpNet) -> IpNet {
    let mut net = *a;
    while !net.contains(b) {
        match net.supernet() {
            Some(wider) => net = wider,
            None => break,
        }
    }
    net
}

fn address_value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn addresses_of(net: &IpNet) -> u128 {
    1u128
        .checked_shl(u32::from(net.max_prefix_len() - net.prefix_len()))
        .unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests;
