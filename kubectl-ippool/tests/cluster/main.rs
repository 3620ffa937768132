//! The plugin against a real control plane running Calico's own components: one test binary for
//! every cluster suite of the plugin, so they link once. `support` holds what the suites share.

mod support;

mod calico_apiserver;
mod capacity;
mod capacity_map;
mod check;
mod conflicts;
mod create_apply;
mod delete;
mod errors;
mod explain;
mod faults;
mod gc;
mod migrate_auto;
mod migrate_availability;
mod migrate_blockers;
mod migrate_in_cluster;
mod migrate_lock;
mod migrate_no_address;
mod migrate_resume;
mod migrate_status;
mod migrate_tutorials;
mod migrate_workloads;
mod pools_in_use;
mod resize_ipv6;
mod resize_resume;
mod v3_group;
