//! Cluster CIDR discovery, shared by the kubectl plugin and the admission webhook.
//!
//! Order of trust: `--cluster-cidr` flags win. Otherwise the strong sources are kubeadm's
//! `kubeadm-config` ConfigMap, kube-proxy's configuration and the kube-controller-manager static
//! pod's `--cluster-cidr`; the first of them that answers is used. Node `spec.podCIDRs` are per-node
//! ranges (and usually empty under Calico IPAM), so they are only a weak hint, consulted when no
//! strong source answered. Every source tried is reported with its outcome: a missing or forbidden
//! source is an outcome, not a failure.

use std::fmt;

use ipnet::IpNet;
use ippool_rules::context::{ClusterCidrs, Strength};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use serde::Deserialize;

/// The namespace that holds kubeadm's and kube-proxy's configuration and the static control plane pods.
pub const KUBE_SYSTEM: &str = "kube-system";
/// ConfigMaps read for discovery; the webhook's Role is limited to these names.
pub const KUBEADM_CONFIG: &str = "kubeadm-config";
pub const KUBE_PROXY_CONFIG: &str = "kube-proxy";
const CONTROLLER_MANAGER_SELECTOR: &str = "component=kube-controller-manager";
const NODE_PAGE: u32 = 500;

/// Where a CIDR answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CidrSource {
    /// `--cluster-cidr` / `--service-cidr` given on the command line.
    Flag,
    /// kube-system/kubeadm-config, key `ClusterConfiguration`, `networking.podSubnet`/`serviceSubnet`.
    KubeadmConfig,
    /// kube-system/kube-proxy, key `config.conf`, `clusterCIDR`.
    KubeProxyConfig,
    /// kube-system pods labelled `component=kube-controller-manager`: `--cluster-cidr` and
    /// `--service-cluster-ip-range`.
    ControllerManagerPod,
    /// Node `spec.podCIDRs` (weak).
    NodePodCidrs,
}

impl CidrSource {
    pub fn strength(self) -> Strength {
        match self {
            CidrSource::NodePodCidrs => Strength::Weak,
            _ => Strength::Strong,
        }
    }

    /// The origin as quoted in rule messages and `kubectl ippool cluster-cidr`.
    pub fn describe(self) -> &'static str {
        match self {
            CidrSource::Flag => "--cluster-cidr flag",
            CidrSource::KubeadmConfig => {
                "kube-system/kubeadm-config ConfigMap (ClusterConfiguration networking)"
            }
            CidrSource::KubeProxyConfig => {
                "kube-system/kube-proxy ConfigMap (config.conf clusterCIDR)"
            }
            CidrSource::ControllerManagerPod => "kube-controller-manager pod --cluster-cidr",
            CidrSource::NodePodCidrs => {
                "node spec.podCIDRs (per-node ranges, summarised per family; a weak hint)"
            }
        }
    }
}

impl fmt::Display for CidrSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What happened when one source was consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The source names these pod CIDRs (and, where it carries them, service CIDRs).
    Found {
        cluster: Vec<IpNet>,
        service: Vec<IpNet>,
    },
    /// The object or field does not exist (e.g. not a kubeadm cluster).
    Absent { detail: String },
    /// The caller may not read it (the webhook's RBAC deliberately omits pods and nodes).
    Forbidden { detail: String },
    /// It exists but could not be understood.
    Unparsable { detail: String },
    /// The request failed for another reason (network, server error).
    Failed { detail: String },
    /// Not consulted, because a stronger answer was already given.
    Skipped { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub source: CidrSource,
    pub outcome: Outcome,
}

/// Values given on the command line; they win over anything discovered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrFlags {
    pub cluster_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
}

/// The discovery result: the chosen answers, where they came from, and every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub cluster: Option<(CidrSource, Vec<IpNet>)>,
    pub service: Option<(CidrSource, Vec<IpNet>)>,
    pub attempts: Vec<Attempt>,
}

