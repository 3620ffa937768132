//! Every rule code has at least one input where it fires and one similar input where it does not.

use std::collections::BTreeMap;

use ippool_rules::context::{ClusterCidrs, ClusterContext, NodeInfo, Operation, Strength};
use ippool_rules::model::{IpPool, IpamBlock};
use ippool_rules::rules::catalog;
use ippool_rules::{Source, load_context_objects, parse_pools, validate};

struct Case {
    code: &'static str,
    fires: bool,
    what: &'static str,
    text: String,
    ctx: ClusterContext,
    op: Operation,
}

fn pool(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

fn v1_pool(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

const BASE: &str = "  cidr: 10.244.0.0/16\n";

fn pools(text: &str) -> Vec<IpPool> {
    parse_pools(Source {
        name: "ctx.yaml",
        text,
    })
    .expect("context pools parse")
}

fn the_pool(text: &str) -> IpPool {
    pools(text).remove(0)
}

fn block(cidr: &str, allocated: usize, size: usize, tunnel: bool) -> String {
    let allocations: Vec<String> = (0..size)
        .map(|i| {
            if i < allocated {
                "0".into()
            } else {
                "null".into()
            }
        })
        .collect();
    let kind = if tunnel { "vxlanTunnelAddress" } else { "" };
    format!(
        "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata:\n  name: {}\nspec:\n  cidr: {cidr}\n  affinity: host:node-1\n  allocations: [{}]\n  unallocated: []\n  attributes:\n  - handle_id: h\n    secondary: {{node: node-1, type: '{kind}'}}\n",
        cidr.replace(['.', '/', ':'], "-"),
        allocations.join(", ")
    )
}

fn blocks(texts: &[String]) -> Vec<IpamBlock> {
    let text = texts.join("---\n");
    load_context_objects(&[Source {
        name: "blocks.yaml",
        text: &text,
    }])
    .expect("blocks parse")
    .1
}

/// A context where every context-dependent rule has what it needs and finds nothing wrong.
fn full_ctx() -> ClusterContext {
    ClusterContext {
        pools: Some(Vec::new()),
        blocks: Some(Vec::new()),
        cluster_cidrs: Some(ClusterCidrs {
            cidrs: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/48".parse().unwrap()],
            source: "test".into(),
            strength: Strength::Strong,
        }),
        service_cidrs: Some(vec!["192.168.0.0/16".parse().unwrap()]),
        nodes: None,
        workloads_present: Some(true),
    }
}

fn with_pools(existing: &str) -> ClusterContext {
    ClusterContext {
        pools: Some(pools(existing)),
        ..full_ctx()
    }
}

fn case(code: &'static str, fires: bool, what: &'static str, text: impl Into<String>) -> Case {
    Case {
        code,
        fires,
        what,
        text: text.into(),
        ctx: full_ctx(),
        op: Operation::Create,
    }
}

impl Case {
    fn ctx(mut self, ctx: ClusterContext) -> Case {
        self.ctx = ctx;
        self
    }
    fn op(mut self, op: Operation) -> Case {
        self.op = op;
        self
    }
}

fn update_from(old: &str) -> Operation {
    Operation::Update { old: the_pool(old) }
}

fn cases() -> Vec<Case> {
    let lb = "  cidr: 10.244.0.0/16\n  allowedUses: [LoadBalancer]\n";
    let vxlan_pool = |name: &str, selector: &str, disabled: bool| {
        pool(
            name,
            &format!(
                "  cidr: {}\n  vxlanMode: Always\n  nodeSelector: \"{selector}\"\n  disabled: {disabled}\n",
                if name == "a" {
                    "10.1.0.0/16"
                } else {
                    "10.2.0.0/16"
                }
            ),
        )
    };
    let mut billion = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        billion.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    vec![
        case("IPP001", true, "unclosed flow sequence", "a: [1, 2\n"),
        case("IPP001", false, "valid YAML", pool("p", BASE)),
        case("IPP002", true, "billion laughs", billion),
        case("IPP002", false, "plain pool", pool("p", BASE)),
        case(
            "IPP003",
            true,
            "unknown IPPool apiVersion",
            pool("p", BASE).replace("projectcalico.org/v3", "projectcalico.org/v1"),
        ),
        case(
            "IPP003",
            true,
            "kind missing",
            "apiVersion: projectcalico.org/v3\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16}\n",
        ),
        case("IPP003", false, "v1 CRD group", v1_pool("p", BASE)),
        case(
            "IPP004",
            true,
            "another kind",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        ),
        case("IPP004", false, "an IPPool", pool("p", BASE)),
        case("IPP005", true, "no context", pool("p", BASE)).ctx(ClusterContext::default()),
        case("IPP005", false, "full context", pool("p", BASE)),
        case("IPP006", true, "only a comment", "# nothing here\n"),
        case("IPP006", false, "a document", pool("p", BASE)),
        case(
            "IPP007",
            true,
            "cidr twice",
            pool("p", "  cidr: 10.244.0.0/16\n  cidr: 10.245.0.0/16\n"),
        ),
        case("IPP007", false, "cidr once", pool("p", BASE)),
        case(
            "IPP010",
            true,
            "quoted blockSize",
            pool("p", "  cidr: 10.244.0.0/16\n  blockSize: '26'\n"),
        ),
        case(
            "IPP010",
            true,
            "label value not a string",
            pool("p", BASE).replace("  name: p\n", "  name: p\n  labels: {n: 1}\n"),
        ),
        case(
            "IPP010",
            false,
            "integer blockSize",
            pool("p", "  cidr: 10.244.0.0/16\n  blockSize: 26\n"),
        ),
        case(
            "IPP011",
            true,
            "unknown field",
            pool("p", "  cidr: 10.244.0.0/16\n  colour: blue\n"),
        ),
        case(
            "IPP011",
            true,
            "null field",
            pool("p", "  cidr: 10.244.0.0/16\n  nodeSelector: ~\n"),
        ),
        case(
            "IPP011",
            false,
            "known fields",
            pool("p", "  cidr: 10.244.0.0/16\n  nodeSelector: all()\n"),
        ),
        case("IPP012", true, "no cidr", pool("p", "  blockSize: 26\n")),
        case(
            "IPP012",
            true,
            "no spec",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\n",
        ),
        case("IPP012", false, "cidr given", pool("p", BASE)),
        case(
            "IPP013",
            true,
            "bad assignmentMode",
            pool("p", "  cidr: 10.244.0.0/16\n  assignmentMode: Sometimes\n"),
        ),
        case(
            "IPP013",
            false,
            "Manual",
            pool("p", "  cidr: 10.244.0.0/16\n  assignmentMode: Manual\n"),
        ),
        case(
            "IPP014",
            true,
            "no name",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {}\nspec: {cidr: 10.244.0.0/16}\n",
        ),
        case(
            "IPP014",
            false,
            "generateName",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {generateName: p-}\nspec: {cidr: 10.244.0.0/16}\n",
        ),
        case("IPP020", true, "not a CIDR", pool("p", "  cidr: banana\n")),
        case(
            "IPP020",
            true,
            "bare address",
            pool("p", "  cidr: 10.244.0.0\n"),
        ),
        case("IPP020", false, "a CIDR", pool("p", BASE)),
        case(
            "IPP021",
            true,
            "host bits",
            pool("p", "  cidr: 10.244.0.1/16\n"),
        ),
        case("IPP021", false, "masked", pool("p", BASE)),
        case(
            "IPP022",
            true,
            "blockSize 19",
            pool("p", "  cidr: 10.244.0.0/16\n  blockSize: 19\n"),
        ),
        case(
            "IPP022",
            true,
            "IPv6 blockSize 26",
            pool("p", "  cidr: fd00::/64\n  blockSize: 26\n"),
        ),
        case(
            "IPP022",
            false,
            "blockSize 20",
            pool("p", "  cidr: 10.244.0.0/16\n  blockSize: 20\n"),
        ),
        case(
            "IPP023",
            true,
            "/27 pool, /26 blocks",
            pool("p", "  cidr: 10.244.0.0/27\n"),
        ),
        case(
            "IPP023",
            false,
            "/27 pool disabled",
            pool("p", "  cidr: 10.244.0.0/27\n  disabled: true\n"),
        ),
        case(
            "IPP024",
            true,
            "IPIP and VXLAN",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  ipipMode: Always\n  vxlanMode: CrossSubnet\n",
            ),
        ),
        case(
            "IPP024",
            false,
            "VXLAN only",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  ipipMode: Never\n  vxlanMode: CrossSubnet\n",
            ),
        ),
        case(
            "IPP025",
            true,
            "IPIP on IPv6",
            pool("p", "  cidr: fd00::/64\n  ipipMode: CrossSubnet\n"),
        ),
        case(
            "IPP025",
            false,
            "VXLAN on IPv6",
            pool("p", "  cidr: fd00::/64\n  vxlanMode: Always\n"),
        ),
        case(
            "IPP026",
            true,
            "IPv4 link local",
            pool("p", "  cidr: 169.254.0.0/16\n"),
        ),
        case(
            "IPP026",
            true,
            "IPv6 link local",
            pool("p", "  cidr: fe80::/64\n"),
        ),
        case("IPP026", false, "private range", pool("p", BASE)),
        case(
            "IPP027",
            true,
            "lowercase mode",
            pool("p", "  cidr: 10.244.0.0/16\n  ipipMode: always\n"),
        ),
        case(
            "IPP027",
            false,
            "empty mode means Never",
            pool("p", "  cidr: 10.244.0.0/16\n  ipipMode: ''\n"),
        ),
        case(
            "IPP028",
            true,
            "unknown use",
            pool("p", "  cidr: 10.244.0.0/16\n  allowedUses: [Pods]\n"),
        ),
        case(
            "IPP028",
            false,
            "known uses",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  allowedUses: [Workload, Tunnel]\n",
            ),
        ),
        case(
            "IPP029",
            true,
            "ipip block",
            v1_pool(
                "p",
                "  cidr: 10.244.0.0/16\n  ipip: {enabled: true, mode: always}\n",
            ),
        ),
        case(
            "IPP029",
            true,
            "nat-outgoing",
            v1_pool("p", "  cidr: 10.244.0.0/16\n  nat-outgoing: true\n"),
        ),
        case(
            "IPP029",
            false,
            "nat-outgoing false",
            v1_pool("p", "  cidr: 10.244.0.0/16\n  nat-outgoing: false\n"),
        ),
        case(
            "IPP030",
            true,
            "single =",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  nodeSelector: \"zone = 'a'\"\n",
            ),
        ),
        case(
            "IPP030",
            false,
            "==",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  nodeSelector: \"zone == 'a'\"\n",
            ),
        ),
        case(
            "IPP031",
            true,
            "global()",
            pool("p", "  cidr: 10.244.0.0/16\n  nodeSelector: global()\n"),
        ),
        case(
            "IPP031",
            true,
            "global( in a quoted value, as Calico's textual check",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  nodeSelector: \"zone == 'global()'\"\n",
            ),
        ),
        case(
            "IPP031",
            false,
            "all()",
            pool("p", "  cidr: 10.244.0.0/16\n  nodeSelector: all()\n"),
        ),
        case(
            "IPP032",
            true,
            "LoadBalancer with VXLAN",
            pool("p", &format!("{lb}  vxlanMode: Always\n")),
        ),
        case("IPP032", false, "LoadBalancer", pool("p", lb)),
        case(
            "IPP032",
            false,
            "LoadBalancer with a misspelt mode (IPP027's)",
            pool("p", &format!("{lb}  vxlanMode: always\n")),
        ),
        case(
            "IPP033",
            true,
            "LoadBalancer and Workload",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  allowedUses: [LoadBalancer, Workload]\n",
            ),
        ),
        case(
            "IPP033",
            false,
            "Workload and Tunnel",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  allowedUses: [Workload, Tunnel]\n",
            ),
        ),
        case(
            "IPP034",
            true,
            "LoadBalancer on some nodes",
            pool("p", &format!("{lb}  nodeSelector: has(edge)\n")),
        ),
        case(
            "IPP034",
            false,
            "LoadBalancer on all()",
            pool("p", &format!("{lb}  nodeSelector: all()\n")),
        ),
        case(
            "IPP035",
            true,
            "LoadBalancer not exported",
            pool("p", &format!("{lb}  disableBGPExport: true\n")),
        ),
        case(
            "IPP035",
            false,
            "LoadBalancer exported",
            pool("p", &format!("{lb}  disableBGPExport: false\n")),
        ),
        case(
            "IPP036",
            true,
            "Tunnel with namespaceSelector",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  allowedUses: [Tunnel]\n  namespaceSelector: has(team)\n",
            ),
        ),
        case(
            "IPP036",
            false,
            "Workload with namespaceSelector",
            pool(
                "p",
                "  cidr: 10.244.0.0/16\n  allowedUses: [Workload]\n  namespaceSelector: has(team)\n",
            ),
        ),
        case("IPP040", true, "uppercase name", pool("Bad_Name", BASE)),
        case("IPP040", false, "DNS subdomain", pool("pool.v4-a", BASE)),
        case(
            "IPP041",
            true,
            "label key with space",
            pool("p", BASE).replace("  name: p\n", "  name: p\n  labels: {'bad key': x}\n"),
        ),
        case(
            "IPP041",
            false,
            "prefixed key",
            pool("p", BASE).replace(
                "  name: p\n",
                "  name: p\n  labels: {example.com/team: x}\n",
            ),
        ),
        case(
            "IPP042",
            true,
            "label value starting with -",
            pool("p", BASE).replace("  name: p\n", "  name: p\n  labels: {team: '-x'}\n"),
        ),
        case(
            "IPP042",
            false,
            "empty label value",
            pool("p", BASE).replace("  name: p\n", "  name: p\n  labels: {team: ''}\n"),
        ),
        case(
            "IPP043",
            true,
            "annotation key with two /",
            pool("p", BASE).replace("  name: p\n", "  name: p\n  annotations: {a/b/c: x}\n"),
        ),
        case(
            "IPP043",
            false,
            "annotation key",
            pool("p", BASE).replace(
                "  name: p\n",
                "  name: p\n  annotations: {example.com/note: x}\n",
            ),
        ),
        case(
            "IPP044",
            true,
            "300 KiB annotation",
            pool("p", BASE).replace(
                "  name: p\n",
                &format!(
                    "  name: p\n  annotations: {{note: {}}}\n",
                    "x".repeat(300 * 1024)
                ),
            ),
        ),
        case(
            "IPP044",
            false,
            "small annotation",
            pool("p", BASE).replace("  name: p\n", "  name: p\n  annotations: {note: x}\n"),
        ),
        case(
            "IPP050",
            true,
            "outside strong pod CIDR",
            pool("p", "  cidr: 172.16.0.0/16\n"),
        ),
        case("IPP050", false, "inside pod CIDR", pool("p", BASE)),
        case(
            "IPP050",
            false,
            "LoadBalancer pools need not be inside",
            pool(
                "p",
                "  cidr: 172.16.0.0/16\n  allowedUses: [LoadBalancer]\n",
            ),
        ),
        case(
            "IPP051",
            true,
            "outside weak pod CIDR",
            pool("p", "  cidr: 172.16.0.0/16\n"),
        )
        .ctx(ClusterContext {
            cluster_cidrs: Some(ClusterCidrs {
                cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                source: "node podCIDRs".into(),
                strength: Strength::Weak,
            }),
            ..full_ctx()
        }),
        case("IPP051", false, "inside weak pod CIDR", pool("p", BASE)).ctx(ClusterContext {
            cluster_cidrs: Some(ClusterCidrs {
                cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                source: "node podCIDRs".into(),
                strength: Strength::Weak,
            }),
            ..full_ctx()
        }),
        case(
            "IPP052",
            true,
            "overlaps services",
            pool("p", "  cidr: 10.96.0.0/16\n"),
        )
        .ctx(ClusterContext {
            service_cidrs: Some(vec!["10.96.0.0/12".parse().unwrap()]),
            ..full_ctx()
        }),
        case("IPP052", false, "clear of services", pool("p", BASE)),
        case(
            "IPP053",
            true,
            "loopback",
            pool("p", "  cidr: 127.0.0.0/16\n"),
        ),
        case(
            "IPP053",
            true,
            "multicast",
            pool("p", "  cidr: 224.1.0.0/16\n"),
        ),
        case(
            "IPP053",
            true,
            "IPv6 everything",
            pool("p", "  cidr: ::/0\n"),
        ),
        case("IPP053", false, "private range", pool("p", BASE)),
        case(
            "IPP054",
            true,
            "disabling the only VXLAN pool",
            vxlan_pool("a", "all()", true),
        )
        .ctx(with_pools(&vxlan_pool("a", "all()", false)))
        .op(update_from(&vxlan_pool("a", "all()", false))),
        case(
            "IPP054",
            true,
            "deleting the only VXLAN pool for some nodes",
            vxlan_pool("a", "zone == 'x'", false),
        )
        .ctx(ClusterContext {
            nodes: Some(vec![NodeInfo {
                name: "node-1".into(),
                labels: BTreeMap::from([("zone".to_owned(), "x".to_owned())]),
            }]),
            ..with_pools(&vxlan_pool("a", "zone == 'x'", false))
        })
        .op(Operation::Delete),
        case(
            "IPP054",
            false,
            "another VXLAN pool covers all nodes",
            vxlan_pool("a", "all()", true),
        )
        .ctx(with_pools(&format!(
            "{}---\n{}",
            vxlan_pool("a", "all()", false),
            vxlan_pool("b", "all()", false)
        )))
        .op(update_from(&vxlan_pool("a", "all()", false))),
        case(
            "IPP055",
            true,
            "operator-managed",
            pool("p", BASE).replace(
                "  name: p\n",
                "  name: p\n  labels: {app.kubernetes.io/managed-by: tigera-operator}\n",
            ),
        ),
        case(
            "IPP055",
            false,
            "helm-managed",
            pool("p", BASE).replace(
                "  name: p\n",
                "  name: p\n  labels: {app.kubernetes.io/managed-by: Helm}\n",
            ),
        ),
        case(
            "IPP060",
            true,
            "cidr changed",
            pool("p", "  cidr: 10.245.0.0/16\n"),
        )
        .op(update_from(&pool("p", BASE))),
        case(
            "IPP060",
            false,
            "IPv6 cidr rewritten canonically",
            pool("p", "  cidr: fd00::/64\n"),
        )
        .op(update_from(&pool("p", "  cidr: fd00:0:0::/64\n"))),
        case(
            "IPP061",
            true,
            "blockSize changed",
            pool("p", "  cidr: 10.244.0.0/16\n  blockSize: 27\n"),
        )
        .op(update_from(&pool("p", BASE))),
        case(
            "IPP061",
            false,
            "unset blockSize equals 26",
            pool("p", "  cidr: 10.244.0.0/16\n  blockSize: 26\n"),
        )
        .op(update_from(&pool("p", BASE))),
        case(
            "IPP062",
            true,
            "LoadBalancer to Workload",
            pool("p", "  cidr: 10.244.0.0/16\n  allowedUses: [Workload]\n"),
        )
        .op(update_from(&pool("p", lb))),
        case("IPP062", false, "LoadBalancer stays", pool("p", lb)).op(update_from(&pool("p", lb))),
        case("IPP063", true, "different pool", pool("q", BASE)).op(update_from(&pool("p", BASE))),
        case("IPP063", false, "same pool", pool("p", BASE)).op(update_from(&pool("p", BASE))),
        case("IPP070", true, "delete enabled", pool("p", BASE)).op(Operation::Delete),
        case(
            "IPP070",
            false,
            "delete disabled",
            pool("p", "  cidr: 10.244.0.0/16\n  disabled: true\n"),
        )
        .op(Operation::Delete),
        case(
            "IPP071",
            true,
            "blocks in use",
            pool("p", "  cidr: 10.244.0.0/16\n  disabled: true\n"),
        )
        .ctx(ClusterContext {
            blocks: Some(blocks(&[
                block("10.244.0.0/30", 2, 4, false),
                block("10.244.0.4/30", 1, 4, true),
            ])),
            ..full_ctx()
        })
        .op(Operation::Delete),
        case(
            "IPP071",
            false,
            "blocks empty",
            pool("p", "  cidr: 10.244.0.0/16\n  disabled: true\n"),
        )
        .ctx(ClusterContext {
            blocks: Some(blocks(&[
                block("10.244.0.0/30", 0, 4, false),
                block("10.245.0.0/30", 3, 4, false),
            ])),
            ..full_ctx()
        })
        .op(Operation::Delete),
        case(
            "IPP072",
            true,
            "disabling the last IPv4 pool",
            pool("p", "  cidr: 10.244.0.0/16\n  disabled: true\n"),
        )
        .ctx(with_pools(&pool("p", BASE)))
        .op(update_from(&pool("p", BASE))),
        case(
            "IPP072",
            false,
            "no workloads",
            pool("p", "  cidr: 10.244.0.0/16\n  disabled: true\n"),
        )
        .ctx(ClusterContext {
            workloads_present: Some(false),
            ..with_pools(&pool("p", BASE))
        })
        .op(update_from(&pool("p", BASE))),
        case(
            "IPP080",
            true,
            "overlaps a disabled pool",
            pool("new", "  cidr: 10.244.128.0/17\n"),
        )
        .ctx(with_pools(&pool(
            "old",
            "  cidr: 10.244.0.0/16\n  disabled: true\n",
        ))),
        case(
            "IPP080",
            false,
            "disjoint",
            pool("new", "  cidr: 10.245.0.0/16\n"),
        )
        .ctx(with_pools(&pool("old", BASE))),
        case("IPP081", true, "/24 blocks inside", pool("p", BASE)).ctx(ClusterContext {
            blocks: Some(blocks(&[block("10.244.1.0/24", 0, 1, false)])),
            ..full_ctx()
        }),
        case("IPP081", false, "/26 blocks inside", pool("p", BASE)).ctx(ClusterContext {
            blocks: Some(blocks(&[block("10.244.1.0/26", 0, 1, false)])),
            ..full_ctx()
        }),
        case(
            "IPP082",
            true,
            "name exists",
            pool("old", "  cidr: 10.245.0.0/16\n"),
        )
        .ctx(with_pools(&pool("old", BASE))),
        case(
            "IPP082",
            false,
            "new name",
            pool("new", "  cidr: 10.245.0.0/16\n"),
        )
        .ctx(with_pools(&pool("old", BASE))),
        case(
            "IPP083",
            true,
            "two overlapping new pools",
            format!(
                "{}---\n{}",
                pool("a", BASE),
                pool("b", "  cidr: 10.244.0.0/24\n")
            ),
        ),
        case(
            "IPP083",
            false,
            "two disjoint new pools",
            format!(
                "{}---\n{}",
                pool("a", BASE),
                pool("b", "  cidr: 10.245.0.0/16\n")
            ),
        ),
        case(
            "IPP084",
            true,
            "same name twice",
            format!(
                "{}---\n{}",
                pool("a", BASE),
                pool("a", "  cidr: 10.245.0.0/16\n")
            ),
        ),
        case(
            "IPP084",
            false,
            "different names",
            format!(
                "{}---\n{}",
                pool("a", BASE),
                pool("b", "  cidr: 10.245.0.0/16\n")
            ),
        ),
    ]
}

