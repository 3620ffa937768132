//! Ordering guards: a pool is disabled before it is deleted, emptied before it is deleted, and
//! the last pool of a family is not disabled under running workloads.

use super::{Checker, Finding, PoolView, spec_path};
use crate::cidr::Family;
use crate::model::{AllowedUse, IpPool};

pub(super) fn check_delete(checker: &Checker<'_>, view: &PoolView<'_>, out: &mut Vec<Finding>) {
    // The cluster's copy is what gets deleted; the document may be stale.
    let live = checker.existing(view.name()).unwrap_or(view.pool);
    let live = PoolView::new(live);
    if live.is_enabled() {
        out.push(
            Finding::new(
                "IPP070",
                spec_path("disabled"),
                format!("pool '{}' is still enabled: disable it first", live.name()),
            )
            .hint("set spec.disabled: true, move the pods off the pool (kubectl ippool migrate), then delete it"),
        );
    }
    let Some(net) = live.net else {
        return;
    };
    let Some(blocks) = checker.block_index() else {
        out.push(Finding::skipped(
            "addresses still allocated in the pool",
            "the cluster's IPAM blocks",
            "give the IPAM blocks (kubectl-ippool: --against a file with IPAMBlocks)",
        ));
        return;
    };
    let (mut in_use, mut tunnel, mut holding) = (0usize, 0usize, 0usize);
    for (_, block) in blocks.overlapping(&net) {
        let allocated = block.allocated_count();
        if allocated > 0 {
            in_use += allocated;
            tunnel += block.tunnel_allocation_count();
            holding += 1;
        }
    }
    if in_use > 0 {
        let tunnels = if tunnel > 0 {
            format!(" ({tunnel} of them node tunnel addresses, also in use)")
        } else {
            String::new()
        };
        out.push(
            Finding::new(
                "IPP071",
                spec_path("cidr"),
                format!(
                    "pool '{}' still has {in_use} addresses in use{tunnels} in {holding} IPAM blocks",
                    live.name()
                ),
            )
            .hint("move the pods first (kubectl ippool migrate), then delete the pool"),
        );
    }
}

fn serves_workloads(pool: &IpPool, family: Family) -> bool {
    let spec = pool.spec.defaulted();
    pool.is_enabled()
        && spec.family() == Some(family)
        && spec.allowed_uses.contains(&AllowedUse::Workload)
}

/// An update that disables the last enabled Workload pool of its family.
pub(super) fn check_disable(
    checker: &Checker<'_>,
    old: &PoolView<'_>,
    new: &PoolView<'_>,
    out: &mut Vec<Finding>,
) {
    let Some(family) = old.spec.family() else {
        return;
    };
    if !serves_workloads(old.pool, family) || new.is_enabled() {
        return;
    }
    let Some(pools) = &checker.ctx.pools else {
        out.push(Finding::skipped(
            "disabling the last enabled pool of its family",
            "the cluster's pools",
            "give the existing pools (kubectl-ippool: --against)",
        ));
        return;
    };
    let others = pools
        .iter()
        .filter(|p| p.name() != new.name() && serves_workloads(p, family))
        .count();
    if others > 0 {
        return;
    }
    match checker.ctx.workloads_present {
        Some(true) => out.push(
            Finding::new(
                "IPP072",
                spec_path("disabled"),
                format!(
                    "pool '{}' is the last enabled {family} pool for workloads: new pods will get no {family} address while it is disabled",
                    new.name()
                ),
            )
            .hint("create and enable the replacement pool first"),
        ),
        Some(false) => {}
        None => out.push(Finding::skipped(
            "disabling the last enabled pool of its family",
            "whether workloads exist",
            "check for running pods before disabling the last pool",
        )),
    }
}
