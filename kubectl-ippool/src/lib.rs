//! The kubectl-ippool plugin: one file per subcommand under `cmd/`.

pub mod capacity_page;
pub mod cmd;
pub mod kube_opts;
pub mod live;
pub mod output;
pub mod plan_text;
pub mod progress;

pub use cmd::{Cli, Command, Outcome, run};