#[test]
fn every_rule_fires_and_stays_quiet_where_it_should() {
    let mut failures = Vec::new();
    for c in cases() {
        let report = validate(
            &[Source {
                name: "case.yaml",
                text: &c.text,
            }],
            &c.ctx,
            &c.op,
        );
        let found = report
            .documents
            .iter()
            .flat_map(|d| &d.diagnostics)
            .any(|d| d.code == c.code);
        if found != c.fires {
            failures.push(format!(
                "{} ({}): expected {}, report: {}",
                c.code,
                c.what,
                if c.fires { "to fire" } else { "silence" },
                report.render_text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_catalogued_code_has_both_cases() {
    let cases = cases();
    for rule in catalog() {
        for fires in [true, false] {
            assert!(
                cases
                    .iter()
                    .any(|c| c.code == rule.code && c.fires == fires),
                "{} lacks a case where it {}",
                rule.code,
                if fires { "fires" } else { "stays quiet" }
            );
        }
    }
}

#[test]
fn clean_pool_with_full_context_has_no_diagnostics() {
    let text = pool(
        "default-ipv4",
        "  cidr: 10.244.0.0/16\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: CrossSubnet\n  natOutgoing: true\n  nodeSelector: all()\n",
    );
    let report = validate(
        &[Source {
            name: "p.yaml",
            text: &text,
        }],
        &full_ctx(),
        &Operation::Create,
    );
    assert_eq!(
        report.errors + report.warnings,
        0,
        "{}",
        report.render_text()
    );
    assert!(
        report.documents[0].diagnostics.is_empty(),
        "{}",
        report.render_text()
    );
}

#[test]
fn list_items_are_addressed_by_path() {
    let text = "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n  metadata: {name: a}\n  spec: {cidr: 10.244.0.0/16}\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n  metadata: {name: b}\n  spec: {cidr: 10.245.0.0/16, blockSize: 40}\n";
    let report = validate(
        &[Source {
            name: "l.yaml",
            text,
        }],
        &full_ctx(),
        &Operation::Create,
    );
    let d = report
        .documents
        .iter()
        .flat_map(|d| &d.diagnostics)
        .find(|d| d.code == "IPP022")
        .expect("IPP022");
    assert_eq!(d.path, "items[1].spec.blockSize");
    assert_eq!((d.line, d.column, d.end_column), (11, 42, 44));
    assert_eq!(report.documents.len(), 2);
    assert!(report.documents.iter().all(|d| d.index == 0));
}

#[test]
fn update_of_same_pool_rewritten_is_clean() {
    let old = pool("p", "  cidr: 10.244.0.0/16\n");
    let new = v1_pool(
        "p",
        "  cidr: 10.244.0.0/16\n  blockSize: 26\n  ipipMode: Never\n  nodeSelector: all()\n",
    );
    let report = validate(
        &[Source {
            name: "p.yaml",
            text: &new,
        }],
        &with_pools(&old),
        &update_from(&old),
    );
    assert_eq!(report.errors, 0, "{}", report.render_text());
}
