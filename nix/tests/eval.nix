# Evaluates nix/module.nix with nixpkgs' module system (`lib.evalModules`), beside the mirrored
# NixOS options (nixos-options.nix) and a stand-in `pkgs` (pkgs.nix), and returns what a test
# compares: the files under /etc, the agent's account, the groups, the tmpfiles rules, the
# packages and the build-time checks. Failed assertions are thrown as NixOS throws them
# (top-level.nix), before anything is returned. tests/nix.rs runs it:
#
#   nix-instantiate --eval --strict --json nix/tests/eval.nix \
#     --arg lib 'import ../shared/nixpkgs-lib/lib' --arg modules '[ ./nix/examples/host.nix ]'
#
# `lib` is nixpkgs' lib (passed in: nixpkgs is not part of this repository); `modules` the
# host's own modules; `storeDir` where the stand-in derivations pretend to live.
{ lib, modules ? [ ../examples/host.nix ], storeDir ? "/nix/store" }:

let
  pkgs = import ./pkgs.nix { inherit lib storeDir; };

  evaluated = lib.evalModules {
    modules = [ ./nixos-options.nix ../module.nix { _module.args.pkgs = pkgs; } ] ++ modules;
  };
  inherit (evaluated) config;
  gate = config.services.agent-gate;

  # What a stand-in derivation is, for a test that writes it out or runs it.
  standIn = drv: {
    inherit (drv) name standIn;
    path = drv.outPath;
    text = drv.text or null;
    bin = drv.bin or null;
    bins = drv.bins or [ ];
    buildCommand = drv.buildCommand or null;
    passAsFile = drv.passAsFile or [ ];
    env = lib.filterAttrs (_: lib.isString) (removeAttrs drv [ "buildCommand" "name" "outPath" "drvPath" "standIn" "type" "outputName" "text" "bin" ]);
    nativeBuildInputs = map standIn (drv.nativeBuildInputs or [ ]);
  };

  etc = lib.mapAttrs
    (_: f: {
      inherit (f) target mode user group;
      source = toString f.source;
      # The file's text where it is one the stand-in wrote (a `text` option or a writeText).
      text = if f.text != null then f.text else f.source.text or null;
      sourceDrv = if lib.isAttrs f.source then standIn f.source else null;
    })
    (lib.filterAttrs (_: f: f.enable) config.environment.etc);

  user = config.users.users.${gate.user};
in
# top-level.nix: forcing the system throws the failed assertions.
builtins.seq config.system.build.toplevel.outPath {
  inherit etc;
  user = {
    inherit (user) name isNormalUser isSystemUser group extraGroups home hashedPassword;
    shell = if user.shell == null then null else toString (
      if lib.types.shellPackage.check user.shell then "/run/current-system/sw${user.shell.shellPath}"
      else user.shell
    );
    authorizedKeys = user.openssh.authorizedKeys.keys;
  };
  groups = lib.mapAttrs (_: g: g.members) config.users.groups;
  tmpfiles = config.systemd.tmpfiles.rules;
  sudoers = if config.security.sudo.enable then config.security.sudo.configFile else null;
  shells = config.environment.shells;
  systemPackages = map (p: p.name) config.environment.systemPackages;
  checks = map standIn config.system.checks;
  package = standIn gate.package;
  warnings = config.warnings;
}
