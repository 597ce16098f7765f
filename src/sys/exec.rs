//! The one place that starts a process: the plan's absolute program, its exact argv, its
//! built environment (nothing inherited), `/` as working directory, stdin only where the rule
//! says so, core dumps off and open files bounded.
//!
//! The child leads its own process group, and the whole group goes when the command ends:
//! at the rule's timeout, when the gateway is told to stop (SIGHUP, SIGTERM, SIGINT, SIGQUIT:
//! sshd or the operator), and when the client's channel closes (our stdout reports an error:
//! sshd has gone, so nobody reads what the command writes). Ending a group is SIGTERM, a short
//! grace, then SIGKILL; once the leader has exited, anything it left in its group is killed
//! before the leader is reaped, so the group id cannot have been reused.
//!
//! Signals are taken synchronously: they are blocked in this thread and read from a signalfd,
//! together with SIGCHLD, in one poll loop. No handler, no waiter thread, no `unsafe`. The
//! child is started with posix_spawn, which empties its signal mask and resets the signals
//! the gateway handles, so the program starts with default signal handling.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use crate::plan::{ExecPlan, Filter, SessionContainers};

/// Between SIGTERM to the group and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// The signals that mean "stop": sshd's and the operator's.
const STOP_SIGNALS: [Signal; 4] = [
    Signal::SIGHUP,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    /// The gateway received this stop signal; the group was ended.
    Stopped(Signal),
    /// The client's channel closed (sshd went away); the group was ended.
    ClientGone,
    /// The program's output passed `MAX_OUTPUT`; the rest was cut and the group ended.
    OutputCapped,
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub ending: Ending,
    pub duration: Duration,
    /// The program's own status when the group had to be ended: how it took the ending.
    pub child: Option<WaitStatus>,
}

impl Finished {
    /// The gateway's own exit status: the child's, or 128+signal as a shell would report it.
    pub fn exit_code(&self) -> i32 {
        match self.ending {
            Ending::Exited(code) => code,
            Ending::Signalled(sig) => 128 + sig,
            Ending::TimedOut => 124,
            Ending::Stopped(sig) => 128 + sig as i32,
            Ending::ClientGone => 128 + Signal::SIGPIPE as i32,
            Ending::OutputCapped => 128 + Signal::SIGXFSZ as i32,
        }
    }

    /// Did the gateway end the command (timeout, stop signal, client gone, output cap),
    /// rather than the program end by itself?
    pub fn ended_early(&self) -> bool {
        matches!(
            self.ending,
            Ending::TimedOut | Ending::Stopped(_) | Ending::ClientGone | Ending::OutputCapped
        )
    }

    /// One phrase for the finishing audit record.
    pub fn describe(&self) -> String {
        let how = match self.child {
            Some(WaitStatus::Exited(_, code)) => format!(" (it exited {code})"),
            Some(WaitStatus::Signaled(_, sig, _)) => format!(" (it died of signal {})", sig as i32),
            _ => String::new(),
        };
        match &self.ending {
            Ending::Exited(code) => format!("exited {code}"),
            Ending::Signalled(sig) => format!("killed by signal {sig}"),
            Ending::TimedOut => format!("process group ended at the rule's timeout{how}"),
            Ending::Stopped(sig) => {
                format!("process group ended: the gateway received {sig}{how}")
            }
            Ending::ClientGone => {
                format!("process group ended: the client disconnected{how}")
            }
            Ending::OutputCapped => format!(
                "process group ended: its output passed {} MiB and was cut{how}",
                MAX_OUTPUT >> 20
            ),
        }
    }
}

/// The stop signals, taken synchronously by a process that waits on something other than a
/// child (the approval step waiting for a human): blocked, and read from a signalfd.
pub struct Interrupts {
    signals: SignalFd,
}

/// Block the stop signals (and `extra`) in this thread and read them from a signalfd instead.
fn signalfd(extra: &[Signal]) -> std::io::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for sig in STOP_SIGNALS.iter().chain(extra) {
        mask.add(*sig);
    }
    mask.thread_block().map_err(io)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io)
}

