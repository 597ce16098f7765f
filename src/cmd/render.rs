//! `agent-gate render`: the installation pieces (authorized_keys lines, the sshd Match block
//! or sshd's global limits, the sudoers lines) from the rules, with this host's paths.

use std::io::Write;
use std::path::Path;

use super::exit::EXIT_CONFIG;
use super::load_for_operator;
use crate::cli::{Piece, Render};
use crate::render::{self, Install};

pub fn run(args: &Render, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.global && args.piece != Piece::Sshd {
        let _ = writeln!(
            err,
            "render: --global is sshd's global limits: agent-gate render sshd --global --rules FILE"
        );
        return EXIT_CONFIG;
    }
    let Some(policy) = load_for_operator(&args.rules, err) else {
        return EXIT_CONFIG;
    };
    let install = match install(
        &args.rules,
        args.gate.as_deref(),
        args.installed_rules.as_deref(),
        &args.user,
    ) {
        Ok(install) => install,
        Err(e) => {
            let _ = writeln!(err, "render: {e}");
            return EXIT_CONFIG;
        }
    };
    let text = match args.piece {
        Piece::AuthorizedKeys => render::authorized_keys(&policy, &install),
        Piece::Sshd if args.global => Ok(render::sshd_globals(&policy, args.sessions)),
        Piece::Sshd => render::sshd(&policy, &install, args.force_command, args.sessions),
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

/// This host's paths as the rendered pieces name them: the gateway (default: this
/// executable) and the rules file (default: `rules`, made absolute).
pub(super) fn install(
    rules: &Path,
    gate: Option<&str>,
    installed_rules: Option<&str>,
    user: &str,
) -> Result<Install, String> {
    let absolute =
        |path: &Path| std::path::absolute(path).map(|p| p.to_string_lossy().into_owned());
    let gate = match gate {
        Some(gate) => gate.to_string(),
        None => std::env::current_exe()
            .and_then(|p| absolute(&p))
            .map_err(|e| e.to_string())?,
    };
    let rules = match installed_rules {
        Some(rules) => rules.to_string(),
        None => absolute(rules).map_err(|e| e.to_string())?,
    };
    Ok(Install {
        gate,
        rules,
        user: user.to_string(),
    })
}
