//! What the sim's tests read of Calico's IPAM: the allocations in the IPAMBlocks and the
//! IPAMHandles, as Calico writes them (`crd.projectcalico.org/v1`), read as plain JSON.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

pub fn calico(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.projectcalico.org", "v1", kind),
        plural,
    )
}

pub fn blocks_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &calico("IPAMBlock", "ipamblocks"))
}

/// Address → (handle ID, `secondary` attributes) of every allocation in these blocks.
pub fn allocations(
    blocks: &[DynamicObject],
) -> BTreeMap<IpAddr, (String, BTreeMap<String, String>)> {
    let mut out = BTreeMap::new();
    for block in blocks {
        let spec = &block.data["spec"];
        let cidr: IpNet = spec["cidr"]
            .as_str()
            .expect("cidr")
            .parse()
            .expect("a CIDR");
        let attributes = spec["attributes"].as_array().cloned().unwrap_or_default();
        let slots = spec["allocations"].as_array().cloned().unwrap_or_default();
        for (ordinal, slot) in slots.iter().enumerate() {
            let Some(index) = slot.as_u64() else { continue };
            let attribute = &attributes[index as usize];
            let address = address_at(&cidr, ordinal);
            let handle = attribute["handle_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let secondary =
                serde_json::from_value(attribute["secondary"].clone()).unwrap_or_default();
            assert!(
                out.insert(address, (handle, secondary)).is_none(),
                "{address} allocated twice"
            );
        }
    }
    out
}

/// The address at `ordinal` in a block.
fn address_at(block: &IpNet, ordinal: usize) -> IpAddr {
    match block {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + ordinal as u32).into()),
        IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + ordinal as u128).into()),
    }
}

pub async fn read_allocations(
    client: &Client,
) -> BTreeMap<IpAddr, (String, BTreeMap<String, String>)> {
    let blocks = blocks_api(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    allocations(&blocks)
}

/// Handle IDs of the IPAMHandles.
pub async fn handle_ids(client: &Client) -> Vec<String> {
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &calico("IPAMHandle", "ipamhandles"));
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|h| h.data["spec"]["handleID"].as_str().map(str::to_owned))
        .collect()
}

/// Calico's IPAM handle of a pod sandbox: `<network>.<container ID>`.
pub fn pod_handle(container_id: &str) -> String {
    format!("k8s-pod-network.{container_id}")
}