impl Discovery {
    /// The cluster CIDRs as the rules take them; `None` (the rules then say so) when nothing was found.
    pub fn cluster_cidrs(&self) -> Option<ClusterCidrs> {
        self.cluster.as_ref().map(|(source, cidrs)| ClusterCidrs {
            cidrs: cidrs.clone(),
            source: source.describe().to_owned(),
            strength: source.strength(),
        })
    }

    pub fn service_cidrs(&self) -> Option<Vec<IpNet>> {
        self.service.as_ref().map(|(_, cidrs)| cidrs.clone())
    }

    /// Chooses answers from attempts made in order of trust: flags, then the first strong source
    /// that found something, then the weak hint.
    fn choose(attempts: Vec<Attempt>) -> Discovery {
        let mut cluster = None;
        let mut service = None;
        for attempt in &attempts {
            if let Outcome::Found {
                cluster: c,
                service: s,
            } = &attempt.outcome
            {
                if cluster.is_none() && !c.is_empty() {
                    cluster = Some((attempt.source, c.clone()));
                }
                if service.is_none() && !s.is_empty() {
                    service = Some((attempt.source, s.clone()));
                }
            }
        }
        Discovery {
            cluster,
            service,
            attempts,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("`{field}` is not valid YAML for a {document}: {reason}")]
    Yaml {
        field: &'static str,
        document: &'static str,
        reason: String,
    },
    #[error(
        "`{field}` holds {value:?}, which is not a CIDR list (expected e.g. 10.244.0.0/16,fd00::/48)"
    )]
    Cidr { field: &'static str, value: String },
}

/// Parses a comma-separated CIDR list (dual-stack clusters give one per family). Host bits are
/// cleared the way the Kubernetes components read these values.
pub fn parse_cidr_list(field: &'static str, value: &str) -> Result<Vec<IpNet>, ParseError> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net: IpNet = part.parse().map_err(|_| ParseError::Cidr {
            field,
            value: value.to_owned(),
        })?;
        out.push(net.trunc());
    }
    Ok(out)
}

/// `networking.podSubnet` and `networking.serviceSubnet` of kubeadm's ClusterConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeadmNetworking {
    pub pod_subnets: Vec<IpNet>,
    pub service_subnets: Vec<IpNet>,
}

#[derive(Deserialize)]
struct ClusterConfiguration {
    #[serde(default)]
    networking: Option<Networking>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    #[serde(default)]
    pod_subnet: Option<String>,
    #[serde(default)]
    service_subnet: Option<String>,
}

