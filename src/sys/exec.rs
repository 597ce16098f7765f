//! The one place that starts a process: the plan's absolute program, its exact argv, its
//! built environment (nothing inherited), `/` as working directory, no stdin, a timeout.

use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;

use crate::plan::ExecPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signalled(i32),
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
pub struct Finished {
    pub ending: Ending,
    pub duration: Duration,
}

impl Finished {
    /// The gateway's own exit status: the child's, or 128+signal as a shell would report it.
    pub fn exit_code(&self) -> i32 {
        match self.ending {
            Ending::Exited(code) => code,
            Ending::Signalled(sig) => 128 + sig,
            Ending::TimedOut => 124,
        }
    }

    pub fn describe(&self) -> String {
        match self.ending {
            Ending::Exited(code) => format!("exited {code}"),
            Ending::Signalled(sig) => format!("killed by signal {sig}"),
            Ending::TimedOut => "killed after the rule's timeout".to_string(),
        }
    }
}

/// Run the plan to completion. Its stdout and stderr are the gateway's (the SSH channel).
pub fn run(plan: &ExecPlan) -> std::io::Result<Finished> {
    let started = Instant::now();
    let mut command = Command::new(plan.program());
    command
        .args(plan.argv().get(1..).unwrap_or_default())
        .env_clear()
        .envs(plan.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .stdin(Stdio::null());
    let mut child = command.spawn()?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let (tx, rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(plan.timeout()) {
        Ok(status) => status?,
        Err(_) => {
            if pid > 0 {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = rx.recv();
            return Ok(Finished {
                ending: Ending::TimedOut,
                duration: started.elapsed(),
            });
        }
    };
    let ending = match (status.code(), status.signal()) {
        (Some(code), _) => Ending::Exited(code),
        (None, Some(sig)) => Ending::Signalled(sig),
        (None, None) => Ending::Exited(1),
    };
    Ok(Finished {
        ending,
        duration: started.elapsed(),
    })
}
