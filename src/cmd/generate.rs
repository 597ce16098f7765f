//! `agent-gate generate`: the man page and shell completions, made from the same clap
//! definition that parses the command line.

use std::io::Write;

use super::exit::EXIT_CONFIG;
use crate::cli::Generated;

/// The man page or a completion script, made from the same clap definition that parses.
pub fn run(what: Generated, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut command = crate::cli::Cli::command();
    let shell = match what {
        Generated::Man => {
            let mut page = Vec::new();
            if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
                let _ = writeln!(err, "generate: {e}");
                return EXIT_CONFIG;
            }
            let _ = out.write_all(&page);
            return 0;
        }
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "agent-gate", &mut script);
    let _ = out.write_all(&script);
    0
}
