//! Carrying out a [`ippool_ipam::plan::Plan`]: the ordered, resumable steps of a migration, the moves
//! of workloads, the lock and record kept in the cluster, progress events, and the blockSize
//! resize built on two migrations. The only code that changes workloads.

pub mod abort;
pub mod events;
pub mod execute;
pub mod fault;
pub mod fence;
pub mod inventory;
pub mod job;
pub mod mirror;
pub mod moves;
pub mod record;
pub mod requests;
pub mod resize;
pub mod retry;
pub mod step;
