//! Reading what the planner needs, once, before planning: the snapshot (pools, blocks,
//! affinities, pods, nodes, namespaces), the workload controllers whose strategies decide how
//! pods move, the PodDisruptionBudgets in the version the server offers, and the server version.

use std::collections::BTreeSet;

use ippool_ipam::plan::objects::{DaemonSet, Deployment, StatefulSet};
use ippool_rules::context::ClusterCidrs;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::api::ServedApis;
use crate::client::list_all;
use crate::request_error::RequestError;
use ippool_ipam::plan::{Budget, Inventory, PolicyVersion, Scope, ServerVersion, Workloads};
use ippool_ipam::snapshot::Parts;

/// What a migration reads of the snapshot.
pub const PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: true,
    handles: false,
    pods: true,
    nodes: true,
    namespaces: true,
};

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("PodDisruptionBudget {name} cannot be read: {detail}")]
    Budget { name: String, detail: String },
    #[error(
        "the API server reports version {major}.{minor}, which is not a Kubernetes version this \
         tool understands"
    )]
    ServerVersion { major: String, minor: String },
}

fn collection(group_version: &str, namespace: Option<&str>, plural: &str) -> String {
    let prefix = if group_version == "v1" {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{group_version}")
    };
    match namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}"),
        None => format!("{prefix}/{plural}"),
    }
}

/// Reads the cluster for planning. `scope.selected` is filled in when `scope.selector` is set:
/// the API server evaluates the selector, exactly as kubectl's `-l` does.
pub async fn load(
    client: &Client,
    apis: &ServedApis,
    cluster_cidrs: Option<ClusterCidrs>,
    scope: &mut Scope,
) -> Result<Inventory, InventoryError> {
    let namespace = scope.namespace.as_deref();
    let snapshot = crate::load::snapshot(client, apis, PARTS);
    let paths = [
        collection("apps/v1", namespace, "deployments"),
        collection("apps/v1", namespace, "statefulsets"),
        collection("apps/v1", namespace, "daemonsets"),
    ];
    let deployments = list_all::<Deployment>(client, &paths[0], "deployments.apps/v1");
    let stateful_sets = list_all::<StatefulSet>(client, &paths[1], "statefulsets.apps/v1");
    let daemon_sets = list_all::<DaemonSet>(client, &paths[2], "daemonsets.apps/v1");
    let budgets = async {
        match apis.policy() {
            Some(version) => list_all::<serde_json::Value>(
                client,
                &collection(version.api_version(), namespace, "poddisruptionbudgets"),
                &format!("poddisruptionbudgets.{}", version.api_version()),
            )
            .await
            .map(|list| (version, list)),
            None => Ok((PolicyVersion::V1, Vec::new())),
        }
    };
    let (snapshot, deployments, stateful_sets, daemon_sets, (version, budgets)) =
        futures::try_join!(snapshot, deployments, stateful_sets, daemon_sets, budgets)?;
    let budgets = budgets
        .into_iter()
        .map(|value| {
            let name = format!(
                "{}/{}",
                value
                    .pointer("/metadata/namespace")
                    .and_then(|v| v.as_str())
                    .unwrap_or(""),
                value
                    .pointer("/metadata/name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
            );
            Budget::from_json(value, version).map_err(|e| InventoryError::Budget {
                name,
                detail: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    if let Some(selector) = &scope.selector {
        let pods: Api<Pod> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let matched = pods
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .map_err(|e| {
                RequestError::new(format!("list pods matching --selector {selector:?}"), e)
            })?;
        scope.selected = Some(
            matched
                .items
                .into_iter()
                .map(|p| {
                    (
                        p.metadata.namespace.unwrap_or_default(),
                        p.metadata.name.unwrap_or_default(),
                    )
                })
                .collect::<BTreeSet<_>>(),
        );
    }

    let info = client
        .apiserver_version()
        .await
        .map_err(|e| RequestError::new("read the API server's version (GET /version)", e))?;
    let server = ServerVersion::parse(&info.major, &info.minor).ok_or_else(|| {
        InventoryError::ServerVersion {
            major: info.major.clone(),
            minor: info.minor.clone(),
        }
    })?;

    Ok(Inventory {
        snapshot,
        workloads: Workloads {
            deployments,
            stateful_sets,
            daemon_sets,
        },
        budgets,
        cluster_cidrs,
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_paths() {
        assert_eq!(
            collection("apps/v1", None, "deployments"),
            "/apis/apps/v1/deployments"
        );
        assert_eq!(
            collection("policy/v1beta1", Some("shop"), "poddisruptionbudgets"),
            "/apis/policy/v1beta1/namespaces/shop/poddisruptionbudgets"
        );
        assert_eq!(
            collection("v1", Some("a"), "pods"),
            "/api/v1/namespaces/a/pods"
        );
    }
}
