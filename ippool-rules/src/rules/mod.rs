//! The rules, one file per family, and the typed entry point [`check_pool`].

mod catalog;
mod create;
mod encapsulation;
mod index;
mod lifecycle;
mod metadata;
mod ownership;
mod placement;
mod selectors;
mod spec;
mod update;
mod uses;

use std::cell::OnceCell;
use std::collections::HashMap;

use ipnet::IpNet;

pub use catalog::{RuleInfo, catalog, rule_info};
pub(crate) use index::NetIndex;

use crate::cidr;
use crate::context::{ClusterContext, Operation};
use crate::model::{ApiGroup, DefaultedSpec, IpPool, IpamBlock};
use crate::report::{FieldPath, Severity};

/// A rule's verdict about one field of one pool (positions are added by [`crate::validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    /// Path inside the pool object, e.g. `spec.blockSize`.
    pub path: FieldPath,
    pub message: String,
    pub hint: Option<String>,
}

impl Finding {
    pub(crate) fn new(code: &'static str, path: FieldPath, message: impl Into<String>) -> Finding {
        Finding {
            code,
            severity: catalog::severity_of(code),
            path,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Finding {
        self.hint = Some(hint.into());
        self
    }

    /// The info diagnostic for a rule skipped for want of context.
    pub(crate) fn skipped(what: &str, missing: &str, hint: &str) -> Finding {
        Finding::new(
            "IPP005",
            FieldPath::root(),
            format!("{what} not checked: {missing} not given"),
        )
        .hint(hint)
    }
}

pub(crate) fn spec_path(field: &str) -> FieldPath {
    FieldPath::keys(&["spec", field])
}

/// A pool with its defaults applied and its network worked out once.
pub(crate) struct PoolView<'p> {
    pub pool: &'p IpPool,
    pub spec: DefaultedSpec,
    /// The pool's network (host bits cleared) when the CIDR parses.
    pub net: Option<IpNet>,
}

impl<'p> PoolView<'p> {
    pub fn new(pool: &'p IpPool) -> PoolView<'p> {
        let spec = pool.spec.defaulted();
        let net = spec.cidr.as_ref().map(cidr::canonical);
        PoolView { pool, spec, net }
    }

    pub fn name(&self) -> &str {
        self.pool.name()
    }

    pub fn is_enabled(&self) -> bool {
        self.pool.is_enabled()
    }
}

/// The context with its lookup structures, built on first use and shared by every pool checked.
pub(crate) struct Checker<'c> {
    pub ctx: &'c ClusterContext,
    pools: OnceCell<Option<NetIndex<'c, IpPool>>>,
    blocks: OnceCell<Option<NetIndex<'c, IpamBlock>>>,
    by_name: OnceCell<HashMap<&'c str, &'c IpPool>>,
}

impl<'c> Checker<'c> {
    pub fn new(ctx: &'c ClusterContext) -> Checker<'c> {
        Checker {
            ctx,
            pools: OnceCell::new(),
            blocks: OnceCell::new(),
            by_name: OnceCell::new(),
        }
    }

    /// Existing pools by network (pools whose CIDR does not parse are left out).
    pub fn pool_index(&self) -> Option<&NetIndex<'c, IpPool>> {
        self.pools
            .get_or_init(|| {
                self.ctx.pools.as_ref().map(|pools| {
                    NetIndex::new(
                        pools
                            .iter()
                            .filter_map(|p| Some((cidr::canonical(&p.spec.cidr_net()?), p))),
                    )
                })
            })
            .as_ref()
    }

    pub fn block_index(&self) -> Option<&NetIndex<'c, IpamBlock>> {
        self.blocks
            .get_or_init(|| {
                self.ctx
                    .blocks
                    .as_ref()
                    .map(|blocks| NetIndex::new(blocks.iter().filter_map(|b| Some((b.cidr()?, b)))))
            })
            .as_ref()
    }

    /// The cluster's copy of the pool named `name`, if the context has pools.
    pub fn existing(&self, name: &str) -> Option<&'c IpPool> {
        let by_name = self.by_name.get_or_init(|| {
            let pools = self.ctx.pools.iter().flatten();
            pools.rev().map(|p| (p.name(), p)).collect()
        });
        if name.is_empty() {
            return None;
        }
        by_name.get(name).copied()
    }

    /// Runs every rule that applies to `pool` under `op`.
    pub fn check(&self, pool: &IpPool, op: &Operation) -> Vec<Finding> {
        let mut out = Vec::new();
        if pool.api_group().is_none() {
            out.push(
                Finding::new(
                    "IPP003",
                    FieldPath::keys(&["apiVersion"]),
                    format!(
                        "IPPool apiVersion '{}' is not served by Calico",
                        pool.api_version
                    ),
                )
                .hint(format!(
                    "use {} (Calico API server) or {} (the CRD)",
                    ApiGroup::V3_API_VERSION,
                    ApiGroup::CRD_V1_API_VERSION
                )),
            );
        }
        let view = PoolView::new(pool);
        match op {
            Operation::Delete => {
                lifecycle::check_delete(self, &view, &mut out);
                encapsulation::check_delete(self, &view, &mut out);
                ownership::check(pool, None, &mut out);
            }
            Operation::Create | Operation::Update { .. } => {
                metadata::check(pool, &mut out);
                spec::check(&view, &mut out);
                selectors::check(&view, &mut out);
                uses::check(&view, &mut out);
                placement::check(self, &view, &mut out);
                if let Operation::Update { old } = op {
                    let old_view = PoolView::new(old);
                    update::check(&old_view, &view, &mut out);
                    encapsulation::check_update(self, &old_view, &view, &mut out);
                    lifecycle::check_disable(self, &old_view, &view, &mut out);
                    ownership::check(pool, Some(old), &mut out);
                } else {
                    create::check(self, &view, &mut out);
                    ownership::check(pool, None, &mut out);
                }
            }
        }
        out
    }
}

/// Checks one pool against the context for an operation. Findings carry paths, not positions.
pub fn check_pool(pool: &IpPool, ctx: &ClusterContext, op: &Operation) -> Vec<Finding> {
    Checker::new(ctx).check(pool, op)
}

pub(crate) use create::{BATCH_PATHS, BatchPool, check_batch};
