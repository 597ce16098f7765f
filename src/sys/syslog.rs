//! The audit sink: syslog over a unix datagram socket (`/dev/log` by default), facility
//! authpriv; refusals at notice, allows at info. A failed write is an error the caller must
//! treat as "refuse": nothing runs without its record.
//!
//! Every send is bounded (SO_SNDTIMEO, set before connecting, so it bounds a stream
//! socket's connect too): a receiver that stops reading fills its queue, and an unbounded
//! send would hold the gateway, and the command it was about to run, for as long as the
//! receiver sleeps.

use std::io::BufWriter;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

use crate::audit::{AuditRecord, Origin, Severity};
use crate::deploy::request::DeployRequest;
use crate::policy::AuditFormat;

#[derive(Debug, thiserror::Error)]
#[error("audit log {socket}: {message}")]
pub struct AuditError {
    pub socket: String,
    pub message: String,
}

pub struct Syslog {
    logger: Logger<LoggerBackend, Formatter3164>,
    socket: String,
    format: AuditFormat,
    timeout: Duration,
}

/// A unix socket to the receiver, datagram or (where the receiver listens on one) stream,
/// whose sends, and a stream's connect, give up after `timeout`.
fn open(socket: &str, timeout: Duration) -> std::io::Result<LoggerBackend> {
    let datagram = UnixDatagram::unbound()?;
    datagram.set_write_timeout(Some(timeout))?;
    match datagram.connect(socket) {
        Ok(()) => Ok(LoggerBackend::Unix(datagram)),
        Err(e) if e.raw_os_error() == Some(nix::libc::EPROTOTYPE) => {
            use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
            let fd = socket::socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            let limit = nix::sys::time::TimeVal::new(
                i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
                i64::from(timeout.subsec_micros()),
            );
            socket::setsockopt(&fd, sockopt::SendTimeout, &limit)?;
            socket::connect(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &UnixAddr::new(socket)?,
            )?;
            Ok(LoggerBackend::UnixStream(BufWriter::new(UnixStream::from(
                fd,
            ))))
        }
        Err(e) => Err(e),
    }
}

impl Syslog {
    /// Connect with the default bound on each send (the rules' `audit.timeout_ms` default).
    pub fn connect(socket: &str, format: AuditFormat) -> Result<Self, AuditError> {
        Self::connect_within(socket, format, crate::policy::AUDIT_TIMEOUT)
    }

    pub fn connect_within(
        socket: &str,
        format: AuditFormat,
        timeout: Duration,
    ) -> Result<Self, AuditError> {
        let formatter = Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "agent-gate".to_string(),
            pid: std::process::id(),
        };
        let backend = open(socket, timeout).map_err(|e| AuditError {
            socket: socket.to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            logger: Logger::new(backend, formatter),
            socket: socket.to_string(),
            format,
            timeout,
        })
    }

    pub fn write(&mut self, record: &AuditRecord) -> Result<(), AuditError> {
        let line = record.render(self.format);
        let sent = match record.severity {
            Severity::Info => self.logger.info(line),
            Severity::Notice => self.logger.notice(line),
        };
        sent.map_err(|e| {
            let message = match &e {
                syslog::Error::Write(io)
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    format!(
                        "the receiver took no record within {} ms (is the syslog daemon stopped or stuck?)",
                        self.timeout.as_millis()
                    )
                }
                _ => e.to_string(),
            };
            AuditError {
                socket: self.socket.clone(),
                message,
            }
        })
    }

    /// One record of a deploy request's life, stamped now; the error is the message for
    /// whoever acts (the waiting agent, the operator), who must then stop.
    pub fn write_request(
        &mut self,
        origin: &mut Origin,
        event: &'static str,
        request: &DeployRequest,
        extra: &[(&'static str, String)],
    ) -> Result<(), String> {
        origin.time = super::host::now();
        let record = AuditRecord::approval(event, origin, request, extra);
        self.write(&record).map_err(|e| {
            format!(
                "the audit log cannot be written ({e}); nothing about a deploy happens without its record"
            )
        })
    }
}
