//! The SSH command `mcp`: an MCP session (JSON-RPC over stdin/stdout, the official Rust SDK)
//! for the key the gateway identified. There is no second policy path: `run` starts this
//! gateway again, in forced mode, for each call (the rules as they are now, tokenize, decide,
//! audit, run, audit), marked with the session and the call; `explain` and `help` load the
//! rules and decide in this process, running nothing. Calls are served concurrently; a
//! cancelled call's gateway is told to stop (it ends its command's group and records the
//! finish), and the client going away or the session's time running out stops them all.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{
    ErrorData, RoleServer, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::exit::{EXIT_ASK, EXIT_CONFIG, EXIT_REFUSED, EXIT_SYNTAX};
use crate::decide::Request;
use crate::invocation::CallTemplate;
use crate::sys::{exec, load};

/// The longest JSON-RPC message read; a longer line is dropped and the session goes on.
const MAX_MESSAGE: usize = 1 << 20;
/// What one call passes back of each output stream, at most.
const MAX_CALL_OUTPUT: u64 = 256 * 1024;

/// Who the session is for, as the gateway established it when the session began.
#[derive(Debug, Clone)]
pub struct Caller {
    pub label: String,
    pub key: Option<String>,
    pub by_key: bool,
    pub client: Option<std::net::IpAddr>,
    pub fingerprint: Option<String>,
    /// How many of the session's calls run at once (the label's `max_sessions`); more wait.
    pub max_calls: u32,
}

#[derive(Clone)]
struct Gateway {
    exe: PathBuf,
    rules: PathBuf,
    template: CallTemplate,
    caller: Caller,
    session: String,
    calls: Arc<AtomicU64>,
    /// Told when the session ends: every running call's gateway is stopped.
    ending: tokio_util_like::Ending,
    last_call: Arc<std::sync::Mutex<Instant>>,
    /// One permit per call running: a session runs no more calls at once than its label may
    /// have sessions, or it would be a way around `max_sessions`.
    running: Arc<tokio::sync::Semaphore>,
}

/// A `notify` that stays set once set, so a call that starts after the end still sees it.
mod tokio_util_like {
    use std::sync::Arc;
    use tokio::sync::watch;

    #[derive(Clone)]
    pub struct Ending(Arc<watch::Sender<bool>>);

    impl Ending {
        pub fn new() -> Self {
            Self(Arc::new(watch::channel(false).0))
        }

        pub fn end(&self) {
            self.0.send_replace(true);
        }

