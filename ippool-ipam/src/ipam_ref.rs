//! The IPAM objects an analysis picked and a release acts on, as they were read: enough to name
//! them, and the resourceVersion the decision was made on, which the release's writes are
//! conditional on.

use serde::Serialize;

/// A block as read: name, CIDR, and the resourceVersion the decision was made on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockRef {
    pub name: String,
    pub cidr: String,
    pub resource_version: Option<String>,
}

/// An affinity as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AffinityRef {
    pub name: String,
    pub node: String,
    pub cidr: String,
    pub state: String,
    pub resource_version: Option<String>,
}