impl Interrupts {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            signals: signalfd(&[])?,
        })
    }

    /// Sleep at most `limit`; the stop signal that came meanwhile, if one did.
    pub fn sleep(&mut self, limit: Duration) -> std::io::Result<Option<Signal>> {
        let timeout = PollTimeout::try_from(limit).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io(e)),
        }
        while let Some(info) = self.signals.read_signal().map_err(io)? {
            let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
            if let Ok(sig) = Signal::try_from(signo)
                && STOP_SIGNALS.contains(&sig)
            {
                return Ok(Some(sig));
            }
        }
        Ok(None)
    }
}

fn io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// Core dumps off (they can hold secrets and fill disks); at most `open_files` descriptors.
/// Set on the gateway itself, before the fork: the child inherits them, and sudo passes the
/// invoking user's limits on to its command.
fn limit(open_files: u64) -> std::io::Result<()> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(io)?;
    // A bound on memory: a `--format` the grammar missed, or a program gone wrong, cannot
    // take the host's memory (Go's runtime reserves address space lazily; 8 GiB is ample).
    let (_, hard_as) = getrlimit(Resource::RLIMIT_AS).map_err(io)?;
    let memory = MAX_MEMORY.min(hard_as);
    setrlimit(Resource::RLIMIT_AS, memory, memory).map_err(io)?;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io)?;
    let cap = open_files.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, cap, cap).map_err(io)
}

/// The address space every command may use (RLIMIT_AS).
pub const MAX_MEMORY: u64 = 8 << 30;
/// The most a command's standard output passes to the agent; past it, the output is cut with
/// a line saying so, and the command's group is ended.
pub const MAX_OUTPUT: u64 = 64 << 20;
/// Output read but not yet written to the channel, at most: past it the program waits.
const MAX_PENDING: usize = 1 << 20;

/// Run the plan to completion. Its standard output passes through the gateway to `channel`
/// (bounded by `MAX_OUTPUT`, or whole through the plan's filter); its standard error is the
/// gateway's. `channel` is watched for the client going away.
pub fn run(plan: &ExecPlan, channel: BorrowedFd<'_>) -> std::io::Result<Finished> {
    let started = Instant::now();
    let signals = signalfd(&[Signal::SIGCHLD])?;
    limit(plan.open_files())?;
    // The program writes into a pipe the gateway reads: whole for a filter, else passed on.
    // Only the gateway's end is non-blocking: the program writes as to any pipe, and waits
    // when the gateway has not taken its output yet.
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io)?;
    let flags = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_GETFL).map_err(io)?;
    nix::fcntl::fcntl(
        &read,
        nix::fcntl::FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(io)?;
    let group = spawn(plan, Some(write.as_raw_fd()))?;
    drop(write);
    let mut watch = Watch {
        signals,
        channel,
        group,
        output: Some(Capture {
            fd: read,
            open: true,
            mode: match plan.filter() {
                Some(_) => Mode::Buffer {
                    bytes: Vec::new(),
                    overflow: false,
                },
                None => Mode::Stream {
                    pending: Vec::new(),
                    passed: 0,
                    capped: false,
                },
            },
        }),
    };
    let deadline = started + plan.timeout();
    let ending = loop {
        if exited(group)? {
            break None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Some(Ending::TimedOut);
        }
        match watch.wait(left, true)? {
            Event::Child | Event::Nothing => {}
            Event::Stop(sig) => break Some(Ending::Stopped(sig)),
            Event::ChannelClosed => break Some(Ending::ClientGone),
            Event::Capped => break Some(Ending::OutputCapped),
        }
    };
    let status = match &ending {
        None => {
            // The leader has exited but is not reaped yet: its group id is still ours.
            let _ = killpg(group, Signal::SIGKILL);
            reap(group)?
        }
        Some(_) => watch.end_group()?,
    };
    let ending = ending.unwrap_or(match status {
        WaitStatus::Exited(_, code) => Ending::Exited(code),
        WaitStatus::Signaled(_, sig, _) => Ending::Signalled(sig as i32),
        _ => Ending::Exited(1),
    });
    let child = match ending {
        Ending::Exited(_) | Ending::Signalled(_) => None,
        _ => Some(status),
    };
    if let Some(capture) = watch.output.as_mut() {
        capture.drain(channel);
        if let (Some(filter), Mode::Buffer { bytes, overflow }) = (plan.filter(), &capture.mode) {
            deliver(filter, bytes, *overflow, channel);
        }
    }
    Ok(Finished {
        ending,
        duration: started.elapsed(),
        child,
    })
}

