//! What the rules may know about the cluster, and what is being done to the pool.
//!
//! Every field is optional: a rule whose context is missing is skipped and reported as an info
//! diagnostic naming the missing context, never guessed.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::model::{IpPool, IpamBlock};

/// How far a cluster CIDR source can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strength {
    /// Authoritative (a flag the user passed, kube-controller-manager's `--cluster-cidr`): a pool
    /// outside it is an error.
    Strong,
    /// Inferred (e.g. from node `podCIDR`s or existing pools): a pool outside it is a warning.
    Weak,
}

/// The cluster's pod CIDRs and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCidrs {
    pub cidrs: Vec<IpNet>,
    /// Human-readable origin, quoted in messages (e.g. "--cluster-cidr flag").
    pub source: String,
    pub strength: Strength,
}

/// A node as the selector rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// The cluster as far as it is known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterContext {
    /// Existing pools (enabled and disabled).
    pub pools: Option<Vec<IpPool>>,
    /// Existing IPAM blocks.
    pub blocks: Option<Vec<IpamBlock>>,
    pub cluster_cidrs: Option<ClusterCidrs>,
    pub service_cidrs: Option<Vec<IpNet>>,
    pub nodes: Option<Vec<NodeInfo>>,
    /// Whether any pods with pod-network addresses exist.
    pub workloads_present: Option<bool>,
}

impl ClusterContext {
    /// The cluster as the rules must see it when `name` is the pool under validation: its own
    /// stored form is not another pool to overlap with.
    pub fn without_pool(mut self, name: &str) -> ClusterContext {
        if let Some(pools) = self.pools.as_mut() {
            pools.retain(|p| p.name() != name);
        }
        self
    }
}

/// What is being done with the pool under validation.
// The old pool is held inline as the shared API contract names it; an operation is built once
// per request, so the variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Create,
    /// Replace `old` with the pool under validation.
    Update {
        old: IpPool,
    },
    Delete,
}

impl Operation {
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update { .. } => "update",
            Operation::Delete => "delete",
        }
    }
}
