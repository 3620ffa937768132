//! Creating a pool: no overlap with any existing pool (disabled ones too), no existing blocks of
//! another size inside it, and no overlap or name clash between pools created together.

use std::collections::HashMap;

use super::{Checker, Finding, NetIndex, PoolView, spec_path};
use crate::cidr;
use crate::context::Operation;
use crate::model::IpPool;
use crate::report::FieldPath;

/// How many conflicting blocks a message names.
const NAMED_BLOCKS: usize = 3;

pub(super) fn check(checker: &Checker<'_>, view: &PoolView<'_>, out: &mut Vec<Finding>) {
    let Some(net) = view.net else {
        return;
    };
    match checker.pool_index() {
        None => out.push(Finding::skipped(
            "overlap with existing pools",
            "the cluster's pools",
            "give the existing pools (kubectl-ippool: --against)",
        )),
        Some(pools) => {
            if checker.existing(view.name()).is_some() {
                out.push(
                    Finding::new(
                        "IPP082",
                        FieldPath::keys(&["metadata", "name"]),
                        format!("a pool named '{}' already exists: creating it again fails", view.name()),
                    )
                    .hint("to change the existing pool, validate an update (kubectl-ippool: --operation update --old FILE)"),
                );
            }
            for (other_net, other) in pools.overlapping(&net) {
                // Calico skips the pool's own name: that case is an update (above).
                if other.name() == view.name() {
                    continue;
                }
                out.push(
                    Finding::new(
                        "IPP080",
                        spec_path("cidr"),
                        format!(
                            "IPPool({}) CIDR overlaps with IPPool({}) CIDR {}",
                            view.name(),
                            other.name(),
                            other
                                .spec
                                .cidr
                                .as_deref()
                                .map_or_else(|| other_net.to_string(), str::to_owned)
                        ),
                    )
                    .hint(
                        "choose a CIDR that overlaps no existing pool (disabled pools count too)",
                    ),
                );
            }
        }
    }
    check_blocks(checker, view, net, out);
}

fn check_blocks(
    checker: &Checker<'_>,
    view: &PoolView<'_>,
    net: ipnet::IpNet,
    out: &mut Vec<Finding>,
) {
    let Some(block_size) = view.spec.block_size else {
        return;
    };
    let Some(blocks) = checker.block_index() else {
        out.push(Finding::skipped(
            "conflict with existing IPAM blocks",
            "the cluster's IPAM blocks",
            "give the IPAM blocks (kubectl-ippool: --against a file with IPAMBlocks)",
        ));
        return;
    };
    let conflicting: Vec<ipnet::IpNet> = blocks
        .overlapping(&net)
        .into_iter()
        .map(|(block_net, _)| block_net)
        .filter(|b| b.prefix_len() != block_size)
        .collect();
    if conflicting.is_empty() {
        return;
    }
    let named: Vec<String> = conflicting
        .iter()
        .take(NAMED_BLOCKS)
        .map(ToString::to_string)
        .collect();
    let more = if conflicting.len() > NAMED_BLOCKS {
        ", …"
    } else {
        ""
    };
    out.push(
        Finding::new(
            "IPP081",
            spec_path("blockSize"),
            format!(
                "IPPool blockSize /{block_size} conflicts with {} existing IPAM blocks of a different size ({}{more})",
                conflicting.len(),
                named.join(", ")
            ),
        )
        .hint("use the existing blocks' size, or remove the leftover blocks and affinities first (kubectl ippool resize does this)"),
    );
}

/// The fields [`check_batch`] reports at, so callers can resolve their positions in advance.
pub(crate) const BATCH_PATHS: [&[&str]; 2] = [&["spec", "cidr"], &["metadata", "name"]];

/// What the checks across one input need of each pool.
pub(crate) struct BatchPool {
    pub name: String,
    pub net: Option<ipnet::IpNet>,
}

impl BatchPool {
    pub fn of(pool: &IpPool) -> BatchPool {
        BatchPool {
            name: pool.name().to_owned(),
            net: pool.spec.cidr_net().map(|n| cidr::canonical(&n)),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks across the pools of one input: duplicate names always, overlaps on create. Returns
/// (position in `pools`, finding) pairs; the later pool of a pair carries the finding.
pub(crate) fn check_batch(pools: &[&BatchPool], op: &Operation) -> Vec<(usize, Finding)> {
    let mut out = Vec::new();
    let mut first_by_name: HashMap<&str, usize> = HashMap::new();
    for (i, pool) in pools.iter().enumerate() {
        let name = pool.name();
        if name.is_empty() {
            continue;
        }
        if let Some(&first) = first_by_name.get(name) {
            out.push((
                i,
                Finding::new(
                    "IPP084",
                    FieldPath::keys(&["metadata", "name"]),
                    format!(
                        "pool name '{name}' is also used by pool #{} of this input",
                        first + 1
                    ),
                )
                .hint("give each pool a unique name"),
            ));
        } else {
            first_by_name.insert(name, i);
        }
    }
    if !matches!(op, Operation::Create) {
        return out;
    }
    let nets: Vec<(ipnet::IpNet, usize)> = pools
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((p.net?, i)))
        .collect();
    let positions: Vec<usize> = nets.iter().map(|(_, i)| *i).collect();
    let index = NetIndex::new(
        nets.iter()
            .zip(&positions)
            .map(|((net, _), pos)| (*net, pos)),
    );
    for (net, i) in &nets {
        for (other_net, &j) in index.overlapping(net) {
            if j < *i {
                out.push((
                    *i,
                    Finding::new(
                        "IPP083",
                        spec_path("cidr"),
                        format!(
                            "pool {net} overlaps pool '{}' ({other_net}), pool #{} of this input",
                            pools[j].name(),
                            j + 1
                        ),
                    )
                    .hint("give each pool its own range"),
                ));
            }
        }
    }
    out
}
