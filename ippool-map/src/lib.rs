//! The address-space map: where each pool lies in the cluster's address space, which blocks each
//! has handed out to which node and how full they are, blocks outside every pool or of the wrong
//! size, and the blocks a projected growth would claim. One SVG, drawn the same by
//! `kubectl ippool capacity -o html` and by the playground (through the WebAssembly build).

mod layout;
mod svg;

pub use layout::{
    AddressMap, BlockCell, Cell, MAX_CELLS, MapInput, Mark, MarkKind, PoolGrid, Space, layout,
};

/// The map of `input` as an SVG element.
pub fn address_map(input: &MapInput<'_>) -> String {
    svg::render(&layout(input))
}
