//! Kubernetes access to Calico's resources through `DynamicObject`, typed as `ippool_rules::model`
//! values: the model types are the single declaration of Calico's shapes, and this module only
//! converts (spec via serde_json, metadata kept whole so that a replace carries the
//! resourceVersion it was read at and fails with a conflict when the object changed since).

use std::fmt::Debug;
use std::marker::PhantomData;

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use ippool_rules::model::{
    ApiGroup, BlockAffinity, IpPool, IpamBlock, IpamConfig, IpamHandle, ObjectMeta,
};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt as _, watcher};
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

/// `ippools` of the given API group.
pub fn ip_pools(group: ApiGroup) -> ApiResource {
    match group {
        ApiGroup::CrdV1 => resource(CRD_GROUP, "v1", "IPPool", "ippools"),
        ApiGroup::V3 => resource(V3_GROUP, "v3", "IPPool", "ippools"),
    }
}

/// `ipamblocks.crd.projectcalico.org`.
pub fn ipam_blocks() -> ApiResource {
    resource(CRD_GROUP, "v1", "IPAMBlock", "ipamblocks")
}

/// `blockaffinities.crd.projectcalico.org`.
pub fn block_affinities() -> ApiResource {
    resource(CRD_GROUP, "v1", "BlockAffinity", "blockaffinities")
}

/// `ipamhandles.crd.projectcalico.org`.
pub fn ipam_handles() -> ApiResource {
    resource(CRD_GROUP, "v1", "IPAMHandle", "ipamhandles")
}

/// `ipamconfigs.crd.projectcalico.org` (cluster-scoped singleton `default`).
pub fn ipam_configs() -> ApiResource {
    resource(CRD_GROUP, "v1", "IPAMConfig", "ipamconfigs")
}

/// A Calico object type from `ippool_rules::model`, all of them cluster-scoped.
pub trait CalicoResource:
    Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
    /// The resource this type is read from unless told otherwise.
    fn default_resource() -> ApiResource;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }
}

