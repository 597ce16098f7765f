//! What will run: built by the core from the rules (the checkers behind `decide`, and the
//! deploy's root plan), turned into a process only by `sys::exec`.

use std::time::Duration;

/// What every plan starts from, set in the rules' `defaults`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Defaults {
    pub timeout: Duration,
    /// PATH of every command.
    pub path: String,
    /// RLIMIT_NOFILE for every command.
    pub open_files: u64,
}

/// What the gateway does to a program's output before the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `docker inspect`'s JSON, environment values redacted (`redact::inspect_env`).
    InspectEnv,
}

/// An exact program, argv and environment. Fields are private and the constructor is
/// crate-private: outside this crate a plan is only ever read, never made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlan {
    argv: Vec<String>,
    /// Where the program is in `argv`: after `sudo -n --`, when there is one.
    program_at: usize,
    env: Vec<(String, String)>,
    timeout: Duration,
    stdin: bool,
    open_files: u64,
    filter: Option<Filter>,
    /// The plan starts a container in the foreground (`docker run` without `-d`): where the
    /// gateway's label (a placeholder until the edge binds the plan to its session) is.
    label_slot: Option<usize>,
    /// Once bound: how to find the containers this plan started, to remove them when the
    /// gateway has to end the command early.
    containers: Option<SessionContainers>,
}

/// The label the gateway puts on every container a session starts in the foreground; the
/// agent can never set a label of the `agent-gate.` namespace (`docker::values::label`).
pub const SESSION_LABEL: &str = "agent-gate.session";
/// The session label's value in a plan no session is bound to yet (what `explain` shows).
pub const UNBOUND_SESSION: &str = "<session>";
/// With it, in an MCP session: the call, so that one call ending removes only its own.
pub const CALL_LABEL: &str = "agent-gate.call";

/// The containers one session (one call, in MCP) started in the foreground: the docker
/// program exactly as the plan runs it (sudo prefix included), its environment, and the
/// label filters that find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContainers {
    docker: Vec<String>,
    env: Vec<(String, String)>,
    filters: Vec<String>,
}

impl SessionContainers {
    /// `docker ps -aq --filter label=agent-gate.session=ID [...]`: their IDs, running or not.
    pub fn list_argv(&self) -> Vec<String> {
        let mut argv = self.docker.clone();
        argv.extend(["ps".to_string(), "-aq".to_string()]);
        for filter in &self.filters {
            argv.extend(["--filter".to_string(), filter.clone()]);
        }
        argv
    }

    /// `docker rm -f -- ID...`: stopped (SIGKILL) and removed.
    pub fn remove_argv(&self, ids: &[String]) -> Vec<String> {
        let mut argv = self.docker.clone();
        argv.extend(["rm".to_string(), "-f".to_string(), "--".to_string()]);
        argv.extend(ids.iter().cloned());
        argv
    }

    /// The environment the plan's docker ran with (DOCKER_CONFIG and the rest).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The label filters, `label=KEY=VALUE`.
    pub fn filters(&self) -> &[String] {
        &self.filters
    }
}

