//! `kubectl ippool disable NAME`: stop new allocations from the pool (pods keep their addresses).
//! The rules warn, e.g., when it is the last enabled pool of its family.

use super::Outcome;
use super::enable::{ToggleArgs, set_disabled};
use crate::kube_opts::KubeOpts;

pub fn run(args: &ToggleArgs, kube: &KubeOpts) -> anyhow::Result<Outcome> {
    set_disabled(args, kube, true)
}
