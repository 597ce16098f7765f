//! What will run: built by the core from the rules (the checkers behind `decide`, and the
//! deploy's root plan), turned into a process only by `sys::exec`.

use std::time::Duration;

/// What every plan starts from, set in the rules' `defaults`.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub timeout: Duration,
    /// PATH of every command.
    pub path: String,
    /// RLIMIT_NOFILE for every command.
    pub open_files: u64,
}

/// An exact program, argv and environment. Fields are private and the constructor is
/// crate-private: outside this crate a plan is only ever read, never made.
/// What the gateway does to a program's output before the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `docker inspect`'s JSON, environment values redacted (`redact::inspect_env`).
    InspectEnv,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlan {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    stdin: bool,
    open_files: u64,
    filter: Option<Filter>,
}

impl ExecPlan {
    /// `argv[0]` is the absolute program path. When `sudo` is given, the plan runs
    /// `sudo -n -- PROGRAM ARGS`: no prompt, and nothing after `--` is read as a sudo flag.
    pub(crate) fn new(
        defaults: &Defaults,
        sudo: Option<&str>,
        program: &str,
        args: impl IntoIterator<Item = String>,
        extra_env: &[(String, String)],
        timeout: Duration,
    ) -> Self {
        let mut argv = Vec::new();
        if let Some(sudo) = sudo {
            argv.extend([sudo.to_string(), "-n".to_string(), "--".to_string()]);
        }
        argv.push(program.to_string());
        argv.extend(args);
        let mut env = vec![
            ("PATH".to_string(), defaults.path.clone()),
            ("HOME".to_string(), "/var/empty".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        for (name, value) in extra_env {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.clone()));
        }
        Self {
            argv,
            env,
            timeout,
            stdin: false,
            open_files: defaults.open_files,
            filter: None,
        }
    }

    /// Pass the program's standard output through `filter` (the gateway reads it whole).
    pub(crate) fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    pub fn filter(&self) -> Option<Filter> {
        self.filter
    }

    /// Pass the agent's stdin through to the program (closed unless the rule says so).
    pub(crate) fn with_stdin(mut self, stdin: bool) -> Self {
        self.stdin = stdin;
        self
    }

    /// The absolute path of the program started.
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    /// The whole argv, program path first.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The complete environment: nothing else is inherited.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Does the program read the agent's stdin? Otherwise it gets /dev/null.
    pub fn stdin(&self) -> bool {
        self.stdin
    }

    /// The limit on open files (RLIMIT_NOFILE) the program starts with.
    pub fn open_files(&self) -> u64 {
        self.open_files
    }
}
