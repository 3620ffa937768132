//! `kubectl-ippool validate` as a user runs it: exit codes, text and JSON output, positions.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-ippool");

const GOOD: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pods-v4
spec:
  cidr: 10.244.0.0/16
  blockSize: 26
  vxlanMode: CrossSubnet
  natOutgoing: true
";

/// Line 7 has non-ASCII text (2 characters, 3 UTF-16 units) before the bad value.
const BAD: &str = "apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: pods-v4
  annotations: {note: \"é😀\"}
spec:
  {nodeSelector: \"zone == 'é😀'\", blockSize: 19, cidr: 10.244.0.0/16}
";

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl-ippool runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn clean_pool_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "good.yaml", GOOD);
    let out = run(
        &[
            "validate",
            "-f",
            &file,
            "--cluster-cidr",
            "10.244.0.0/16",
            "--service-cidr",
            "10.96.0.0/12",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("0 errors, 0 warnings"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn errors_exit_one_with_compiler_style_text_and_utf16_columns() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.yaml", BAD);
    let out = run(&["validate", "-f", &file], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    // `  {nodeSelector: "zone == 'é😀'", blockSize: ` is 44 characters but 45 UTF-16 units.
    let expected =
        format!("{file}:7:46: error[IPP022]: IPv4 block size must be between 20 and 32, not 19");
    assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    assert!(
        text.contains("  = hint: use a value in 20-32 (default 26)"),
        "{text}"
    );
}

#[test]
fn json_output_is_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.yaml", BAD);
    let out = run(&["validate", "-f", &file, "-o", "json"], None);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert_eq!(report["errors"], 1);
    let doc = &report["documents"][0];
    assert_eq!(doc["source"], file.as_str());
    assert_eq!(doc["index"], 0);
    assert_eq!(doc["apiVersion"], "crd.projectcalico.org/v1");
    assert_eq!(doc["kind"], "IPPool");
    assert_eq!(doc["name"], "pods-v4");
    let d = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "IPP022")
        .expect("IPP022");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["path"], "spec.blockSize");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(7), Some(46))
    );
    assert_eq!(
        (d["endLine"].as_u64(), d["endColumn"].as_u64()),
        (Some(7), Some(48))
    );
    assert!(d["hint"].is_string());
    let info = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "IPP005")
        .expect("skipped-rule info");
    assert!(info.get("hint").is_some());
}

#[test]
fn directories_stdin_and_multiple_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", GOOD);
    write(
        dir.path(),
        "b.json",
        r#"{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "v6"}, "spec": {"cidr": "fd00:10::/64"}}"#,
    );
    write(dir.path(), "notes.txt", "not a manifest");
    let out = run(
        &[
            "validate",
            "-f",
            &dir.path().display().to_string(),
            "-f",
            "-",
            "-o",
            "json",
        ],
        Some(GOOD),
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let sources: Vec<&str> = report["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 3, "{sources:?}");
    assert!(sources[0].ends_with("a.yaml") && sources[1].ends_with("b.json") && sources[2] == "-");
    // The stdin copy repeats a.yaml's pool: same name, overlapping CIDR.
    assert_eq!(out.status.code(), Some(1));
    let codes: Vec<&str> = report["documents"][2]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"IPP083") && codes.contains(&"IPP084"),
        "{codes:?}"
    );
}

#[test]
fn against_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = write(
        dir.path(),
        "cluster.yaml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}\n- apiVersion: crd.projectcalico.org/v1\n  kind: IPAMBlock\n  metadata: {{name: 10-244-0-0-26}}\n  spec: {{cidr: 10.244.0.0/26, affinity: 'host:n1', allocations: [0, null], unallocated: [1], attributes: [{{handle_id: h}}]}}\n",
            serde_json::to_string(&serde_json::json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "pods-v4"}, "spec": {"cidr": "10.244.0.0/16"}})).unwrap()
        ),
    );
    let good = write(dir.path(), "good.yaml", GOOD);
    let out = run(&["validate", "-f", &good, "--against", &cluster], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "create of an existing name:\n{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("error[IPP082]"));

    let resized = write(
        dir.path(),
        "resized.yaml",
        &GOOD.replace("blockSize: 26", "blockSize: 24"),
    );
    let out = run(
        &[
            "validate",
            "-f",
            &resized,
            "--operation",
            "update",
            "--old",
            &good,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("kubectl ippool resize"),
        "{}",
        stdout(&out)
    );
    let out = run(
        &[
            "validate",
            "-f",
            &good,
            "--operation",
            "update",
            "--old",
            &good,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let out = run(
        &[
            "validate",
            "-f",
            &good,
            "--operation",
            "delete",
            "--against",
            &cluster,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("error[IPP070]")
            && text.contains("error[IPP071]")
            && text.contains("1 addresses in use"),
        "{text}"
    );
}

#[test]
fn usage_and_io_errors_exit_two_and_say_what_to_do() {
    let out = run(&["validate"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--filename"), "{}", stderr(&out));

    let out = run(&["validate", "-f", "/nonexistent/pool.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/pool.yaml does not exist"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", GOOD);
    let out = run(&["validate", "-f", &good, "--operation", "update"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--old"), "{}", stderr(&out));

    let out = run(
        &["validate", "-f", &good, "--cluster-cidr", "10.244.0.1/16"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not strictly masked"),
        "{}",
        stderr(&out)
    );

    let broken = write(dir.path(), "broken.yaml", "kind: [\n");
    let out = run(&["validate", "-f", &good, "--against", &broken], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--against"), "{}", stderr(&out));

    let binary = dir.path().join("bin.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let out = run(&["validate", "-f", &binary.display().to_string()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
}

#[test]
fn syntax_errors_are_findings_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "broken.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nspec: {cidr: [\n",
    );
    let out = run(&["validate", "-f", &file], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("error[IPP001]"), "{}", stdout(&out));
}

#[test]
fn schema_prints_json_schema() {
    let out = run(&["schema"], None);
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(schema["properties"]["kind"]["const"], "IPPool");
}
