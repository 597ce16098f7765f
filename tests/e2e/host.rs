//! The end-to-end host: a real OpenSSH sshd on 127.0.0.1, the real `ai-worker` account, real
//! sudo configured from `render sudoers`, rsyslogd on its own socket, the real Docker engine
//! with a test image built from Debian's busybox-static, and the real ssh client.
//!
//! Everything lives under `ROOT` (root-owned, so sshd's StrictModes and the gateway's own
//! checks pass) and is removed again by `Drop`: the daemons by their pid, the containers by
//! their label, the image, the sudoers file. The account is kept (re-runs reuse it).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ROOT: &str = "/run/agent-gate-e2e";
pub const USER: &str = "ai-worker";
pub const IMAGE: &str = "agent-gate-e2e/busybox:1";
/// An image outside the rules' allow-list, with a file the allowed image lacks.
pub const OUTSIDE: &str = "outside-e2e/evil:1";
/// While this file exists, the docker wrapper moves IMAGE's tag to OUTSIDE just before each
/// `docker run` starts: the tag moved between the gateway's decision and the run.
pub const MOVE_TAG: &str = "/run/agent-gate-e2e/move-tag";
pub const LABEL: &str = "agent-gate-e2e=1";
const SUDOERS: &str = "/etc/sudoers.d/agent-gate-e2e";

/// The client keys: `hermes` (authorized_keys line from `render`), `shell` (pinned in the
/// rules but given a line without `command=`, for the login-shell layer), `stranger` (a line
/// that claims label hermes with a key the rules do not pin).
pub const KEYS: [&str; 3] = ["hermes", "shell", "stranger"];

pub struct Host {
    pub port: u16,
    pub docker: String,
    sshd: Option<Child>,
    rsyslog: Option<Child>,
}

pub fn path(name: &str) -> PathBuf {
    Path::new(ROOT).join(name)
}

/// Run a setup command; its failure stops the suite with what it printed.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The tools the suite drives, and the Debian package of each.
pub const TOOLS: &[(&str, &str)] = &[
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("sftp", "openssh-client"),
    ("sudo", "sudo"),
    ("visudo", "sudo"),
    ("rsyslogd", "rsyslog"),
    ("busybox", "busybox-static"),
    ("ss", "iproute2"),
    ("iptables", "iptables"),
];

/// On a fresh machine of this kind (Debian, as root) install what the suite needs.
pub fn install_missing() {
    let mut packages: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| which(tool).is_none())
        .map(|(_, package)| *package)
        .collect();
    packages.dedup();
    if packages.is_empty() || which("apt-get").is_none() {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    let _ = apt(&["update", "-qq"]);
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&packages);
    let _ = apt(&install);
}

pub fn which(name: &str) -> Option<String> {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|dir| format!("{dir}/{name}"))
    .find(|p| Path::new(p).exists())
}

