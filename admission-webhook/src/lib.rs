//! A validating admission webhook that runs `ippool-rules` on every change to a Calico IP pool
//! (`crd.projectcalico.org/v1` and `projectcalico.org/v3`), so that unsafe edits are refused
//! whichever client makes them.
//!
//! Layout: [`handlers`] translates AdmissionReviews to rule checks, [`state`] holds what verdicts
//! are made from, [`server`] is the HTTP/TLS edge, [`certs`] serves TLS material, [`metrics`]
//! counts, and [`run`] puts them together for the binary. The deployment is rendered by the `webhook-manifest` crate.

pub mod certs;
pub mod handlers;
pub mod metrics;
pub mod run;
pub mod server;
pub mod state;