pub fn parse_kubeadm_cluster_configuration(text: &str) -> Result<KubeadmNetworking, ParseError> {
    let config: ClusterConfiguration =
        serde_saphyr::from_str(text).map_err(|e| ParseError::Yaml {
            field: "ClusterConfiguration",
            document: "kubeadm ClusterConfiguration",
            reason: e.to_string(),
        })?;
    let networking = config.networking.unwrap_or(Networking {
        pod_subnet: None,
        service_subnet: None,
    });
    Ok(KubeadmNetworking {
        pod_subnets: match networking.pod_subnet {
            Some(v) => parse_cidr_list("networking.podSubnet", &v)?,
            None => Vec::new(),
        },
        service_subnets: match networking.service_subnet {
            Some(v) => parse_cidr_list("networking.serviceSubnet", &v)?,
            None => Vec::new(),
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubeProxyConfiguration {
    #[serde(default, rename = "clusterCIDR")]
    cluster_cidr: Option<String>,
}

/// `clusterCIDR` of a KubeProxyConfiguration (empty when unset).
pub fn parse_kube_proxy_configuration(text: &str) -> Result<Vec<IpNet>, ParseError> {
    let config: KubeProxyConfiguration =
        serde_saphyr::from_str(text).map_err(|e| ParseError::Yaml {
            field: "config.conf",
            document: "KubeProxyConfiguration",
            reason: e.to_string(),
        })?;
    match config.cluster_cidr {
        Some(v) => parse_cidr_list("clusterCIDR", &v),
        None => Ok(Vec::new()),
    }
}

/// `--cluster-cidr` and `--service-cluster-ip-range` from a kube-controller-manager command line
/// (`--flag=value` or `--flag value`).
pub fn parse_controller_manager_args(
    args: &[String],
) -> Result<(Vec<IpNet>, Vec<IpNet>), ParseError> {
    let mut cluster = Vec::new();
    let mut service = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let target = match flag {
            "--cluster-cidr" => &mut cluster,
            "--service-cluster-ip-range" => &mut service,
            _ => continue,
        };
        let field = if flag == "--cluster-cidr" {
            "--cluster-cidr"
        } else {
            "--service-cluster-ip-range"
        };
        let value = match inline {
            Some(v) => v,
            None => iter.next().cloned().unwrap_or_default(),
        };
        *target = parse_cidr_list(field, &value)?;
    }
    Ok((cluster, service))
}

/// Summarises per-node ranges as the smallest network per IP family that covers them all.
pub fn summarise_node_ranges(ranges: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for range in ranges {
        let range = range.trunc();
        match out.iter_mut().find(|n| {
            matches!(
                (n, &range),
                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
            )
        }) {
            None => out.push(range),
            Some(cover) => {
                while !cover.contains(&range) {
                    match cover.supernet() {
                        Some(wider) => *cover = wider,
                        None => break,
                    }
                }
            }
        }
    }
    out
}

/// Consults the sources in order of trust and reports every attempt.
pub async fn discover(client: &Client, flags: &CidrFlags) -> Discovery {
    let mut attempts = Vec::new();
    if !flags.cluster_cidrs.is_empty() || !flags.service_cidrs.is_empty() {
        attempts.push(Attempt {
            source: CidrSource::Flag,
            outcome: Outcome::Found {
                cluster: flags.cluster_cidrs.clone(),
                service: flags.service_cidrs.clone(),
            },
        });
    }
    if !flags.cluster_cidrs.is_empty() && !flags.service_cidrs.is_empty() {
        for source in [
            CidrSource::KubeadmConfig,
            CidrSource::KubeProxyConfig,
            CidrSource::ControllerManagerPod,
            CidrSource::NodePodCidrs,
        ] {
            attempts.push(Attempt {
                source,
                outcome: Outcome::Skipped {
                    reason: "--cluster-cidr and --service-cidr were given".to_owned(),
                },
            });
        }
        return Discovery::choose(attempts);
    }

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), KUBE_SYSTEM);
    attempts.push(Attempt {
        source: CidrSource::KubeadmConfig,
        outcome: kubeadm_outcome(&config_maps).await,
    });
    attempts.push(Attempt {
        source: CidrSource::KubeProxyConfig,
        outcome: kube_proxy_outcome(&config_maps).await,
    });
    attempts.push(Attempt {
        source: CidrSource::ControllerManagerPod,
        outcome: controller_manager_outcome(client).await,
    });

    let strong_answer = attempts
        .iter()
        .any(|a| matches!(&a.outcome, Outcome::Found { cluster, .. } if !cluster.is_empty()));
    let outcome = if strong_answer {
        Outcome::Skipped {
            reason: "a strong source named the cluster CIDR".to_owned(),
        }
    } else {
        node_outcome(client).await
    };
    attempts.push(Attempt {
        source: CidrSource::NodePodCidrs,
        outcome,
    });
    Discovery::choose(attempts)
}

fn api_outcome(what: &str, error: kube::Error) -> Outcome {
    match error {
        kube::Error::Api(status) if status.is_not_found() => Outcome::Absent {
            detail: format!("{what} not found"),
        },
        kube::Error::Api(status) if status.is_forbidden() => Outcome::Forbidden {
            detail: format!("not allowed to read {what}: {}", status.message),
        },
        other => Outcome::Failed {
            detail: format!("reading {what} failed: {other}"),
        },
    }
}

async fn config_map_key(api: &Api<ConfigMap>, name: &str, key: &str) -> Result<String, Outcome> {
    let what = format!("ConfigMap {KUBE_SYSTEM}/{name}");
    let map = api.get(name).await.map_err(|e| api_outcome(&what, e))?;
    map.data
        .and_then(|mut data| data.remove(key))
        .ok_or_else(|| Outcome::Absent {
            detail: format!("{what} has no key {key:?}"),
        })
}

async fn kubeadm_outcome(api: &Api<ConfigMap>) -> Outcome {
    let text = match config_map_key(api, KUBEADM_CONFIG, "ClusterConfiguration").await {
        Ok(text) => text,
        Err(outcome) => return outcome,
    };
    match parse_kubeadm_cluster_configuration(&text) {
        Ok(n) if n.pod_subnets.is_empty() && n.service_subnets.is_empty() => Outcome::Absent {
            detail: "ClusterConfiguration sets neither networking.podSubnet nor serviceSubnet"
                .to_owned(),
        },
        Ok(n) => Outcome::Found {
            cluster: n.pod_subnets,
            service: n.service_subnets,
        },
        Err(e) => Outcome::Unparsable {
            detail: e.to_string(),
        },
    }
}

async fn kube_proxy_outcome(api: &Api<ConfigMap>) -> Outcome {
    let text = match config_map_key(api, KUBE_PROXY_CONFIG, "config.conf").await {
        Ok(text) => text,
        Err(outcome) => return outcome,
    };
    match parse_kube_proxy_configuration(&text) {
        Ok(cidrs) if cidrs.is_empty() => Outcome::Absent {
            detail: "config.conf sets no clusterCIDR".to_owned(),
        },
        Ok(cidrs) => Outcome::Found {
            cluster: cidrs,
            service: Vec::new(),
        },
        Err(e) => Outcome::Unparsable {
            detail: e.to_string(),
        },
    }
}

async fn controller_manager_outcome(client: &Client) -> Outcome {
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
        return Outcome::Absent {
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
                    return Outcome::Found { cluster, service };
                }
                Ok(_) => {}
                Err(e) => {
                    return Outcome::Unparsable {
                        detail: e.to_string(),
                    };
                }
            }
        }
    }
    Outcome::Absent {
        detail: "kube-controller-manager runs without --cluster-cidr".to_owned(),
    }
}