fn write(name: &str, text: &str, mode: u32) -> PathBuf {
    let p = path(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn keygen(file: &Path, comment: &str) {
    let file = file.to_str().unwrap();
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file],
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Kill what an earlier, interrupted run left, by the pids it wrote.
fn stop_leftovers() {
    for pidfile in ["sshd.pid", "rsyslogd.pid"] {
        if let Ok(text) = std::fs::read_to_string(path(pidfile))
            && let Ok(pid) = text.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    remove_containers();
    let _ = std::fs::remove_dir_all(ROOT);
    let _ = std::fs::remove_file(SUDOERS);
}

fn remove_containers() {
    let Some(docker) = which("docker") else {
        return;
    };
    let listed = Command::new(&docker)
        .args(["ps", "-aq", "--filter", &format!("label={LABEL}")])
        .output();
    if let Ok(out) = listed {
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new(&docker).args(["rm", "-f", id]).output();
        }
    }
}

impl Host {
    pub fn start() -> Self {
        stop_leftovers();
        std::fs::create_dir_all(ROOT).unwrap();
        for dir in [
            "",
            "bin",
            "client",
            "keys",
            "docker-config",
            "image/bin",
            "outside",
            "rsyslog",
        ] {
            let d = path(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(path("client"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let docker = which("docker").expect("docker");
        let mut host = Host {
            port: free_port(),
            docker,
            sshd: None,
            rsyslog: None,
        };
        host.install_gateway();
        host.flake();
        host.account();
        host.start_rsyslog();
        host.write_rules();
        host.install_sudoers();
        host.build_image();
        host.start_sshd();
        host
    }

    fn install_gateway(&self) {
        let gate = path("bin/agent-gate");
        std::fs::copy(env!("CARGO_BIN_EXE_agent-gate"), &gate).unwrap();
        std::fs::set_permissions(&gate, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The login shell: agent-gate itself, given its rules path (sshd passes only `-c`).
        write(
            "bin/agent-gate-shell",
            &format!(
                "#!/bin/sh\nexec {} --rules {} \"$@\"\n",
                gate.display(),
                path("rules.yaml").display()
            ),
            0o755,
        );
    }

    /// A locked flake for deploys, and a stub `nh` that says who ran it and how.
    fn flake(&self) {
        std::fs::create_dir_all(path("flake")).unwrap();
        write("flake/flake.nix", "{ outputs = _: { }; }\n", 0o644);
        write(
            "flake/flake.lock",
            "{ \"nodes\": { }, \"version\": 7 }\n",
            0o644,
        );
        write(
            "bin/nh",
            &format!(
                "#!/bin/sh\n{{ id -u; printf '%s\\n' \"$@\"; }} > {}\necho switched\n",
                path("nh.ran").display()
            ),
            0o755,
        );
    }

    fn account(&self) {
        if Command::new("id")
            .arg(USER)
            .output()
            .unwrap()
            .status
            .success()
        {
            run("usermod", &["-s", "/bin/sh", USER]);
        } else {
            run("useradd", &["--create-home", "--shell", "/bin/sh", USER]);
        }
        // `*`: no password can match, and unlike `!` sshd (UsePAM no) does not call it locked.
        run("usermod", &["-p", "*", "-aG", "docker", USER]);
        for key in KEYS {
            keygen(&path(&format!("client/{key}")), key);
        }
        keygen(&path("host_key"), "agent-gate-e2e host");
    }

    pub fn public_key(key: &str) -> String {
        std::fs::read_to_string(path(&format!("client/{key}.pub")))
            .unwrap()
            .trim()
            .to_string()
    }

    fn start_rsyslog(&mut self) {
        let conf = write(
            "rsyslog.conf",
            &format!(
                r#"global(workDirectory="{root}/rsyslog" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{root}/log.sock" CreatePath="on" RateLimit.Interval="0")
template(name="raw" type="string" string="%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\n")
authpriv.* action(type="omfile" file="{root}/audit.log" template="raw")
"#,
                root = ROOT
            ),
            0o644,
        );
        let child = Command::new(which("rsyslogd").expect("rsyslogd"))
            .args(["-n", "-f", conf.to_str().unwrap()])
            .args(["-i", path("rsyslogd.pid").to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.rsyslog = Some(child);
        wait_for("rsyslogd's socket", Duration::from_secs(10), || {
            path("log.sock").exists()
        });
        // The gateway runs as the account: it must be able to send to the socket.
        std::fs::set_permissions(path("log.sock"), std::fs::Permissions::from_mode(0o666)).unwrap();
    }

    fn write_rules(&self) {
        let tool = |name: &str| which(name).unwrap_or_else(|| panic!("{name} is not installed"));
        let rules = format!(
            include_str!("rules.yaml.in"),
            root = ROOT,
            sudo = tool("sudo"),
            docker = self.wrapper(),
            ss = tool("ss"),
            iptables = tool("iptables"),
            cat = tool("cat"),
            sshd = tool("sshd"),
            printenv = tool("printenv"),
            sleep = tool("sleep"),
            hermes = Self::public_key("hermes"),
            shell = Self::public_key("shell"),
        );
        write("rules.yaml", &rules, 0o644);
        let gate = path("bin/agent-gate");
        run(
            gate.to_str().unwrap(),
            &["check", "--rules", path("rules.yaml").to_str().unwrap()],
        );
        // As the install steps say: the compiled record, so that sessions load without YAML.
        run(
            gate.to_str().unwrap(),
            &["compile", "--rules", path("rules.yaml").to_str().unwrap()],
        );
    }

    /// `agent-gate render ...` with this host's paths.
    pub fn render(piece: &str) -> String {
        let gate = path("bin/agent-gate");
        let out = run(
            gate.to_str().unwrap(),
            &[
                "render",
                piece,
                "--rules",
                path("rules.yaml").to_str().unwrap(),
                "--gate",
                gate.to_str().unwrap(),
                "--user",
                USER,
            ],
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn install_sudoers(&self) {
        let file = write("sudoers", &Self::render("sudoers"), 0o440);
        run("visudo", &["-c", "-q", "-f", file.to_str().unwrap()]);
        std::fs::copy(&file, SUDOERS).unwrap();
        std::fs::set_permissions(SUDOERS, std::fs::Permissions::from_mode(0o440)).unwrap();
        run("visudo", &["-c", "-q"]);
    }

    /// The docker the rules name: the real one, except that while MOVE_TAG exists it retags
    /// IMAGE to OUTSIDE right before a `run`, as another process could.
    fn wrapper(&self) -> String {
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = run ] && [ -e {MOVE_TAG} ]; then\n  {docker} tag {OUTSIDE} {IMAGE}\nfi\nexec {docker} \"$@\"\n",
            docker = self.docker
        );
        write("bin/docker", &script, 0o755)
            .to_string_lossy()
            .into_owned()
    }

    fn build_image(&self) {
        let bin = path("image/bin");
        std::fs::copy(which("busybox").expect("busybox"), bin.join("busybox")).unwrap();
        for applet in ["sh", "echo", "sleep", "cat", "ls"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        write("image/Dockerfile", "FROM scratch\nCOPY bin /bin\n", 0o644);
        let out = Command::new(&self.docker)
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", IMAGE, "--label", LABEL])
            .arg(path("image"))
            .output()
            .unwrap();
        assert!(out.status.success(), "docker build: {out:?}");
        write("outside/evil", "the outside image ran\n", 0o644);
        write(
            "outside/Dockerfile",
            &format!("FROM {IMAGE}\nCOPY evil /evil\n"),
            0o644,
        );
        let out = Command::new(&self.docker)
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", OUTSIDE, "--label", LABEL])
            .arg(path("outside"))
            .output()
            .unwrap();
        assert!(out.status.success(), "docker build: {out:?}");
    }

    /// The image ID (`sha256:...`) of a reference, as the engine resolves it.
    pub fn image_id(&self, reference: &str) -> String {
        let out = run(
            &self.docker,
            &["image", "inspect", "--format", "{{.Id}}", reference],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn start_sshd(&mut self) {
        let keys_dir = path("keys");
        let gate = path("bin/agent-gate");
        let mut lines = Self::render("authorized-keys");
        // A key without `command=`: only the login shell gates it.
        lines.push_str(&format!("restrict {}\n", Self::public_key("shell")));
        // A key that claims hermes' label: sshd lets it in, the gateway must not.
        lines.push_str(&format!(
            "restrict,command=\"{} --rules {} --key hermes\" {}\n",
            gate.display(),
            path("rules.yaml").display(),
            Self::public_key("stranger")
        ));
        let file = keys_dir.join(USER);
        std::fs::write(&file, lines).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = write(
            "sshd_config",
            &format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\nPidFile {root}/sshd.pid\n\
                 AuthorizedKeysFile {root}/keys/%u\nUsePAM no\nStrictModes yes\nPermitRootLogin no\n\
                 AllowUsers {USER}\nMaxStartups 200:30:300\nLogLevel VERBOSE\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\n{block}",
                port = self.port,
                root = ROOT,
                block = Self::render("sshd"),
            ),
            0o644,
        );
        run("/usr/sbin/sshd", &["-t", "-f", config.to_str().unwrap()]);
        let log = std::fs::File::create(path("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sshd = Some(child);
        let port = self.port;
        wait_for("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// The ssh client with this host's settings, for key `key`.
    pub fn ssh(&self, key: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.client_options("-p", key))
            .arg(format!("{USER}@127.0.0.1"))
            .stdin(Stdio::null());
        cmd
    }

    pub fn client_options(&self, port_flag: &str, key: &str) -> Vec<String> {
        let key = path(&format!("client/{key}"));
        [
            "-F",
            "/dev/null",
            port_flag,
            &self.port.to_string(),
            "-i",
            key.to_str().unwrap(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Is a process with exactly this command line running (a zombie does not count)?
    pub fn process_running(command: &str) -> bool {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        entries.flatten().any(|entry| {
            let dir = entry.path();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let words: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            let zombie = std::fs::read_to_string(dir.join("stat")).is_ok_and(|s| {
                s.split(") ")
                    .nth(1)
                    .is_some_and(|rest| rest.starts_with('Z'))
            });
            !zombie && words.len() >= 2 && {
                let name = words[0].rsplit('/').next().unwrap_or_default().to_string();
                format!("{name} {}", words[1..].join(" ")) == command
            }
        })
    }

    /// The audit records rsyslogd wrote so far.
    pub fn records() -> Vec<String> {
        std::fs::read_to_string(path("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Wait until rsyslogd has written at least `count` records.
    pub fn wait_records(count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let records = Self::records();
            if records.len() >= count || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What sshd logged, for failure messages.
    pub fn sshd_log() -> String {
        std::fs::read_to_string(path("sshd.log")).unwrap_or_default()
    }

    pub fn set_shell(shell: &str) {
        run("usermod", &["-s", shell, USER]);
    }

    pub fn docker_ids(&self) -> String {
        let out = run(&self.docker, &["ps", "-aq", "--no-trunc"]);
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        ids.sort();
        ids.join(" ")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for child in [self.sshd.take(), self.rsyslog.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_containers();
        let _ = Command::new(&self.docker)
            .args(["rmi", "-f", IMAGE, OUTSIDE])
            .output();
        let _ = Command::new(&self.docker)
            .args([
                "volume",
                "rm",
                "-f",
                "agent-gate-e2e-bind",
                "agent-gate-e2e-plain",
            ])
            .output();
        let _ = std::fs::remove_file(SUDOERS);
        let _ = Command::new("usermod")
            .args(["-s", "/bin/sh", USER])
            .output();
        let _ = std::fs::remove_dir_all(ROOT);
    }
}