/// Start the plan's program as the leader of a new process group, with `/` as its working
/// directory, the plan's environment and nothing else, stdin from /dev/null unless the rule
/// passes the agent's, no signal blocked and the signals the gateway handles back at their
/// defaults. posix_spawn sets the mask and dispositions in the child; std's `Command` leaves
/// the child the gateway's mask, in which the stop signals are blocked for the signalfd, and
/// a program started that way would never see SIGTERM.
fn spawn(plan: &ExecPlan, stdout: Option<std::os::fd::RawFd>) -> std::io::Result<Pid> {
    let cstr =
        |s: &str| CString::new(s).map_err(|_| std::io::Error::other("a NUL byte in the plan"));
    let argv = plan
        .argv()
        .iter()
        .map(|a| cstr(a))
        .collect::<std::io::Result<Vec<_>>>()?;
    let env = plan
        .env()
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut actions = PosixSpawnFileActions::init().map_err(io)?;
    // Opened close-on-exec; the dup to 0 in the child is not.
    let null = std::fs::File::open("/dev/null")?;
    if !plan.stdin() {
        actions.add_dup2(null.as_raw_fd(), 0).map_err(io)?;
    }
    if let Some(fd) = stdout {
        actions.add_dup2(fd, 1).map_err(io)?;
    }
    let mut attr = PosixSpawnAttr::init().map_err(io)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )
    .map_err(io)?;
    attr.set_pgroup(Pid::from_raw(0)).map_err(io)?;
    attr.set_sigmask(&SigSet::empty()).map_err(io)?;
    let mut defaults = SigSet::empty();
    for sig in STOP_SIGNALS
        .iter()
        .chain(&[Signal::SIGCHLD, Signal::SIGPIPE])
    {
        defaults.add(*sig);
    }
    attr.set_sigdefault(&defaults).map_err(io)?;
    // posix_spawn has no working directory of its own: the gateway's is the child's.
    nix::unistd::chdir("/").map_err(io)?;
    let pid = posix_spawn(plan.program(), &actions, &attr, &argv, &env).map_err(io)?;
    // Never 0 or negative: killpg(0) would signal the gateway's own group.
    if pid.as_raw() <= 0 {
        return Err(std::io::Error::other(
            "the child's pid is not a process group id",
        ));
    }
    Ok(pid)
}

/// Reap the leader, however it ended.
fn reap(child: Pid) -> std::io::Result<WaitStatus> {
    loop {
        match waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => {}
            other => return other.map_err(io),
        }
    }
}

/// Has the child exited? Asks without reaping it (WNOWAIT), so the group id stays reserved.
fn exited(child: Pid) -> std::io::Result<bool> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(child), flags) {
        Ok(WaitStatus::StillAlive) => Ok(false),
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(io(e)),
    }
}

enum Event {
    Nothing,
    Child,
    Stop(Signal),
    ChannelClosed,
    /// The output passed `MAX_OUTPUT`.
    Capped,
}

struct Watch<'a> {
    signals: SignalFd,
    channel: BorrowedFd<'a>,
    group: Pid,
    /// The output the gateway reads for a filter, if the plan has one.
    output: Option<Capture>,
}

/// The most of a filtered program's output that is read; past it, the output is dropped
/// whole (a filter cannot vouch for what it did not see).
const MAX_FILTERED: usize = 16 << 20;

struct Capture {
    fd: std::os::fd::OwnedFd,
    open: bool,
    mode: Mode,
}

enum Mode {
    /// Read whole, for a filter (at most `MAX_FILTERED`).
    Buffer { bytes: Vec<u8>, overflow: bool },
    /// Passed on to the channel as it comes: `pending` is read and not yet written, `passed`
    /// counts all that was read, up to `MAX_OUTPUT`.
    Stream {
        pending: Vec<u8>,
        passed: u64,
        capped: bool,
    },
}

impl Capture {
    /// Room to read into now.
    fn wants_input(&self) -> bool {
        self.open
            && match &self.mode {
                Mode::Buffer { .. } => true,
                Mode::Stream { pending, .. } => pending.len() < MAX_PENDING,
            }
    }

