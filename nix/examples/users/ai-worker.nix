# The agent's account, in the style of the host's users/ai-worker.nix, now through agent-gate:
# the module creates the user (password locked, SSH key only, docker group, agent-gate as its
# login shell) and renders its authorized_keys lines from `keys`. The old docker wrapper module
# and the hand-written sudo rules go: the gateway's grammar and the rendered sudoers replace them.
{ ... }:

{
  services.agent-gate = {
    enable = true;
    user = "ai-worker";
    keys.hermes = {
      # The Hermes container's key; the label is what the audit log and `agent-gate list` name.
      publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs hermes@container";
      from = [ "172.20.0.0/16" ];
      description = "the Hermes agent container";
    };
    # The shipped policy (rules.yaml) as Nix attributes.
    settings = import ../rules.nix;
  };
}
