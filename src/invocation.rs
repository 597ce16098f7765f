//! The only reader of the process's arguments and of the SSH_* environment.

use std::ffi::OsString;
use std::net::IpAddr;

use clap::Parser;

use crate::cli::Cli;

#[derive(Debug)]
pub struct Invocation {
    pub cli: Cli,
    /// SSH_ORIGINAL_COMMAND, or `None` when sshd set none (an interactive login). Bytes that
    /// are not UTF-8 become U+FFFD, which the tokenizer refuses.
    pub command: Option<String>,
    /// The client address from SSH_CONNECTION.
    pub client: Option<IpAddr>,
}

impl Invocation {
    pub fn from_env() -> Result<Self, clap::Error> {
        Self::from_parts(
            std::env::args_os(),
            std::env::var_os("SSH_ORIGINAL_COMMAND"),
            std::env::var_os("SSH_CONNECTION"),
        )
    }

    pub fn from_parts(
        args: impl IntoIterator<Item = OsString>,
        command: Option<OsString>,
        connection: Option<OsString>,
    ) -> Result<Self, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        let command = command.map(|c| c.to_string_lossy().into_owned());
        let client = connection.and_then(|c| {
            c.to_str()
                .and_then(|s| s.split(' ').next())
                .and_then(|ip| ip.parse().ok())
        });
        Ok(Self {
            cli,
            command,
            client,
        })
    }
}
