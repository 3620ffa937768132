//! `kubectl ippool capacity -o html`: one self-contained page (no scripts, no links out) with the
//! address-space map, the room of each pool, the nodes at their block limit and each projection
//! with its fix.

use std::fmt::Write as _;

use html_escape::encode_text as text;
use ipnet::IpNet;
use ippool_ipam::capacity::PoolCapacity;

/// What the page shows besides the pools' capacity.
pub struct PageContext<'a> {
    /// The cluster CIDRs and where they were found, when discovery found them.
    pub cluster_cidrs: Option<(&'a [IpNet], &'a str)>,
    pub max_blocks_per_host: u64,
    /// The address-space map (an SVG element).
    pub map: &'a str,
}

const STYLE: &str = "body{font:14px sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse}\
th,td{padding:3px 10px;text-align:left;border-bottom:1px solid #ddd}td.n{text-align:right}\
meter{width:90px}code{background:#f3f3f3;padding:1px 4px}.short{color:#b00}.fits{color:#275}";

pub fn render(pools: &[PoolCapacity], context: &PageContext<'_>) -> String {
    let mut page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>IP pool capacity</title><style>{STYLE}</style></head><body>\
<h1>IP pool capacity</h1><p id=\"cluster\">{}</p><h2>Address space</h2><div id=\"map\">{}</div>",
        text(&cluster_line(context)),
        context.map
    );
    page.push_str(
        "<h2>Pools</h2><table id=\"pools\"><thead><tr><th>Pool</th><th>CIDR</th><th>Block</th>\
<th>Addresses in use</th><th></th><th>Blocks claimed</th><th>Claimable</th><th>Stranded</th>\
<th>Leaked</th><th>Nodes at block limit</th></tr></thead><tbody>",
    );
    for p in pools {
        let at_limit: Vec<&str> = p
            .nodes
            .iter()
            .filter(|n| n.at_block_limit)
            .map(|n| n.node.as_str())
            .collect();
        let percent = (p.addresses_in_use * 100)
            .checked_div(p.addresses_total)
            .unwrap_or(0);
        let _ = write!(
            page,
            "<tr data-pool=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{} of {}</td>\
<td><meter min=\"0\" max=\"100\" low=\"70\" high=\"85\" optimum=\"0\" value=\"{percent}\">{percent}%</meter></td>\
<td class=\"n\">{} of {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            html_escape::encode_double_quoted_attribute(&p.pool),
            text(&p.pool),
            p.cidr,
            p.block_size
                .map_or_else(|| "-".to_owned(), |b| format!("/{b}")),
            p.addresses_in_use,
            p.addresses_total,
            p.blocks_claimed,
            p.blocks_total,
            p.blocks_claimable,
            p.addresses_stranded,
            p.addresses_leaked,
            if context.max_blocks_per_host == 0 {
                "no limit set".to_owned()
            } else if at_limit.is_empty() {
                "none".to_owned()
            } else {
                text(&at_limit.join(", ")).into_owned()
            }
        );
    }
    page.push_str("</tbody></table>");
    projections(&mut page, pools);
    page.push_str("</body></html>\n");
    page
}

fn cluster_line(context: &PageContext<'_>) -> String {
    let limit = match context.max_blocks_per_host {
        0 => "IPAMConfig sets no maxBlocksPerHost".to_owned(),
        n => format!("IPAMConfig's maxBlocksPerHost is {n}"),
    };
    match context.cluster_cidrs {
        Some((cidrs, source)) => format!(
            "Cluster CIDR {} (from {source}). {limit}.",
            cidrs
                .iter()
                .map(IpNet::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!(
            "The cluster CIDR was not found (`kubectl ippool cluster-cidr` says where it looked; --cluster-cidr gives it). {limit}."
        ),
    }
}

fn projections(page: &mut String, pools: &[PoolCapacity]) {
    let projected: Vec<&PoolCapacity> = pools.iter().filter(|p| p.projection.is_some()).collect();
    if projected.is_empty() {
        return;
    }
    page.push_str("<h2>Projection</h2><ul id=\"projections\">");
    for p in projected {
        let Some(x) = &p.projection else { continue };
        let _ = write!(
            page,
            "<li data-pool=\"{}\"><b>{}</b>: {} more node(s), every node up to {} pods ({} block(s) each): ",
            html_escape::encode_double_quoted_attribute(&p.pool),
            text(&p.pool),
            x.new_nodes,
            x.pods_per_node,
            x.blocks_per_full_node
        );
        match &x.runs_out {
            None => {
                let _ = write!(
                    page,
                    "<span class=\"fits\">fits</span> ({} more block(s) of {} claimable).",
                    x.blocks_needed, p.blocks_claimable
                );
            }
            Some(why) => {
                let _ = write!(
                    page,
                    "<span class=\"short\">runs out</span>: {}.",
                    text(why)
                );
                if let Some(fix) = &x.fix {
                    let _ = write!(page, " Fix: <code>{}</code>", text(fix));
                }
            }
        }
        page.push_str("</li>");
    }
    page.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_ipam::capacity::{NodeShare, Projection};

    #[test]
    fn the_page_holds_the_map_the_pools_and_the_fix() {
        let pool = PoolCapacity {
            pool: "small".to_owned(),
            cidr: "10.0.0.0/24".to_owned(),
            block_size: Some(26),
            enabled: true,
            addresses_total: 256,
            addresses_in_use: 64,
            addresses_free: 192,
            blocks_total: 4,
            blocks_claimed: 1,
            blocks_claimable: 3,
            addresses_stranded: 0,
            addresses_leaked: 0,
            nodes: vec![NodeShare {
                node: "node-a".to_owned(),
                blocks: 1,
                addresses_in_use: 64,
                addresses_free: 0,
                at_block_limit: true,
            }],
            projection: Some(Projection {
                new_nodes: 5,
                pods_per_node: 110,
                blocks_per_full_node: 2,
                blocks_needed: 11,
                runs_out: Some("the growth claims 11 more blocks of /26; 3 are left".to_owned()),
                fix: Some("kubectl ippool migrate --from small --to small-2 --cidr <…>".to_owned()),
            }),
        };
        let cidrs: [IpNet; 1] = ["10.0.0.0/16".parse().unwrap()];
        let page = render(
            &[pool],
            &PageContext {
                cluster_cidrs: Some((&cidrs, "kube-controller-manager --cluster-cidr")),
                max_blocks_per_host: 1,
                map: "<svg class=\"address-map\"></svg>",
            },
        );
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<div id=\"map\"><svg class=\"address-map\"></svg></div>"));
        assert!(page.contains("Cluster CIDR 10.0.0.0/16 (from kube-controller-manager --cluster-cidr). IPAMConfig's maxBlocksPerHost is 1."), "{page}");
        assert!(page.contains("<td class=\"n\">64 of 256</td>"), "{page}");
        assert!(page.contains("<td>node-a</td></tr>"), "{page}");
        assert!(page.contains("Fix: <code>kubectl ippool migrate --from small --to small-2 --cidr &lt;…&gt;</code>"), "{page}");
    }
}