        pub async fn wait(&self) {
            let mut rx = self.0.subscribe();
            let _ = rx.wait_for(|ended| *ended).await;
        }
    }
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct CommandArgs {
    /// One command, exactly as it would be sent over SSH (`docker ps -a`,
    /// `sudo journalctl -k -n 50`): split without a shell, no pipes or `;`.
    pub command: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct StatusArgs {
    /// The deploy request's id, as `run` reported it (8 hex digits).
    pub id: String,
}

/// The id in what the deploy step told the agent (`deploy request 0a1b2c3d filed ...`).
fn request_id(said: &str) -> Option<&str> {
    said.match_indices("deploy request ")
        .find_map(|(at, found)| {
            let id = said.get(at + found.len()..at + found.len() + 8)?;
            crate::deploy::request::valid_id(id).then_some(id)
        })
}

fn text_result(text: String, structured: serde_json::Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

#[tool_router]
impl Gateway {
    fn touch(&self) {
        if let Ok(mut last) = self.last_call.lock() {
            *last = Instant::now();
        }
    }

    fn request<'a>(&'a self, raw: &'a str) -> Request<'a> {
        Request {
            raw,
            key: self.caller.key.as_deref(),
            by_key: self.caller.by_key,
            client: self.caller.client,
            fingerprint: self.caller.fingerprint.as_deref(),
        }
    }

    #[tool(
        description = "Run one command on the host, decided by the host's rules exactly as over plain SSH: docker commands, read-only diagnostics through sudo, deploys (which a human must approve). The result carries the decision, the exit status, stdout and stderr. A refusal is an ordinary result that says why and what is allowed instead; call `help` for what this key may run."
    )]
    async fn run(
        &self,
        Parameters(CommandArgs { command }): Parameters<CommandArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.touch();
        let waited = tokio::select! {
            permit = self.running.clone().acquire_owned() => permit.ok(),
            () = context.ct.cancelled() => None,
            () = self.ending.wait() => None,
        };
        let Some(_permit) = waited else {
            return Ok(text_result(
                "decision: cancelled; it was waiting for one of the session's running calls to end"
                    .to_string(),
                serde_json::json!({"decision": "cancelled", "ran": false}),
            ));
        };
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let (args, env): (Vec<OsString>, Vec<(OsString, OsString)>) =
            self.template.argv(&command, &self.session, call);
        let ending = self.ending.clone();
        let cancel = async move {
            tokio::select! {
                () = context.ct.cancelled() => {}
                () = ending.wait() => {}
            }
        };
        let out = exec::call_gateway(&self.exe, &args, &env, MAX_CALL_OUTPUT, cancel)
            .await
            .map_err(|e| {
                ErrorData::internal_error(format!("the gateway could not be started: {e}"), None)
            })?;
        self.touch();
        let decision = match out.code {
            _ if out.cancelled => "cancelled",
            Some(EXIT_REFUSED) | Some(EXIT_SYNTAX) => "refuse",
            Some(EXIT_ASK) => "ask",
            Some(EXIT_CONFIG) => "refuse",
            _ => "allow",
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let status = match out.code {
            Some(code) => format!("exit status {code}"),
            None => "ended by a signal".to_string(),
        };
        let mut text = format!("decision: {decision}; {status}");
        if out.cancelled {
            text.push_str(" (cancelled: the command's process group was ended)");
        }
        if !stdout.is_empty() {
            text.push_str(&format!("\n--- stdout ---\n{stdout}"));
        }
        if !stderr.is_empty() {
            text.push_str(&format!("\n--- stderr ---\n{stderr}"));
        }
        if out.truncated {
            text.push_str(&format!(
                "\n(output truncated: each stream is passed back up to {} KiB)",
                MAX_CALL_OUTPUT / 1024
            ));
        }
        let request = request_id(&stderr).map(String::from);
        if let Some(id) = &request {
            text.push_str(&format!(
                "\nA human must approve deploy request {id}. Ask `deploy_status` with id {id}; once it is approved, call `run` with the same command again and it runs, once."
            ));
        }
        let structured = serde_json::json!({
            "request": request,
            "decision": decision,
            "exit_code": out.code,
            "stdout": stdout,
            "stderr": stderr,
            "truncated": out.truncated,
            "cancelled": out.cancelled,
            "session": self.session,
            "call": call,
        });
        Ok(text_result(text, structured))
    }

    #[tool(
        description = "The host's decision on a command, and the exact argv it would run, without running anything.",
        annotations(read_only_hint = true)
    )]
    async fn explain(
        &self,
        Parameters(CommandArgs { command }): Parameters<CommandArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.touch();
        let this = self.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let policy = load::policy(&this.rules, true)?;
            let (decision, facts) =
                super::decide_with_engine(&policy, &this.request(&command), false);
            Ok::<_, String>(super::explain::to_json(&decision, &facts))
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match answer {
            Ok(json) => Ok(text_result(json.to_string(), json)),
            Err(e) => Ok(text_result(
                format!("the host's rules cannot be loaded: {e}; everything is refused"),
                serde_json::json!({"decision": "refuse", "reason": e}),
            )),
        }
    }

