//! The one client of the crate: requests for Calico objects in the groups the cluster serves them
//! in (reads, conditional writes, watches), and paginated lists of anything. Objects are read
//! straight into the types the caller needs — the `ippool_rules::model` types, or for pods a slim
//! projection — so that a 10,000-pod cluster never sits in memory as full `Pod` objects.

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use kube::Client;
use kube::api::Api;
use kube::core::params::{
    DeleteParams, GetParams, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::core::{DynamicObject, Request};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{CalicoKind, ServedApis};
use crate::request_error::{Context, RequestError};
use crate::resources::{CalicoResource, from_dynamic, to_dynamic};

/// Items per page of a list request (kubectl's default chunk size).
pub const PAGE_SIZE: u32 = 500;

/// Field manager recorded for every write.
pub const FIELD_MANAGER: &str = "kubectl-ippool";

/// How many times a list restarts when its `continue` token expires mid-way.
const LIST_RESTARTS: usize = 3;

#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Page<T> {
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    items: Vec<T>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    use serde::Deserialize as _;
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Where a list is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// etcd, `PAGE_SIZE` items at a time (`limit`/`continue`): for built-in kinds, which the API
    /// server decodes fast, and whose full lists would be large.
    Storage,
    /// One response, with no `resourceVersion`: Kubernetes 1.31+ serves it from its watch cache
    /// once the cache has caught up with etcd (consistent reads from cache, KEP-2340), so it is as
    /// current as a read from etcd without decoding every object from storage (custom resources
    /// are decoded as unstructured JSON: 2,000 IPAM blocks took 1.3-1.8 s from etcd on a 1.20
    /// server, 0.16 s from its cache). `resourceVersion=0` would be served at once from the cache
    /// as it is, which may trail a write just made: a pool created a moment before went unseen.
    Cache,
}

/// Lists every item of a collection from storage, `PAGE_SIZE` at a time (`limit`/`continue`).
/// `what` names the collection in errors ("pods", "replicasets.apps/v1").
pub async fn list_all<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    what: &str,
) -> Result<Vec<T>, RequestError> {
    list_all_from(client, path, what, ReadFrom::Storage).await
}

/// Lists every item of a collection from where `from` says.
pub async fn list_all_from<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    what: &str,
    from: ReadFrom,
) -> Result<Vec<T>, RequestError> {
    let mut restarts = 0;
    loop {
        match list_pages(client, path, what, from).await {
            Err(e) if e.is_gone() && restarts < LIST_RESTARTS => restarts += 1,
            other => return other,
        }
    }
}

async fn list_pages<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    what: &str,
    from: ReadFrom,
) -> Result<Vec<T>, RequestError> {
    let mut items = Vec::new();
    let mut params = match from {
        ReadFrom::Storage => ListParams::default().limit(PAGE_SIZE),
        // A server that pages such a list anyway is followed through its continue tokens below.
        ReadFrom::Cache => ListParams::default(),
    };
    let mut pages = 0usize;
    loop {
        let request = Request::new(path)
            .list(&params)
            .map_err(kube::Error::BuildRequest)
            .context(|| format!("list {what}"))?;
        let page: Page<T> = client
            .request(request)
            .await
            .context(|| format!("list {what}"))?;
        pages += 1;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params.continue_token = Some(token),
            _ => break,
        }
    }
    tracing::debug!(what, pages, items = items.len(), "listed");
    Ok(items)
}

/// Requests for Calico objects in the groups discovery chose (see [`crate::api::Serving`]).
#[derive(Clone)]
pub struct CalicoClient {
    client: Client,
    api: ServedApis,
}

