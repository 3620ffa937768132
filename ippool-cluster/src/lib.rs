//! Cluster access shared by the kubectl plugin and the admission webhook: Calico's and Kubernetes'
//! resources over the Kubernetes API (discovery, snapshots, the watch-fed view, conditional writes
//! with retries) and the operations built on them (pool writes and deletes, releases, migrations
//! and resizes). What is decided from what is read lives in `ippool-ipam`, with no I/O.

pub mod api;
pub mod client;
pub mod discovery;
pub mod duration;
pub mod load;
pub mod migration;
pub mod pool_delete;
pub mod pool_write;
pub mod release;
pub mod request_error;
pub mod resources;
pub mod view;
