//! `agent-gate render`: the installation pieces (authorized_keys lines, the sshd Match block,
//! the sudoers lines) from the rules, with this host's paths.

use std::io::Write;
use std::path::Path;

use super::exit::EXIT_CONFIG;
use super::load_for_operator;
use crate::cli::{Piece, Render};
use crate::render::{self, Install};

pub fn run(args: &Render, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(policy) = load_for_operator(&args.rules, err) else {
        return EXIT_CONFIG;
    };
    let absolute =
        |path: &Path| std::path::absolute(path).map(|p| p.to_string_lossy().into_owned());
    let gate = match &args.gate {
        Some(gate) => Ok(gate.clone()),
        None => std::env::current_exe().and_then(|p| absolute(&p)),
    };
    let rules = match &args.installed_rules {
        Some(rules) => Ok(rules.clone()),
        None => absolute(&args.rules),
    };
    let (gate, rules) = match (gate, rules) {
        (Ok(gate), Ok(rules)) => (gate, rules),
        (Err(e), _) | (_, Err(e)) => {
            let _ = writeln!(err, "render: {e}");
            return EXIT_CONFIG;
        }
    };
    let install = Install {
        gate,
        rules,
        user: args.user.clone(),
    };
    let text = match args.piece {
        Piece::AuthorizedKeys => render::authorized_keys(&policy, &install),
        Piece::Sshd => render::sshd(&policy, &install, args.force_command),
        Piece::Sudoers => render::sudoers(&policy, &install),
    };
    match text {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
            0
        }
        Err(e) => {
            let _ = writeln!(err, "render: {e}");
            EXIT_CONFIG
        }
    }
}