    #[tool(
        description = "The state of a deploy request this key filed: pending, approved, denied (with the reason), expired, executed or finished (with the status).",
        annotations(read_only_hint = true)
    )]
    async fn deploy_status(
        &self,
        Parameters(StatusArgs { id }): Parameters<StatusArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.touch();
        if !crate::deploy::request::valid_id(&id) {
            return Ok(text_result(
                format!("`{id}` is not a request id: it is 8 hex digits, as `run` reported it"),
                serde_json::json!({"error": "not a request id"}),
            ));
        }
        let this = self.clone();
        let asked = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, String> {
            let policy = load::policy(&this.rules, true)?;
            let sudo = policy
                .sudo
                .clone()
                .ok_or("sudo is not configured on this host, so deploys are not either")?;
            let rules = std::path::absolute(&this.rules).map_err(|e| e.to_string())?;
            let gate = this.exe.to_string_lossy().into_owned();
            let rules = rules.to_string_lossy().into_owned();
            let args = [
                "-n",
                "--",
                &gate,
                "deploy-status",
                "--rules",
                &rules,
                "--key",
                &this.caller.label,
                "--id",
                &id,
            ];
            let env = [
                ("PATH".to_string(), policy.defaults.path.clone()),
                ("LANG".to_string(), "C.UTF-8".to_string()),
            ];
            let out = exec::capture(&sudo, &args, &env, Duration::from_secs(30), 64 * 1024)?;
            if out.success {
                serde_json::from_str(out.stdout.trim()).map_err(|e| e.to_string())
            } else {
                Err(out.stderr.trim().to_string())
            }
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match asked {
            Ok(state) => Ok(text_result(state.to_string(), state)),
            Err(why) => Ok(text_result(
                format!("the request's state cannot be read: {why}"),
                serde_json::json!({"error": why}),
            )),
        }
    }

    #[tool(
        description = "What this key may run on the host: every allowed command form, its options and limits.",
        annotations(read_only_hint = true)
    )]
    async fn help(&self) -> Result<CallToolResult, ErrorData> {
        self.touch();
        let rules = self.rules.clone();
        let label = self.caller.label.clone();
        let listed = tokio::task::spawn_blocking(move || {
            load::policy(&rules, true).map(|policy| {
                let text = crate::list::render(&policy, &label);
                let rules: Vec<String> = policy
                    .keys
                    .get(&label)
                    .map(|k| k.may.iter().cloned().collect())
                    .unwrap_or_default();
                (text, rules)
            })
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match listed {
            Ok((text, rules)) => Ok(text_result(
                text.clone(),
                serde_json::json!({"key": self.caller.label, "rules": rules, "text": text}),
            )),
            Err(e) => Ok(text_result(
                format!("the host's rules cannot be loaded: {e}; everything is refused"),
                serde_json::json!({"key": self.caller.label, "rules": [], "error": e}),
            )),
        }
    }
}

#[tool_handler]
impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agent-gate", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "agent-gate: a gateway to one host, for key `{}`. Call `run` with one command per call, exactly as over SSH (no shell: no pipes, `;`, `&&` or redirections); `explain` shows the decision without running; `help` lists what this key may run. Calls are served concurrently. Deploys (`nh os switch`) need a human's approval: `run` files the request and returns its id at once; `deploy_status` tells its state; `run` the same command again once it is approved.",
                self.caller.label
            ))
    }
}

/// The session's reader and writer: one JSON-RPC message a line, read by the SDK's transport
/// with lines held to `MAX_MESSAGE` bytes, so a client that never sends a newline cannot make
/// the session buffer without end; a longer line is dropped and the session goes on.
pub fn transport<R, W>(read: R, write: W) -> AsyncRwTransport<RoleServer, R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    AsyncRwTransport::new(read, write).with_max_line_length(MAX_MESSAGE)
}

