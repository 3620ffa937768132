//! `kubectl-ippool completion bash|zsh|fish`: a shell completion script for the binary.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Outcome};

#[derive(Debug, Args)]
#[command(
    after_help = "Example: kubectl-ippool completion bash > /etc/bash_completion.d/kubectl-ippool"
)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

pub fn run(args: &CompletionArgs) -> anyhow::Result<Outcome> {
    let shell: Shell = args
        .shell
        .parse()
        .map_err(|e| anyhow::anyhow!("unknown shell {}: {e}", args.shell))?;
    let mut command = Cli::command();
    clap_complete::generate(
        shell,
        &mut command,
        "kubectl-ippool",
        &mut std::io::stdout(),
    );
    Ok(Outcome::Clean)
}
