//! Which APIs the cluster serves, decided once: the IPPool group (`projectcalico.org/v3` when
//! served, else `crd.projectcalico.org/v1`) and the PodDisruptionBudget version (`policy/v1` from
//! Kubernetes 1.21, `policy/v1beta1` before). IPAM objects (blocks, affinities, handles) are always
//! read in `crd.projectcalico.org/v1`: Calico's API server does not serve them in v3.

use std::fmt;

use ippool_ipam::plan::PolicyVersion;
use ippool_rules::model::ApiGroup;
use kube::Client;
use kube::core::ApiResource;

use crate::request_error::{Context, RequestError};
use crate::resources;

/// A Calico resource this crate reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalicoKind {
    Pool,
    Block,
    Affinity,
    Handle,
}

impl CalicoKind {
    /// Words for messages ("IP pool", "IPAM block").
    pub fn noun(self) -> &'static str {
        match self {
            CalicoKind::Pool => "IP pool",
            CalicoKind::Block => "IPAM block",
            CalicoKind::Affinity => "block affinity",
            CalicoKind::Handle => "IPAM handle",
        }
    }
}

/// Which Calico and policy APIs the cluster serves. Cheap to copy; build it once per process with
/// [`ServedApis::discover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedApis {
    pool_group: ApiGroup,
    policy: Option<PolicyVersion>,
}

/// Discovery failed, or the cluster has no Calico.
#[derive(Debug, thiserror::Error)]
pub enum ApiDiscoveryError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "the cluster serves no IPPool API (neither projectcalico.org/v3 nor crd.projectcalico.org/v1); \
         is Calico installed, and is this the right cluster (--context)?"
    )]
    NoCalico,
}

impl ServedApis {
    /// Asks the API server which groups it serves and picks the IPPool group and policy version.
    pub async fn discover(client: &Client) -> Result<ServedApis, ApiDiscoveryError> {
        let groups = client
            .list_api_groups()
            .await
            .context(|| "discover the APIs the cluster serves (GET /apis)".to_owned())?;
        let serves = |group: &str, version: &str| {
            groups
                .groups
                .iter()
                .any(|g| g.name == group && g.versions.iter().any(|v| v.version == version))
        };
        let v3 = crate::view::serves_v3_pools(client).await.context(|| {
            "find out whether the cluster serves projectcalico.org/v3 IP pools".to_owned()
        })?;
        let pool_group = if v3 {
            ApiGroup::V3
        } else if serves("crd.projectcalico.org", "v1") {
            ApiGroup::CrdV1
        } else {
            return Err(ApiDiscoveryError::NoCalico);
        };
        let policy = if serves("policy", "v1") {
            Some(PolicyVersion::V1)
        } else if serves("policy", "v1beta1") {
            Some(PolicyVersion::V1Beta1)
        } else {
            None
        };
        Ok(ServedApis { pool_group, policy })
    }

    /// A fixed choice, for callers that already know (tests, tools pinned to one group).
    pub fn new(pool_group: ApiGroup, policy: Option<PolicyVersion>) -> ServedApis {
        ServedApis { pool_group, policy }
    }

    pub fn pool_group(&self) -> ApiGroup {
        self.pool_group
    }

    pub fn policy(&self) -> Option<PolicyVersion> {
        self.policy
    }

    /// The resource of a kind as this cluster serves it.
    pub fn resource(&self, kind: CalicoKind) -> ApiResource {
        match kind {
            CalicoKind::Pool => resources::ip_pools(self.pool_group),
            CalicoKind::Block => resources::ipam_blocks(),
            CalicoKind::Affinity => resources::block_affinities(),
            CalicoKind::Handle => resources::ipam_handles(),
        }
    }

    /// The collection URL path, e.g. `/apis/crd.projectcalico.org/v1/ipamblocks`.
    pub fn collection_path(&self, kind: CalicoKind) -> String {
        let r = self.resource(kind);
        format!("/apis/{}/{}", r.api_version, r.plural)
    }

    /// `ipamblocks.crd.projectcalico.org/v1`, for messages.
    pub fn resource_name(&self, kind: CalicoKind) -> String {
        let r = self.resource(kind);
        format!("{}.{}/{}", r.plural, r.group, r.version)
    }
}

impl fmt::Display for ServedApis {
    /// The line `-v` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.pool_group {
            ApiGroup::V3 => "the cluster serves projectcalico.org/v3",
            ApiGroup::CrdV1 => "projectcalico.org/v3 is not served",
        };
        write!(
            f,
            "IP pools via {} ({why}); IPAM blocks, affinities and handles via {}; PodDisruptionBudgets via {}",
            self.pool_group.api_version(),
            ApiGroup::CRD_V1_API_VERSION,
            self.policy
                .map_or("none (no policy API served)", |p| p.api_version()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_chosen_group() {
        let v3 = ServedApis::new(ApiGroup::V3, Some(PolicyVersion::V1));
        assert_eq!(
            v3.collection_path(CalicoKind::Pool),
            "/apis/projectcalico.org/v3/ippools"
        );
        assert_eq!(
            v3.collection_path(CalicoKind::Block),
            "/apis/crd.projectcalico.org/v1/ipamblocks"
        );
        let v1 = ServedApis::new(ApiGroup::CrdV1, Some(PolicyVersion::V1Beta1));
        assert_eq!(
            v1.resource_name(CalicoKind::Pool),
            "ippools.crd.projectcalico.org/v1"
        );
        let line = v1.to_string();
        assert!(line.contains("crd.projectcalico.org/v1 (projectcalico.org/v3 is not served)"));
        assert!(line.contains("policy/v1beta1"));
    }
}
