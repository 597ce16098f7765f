//! What the docker CLI accepts, subcommand by subcommand: each option's names, whether it
//! takes a value, and how that value is checked. Options marked `Never` can never be allowed
//! by any rules file; the reason is what the agent is told.

/// How an option's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Any text.
    Text,
    /// A container, volume, network or service name.
    Name,
    /// A name or an ID: what `inspect`, `rm` and friends take.
    Object,
    /// A whole number >= 0.
    Count,
    /// A whole number >= 1.
    Positive,
    /// `--tail`: a count or `all`.
    Tail,
    /// `--since`/`--until`: a duration (`10m`) or a timestamp.
    Time,
    /// A Go template (`--format`); docker's template functions cannot run anything.
    Template,
    /// `key=value` filters.
    Filter,
    /// An image reference (`name[:tag][@digest]`).
    Image,
    /// `-v`: a named volume, never a host path.
    Volume,
    /// `--mount`: volume or tmpfs mounts only.
    Mount,
    /// `-p`: only on the rules' addresses.
    Publish,
    /// `--network`: only the rules' networks.
    Network,
    /// `--tmpfs /path[:options]`.
    Tmpfs,
    /// `--restart` policy.
    Restart,
    /// `--pull` policy.
    PullPolicy,
    /// `os/arch[/variant]`.
    Platform,
    /// `NAME[=value]`.
    Env,
    /// `-w`: an absolute path inside the container, not under /proc.
    Workdir,
    /// `user[:group]`.
    User,
    /// `512m`, `2g`.
    Size,
    /// `1.5`.
    Cpus,
    /// A hostname.
    Hostname,
    /// A signal name or number.
    Signal,
    /// `stdin`, `stdout` or `stderr`.
    Stream,
    /// Compose services: `NAME[,NAME...]` or `*`.
    Services,
    /// `build -t`: never a name the run allow-list covers.
    BuildTag,
    /// `--label KEY=value`, never in a namespace other software acts on.
    Label,
    /// `--build-arg NAME=value`, never `BUILDKIT_*`.
    BuildArg,
    /// `build -f`: a Dockerfile inside the build context.
    Dockerfile,
    /// `build --network`: `default` or `none`.
    BuildNetwork,
    /// `build --progress`.
    Progress,
    /// `compose -f`: one of the rules' compose files.
    ComposeFile,
    /// `compose -p`: one of the rules' project names.
    Project,
    /// `inspect --type`.
    ObjectType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Flag,
    Value(Check),
    Never(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// Long names; the first is the canonical one used in rules files.
    pub names: &'static [&'static str],
    pub short: Option<char>,
    pub kind: Kind,
}

impl Opt {
    pub fn name(&self) -> &'static str {
        self.names.first().copied().unwrap_or_default()
    }
}

const fn flag(names: &'static [&'static str], short: Option<char>) -> Opt {
    Opt {
        names,
        short,
        kind: Kind::Flag,
    }
}
const fn value(names: &'static [&'static str], short: Option<char>, check: Check) -> Opt {
    Opt {
        names,
        short,
        kind: Kind::Value(check),
    }
}
const fn never(names: &'static [&'static str], short: Option<char>, why: &'static str) -> Opt {
    Opt {
        names,
        short,
        kind: Kind::Never(why),
    }
}

/// What follows a subcommand's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    None,
    /// At most one image reference (`docker images nginx`).
    OptionalImage,
    /// One or more names or IDs.
    Objects,
    /// Any number of names or IDs, none included.
    OptionalObjects,
    /// Exactly one name or ID.
    OneObject,
    /// One or more image references or IDs.
    Images,
    /// Exactly one image reference.
    OneImage,
    /// One build context directory.
    Context,
    /// An image and the command to run in the container.
    ImageAndCommand,
}

#[derive(Debug, Clone, Copy)]
pub struct Sub {
    pub name: &'static str,
    pub options: &'static [Opt],
    /// pflag's interspersed mode: may options follow operands?
    pub interspersed: bool,
    pub operands: Operands,
}

impl Sub {
    pub fn find_long(&self, name: &str) -> Option<&'static Opt> {
        self.options.iter().find(|o| o.names.contains(&name))
    }
    pub fn find_short(&self, short: char) -> Option<&'static Opt> {
        self.options.iter().find(|o| o.short == Some(short))
    }
}

