//! Conformance with Calico's own IPPool tests: for every case in tests/conformance/cases.yaml
//! (inputs and verdicts transcribed from Calico with citations; format in README.md there) our
//! verdict equals Calico's, except for the documented deviations below.

use std::collections::BTreeMap;

use ippool_rules::cidr;
use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::model::{IpPool, IpamBlock, IpamBlockSpec, ObjectMeta};
use ippool_rules::source::parse;
use ippool_rules::{Source, validate};
use serde_json::{Value, json};

/// Cases where our verdict deliberately differs from Calico's: (id, our verdict is "invalid",
/// the rule code that makes the difference (when we are stricter), reason).
const DEVIATIONS: &[(&str, bool, Option<&str>, &str)] = &[
    (
        "clientv3-e2e-0006",
        true,
        Some("IPP070"),
        "deleting an enabled pool: we require disabling it first; Calico's Delete disables it itself",
    ),
    (
        "clientv3-e2e-0007",
        true,
        Some("IPP070"),
        "deleting an enabled pool: we require disabling it first",
    ),
    (
        "clientv3-e2e-0011",
        true,
        Some("IPP070"),
        "deleting an enabled pool: we require disabling it first",
    ),
    (
        "clientv3-e2e-0032",
        true,
        Some("IPP071"),
        "deleting a pool whose block still holds an allocation: we require moving the pods first",
    ),
    (
        "clientv3-e2e-0035",
        true,
        Some("IPP071"),
        "deleting a pool whose block still holds an allocation",
    ),
    (
        "clientv3-e2e-0040",
        true,
        Some("IPP071"),
        "deleting a pool whose block still holds an allocation",
    ),
    (
        "clientv3-e2e-0041",
        true,
        Some("IPP071"),
        "deleting a pool whose block still holds an allocation",
    ),
    (
        "clientv3-unit-0001",
        false,
        None,
        "Calico's cidrChangeOK helper refuses a non-canonical new text of the same network; we compare canonical networks (so does Calico's Update path, which canonicalises first)",
    ),
    (
        "clientv3-unit-0002",
        false,
        None,
        "same network in non-canonical form: unchanged for us",
    ),
    (
        "clientv3-unit-0004",
        false,
        None,
        "same network in non-canonical form: unchanged for us",
    ),
    (
        "clientv3-unit-0005",
        false,
        None,
        "same network in non-canonical form: unchanged for us",
    ),
    (
        "clientv3-unit-0010",
        false,
        None,
        "same network in non-canonical form: unchanged for us",
    ),
];

fn cases() -> Option<Vec<Value>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/cases.yaml");
    let text = std::fs::read_to_string(path).ok()?;
    let parsed = parse("cases.yaml", &text);
    assert!(
        parsed.problems.is_empty(),
        "cases.yaml: {:?}",
        parsed.problems
    );
    let root = parsed.documents[0]
        .root
        .as_ref()
        .expect("cases.yaml has a list");
    match root.to_json() {
        Value::Array(cases) => Some(cases),
        other => panic!("cases.yaml is not a list: {other}"),
    }
}

/// An IPPool object from a case's pool shape: spec fields at the top, optional `metadata`.
fn pool_object(shape: &Value) -> Value {
    let mut spec = shape.as_object().cloned().unwrap_or_default();
    let metadata = spec
        .remove("metadata")
        .unwrap_or_else(|| json!({"name": "conformance-pool"}));
    json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPPool",
        "metadata": metadata,
        "spec": spec,
    })
}

fn typed_pool(shape: &Value) -> IpPool {
    let object = pool_object(shape);
    let text = serde_json::to_string(&object).unwrap();
    ippool_rules::parse_pools(Source {
        name: "case",
        text: &text,
    })
    .expect("case pool parses")
    .remove(0)
}

fn block(entry: &Value) -> IpamBlock {
    let cidr_text = entry["cidr"].as_str().expect("block cidr");
    let net = cidr::parse_strict(cidr_text).expect("block cidr parses");
    let size = usize::try_from(cidr::address_count(&net)).expect("block size");
    let in_use = entry["inUse"].as_u64().unwrap_or(0) as usize;
    IpamBlock {
        api_version: "crd.projectcalico.org/v1".into(),
        kind: "IPAMBlock".into(),
        metadata: ObjectMeta::default(),
        spec: IpamBlockSpec {
            cidr: cidr_text.into(),
            allocations: (0..size).map(|i| (i < in_use).then_some(0)).collect(),
            attributes: vec![Default::default()],
            ..Default::default()
        },
    }
}

#[test]
fn our_verdicts_match_calico() {
    let Some(cases) = cases() else {
        println!("NOTICE: tests/conformance/cases.yaml not found; conformance not checked");
        return;
    };
    assert!(!cases.is_empty());
    let deviations: BTreeMap<&str, _> = DEVIATIONS.iter().map(|d| (d.0, d)).collect();
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().expect("case id");
        let ctx = ClusterContext {
            pools: case
                .get("existing")
                .map(|e| e.as_array().into_iter().flatten().map(typed_pool).collect()),
            blocks: case
                .get("ipamBlocks")
                .map(|b| b.as_array().into_iter().flatten().map(block).collect()),
            ..Default::default()
        };
        let op = match case["operation"].as_str() {
            Some("create") => Operation::Create,
            Some("delete") => Operation::Delete,
            Some("update") => Operation::Update {
                old: typed_pool(&case["old"]),
            },
            other => panic!("{id}: unknown operation {other:?}"),
        };
        let text = serde_json::to_string(&pool_object(&case["pool"])).unwrap();
        let report = validate(
            &[Source {
                name: id,
                text: &text,
            }],
            &ctx,
            &op,
        );
        let calico_invalid = case["calico"] == "invalid";
        let ours_invalid = report.errors > 0;
        let codes: Vec<&str> = report
            .documents
            .iter()
            .flat_map(|d| &d.diagnostics)
            .filter(|d| d.severity == ippool_rules::report::Severity::Error)
            .map(|d| d.code.as_str())
            .collect();
        let (expected, code) = match (deviations.get(id), case.get("deviation")) {
            (Some((_, invalid, code, _)), _) => (*invalid, *code),
            (None, Some(_)) => (!calico_invalid, None),
            (None, None) => (calico_invalid, None),
        };
        if ours_invalid != expected || code.is_some_and(|c| !codes.contains(&c)) {
            failures.push(format!(
                "{id} ({}): Calico says {}, expected ours {}{}, got errors {codes:?}\n  {}\n{}",
                case["source"].as_str().unwrap_or(""),
                case["calico"],
                if expected { "invalid" } else { "valid" },
                code.map(|c| format!(" with {c}")).unwrap_or_default(),
                case["description"].as_str().unwrap_or(""),
                report.render_text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_deviation_names_a_case() {
    let Some(cases) = cases() else {
        println!("NOTICE: tests/conformance/cases.yaml not found; conformance not checked");
        return;
    };
    for (id, ..) in DEVIATIONS {
        assert!(
            cases.iter().any(|c| c["id"] == *id),
            "deviation {id} names no case"
        );
    }
}
