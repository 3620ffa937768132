//! The shipped alerts and dashboard (`admission-webhook/deploy/`): the PrometheusRule's groups pass
//! `promtool check rules` and the unit tests of `ippool-alerts.test.yaml` (`promtool test rules`,
//! Debian's prometheus package, which `.ci/install-system` installs), and every metric they read is
//! one calico-kube-controllers or the webhook exports.

use std::path::{Path, PathBuf};
use std::process::Command;

use admission_webhook::metrics::{Metrics, PoolRoom};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// calico-kube-controllers' IPAM metrics (kube-controllers/pkg/controllers/node/ipam.go, v3.31.0).
const CALICO_METRICS: &[&str] = &[
    "ipam_ippool_size",
    "ipam_allocations_in_use",
    "ipam_allocations_borrowed",
    "ipam_blocks",
    "ipam_allocations_gc_candidates",
    "ipam_allocations_gc_reclamations",
];

fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("promtool is missing: install Debian's prometheus package (.ci/install-system does)")
    })
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

fn rule(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(DEPLOY).join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn the_alerts_pass_promtools_checks_and_unit_tests() {
    let rule = rule("ippool-alerts.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    // JSON is YAML: the PrometheusRule's groups as the plain rule file promtool reads.
    std::fs::write(
        dir.path().join("ippool-alerts.rules.yaml"),
        serde_json::to_string_pretty(&rule["spec"]).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        Path::new(DEPLOY).join("ippool-alerts.test.yaml"),
        dir.path().join("ippool-alerts.test.yaml"),
    )
    .unwrap();
    let checked = run(dir.path(), &["check", "rules", "ippool-alerts.rules.yaml"]);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    run(dir.path(), &["test", "rules", "ippool-alerts.test.yaml"]);
}

#[test]
fn alerts_and_dashboard_read_only_metrics_that_exist() {
    // A family shows in the exposition once it has a member: one pool.
    let metrics = Metrics::new();
    let room = PoolRoom {
        pool: "p".to_owned(),
        blocks_claimable: 1,
        addresses_stranded: 1,
        nodes_at_block_limit: 0,
    };
    metrics.set_room(&[room], 0, 0);
    let ours = metrics.encode();
    let exists =
        |name: &str| CALICO_METRICS.contains(&name) || ours.contains(&format!("# TYPE {name} "));
    let mut exprs: Vec<String> = rule("ippool-alerts.yaml")["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(DEPLOY).join("ippool-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for expr in &exprs {
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ipam_") || w.starts_with("ippool_webhook_"));
        let mut any = false;
        for name in names {
            any = true;
            assert!(exists(name), "{name} (in {expr:?}) is exported by neither");
        }
        assert!(any, "{expr:?} reads no metric");
    }
}
