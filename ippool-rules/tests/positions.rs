//! Line and column accuracy: 1-based lines, columns in UTF-16 code units, exclusive ends, and
//! where missing fields and document-level findings point.

use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::report::Diagnostic;
use ippool_rules::{Source, validate};

fn diagnostic(text: &str, code: &str) -> Diagnostic {
    let report = validate(
        &[Source {
            name: "p.yaml",
            text,
        }],
        &ClusterContext::default(),
        &Operation::Create,
    );
    report
        .documents
        .iter()
        .flat_map(|d| d.diagnostics.clone())
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no {code} in:\n{}", report.render_text()))
}

fn at(d: &Diagnostic) -> (u32, u32, u32, u32) {
    (d.line, d.column, d.end_line, d.end_column)
}

#[test]
fn non_ascii_before_the_error_counts_in_utf16_units() {
    // Line 6: `  {note: "é😀", blockSize: ` is 26 characters, 27 UTF-16 units (the emoji is 2).
    let text = "apiVersion: projectcalico.org/v3 # é😀 comment\nkind: IPPool\nmetadata:\n  name: p # ünïcödé 😀😀\nspec:\n  {note: \"é😀\", blockSize: 19, cidr: 10.0.0.0/16}\n";
    let d = diagnostic(text, "IPP022");
    assert_eq!(at(&d), (6, 28, 6, 30));
    assert_eq!(d.path, "spec.blockSize");
}

#[test]
fn a_non_ascii_token_ends_after_its_last_unit() {
    // `ipipMode: Ålways😀` — the value is 7 characters, 8 UTF-16 units.
    let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec:\n  cidr: 10.0.0.0/16\n  ipipMode: Ålways😀\n";
    let d = diagnostic(text, "IPP027");
    assert_eq!(at(&d), (6, 13, 6, 21));
}

#[test]
fn syntax_error_after_non_ascii_on_the_same_line() {
    let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: \"😀😀\", labels: {a: b}}}\n";
    let d = diagnostic(text, "IPP001");
    // The stray `}` follows `metadata: {name: "😀😀", labels: {a: b}}`: 38 characters, 40 units.
    assert_eq!((d.line, d.column), (3, 41), "{d:?}");
}

#[test]
fn missing_field_points_at_its_parent_key() {
    let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\n# é😀\nspec:\n  blockSize: 26\n";
    let d = diagnostic(text, "IPP012");
    assert_eq!(d.path, "spec.cidr");
    assert_eq!(at(&d), (5, 1, 5, 5));
}

#[test]
fn document_level_findings_point_at_the_first_line_of_their_document() {
    let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.0.0.0/16}\n---\n# comment\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: b}\nspec: {cidr: 10.1.0.0/16}\n";
    let report = validate(
        &[Source {
            name: "p.yaml",
            text,
        }],
        &ClusterContext::default(),
        &Operation::Create,
    );
    let second = &report.documents[1];
    assert_eq!(second.index, 1);
    let skipped = second
        .diagnostics
        .iter()
        .find(|d| d.code == "IPP005")
        .expect("IPP005");
    assert_eq!(at(skipped), (7, 1, 7, 11));
    assert_eq!(skipped.path, "");
}

#[test]
fn crlf_line_ends_count_as_one_line_break() {
    let text = "apiVersion: projectcalico.org/v3\r\nkind: IPPool\r\nmetadata: {name: p}\r\nspec:\r\n  cidr: 10.0.0.0/16\r\n  blockSize: 99\r\n";
    let d = diagnostic(text, "IPP022");
    assert_eq!(at(&d), (6, 14, 6, 16));
}
