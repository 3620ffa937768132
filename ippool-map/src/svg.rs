//! The map as one self-contained SVG element: the address-space strips, each pool's grid of
//! blocks (coloured by node, filled from the bottom by use), blocks outside every pool, and a
//! legend. Elements carry classes and `data-` attributes naming what they show, for stylesheets,
//! scripts and tests alike.

use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::layout::{AddressMap, BlockCell, Cell, MarkKind, PoolGrid, Space};

const WIDTH: u32 = 960;
const MARGIN: u32 = 16;
const STRIP: u32 = 22;
const CELL: u32 = 12;
const PITCH: u32 = 14;
const COLUMNS: usize = 64;
/// Nodes named in the legend; the rest are counted.
const LEGEND_NODES: usize = 24;

/// Draws the map.
pub fn render(map: &AddressMap) -> String {
    let mut svg = Svg::default();
    for space in &map.spaces {
        svg.space(space);
    }
    for grid in &map.pools {
        svg.pool(grid, &map.nodes);
    }
    if !map.leftovers.is_empty() {
        svg.heading(&format!(
            "Blocks outside every pool ({}): `kubectl ippool gc` removes those without allocations",
            map.leftovers.len()
        ));
        svg.cells(
            map.leftovers
                .iter()
                .map(|b| CellView::Blocks(std::slice::from_ref(b), true)),
            &map.nodes,
        );
    }
    svg.legend(&map.nodes);
    svg.finish()
}

#[derive(Default)]
struct Svg {
    body: String,
    y: u32,
}

/// What one cell shows.
enum CellView<'a> {
    Free {
        projected: bool,
    },
    /// The blocks in the cell, and whether they lie outside every pool.
    Blocks(&'a [BlockCell], bool),
}

impl<'a> From<&'a Cell> for CellView<'a> {
    fn from(cell: &'a Cell) -> CellView<'a> {
        if cell.blocks.is_empty() {
            CellView::Free {
                projected: cell.projected,
            }
        } else {
            CellView::Blocks(&cell.blocks, false)
        }
    }
}

impl Svg {
    fn line(&mut self, class: &str, content: &str) {
        self.y += 18;
        let _ = write!(
            self.body,
            r#"<text class="{}" x="{MARGIN}" y="{}">{}</text>"#,
            attr(class),
            self.y,
            text(content)
        );
        self.y += 4;
    }

    fn heading(&mut self, content: &str) {
        self.y += 10;
        self.line("heading", content);
    }

    fn space(&mut self, space: &Space) {
        let what = if space.cluster_cidr {
            "cluster CIDR"
        } else {
            "span of the pools no known cluster CIDR holds"
        };
        self.line("space-label", &format!("{} ({what})", space.cidr));
        let width = WIDTH - 2 * MARGIN;
        let _ = write!(
            self.body,
            r#"<g class="space" data-cidr="{}"><rect class="strip" x="{MARGIN}" y="{}" width="{width}" height="{STRIP}"/>"#,
            space.cidr, self.y
        );
        for mark in &space.marks {
            let x = f64::from(MARGIN) + mark.start * f64::from(width);
            let w = ((mark.end - mark.start) * f64::from(width)).max(2.0);
            let class = match mark.kind {
                MarkKind::Pool => "mark pool",
                MarkKind::ProposedPool => "mark pool proposed",
                MarkKind::Leftover => "mark leftover",
            };
            let _ = write!(
                self.body,
                r#"<rect class="{class}" data-label="{}" data-cidr="{}" x="{x:.1}" y="{}" width="{w:.1}" height="{STRIP}"><title>{} {}</title></rect>"#,
                attr(&mark.label),
                mark.cidr,
                self.y,
                text(&mark.label),
                mark.cidr
            );
            // Names fit in marks wider than about 7 px a character.
            if w > 7.0 * mark.label.len() as f64 + 8.0 {
                let _ = write!(
                    self.body,
                    r#"<text class="mark-label{}" x="{:.1}" y="{}">{}</text>"#,
                    if mark.kind == MarkKind::ProposedPool {
                        " proposed"
                    } else {
                        ""
                    },
                    x + 4.0,
                    self.y + 15,
                    text(&mark.label)
                );
            }
        }
        self.body.push_str("</g>");
        self.y += STRIP + 4;
    }

