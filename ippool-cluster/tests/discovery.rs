//! Cluster CIDR discovery against a real control plane: which source answers, and that a missing
//! or forbidden source is reported as such rather than failing.

use std::collections::BTreeMap;

use harness::ControlPlane;
use ipnet::IpNet;
use ippool_cluster::discovery::{CidrFlags, CidrSource, SourceAnswer, discover};
use ippool_rules::context::Strength;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn outcome(found: &ippool_cluster::discovery::Discovery, source: CidrSource) -> &SourceAnswer {
    &found
        .attempts
        .iter()
        .find(|a| a.source == source)
        .unwrap_or_else(|| panic!("no attempt for {source}: {found:?}"))
        .outcome
}

async fn client_as(cp: &ControlPlane, user: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.auth_info.impersonate = Some(user.to_owned());
    Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_in_order_of_trust_with_every_attempt_reported() {
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await;

    // The harness seeds kubeadm-config: podSubnet 10.0.0.0/8, serviceSubnet 10.96.0.0/12.
    let found = discover(&client, &CidrFlags::default()).await;
    assert_eq!(
        found.cluster,
        Some((CidrSource::KubeadmConfig, nets(&["10.0.0.0/8"])))
    );
    assert_eq!(
        found.service,
        Some((CidrSource::KubeadmConfig, nets(&["10.96.0.0/12"])))
    );
    assert!(matches!(
        outcome(&found, CidrSource::KubeProxyConfig),
        SourceAnswer::Absent { .. }
    ));
    assert!(matches!(
        outcome(&found, CidrSource::ControllerManagerPod),
        SourceAnswer::Absent { .. }
    ));
    assert!(matches!(
        outcome(&found, CidrSource::NodePodCidrs),
        SourceAnswer::Skipped { .. }
    ));
    assert_eq!(found.cluster_cidrs().unwrap().strength, Strength::Strong);

    // Flags win, and nothing else is asked.
    let flags = CidrFlags {
        cluster_cidrs: nets(&["192.168.0.0/16"]),
        service_cidrs: nets(&["10.43.0.0/16"]),
    };
    let flagged = discover(&client, &flags).await;
    assert_eq!(
        flagged.cluster,
        Some((CidrSource::Flag, nets(&["192.168.0.0/16"])))
    );
    assert!(
        flagged
            .attempts
            .iter()
            .skip(1)
            .all(|a| matches!(a.outcome, SourceAnswer::Skipped { .. }))
    );

    // Someone without rights: every source is "forbidden", none is an error.
    let nobody = client_as(&cp, "nobody").await;
    let forbidden = discover(&nobody, &CidrFlags::default()).await;
    assert_eq!(forbidden.cluster, None);
    for attempt in &forbidden.attempts {
        assert!(
            matches!(attempt.outcome, SourceAnswer::Forbidden { .. }),
            "{attempt:?}"
        );
    }

    // Without kubeadm's ConfigMap, kube-proxy's configuration answers.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    config_maps
        .delete("kubeadm-config", &DeleteParams::default())
        .await
        .unwrap();
    let kube_proxy = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("kube-proxy".to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "config.conf".to_owned(),
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16,fd00:10:244::/56\n".to_owned(),
        )])),
        ..Default::default()
    };
    config_maps
        .create(&PostParams::default(), &kube_proxy)
        .await
        .unwrap();
    let proxied = discover(&client, &CidrFlags::default()).await;
    assert_eq!(
        proxied.cluster,
        Some((
            CidrSource::KubeProxyConfig,
            nets(&["10.244.0.0/16", "fd00:10:244::/56"])
        ))
    );
    assert_eq!(
        proxied.service, None,
        "kube-proxy's config names no service CIDR"
    );

    // With no strong source at all, nodes' podCIDRs are a weak hint.
    config_maps
        .delete("kube-proxy", &DeleteParams::default())
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, cidr) in [("n1", "10.244.0.0/24"), ("n2", "10.244.3.0/24")] {
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    let hinted = discover(&client, &CidrFlags::default()).await;
    assert_eq!(
        hinted.cluster,
        Some((CidrSource::NodePodCidrs, nets(&["10.244.0.0/22"])))
    );
    assert_eq!(hinted.cluster_cidrs().unwrap().strength, Strength::Weak);
    assert!(matches!(
        outcome(&hinted, CidrSource::KubeadmConfig),
        SourceAnswer::Absent { .. }
    ));
}
