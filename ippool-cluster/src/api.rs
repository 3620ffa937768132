//! Which APIs the cluster serves, decided once: how Calico's resources are served ([`Serving`]: v1
//! CRDs, Calico's API server, or native v3 CRDs), which gives the group of IP pools and of IPAM
//! objects, and the PodDisruptionBudget version (`policy/v1` from Kubernetes 1.21,
//! `policy/v1beta1` before).

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
    /// The IPAM configuration (the singleton `default`).
    IpamConfig,
}

impl CalicoKind {
    /// Words for messages ("IP pool", "IPAM block").
    pub fn noun(self) -> &'static str {
        match self {
            CalicoKind::Pool => "IP pool",
            CalicoKind::Block => "IPAM block",
            CalicoKind::Affinity => "block affinity",
            CalicoKind::Handle => "IPAM handle",
            CalicoKind::IpamConfig => "IPAM configuration",
        }
    }
}

/// The three ways a cluster serves Calico's resources. Which one is decided from what the API
/// server lists, so the same code reads and writes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serving {
    /// Calico's CRDs in `crd.projectcalico.org/v1` only: the Kubernetes datastore without Calico's
    /// API server (and Calico 3.32 in its default v1 mode).
    Crds,
    /// `projectcalico.org/v3` IP pools beside the v1 CRDs: Calico's API server (the 3.31 layout),
    /// which serves pools in v3 over the v1 objects but not IPAM blocks, affinities or handles.
    ApiServer,
    /// Calico 3.32's native `projectcalico.org/v3` CRDs, and no `crd.projectcalico.org/v1`: every
    /// resource, IPAM objects included, is a v3 object.
    NativeV3,
}

impl Serving {
    /// From what discovery found: whether `projectcalico.org/v3` serves `ippools`, and whether
    /// `crd.projectcalico.org/v1` is served at all. `None` when neither is: no Calico.
    pub fn from_served(v3_pools: bool, crd_v1: bool) -> Option<Serving> {
        match (v3_pools, crd_v1) {
            (true, true) => Some(Serving::ApiServer),
            (true, false) => Some(Serving::NativeV3),
            (false, true) => Some(Serving::Crds),
            (false, false) => None,
        }
    }

    /// The group IP pools are read and written in.
    pub fn pool_group(self) -> ApiGroup {
        match self {
            Serving::Crds => ApiGroup::CrdV1,
            Serving::ApiServer | Serving::NativeV3 => ApiGroup::V3,
        }
    }

    /// The group IPAM blocks, affinities and handles are read and written in.
    pub fn ipam_group(self) -> ApiGroup {
        match self {
            Serving::Crds | Serving::ApiServer => ApiGroup::CrdV1,
            Serving::NativeV3 => ApiGroup::V3,
        }
    }
}

