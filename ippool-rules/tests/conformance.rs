//! Conformance with Calico's own IPPool tests. Every case in tests/conformance/cases.yaml (inputs
//! and verdicts transcribed from Calico with citations; format in README.md there) names the rule
//! codes that must be our errors for it — exactly those, so a case refused for another reason
//! fails — or none when Calico accepts it. Where we deliberately differ, the one reviewed list
//! tests/conformance/deviations.yaml gives our codes instead, with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ippool_rules::cidr;
use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::model::{IpPool, IpamBlock, IpamBlockSpec, ObjectMeta};
use ippool_rules::report::{Report, Severity};
use ippool_rules::rules::catalog;
use ippool_rules::source::parse;
use ippool_rules::{Source, validate};
use serde::Deserialize;
use serde_json::{Value, json};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance");

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Valid,
    Invalid,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CaseOperation {
    Create,
    Update,
    Delete,
}

/// One case of cases.yaml. Unknown keys are refused, so nothing (such as the former per-case
/// `deviation:` key) can change a verdict outside deviations.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    source: String,
    description: String,
    operation: CaseOperation,
    old: Option<Value>,
    existing: Option<Vec<Value>>,
    #[serde(rename = "ipamBlocks")]
    ipam_blocks: Option<Vec<Value>>,
    pool: Value,
    calico: Verdict,
    calico_reason: Option<String>,
    /// Our error codes that stand for Calico's reason(s); empty exactly when Calico accepts.
    #[serde(default)]
    codes: BTreeSet<String>,
}

/// One entry of deviations.yaml: a case where our errors are deliberately not Calico's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Deviation {
    case: String,
    /// Our error codes for the case (empty: we accept what Calico refuses).
    codes: BTreeSet<String>,
    reason: String,
}

/// A YAML list from the conformance directory, read with the crate's own parser. A missing or
/// unreadable file fails the test: conformance is never skipped.
fn read_list<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    let path = Path::new(DIR).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; conformance cannot be checked", path.display()));
    let parsed = parse(file, &text);
    assert!(parsed.problems.is_empty(), "{file}: {:?}", parsed.problems);
    let root = parsed.documents[0]
        .root
        .as_ref()
        .unwrap_or_else(|| panic!("{file} is empty"));
    serde_json::from_value(root.to_json()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn cases() -> Vec<Case> {
    read_list("cases.yaml")
}

fn deviations() -> BTreeMap<String, Deviation> {
    let mut by_case = BTreeMap::new();
    for deviation in read_list::<Deviation>("deviations.yaml") {
        let case = deviation.case.clone();
        assert!(
            by_case.insert(case.clone(), deviation).is_none(),
            "deviations.yaml lists {case} twice"
        );
    }
    by_case
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

/// Our report for a case, as the README there says to build it.
fn run(case: &Case) -> Report {
    let ctx = ClusterContext {
        pools: case
            .existing
            .as_ref()
            .map(|pools| pools.iter().map(typed_pool).collect()),
        blocks: case
            .ipam_blocks
            .as_ref()
            .map(|blocks| blocks.iter().map(block).collect()),
        ..Default::default()
    };
    let op = match case.operation {
        CaseOperation::Create => Operation::Create,
        CaseOperation::Delete => Operation::Delete,
        CaseOperation::Update => Operation::Update {
            old: typed_pool(case.old.as_ref().expect("an update case has `old`")),
        },
    };
    let text = serde_json::to_string(&pool_object(&case.pool)).unwrap();
    validate(
        &[Source {
            name: &case.id,
            text: &text,
        }],
        &ctx,
        &op,
    )
}

fn error_codes(report: &Report) -> BTreeSet<String> {
    report
        .documents
        .iter()
        .flat_map(|d| &d.diagnostics)
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.code.clone())
        .collect()
}

#[test]
fn our_errors_are_calicos_reasons() {
    let cases = cases();
    let deviations = deviations();
    let mut failures = Vec::new();
    for case in &cases {
        let deviation = deviations.get(&case.id);
        let expected = deviation.map_or(&case.codes, |d| &d.codes);
        let report = run(case);
        let ours = error_codes(&report);
        if &ours != expected {
            failures.push(format!(
                "{} ({}): {}\n  Calico: {:?}{}\n  expected our errors {expected:?}{}, got {ours:?}\n{}",
                case.id,
                case.source,
                case.description,
                case.calico,
                case.calico_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                if deviation.is_some() {
                    " (deviations.yaml)"
                } else {
                    ""
                },
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
fn every_case_states_its_codes() {
    let cases = cases();
    assert_eq!(
        cases.len(),
        163,
        "cases.yaml holds the 163 transcribed cases"
    );
    let errors: BTreeSet<&str> = catalog()
        .iter()
        .filter(|r| r.severity == Severity::Error)
        .map(|r| r.code)
        .collect();
    let mut ids = BTreeSet::new();
    for case in &cases {
        assert!(ids.insert(&case.id), "{} appears twice", case.id);
        match case.calico {
            Verdict::Invalid => assert!(
                !case.codes.is_empty(),
                "{}: Calico refuses it, so it names the codes that must fire",
                case.id
            ),
            Verdict::Valid => assert!(
                case.codes.is_empty(),
                "{}: Calico accepts it, so it names no codes",
                case.id
            ),
        }
        for code in &case.codes {
            assert!(
                errors.contains(code.as_str()),
                "{}: {code} is not an error code of the catalogue",
                case.id
            );
        }
    }
}

#[test]
fn every_deviation_names_a_case_and_differs_from_it() {
    let cases = cases();
    let errors: BTreeSet<&str> = catalog()
        .iter()
        .filter(|r| r.severity == Severity::Error)
        .map(|r| r.code)
        .collect();
    for (id, deviation) in deviations() {
        let case = cases
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("deviation {id} names no case"));
        assert_ne!(
            deviation.codes, case.codes,
            "deviation {id} gives the codes the case already states: remove it"
        );
        assert!(
            !deviation.reason.trim().is_empty(),
            "deviation {id} gives no reason"
        );
        for code in &deviation.codes {
            assert!(
                errors.contains(code.as_str()),
                "deviation {id}: {code} is not an error code of the catalogue"
            );
        }
    }
}
