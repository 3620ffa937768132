use ippool_ipam::fixtures::{Used, block, pool};

use super::*;
use crate::layout::{MapInput, layout};

#[test]
fn every_block_pool_and_node_is_drawn_with_its_data() {
    let pools = [pool("default", "10.0.0.0/24", Some(26), false)];
    let used: [Used<'_>; 1] = [(0, "h0", &[])];
    let blocks = [
        block("10.0.0.0/26", Some("node-a"), &used),
        block("10.0.0.64/27", Some("node-b"), &[]),
        block("10.5.0.0/26", None, &[]),
    ];
    let projected = [("default".to_owned(), 1)];
    let svg = render(&layout(&MapInput {
        pools: &pools,
        blocks: &blocks,
        projected: &projected,
        ..MapInput::default()
    }));
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.ends_with("</svg>"));
    assert!(svg.contains(r#"<g class="pool" data-pool="default" data-cidr="10.0.0.0/24""#));
    assert!(svg.contains(r#"<g class="cell block" data-cidr="10.0.0.0/26" data-node="node-a" data-in-use="1" data-size="64""#));
    assert!(svg.contains(
        r#"<g class="cell block wrong-size" data-cidr="10.0.0.64/27" data-node="node-b""#
    ));
    assert!(svg.contains(r#"<g class="cell block leftover" data-cidr="10.5.0.0/26" data-node="""#));
    assert_eq!(svg.matches(r#"class="cell free projected""#).count(), 1);
    assert_eq!(svg.matches(r#"class="cell free""#).count(), 1);
    assert!(svg.contains("Blocks outside every pool (1)"));
    assert!(svg.contains(r#"<g class="legend node">"#));
}

#[test]
fn names_from_pasted_text_are_escaped() {
    let pools = [pool("<script>\"x\"&", "10.0.0.0/24", Some(26), false)];
    let svg = render(&layout(&MapInput {
        pools: &pools,
        ..MapInput::default()
    }));
    assert!(!svg.contains("<script>"), "{svg}");
    assert!(
        svg.contains("data-pool=\"&lt;script&gt;&quot;x&quot;&amp;\""),
        "{svg}"
    );
}
