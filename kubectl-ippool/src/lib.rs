//! The kubectl-ippool plugin: one file per subcommand under `cmd/`.

pub mod cmd;
pub mod kube_opts;
pub mod live;
pub mod output;

pub use cmd::{Cli, Command, Outcome, run};
