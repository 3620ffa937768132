//! Reading a [`Snapshot`] from the API server: the collections asked for, concurrently; Calico's
//! objects from the API server's watch cache, core objects from storage in pages of 500 (see
//! [`crate::client::ReadFrom`]), each straight into the lean types of [`decode`].

use ippool_ipam::snapshot::decode::{self, SlimNamespace, SlimNode, SlimPod, SlimReplicaSet};
use ippool_ipam::snapshot::{Parts, Snapshot};
use ippool_rules::model::IpPool;
use kube::Client;

use crate::api::{CalicoKind, ServedApis};
use crate::client::{CalicoClient, list_all};
use crate::request_error::RequestError;

/// Reads `parts`; the collections not asked for stay empty.
pub async fn snapshot(
    client: &Client,
    api: &ServedApis,
    parts: Parts,
) -> Result<Snapshot, RequestError> {
    let calico = CalicoClient::new(client.clone(), *api);
    let pools = async {
        if parts.pools {
            calico.list::<IpPool>(CalicoKind::Pool).await
        } else {
            Ok(Vec::new())
        }
    };
    let blocks = async {
        if parts.blocks {
            Ok(decode::blocks(calico.list(CalicoKind::Block).await?))
        } else {
            Ok(Vec::new())
        }
    };
    let affinities = async {
        if parts.affinities {
            Ok(decode::affinities(calico.list(CalicoKind::Affinity).await?))
        } else {
            Ok(Vec::new())
        }
    };
    let handles = async {
        if parts.handles {
            Ok(decode::handles(calico.list(CalicoKind::Handle).await?))
        } else {
            Ok(Vec::new())
        }
    };
    let pods = async {
        if parts.pods {
            let (pods, replica_sets) = futures::try_join!(
                list_all::<SlimPod>(client, "/api/v1/pods", "pods"),
                list_all::<SlimReplicaSet>(
                    client,
                    "/apis/apps/v1/replicasets",
                    "replicasets.apps/v1"
                ),
            )?;
            Ok(decode::pods(pods, replica_sets))
        } else {
            Ok(Vec::new())
        }
    };
    let nodes = async {
        if parts.nodes {
            let nodes = list_all::<SlimNode>(client, "/api/v1/nodes", "nodes").await?;
            Ok(nodes.into_iter().map(decode::node_record).collect())
        } else {
            Ok(Vec::new())
        }
    };
    let namespaces = async {
        if parts.namespaces {
            let namespaces =
                list_all::<SlimNamespace>(client, "/api/v1/namespaces", "namespaces").await?;
            Ok(namespaces
                .into_iter()
                .map(decode::namespace_record)
                .collect())
        } else {
            Ok(Vec::new())
        }
    };
    let (pools, blocks, affinities, handles, pods, nodes, namespaces) =
        futures::try_join!(pools, blocks, affinities, handles, pods, nodes, namespaces)?;
    Ok(Snapshot {
        pools,
        blocks,
        affinities,
        handles,
        pods,
        nodes,
        namespaces,
    })
}
