//! The bench's world, seeded straight into the API as Calico would have written it: 20 pods per
//! node, pool `bench` (/26 blocks) holding most of them and pool `second` the pods of namespace
//! `ns-0` (on the first twentieth of the nodes), one block per node and pool as Calico's IPAM
//! claims them, a handle per allocation, every pod carrying Calico's address annotations; and what
//! `check` and `gc` exist to find: one leaked address per 100 pods (an allocation and handle whose
//! pod is gone) and one stale affinity per 100 nodes (a block affine to a node that no longer
//! exists).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use ipnet::IpNet;
use ippool_cluster::api::{CalicoKind, ServedApis, Serving};
use ippool_cluster::client::CalicoClient;
use ippool_cluster::resources::CalicoResource;
use ippool_ipam::allocation::{self, AffinityState};
use ippool_ipam::names;
use ippool_rules::cidr;
use ippool_rules::model::{BlockAffinity, IpPool, IpPoolSpec, IpamBlock, IpamHandle, ObjectMeta};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Requests in flight while seeding.
const CONCURRENCY: usize = 64;
pub const NAMESPACES: usize = 20;
pub const PODS_PER_NODE: usize = 20;
/// Pool `bench`: room for 8,192 /26 blocks.
pub const BENCH_CIDR: &str = "10.64.0.0/13";
/// Pool `second`: room for 1,024 /26 blocks.
pub const SECOND_CIDR: &str = "10.128.0.0/16";
const BLOCK_SIZE: u8 = 26;

/// What was seeded, for the record.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Counts {
    pub pods: usize,
    pub nodes: usize,
    pub blocks: usize,
    pub affinities: usize,
    pub handles: usize,
    pub leaked_addresses: usize,
    pub stale_affinities: usize,
}

fn calico(client: &Client) -> CalicoClient {
    CalicoClient::new(client.clone(), ServedApis::new(Serving::Crds, None))
}

/// Creates every item with at most `CONCURRENCY` requests in flight.
async fn create_all<T, F, Fut>(items: Vec<T>, create: F) -> anyhow::Result<()>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    stream::iter(items.into_iter().map(create))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Creates Calico objects of one kind, `CONCURRENCY` at a time.
async fn create_calico<T>(
    calico: &CalicoClient,
    kind: CalicoKind,
    items: Vec<T>,
) -> anyhow::Result<()>
where
    T: CalicoResource,
{
    create_all(items, |item| async move {
        calico.create(kind, item.name(), &item, false).await?;
        Ok(())
    })
    .await
}

fn pool(name: &str, cidr: &str) -> IpPool {
    IpPool {
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "IPPool".to_owned(),
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: IpPoolSpec {
            cidr: Some(cidr.to_owned()),
            block_size: Some(i64::from(BLOCK_SIZE)),
            node_selector: Some("all()".to_owned()),
            ..IpPoolSpec::default()
        },
    }
}

/// A pod to create: namespace, name, node, address, container ID.
struct SeededPod {
    namespace: String,
    name: String,
    node: String,
    address: IpAddr,
    container: String,
}

/// Calico's IPAM for the world, built in memory before anything is written.
#[derive(Default)]
struct Ipam {
    /// (pool, node) → index in `blocks` of the node's block being filled.
    filling: HashMap<(usize, String), usize>,
    blocks: Vec<IpamBlock>,
    affinities: Vec<BlockAffinity>,
    handles: Vec<IpamHandle>,
    /// The next free block of each pool.
    free: Vec<Box<dyn Iterator<Item = IpNet>>>,
}

impl Ipam {
    fn new(pools: &[IpNet]) -> Ipam {
        Ipam {
            free: pools
                .iter()
                .map(|p| Box::new(cidr::blocks(p, BLOCK_SIZE)) as Box<dyn Iterator<Item = IpNet>>)
                .collect(),
            ..Ipam::default()
        }
    }

    /// A new block of `pool` affine to `node`.
    fn claim(&mut self, pool: usize, node: &str) -> anyhow::Result<usize> {
        let net = self.free[pool]
            .next()
            .ok_or_else(|| anyhow::anyhow!("pool {pool} has no free block left"))?;
        self.blocks.push(allocation::new_block(
            net,
            Some(names::host_affinity(node)),
            1,
        )?);
        self.affinities.push(allocation::new_block_affinity(
            node,
            &net,
            AffinityState::Confirmed,
        ));
        Ok(self.blocks.len() - 1)
    }

    /// One address from `node`'s block of `pool` (a new block when it is full), for `handle`.
    fn assign(
        &mut self,
        pool: usize,
        node: &str,
        handle: &str,
        owner: BTreeMap<String, String>,
    ) -> anyhow::Result<IpAddr> {
        let key = (pool, node.to_owned());
        let mut index = match self.filling.get(&key) {
            Some(&i) => i,
            None => self.claim(pool, node)?,
        };
        let mut taken = allocation::assign(&mut self.blocks[index], 1, handle, &owner)?;
        if taken.is_empty() {
            // The node's block is full: Calico claims it another.
            index = self.claim(pool, node)?;
            taken = allocation::assign(&mut self.blocks[index], 1, handle, &owner)?;
        }
        self.filling.insert(key, index);
        let address = *taken
            .first()
            .ok_or_else(|| anyhow::anyhow!("a new block had no free address"))?;
        let block_cidr = self.blocks[index].spec.cidr.clone();
        self.handles.push(allocation::new_handle(
            handle,
            BTreeMap::from([(block_cidr, 1)]),
        ));
        Ok(address)
    }
}

