//! Calico's resources as the API server names them in each group, and the conversion between
//! `DynamicObject`s and the `ippool_rules::model` types: the model types are the single declaration
//! of Calico's shapes; a conversion keeps the metadata whole (so that a replace carries the
//! resourceVersion it was read at) and every field the model does not know.

use std::fmt::Debug;

use ippool_rules::model::{
    ApiGroup, BlockAffinity, IpPool, IpamBlock, IpamConfig, IpamHandle, ObjectMeta,
};
use kube::core::{ApiResource, DynamicObject};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::request_error::RequestError;

/// The group of Calico's raw CRDs (the Kubernetes datastore).
pub const CRD_GROUP: &str = "crd.projectcalico.org";
/// The group served by Calico's API server (or, from 3.32, its native v3 CRDs).
pub const V3_GROUP: &str = "projectcalico.org";

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: format!("{group}/{version}"),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

fn calico_resource_in(group: ApiGroup, kind: &str, plural: &str) -> ApiResource {
    match group {
        ApiGroup::CrdV1 => resource(CRD_GROUP, "v1", kind, plural),
        ApiGroup::V3 => resource(V3_GROUP, "v3", kind, plural),
    }
}

/// `ippools` of the given API group.
pub fn ip_pools(group: ApiGroup) -> ApiResource {
    calico_resource_in(group, "IPPool", "ippools")
}

/// `ipamblocks` in the given group (`crd.projectcalico.org/v1`, or `projectcalico.org/v3` in native v3 mode).
pub fn ipam_blocks(group: ApiGroup) -> ApiResource {
    calico_resource_in(group, "IPAMBlock", "ipamblocks")
}

/// `blockaffinities` in the given group (`crd.projectcalico.org/v1`, or `projectcalico.org/v3` in native v3 mode).
pub fn block_affinities(group: ApiGroup) -> ApiResource {
    calico_resource_in(group, "BlockAffinity", "blockaffinities")
}

/// `ipamhandles` in the given group (`crd.projectcalico.org/v1`, or `projectcalico.org/v3` in native v3 mode).
pub fn ipam_handles(group: ApiGroup) -> ApiResource {
    calico_resource_in(group, "IPAMHandle", "ipamhandles")
}

/// The IPAM configuration (cluster-scoped singleton `default`): `ipamconfigs` in
/// `crd.projectcalico.org/v1`, `ipamconfigurations` (kind `IPAMConfiguration`) in native v3 mode.
pub fn ipam_configs(group: ApiGroup) -> ApiResource {
    match group {
        ApiGroup::CrdV1 => resource(CRD_GROUP, "v1", "IPAMConfig", "ipamconfigs"),
        ApiGroup::V3 => resource(V3_GROUP, "v3", "IPAMConfiguration", "ipamconfigurations"),
    }
}

/// A Calico object type from `ippool_rules::model`, all of them cluster-scoped.
pub trait CalicoResource:
    Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }
}

macro_rules! calico_resource {
    ($ty:ty) => {
        impl CalicoResource for $ty {
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

calico_resource!(IpPool);
calico_resource!(IpamBlock);
calico_resource!(BlockAffinity);
calico_resource!(IpamHandle);
calico_resource!(IpamConfig);

/// Converts a `DynamicObject` read from `resource` into a model type. A missing apiVersion/kind
/// (list items may omit them) is filled in from the resource.
pub fn from_dynamic<T: DeserializeOwned>(
    resource: &ApiResource,
    object: DynamicObject,
) -> Result<T, RequestError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let decode = |source| RequestError::decode(format!("read {} {name}", resource.kind), source);
    let mut value = serde_json::to_value(&object).map_err(decode)?;
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| resource.api_version.clone().into());
        map.entry("kind")
            .or_insert_with(|| resource.kind.clone().into());
    }
    serde_json::from_value(value).map_err(decode)
}

/// Converts a model value into a `DynamicObject` for `resource`, keeping its metadata (name,
/// labels, resourceVersion, uid) as it is.
pub fn to_dynamic<T: CalicoResource>(
    resource: &ApiResource,
    object: &T,
) -> Result<DynamicObject, RequestError> {
    let decode =
        |source| RequestError::decode(format!("write {} {}", resource.kind, object.name()), source);
    let mut value = serde_json::to_value(object).map_err(decode)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), resource.api_version.clone().into());
        map.insert("kind".into(), resource.kind.clone().into());
    }
    serde_json::from_value(value).map_err(decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_rules::model::IpamConfig;
    use serde_json::json;

    #[test]
    fn resources_name_calico_groups() {
        let v1 = ip_pools(ApiGroup::CrdV1);
        assert_eq!(v1.api_version, "crd.projectcalico.org/v1");
        assert_eq!(v1.plural, "ippools");
        assert_eq!(ip_pools(ApiGroup::V3).api_version, "projectcalico.org/v3");
        assert_eq!(ipam_blocks(ApiGroup::CrdV1).kind, "IPAMBlock");
        assert_eq!(
            ipam_blocks(ApiGroup::V3).api_version,
            "projectcalico.org/v3"
        );
        assert_eq!(block_affinities(ApiGroup::CrdV1).plural, "blockaffinities");
        assert_eq!(ipam_handles(ApiGroup::CrdV1).kind, "IPAMHandle");
        assert_eq!(ipam_configs(ApiGroup::CrdV1).plural, "ipamconfigs");
        assert_eq!(ipam_configs(ApiGroup::V3).kind, "IPAMConfiguration");
    }

    #[test]
    fn dynamic_round_trip_keeps_metadata_and_unknown_fields() {
        let raw = json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": "10-0-0-0-30", "resourceVersion": "42", "uid": "u-1",
                         "managedFields": [{"manager": "calico"}]},
            "spec": {"cidr": "10.0.0.0/30", "affinity": "host:n1",
                     "allocations": [0, null, null, null], "unallocated": [1, 2, 3],
                     "attributes": [{"handle_id": "h", "secondary": {"node": "n1"}}],
                     "strictAffinity": false, "sequenceNumber": 7,
                     "affinityClaimTime": "2024-01-01T00:00:00Z"}
        });
        let dynamic: DynamicObject = serde_json::from_value(raw.clone()).unwrap();
        let block: IpamBlock = from_dynamic(&ipam_blocks(ApiGroup::CrdV1), dynamic).unwrap();
        assert_eq!(block.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(block.spec.allocations[0], Some(0));
        let back = to_dynamic(&ipam_blocks(ApiGroup::CrdV1), &block).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), raw);
    }

    #[test]
    fn list_items_without_type_meta_are_typed_from_the_resource() {
        let dynamic: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "default"},
            "spec": {"strictAffinity": true, "autoAllocateBlocks": true}
        }))
        .unwrap();
        let config: IpamConfig = from_dynamic(&ipam_configs(ApiGroup::CrdV1), dynamic).unwrap();
        assert_eq!(config.kind, "IPAMConfig");
        assert!(config.spec.strict_affinity);
    }

    #[test]
    fn undecodable_objects_name_the_object() {
        let dynamic: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMHandle",
            "metadata": {"name": "h1"}, "spec": {"block": {}}
        }))
        .unwrap();
        let err = from_dynamic::<IpamHandle>(&ipam_handles(ApiGroup::CrdV1), dynamic).unwrap_err();
        assert!(err.to_string().contains("IPAMHandle h1"), "{err}");
        assert!(err.decode_error().is_some(), "{err:?}");
    }
}