macro_rules! calico_resource {
    ($ty:ty, $default:expr) => {
        impl CalicoResource for $ty {
            fn default_resource() -> ApiResource {
                $default
            }
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

calico_resource!(IpPool, ip_pools(ApiGroup::CrdV1));
calico_resource!(IpamBlock, ipam_blocks());
calico_resource!(BlockAffinity, block_affinities());
calico_resource!(IpamHandle, ipam_handles());
calico_resource!(IpamConfig, ipam_configs());

/// Converts a `DynamicObject` read from `resource` into a model type. A missing apiVersion/kind
/// (list items may omit them) is filled in from the resource.
pub fn from_dynamic<T: CalicoResource>(
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

/// Page size for lists: big enough for few round trips, small enough to keep responses modest.
const LIST_PAGE: u32 = 500;

/// Typed access to one Calico resource (cluster-scoped).
pub struct CalicoApi<T> {
    api: Api<DynamicObject>,
    resource: ApiResource,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for CalicoApi<T> {
    fn clone(&self) -> Self {
        CalicoApi {
            api: self.api.clone(),
            resource: self.resource.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: CalicoResource> CalicoApi<T> {
    /// Access through the type's default resource (crd.projectcalico.org/v1).
    pub fn new(client: Client) -> Self {
        Self::with_resource(client, T::default_resource())
    }

    /// Access through a given resource, e.g. `ip_pools(ApiGroup::V3)`.
    pub fn with_resource(client: Client, resource: ApiResource) -> Self {
        CalicoApi {
            api: Api::all_with(client, &resource),
            resource,
            _type: PhantomData,
        }
    }

    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    /// The untyped API, for calls this wrapper does not cover.
    pub fn dynamic(&self) -> &Api<DynamicObject> {
        &self.api
    }

    /// What a request does, for its error: "replace IPPool blue (ippools.crd.projectcalico.org/v1)".
    fn action(&self, verb: &str, name: &str) -> String {
        let r = &self.resource;
        format!(
            "{verb} {} {name} ({}.{}/{})",
            r.kind, r.plural, r.group, r.version
        )
    }

    /// The object, or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<T>, RequestError> {
        match self.api.get_opt(name).await {
            Ok(Some(object)) => from_dynamic(&self.resource, object).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(RequestError::new(self.action("get", name), e)),
        }
    }

    /// Every object, read page by page.
    pub async fn list(&self) -> Result<Vec<T>, RequestError> {
        let mut out = Vec::new();
        let mut params = ListParams::default().limit(LIST_PAGE);
        loop {
            let page = self
                .api
                .list(&params)
                .await
                .map_err(|e| RequestError::new(self.action("list", "(all)"), e))?;
            let token = page.metadata.continue_.clone();
            for object in page.items {
                out.push(from_dynamic(&self.resource, object)?);
            }
            match token {
                Some(token) if !token.is_empty() => {
                    params = ListParams::default()
                        .limit(LIST_PAGE)
                        .continue_token(&token)
                }
                _ => return Ok(out),
            }
        }
    }

    /// Creates the object; `AlreadyExists` when the name is taken.
    pub async fn create(&self, object: &T) -> Result<T, RequestError> {
        let mut dynamic = to_dynamic(&self.resource, object)?;
        // A create must not carry a version; callers may pass an object they built from a read.
        dynamic.metadata.resource_version = None;
        dynamic.metadata.uid = None;
        let created = self
            .api
            .create(&PostParams::default(), &dynamic)
            .await
            .map_err(|e| RequestError::new(self.action("create", object.name()), e))?;
        from_dynamic(&self.resource, created)
    }

    /// Replaces the object, conditional on the resourceVersion it carries: `Conflict` when the
    /// object changed since it was read.
    pub async fn replace(&self, object: &T) -> Result<T, RequestError> {
        let name = object.name();
        if object.metadata().resource_version.is_none() {
            return Err(RequestError::missing_resource_version(
                self.action("replace", name),
            ));
        }
        let dynamic = to_dynamic(&self.resource, object)?;
        let replaced = self
            .api
            .replace(name, &PostParams::default(), &dynamic)
            .await
            .map_err(|e| RequestError::new(self.action("replace", name), e))?;
        from_dynamic(&self.resource, replaced)
    }

    /// Deletes the object, conditional on its uid and resourceVersion when given (`Conflict` when
    /// they no longer match). Returns whether it existed.
    pub async fn delete(
        &self,
        name: &str,
        preconditions: Option<Preconditions>,
    ) -> Result<bool, RequestError> {
        let mut params = DeleteParams::default();
        if let Some(p) = preconditions {
            params = params.preconditions(p);
        }
        match self.api.delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(e) => match RequestError::new(self.action("delete", name), e) {
                e if e.is_not_found() => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Deletes exactly the version of `object` that was read: its uid and resourceVersion are
    /// the preconditions.
    pub async fn delete_read(&self, object: &T) -> Result<bool, RequestError> {
        let meta = object.metadata();
        self.delete(
            object.name(),
            Some(Preconditions {
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
            }),
        )
        .await
    }

    /// A watch of every object of this resource (kube's `watcher` with its default backoff:
    /// relists and resumes by itself), typed. An object that does not decode is reported as an
    /// error item; the watch goes on.
    pub fn watch(
        &self,
        config: watcher::Config,
    ) -> impl Stream<Item = Result<watcher::Event<T>, RequestError>> + Send + use<T> {
        let resource = self.resource.clone();
        let action = format!(
            "watch {} ({}.{}/{})",
            resource.kind, resource.plural, resource.group, resource.version
        );
        watcher(self.api.clone(), config)
            .default_backoff()
            .map_err(move |source| RequestError::watch(action.clone(), source))
            .map(move |event| {
                let event = event?;
                let typed = match event {
                    watcher::Event::Apply(o) => watcher::Event::Apply(from_dynamic(&resource, o)?),
                    watcher::Event::Delete(o) => {
                        watcher::Event::Delete(from_dynamic(&resource, o)?)
                    }
                    watcher::Event::Init => watcher::Event::Init,
                    watcher::Event::InitApply(o) => {
                        watcher::Event::InitApply(from_dynamic(&resource, o)?)
                    }
                    watcher::Event::InitDone => watcher::Event::InitDone,
                };
                Ok(typed)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_name_calico_groups() {
        let v1 = ip_pools(ApiGroup::CrdV1);
        assert_eq!(v1.api_version, "crd.projectcalico.org/v1");
        assert_eq!(v1.plural, "ippools");
        assert_eq!(ip_pools(ApiGroup::V3).api_version, "projectcalico.org/v3");
        assert_eq!(ipam_blocks().kind, "IPAMBlock");
        assert_eq!(block_affinities().plural, "blockaffinities");
        assert_eq!(ipam_handles().kind, "IPAMHandle");
        assert_eq!(ipam_configs().plural, "ipamconfigs");
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
        let block: IpamBlock = from_dynamic(&ipam_blocks(), dynamic).unwrap();
        assert_eq!(block.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(block.spec.allocations[0], Some(0));
        let back = to_dynamic(&ipam_blocks(), &block).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), raw);
    }

    #[test]
    fn list_items_without_type_meta_are_typed_from_the_resource() {
        let dynamic: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "default"},
            "spec": {"strictAffinity": true, "autoAllocateBlocks": true}
        }))
        .unwrap();
        let config: IpamConfig = from_dynamic(&ipam_configs(), dynamic).unwrap();
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
        let err = from_dynamic::<IpamHandle>(&ipam_handles(), dynamic).unwrap_err();
        assert!(err.to_string().contains("IPAMHandle h1"), "{err}");
        assert!(err.decode_error().is_some(), "{err:?}");
    }
}