    fn has_pending(&self) -> bool {
        matches!(&self.mode, Mode::Stream { pending, .. } if !pending.is_empty())
    }

    fn capped(&self) -> bool {
        matches!(self.mode, Mode::Stream { capped: true, .. })
    }

    /// Read what is there now (the pipe does not block); false at its end or when full.
    fn read_now(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        while self.wants_input() {
            match nix::unistd::read(&self.fd, &mut chunk) {
                Ok(0) => {
                    self.open = false;
                    return false;
                }
                Ok(n) => self.take(chunk.get(..n).unwrap_or_default()),
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    self.open = false;
                    return false;
                }
            }
        }
        false
    }

    fn take(&mut self, data: &[u8]) {
        match &mut self.mode {
            Mode::Buffer { bytes, overflow } => {
                if bytes.len() + data.len() > MAX_FILTERED {
                    *overflow = true;
                } else {
                    bytes.extend_from_slice(data);
                }
            }
            Mode::Stream {
                pending,
                passed,
                capped,
            } => {
                let room = MAX_OUTPUT.saturating_sub(*passed);
                let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
                if len <= room {
                    pending.extend_from_slice(data);
                    *passed += len;
                } else {
                    let keep = usize::try_from(room).unwrap_or(0);
                    pending.extend_from_slice(data.get(..keep).unwrap_or_default());
                    *passed = MAX_OUTPUT;
                    pending.extend_from_slice(
                        format!(
                            "\nagent-gate: output truncated: more than {} MiB; the command was ended\n",
                            MAX_OUTPUT >> 20
                        )
                        .as_bytes(),
                    );
                    *capped = true;
                    // Nothing more is read; the caller ends the group.
                    self.open = false;
                }
            }
        }
    }

    /// Write a piece of what is pending to the channel, which poll said can take it; false
    /// when the channel is gone.
    fn flush(&mut self, channel: BorrowedFd<'_>) -> bool {
        let Mode::Stream { pending, .. } = &mut self.mode else {
            return true;
        };
        match write_piece(channel, pending) {
            Some(n) => {
                pending.drain(..n.min(pending.len()));
                true
            }
            None => false,
        }
    }

    /// After the program ended: what is left in the pipe, and on to the channel, waiting at
    /// most a few seconds for anything its group left behind to close the pipe, or for a
    /// slow client to take the rest.
    fn drain(&mut self, channel: BorrowedFd<'_>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.open {
                self.read_now();
            }
            if !self.open && !self.has_pending() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
            let mut fds = vec![PollFd::new(
                channel,
                if self.has_pending() {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::empty()
                },
            )];
            if self.wants_input() {
                fds.push(PollFd::new(self.fd.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, timeout);
            let writable = fds.first().and_then(PollFd::revents);
            drop(fds);
            match writable {
                Some(r) if r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) => return,
                Some(r) if r.contains(PollFlags::POLLOUT) && !self.flush(channel) => return,
                _ => {}
            }
        }
    }
}

/// Writes to the channel go in pieces no larger than this, and only when poll says the
/// channel takes them: a pipe that polls writable takes a write of up to PIPE_BUF bytes at
/// once, so the gateway never blocks on a slow client.
const PIECE: usize = 4096;

/// Write one piece of `data`; how much was written, or `None` when the channel is gone.
fn write_piece(channel: BorrowedFd<'_>, data: &[u8]) -> Option<usize> {
    let piece = data.get(..data.len().min(PIECE)).unwrap_or_default();
    if piece.is_empty() {
        return Some(0);
    }
    loop {
        match nix::unistd::write(channel, piece) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Some(0),
            Err(_) => return None,
        }
    }
}

/// Write the filtered output to the agent's channel, or say why there is none.
fn deliver(filter: Filter, bytes: &[u8], overflow: bool, channel: BorrowedFd<'_>) {
    let text = if overflow {
        Err(format!(
            "the output was larger than {} MiB, so it could not be filtered and is not shown",
            MAX_FILTERED >> 20
        ))
    } else {
        match filter {
            Filter::InspectEnv => crate::redact::inspect_env(bytes),
        }
    };
    let out = match text {
        Ok(out) => out,
        // Nothing printed (docker failed; its error went to stderr): nothing to show.
        Err(_) if bytes.is_empty() && !overflow => return,
        Err(why) => format!("agent-gate: {why}\n").into_bytes(),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut rest: &[u8] = &out;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let mut fds = [PollFd::new(channel, PollFlags::POLLOUT)];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO),
        );
        match fds.first().and_then(PollFd::revents) {
            Some(r) if r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) => return,
            Some(r) if r.contains(PollFlags::POLLOUT) => match write_piece(channel, rest) {
                Some(n) => rest = rest.get(n..).unwrap_or_default(),
                None => return,
            },
            _ => {}
        }
    }
}

