//! Thin: the command layer runs the invocation; its code is the exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = agent_gate::cmd::main();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
