//! Cluster CIDR discovery, shared by the kubectl plugin and the admission webhook.
//!
//! Order of trust: `--cluster-cidr` flags win. Otherwise the strong sources are kubeadm's
//! `kubeadm-config` ConfigMap, kube-proxy's configuration and the kube-controller-manager static
//! pod's `--cluster-cidr`; the first of them that answers is used. Node `spec.podCIDRs` are per-node
//! ranges (and usually empty under Calico IPAM), so they are only a weak hint, consulted when no
//! strong source answered. Every source tried is reported with its outcome: a missing or forbidden
//! source is an outcome, not a failure.

pub mod parse;
mod sources;

use std::fmt;

use ipnet::IpNet;
use ippool_rules::context::{ClusterCidrs, Strength};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;

use sources::{controller_manager_outcome, kube_proxy_outcome, kubeadm_outcome, node_outcome};

/// The namespace that holds kubeadm's and kube-proxy's configuration and the static control plane pods.
pub const KUBE_SYSTEM: &str = "kube-system";
/// ConfigMaps read for discovery; the webhook's Role is limited to these names.
pub const KUBEADM_CONFIG: &str = "kubeadm-config";
pub const KUBE_PROXY_CONFIG: &str = "kube-proxy";

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
pub enum SourceAnswer {
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
    pub outcome: SourceAnswer,
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
            if let SourceAnswer::Found {
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

/// Consults the sources in order of trust and reports every attempt.
pub async fn discover(client: &Client, flags: &CidrFlags) -> Discovery {
    let mut attempts = Vec::new();
    if !flags.cluster_cidrs.is_empty() || !flags.service_cidrs.is_empty() {
        attempts.push(Attempt {
            source: CidrSource::Flag,
            outcome: SourceAnswer::Found {
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
                outcome: SourceAnswer::Skipped {
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
        .any(|a| matches!(&a.outcome, SourceAnswer::Found { cluster, .. } if !cluster.is_empty()));
    let outcome = if strong_answer {
        SourceAnswer::Skipped {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn flags_win_then_the_first_strong_source_then_the_hint() {
        let found = |source, cluster: &[&str], service: &[&str]| Attempt {
            source,
            outcome: SourceAnswer::Found {
                cluster: nets(cluster),
                service: nets(service),
            },
        };
        let chosen = Discovery::choose(vec![
            Attempt {
                source: CidrSource::KubeadmConfig,
                outcome: SourceAnswer::Forbidden {
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
            outcome: SourceAnswer::Absent {
                detail: "x".to_owned(),
            },
        }]);
        assert_eq!(nothing.cluster_cidrs(), None);
        assert_eq!(nothing.service_cidrs(), None);
    }
}
