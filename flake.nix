{
  description = "agent-gate: a restricted SSH forced-command gateway for AI agents";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: {
        agent-gate = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (pkgs: rec {
        agent-gate = pkgs.callPackage ./nix/package.nix { };
        default = agent-gate;
      });

      nixosModules.default = {
        imports = [ ./nix/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.system}.agent-gate;
        # The example host evaluates and its build-time checks (rules, sudoers, keys) pass.
        example-host = (nixpkgs.lib.nixosSystem {
          inherit (pkgs) system;
          modules = [ self.nixosModules.default ./nix/examples/host.nix ];
        }).config.system.build.toplevel;
        # A client VM reaches the gateway over SSH (nix/tests/gateway.nix).
        gateway = pkgs.testers.runNixOSTest (import ./nix/tests/gateway.nix { inherit self; });
      });
    };
}
