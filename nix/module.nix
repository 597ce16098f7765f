# services.agent-gate: the gateway for an AI agent's SSH account, from one rules file.
#
# What it sets up: the package; /etc/agent-gate/rules.yaml (root-owned, 0444) from `settings`
# (Nix attributes, RFC 42 style) or `rulesFile`; the agent's account (locked password, in the
# docker group, agent-gate as its login shell, authorized_keys lines with restrict, from= and
# command=); the sshd `Match User` block; sudoers lines for exactly the declared sudo
# diagnostics and the deploy approval step; the approval store. A build-time check
# (`system.checks`) runs `agent-gate check` on the rules, renders the sudoers lines and checks
# them with visudo, and compares the authorized_keys lines made here with what
# `agent-gate render authorized-keys` prints for the same rules: a bad policy fails
# `nixos-rebuild build`, not the first SSH login. No import-from-derivation: nothing built is
# read back into the evaluation. Assertions refuse at evaluation what cannot work or is not
# safe: sshd off, root as the agent, a key label or network that is not plain (both go into
# authorized_keys options), another module's key on the account, sudo rules without sudo, no docker group for `dockerGroup`, and
# `forceCommand` with a label that pins no key (of `settings`; a `rulesFile` is checked at
# build time).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.agent-gate;
  gateLib = import ./lib.nix;
  json = pkgs.formats.json { };

  rulesPath = "/etc/agent-gate/rules.yaml";
  gate = "${cfg.package}/bin/agent-gate";

  # `keys` merged into the rules: one source of truth for labels, public keys and networks.
  keyRules = lib.mapAttrs
    (label: key: lib.filterAttrs (_: v: v != null) {
      public_key = key.publicKey;
      from = if key.from == [ ] then null else key.from;
      may = if key.may != null then key.may
        else (cfg.settings.keys.${label}.may or (gateLib.ruleIds cfg.settings));
      description = key.description;
    })
    cfg.keys;

  settings = cfg.settings // {
    version = cfg.settings.version or 1;
    keys = lib.recursiveUpdate (cfg.settings.keys or { }) keyRules;
  };

  # What the assertions check before anything is built. A `rulesFile` is not read here (no
  # import-from-derivation); the build-time check below covers it.
  quoted = names: lib.concatMapStringsSep ", " (n: "`${n}`") names;
  labels = lib.unique (lib.attrNames cfg.keys ++ lib.attrNames (cfg.settings.keys or { }));
  badLabels = lib.filter (l: builtins.match "[a-z0-9][a-z0-9_.-]*" l == null) labels;
  badNetworks = lib.concatLists (lib.mapAttrsToList
    (label: key: map (net: "`${net}` (of ${label})")
      (lib.filter (net: builtins.match "[0-9A-Fa-f.:]+(/[0-9]{1,3})?" net == null) key.from))
    cfg.keys);
  sudoUsers =
    lib.optional (settings ? deploy) "deploy"
    ++ lib.optional ((settings.docker.sudo_subcommands or [ ]) != [ ]) "docker"
    ++ map (p: p.id or "a program") (lib.filter (p: p.sudo or false) (settings.programs or [ ]));
  usesSudo = sudoUsers != [ ];
  agentKeys = config.users.users.${cfg.user}.openssh.authorizedKeys;
  unpinned = lib.filter (l: !(settings.keys.${l} ? public_key)) (lib.attrNames settings.keys);

  # JSON is YAML 1.2: the gateway reads it as it is, and no converter runs at build time.
  rulesFile =
    if cfg.rulesFile != null then cfg.rulesFile
    else pkgs.writeText "agent-gate-rules.yaml" (builtins.toJSON settings);

  keyLines = gateLib.authorizedKeys {
    inherit gate;
    rules = rulesPath;
    keys = lib.mapAttrs (_: k: { inherit (k) publicKey from; }) cfg.keys;
  };

  render = piece: extra:
    "agent-gate render ${piece} --rules ${rulesFile} --gate ${gate} --installed-rules ${rulesPath} --user ${cfg.user} ${extra}";

  # Built with the system: the rules are valid, sudoers accepts the rendered lines, and the
  # authorized_keys lines made here are the ones the gateway would render.
  checked = pkgs.runCommand "agent-gate-checked"
    {
      nativeBuildInputs = [ cfg.package pkgs.sudo pkgs.diffutils ];
      keyLines = lib.concatMapStrings (l: l + "\n") keyLines;
      passAsFile = [ "keyLines" ];
    }
    ''
      mkdir -p $out
      agent-gate check --rules ${rulesFile}
      ${render "authorized-keys" ""} | grep -v '^#' > rendered-keys || true
      if ! diff -u "$keyLinesPath" rendered-keys; then
        echo "services.agent-gate.keys and the rules disagree (above: the module's lines, then the gateway's)" >&2
        exit 1
      fi
      ${render "sudoers" ""} > $out/sudoers
      visudo -c -f $out/sudoers
      # The compiled record the gateway loads instead of the YAML (same package, same build).
      agent-gate compile --rules ${rulesFile} --out $out/rules.yaml.compiled
    '';

  # The login shell: agent-gate itself, told where the rules are (sshd passes only `-c`).
  shell = pkgs.writeShellScriptBin "agent-gate-shell" ''
    exec ${gate} --rules ${rulesPath} "$@"
  '';
  shellPath = "${shell}/bin/agent-gate-shell";

  keyModule = { name, ... }: {
    options = {
      publicKey = lib.mkOption {
        type = lib.types.str;
        description = "The OpenSSH public key of this label. Connections under the label must authenticate with it (sshd's ExposeAuthInfo, checked by the gateway).";
        example = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs hermes";
      };
      from = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "Client networks (CIDR) this key may connect from: sshd's from= and the gateway's own check. Empty: anywhere.";
        example = [ "172.20.0.0/16" ];
      };
      may = lib.mkOption {
        type = lib.types.nullOr (lib.types.listOf lib.types.str);
        default = null;
        description = "Rule ids this key may use (`docker`, `deploy`, program rule ids). Null: what `settings.keys.<label>.may` says, else every rule in `settings`.";
        example = [ "docker" "deploy" "journalctl" ];
      };
      description = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Who holds this key, for the rules file and `agent-gate list`.";
        example = "the Hermes agent container";
      };
    };
  };
