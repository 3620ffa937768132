//! `addressMap(text, options)`: the address-space map the plugin's `capacity -o html` draws, for
//! the pools being written (`text`) among the pools and blocks of `options.against`, inside
//! `options.clusterCidrs`. Pure Rust, so it is tested natively.

use ippool_map::{MapInput, address_map};
use ippool_rules::{Source, parse_pools};

use crate::options::{OptionsError, ValidateOptions};

/// The map as an SVG element. Pools of `text` are drawn as proposed; text that does not read as
/// IPPools (it is still being typed) leaves them out, as the validator's report says why.
pub fn address_map_svg(text: &str, options: &ValidateOptions) -> Result<String, OptionsError> {
    let (ctx, _) = options.resolve()?;
    let cluster_cidrs = ctx.cluster_cidrs.map(|c| c.cidrs).unwrap_or_default();
    let proposed = parse_pools(Source {
        name: options.source_name(),
        text,
    })
    .unwrap_or_default();
    Ok(address_map(&MapInput {
        cluster_cidrs: &cluster_cidrs,
        pools: ctx.pools.as_deref().unwrap_or_default(),
        proposed: &proposed,
        blocks: ctx.blocks.as_deref().unwrap_or_default(),
        ..MapInput::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGAINST: &str = "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata:\n  name: old\nspec:\n  cidr: 10.0.0.0/24\n  blockSize: 26\n---\napiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata:\n  name: 10-0-0-64-26\nspec:\n  cidr: 10.0.0.64/26\n  affinity: host:node-a\n  allocations: []\n  unallocated: []\n  attributes: []\n";
    const NEW: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: new\nspec:\n  cidr: 10.1.0.0/24\n";

    fn options(json: &str) -> ValidateOptions {
        ValidateOptions::from_json(Some(json)).unwrap()
    }

    #[test]
    fn pools_being_written_are_drawn_among_the_clusters() {
        let json =
            serde_json::json!({"clusterCidrs": ["10.0.0.0/8"], "against": AGAINST}).to_string();
        let svg = address_map_svg(NEW, &options(&json)).unwrap();
        assert!(
            svg.contains(r#"<g class="space" data-cidr="10.0.0.0/8">"#),
            "{svg}"
        );
        assert!(svg.contains(r#"<g class="pool" data-pool="old""#), "{svg}");
        assert!(
            svg.contains(r#"<g class="pool proposed" data-pool="new""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"data-cidr="10.0.0.64/26" data-node="node-a""#),
            "{svg}"
        );
    }

    #[test]
    fn half_typed_text_leaves_only_the_context() {
        let json = serde_json::json!({"against": AGAINST}).to_string();
        let svg = address_map_svg("kind: IPPool\nspec: [", &options(&json)).unwrap();
        assert!(svg.contains(r#"data-pool="old""#), "{svg}");
        assert!(!svg.contains("proposed\" data-pool"), "{svg}");
        let err = address_map_svg(NEW, &options(r#"{"clusterCidrs": ["10.0.0.1/8"]}"#));
        assert!(matches!(err, Err(OptionsError::Cidr { .. })));
    }
}
