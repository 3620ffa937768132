//! The cluster and the change as a caller describes them by hand, without a cluster to read:
//! `kubectl ippool validate --cluster-cidr/--service-cidr/--against/--old` and the WebAssembly
//! validator's `options`. Both turn them into the rules' inputs here, so the two agree.

use ipnet::IpNet;

use crate::context::{ClusterCidrs, ClusterContext, Strength};
use crate::model::IpPool;
use crate::report::Report;
use crate::validate::{Source, load_context_objects, parse_pools};

/// Where hand-given cluster CIDRs came from, quoted by the rules in their messages.
pub const CLUSTER_CIDRS_SOURCE: &str = "--cluster-cidr flag";

/// The rules' context from what the caller gave: cluster CIDRs (authoritative, as
/// kube-controller-manager's `--cluster-cidr`), service CIDRs, and texts holding the pools and
/// blocks already in the cluster. What is not given stays unknown, so the rules needing it say
/// it was not checked. An unreadable context text is returned as its report.
pub fn described_context(
    cluster_cidrs: &[IpNet],
    service_cidrs: &[IpNet],
    against: &[Source<'_>],
) -> Result<ClusterContext, Report> {
    let mut ctx = ClusterContext::default();
    if !cluster_cidrs.is_empty() {
        ctx.cluster_cidrs = Some(ClusterCidrs {
            cidrs: cluster_cidrs.to_vec(),
            source: CLUSTER_CIDRS_SOURCE.to_owned(),
            strength: Strength::Strong,
        });
    }
    if !service_cidrs.is_empty() {
        ctx.service_cidrs = Some(service_cidrs.to_vec());
    }
    if !against.is_empty() {
        let (pools, blocks) = load_context_objects(against)?;
        ctx.pools = Some(pools);
        ctx.blocks = Some(blocks);
    }
    Ok(ctx)
}

/// Why the pool before an update could not be had from its text.
#[derive(Debug, thiserror::Error)]
pub enum OldPoolError {
    #[error("the pool before the update could not be read")]
    Unreadable(Report),
    #[error("the text of the pool before the update holds {0} IPPools, not exactly one")]
    Count(usize),
}

/// The pool as it is in the cluster before an update: the text must hold exactly one IPPool.
pub fn old_pool(source: Source<'_>) -> Result<IpPool, OldPoolError> {
    let mut pools = parse_pools(source).map_err(OldPoolError::Unreadable)?;
    match pools.len() {
        1 => Ok(pools.remove(0)),
        n => Err(OldPoolError::Count(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n";

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn what_is_not_given_stays_unknown() {
        assert_eq!(
            described_context(&[], &[], &[]).unwrap(),
            ClusterContext::default()
        );
        let against = [Source {
            name: "a",
            text: POOL,
        }];
        let ctx =
            described_context(&[net("10.0.0.0/8")], &[net("10.96.0.0/12")], &against).unwrap();
        let cidrs = ctx.cluster_cidrs.unwrap();
        assert_eq!(cidrs.cidrs, vec![net("10.0.0.0/8")]);
        assert_eq!(cidrs.source, CLUSTER_CIDRS_SOURCE);
        assert_eq!(cidrs.strength, Strength::Strong);
        assert_eq!(ctx.service_cidrs, Some(vec![net("10.96.0.0/12")]));
        assert_eq!(ctx.pools.unwrap().len(), 1);
        assert_eq!(ctx.blocks, Some(vec![]));
    }

    #[test]
    fn the_old_pool_is_exactly_one_readable_pool() {
        let one = old_pool(Source {
            name: "old",
            text: POOL,
        })
        .unwrap();
        assert_eq!(one.metadata.name.as_deref(), Some("p"));
        let two = format!("{POOL}---\n{}", POOL.replace("name: p", "name: q"));
        assert!(matches!(
            old_pool(Source {
                name: "old",
                text: &two
            }),
            Err(OldPoolError::Count(2))
        ));
        let bad = old_pool(Source {
            name: "old",
            text: "kind: IPAMBlock\n",
        });
        assert!(matches!(bad, Err(OldPoolError::Unreadable(_))), "{bad:?}");
    }
}
