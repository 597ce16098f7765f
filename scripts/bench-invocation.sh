#!/usr/bin/env bash
# Times whole forced-mode invocations: the gateway deciding, auditing and running /bin/true,
# against running /bin/true directly, and reports the gateway's peak memory.
#   scripts/bench-invocation.sh [RUNS]      (default 1000; needs root for a root-owned rules file)
# The audit records go to a throwaway datagram listener on a temporary socket.
set -euo pipefail
runs=${1:-1000}
cd "$(dirname "$0")/.."
cargo build --release --quiet
gate=$PWD/target/release/agent-gate
work=$(mktemp -d)
trap 'kill "$listener" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/rules.yaml" <<YAML
version: 1
keys:
  bench:
    may: [true-cmd]
programs:
  - id: true-cmd
    command: "true"
    path: /bin/true
    examples:
      allow: ["true"]
      refuse: ["true x"]
YAML
chmod 644 "$work/rules.yaml"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    s.recv(65536)
' "$work/log.sock" > "$work/listener.out" &
listener=$!
for _ in $(seq 50); do grep -q ready "$work/listener.out" 2>/dev/null && break; sleep 0.1; done

export SSH_ORIGINAL_COMMAND=true SSH_CONNECTION="127.0.0.1 1 127.0.0.1 22"
gate_once() { "$gate" --rules "$work/rules.yaml" --key bench --audit-socket "$work/log.sock"; }
gate_once || { echo "the gateway refused the benchmark command (exit $?)" >&2; exit 1; }

time_loop() { # prints nanoseconds per run
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$@"; done
  end=$(date +%s%N)
  echo $(( (end - start) / runs ))
}
direct=$(time_loop /bin/true)
gated=$(time_loop gate_once)
printf 'runs: %d\n/bin/true directly:        %7d us per run\nthrough agent-gate:        %7d us per run\noverhead:                  %7d us per run\n' \
  "$runs" $((direct / 1000)) $((gated / 1000)) $(((gated - direct) / 1000))
if [ -x /usr/bin/time ]; then
  rss=$(/usr/bin/time -f %M "$gate" --rules "$work/rules.yaml" --key bench --audit-socket "$work/log.sock" 2>&1 >/dev/null | tail -n 1)
  echo "peak RSS of agent-gate:    ${rss} KiB"
else
  echo "peak RSS: install GNU time (apt-get install time) to measure"
fi
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 20 --runs "$runs" /bin/true \
    "$gate --rules $work/rules.yaml --key bench --audit-socket $work/log.sock"
fi
