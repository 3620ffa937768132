//! The verify step: no pod in scope holds an address in OLD any more, and calico-node has moved
//! the tunnel addresses out of it.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::model::IpamBlock;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use tokio::time::Instant;

use super::MigrateError;
use super::steps::{Migration, parse_net};
use crate::api::CalicoKind;
use crate::migration::events::Event;
use crate::migration::mirror::{ALL, Mirror};
use crate::migration::moves::pods::{pod_keys, pods_left};
use crate::request_error::RequestError;
use crate::resources::from_dynamic;
use ippool_ipam::index::{AllocationUse, allocations_of};

impl Migration<'_> {
    /// The pods this migration is responsible for: its namespace and selector.
    async fn scope_filter(&self) -> Result<impl Fn(&Pod) -> bool + use<>, MigrateError> {
        let namespace = self.state.namespace.clone();
        let selected: Option<BTreeSet<(String, String)>> = match &self.state.selector {
            Some(selector) => {
                let matched = self
                    .pods_api()
                    .list_metadata(&ListParams::default().labels(selector))
                    .await
                    .map_err(|e| {
                        RequestError::new(format!("list pods matching --selector {selector:?}"), e)
                    })?;
                Some(
                    matched
                        .items
                        .into_iter()
                        .map(|p| {
                            (
                                p.metadata.namespace.unwrap_or_default(),
                                p.metadata.name.unwrap_or_default(),
                            )
                        })
                        .collect(),
                )
            }
            None => None,
        };
        Ok(move |pod: &Pod| {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            namespace.as_ref().is_none_or(|n| *n == ns)
                && selected.as_ref().is_none_or(|s| s.contains(&(ns, name)))
        })
    }

    pub(super) async fn verify(&self) -> Result<(), MigrateError> {
        let old = parse_net(&self.state.old_cidr)?;
        let timeout = self.exec.options.timeout;
        let in_scope = self.scope_filter().await?;
        let pods = Mirror::start(self.pods_api(), Self::config(), pod_keys, "pods");
        self.synced(&pods).await?;
        let deadline = Instant::now() + timeout;
        let mut said = 0;
        let clear = pods
            .wait(ALL, deadline, |m| {
                let left = pods_left(m, &old, &in_scope);
                if !left.is_empty() && left.len() != said {
                    said = left.len();
                    self.emit(Event::Waiting {
                        subject: format!("pool {}", self.state.from),
                        reason: format!("{} pod(s) still hold addresses in it", left.len()),
                    });
                }
                left.is_empty().then_some(())
            })
            .await;
        if clear.is_none() {
            let left = pods_left(&pods, &old, &in_scope);
            let shown: Vec<String> = left
                .iter()
                .take(10)
                .map(|(p, a)| format!("{p} ({a})"))
                .collect();
            return Err(MigrateError::PodsRemain {
                old,
                count: left.len(),
                waited: timeout.as_secs(),
                pods: shown.join(", "),
            });
        }
        drop(pods);
        if self.state.keep_old_pool {
            return Ok(());
        }
        // Tunnel addresses: calico-node re-homes them once OLD is disabled; wait, bounded.
        let resource = self.exec.apis.resource(CalicoKind::Block);
        let blocks = Mirror::start(
            Api::<DynamicObject>::all_with(self.exec.client.clone(), &resource),
            Self::config(),
            |_| Vec::new(),
            "ipamblocks",
        );
        self.synced(&blocks).await?;
        let deadline = Instant::now() + timeout;
        let mut said = 0;
        let moved = blocks
            .wait(ALL, deadline, |m| {
                let nodes = Remaining::in_pool(m, &resource, &old).tunnel_nodes;
                if !nodes.is_empty() && nodes.len() != said {
                    said = nodes.len();
                    self.emit(Event::Waiting {
                        subject: "tunnel addresses".to_owned(),
                        reason: format!(
                            "calico-node moving the tunnel address of {} node(s) out of {}",
                            nodes.len(),
                            self.state.from
                        ),
                    });
                }
                nodes.is_empty().then_some(())
            })
            .await;
        if moved.is_none() {
            let remaining = Remaining::in_pool(&blocks, &resource, &old);
            let nodes: Vec<String> = remaining.tunnel_nodes.into_iter().collect();
            return Err(MigrateError::TunnelsRemain {
                old,
                nodes: nodes.join(", "),
                waited: timeout.as_secs(),
            });
        }
        self.await_teardowns(&blocks, &resource, &old).await;
        Ok(())
    }

    /// A pod deleted at once (grace period 0, or forced) leaves the API before its kubelet has torn
    /// its sandbox down, and Calico's CNI releases the address only then: such allocations are
    /// waited for, bounded by [`TEARDOWN_WAIT`], before the release step judges what is left as
    /// leaked (it then refuses and names `--release-leaked`).
    async fn await_teardowns(
        &self,
        blocks: &Mirror<DynamicObject>,
        resource: &ApiResource,
        old: &IpNet,
    ) {
        let left = Remaining::in_pool(blocks, resource, old).others;
        if left == 0 {
            return;
        }
        self.emit(Event::Waiting {
            subject: format!("pool {}", self.state.from),
            reason: format!(
                "kubelets releasing {left} address(es) of deleted pods (Calico's CNI DEL)"
            ),
        });
        let deadline = Instant::now() + TEARDOWN_WAIT.min(self.exec.options.timeout);
        blocks
            .wait(ALL, deadline, |m| {
                (Remaining::in_pool(m, resource, old).others == 0).then_some(())
            })
            .await;
    }
}

/// What OLD's blocks still hold while the workloads leave it.
struct Remaining {
    /// Nodes whose tunnel address is still in OLD (calico-node re-homes it once OLD is disabled).
    tunnel_nodes: BTreeSet<String>,
    /// Every other allocation: pods, and addresses of other IPAM clients.
    others: usize,
}

impl Remaining {
    fn in_pool(blocks: &Mirror<DynamicObject>, resource: &ApiResource, old: &IpNet) -> Remaining {
        let mut remaining = Remaining {
            tunnel_nodes: BTreeSet::new(),
            others: 0,
        };
        let blocks: Vec<IpamBlock> = blocks
            .all()
            .iter()
            .filter_map(|o| from_dynamic::<IpamBlock>(resource, (**o).clone()).ok())
            .filter(|b| b.cidr().is_some_and(|c| cidr::contains_net(old, &c)))
            .collect();
        for allocation in blocks.iter().flat_map(allocations_of) {
            match allocation.use_() {
                AllocationUse::Tunnel { node, .. } => {
                    remaining.tunnel_nodes.insert(node.to_owned());
                }
                AllocationUse::Workload { .. } | AllocationUse::Unknown => remaining.others += 1,
            }
        }
        remaining
    }
}

/// How long the release step waits for kubelets to tear down the sandboxes of pods deleted at
/// once: a live node's kubelet does so within seconds; one that is down never will.
const TEARDOWN_WAIT: Duration = Duration::from_secs(60);