/// Which Calico and policy APIs the cluster serves. Cheap to copy; build it once per process with
/// [`ServedApis::discover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedApis {
    serving: Serving,
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
    /// Asks the API server which groups it serves and picks how Calico is served and the policy
    /// version.
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
        let v3_pools = serves(resources::V3_GROUP, "v3")
            && serves_v3_pools(client).await.context(|| {
                "find out whether the cluster serves projectcalico.org/v3 IP pools".to_owned()
            })?;
        let serving = Serving::from_served(v3_pools, serves(resources::CRD_GROUP, "v1"))
            .ok_or(ApiDiscoveryError::NoCalico)?;
        let policy = if serves("policy", "v1") {
            Some(PolicyVersion::V1)
        } else if serves("policy", "v1beta1") {
            Some(PolicyVersion::V1Beta1)
        } else {
            None
        };
        Ok(ServedApis { serving, policy })
    }

    /// A fixed choice, for callers that already know (tests, tools pinned to one way).
    pub fn new(serving: Serving, policy: Option<PolicyVersion>) -> ServedApis {
        ServedApis { serving, policy }
    }

    pub fn serving(&self) -> Serving {
        self.serving
    }

    pub fn pool_group(&self) -> ApiGroup {
        self.serving.pool_group()
    }

    /// The group of IPAM blocks, affinities and handles.
    pub fn ipam_group(&self) -> ApiGroup {
        self.serving.ipam_group()
    }

    pub fn policy(&self) -> Option<PolicyVersion> {
        self.policy
    }

    /// The resource of a kind as this cluster serves it.
    pub fn resource(&self, kind: CalicoKind) -> ApiResource {
        let ipam = self.serving.ipam_group();
        match kind {
            CalicoKind::Pool => resources::ip_pools(self.pool_group()),
            CalicoKind::Block => resources::ipam_blocks(ipam),
            CalicoKind::Affinity => resources::block_affinities(ipam),
            CalicoKind::Handle => resources::ipam_handles(ipam),
            CalicoKind::IpamConfig => resources::ipam_configs(ipam),
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

/// Whether the API server lists `ippools` in projectcalico.org/v3 (Calico's API server, or Calico
/// 3.32's native v3 CRDs). A group that is listed but has no `ippools` does not count.
async fn serves_v3_pools(client: &Client) -> Result<bool, kube::Error> {
    let resources = client
        .list_api_group_resources(ApiGroup::V3_API_VERSION)
        .await?;
    Ok(resources.resources.iter().any(|r| r.name == "ippools"))
}

impl fmt::Display for ServedApis {
    /// The line `-v` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.serving {
            Serving::ApiServer => "the cluster serves projectcalico.org/v3",
            Serving::NativeV3 => "native v3 CRDs: crd.projectcalico.org/v1 is not served",
            Serving::Crds => "projectcalico.org/v3 is not served",
        };
        write!(
            f,
            "IP pools via {} ({why}); IPAM blocks, affinities and handles via {}; PodDisruptionBudgets via {}",
            self.pool_group().api_version(),
            self.serving.ipam_group().api_version(),
            self.policy
                .map_or("none (no policy API served)", |p| p.api_version()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_of_serving_has_its_groups() {
        // (v3 pools listed, crd.projectcalico.org/v1 listed) → how Calico is served
        let cases = [
            (true, true, Some(Serving::ApiServer)),
            (true, false, Some(Serving::NativeV3)),
            (false, true, Some(Serving::Crds)),
            (false, false, None),
        ];
        for (v3_pools, crd_v1, expected) in cases {
            assert_eq!(Serving::from_served(v3_pools, crd_v1), expected);
        }
        let native = ServedApis::new(Serving::NativeV3, Some(PolicyVersion::V1));
        for kind in [
            CalicoKind::Pool,
            CalicoKind::Block,
            CalicoKind::Affinity,
            CalicoKind::Handle,
        ] {
            assert!(
                native
                    .collection_path(kind)
                    .starts_with("/apis/projectcalico.org/v3/")
            );
        }
        assert!(
            native
                .to_string()
                .contains("handles via projectcalico.org/v3")
        );
    }

    #[test]
    fn paths_follow_the_chosen_group() {
        let v3 = ServedApis::new(Serving::ApiServer, Some(PolicyVersion::V1));
        assert_eq!(
            v3.collection_path(CalicoKind::Pool),
            "/apis/projectcalico.org/v3/ippools"
        );
        assert_eq!(
            v3.collection_path(CalicoKind::Block),
            "/apis/crd.projectcalico.org/v1/ipamblocks"
        );
        let v1 = ServedApis::new(Serving::Crds, Some(PolicyVersion::V1Beta1));
        assert_eq!(
            v1.resource_name(CalicoKind::Pool),
            "ippools.crd.projectcalico.org/v1"
        );
        let line = v1.to_string();
        assert!(line.contains("crd.projectcalico.org/v1 (projectcalico.org/v3 is not served)"));
        assert!(line.contains("policy/v1beta1"));
    }
}