impl Watch<'_> {
    /// Wait at most `limit` for a signal or, when `channel` is set, for the channel to close.
    fn wait(&mut self, limit: Duration, channel: bool) -> std::io::Result<Event> {
        let timeout =
            PollTimeout::try_from(limit.min(Duration::from_secs(60))).unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        let pending = self.output.as_ref().is_some_and(Capture::has_pending);
        if channel {
            // Without POLLOUT asked for, poll still reports POLLERR (a pipe whose reader is
            // gone) and POLLHUP (a socket or terminal hung up).
            let events = if pending {
                PollFlags::POLLOUT
            } else {
                PollFlags::empty()
            };
            fds.push(PollFd::new(self.channel, events));
        }
        let reading = self
            .output
            .as_ref()
            .filter(|c| c.wants_input())
            .map(|c| c.fd.as_fd());
        if let Some(fd) = reading {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io(e)),
        }
        let gone = channel
            && fds.get(1).is_some_and(|fd| {
                fd.revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
            });
        let writable = channel
            && fds
                .get(1)
                .is_some_and(|fd| fd.revents().is_some_and(|r| r.contains(PollFlags::POLLOUT)));
        drop(fds);
        if let Some(capture) = self.output.as_mut() {
            if capture.open {
                capture.read_now();
            }
            if writable && !capture.flush(self.channel) {
                return Ok(Event::ChannelClosed);
            }
            if capture.capped() {
                return Ok(Event::Capped);
            }
        }
        let mut event = Event::Nothing;
        while let Some(info) = self.signals.read_signal().map_err(io)? {
            let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
            match Signal::try_from(signo) {
                Ok(Signal::SIGCHLD) => event = Event::Child,
                Ok(sig) if STOP_SIGNALS.contains(&sig) => return Ok(Event::Stop(sig)),
                _ => {}
            }
        }
        if gone {
            return Ok(Event::ChannelClosed);
        }
        Ok(event)
    }

    /// SIGTERM to the group, up to `GRACE` for the leader to exit, then SIGKILL to whatever
    /// is left; the leader is reaped last.
    fn end_group(&mut self) -> std::io::Result<WaitStatus> {
        let _ = killpg(self.group, Signal::SIGTERM);
        let deadline = Instant::now() + GRACE;
        loop {
            if exited(self.group)? {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Further stop signals change nothing now; the channel is not watched.
            let _ = self.wait(left, false)?;
        }
        let _ = killpg(self.group, Signal::SIGKILL);
        reap(self.group)
    }
}

/// A fed helper's stderr kept for the audit record: its first lines, this many at most.
const FEED_STDERR_LINES: usize = 5;
const FEED_STDERR_BYTES: usize = 1024;

/// Why a fed helper failed, and the first lines it wrote to stderr (bounded, unescaped: the
/// audit record escapes them).
#[derive(Debug)]
pub struct FeedError {
    pub reason: String,
    pub stderr: String,
}