const FORMAT: Opt = value(&["format"], None, Check::Template);
const FILTER: Opt = value(&["filter"], Some('f'), Check::Filter);
const QUIET: Opt = flag(&["quiet"], Some('q'));
const NO_TRUNC: Opt = flag(&["no-trunc"], None);
const TIME: Opt = value(&["time", "timeout"], Some('t'), Check::Count);
const SIGNAL: Opt = value(&["signal"], Some('s'), Check::Signal);

const PS: &[Opt] = &[
    flag(&["all"], Some('a')),
    FILTER,
    FORMAT,
    value(&["last"], Some('n'), Check::Count),
    flag(&["latest"], Some('l')),
    NO_TRUNC,
    QUIET,
    flag(&["size"], Some('s')),
];

const IMAGES: &[Opt] = &[
    flag(&["all"], Some('a')),
    flag(&["digests"], None),
    FILTER,
    FORMAT,
    NO_TRUNC,
    QUIET,
    flag(&["tree"], None),
];

const INSPECT: &[Opt] = &[
    value(&["format"], Some('f'), Check::Template),
    flag(&["size"], Some('s')),
    value(&["type"], None, Check::ObjectType),
];

const LOGS: &[Opt] = &[
    flag(&["details"], None),
    never(
        &["follow"],
        Some('f'),
        "`docker logs -f` never ends; use `--tail N` or `--since 10m`",
    ),
    value(&["since"], None, Check::Time),
    value(&["tail"], Some('n'), Check::Tail),
    flag(&["timestamps"], Some('t')),
    value(&["until"], None, Check::Time),
];

const START: &[Opt] = &[
    never(
        &["attach"],
        Some('a'),
        "attaching to a container is `docker attach` by another name",
    ),
    never(
        &["interactive"],
        Some('i'),
        "attaching stdin is `docker attach` by another name",
    ),
    never(
        &["checkpoint"],
        None,
        "checkpoints are experimental and not allowed",
    ),
    never(
        &["checkpoint-dir"],
        None,
        "a checkpoint directory is a host path",
    ),
    never(&["detach-keys"], None, "there is no attached session here"),
];

const STOP: &[Opt] = &[SIGNAL, TIME];

const RM: &[Opt] = &[
    flag(&["force"], Some('f')),
    never(
        &["link"],
        Some('l'),
        "legacy links are not managed through this gateway",
    ),
    flag(&["volumes"], Some('v')),
];

const RMI: &[Opt] = &[flag(&["force"], Some('f')), flag(&["no-prune"], None)];

const PULL: &[Opt] = &[
    flag(&["all-tags"], Some('a')),
    flag(&["disable-content-trust"], None),
    value(&["platform"], None, Check::Platform),
    QUIET,
];

const SYSTEM_DF: &[Opt] = &[FORMAT, flag(&["verbose"], Some('v'))];
const SYSTEM_INFO: &[Opt] = &[value(&["format"], Some('f'), Check::Template)];
/// `docker version`, `docker network inspect`, `docker volume inspect`: `-f/--format` only.
const FORMAT_ONLY: &[Opt] = &[value(&["format"], Some('f'), Check::Template)];
const NETWORK_INSPECT: &[Opt] = &[
    value(&["format"], Some('f'), Check::Template),
    flag(&["verbose"], Some('v')),
];
/// `docker stats`: only with `--no-stream` (checked in `docker::check`); otherwise it never ends.
const STATS: &[Opt] = &[
    flag(&["all"], Some('a')),
    FORMAT,
    flag(&["no-stream"], None),
    NO_TRUNC,
];
const LS: &[Opt] = &[FILTER, FORMAT, QUIET];
const NETWORK_LS: &[Opt] = &[FILTER, FORMAT, NO_TRUNC, QUIET];

const HOST_FILE: &str = "it reads a file on the host";

