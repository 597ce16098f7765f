# A host configuration with agent-gate, as a flake's nixosConfigurations entry would import it
# (with agent-gate's nixosModules.default). Deploys go through `nh os switch` on /etc/nixos, and
# each one waits for `agent-gate approve ID` by root on this host.
{ pkgs, ... }:

{
  imports = [ ./users/ai-worker.nix ];

  # Enough of a machine for the example to build as a system.
  boot.loader.grub.enable = false;
  fileSystems."/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
  system.stateVersion = "25.05";
  networking.hostName = "agent-host";

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      PermitRootLogin = "no";
    };
  };
  virtualisation.docker.enable = true;
  # The deploy tools the rules name (/run/current-system/sw/bin/nh, .../nixos-rebuild).
  environment.systemPackages = [ pkgs.nh ];
  # Audit records go to /dev/log, facility authpriv: journald keeps them
  # (`journalctl SYSLOG_IDENTIFIER=agent-gate`); forward them with your usual collector.
  services.journald.extraConfig = ''
    Storage=persistent
  '';
}