in
{
  options.services.agent-gate = {
    enable = lib.mkEnableOption "agent-gate, the restricted SSH gateway for an AI agent's account";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.agent-gate or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.agent-gate";
      description = "The agent-gate package.";
    };

    user = lib.mkOption {
      type = lib.types.strMatching "[a-z_][a-z0-9_-]{0,31}";
      default = "ai-worker";
      description = "The account the agent logs in as. The module creates it: password locked, public keys only.";
      example = "ai-worker";
    };

    keys = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule keyModule);
      default = { };
      description = "The agent's keys by label. Each becomes an authorized_keys line `restrict,from=...,command=\"agent-gate --rules ... --key LABEL\"` and the label's entry in the rules.";
      example = lib.literalExpression ''
        { hermes = { publicKey = "ssh-ed25519 AAAA... hermes"; from = [ "172.20.0.0/16" ]; }; }
      '';
    };

    settings = lib.mkOption {
      type = json.type;
      default = { };
      description = "The rules, as Nix attributes (see the README's rules reference and nix/examples/rules.nix, the shipped policy). Written to /etc/agent-gate/rules.yaml with `keys` merged in. Set this or `rulesFile`.";
      example = lib.literalExpression "import ./rules.nix";
    };

    rulesFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "A rules file to install as it is, instead of `settings`. Its keys must pin the same public keys and networks as `keys` (checked at build time).";
      example = lib.literalExpression "./rules.yaml";
    };

    loginShell = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Make agent-gate the account's login shell, so that a key without command= is gated too (its label then comes from the pinned key).";
    };

    forceCommand = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Add a ForceCommand to the sshd Match block (every label must pin a public key).";
    };

    dockerGroup = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Put the account in the docker group, which the docker rules need. The agent reaches docker only through the gateway's grammar.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.settings == { }) != (cfg.rulesFile == null);
        message = "services.agent-gate: set exactly one of `settings` and `rulesFile`.";
      }
      {
        assertion = cfg.keys != { };
        message = "services.agent-gate: declare at least one key in `keys`.";
      }
      {
        assertion = gateLib.plainPath gate;
        message = "services.agent-gate: the package path must be plain (it goes into command= and sudoers).";
      }
      {
        assertion = config.services.openssh.enable;
        message = "services.agent-gate: the agent reaches the gateway through sshd; enable services.openssh.";
      }
      {
        assertion = cfg.user != "root";
        message = "services.agent-gate: `user` is the agent's own account, not root.";
      }
      {
        assertion = badLabels == [ ];
        message = "services.agent-gate.keys: a label is lowercase letters, digits, `-`, `_`, `.` (it goes into command=\"... --key LABEL\" and the rules); not so: ${quoted badLabels}.";
      }
      {
        assertion = badNetworks == [ ];
        message = "services.agent-gate.keys: `from` holds addresses and networks (10.0.0.0/8, 2001:db8::/32; they go into from=\"...\"); not so: ${lib.concatStringsSep ", " badNetworks}.";
      }
      {
        assertion = usesSudo -> config.security.sudo.enable;
        message = "services.agent-gate: the rules run sudo (${lib.concatStringsSep ", " sudoUsers}), which needs security.sudo.enable: the sudoers lines are included from it.";
      }
      {
        assertion = cfg.dockerGroup -> config.users.groups ? docker;
        message = "services.agent-gate: dockerGroup puts the account in the `docker` group, which does not exist; enable virtualisation.docker or set dockerGroup = false.";
      }
      {
        # authorizedKeys.keys is a list that merges: a key another module adds to the account
        # would have neither restrict nor command=.
        assertion = agentKeys.keys == keyLines && agentKeys.keyFiles == [ ];
        message = "services.agent-gate: users.users.${cfg.user}.openssh.authorizedKeys has keys that services.agent-gate.keys did not make (they would have no restrict and no command=); declare them in services.agent-gate.keys.";
      }
      {
        assertion = cfg.forceCommand -> unpinned == [ ];
        message = "services.agent-gate: forceCommand needs every label to pin a public key; without one in `settings.keys`: ${quoted unpinned}.";
      }
    ];

    environment.systemPackages = [ cfg.package ];

    # Copies, not symlinks: root-owned files the gateway checks on open.
    environment.etc."agent-gate/rules.yaml" = {
      source = rulesFile;
      mode = "0444";
    };
    environment.etc."agent-gate/rules.yaml.compiled" = {
      source = "${checked}/rules.yaml.compiled";
      mode = "0444";
    };
    environment.etc."agent-gate/sudoers.d/agent-gate" = {
      source = "${checked}/sudoers";
      mode = "0440";
    };

    security.sudo.enable = lib.mkDefault true;
    security.sudo.extraConfig = lib.mkAfter ''
      @includedir /etc/agent-gate/sudoers.d
    '';

    users.users.${cfg.user} = {
      isNormalUser = true;
      description = "AI agent, gated by agent-gate";
      hashedPassword = "!";
      extraGroups = lib.optional cfg.dockerGroup "docker";
      openssh.authorizedKeys.keys = keyLines;
      shell = lib.mkIf cfg.loginShell shellPath;
    };
    environment.shells = lib.optional cfg.loginShell shellPath;

    services.openssh.extraConfig = lib.mkAfter (gateLib.sshdMatchBlock {
      inherit (cfg) user forceCommand;
      inherit gate;
      rules = rulesPath;
    });

    system.checks = [ checked ];

    # The approval store, root's alone; the docker config directory the rules point docker at.
    systemd.tmpfiles.rules = [
      "d /var/lib/agent-gate 0755 root root -"
      "d ${settings.deploy.approval.store or "/var/lib/agent-gate/approvals"} 0700 root root -"
    ] ++ lib.optional (settings ? docker.config) "d ${settings.docker.config} 0755 root root -";
  };
}
