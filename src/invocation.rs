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
    /// SHA256 fingerprint of the public key that authenticated, from the file named by
    /// SSH_USER_AUTH (sshd's `ExposeAuthInfo yes`).
    pub fingerprint: Option<String>,
}

/// sshd's ExposeAuthInfo file is a few lines; anything larger is not one.
const MAX_USER_AUTH_BYTES: u64 = 64 * 1024;

impl Invocation {
    pub fn from_env() -> Result<Self, clap::Error> {
        let mut inv = Self::from_parts(
            std::env::args_os(),
            std::env::var_os("SSH_ORIGINAL_COMMAND"),
            std::env::var_os("SSH_CONNECTION"),
        )?;
        inv.fingerprint = std::env::var_os("SSH_USER_AUTH").and_then(|path| {
            use std::io::Read;
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_USER_AUTH_BYTES).read_to_string(&mut text))
                .ok()?;
            crate::sshkey::authenticated_fingerprint(&text)
        });
        Ok(inv)
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
            fingerprint: None,
        })
    }
}