const RUN: &[Opt] = &[
    value(&["add-host"], None, Check::Text),
    never(
        &["annotation"],
        None,
        "OCI annotations are read by the runtime (crun's run.oci.*, CDI device injection)",
    ),
    value(&["attach"], Some('a'), Check::Stream),
    value(&["blkio-weight"], None, Check::Count),
    never(&["blkio-weight-device"], None, "it names a host device"),
    never(
        &["cap-add"],
        None,
        "added capabilities open container escapes (CAP_SYS_ADMIN, DAC_READ_SEARCH, ...)",
    ),
    value(&["cap-drop"], None, Check::Name),
    never(
        &["cgroup-parent"],
        None,
        "it moves the container out of docker's cgroup",
    ),
    never(
        &["cgroupns"],
        None,
        "the host cgroup namespace is never shared",
    ),
    never(&["cidfile"], None, "it writes a file on the host"),
    value(&["cpu-period"], None, Check::Count),
    value(&["cpu-quota"], None, Check::Count),
    never(
        &["cpu-rt-period"],
        None,
        "real-time scheduling can starve the host",
    ),
    never(
        &["cpu-rt-runtime"],
        None,
        "real-time scheduling can starve the host",
    ),
    value(&["cpu-shares"], Some('c'), Check::Count),
    value(&["cpus"], None, Check::Cpus),
    value(&["cpuset-cpus"], None, Check::Text),
    value(&["cpuset-mems"], None, Check::Text),
    flag(&["detach"], Some('d')),
    never(&["detach-keys"], None, "there is no attached session here"),
    never(
        &["device"],
        None,
        "host devices give raw access to disks and hardware",
    ),
    never(
        &["device-cgroup-rule"],
        None,
        "device rules give raw access to host devices",
    ),
    never(&["device-read-bps"], None, "it names a host device"),
    never(&["device-read-iops"], None, "it names a host device"),
    never(&["device-write-bps"], None, "it names a host device"),
    never(&["device-write-iops"], None, "it names a host device"),
    flag(&["disable-content-trust"], None),
    value(&["dns"], None, Check::Text),
    value(&["dns-option"], None, Check::Text),
    value(&["dns-search"], None, Check::Text),
    value(&["domainname"], None, Check::Hostname),
    value(&["entrypoint"], None, Check::Text),
    value(&["env"], Some('e'), Check::Env),
    never(&["env-file"], None, HOST_FILE),
    value(&["expose"], None, Check::Text),
    never(&["gpus"], None, "GPU devices are host devices"),
    value(&["group-add"], None, Check::Name),
    value(&["health-cmd"], None, Check::Text),
    value(&["health-interval"], None, Check::Time),
    value(&["health-retries"], None, Check::Count),
    value(&["health-start-interval"], None, Check::Time),
    value(&["health-start-period"], None, Check::Time),
    value(&["health-timeout"], None, Check::Time),
    value(&["hostname"], Some('h'), Check::Hostname),
    flag(&["init"], None),
    flag(&["interactive"], Some('i')),
    value(&["ip"], None, Check::Text),
    value(&["ip6"], None, Check::Text),
    never(
        &["ipc"],
        None,
        "the IPC namespace of the host or of another container is never shared",
    ),
    never(
        &["isolation"],
        None,
        "isolation technology is not chosen by the agent",
    ),
    value(&["label"], Some('l'), Check::Label),
    never(&["label-file"], None, HOST_FILE),
    never(
        &["link"],
        None,
        "legacy links are not managed through this gateway",
    ),
    value(&["link-local-ip"], None, Check::Text),
    never(
        &["log-driver"],
        None,
        "log drivers can write to host paths or remote endpoints",
    ),
    never(
        &["log-opt"],
        None,
        "log options can write to host paths or remote endpoints",
    ),
    value(&["mac-address"], None, Check::Text),
    value(&["memory"], Some('m'), Check::Size),
    value(&["memory-reservation"], None, Check::Size),
    value(&["memory-swap"], None, Check::Text),
    value(&["memory-swappiness"], None, Check::Count),
    value(&["mount"], None, Check::Mount),
    value(&["name"], None, Check::Name),
    value(&["network", "net"], None, Check::Network),
    value(&["network-alias", "net-alias"], None, Check::Name),
    flag(&["no-healthcheck"], None),
    never(
        &["oom-kill-disable"],
        None,
        "an unkillable container can take the host down",
    ),
    never(
        &["oom-score-adj"],
        None,
        "an unkillable container can take the host down",
    ),
    never(
        &["pid"],
        None,
        "the host's or another container's process namespace is never shared",
    ),
    value(&["pids-limit"], None, Check::Positive),
    value(&["platform"], None, Check::Platform),
    never(
        &["privileged"],
        None,
        "a privileged container is root on the host",
    ),
    value(&["publish"], Some('p'), Check::Publish),
    never(
        &["publish-all"],
        Some('P'),
        "it publishes every port on all host addresses, past the firewall",
    ),
    value(&["pull"], None, Check::PullPolicy),
    flag(&["quiet"], Some('q')),
    flag(&["read-only"], None),
    value(&["restart"], None, Check::Restart),
    flag(&["rm"], None),
    never(
        &["runtime"],
        None,
        "the container runtime is not chosen by the agent",
    ),
    never(
        &["security-opt"],
        None,
        "it turns off seccomp, AppArmor or SELinux confinement",
    ),
    value(&["shm-size"], None, Check::Size),
    flag(&["sig-proxy"], None),
    value(&["stop-signal"], None, Check::Signal),
    value(&["stop-timeout"], None, Check::Count),
    never(
        &["storage-opt"],
        None,
        "storage driver options are not chosen by the agent",
    ),
    never(
        &["sysctl"],
        None,
        "kernel parameters are not chosen by the agent",
    ),
    value(&["tmpfs"], None, Check::Tmpfs),
    flag(&["tty"], Some('t')),
    value(&["ulimit"], None, Check::Text),
    never(
        &["use-api-socket"],
        None,
        "it hands the container the docker API: root on the host",
    ),
    value(&["user"], Some('u'), Check::User),
    never(
        &["userns"],
        None,
        "user-namespace remapping is never switched off",
    ),
    never(&["uts"], None, "the host's UTS namespace is never shared"),
    value(&["volume"], Some('v'), Check::Volume),
    never(
        &["volume-driver"],
        None,
        "volume drivers can mount host paths",
    ),
    never(
        &["volumes-from"],
        None,
        "it inherits another container's mounts, such as the docker socket or /",
    ),
    value(&["workdir"], Some('w'), Check::Workdir),
];