/// Run a helper the rules name (the deploy's notify program) with `input` on its stdin and a
/// built environment, in its own process group, for at most `timeout`; its stdout is not
/// read, its stderr is drained and its first lines kept for the error.
pub fn feed(
    program: &str,
    args: &[String],
    path: &str,
    input: &str,
    timeout: Duration,
) -> Result<(), FeedError> {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let failed = |reason: String, stderr: String| FeedError { reason, stderr };
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("{program}: {e}"), String::new()))?;
    // Read to the end (a helper blocked on a full pipe would only time out), keep the start.
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (done, finished) = std::sync::mpsc::channel();
    if let Some(mut pipe) = child.stderr.take() {
        let kept = Arc::clone(&kept);
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = pipe.read(&mut buf) {
                let Some(read) = buf.get(..n).filter(|r| !r.is_empty()) else {
                    break;
                };
                if let Ok(mut kept) = kept.lock() {
                    let room = FEED_STDERR_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(read.get(..room.min(n)).unwrap_or_default());
                }
            }
            let _ = done.send(());
        });
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    // What it said, once it is done (bounded: a leftover process may hold the pipe open).
    let said = || {
        let _ = finished.recv_timeout(Duration::from_millis(500));
        let kept = kept.lock().map(|k| k.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&kept).into_owned();
        text.lines()
            .take(FEED_STDERR_LINES)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(failed(format!("{program} ended with {status}"), said()));
            }
            Ok(None) if started.elapsed() >= timeout => {
                if let Ok(pid) = i32::try_from(child.id())
                    && pid > 0
                {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(
                    format!("{program} did not finish within {}s", timeout.as_secs()),
                    said(),
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(failed(format!("{program}: {e}"), said())),
        }
    }
}

/// Each docker call of a session's cleanup gets at most this long.
pub const CLEANUP_CALL: Duration = Duration::from_secs(10);
/// How long `docker ps` may go on listing a container after `docker rm -f`.
const CLEANUP_SETTLE: Duration = Duration::from_secs(3);
/// The most of a cleanup call's output that is read: thousands of container IDs.
const CLEANUP_OUTPUT: u64 = 64 * 1024;

/// What became of the containers a session started in the foreground, once the gateway had
/// ended the command early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// None was there any more (docker had not created one, or `--rm` had taken it).
    NoneLeft,
    /// Stopped and removed: their IDs.
    Removed(Vec<String>),
    /// Why some may still be there.
    Failed(CleanupError),
}

/// Why the containers of a session may still be there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CleanupError {
    #[error("`docker {verb}` failed: {why}")]
    Docker { verb: &'static str, why: String },
    #[error("`docker ps` printed `{0}`, which is not a container ID")]
    NotAnId(String),
    #[error("{left} still there ({why}); remove them with `docker rm -f {left}`")]
    StillThere { left: String, why: String },
}

impl Removal {
    /// The phrase the finishing record appends to how the command ended.
    pub fn describe(&self) -> String {
        match self {
            Removal::NoneLeft => "; no container it started was left".to_string(),
            Removal::Removed(ids) => format!("; removed containers {}", ids.join(" ")),
            Removal::Failed(why) => format!("; could not remove containers: {why}"),
        }
    }
}

/// Stop and remove the containers a session started in the foreground: `docker ps -aq` by
/// the gateway's label, `docker rm -f` of what it lists, through the docker program, sudo
/// prefix and environment the plan ran with, each call bounded by `CLEANUP_CALL`. What is
/// listed afterwards decides: a `--rm` container may be on its way out already, and `rm -f`
/// then fails on it although nothing is left.
pub fn remove_containers(containers: &SessionContainers) -> Removal {
    let found = match list_containers(containers) {
        Ok(ids) if ids.is_empty() => return Removal::NoneLeft,
        Ok(ids) => ids,
        Err(e) => return Removal::Failed(e),
    };
    let removed = docker_call(containers, "rm", &containers.remove_argv(&found));
    // The engine may take a moment to let go of a container that was being removed.
    let deadline = Instant::now() + CLEANUP_SETTLE;
    let (left, unsure) = loop {
        match list_containers(containers) {
            Ok(left) if left.is_empty() => return Removal::Removed(found),
            Ok(left) if Instant::now() >= deadline => break (left, None),
            Ok(_) => std::thread::sleep(Duration::from_millis(250)),
            // Whether rm -f took them cannot be told: name all it was given.
            Err(e) => break (found, Some(e)),
        }
    };
    let why = match (removed, unsure) {
        (Err(e), _) | (Ok(_), Some(e)) => e.to_string(),
        (Ok(_), None) => "docker rm -f did not remove them".to_string(),
    };
    Removal::Failed(CleanupError::StillThere {
        left: left.join(" "),
        why,
    })
}

/// The IDs `docker ps -aq` lists by the session's label; anything else it prints is an error.
fn list_containers(containers: &SessionContainers) -> Result<Vec<String>, CleanupError> {
    let out = docker_call(containers, "ps", &containers.list_argv())?;
    let ids: Vec<String> = out.split_whitespace().map(String::from).collect();
    let id = |w: &String| (12..=64).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_hexdigit());
    match ids.iter().find(|w| !id(w)) {
        Some(odd) => Err(CleanupError::NotAnId(odd.clone())),
        None => Ok(ids),
    }
}

