//! Reading the cluster CIDRs out of what each source holds: kubeadm's ClusterConfiguration,
//! kube-proxy's configuration, kube-controller-manager's flags, and node ranges.

use ipnet::IpNet;
use serde::Deserialize;

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
}