const BUILD: &[Opt] = &[
    value(&["add-host"], None, Check::Text),
    never(
        &["allow"],
        None,
        "entitlements such as security.insecure run build steps privileged",
    ),
    value(&["annotation"], None, Check::Text),
    never(
        &["attest"],
        None,
        "attestations are not configured through this gateway",
    ),
    value(&["build-arg"], None, Check::BuildArg),
    never(
        &["build-context"],
        None,
        "an extra build context is a host path outside the vetted directories",
    ),
    never(&["builder"], None, "the builder is not chosen by the agent"),
    never(
        &["cache-from"],
        None,
        "a cache source can be a host directory",
    ),
    never(
        &["cache-to"],
        None,
        "a cache destination writes a host directory",
    ),
    never(&["call"], None, "build frontends' methods are not allowed"),
    never(
        &["cgroup-parent"],
        None,
        "it moves the build out of docker's cgroup",
    ),
    never(&["check"], None, "build frontends' methods are not allowed"),
    never(&["cpu-period"], None, "not supported by BuildKit"),
    value(&["file"], Some('f'), Check::Dockerfile),
    never(&["iidfile"], None, "it writes a file on the host"),
    value(&["label"], None, Check::Label),
    flag(&["load"], None),
    never(&["metadata-file"], None, "it writes a file on the host"),
    value(&["network"], None, Check::BuildNetwork),
    flag(&["no-cache"], None),
    value(&["no-cache-filter"], None, Check::Name),
    never(&["output"], Some('o'), "an output writes files on the host"),
    value(&["platform"], None, Check::Platform),
    value(&["progress"], None, Check::Progress),
    never(
        &["provenance"],
        None,
        "attestations are not configured through this gateway",
    ),
    flag(&["pull"], None),
    never(&["push"], None, "pushing an image sends data off the host"),
    flag(&["quiet"], Some('q')),
    never(
        &["sbom"],
        None,
        "attestations are not configured through this gateway",
    ),
    never(
        &["secret"],
        None,
        "a build secret reads a file or variable of the host",
    ),
    value(&["shm-size"], None, Check::Size),
    never(
        &["ssh"],
        None,
        "it forwards an SSH agent or key into the build",
    ),
    value(&["tag"], Some('t'), Check::BuildTag),
    value(&["target"], None, Check::Name),
    value(&["ulimit"], None, Check::Text),
];

