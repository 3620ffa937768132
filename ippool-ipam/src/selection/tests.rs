//! Pool selection on pools built in code: one case per rule of Calico's order.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn pool(name: &str, spec: serde_json::Value) -> IpPool {
    serde_json::from_value(json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn node(pairs: &[(&str, &str)]) -> NodeRecord {
    NodeRecord {
        name: "sim-0".to_owned(),
        labels: labels(pairs),
        tunnel_addresses: Vec::new(),
        pod_cidrs: Vec::new(),
        max_pods: None,
    }
}

fn namespace(pairs: &[(&str, &str)], ipv4_pools: Option<&str>) -> NamespaceRecord {
    NamespaceRecord {
        name: "shop".to_owned(),
        labels: labels(pairs),
        ipv4_pools: ipv4_pools.map(str::to_owned),
        ipv6_pools: None,
    }
}

fn pools() -> Vec<IpPool> {
    vec![
        pool("default", json!({"cidr": "10.0.0.0/16"})),
        pool(
            "rack-a",
            json!({"cidr": "10.1.0.0/16", "nodeSelector": "rack == 'a'"}),
        ),
        pool(
            "team-x",
            json!({"cidr": "10.2.0.0/16", "namespaceSelector": "team == 'x'"}),
        ),
        pool(
            "manual",
            json!({"cidr": "10.3.0.0/16", "assignmentMode": "Manual"}),
        ),
        pool("off", json!({"cidr": "10.4.0.0/16", "disabled": true})),
        pool(
            "tunnels",
            json!({"cidr": "10.5.0.0/16", "allowedUses": ["Tunnel"]}),
        ),
        pool("v6", json!({"cidr": "fd00::/48"})),
    ]
}

struct Case {
    name: &'static str,
    node: &'static [(&'static str, &'static str)],
    namespace: &'static [(&'static str, &'static str)],
    namespace_pools: Option<&'static str>,
    pod_pools: Option<&'static str>,
    source: Source,
    eligible: &'static [&'static str],
    failure: Option<&'static str>,
}

const BASE: Case = Case {
    name: "",
    node: &[],
    namespace: &[],
    namespace_pools: None,
    pod_pools: None,
    source: Source::Selectors,
    eligible: &[],
    failure: None,
};

#[test]
fn calicos_order_decides_the_pools() {
    let cases = [
        Case {
            name: "no annotation, no labels: the pools that select everything",
            eligible: &["default"],
            ..BASE
        },
        Case {
            name: "a node in rack a",
            node: &[("rack", "a")],
            eligible: &["default", "rack-a"],
            ..BASE
        },
        Case {
            name: "a namespace of team x",
            namespace: &[("team", "x")],
            eligible: &["default", "team-x"],
            ..BASE
        },
        Case {
            name: "the namespace names a Manual pool, ignoring selectors",
            namespace_pools: Some(r#"["manual"]"#),
            source: Source::NamespaceAnnotation,
            eligible: &["manual"],
            ..BASE
        },
        Case {
            name: "the pod's annotation wins over the namespace's, by CIDR",
            namespace_pools: Some(r#"["manual"]"#),
            pod_pools: Some(r#"["10.1.0.0/16"]"#),
            source: Source::PodAnnotation,
            eligible: &["rack-a"],
            ..BASE
        },
        Case {
            name: "an empty pod annotation leaves the namespace's in force",
            namespace_pools: Some(r#"["manual"]"#),
            pod_pools: Some(""),
            source: Source::NamespaceAnnotation,
            eligible: &["manual"],
            ..BASE
        },
        Case {
            name: "a disabled pool named",
            pod_pools: Some(r#"["off"]"#),
            source: Source::PodAnnotation,
            failure: Some("the given pool (10.4.0.0/16) does not exist, or is not enabled"),
            ..BASE
        },
        Case {
            name: "an unknown name",
            pod_pools: Some(r#"["nope"]"#),
            source: Source::PodAnnotation,
            failure: Some(r#"error parsing pool "nope": invalid CIDR address: nope"#),
            ..BASE
        },
        Case {
            name: "a pool of the other family named",
            pod_pools: Some(r#"["v6"]"#),
            source: Source::PodAnnotation,
            failure: Some(r#""fd00::" isn't a IPv4 address"#),
            ..BASE
        },
        Case {
            name: "a pool for tunnels only named",
            pod_pools: Some(r#"["tunnels"]"#),
            source: Source::PodAnnotation,
            failure: Some(
                "cannot find a qualified ippool, no pools match the required use (Workload)",
            ),
            ..BASE
        },
        Case {
            name: "not JSON",
            pod_pools: Some("default"),
            source: Source::PodAnnotation,
            failure: Some("is not a JSON list of strings"),
            ..BASE
        },
    ];
    let pools = pools();
    for case in cases {
        let node = node(case.node);
        let namespace = namespace(case.namespace, case.namespace_pools);
        let request = Request {
            family: Family::V4,
            node: &node,
            namespace: &namespace,
            pod_pools: case.pod_pools,
        };
        let got = explain(&pools, &request);
        assert_eq!(got.source, case.source, "{}", case.name);
        assert_eq!(got.eligible, case.eligible, "{}", case.name);
        match (case.failure, &got.failure) {
            (None, None) => {}
            (Some(expected), Some(failure)) => {
                assert!(failure.contains(expected), "{}: {failure}", case.name)
            }
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", case.name),
        }
    }
}

#[test]
fn every_other_pool_says_why_it_is_out() {
    let pools = pools();
    let (node, namespace) = (node(&[]), namespace(&[], None));
    let got = explain(
        &pools,
        &Request {
            family: Family::V4,
            node: &node,
            namespace: &namespace,
            pod_pools: None,
        },
    );
    let why: BTreeMap<&str, String> = got
        .excluded
        .iter()
        .map(|e| (e.pool.as_str(), e.why.to_string()))
        .collect();
    assert_eq!(why["off"], "disabled");
    assert_eq!(why["v6"], "of the other address family");
    assert!(why["manual"].starts_with("assignmentMode Manual"));
    assert!(why["rack-a"].contains("nodeSelector \"rack == 'a'\""));
    assert!(why["team-x"].contains("namespaceSelector"));
    assert_eq!(
        why["tunnels"],
        "its allowedUses (Tunnel) do not include Workload"
    );
    assert_eq!(why.len(), 6, "{why:?}");
}

#[test]
fn no_pool_for_the_node_is_calicos_error() {
    let pools = vec![pool(
        "rack-a",
        json!({"cidr": "10.1.0.0/16", "nodeSelector": "rack == 'a'"}),
    )];
    let (node, namespace) = (node(&[("rack", "b")]), namespace(&[], None));
    let got = explain(
        &pools,
        &Request {
            family: Family::V4,
            node: &node,
            namespace: &namespace,
            pod_pools: None,
        },
    );
    assert_eq!(
        got.failure.as_deref(),
        Some("no configured Calico pools for node sim-0")
    );
    let v6 = explain(
        &pools,
        &Request {
            family: Family::V6,
            node: &node,
            namespace: &namespace,
            pod_pools: None,
        },
    );
    assert_eq!(
        v6.failure.as_deref(),
        Some("cannot find a qualified ippool")
    );
}
