//! Documentation generated from the command line's own definition: shell completions
//! (clap_complete) and the man page (clap_mangen), so neither can drift from the flags.

use anyhow::Result;
use clap::CommandFactory;

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "extbus", &mut std::io::stdout());
    Ok(())
}

pub fn man() -> Result<()> {
    let cmd = super::Cli::command();
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
    Ok(())
}