impl CalicoClient {
    pub fn new(client: Client, api: ServedApis) -> CalicoClient {
        CalicoClient { client, api }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn api(&self) -> &ServedApis {
        &self.api
    }

    fn request(&self, kind: CalicoKind) -> Request {
        Request::new(self.api.collection_path(kind))
    }

    fn describe(&self, verb: &str, kind: CalicoKind, name: &str) -> String {
        format!(
            "{verb} {} {name:?} ({})",
            kind.noun(),
            self.api.resource_name(kind)
        )
    }

    /// Every object of a kind, current, in one response (see [`ReadFrom::Cache`]).
    pub async fn list<T: DeserializeOwned>(
        &self,
        kind: CalicoKind,
    ) -> Result<Vec<T>, RequestError> {
        list_all_from(
            &self.client,
            &self.api.collection_path(kind),
            &self.api.resource_name(kind),
            ReadFrom::Cache,
        )
        .await
    }

    /// The object, or `None` when it does not exist.
    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: CalicoKind,
        name: &str,
    ) -> Result<Option<T>, RequestError> {
        let what = || self.describe("read", kind, name);
        let request = self
            .request(kind)
            .get(name, &GetParams::default())
            .map_err(kube::Error::BuildRequest)
            .context(what)?;
        match self.client.request::<T>(request).await.context(what) {
            Ok(object) => Ok(Some(object)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `object`; with `dry_run` the server validates and answers without storing.
    pub async fn create<T: Serialize + DeserializeOwned>(
        &self,
        kind: CalicoKind,
        name: &str,
        object: &T,
        dry_run: bool,
    ) -> Result<T, RequestError> {
        let what = || self.describe("create", kind, name);
        let body = serde_json::to_vec(object)
            .map_err(kube::Error::SerdeError)
            .context(what)?;
        let params = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let request = self
            .request(kind)
            .create(&params, body)
            .map_err(kube::Error::BuildRequest)
            .context(what)?;
        self.client.request(request).await.context(what)
    }

    /// A JSON merge patch of exactly the fields in `patch`. Put `metadata.resourceVersion` in the
    /// patch to make it conditional: the server then answers 409 if the object changed since.
    pub async fn merge_patch<T: DeserializeOwned>(
        &self,
        kind: CalicoKind,
        name: &str,
        patch: &serde_json::Value,
        dry_run: bool,
    ) -> Result<T, RequestError> {
        let what = || self.describe("update", kind, name);
        let params = PatchParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let request = self
            .request(kind)
            .patch(name, &params, &Patch::Merge(patch))
            .map_err(kube::Error::BuildRequest)
            .context(what)?;
        self.client.request(request).await.context(what)
    }

    /// Replaces `object` (PUT), conditional on the resourceVersion it carries: the server answers
    /// 409 when the object changed since it was read. Fields the model does not know go back as
    /// they were read.
    pub async fn replace<T: CalicoResource>(
        &self,
        kind: CalicoKind,
        object: &T,
    ) -> Result<T, RequestError> {
        let name = object.name();
        let what = || self.describe("replace", kind, name);
        if object.metadata().resource_version.is_none() {
            return Err(RequestError::missing_resource_version(what()));
        }
        let body = serde_json::to_vec(&to_dynamic(&self.api.resource(kind), object)?)
            .map_err(kube::Error::SerdeError)
            .context(what)?;
        let params = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let request = self
            .request(kind)
            .replace(name, &params, body)
            .map_err(kube::Error::BuildRequest)
            .context(what)?;
        self.client.request(request).await.context(what)
    }

    /// Deletes the object if (when `resource_version` is given) it is still at that version;
    /// a changed object answers 409. `Ok(false)` when it was already gone.
    pub async fn delete(
        &self,
        kind: CalicoKind,
        name: &str,
        resource_version: Option<&str>,
        dry_run: bool,
    ) -> Result<bool, RequestError> {
        let what = || self.describe("delete", kind, name);
        let params = DeleteParams {
            dry_run,
            preconditions: resource_version.map(|rv| Preconditions {
                resource_version: Some(rv.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let request = self
            .request(kind)
            .delete(name, &params)
            .map_err(kube::Error::BuildRequest)
            .context(what)?;
        match self.client.request_text(request).await.context(what) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A watch of every object of a kind (kube's `watcher` with its default backoff: it relists
    /// and resumes by itself), typed. An object that does not decode is reported as an error
    /// item; the watch goes on.
    pub fn watch<T: DeserializeOwned + Send + 'static>(
        &self,
        kind: CalicoKind,
        config: watcher::Config,
    ) -> impl Stream<Item = Result<watcher::Event<T>, RequestError>> + Send + use<T> {
        let resource = self.api.resource(kind);
        let action = self.describe("watch", kind, "(all)");
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
        watcher(api, config)
            .default_backoff()
            .map_err(move |source| RequestError::watch(action.clone(), source))
            .map(move |event| {
                Ok(match event? {
                    watcher::Event::Apply(o) => watcher::Event::Apply(from_dynamic(&resource, o)?),
                    watcher::Event::Delete(o) => {
                        watcher::Event::Delete(from_dynamic(&resource, o)?)
                    }
                    watcher::Event::Init => watcher::Event::Init,
                    watcher::Event::InitApply(o) => {
                        watcher::Event::InitApply(from_dynamic(&resource, o)?)
                    }
                    watcher::Event::InitDone => watcher::Event::InitDone,
                })
            })
    }
}
