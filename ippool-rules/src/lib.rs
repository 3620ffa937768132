//! Safety rules for Calico IP pools: one rule set for the kubectl plugin, the admission webhook
//! and the WebAssembly build. Pure: no I/O, no async runtime, no Kubernetes client.
//!
//! Entry points: [`validate`] (text in, [`report::Report`] out), [`rules::check_pool`] (typed
//! pool in, findings out), [`load_context_objects`] and [`parse_pools`] (text to typed objects).

pub mod cidr;
pub mod context;
pub mod described;
pub mod extract;
pub mod model;
pub mod report;
pub mod rules;
pub mod schema;
pub mod selector;
pub mod source;
pub mod structure;
mod validate;

pub use validate::{Source, load_context_objects, parse_pools, validate};
