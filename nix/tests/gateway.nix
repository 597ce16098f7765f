# NixOS VM test: a client VM reaches the agent's account over SSH. An allowed command runs, a
# refused one exits 77, both are in the journal, and a deploy waits for root's approval and
# then runs once. Run with `nix flake check` (or `nix build .#checks.x86_64-linux.gateway`);
# it needs a machine with nixpkgs and KVM, so the project's own test suite does not run it.
{ self }:
{ pkgs, lib, ... }:

let
  keys = import "${pkgs.path}/nixos/tests/ssh-keys.nix" pkgs;
  # Stands in for nh: says that it ran, with what, as whom.
  nh = pkgs.writeShellScriptBin "nh" ''
    { id -u; printf '%s\n' "$@"; } > /tmp/nh.ran
    echo switched
  '';
in
{
  name = "agent-gate";

  nodes.server = { ... }: {
    imports = [ self.nixosModules.default ];
    services.openssh.enable = true;
    virtualisation.docker.enable = true;
    services.agent-gate = {
      enable = true;
      keys.hermes.publicKey = keys.snakeOilEd25519PublicKey;
      settings = {
        version = 1;
        sudo = "/run/wrappers/bin/sudo";
        docker = {
          program = "/run/current-system/sw/bin/docker";
          config = "/etc/agent-gate/docker-config";
          subcommands.ps = [ "all" "quiet" ];
        };
        programs = [
          {
            id = "ss-listening";
            command = "ss";
            path = "/run/current-system/sw/bin/ss";
            sudo = true;
            options = [
              { short = "t"; long = "tcp"; }
              { short = "l"; long = "listening"; }
              { short = "n"; long = "numeric"; }
            ];
          }
        ];
        deploy = {
          flake = "/etc/nixos";
          nh = "${nh}/bin/nh";
          approval.wait_seconds = 0;
        };
      };
    };
    # A locked flake to deploy: copies (mode set), since the binding reads regular files.
    environment.etc."nixos/flake.nix" = { text = "{ outputs = _: { }; }\n"; mode = "0444"; };
    environment.etc."nixos/flake.lock" = { text = ''{ "nodes": { }, "version": 7 }''; mode = "0444"; };
  };

  nodes.client = { ... }: { };

  testScript = ''
    import re

    start_all()
    server.wait_for_unit("sshd.service")
    server.wait_for_unit("docker.service")
    client.succeed("install -D -m 600 ${keys.snakeOilEd25519PrivateKey} /root/.ssh/id_ed25519")
    ssh = "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ai-worker@server"

    with subtest("an allowed command runs"):
        client.succeed(f"{ssh} 'docker ps -q'")
        client.succeed(f"{ssh} 'sudo ss -tln' | grep ':22'")

    with subtest("a refused command exits 77"):
        status, out = client.execute(f"{ssh} bash 2>&1")
        assert status == 77, f"{status}: {out}"
        status, out = client.execute(f"{ssh} 'docker run --privileged alpine' 2>&1")
        assert status == 77, f"{status}: {out}"

    with subtest("both are in the journal"):
        log = "journalctl SYSLOG_IDENTIFIER=agent-gate"
        server.wait_until_succeeds(f"{log} | grep -F 'cmd=\"docker ps -q\"' | grep -F 'decision=\"allow\"'")
        server.wait_until_succeeds(f"{log} | grep -F 'cmd=\"bash\"' | grep -F 'decision=\"refuse\"'")

    with subtest("a deploy waits for root's approval, then runs once"):
        status, out = client.execute(f"{ssh} 'nh os switch' 2>&1")
        assert status == 75, f"{status}: {out}"
        request = re.search(r"deploy request ([0-9a-f]{8})", out).group(1)
        server.fail("test -e /tmp/nh.ran")
        server.succeed(f"agent-gate pending | grep -F 'request {request}  pending'")
        server.fail(f"su ai-worker -s /bin/sh -c 'agent-gate approve {request} --yes'")
        server.succeed(f"agent-gate approve {request} --yes")
        client.succeed(f"{ssh} 'nh os switch'")
        server.succeed("head -1 /tmp/nh.ran | grep -x 0")
        status, out = client.execute(f"{ssh} 'nh os switch' 2>&1")
        assert status == 75, f"an approval runs once: {status}: {out}"
        server.wait_until_succeeds(f"{log} | grep -F 'event=\"executed\"' | grep -F 'request=\"{request}\"'")
  '';
}
