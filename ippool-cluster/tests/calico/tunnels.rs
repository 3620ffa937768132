//! Node tunnel addresses as calico-node keeps them: taken from an enabled pool with the
//! encapsulation, re-homed when that pool is disabled, removed when no pool has it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_ipam::names;
use ippool_rules::model::Encapsulation;
use kube::Client;
use serde_json::json;

use crate::common::*;

const NODES: [&str; 3] = ["sim-0", "sim-1", "sim-2"];

/// Waits until every sim node's annotation for `encapsulation` satisfies `ok`; returns the
/// addresses by node.
async fn wait_tunnels(
    client: &Client,
    encapsulation: Encapsulation,
    what: &str,
    ok: impl Fn(Option<IpAddr>) -> bool,
) -> BTreeMap<String, Option<IpAddr>> {
    let (_, _, annotation) = tunnel_names(encapsulation, "");
    let nodes = NODES.map(str::to_owned);
    wait_tunnel_addresses(client, &nodes, annotation, what, ok).await
}

/// Each node's tunnel address is held in IPAM under its tunnel handle with Calico's attributes.
async fn assert_tunnel_allocations(
    client: &Client,
    encapsulation: Encapsulation,
    addresses: &BTreeMap<String, Option<IpAddr>>,
) {
    let ipam = Ipam::read(client).await;
    let allocations = ipam.allocations();
    for (node, address) in addresses {
        let (handle, attribute_type, _) = tunnel_names(encapsulation, node);
        let held = ipam.handle_addresses(&handle);
        match address {
            Some(address) => {
                assert_eq!(held, vec![*address], "{node}");
                let owner = &allocations[address].1;
                assert_eq!(owner[names::ATTRIBUTE_NODE], *node);
                assert_eq!(owner[names::ATTRIBUTE_TYPE], attribute_type);
                let object = ipam
                    .handles
                    .iter()
                    .find(|h| h.spec.handle_id == handle)
                    .unwrap_or_else(|| panic!("IPAMHandle {handle}"));
                assert_eq!(object.spec.block.values().sum::<i64>(), 1);
            }
            None => {
                assert!(held.is_empty(), "{node} still holds {held:?}");
                assert!(ipam.handles.iter().all(|h| h.spec.handle_id != handle));
            }
        }
    }
}

fn inside(pool: IpNet) -> impl Fn(Option<IpAddr>) -> bool {
    move |a| a.is_some_and(|a| pool.contains(&a))
}

#[tokio::test]
async fn tunnel_addresses_follow_their_pool() {
    let env = SimCluster::start(3).await;
    let client = &env.client;
    let (a, b, c) = (
        net("10.120.0.0/24"),
        net("10.121.0.0/24"),
        net("10.122.0.0/24"),
    );
    create_pool(
        client,
        "a",
        json!({"cidr": a.to_string(), "blockSize": 28, "ipipMode": "Always"}),
    )
    .await;
    let first = wait_tunnels(
        client,
        Encapsulation::Ipip,
        "IPIP addresses in pool a",
        inside(a),
    )
    .await;
    assert_tunnel_allocations(client, Encapsulation::Ipip, &first).await;

    // A second IPIP pool changes nothing while the first is valid; disabling the first re-homes.
    create_pool(
        client,
        "b",
        json!({"cidr": b.to_string(), "blockSize": 28, "ipipMode": "CrossSubnet"}),
    )
    .await;
    set_pool_disabled(client, "a", true).await;
    let second = wait_tunnels(
        client,
        Encapsulation::Ipip,
        "IPIP addresses in pool b",
        inside(b),
    )
    .await;
    assert_tunnel_allocations(client, Encapsulation::Ipip, &second).await;
    let ipam = Ipam::read(client).await;
    assert!(
        ipam.allocations().keys().all(|ip| !a.contains(ip)),
        "the old tunnel addresses are released"
    );

    // VXLAN addresses come from VXLAN pools.
    create_pool(
        client,
        "c",
        json!({"cidr": c.to_string(), "blockSize": 28, "vxlanMode": "Always"}),
    )
    .await;
    let vxlan = wait_tunnels(
        client,
        Encapsulation::Vxlan,
        "VXLAN addresses in pool c",
        inside(c),
    )
    .await;
    assert_tunnel_allocations(client, Encapsulation::Vxlan, &vxlan).await;

    // No enabled pool with IPIP left: the IPIP addresses go; VXLAN ones stay.
    delete_pool(client, "b").await;
    let none = wait_tunnels(client, Encapsulation::Ipip, "IPIP addresses removed", |a| {
        a.is_none()
    })
    .await;
    assert_tunnel_allocations(client, Encapsulation::Ipip, &none).await;
    assert_tunnel_allocations(client, Encapsulation::Vxlan, &vxlan).await;
    env.cp.judge_ipam(&Expected::clean());
}