/// `docker exec` is refused unless a rule names the container and program; no options.
const EXEC: &[Opt] = &[
    never(&["detach"], Some('d'), "exec rules run in the foreground"),
    never(&["detach-keys"], None, "there is no attached session here"),
    never(&["env"], Some('e'), "exec rules fix the environment"),
    never(&["env-file"], None, HOST_FILE),
    never(&["interactive"], Some('i'), "exec rules take no input"),
    never(
        &["privileged"],
        None,
        "a privileged exec is root on the host",
    ),
    never(&["tty"], Some('t'), "there is no terminal here"),
    never(
        &["user"],
        Some('u'),
        "exec rules run as the container's user",
    ),
    never(
        &["workdir"],
        Some('w'),
        "exec rules fix the working directory",
    ),
];

/// The subcommands the grammar knows well enough to allow.
pub const SUBCOMMANDS: &[Sub] = &[
    Sub {
        name: "ps",
        options: PS,
        interspersed: true,
        operands: Operands::None,
    },
    Sub {
        name: "images",
        options: IMAGES,
        interspersed: true,
        operands: Operands::OptionalImage,
    },
    Sub {
        name: "inspect",
        options: INSPECT,
        interspersed: true,
        operands: Operands::Objects,
    },
    Sub {
        name: "logs",
        options: LOGS,
        interspersed: true,
        operands: Operands::OneObject,
    },
    Sub {
        name: "start",
        options: START,
        interspersed: true,
        operands: Operands::Objects,
    },
    Sub {
        name: "stop",
        options: STOP,
        interspersed: true,
        operands: Operands::Objects,
    },
    Sub {
        name: "restart",
        options: STOP,
        interspersed: true,
        operands: Operands::Objects,
    },
    Sub {
        name: "rm",
        options: RM,
        interspersed: true,
        operands: Operands::Objects,
    },
    Sub {
        name: "rmi",
        options: RMI,
        interspersed: true,
        operands: Operands::Images,
    },
    Sub {
        name: "pull",
        options: PULL,
        interspersed: true,
        operands: Operands::OneImage,
    },
    Sub {
        name: "build",
        options: BUILD,
        interspersed: true,
        operands: Operands::Context,
    },
    Sub {
        name: "run",
        options: RUN,
        interspersed: false,
        operands: Operands::ImageAndCommand,
    },
    Sub {
        name: "system df",
        options: SYSTEM_DF,
        interspersed: true,
        operands: Operands::None,
    },
    Sub {
        name: "system info",
        options: SYSTEM_INFO,
        interspersed: true,
        operands: Operands::None,
    },
    Sub {
        name: "network ls",
        options: NETWORK_LS,
        interspersed: true,
        operands: Operands::None,
    },
    Sub {
        name: "volume ls",
        options: LS,
        interspersed: true,
        operands: Operands::None,
    },
    Sub {
        name: "version",
        options: FORMAT_ONLY,
        interspersed: true,
        operands: Operands::None,
    },
    Sub {
        name: "stats",
        options: STATS,
        interspersed: true,
        operands: Operands::OptionalObjects,
    },
    Sub {
        name: "network inspect",
        options: NETWORK_INSPECT,
        interspersed: true,
        operands: Operands::Objects,
    },
    Sub {
        name: "volume inspect",
        options: FORMAT_ONLY,
        interspersed: true,
        operands: Operands::Objects,
    },
    Sub {
        name: "exec",
        options: EXEC,
        interspersed: false,
        operands: Operands::None,
    },
];

pub fn subcommand(name: &str) -> Option<&'static Sub> {
    SUBCOMMANDS.iter().find(|s| s.name == name)
}

