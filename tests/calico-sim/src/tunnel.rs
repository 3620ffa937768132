//! Node tunnel addresses, as calico-node's `allocateip` keeps them: for each encapsulation, the
//! enabled IPv4 pools that allow Tunnel use, select the node and have that mode; the node keeps
//! its address while it stays in one of them, gets a new one when it does not, and loses it when
//! there are none. The address lives in the Node annotation Calico's datastore uses and in IPAM
//! under handle `<ipip|vxlan>-tunnel-addr-<node>` with attribute `type`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_cluster::names;
use ippool_cluster::selection;
use ippool_rules::cidr::Family;
use ippool_rules::model::{AllowedUse, EncapMode, Encapsulation};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use thiserror::Error;
use tracing::info;

use crate::cluster::{Cluster, NodeInfo};
use crate::ipam::{Ipam, IpamError, Request};
use crate::nodes;

#[derive(Debug, Error)]
pub enum TunnelError {
    #[error("node {node}: {encapsulation} tunnel address: {source}")]
    Ipam {
        node: String,
        encapsulation: Encapsulation,
        #[source]
        source: IpamError,
    },
    #[error("node {node}: writing annotation {annotation}: {source}")]
    Annotate {
        node: String,
        annotation: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// The pools a node's tunnel address of this encapsulation may come from.
fn tunnel_pools(cluster: &Cluster, node: &NodeInfo, encapsulation: Encapsulation) -> Vec<IpNet> {
    let pools = cluster.pools();
    selection::usable_pools(&pools, Family::V4)
        .into_iter()
        .filter(|p| p.allows(&AllowedUse::Tunnel))
        .filter(|p| p.selects_node(&node.labels).unwrap_or(false))
        .filter(|p| {
            let mode = match encapsulation {
                Encapsulation::Ipip => &p.spec.ipip_mode,
                Encapsulation::Vxlan => &p.spec.vxlan_mode,
            };
            *mode != EncapMode::Never
        })
        .map(|p| p.cidr)
        .collect()
}

/// Brings the node's IPIP and VXLAN tunnel addresses in line with the pools.
pub async fn reconcile(
    ipam: &Ipam,
    cluster: &Cluster,
    node_api: &Api<Node>,
    node: &str,
) -> Result<(), TunnelError> {
    for encapsulation in [Encapsulation::Ipip, Encapsulation::Vxlan] {
        let Some(info) = cluster.node(node) else {
            return Ok(());
        };
        let ipam_error = |source| TunnelError::Ipam {
            node: node.to_owned(),
            encapsulation,
            source,
        };
        let handle = names::tunnel_handle_id(encapsulation, node);
        let annotation = names::tunnel_node_annotation(encapsulation);
        let attribute_type = names::tunnel_attribute_type(encapsulation);
        let current = info
            .annotations
            .get(annotation)
            .and_then(|a| a.parse::<IpAddr>().ok());
        let pools = tunnel_pools(cluster, &info, encapsulation);

        if pools.is_empty() {
            if current.is_some() || !cluster.handle_blocks(&handle).is_empty() {
                ipam.release_handle(&handle).await.map_err(ipam_error)?;
                annotate(cluster, node_api, node, annotation, None).await?;
                info!(node, %encapsulation, "removed tunnel address: no enabled pool has this encapsulation");
            }
            continue;
        }

        let still_valid = current.is_some_and(|address| {
            pools.iter().any(|p| p.contains(&address))
                && cluster.owner_of(address).is_some_and(|(_, owner)| {
                    owner.get(names::ATTRIBUTE_TYPE).map(String::as_str) == Some(attribute_type)
                        && owner.get(names::ATTRIBUTE_NODE).map(String::as_str) == Some(node)
                })
        });
        if still_valid {
            // Also repairs a handle lost to a crash between the block write and the handle write.
            ipam.sync_handle(&handle).await.map_err(ipam_error)?;
            continue;
        }

        ipam.release_handle(&handle).await.map_err(ipam_error)?;
        let secondary = BTreeMap::from([
            (names::ATTRIBUTE_NODE.to_owned(), node.to_owned()),
            (names::ATTRIBUTE_TYPE.to_owned(), attribute_type.to_owned()),
        ]);
        let (_, address) = ipam
            .auto_assign(&Request {
                node,
                family: Family::V4,
                handle_id: &handle,
                secondary: &secondary,
                use_: AllowedUse::Tunnel,
                requested: &pools,
                namespace_labels: None,
            })
            .await
            .map_err(ipam_error)?;
        ipam.sync_handle(&handle).await.map_err(ipam_error)?;
        annotate(cluster, node_api, node, annotation, Some(address)).await?;
        info!(node, %encapsulation, %address, "assigned tunnel address");
    }
    Ok(())
}

async fn annotate(
    cluster: &Cluster,
    node_api: &Api<Node>,
    node: &str,
    annotation: &'static str,
    address: Option<IpAddr>,
) -> Result<(), TunnelError> {
    let patch = json!({"metadata": {"annotations": {annotation: address.map(|a| a.to_string())}}});
    let updated = node_api
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| TunnelError::Annotate {
            node: node.to_owned(),
            annotation,
            source,
        })?;
    cluster.put_node(nodes::info(&updated));
    Ok(())
}
