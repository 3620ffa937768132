//! Hostile and malformed input ends in diagnostics, never a panic, within bounded memory.

use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::report::Report;
use ippool_rules::{Source, validate};
use proptest::prelude::*;

fn run(text: &str) -> Report {
    validate(
        &[Source {
            name: "in.yaml",
            text,
        }],
        &ClusterContext::default(),
        &Operation::Create,
    )
}

fn codes(report: &Report) -> Vec<&str> {
    report
        .documents
        .iter()
        .flat_map(|d| &d.diagnostics)
        .map(|d| d.code.as_str())
        .collect()
}

#[test]
fn billion_laughs_is_refused() {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let report = run(&text);
    assert!(
        codes(&report).contains(&"IPP002"),
        "{}",
        report.render_text()
    );
}

#[test]
fn quadratic_alias_fanout_is_bounded() {
    // Many aliases to one mid-sized anchor: each copy counts against the budget.
    let big: Vec<String> = (0..2000).map(|i| format!("k{i}: v")).collect();
    let mut text = format!("base: &b {{{}}}\nuses:\n", big.join(", "));
    for _ in 0..200 {
        text.push_str("- *b\n");
    }
    let report = run(&text);
    assert!(
        codes(&report).contains(&"IPP002"),
        "{}",
        report.render_text()
    );
}

#[test]
fn deep_block_and_flow_nesting_is_refused() {
    let mut block = String::new();
    for depth in 0..5_000 {
        block.push_str(&" ".repeat(depth));
        block.push_str("a:\n");
    }
    assert!(codes(&run(&block)).contains(&"IPP002"));
    let flow = format!("{}{}", "{a: ".repeat(50_000), "}".repeat(50_000));
    let report = run(&flow);
    assert!(report.errors > 0);
    let seq = format!("{}{}", "- ".repeat(10_000), "x");
    assert!(codes(&run(&seq)).contains(&"IPP002"));
}

#[test]
fn oversized_input_is_refused_without_parsing() {
    let text = format!("# {}\n", "x".repeat(5 * 1024 * 1024));
    let report = run(&text);
    assert_eq!(codes(&report), ["IPP002"]);
}

#[test]
fn syntax_errors_are_located() {
    let report =
        run("apiVersion: projectcalico.org/v3\nkind: IPPool\nspec:\n  cidr: [10.0.0.0/16\n");
    let d = &report.documents[0].diagnostics[0];
    assert_eq!(d.code, "IPP001");
    assert!(d.line >= 4, "{}", report.render_text());
}

#[test]
fn documents_before_a_syntax_error_are_still_validated() {
    let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.0.0.0/16, blockSize: 99}\n---\nkey: [unclosed\n";
    let report = run(text);
    let all = codes(&report);
    assert!(
        all.contains(&"IPP022") && all.contains(&"IPP001"),
        "{}",
        report.render_text()
    );
}

#[test]
fn odd_but_valid_yaml_is_handled() {
    for text in [
        "",
        "---\n---\n",
        "~\n",
        "[]\n",
        "- 1\n- 2\n",
        "? [complex, key]\n: value\n",
        "kind: IPPool\nspec: !!binary aGVsbG8=\n",
        "kind: IPPool\n%\n",
        "\u{feff}kind: IPPool\n",
        "kind: IPPool\r\nmetadata: {name: p}\r\nspec: {cidr: 10.0.0.0/16}\r\n",
        "items: 5\n",
        "kind: List\nitems: [1, [2], {kind: IPPool}]\n",
        "kind: IPPool\nspec: {cidr: \"\\uD800\"}\n",
    ] {
        let report = run(text);
        assert!(!report.documents.is_empty(), "{text:?}");
        for d in report.documents.iter().flat_map(|d| &d.diagnostics) {
            assert!(d.line >= 1 && d.column >= 1, "{text:?}: {d:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,400}") {
        let report = run(&text);
        prop_assert!(!report.documents.is_empty());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let report = run(&text);
        prop_assert!(!report.documents.is_empty());
    }

    #[test]
    fn yamlish_noise_never_panics(parts in proptest::collection::vec(
        prop::sample::select(vec![
            "kind: IPPool\n", "spec:\n", "  cidr: ", "10.0.0.0/16", "fd00::/64", "\n", "- ", "{", "}", "[", "]",
            ", ", ": ", "&a ", "*a ", "<<: *a\n", "---\n", "'", "\"", "é😀", "\t", "  ", "blockSize: ", "26",
            "items:\n", "metadata: {name: p}\n", "apiVersion: projectcalico.org/v3\n", "? ", "!!str ", "#c\n",
        ]),
        0..60,
    )) {
        let text: String = parts.concat();
        let report = run(&text);
        prop_assert!(!report.documents.is_empty());
    }
}