/// Subcommands that are never allowed, with the reason the agent is told.
pub fn never_subcommand(name: &str) -> Option<&'static str> {
    Some(match name {
        "attach" => "it attaches to a running container's terminal",
        "commit" => "it turns a container into an image, bypassing the build rules",
        "cp" => "it copies files between the host and containers",
        "create" => "create+start is `docker run` without its checks; use `docker run`",
        "diff" | "export" | "save" => "it reads a container's or image's whole filesystem out",
        "import" | "load" => "it brings in an unvetted filesystem or image",
        "push" => "pushing an image sends data off the host",
        "tag" => "retagging can replace an image that other services run",
        "update" => "it changes limits and restart policies of running containers",
        "rename" | "kill" | "pause" | "unpause" | "wait" | "top" | "port" | "stats" | "events" => {
            "it is not part of this host's policy"
        }
        "container" | "image" => {
            "management-command forms are not accepted; use the short form (`docker ps`, `docker run`, `docker rmi`)"
        }
        "context" => "contexts point docker at another daemon",
        "plugin" => "managed plugins run privileged",
        "swarm" | "service" | "stack" | "node" | "secret" | "config" => {
            "swarm is not used on this host"
        }
        "buildx" | "builder" => "builders are not chosen by the agent; use `docker build`",
        "trust" | "manifest" | "login" | "logout" | "search" => {
            "registry credentials and trust are not managed by the agent"
        }
        _ => return None,
    })
}

pub const COMPOSE_GLOBAL: &[Opt] = &[
    flag(&["all-resources"], None),
    value(&["ansi"], None, Check::Text),
    flag(&["compatibility"], None),
    flag(&["dry-run"], None),
    never(
        &["env-file"],
        None,
        "an env file is a host file outside the vetted compose project",
    ),
    value(&["file"], Some('f'), Check::ComposeFile),
    value(&["parallel"], None, Check::Count),
    value(&["profile"], None, Check::Name),
    value(&["progress"], None, Check::Progress),
    never(
        &["project-directory"],
        None,
        "the project directory decides which compose file runs",
    ),
    value(&["project-name"], Some('p'), Check::Project),
];

const COMPOSE_PS: &[Opt] = &[
    flag(&["all"], Some('a')),
    value(&["filter"], None, Check::Filter),
    FORMAT,
    NO_TRUNC,
    flag(&["orphans"], None),
    QUIET,
    flag(&["services"], None),
    value(&["status"], None, Check::Name),
];
const COMPOSE_LS: &[Opt] = &[flag(&["all"], Some('a')), FILTER, FORMAT, QUIET];
const COMPOSE_UP: &[Opt] = &[
    flag(&["abort-on-container-exit"], None),
    flag(&["always-recreate-deps"], None),
    value(&["attach"], None, Check::Name),
    flag(&["build"], None),
    flag(&["detach"], Some('d')),
    flag(&["force-recreate"], None),
    never(&["menu"], None, "there is no terminal here"),
    flag(&["no-build"], None),
    flag(&["no-color"], None),
    flag(&["no-deps"], None),
    flag(&["no-log-prefix"], None),
    flag(&["no-recreate"], None),
    flag(&["no-start"], None),
    value(&["pull"], None, Check::PullPolicy),
    flag(&["quiet-pull"], None),
    flag(&["remove-orphans"], None),
    flag(&["renew-anon-volumes"], Some('V')),
    value(&["timeout"], Some('t'), Check::Count),
    flag(&["wait"], None),
    value(&["wait-timeout"], None, Check::Count),
    never(
        &["watch"],
        Some('w'),
        "watch syncs host paths into containers and never ends",
    ),
    flag(&["yes"], Some('y')),
];
const COMPOSE_DOWN: &[Opt] = &[
    flag(&["remove-orphans"], None),
    never(
        &["rmi"],
        None,
        "removing images is `docker rmi`, one image at a time",
    ),
    value(&["timeout"], Some('t'), Check::Count),
    never(
        &["volumes"],
        Some('v'),
        "it deletes the project's volumes and their data",
    ),
];
const COMPOSE_LOGS: &[Opt] = &[
    never(
        &["follow"],
        Some('f'),
        "`logs -f` never ends; use `--tail N` or `--since 10m`",
    ),
    value(&["index"], None, Check::Positive),
    flag(&["no-color"], None),
    flag(&["no-log-prefix"], None),
    value(&["since"], None, Check::Time),
    value(&["tail"], Some('n'), Check::Tail),
    flag(&["timestamps"], Some('t')),
    value(&["until"], None, Check::Time),
];
const COMPOSE_PULL: &[Opt] = &[
    flag(&["ignore-buildable"], None),
    flag(&["ignore-pull-failures"], None),
    flag(&["include-deps"], None),
    value(&["policy"], None, Check::PullPolicy),
    QUIET,
];
const COMPOSE_TIMEOUT: &[Opt] = &[value(&["timeout"], Some('t'), Check::Count)];
const COMPOSE_RESTART: &[Opt] = &[
    flag(&["no-deps"], None),
    value(&["timeout"], Some('t'), Check::Count),
];
const COMPOSE_CONFIG: &[Opt] = &[
    FORMAT,
    // `--hash SERVICES`: the services whose config hash to print (`web,db`, or `*`).
    value(&["hash"], None, Check::Services),
    flag(&["images"], None),
    flag(&["no-consistency"], None),
    flag(&["no-interpolate"], None),
    flag(&["no-normalize"], None),
    flag(&["no-path-resolution"], None),
    never(&["output"], Some('o'), "it writes a file on the host"),
    flag(&["profiles"], None),
    QUIET,
    flag(&["resolve-image-digests"], None),
    flag(&["services"], None),
    flag(&["volumes"], None),
];
const COMPOSE_IMAGES: &[Opt] = &[FORMAT, QUIET];
const COMPOSE_BUILD: &[Opt] = &[
    value(&["build-arg"], None, Check::BuildArg),
    never(&["builder"], None, "the builder is not chosen by the agent"),
    value(&["memory"], Some('m'), Check::Size),
    flag(&["no-cache"], None),
    flag(&["pull"], None),
    never(&["push"], None, "pushing an image sends data off the host"),
    QUIET,
    never(
        &["ssh"],
        None,
        "it forwards an SSH agent or key into the build",
    ),
    flag(&["with-dependencies"], None),
];