async fn node_outcome(client: &Client) -> Outcome {
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
                        return Outcome::Unparsable {
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
        return Outcome::Absent {
            detail: "no node has spec.podCIDRs (usual under Calico IPAM)".to_owned(),
        };
    }
    Outcome::Found {
        cluster: summarise_node_ranges(&ranges),
        service: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn kubeadm_dual_stack_pod_and_service_subnets() {
        let text = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n\
                    networking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  \
                    serviceSubnet: 10.96.0.0/12\n";
        let parsed = parse_kubeadm_cluster_configuration(text).unwrap();
        assert_eq!(
            parsed.pod_subnets,
            nets(&["10.244.0.0/16", "fd00:10:244::/56"])
        );
        assert_eq!(parsed.service_subnets, nets(&["10.96.0.0/12"]));
    }

    #[test]
    fn kubeadm_without_networking_finds_nothing() {
        let parsed = parse_kubeadm_cluster_configuration("kind: ClusterConfiguration\n").unwrap();
        assert_eq!(parsed, KubeadmNetworking::default());
    }

    #[test]
    fn kubeadm_bad_subnet_names_the_field() {
        let err = parse_kubeadm_cluster_configuration("networking:\n  podSubnet: 10.244.0.0/33\n")
            .unwrap_err();
        assert!(err.to_string().contains("networking.podSubnet"), "{err}");
    }

    #[test]
    fn kubeadm_broken_yaml_is_an_error_not_a_panic() {
        let err = parse_kubeadm_cluster_configuration("networking: [\n").unwrap_err();
        assert!(matches!(err, ParseError::Yaml { .. }), "{err}");
    }

    #[test]
    fn kube_proxy_cluster_cidr() {
        let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                    clusterCIDR: 192.168.0.0/16\nmode: iptables\n";
        assert_eq!(
            parse_kube_proxy_configuration(text).unwrap(),
            nets(&["192.168.0.0/16"])
        );
        assert!(
            parse_kube_proxy_configuration("clusterCIDR: \"\"\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn controller_manager_flags_in_both_spellings() {
        let args: Vec<String> = [
            "kube-controller-manager",
            "--allocate-node-cidrs=true",
            "--cluster-cidr=10.244.0.0/16,fd00::/48",
            "--service-cluster-ip-range",
            "10.96.0.0/12",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (cluster, service) = parse_controller_manager_args(&args).unwrap();
        assert_eq!(cluster, nets(&["10.244.0.0/16", "fd00::/48"]));
        assert_eq!(service, nets(&["10.96.0.0/12"]));
    }

    #[test]
    fn controller_manager_without_the_flag_finds_nothing() {
        let args = vec!["kube-controller-manager".to_owned(), "--v=2".to_owned()];
        assert_eq!(
            parse_controller_manager_args(&args).unwrap(),
            (vec![], vec![])
        );
    }

    #[test]
    fn host_bits_are_cleared_as_the_components_do() {
        assert_eq!(
            parse_cidr_list("x", "10.244.1.7/16").unwrap(),
            nets(&["10.244.0.0/16"])
        );
    }

    #[test]
    fn node_ranges_are_summarised_per_family() {
        let ranges = nets(&[
            "10.244.0.0/24",
            "10.244.3.0/24",
            "fd00:1::/64",
            "10.244.1.0/24",
        ]);
        assert_eq!(
            summarise_node_ranges(&ranges),
            nets(&["10.244.0.0/22", "fd00:1::/64"])
        );
    }

    #[test]
    fn flags_win_then_the_first_strong_source_then_the_hint() {
        let found = |source, cluster: &[&str], service: &[&str]| Attempt {
            source,
            outcome: Outcome::Found {
                cluster: nets(cluster),
                service: nets(service),
            },
        };
        let chosen = Discovery::choose(vec![
            Attempt {
                source: CidrSource::KubeadmConfig,
                outcome: Outcome::Forbidden {
                    detail: "no".to_owned(),
                },
            },
            found(CidrSource::KubeProxyConfig, &["10.1.0.0/16"], &[]),
            found(
                CidrSource::ControllerManagerPod,
                &["10.2.0.0/16"],
                &["10.96.0.0/12"],
            ),
        ]);
        let cidrs = chosen.cluster_cidrs().unwrap();
        assert_eq!(cidrs.cidrs, nets(&["10.1.0.0/16"]));
        assert_eq!(cidrs.strength, Strength::Strong);
        assert!(cidrs.source.contains("kube-proxy"));
        assert_eq!(chosen.service_cidrs(), Some(nets(&["10.96.0.0/12"])));

        let hint = Discovery::choose(vec![found(CidrSource::NodePodCidrs, &["10.3.0.0/22"], &[])]);
        assert_eq!(hint.cluster_cidrs().unwrap().strength, Strength::Weak);

        let nothing = Discovery::choose(vec![Attempt {
            source: CidrSource::KubeadmConfig,
            outcome: Outcome::Absent {
                detail: "x".to_owned(),
            },
        }]);
        assert_eq!(nothing.cluster_cidrs(), None);
        assert_eq!(nothing.service_cidrs(), None);
    }
}