    fn pool(&mut self, grid: &PoolGrid, nodes: &[String]) {
        let mut title = format!("{} {} blockSize /{}", grid.name, grid.cidr, grid.block_size);
        if grid.proposed {
            title.push_str(" (proposed)");
        }
        if !grid.enabled {
            title.push_str(" (disabled)");
        }
        let mut stats = format!(
            "{} of {} blocks claimed; {} addresses in use",
            grid.claimed, grid.slots, grid.addresses_in_use
        );
        if grid.slots_per_cell > 1 {
            let _ = write!(stats, "; each cell holds {} blocks", grid.slots_per_cell);
        }
        if grid.projected > 0 {
            let _ = write!(stats, "; the growth claims {} more", grid.projected);
            if grid.projected_short > 0 {
                let _ = write!(stats, ", {} more than are free", grid.projected_short);
            }
        }
        let class = match (grid.proposed, grid.enabled) {
            (true, _) => "pool proposed",
            (false, true) => "pool",
            (false, false) => "pool disabled",
        };
        let _ = write!(
            self.body,
            r#"<g class="{class}" data-pool="{}" data-cidr="{}" data-block-size="{}" data-claimed="{}" data-slots="{}" data-projected-short="{}">"#,
            attr(&grid.name),
            grid.cidr,
            grid.block_size,
            grid.claimed,
            grid.slots,
            grid.projected_short
        );
        self.y += 10;
        self.line("pool-title", &title);
        self.line("pool-stats", &stats);
        self.cells(grid.cells.iter().map(CellView::from), nodes);
        self.body.push_str("</g>");
    }