/// Compose verbs the grammar knows: (verb, options, needs a vetted `-f` file).
/// What a compose verb must name to act on a vetted project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A vetted compose file (`-f`): the verb reads or applies it.
    File,
    /// A vetted file, or a vetted project by name (`-p app`): the verb reads the project's
    /// containers by their labels and needs no file.
    FileOrProject,
    /// Nothing: the verb is about compose itself or lists projects.
    Nothing,
}

const COMPOSE_VERSION: &[Opt] = &[
    value(&["format"], Some('f'), Check::Template),
    flag(&["short"], None),
];

pub const COMPOSE_VERBS: &[(&str, &[Opt], Target)] = &[
    ("build", COMPOSE_BUILD, Target::File),
    ("config", COMPOSE_CONFIG, Target::File),
    ("down", COMPOSE_DOWN, Target::File),
    ("images", COMPOSE_IMAGES, Target::FileOrProject),
    ("logs", COMPOSE_LOGS, Target::FileOrProject),
    ("ls", COMPOSE_LS, Target::Nothing),
    ("ps", COMPOSE_PS, Target::FileOrProject),
    ("pull", COMPOSE_PULL, Target::File),
    ("restart", COMPOSE_RESTART, Target::File),
    ("start", &[], Target::File),
    ("stop", COMPOSE_TIMEOUT, Target::File),
    ("top", &[], Target::FileOrProject),
    ("up", COMPOSE_UP, Target::File),
    ("version", COMPOSE_VERSION, Target::Nothing),
];

pub fn never_compose_verb(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "exec" | "run" => "it runs a program in a container outside the exec rules",
        "cp" => "it copies files between the host and containers",
        "attach" => "it attaches to a running container's terminal",
        "export" | "commit" => "it reads a container's filesystem out",
        "watch" => "watch syncs host paths into containers and never ends",
        "publish" | "push" => "publishing sends data off the host",
        "create" | "kill" | "rm" | "scale" | "pause" | "unpause" | "events" | "port" | "wait"
        | "stats" | "alpha" => "it is not part of this host's policy",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_names_and_shorts_are_unique_per_subcommand() {
        let mut tables: Vec<(&str, &[Opt])> =
            SUBCOMMANDS.iter().map(|s| (s.name, s.options)).collect();
        tables.push(("compose", COMPOSE_GLOBAL));
        for (verb, opts, _) in COMPOSE_VERBS {
            tables.push((verb, opts));
        }
        for (name, opts) in tables {
            let mut longs = std::collections::BTreeSet::new();
            let mut shorts = std::collections::BTreeSet::new();
            for o in opts {
                for n in o.names {
                    assert!(longs.insert(*n), "{name}: --{n} twice");
                }
                if let Some(s) = o.short {
                    assert!(shorts.insert(s), "{name}: -{s} twice");
                }
            }
        }
    }
}
