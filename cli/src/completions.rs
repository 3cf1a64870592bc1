//! `drover completions`: shell completion scripts, generated from the command definitions.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::{Cli, CliError, Exit};

/// Arguments of `drover completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. Bash:
    /// `drover completions bash > /etc/bash_completion.d/drover`.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> Result<Exit, CliError> {
    clap_complete::generate(args.shell, &mut Cli::command(), "drover", &mut std::io::stdout());
    Ok(Exit::Success)
}
