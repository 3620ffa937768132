//! Moving bare pods (with `--delete-bare-pods`): each deleted, conditional on its uid, then
//! waited for like an evicted pod.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::{MoveError, Mover};
use crate::migration::events::Event;
use crate::request_error::RequestError;
use ippool_ipam::plan::WorkloadMove;

impl Mover {
    pub(super) async fn delete_all(&self, m: &WorkloadMove) -> Result<(), MoveError> {
        for planned in &m.pods {
            let Some(live) = self.live_pod(m, planned) else {
                continue;
            };
            let namespace = live.metadata.namespace.clone().unwrap_or_default();
            let name = live.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let params = DeleteParams::default().preconditions(Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: None,
            });
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                    continue;
                }
                Err(e) => {
                    return Err(
                        RequestError::new(format!("delete pod {namespace}/{name}"), e).into(),
                    );
                }
            }
            self.progress.emit(Event::PodDeleted {
                pod: format!("{namespace}/{name}"),
            });
            let watched = self.watched(m, &live);
            self.await_replacement(m, &live, &watched, 0).await?;
        }
        Ok(())
    }
}