/// The world for `pods` pods.
pub struct World {
    nodes: usize,
    pods: Vec<SeededPod>,
    ipam: Ipam,
    leaked: usize,
    stale: usize,
}

impl World {
    pub fn build(pods: usize) -> anyhow::Result<World> {
        let nodes = pods.div_ceil(PODS_PER_NODE).max(10);
        let pools: Vec<IpNet> = [BENCH_CIDR, SECOND_CIDR]
            .iter()
            .map(|c| c.parse())
            .collect::<Result<_, _>>()?;
        let mut ipam = Ipam::new(&pools);
        let mut seeded = Vec::with_capacity(pods);
        let mut leaked = 0;
        for p in 0..pods {
            let namespace = p % NAMESPACES;
            // Namespace ns-0's pods are in `second`, on the first twentieth of the nodes.
            let (pool, node) = if namespace == 0 {
                (1, (p / NAMESPACES) % (nodes / NAMESPACES).max(1))
            } else {
                (0, p % nodes)
            };
            let node = format!("node-{node}");
            let namespace = format!("ns-{namespace}");
            let name = format!("p-{p}");
            let container = format!("{p:064x}");
            let owner = BTreeMap::from([
                ("namespace".to_owned(), namespace.clone()),
                ("pod".to_owned(), name.clone()),
                ("node".to_owned(), node.clone()),
            ]);
            let address = ipam.assign(pool, &node, &names::pod_handle_id(&container), owner)?;
            if p % 100 == 99 {
                let gone = format!("{:064x}", pods + p);
                let owner = BTreeMap::from([
                    ("namespace".to_owned(), namespace.clone()),
                    ("pod".to_owned(), format!("gone-{p}")),
                    ("node".to_owned(), node.clone()),
                ]);
                ipam.assign(pool, &node, &names::pod_handle_id(&gone), owner)?;
                leaked += 1;
            }
            seeded.push(SeededPod {
                namespace,
                name,
                node,
                address,
                container,
            });
        }
        let stale = nodes.div_ceil(100);
        for n in 0..stale {
            ipam.claim(0, &format!("gone-node-{n}"))?;
        }
        Ok(World {
            nodes,
            pods: seeded,
            ipam,
            leaked,
            stale,
        })
    }

    pub fn counts(&self) -> Counts {
        Counts {
            pods: self.pods.len(),
            nodes: self.nodes,
            blocks: self.ipam.blocks.len(),
            affinities: self.ipam.affinities.len(),
            handles: self.ipam.handles.len(),
            leaked_addresses: self.leaked,
            stale_affinities: self.stale,
        }
    }

    /// Writes the world into the cluster.
    pub async fn create(self, client: &Client) -> anyhow::Result<()> {
        let calico = calico(client);
        let pools = [("bench", BENCH_CIDR), ("second", SECOND_CIDR)];
        create_calico(
            &calico,
            CalicoKind::Pool,
            pools.map(|(n, c)| pool(n, c)).to_vec(),
        )
        .await?;
        seed_nodes_and_namespaces(client, self.nodes).await?;
        let Ipam {
            blocks,
            affinities,
            handles,
            ..
        } = self.ipam;
        create_calico(&calico, CalicoKind::Block, blocks).await?;
        create_calico(&calico, CalicoKind::Affinity, affinities).await?;
        create_calico(&calico, CalicoKind::Handle, handles).await?;
        create_all(self.pods, |pod| {
            let client = client.clone();
            async move {
                let manifest: Pod = serde_json::from_value(json!({
                    "metadata": {"name": pod.name, "namespace": pod.namespace, "annotations": {
                        names::ANNOTATION_POD_IPS: format!("{}/32", pod.address),
                        names::ANNOTATION_POD_IP: format!("{}/32", pod.address),
                        names::ANNOTATION_CONTAINER_ID: pod.container,
                    }},
                    "spec": {"nodeName": pod.node, "automountServiceAccountToken": false,
                             "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
                }))?;
                Api::<Pod>::namespaced(client, &pod.namespace)
                    .create(&PostParams::default(), &manifest)
                    .await?;
                Ok(())
            }
        })
        .await
    }
}

async fn seed_nodes_and_namespaces(client: &Client, nodes: usize) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    create_all((0..nodes).collect(), |i| {
        let api = api.clone();
        async move {
            let node: Node =
                serde_json::from_value(json!({"metadata": {"name": format!("node-{i}")}}))?;
            api.create(&PostParams::default(), &node).await?;
            Ok(())
        }
    })
    .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    create_all((0..NAMESPACES).collect(), |i| {
        let namespaces = namespaces.clone();
        let client = client.clone();
        async move {
            let name = format!("ns-{i}");
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            namespaces.create(&PostParams::default(), &ns).await?;
            let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
            harness::wait_for(
                &accounts,
                "default",
                kube::runtime::wait::conditions::is_created(),
                Duration::from_secs(120),
            )
            .await?;
            Ok(())
        }
    })
    .await
}
