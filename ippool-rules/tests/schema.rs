//! The embedded CRD schema is Calico's, and the project's structural checker agrees with the
//! `jsonschema` crate on it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ippool_rules::report::PathSegment;
use ippool_rules::schema::{ippool_crd_schema, json_schema};
use ippool_rules::source::{Node, parse};
use ippool_rules::structure::{IssueKind, check_schema};
use serde_json::Value;

/// The Go module that pins Calico (tests/upstream/calico-v3.31); its source holds Calico's CRDs.
const CALICO_MODULE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/upstream/calico-v3.31"
);
const CALICO_MODULE: &str = "github.com/projectcalico/calico";
const IPPOOL_CRD: &str = "libcalico-go/config/crd/crd.projectcalico.org_ippools.yaml";

/// The folder of the pinned Calico module in Go's module cache, or why it cannot be had.
fn calico_module_dir() -> Result<PathBuf, String> {
    let command = format!(
        "cd tests/upstream/calico-v3.31 && GOFLAGS=-mod=mod GOTOOLCHAIN=local go list -m -f '{{{{.Dir}}}}' {CALICO_MODULE}"
    );
    let output = Command::new("go")
        .args(["list", "-m", "-f", "{{.Dir}}", CALICO_MODULE])
        .current_dir(CALICO_MODULE_DIR)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|e| format!("`{command}` could not run: {e} (Go 1.26 must be on PATH)"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.trim();
    if !output.status.success() || dir.is_empty() {
        return Err(format!(
            "`{command}` gave no module folder ({}): {}{}\nDownload the module with \
             `cd tests/upstream/calico-v3.31 && GOTOOLCHAIN=local go mod download {CALICO_MODULE}`",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(PathBuf::from(dir))
}

#[test]
fn embedded_schema_equals_calicos_crd() {
    let dir = calico_module_dir().unwrap_or_else(|why| {
        panic!("Calico's IPPool CRD is needed to check the embedded schema: {why}\n(`IPPOOL_SKIP_CLUSTER=1 ./dev test` leaves out this and every test that needs the upstream pieces)")
    });
    let path = Path::new(&dir).join(IPPOOL_CRD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = parse("crd", &text);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let crd = parsed.documents[0].root.as_ref().unwrap().to_json();
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v1 = versions.iter().find(|v| v["name"] == "v1").expect("v1");
    assert_eq!(
        v1["schema"]["openAPIV3Schema"],
        ippool_crd_schema(),
        "the embedded schema differs from {}",
        path.display()
    );
}

#[test]
fn editor_schema_is_a_valid_json_schema_that_accepts_a_pool() {
    let validator = jsonschema::validator_for(&json_schema()).expect("schema compiles");
    let good = serde_json::json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16", "blockSize": 26, "allowedUses": ["Workload"]}
    });
    assert!(validator.is_valid(&good));
    let bad = serde_json::json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16", "ipipMode": "always"}
    });
    assert!(!validator.is_valid(&bad));
}

/// What the API server validates: the object with explicit nulls pruned.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn pointer(segments: &[PathSegment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            PathSegment::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            PathSegment::Index(i) => format!("/{i}"),
        })
        .collect()
}

/// Errors as (instance pointer, kind) from our checker.
fn ours(node: &Node<'_>) -> BTreeSet<(String, &'static str)> {
    check_schema(node)
        .into_iter()
        .filter_map(|issue| {
            let kind = match issue.kind {
                IssueKind::WrongType { .. } => "type",
                IssueKind::MissingRequired => "required",
                IssueKind::NotInEnum { .. } => "enum",
                IssueKind::Unknown | IssueKind::NullDropped => return None,
            };
            Some((pointer(&issue.path.0), kind))
        })
        .collect()
}

/// Errors as (instance pointer, kind) from jsonschema; a missing property is placed at the
/// property, as ours is.
fn theirs(validator: &jsonschema::Validator, instance: &Value) -> BTreeSet<(String, &'static str)> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let at = e.instance_path().as_str().to_owned();
            match e.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => (
                    format!("{at}/{}", property.as_str().unwrap_or_default()),
                    "required",
                ),
                jsonschema::error::ValidationErrorKind::Type { .. } => (at, "type"),
                jsonschema::error::ValidationErrorKind::Enum { .. } => (at, "enum"),
                other => panic!("unexpected jsonschema error kind {other:?} at {at}"),
            }
        })
        .collect()
}

const CORPUS: &[&str] = &[
    "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16}\n",
    "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blockSize: 26, ipipMode: Always, vxlanMode: Never, natOutgoing: true, disabled: false, disableBGPExport: false, nodeSelector: all(), namespaceSelector: '', allowedUses: [Workload, Tunnel], assignmentMode: Automatic}\n",
    "kind: IPPool\nspec: {}\n",
    "kind: IPPool\nspec: {blockSize: '26', cidr: 5}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, blockSize: 26.0}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, blockSize: 26.5}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, natOutgoing: 'true', disabled: 1, disableBGPExport: []}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, allowedUses: Workload}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, allowedUses: [Workload, 7, {a: b}]}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, allowedUses: [Workload, ~]}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, assignmentMode: Sometimes}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, assignmentMode: ''}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, assignmentMode: 3}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, ipip: {enabled: yes, mode: 4}, nat-outgoing: on}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, ipip: true}\n",
    "kind: IPPool\nspec: {cidr: 10.0.0.0/16, colour: blue, nodeSelector: ~}\n",
    "kind: IPPool\nspec: {cidr: ~}\n",
    "kind: IPPool\nspec: [1, 2]\n",
    "kind: IPPool\nspec: text\n",
    "kind: 5\napiVersion: [x]\nmetadata: text\n",
    "kind: IPPool\nmetadata: [a]\nspec: {cidr: 10.0.0.0/16, ipipMode: 1, vxlanMode: true}\n",
    "{\"kind\": \"IPPool\", \"spec\": {\"cidr\": \"fd00::/48\", \"blockSize\": -1, \"nodeSelector\": 12}}\n",
    "kind: IPPool\nextra: {deep: [1, 2, {x: y}]}\nspec: {cidr: 10.0.0.0/16}\n",
];

#[test]
fn structural_checker_agrees_with_jsonschema() {
    let validator = jsonschema::validator_for(&ippool_crd_schema()).expect("CRD schema compiles");
    for text in CORPUS {
        let parsed = parse("corpus", text);
        assert!(parsed.problems.is_empty(), "{text}: {:?}", parsed.problems);
        let node = parsed.documents[0].root.as_ref().unwrap();
        let instance = without_nulls(&node.to_json());
        assert_eq!(
            ours(node),
            theirs(&validator, &instance),
            "disagreement on:\n{text}"
        );
    }
}

#[test]
fn corpus_covers_every_error_kind() {
    let kinds: BTreeSet<&str> = CORPUS
        .iter()
        .flat_map(|text| {
            let parsed = parse("corpus", text);
            ours(parsed.documents[0].root.as_ref().unwrap())
                .into_iter()
                .map(|(_, k)| k)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kinds, BTreeSet::from(["enum", "required", "type"]));
}