/// One bounded docker call of the cleanup (`verb` names it); its stdout, or why it failed.
fn docker_call(
    containers: &SessionContainers,
    verb: &'static str,
    argv: &[String],
) -> Result<String, CleanupError> {
    let failed = |why: String| CleanupError::Docker { verb, why };
    let Some((program, args)) = argv.split_first() else {
        return Err(failed("the plan names no docker program".to_string()));
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = capture(
        program,
        &args,
        containers.env(),
        CLEANUP_CALL,
        CLEANUP_OUTPUT,
    )
    .map_err(failed)?;
    if out.success {
        Ok(out.stdout)
    } else {
        let first = out.stderr.lines().next().unwrap_or("no message").trim();
        Err(failed(first.to_string()))
    }
}

/// What a short query printed, and how it ended.
#[derive(Debug)]
pub struct Captured {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run a query of the gateway's own (the docker CLI asked about an image): the absolute
/// program, its arguments and a built environment, `/` as working directory, no stdin, in
/// its own process group, ended at `timeout`; at most `max` bytes of each output are kept.
pub fn capture(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
    max: u64,
) -> Result<Captured, String> {
    use std::io::Read;
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(max).read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                if let Ok(pid) = i32::try_from(child.id())
                    && pid > 0
                {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = child.wait();
                break Err(format!(
                    "{program} gave no answer within {} ms",
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(format!("{program}: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    status.map(|s| Captured {
        success: s.success(),
        stdout,
        stderr,
    })
}

/// What one call's gateway printed, and how it ended.
#[derive(Debug, Default)]
pub struct CallOutput {
    /// Its exit code; `None` when it died of a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output past `max` bytes was dropped.
    pub truncated: bool,
    /// The call was cancelled and the gateway told to stop (SIGTERM: it ends its command's
    /// group and writes the finish record).
    pub cancelled: bool,
}

/// Run the gateway for one MCP call: `program` (this executable) with `args` and only `env`,
/// no stdin, both outputs read (at most `max` bytes each kept); when `cancel` completes
/// first, SIGTERM, and SIGKILL if it has not ended after the time its own ending may take
/// (`GRACE`, the container cleanup's two calls and the finish record).
pub async fn call_gateway(
    program: &std::path::Path,
    args: &[std::ffi::OsString],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    max: u64,
    cancel: impl std::future::Future<Output = ()>,
) -> std::io::Result<CallOutput> {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(Pid::from_raw);
    async fn bounded(pipe: Option<impl tokio::io::AsyncRead + Unpin>, max: u64) -> (Vec<u8>, bool) {
        let Some(mut pipe) = pipe else {
            return (Vec::new(), false);
        };
        let mut kept = Vec::new();
        let _ = (&mut pipe).take(max).read_to_end(&mut kept).await;
        // Whatever comes after is read and dropped, so the writer never waits on us.
        let rest = tokio::io::copy(&mut pipe, &mut tokio::io::sink())
            .await
            .unwrap_or(0);
        (kept, rest > 0)
    }
    let stdout = bounded(child.stdout.take(), max);
    let stderr = bounded(child.stderr.take(), max);
    let ended = async {
        tokio::select! {
            status = child.wait() => (status, false),
            () = cancel => {
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                }
                // Room for the call's own ending: its group's grace, removing the containers
                // it started (two bounded docker calls and the engine's own --rm), and its
                // finish record; SIGKILL mid-cleanup would leave them running.
                let limit = GRACE + 2 * CLEANUP_CALL + Duration::from_secs(5);
                match tokio::time::timeout(limit, child.wait()).await {
                    Ok(status) => (status, true),
                    Err(_) => {
                        let _ = child.start_kill();
                        (child.wait().await, true)
                    }
                }
            }
        }
    };
    let ((stdout, cut_out), (stderr, cut_err), (status, cancelled)) =
        tokio::join!(stdout, stderr, ended);
    Ok(CallOutput {
        code: status?.code(),
        stdout,
        stderr,
        truncated: cut_out || cut_err,
        cancelled,
    })
}
