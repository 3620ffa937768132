//! The named steps of a migration and of a resize. Their names are what the record stores, what
//! progress events carry, and what `IPPOOL_FAULT_AT` matches (see [`super::fault`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The ordered steps of one migration, OLD → NEW. Each is checked before the next starts, and
/// each can be run again after an interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Create NEW (with `--cidr`), or enable it, and wait until it is usable.
    CreateNew,
    /// Set OLD `disabled: true`: existing pods keep their addresses, new ones come from NEW.
    DisableOld,
    /// Move every planned workload by its strategy.
    MoveWorkloads,
    /// Watch until no pod in scope holds an address in OLD and tunnel addresses have left it.
    Verify,
    /// Release OLD's block affinities and delete its empty blocks, in Calico's order.
    ReleaseOld,
    /// Delete OLD, only when its blocks hold no allocation.
    DeleteOld,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::CreateNew,
        Step::DisableOld,
        Step::MoveWorkloads,
        Step::Verify,
        Step::ReleaseOld,
        Step::DeleteOld,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::CreateNew => "create-new",
            Step::DisableOld => "disable-old",
            Step::MoveWorkloads => "move-workloads",
            Step::Verify => "verify",
            Step::ReleaseOld => "release-old",
            Step::DeleteOld => "delete-old",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The steps of a resize of pool NAME to a new blockSize, around two migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeStep {
    /// Migrate NAME → the temporary pool (which the migration creates), deleting NAME at its end.
    ToTemp,
    /// Remove every block and affinity left in NAME's CIDR, and check that none remain.
    CleanOldCidr,
    /// Create NAME again: its old spec, labels and annotations, with the new blockSize.
    Recreate,
    /// Migrate the temporary pool → NAME, deleting the temporary pool at its end.
    Back,
}

impl ResizeStep {
    pub const ALL: [ResizeStep; 4] = [
        ResizeStep::ToTemp,
        ResizeStep::CleanOldCidr,
        ResizeStep::Recreate,
        ResizeStep::Back,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResizeStep::ToTemp => "to-temp",
            ResizeStep::CleanOldCidr => "clean-old-cidr",
            ResizeStep::Recreate => "recreate",
            ResizeStep::Back => "back",
        }
    }
}

impl fmt::Display for ResizeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