/// Serve the session on stdin/stdout until the client goes away or a limit is reached; how
/// it ended, for the session's last record.
pub fn serve(
    template: CallTemplate,
    rules: PathBuf,
    caller: Caller,
    session: String,
    limits: crate::policy::McpLimits,
) -> String {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return format!("not started: this executable cannot be found ({e})"),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return format!("not started: {e}"),
    };
    let max_calls = caller.max_calls;
    let gateway = Gateway {
        exe,
        rules,
        template,
        caller,
        session,
        calls: Arc::new(AtomicU64::new(0)),
        ending: tokio_util_like::Ending::new(),
        last_call: Arc::new(std::sync::Mutex::new(Instant::now())),
        running: Arc::new(tokio::sync::Semaphore::new(
            usize::try_from(max_calls).unwrap_or(1).max(1),
        )),
    };
    let ending = gateway.ending.clone();
    let last_call = gateway.last_call.clone();
    runtime.block_on(async move {
        let (stdin, stdout) = rmcp::transport::stdio();
        let service = match gateway.serve(transport(stdin, stdout)).await {
            Ok(service) => service,
            Err(e) => return format!("ended before it began: {e}"),
        };
        let started = Instant::now();
        let idle = async {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let quiet = last_call.lock().map_or(Duration::ZERO, |l| l.elapsed());
                if quiet >= limits.idle {
                    return format!(
                        "ended: no call for {} s (mcp.idle_seconds)",
                        limits.idle.as_secs()
                    );
                }
                if started.elapsed() >= limits.session {
                    return format!(
                        "ended: the session's {} s (mcp.session_seconds)",
                        limits.session.as_secs()
                    );
                }
            }
        };
        let how = tokio::select! {
            done = service.waiting() => match done {
                Ok(reason) => format!("the client ended the session ({reason:?})"),
                Err(e) => format!("ended: {e}"),
            },
            why = idle => why,
        };
        ending.end();
        // Give stopped calls their grace to end their groups and write their records.
        tokio::time::sleep(Duration::from_millis(100)).await;
        how
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A session over an in-memory pipe; the gateway it would start does not exist, so a call
    /// that reached `run` would say "could not be started".
    async fn session() -> (
        tokio::io::WriteHalf<tokio::io::DuplexStream>,
        tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
    ) {
        session_with(PathBuf::from("/nonexistent/agent-gate")).await
    }

    /// A session whose calls start `exe` (with the gateway's arguments) in its place.
    async fn session_with(
        exe: PathBuf,
    ) -> (
        tokio::io::WriteHalf<tokio::io::DuplexStream>,
        tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
    ) {
        let (ours, theirs) = tokio::io::duplex(4 << 20);
        let (read, write) = tokio::io::split(theirs);
        let gateway = Gateway {
            exe,
            rules: PathBuf::from("/nonexistent/rules.yaml"),
            template: CallTemplate::for_tests(),
            caller: Caller {
                label: "hermes".into(),
                key: Some("hermes".into()),
                by_key: false,
                client: None,
                fingerprint: None,
                max_calls: 2,
            },
            session: "0123456789abcdef".into(),
            calls: Arc::new(AtomicU64::new(0)),
            ending: tokio_util_like::Ending::new(),
            last_call: Arc::new(std::sync::Mutex::new(Instant::now())),
            running: Arc::new(tokio::sync::Semaphore::new(2)),
        };
        tokio::spawn(async move {
            if let Ok(service) = gateway.serve(transport(read, write)).await {
                let _ = service.waiting().await;
            }
        });
        let (r, w) = tokio::io::split(ours);
        (w, BufReader::new(r).lines())
    }

    async fn send(w: &mut tokio::io::WriteHalf<tokio::io::DuplexStream>, line: &str) {
        w.write_all(line.as_bytes()).await.unwrap();
        w.write_all(b"\n").await.unwrap();
    }

    async fn answer(
        lines: &mut tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
    ) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("an answer within 5 s")
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }

    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

    #[tokio::test]
    async fn a_session_runs_no_more_calls_at_once_than_its_bound() {
        // In the gateway's place, a script that notes how many calls run beside it.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let exe = dir.path().join("gate");
        std::fs::create_dir(dir.path().join("running")).unwrap();
        std::fs::write(
            &exe,
            format!(
                "#!/bin/sh\ntouch {d}/running/$$\nls {d}/running | wc -l >> {d}/seen\nsleep 0.3\nls {d}/running | wc -l >> {d}/seen\nrm {d}/running/$$\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let (mut w, mut lines) = session_with(exe).await;
        send(&mut w, INIT).await;
        let _ = answer(&mut lines).await;
        send(
            &mut w,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await;
        for id in 10..16 {
            send(
                &mut w,
                &format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"run","arguments":{{"command":"sleep 1"}}}}}}"#
                ),
            )
            .await;
        }
        let mut answered = Vec::new();
        for _ in 10..16 {
            answered.push(answer(&mut lines).await["id"].as_u64().unwrap());
        }
        answered.sort_unstable();
        assert_eq!(answered, (10..16).collect::<Vec<u64>>());
        let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
        let most = seen
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .max();
        // Six calls, two at a time (the session's bound, `max_calls: 2`).
        assert_eq!(seen.lines().count(), 12, "{seen}");
        assert!(most.is_some_and(|n| n <= 2), "{seen}");
    }

    #[tokio::test]
    async fn the_transport_drops_an_oversized_line_and_reads_on() {
        use rmcp::transport::Transport;
        let ping = r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
        // A message padded past the bound is dropped whole, though it would parse.
        let padded = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping"}}{}"#,
            " ".repeat(MAX_MESSAGE)
        );
        let input = format!("{padded}\n{{not json\n\n{ping}\r\n{ping}");
        let mut t = transport(input.as_bytes(), tokio::io::sink());
        let first = t.receive().await.map(|m| serde_json::to_value(m).unwrap());
        assert_eq!(
            first.as_ref().map(|m| &m["id"]),
            Some(&serde_json::json!(7))
        );
        // The last line has no newline: the client went away in the middle of it.
        assert!(t.receive().await.is_none());
        // A line of exactly MAX_MESSAGE bytes, newline included, is read.
        let fits = format!("{ping}{}\n", " ".repeat(MAX_MESSAGE - ping.len() - 1));
        let mut t = transport(fits.as_bytes(), tokio::io::sink());
        assert!(t.receive().await.is_some());
    }

    #[tokio::test]
    async fn protocol_errors_answer_and_leave_the_session_alive() {
        let (mut w, mut lines) = session().await;
        send(&mut w, INIT).await;
        let init = answer(&mut lines).await;
        // An older protocol version a client still sends is answered in kind.
        assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
        send(
            &mut w,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await;
        // Oversized: dropped, nothing buffered past the bound, the session goes on.
        let huge = format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"run","arguments":{{"command":"{}"}}}}}}"#,
            "x".repeat(MAX_MESSAGE + 10)
        );
        send(&mut w, &huge).await;
        // Unknown method: method not found.
        send(
            &mut w,
            r#"{"jsonrpc":"2.0","id":3,"method":"no/such/method"}"#,
        )
        .await;
        let unknown = answer(&mut lines).await;
        assert_eq!(unknown["id"], 3, "{unknown}");
        assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
        // A tool argument of the wrong type: the current protocol (and rmcp) answer it as a
        // tool error the model can correct, not as a JSON-RPC error; nothing was started
        // (starting the nonexistent gateway would have said "could not be started").
        send(
            &mut w,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"run","arguments":{"command":42}}}"#,
        )
        .await;
        let wrong = answer(&mut lines).await;
        assert_eq!(wrong["id"], 4, "{wrong}");
        assert_eq!(wrong["result"]["isError"], true, "{wrong}");
        let said = wrong["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(said.contains("expected a string"), "{wrong}");
        assert!(!said.contains("could not be started"), "{wrong}");
        // An unknown tool.
        send(
            &mut w,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"shell","arguments":{}}}"#,
        )
        .await;
        let tool = answer(&mut lines).await;
        assert_eq!(tool["id"], 5, "{tool}");
        assert!(tool["error"].is_object(), "{tool}");
        // Malformed JSON, then the session still answers.
        send(&mut w, "{this is not json").await;
        send(&mut w, r#"{"jsonrpc":"2.0","id":6,"method":"tools/list"}"#).await;
        let mut listed = answer(&mut lines).await;
        if listed["id"] != 6 {
            // A parse error may be answered first (with a null id).
            assert!(listed["error"].is_object(), "{listed}");
            listed = answer(&mut lines).await;
        }
        assert_eq!(listed["id"], 6, "{listed}");
        let names: Vec<&str> = listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names.len(), 4, "{listed}");
    }

    #[tokio::test]
    async fn a_call_before_initialize_is_not_served() {
        let (mut w, mut lines) = session().await;
        send(
            &mut w,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run","arguments":{"command":"docker ps"}}}"#,
        )
        .await;
        // rmcp ends a session whose first message is not initialize; no tool ran either way.
        let next = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        match next {
            Ok(Ok(Some(line))) => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                assert!(v["error"].is_object(), "{v}");
            }
            Ok(Ok(None)) | Ok(Err(_)) => {}
            Err(_) => panic!("no answer and no end within 5 s"),
        }
    }
}