/// A session id as a label value: itself when it is a plain word (the gateway's ids are
/// 16 hex digits), else its digest, so nothing odd reaches docker's label or filter syntax.
fn label_word(id: &str) -> String {
    let plain = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        id.to_string()
    } else {
        crate::digest::sha256_hex(id.as_bytes())
            .chars()
            .take(16)
            .collect()
    }
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
        let program_at = argv.len();
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
            program_at,
            env,
            timeout,
            stdin: false,
            open_files: defaults.open_files,
            filter: None,
            label_slot: None,
            containers: None,
        }
    }

    /// The program starts a container in the foreground whose subcommand is its argument
    /// `subcommand_at` (`run`): the gateway's session label goes right after it, before
    /// anything the agent wrote. Until the edge binds the plan to a session, the label holds
    /// a placeholder, so `explain` shows what the gateway adds.
    pub(crate) fn starts_containers(mut self, subcommand_at: usize) -> Self {
        let at = (self.program_at + 1 + subcommand_at + 1).min(self.argv.len());
        let words = [
            "--label".to_string(),
            format!("{SESSION_LABEL}={UNBOUND_SESSION}"),
        ];
        self.argv.splice(at..at, words);
        self.label_slot = Some(at);
        self
    }

    /// Bind the plan to the session (and MCP call) that runs it: a plan that starts a
    /// container in the foreground labels it `agent-gate.session=ID` (and `agent-gate.call=N`)
    /// so that the gateway can find and remove it when it ends the command early. The id is
    /// plain data from the edge; any other plan is left as it is. Binding twice changes
    /// nothing.
    pub(crate) fn bind_session(&mut self, session: &str, call: Option<u64>) {
        let Some(at) = self.label_slot.take() else {
            return;
        };
        let mut labels = vec![format!("{SESSION_LABEL}={}", label_word(session))];
        if let Some(call) = call {
            labels.push(format!("{CALL_LABEL}={call}"));
        }
        let words = labels
            .iter()
            .flat_map(|label| ["--label".to_string(), label.clone()]);
        // The placeholder's two words, replaced.
        let at = at.min(self.argv.len());
        let end = (at + 2).min(self.argv.len());
        self.argv.splice(at..end, words);
        self.containers = Some(SessionContainers {
            docker: self
                .argv
                .get(..=self.program_at)
                .unwrap_or_default()
                .to_vec(),
            env: self.env.clone(),
            filters: labels.iter().map(|l| format!("label={l}")).collect(),
        });
    }

    /// The containers this plan starts in the foreground, once bound to a session.
    pub fn containers(&self) -> Option<&SessionContainers> {
        self.containers.as_ref()
    }

    /// Does the plan start a container in the foreground that is not yet labeled?
    pub fn awaits_session(&self) -> bool {
        self.label_slot.is_some()
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

#[cfg(test)]
mod tests {
    use crate::decide::{Request, decide};

    const RULES: &str = "version: 1\nkeys: {hermes: {may: [docker, nap]}}\ndocker:\n  program: /usr/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    run: [rm, detach, interactive, tty, label, name]\n    ps: [all]\n  run:\n    allow_labels: ['agent-gate.*', 'a*']\nprograms:\n  - id: nap\n    command: sleep\n    path: /bin/sleep\n    args:\n      - {name: seconds, value: {int: [1, 600]}}\n";

    fn decided(raw: &str) -> crate::verdict::Decision {
        let policy = crate::rules::parse(RULES).unwrap();
        decide(
            &policy,
            &Request {
                raw,
                key: Some("hermes"),
                by_key: false,
                client: None,
                fingerprint: None,
            },
        )
    }

    /// The plan for `raw` bound to a session, as forced mode binds it.
    fn bound(raw: &str, call: Option<u64>) -> super::ExecPlan {
        let decision = decided(raw);
        let mut plan = decision
            .plan()
            .cloned()
            .unwrap_or_else(|| panic!("{raw}: {} ({})", decision.decision_word(), decision.reason));
        plan.bind_session("0123456789abcdef", call);
        plan
    }

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_foreground_run_carries_the_session_label_right_after_run() {
        for raw in [
            "docker run alpine sleep 300",
            "docker run --rm -it alpine sleep 300",
            "docker run --name x alpine sleep 300",
            // After the image, `-d` is the container's command's, not docker's.
            "docker run alpine -d",
            "docker run --rm alpine --detach",
        ] {
            let plan = bound(raw, None);
            let argv = plan.argv();
            assert_eq!(
                argv.get(..4),
                Some(&words("/usr/bin/docker run --label agent-gate.session=0123456789abcdef")[..]),
                "{raw}: {argv:?}"
            );
            // The rest is the agent's, as decided.
            assert_eq!(argv.get(4..), words(raw).get(2..), "{raw}");
            let containers = plan.containers().unwrap();
            assert_eq!(
                containers.list_argv(),
                words("/usr/bin/docker ps -aq --filter label=agent-gate.session=0123456789abcdef")
            );
            assert_eq!(
                containers.remove_argv(&["abc".into()]),
                words("/usr/bin/docker rm -f -- abc")
            );
            assert_eq!(
                containers.env(),
                plan.env(),
                "the plan's DOCKER_CONFIG and all"
            );
        }
    }

    #[test]
    fn an_mcp_call_labels_its_containers_with_the_call_too() {
        let plan = bound("docker run alpine true", Some(7));
        assert_eq!(
            plan.argv().get(..6),
            Some(
                &words(
                    "/usr/bin/docker run --label agent-gate.session=0123456789abcdef --label agent-gate.call=7"
                )[..]
            )
        );
        assert_eq!(
            plan.containers().unwrap().filters(),
            [
                "label=agent-gate.session=0123456789abcdef",
                "label=agent-gate.call=7"
            ]
        );
    }

    #[test]
    fn a_detached_run_in_any_spelling_is_not_labeled() {
        for raw in [
            "docker run -d alpine sleep 300",
            "docker run --detach alpine sleep 300",
            "docker run -dit alpine sleep 300",
            "docker run -itd alpine sleep 300",
            "docker run --rm -i -d alpine sleep 300",
            "docker run --name x --detach --rm alpine",
        ] {
            let unbound = decided(raw);
            let plan = bound(raw, None);
            assert_eq!(Some(&plan), unbound.plan(), "{raw}: binding changed it");
            assert!(plan.containers().is_none(), "{raw}");
            assert!(
                !plan.argv().iter().any(|a| a.contains("agent-gate")),
                "{raw}: {:?}",
                plan.argv()
            );
        }
        // `--detach=true` is no spelling docker's flags take here: refused, not run attached.
        for raw in ["docker run --detach=true alpine", "docker run -d=1 alpine"] {
            assert_eq!(decided(raw).decision_word(), "refuse", "{raw}");
        }
    }

    #[test]
    fn nothing_else_is_labeled_and_binding_twice_changes_nothing() {
        for raw in ["docker ps -a", "sleep 5"] {
            let plan = bound(raw, None);
            assert_eq!(Some(&plan), decided(raw).plan(), "{raw}");
            assert!(plan.containers().is_none(), "{raw}");
        }
        let mut plan = bound("docker run alpine true", None);
        let once = plan.clone();
        plan.bind_session("fedcba9876543210", Some(1));
        assert_eq!(plan, once);
        // Unbound, as `explain` shows it: the label's placeholder, and nothing to clean up.
        let unbound = decided("docker run alpine true");
        let unbound = unbound.plan().unwrap();
        assert!(unbound.awaits_session() && unbound.containers().is_none());
        assert_eq!(
            unbound.argv(),
            words("/usr/bin/docker run --label agent-gate.session=<session> alpine true")
        );
    }

    #[test]
    fn the_cleanup_runs_docker_as_the_plan_does_sudo_prefix_included() {
        let defaults = super::Defaults {
            timeout: std::time::Duration::from_secs(5),
            path: "/usr/bin:/bin".into(),
            open_files: 1024,
        };
        let env = [("DOCKER_CONFIG".to_string(), "/etc/dc".to_string())];
        let mut plan = super::ExecPlan::new(
            &defaults,
            Some("/usr/bin/sudo"),
            "/usr/bin/docker",
            words("run alpine true"),
            &env,
            defaults.timeout,
        )
        .starts_containers(0);
        plan.bind_session("0123456789abcdef", None);
        assert_eq!(
            plan.argv(),
            words(
                "/usr/bin/sudo -n -- /usr/bin/docker run --label agent-gate.session=0123456789abcdef alpine true"
            )
        );
        let containers = plan.containers().unwrap();
        assert_eq!(
            containers.list_argv(),
            words(
                "/usr/bin/sudo -n -- /usr/bin/docker ps -aq --filter label=agent-gate.session=0123456789abcdef"
            )
        );
        assert!(containers.env().contains(&env[0]));
    }

    #[test]
    fn an_odd_session_id_is_labeled_by_its_digest() {
        let mut plan = decided("docker run alpine true").plan().cloned().unwrap();
        plan.bind_session("a b,c=d", None);
        let label = plan.argv().get(3).unwrap();
        let value = label.strip_prefix("agent-gate.session=").unwrap();
        assert_eq!(value.len(), 16, "{label}");
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{label}");
    }

    #[test]
    fn the_agent_cannot_set_or_spoof_the_gateway_labels() {
        // Even with rules that list them in `allow_labels`.
        for raw in [
            "docker run --label agent-gate.session=0123456789abcdef alpine",
            "docker run -l agent-gate.session=x alpine",
            "docker run --label=agent-gate.call=1 alpine",
            "docker run -dl agent-gate.session=x alpine",
            "docker run --label Agent-Gate.Session=x alpine",
        ] {
            let decision = decided(raw);
            assert_eq!(decision.decision_word(), "refuse", "{raw}");
            assert!(
                decision.reason.contains("only the gateway"),
                "{raw}: {}",
                decision.reason
            );
        }
        assert_eq!(
            decided("docker run --label app=web alpine").decision_word(),
            "allow"
        );
    }
}
