//! `kubectl-ippool`: parse the command line, run the subcommand, map the outcome to an exit code
//! (0 success, 1 findings with errors, 2 usage or I/O error).

use std::process::ExitCode;

use clap::Parser;
use kubectl_ippool::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match kubectl_ippool::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
