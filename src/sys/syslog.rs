//! The audit sink: syslog over a unix datagram socket (`/dev/log` by default), facility
//! authpriv; refusals at notice, allows at info. A failed write is an error the caller must
//! treat as "refuse": nothing runs without its record.

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
}

impl Syslog {
    pub fn connect(socket: &str, format: AuditFormat) -> Result<Self, AuditError> {
        let formatter = Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "agent-gate".to_string(),
            pid: std::process::id(),
        };
        let logger = syslog::unix_custom(formatter, socket).map_err(|e| AuditError {
            socket: socket.to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            logger,
            socket: socket.to_string(),
            format,
        })
    }

    pub fn write(&mut self, record: &AuditRecord) -> Result<(), AuditError> {
        let line = record.render(self.format);
        let sent = match record.severity {
            Severity::Info => self.logger.info(line),
            Severity::Notice => self.logger.notice(line),
        };
        sent.map_err(|e| AuditError {
            socket: self.socket.clone(),
            message: e.to_string(),
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