    fn cells<'a>(&mut self, cells: impl Iterator<Item = CellView<'a>>, nodes: &[String]) {
        let top = self.y + 4;
        let mut rows = 0;
        for (i, cell) in cells.enumerate() {
            let x = MARGIN + PITCH * (i % COLUMNS) as u32;
            let y = top + PITCH * (i / COLUMNS) as u32;
            rows = i / COLUMNS + 1;
            match cell {
                CellView::Free { projected } => {
                    let class = if projected {
                        "cell free projected"
                    } else {
                        "cell free"
                    };
                    let _ = write!(
                        self.body,
                        r#"<rect class="{class}" x="{x}" y="{y}" width="{CELL}" height="{CELL}"/>"#
                    );
                }
                CellView::Blocks(blocks, leftover) => self.block(blocks, leftover, x, y, nodes),
            }
        }
        self.y = top + PITCH * rows as u32 + 4;
    }

    fn block(&mut self, blocks: &[BlockCell], leftover: bool, x: u32, y: u32, nodes: &[String]) {
        let first = &blocks[0];
        let node = first
            .node
            .filter(|n| blocks.iter().all(|b| b.node == Some(*n)));
        let in_use: u64 = blocks.iter().map(|b| b.in_use).sum();
        let size: u64 = blocks.iter().map(|b| b.size).sum::<u64>().max(1);
        let wrong_size = blocks.iter().any(|b| b.wrong_size);
        let mut class = String::from("cell block");
        if wrong_size {
            class.push_str(" wrong-size");
        }
        if leftover {
            class.push_str(" leftover");
        }
        let node_name = node.and_then(|n| nodes.get(n)).map(String::as_str);
        let owner = match (node_name, first.node) {
            (Some(n), _) => format!("node {n}"),
            (None, Some(_)) => "several nodes".to_owned(),
            (None, None) => "no node".to_owned(),
        };
        let mut tip = if blocks.len() == 1 {
            format!("{} · {owner} · {in_use} of {size} in use", first.cidr)
        } else {
            format!(
                "{} blocks from {} · {owner} · {in_use} of {size} in use",
                blocks.len(),
                first.cidr
            )
        };
        if wrong_size {
            tip.push_str(" · not the pool's blockSize");
        }
        if leftover {
            tip.push_str(" · outside every pool");
        }
        let (light, dark) = colours(node);
        // Any use shows: at least 2 px of the bar.
        let used = match (u64::from(CELL) * in_use).div_ceil(size) {
            0 => 0,
            px => px.clamp(2, u64::from(CELL)) as u32,
        };
        let _ = write!(
            self.body,
            r#"<g class="{class}" data-cidr="{}" data-node="{}" data-in-use="{in_use}" data-size="{size}" data-blocks="{}"><title>{}</title><rect class="fill" x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{light}"/><rect class="use" x="{x}" y="{}" width="{CELL}" height="{used}" fill="{dark}"/></g>"#,
            first.cidr,
            attr(node_name.unwrap_or("")),
            blocks.len(),
            text(&tip),
            y + CELL - used
        );
    }

    fn legend(&mut self, nodes: &[String]) {
        self.heading("Legend");
        let mut x = MARGIN;
        let mut entry = |svg: &mut Svg, class: &str, fill: &str, label: &str| {
            let width = 7 * label.chars().count() as u32 + 28;
            if x + width > WIDTH - MARGIN {
                x = MARGIN;
                svg.y += 18;
            }
            let _ = write!(
                svg.body,
                r#"<g class="legend {}"><rect class="swatch" x="{x}" y="{}" width="{CELL}" height="{CELL}" fill="{}"/><text x="{}" y="{}">{}</text></g>"#,
                attr(class),
                svg.y + 4,
                attr(fill),
                x + CELL + 4,
                svg.y + 14,
                text(label)
            );
            x += width;
        };
        for (i, node) in nodes.iter().enumerate().take(LEGEND_NODES) {
            entry(self, "node", &colours(Some(i)).1, node);
        }
        if nodes.len() > LEGEND_NODES {
            let more = format!("{} more nodes", nodes.len() - LEGEND_NODES);
            entry(self, "node", "none", &more);
        }
        entry(self, "unaffine", &colours(None).1, "no node");
        entry(self, "free", "#fff", "free: claimable");
        entry(
            self,
            "projected",
            "url(#projected)",
            "claimed by the growth",
        );
        entry(self, "wrong-size", "#fff", "not the pool's blockSize");
        entry(self, "leftover", "#fff", "outside every pool");
        self.y += 24;
    }

    fn finish(self) -> String {
        let height = self.y + MARGIN;
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" class="address-map" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Address-space map"><defs><pattern id="projected" patternUnits="userSpaceOnUse" width="4" height="4" patternTransform="rotate(45)"><rect width="2" height="4" fill="#6a9f3a"/></pattern></defs><style>{STYLE}</style>{}</svg>"##,
            self.body
        )
    }
}

const STYLE: &str = "text{font:12px sans-serif;fill:#222}.heading{font-weight:bold;font-size:14px}\
.pool-title{font-weight:bold}.pool-stats{fill:#555}.strip{fill:#f3f3f3;stroke:#999}\
.mark.pool{fill:#4a7fc1;fill-opacity:.55;stroke:#2d5a94}.mark.proposed{fill:none;stroke:#2d5a94;stroke-dasharray:4 2}\
.mark.leftover{fill:#d22}.mark-label{fill:#fff;font-size:11px}.mark-label.proposed{fill:#2d5a94}\
.cell.free rect,rect.cell.free{fill:#fff;stroke:#ccc}rect.cell.projected{fill:url(#projected);stroke:#6a9f3a}\
.wrong-size .fill,.legend.wrong-size rect{stroke:#d00;stroke-width:2;stroke-dasharray:3 1}\
.leftover .fill,.legend.leftover rect{stroke:#d00;stroke-width:2}.legend.free rect{stroke:#ccc}";

/// A node's colours: a light fill and a dark use bar. Hues step by the golden angle so that
/// neighbours in the node list differ; blocks of no node (or several) are grey.
fn colours(node: Option<usize>) -> (String, String) {
    match node {
        Some(i) => {
            let hue = (i as f64 * 137.508) % 360.0;
            (
                format!("hsl({hue:.0},60%,80%)"),
                format!("hsl({hue:.0},55%,42%)"),
            )
        }
        None => ("#e4e4e4".to_owned(), "#8a8a8a".to_owned()),
    }
}

#[cfg(test)]
mod tests;
