//! Thin: invocation -> app -> exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = agent_gate::app::main();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
