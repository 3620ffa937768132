//! Consulting each source in the cluster; what went wrong (absent, forbidden, unreadable) is an
//! outcome, never an error.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};

use super::parse::{
    parse_cidr_list, parse_controller_manager_args, parse_kube_proxy_configuration,
    parse_kubeadm_cluster_configuration, summarise_node_ranges,
};
use super::{KUBE_PROXY_CONFIG, KUBE_SYSTEM, KUBEADM_CONFIG, SourceAnswer};

const CONTROLLER_MANAGER_SELECTOR: &str = "component=kube-controller-manager";
const NODE_PAGE: u32 = 500;

fn api_outcome(what: &str, error: kube::Error) -> SourceAnswer {
    match error {
        kube::Error::Api(status) if status.is_not_found() => SourceAnswer::Absent {
            detail: format!("{what} not found"),
        },
        kube::Error::Api(status) if status.is_forbidden() => SourceAnswer::Forbidden {
            detail: format!("not allowed to read {what}: {}", status.message),
        },
        other => SourceAnswer::Failed {
            detail: format!("reading {what} failed: {other}"),
        },
    }
}

async fn config_map_key(
    api: &Api<ConfigMap>,
    name: &str,
    key: &str,
) -> Result<String, SourceAnswer> {
    let what = format!("ConfigMap {KUBE_SYSTEM}/{name}");
    let map = api.get(name).await.map_err(|e| api_outcome(&what, e))?;
    map.data
        .and_then(|mut data| data.remove(key))
        .ok_or_else(|| SourceAnswer::Absent {
            detail: format!("{what} has no key {key:?}"),
        })
}

pub(super) async fn kubeadm_outcome(api: &Api<ConfigMap>) -> SourceAnswer {
    let text = match config_map_key(api, KUBEADM_CONFIG, "ClusterConfiguration").await {
        Ok(text) => text,
        Err(outcome) => return outcome,
    };
    match parse_kubeadm_cluster_configuration(&text) {
        Ok(n) if n.pod_subnets.is_empty() && n.service_subnets.is_empty() => SourceAnswer::Absent {
            detail: "ClusterConfiguration sets neither networking.podSubnet nor serviceSubnet"
                .to_owned(),
        },
        Ok(n) => SourceAnswer::Found {
            cluster: n.pod_subnets,
            service: n.service_subnets,
        },
        Err(e) => SourceAnswer::Unparsable {
            detail: e.to_string(),
        },
    }
}

pub(super) async fn kube_proxy_outcome(api: &Api<ConfigMap>) -> SourceAnswer {
    let text = match config_map_key(api, KUBE_PROXY_CONFIG, "config.conf").await {
        Ok(text) => text,
        Err(outcome) => return outcome,
    };
    match parse_kube_proxy_configuration(&text) {
        Ok(cidrs) if cidrs.is_empty() => SourceAnswer::Absent {
            detail: "config.conf sets no clusterCIDR".to_owned(),
        },
        Ok(cidrs) => SourceAnswer::Found {
            cluster: cidrs,
            service: Vec::new(),
        },
        Err(e) => SourceAnswer::Unparsable {
            detail: e.to_string(),
        },
    }
}

pub(super) async fn controller_manager_outcome(client: &Client) -> SourceAnswer {
    let pods: Api<Pod> = Api::namespaced(client.clone(), KUBE_SYSTEM);
    let what = format!("pods in {KUBE_SYSTEM} labelled {CONTROLLER_MANAGER_SELECTOR}");
    let list = match pods
        .list(&ListParams::default().labels(CONTROLLER_MANAGER_SELECTOR))
        .await
    {
        Ok(list) => list,
        Err(e) => return api_outcome(&what, e),
    };
    if list.items.is_empty() {
        return SourceAnswer::Absent {
            detail: format!("no {what}"),
        };
    }
    for pod in &list.items {
        let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
        for container in containers {
            let args: Vec<String> = container
                .command
                .iter()
                .flatten()
                .chain(container.args.iter().flatten())
                .cloned()
                .collect();
            match parse_controller_manager_args(&args) {
                Ok((cluster, service)) if !cluster.is_empty() || !service.is_empty() => {
                    return SourceAnswer::Found { cluster, service };
                }
                Ok(_) => {}
                Err(e) => {
                    return SourceAnswer::Unparsable {
                        detail: e.to_string(),
                    };
                }
            }
        }
    }
    SourceAnswer::Absent {
        detail: "kube-controller-manager runs without --cluster-cidr".to_owned(),
    }
}

pub(super) async fn node_outcome(client: &Client) -> SourceAnswer {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut ranges = Vec::new();
    let mut params = ListParams::default().limit(NODE_PAGE);
    loop {
        let page = match nodes.list(&params).await {
            Ok(page) => page,
            Err(e) => return api_outcome("nodes", e),
        };
        for node in &page.items {
            let spec = node.spec.as_ref();
            let listed = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
            let single = spec.and_then(|s| s.pod_cidr.clone());
            for text in listed.into_iter().chain(single) {
                match parse_cidr_list("spec.podCIDRs", &text) {
                    Ok(nets) => ranges.extend(nets),
                    Err(e) => {
                        return SourceAnswer::Unparsable {
                            detail: e.to_string(),
                        };
                    }
                }
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    if ranges.is_empty() {
        return SourceAnswer::Absent {
            detail: "no node has spec.podCIDRs (usual under Calico IPAM)".to_owned(),
        };
    }
    SourceAnswer::Found {
        cluster: summarise_node_ranges(&ranges),
        service: Vec::new(),
    }
}
