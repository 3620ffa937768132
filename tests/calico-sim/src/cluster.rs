//! What the sim knows of the cluster, from its watches: the pools (for which address families the
//! CNI configuration asks, as Calico's installer decides, and for when tunnel addresses may need
//! to change) and its own nodes. Calico's plugin and allocator read everything else themselves.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::calico::Families;

/// A pool as the sim needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolInfo {
    pub cidr: Option<IpNet>,
    pub disabled: bool,
    /// The fields calico-node's tunnel allocator decides by; when they change, it must run again.
    pub tunnel_view: Value,
}

impl PoolInfo {
    pub fn of(pool: &DynamicObject) -> PoolInfo {
        let spec = &pool.data["spec"];
        PoolInfo {
            cidr: spec["cidr"].as_str().and_then(|c| c.parse::<IpNet>().ok()),
            disabled: spec["disabled"].as_bool().unwrap_or(false),
            tunnel_view: json!([
                spec["cidr"],
                spec["disabled"],
                spec["ipipMode"],
                spec["vxlanMode"],
                spec["nodeSelector"],
                spec["allowedUses"],
                pool.metadata.deletion_timestamp.is_some(),
            ]),
        }
    }
}

/// One of the sim's nodes as the kubelet needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    /// What pools select nodes by.
    pub labels: BTreeMap<String, String>,
    pub internal_ip: Option<IpAddr>,
}

/// The watches whose initial list must be complete before a worker starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pools = 1,
    Nodes = 2,
}

const ALL_SOURCES: u8 = 3;

#[derive(Default)]
struct Inner {
    pools: BTreeMap<String, PoolInfo>,
    nodes: HashMap<String, NodeInfo>,
}

/// What a change of pools means for the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolChange {
    /// Tunnel addresses may have to be assigned, moved or removed.
    pub tunnels: bool,
}

pub struct Cluster {
    inner: Mutex<Inner>,
    synced: watch::Sender<u8>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            inner: Mutex::new(Inner::default()),
            synced: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug elsewhere; the maps stay usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mark_synced(&self, source: Source) {
        self.synced.send_modify(|bits| *bits |= source as u8);
    }

    /// Waits until every watch has delivered its initial list.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as `self`, so this only ends when synced.
        let _ = rx.wait_for(|bits| *bits == ALL_SOURCES).await;
    }

    fn tunnel_views(pools: &BTreeMap<String, PoolInfo>) -> Vec<(&String, &Value)> {
        pools.iter().map(|(n, p)| (n, &p.tunnel_view)).collect()
    }

    fn replace_pools(&self, update: impl FnOnce(&mut BTreeMap<String, PoolInfo>)) -> PoolChange {
        let mut inner = self.lock();
        let before = serde_json::to_value(Self::tunnel_views(&inner.pools)).unwrap_or_default();
        update(&mut inner.pools);
        let after = serde_json::to_value(Self::tunnel_views(&inner.pools)).unwrap_or_default();
        PoolChange {
            tunnels: before != after,
        }
    }

    pub fn set_pools(&self, pools: Vec<(String, PoolInfo)>) -> PoolChange {
        self.replace_pools(|all| *all = pools.into_iter().collect())
    }

    pub fn put_pool(&self, name: String, pool: PoolInfo) -> PoolChange {
        self.replace_pools(|all| {
            all.insert(name, pool);
        })
    }

    pub fn drop_pool(&self, name: &str) -> PoolChange {
        self.replace_pools(|all| {
            all.remove(name);
        })
    }

    /// What Calico's installer would configure for these pools: IPv6 when there is an enabled
    /// IPv6 pool, IPv4 when there is an enabled IPv4 pool or no enabled IPv6 one (the IPAM
    /// plugin's own default).
    pub fn families(&self) -> Families {
        let inner = self.lock();
        let enabled = |v6: bool| {
            inner
                .pools
                .values()
                .any(|p| !p.disabled && p.cidr.is_some_and(|c| matches!(c, IpNet::V6(_)) == v6))
        };
        let ipv6 = enabled(true);
        Families {
            ipv4: enabled(false) || !ipv6,
            ipv6,
        }
    }

    pub fn set_nodes(&self, nodes: HashMap<String, NodeInfo>) {
        self.lock().nodes = nodes;
    }

    /// Records a node; returns whether anything changed.
    pub fn put_node(&self, info: NodeInfo) -> bool {
        self.lock().nodes.insert(info.name.clone(), info.clone()) != Some(info)
    }

    pub fn drop_node(&self, name: &str) {
        self.lock().nodes.remove(name);
    }

    pub fn node(&self, name: &str) -> Option<NodeInfo> {
        self.lock().nodes.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(spec: Value) -> PoolInfo {
        PoolInfo::of(
            &serde_json::from_value(json!({
                "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
                "metadata": {"name": "p"}, "spec": spec,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn families_follow_the_enabled_pools() {
        let cluster = Cluster::new();
        let both = |v4, v6| Families { ipv4: v4, ipv6: v6 };
        assert_eq!(cluster.families(), both(true, false));
        cluster.put_pool("v6".into(), pool(json!({"cidr": "fd00::/64"})));
        assert_eq!(cluster.families(), both(false, true));
        cluster.put_pool("v4".into(), pool(json!({"cidr": "10.0.0.0/16"})));
        assert_eq!(cluster.families(), both(true, true));
        cluster.put_pool(
            "v6".into(),
            pool(json!({"cidr": "fd00::/64", "disabled": true})),
        );
        assert_eq!(cluster.families(), both(true, false));
    }

    #[test]
    fn only_changes_the_tunnel_allocator_reads_call_for_it() {
        let cluster = Cluster::new();
        let change = cluster.set_pools(vec![("a".into(), pool(json!({"cidr": "10.0.0.0/16"})))]);
        assert!(change.tunnels);
        let same = pool(json!({"cidr": "10.0.0.0/16", "natOutgoing": true}));
        assert!(!cluster.put_pool("a".into(), same).tunnels);
        let ipip = pool(json!({"cidr": "10.0.0.0/16", "ipipMode": "Always"}));
        assert!(cluster.put_pool("a".into(), ipip).tunnels);
        assert!(cluster.drop_pool("a").tunnels);
        assert!(!cluster.drop_pool("a").tunnels);
    }
}
