#!/usr/bin/env bash
# Times whole invocations of the gateway as paired ratios: each case's command (B) alternates
# with its baseline (A) in one run, so both see the same machine, and the figure is the median
# of B/A over the pairs. Peak RSS is the largest of B's over 10 runs under GNU time (the
# spawner here is Python, whose own pages a vfork child's ru_maxrss would count).
#   scripts/bench-invocation.sh [PAIRS] [GATE...]   (default 500 pairs; as root: forced mode
#                                                     needs a root-owned rules file on a
#                                                     root-only path)
# Without GATE it builds and measures the release build, dynamically linked, and the static
# one (x86_64-unknown-linux-musl, when that target is installed); pass binaries to compare
# others (an older build, say). NO_RECORD=1 measures without the compiled records.
# Cases, each against /bin/true run directly:
#   explain   `agent-gate explain` of `docker ps` on the shipped rules.yaml
#   check     `agent-gate check` of the shipped rules.yaml (always the full path)
#   forced    forced mode running /bin/true through the shipped rules (one rule added for it)
#   forced-1  the same through a rules file of that one rule
# The audit records go to a throwaway datagram listener on a temporary socket.
set -euo pipefail
pairs=${1:-500}
cd "$(dirname "$0")/.."
gates=()
if [ $# -ge 2 ]; then
  for g in "${@:2}"; do gates+=("$(realpath "$g")"); done
else
  cargo build --release --locked --quiet
  gates+=("$PWD/target/release/agent-gate")
  if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    cargo build --release --locked --quiet --target x86_64-unknown-linux-musl
    gates+=("$PWD/target/x86_64-unknown-linux-musl/release/agent-gate")
  else
    echo "(no static build: rustup target add x86_64-unknown-linux-musl)" >&2
  fi
fi
# The rules' path must pass the gateway's walk: root-owned and writable by nobody else, from /.
work=$(mktemp -d /run/agent-gate-bench.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -m 755 "$work/docker-config"

bench_rule='  - id: true-cmd
    command: "true"
    path: /bin/true
    examples:
      allow: ["true"]
      refuse: ["true x"]'
printf 'version: 1\nkeys:\n  bench:\n    may: [true-cmd]\nprograms:\n%s\n' "$bench_rule" > "$work/one.yaml"
# The shipped rules, with a `bench` key and the true-cmd rule added and the docker config
# directory moved to one that exists here.
awk -v rule="$bench_rule" -v config="$work/docker-config" '
  /^keys:$/ { print; print "  bench:\n    may: [true-cmd]"; next }
  /^programs:$/ { print; print rule; next }
  /^  config: / { print "  config: " config; next }
  { print }' rules.yaml > "$work/shipped.yaml"
chmod 644 "$work"/*.yaml

python3 - "$work" "$pairs" "${NO_RECORD:-}" "${gates[@]}" <<'PY'
import os, socket, statistics, subprocess, sys, threading, time

work, pairs, no_record, gates = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
sock = os.path.join(work, "log.sock")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
listener.bind(sock)
def drain():
    while True:
        listener.recv(65536)
threading.Thread(target=drain, daemon=True).start()

devnull = os.open(os.devnull, os.O_RDWR)
base_env = {"PATH": "/usr/bin:/bin", "LANG": "C"}
forced_env = dict(base_env, SSH_ORIGINAL_COMMAND="true",
                  SSH_CONNECTION="127.0.0.1 1 127.0.0.1 22")

def once(argv, env):
    """Run argv once: (nanoseconds, exit status)."""
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
          (os.POSIX_SPAWN_DUP2, devnull, 2)]
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
    _, status = os.waitpid(pid, 0)
    return time.perf_counter_ns() - start, os.waitstatus_to_exitcode(status)

def peak_rss(argv, env):
    """The largest maximum resident set of 10 runs, in KiB, as GNU time reports it."""
    if not os.path.exists("/usr/bin/time"):
        return None
    out = os.path.join(work, "rss")
    peak = 0
    for _ in range(10):
        pid = os.posix_spawn("/usr/bin/time", ["/usr/bin/time", "-o", out, "-f", "%M"] + argv,
                             env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                                (os.POSIX_SPAWN_DUP2, devnull, 1),
                                                (os.POSIX_SPAWN_DUP2, devnull, 2)])
        os.waitpid(pid, 0)
        with open(out) as f:
            peak = max(peak, int(f.read().split()[-1]))
    return peak

true = (["/bin/true"], base_env)
print(f"pairs per case: {pairs} (B alternating with /bin/true)"
      + ("; no compiled records" if no_record else ""))
print(f"{'case':<10} {'ratio':>6} {'B us':>8} {'A us':>8} {'peak RSS':>10}  gateway")
for gate in gates:
    # Each build writes its own records (a record is read only by the build that wrote it).
    for rules in ("shipped", "one"):
        stale = f"{work}/{rules}.yaml.compiled"
        if os.path.exists(stale):
            os.remove(stale)
        if not no_record:
            compiled = subprocess.run([gate, "compile", "--rules", f"{work}/{rules}.yaml"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if compiled.returncode != 0:
                print(f"({gate}: no `compile`, so no record: an older build)")
    cases = [
        ("explain", [gate, "explain", "--rules", f"{work}/shipped.yaml", "--key", "hermes",
                     "--offline", "docker ps"], base_env),
        ("check", [gate, "check", "--rules", f"{work}/shipped.yaml"], base_env),
        ("forced", [gate, "--rules", f"{work}/shipped.yaml", "--key", "bench",
                    "--audit-socket", sock], forced_env),
        ("forced-1", [gate, "--rules", f"{work}/one.yaml", "--key", "bench",
                      "--audit-socket", sock], forced_env),
    ]
    for name, argv, env in cases:
        elapsed, code = once(argv, env)
        if code != 0:
            sys.exit(f"{name}: the gateway exited {code}; run it by hand: {' '.join(argv)}")
        for _ in range(20):  # warm the page cache
            once(argv, env); once(*true)
        ratios, a_times, b_times = [], [], []
        for i in range(pairs):
            # Alternate which goes first, so neither always follows the other.
            if i % 2:
                b, _ = once(argv, env); a, _ = once(*true)
            else:
                a, _ = once(*true); b, _ = once(argv, env)
            ratios.append(b / a); a_times.append(a); b_times.append(b)
        rss = peak_rss(argv, env)
        shown = "no GNU time" if rss is None else f"{rss/1024:.1f} MB"
        print(f"{name:<10} {statistics.median(ratios):>5.2f}x {statistics.median(b_times)/1000:>8.0f}"
              f" {statistics.median(a_times)/1000:>8.0f} {shown:>10}  {gate}", flush=True)
PY
