# The NixOS options that nix/module.nix and nix/examples/host.nix set, declared with the types,
# defaults and merge semantics NixOS gives them, and the parts of NixOS's implementation that
# turn them into the files the gateway depends on (/etc/ssh/sshd_config, the authorized_keys
# file, sudoers, /etc/shells, group membership, the assertion check). Each declaration names the
# nixpkgs file it mirrors (nixpkgs of late 2024, the same as ../shared/nixpkgs-lib); only the
# options used here are mirrored, and an option that is not declared here is an evaluation
# error, as an option that does not exist is on NixOS. Used by nix/tests/eval.nix.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkDefault mkIf mkMerge mkOrder types;

  # nixos/lib/utils.nix: toShellPath, how a user's shell becomes the passwd field.
  toShellPath = shell:
    if types.shellPackage.check shell then "/run/current-system/sw${shell.shellPath}"
    else if types.package.check shell then throw "${shell} is not a shell package"
    else shell;

  # nixos/modules/config/users-groups.nix: userOpts (the options used here).
  userOpts = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      name = mkOption { type = types.passwdEntry types.str; };
      description = mkOption { type = types.passwdEntry types.str; default = ""; };
      uid = mkOption { type = types.nullOr types.int; default = null; };
      isSystemUser = mkOption { type = types.bool; default = false; };
      isNormalUser = mkOption { type = types.bool; default = false; };
      group = mkOption { type = types.str; default = ""; };
      extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
      home = mkOption { type = types.passwdEntry types.path; default = "/var/empty"; };
      createHome = mkOption { type = types.bool; default = false; };
      useDefaultShell = mkOption { type = types.bool; default = false; };
      shell = mkOption {
        type = types.nullOr (types.either types.shellPackage (types.passwdEntry types.path));
        default = pkgs.shadow;
      };
      hashedPassword = mkOption { type = types.nullOr (types.passwdEntry types.str); default = null; };
      password = mkOption { type = types.nullOr types.str; default = null; };
      hashedPasswordFile = mkOption { type = types.nullOr types.str; default = null; };
      initialPassword = mkOption { type = types.nullOr types.str; default = null; };
      initialHashedPassword = mkOption { type = types.nullOr (types.passwdEntry types.str); default = null; };
      packages = mkOption { type = types.listOf types.package; default = [ ]; };
    };
    config = mkMerge [
      {
        name = mkDefault name;
        shell = mkIf config.useDefaultShell (mkDefault cfgUsers.defaultUserShell);
      }
      (mkIf config.isNormalUser {
        group = mkDefault "users";
        createHome = mkDefault true;
        home = mkDefault "${cfgUsers.defaultUserHome}/${config.name}";
        useDefaultShell = mkDefault true;
        isSystemUser = mkDefault false;
      })
    ];
  };

  # nixos/modules/config/users-groups.nix: groupOpts; members are the users that name the
  # group in extraGroups.
  groupOpts = { name, config, ... }: {
    options = {
      name = mkOption { type = types.passwdEntry types.str; };
      gid = mkOption { type = types.nullOr types.int; default = null; };
      members = mkOption { type = types.listOf (types.passwdEntry types.str); default = [ ]; };
    };
    config = {
      name = mkDefault name;
      members = lib.mapAttrsToList (n: u: u.name)
        (lib.filterAttrs (n: u: u.enable && lib.elem config.name u.extraGroups) cfgUsers.users);
    };
  };

  # nixos/modules/services/networking/ssh/sshd.nix: userOptions, merged into users.users.
  sshUserOptions = {
    options.openssh.authorizedKeys = {
      keys = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
      keyFiles = mkOption { type = types.listOf types.path; default = [ ]; };
    };
  };

  cfgUsers = config.users;
  sshd = config.services.openssh;
  sudo = config.security.sudo;

  # sshd.nix: settingsFormat, pkgs.formats.keyValue with `Key value` lines, booleans as yes/no,
  # the listed keys' lists joined.
  sshdValue = v:
    if lib.isInt v then toString v
    else if lib.isString v then v
    else if v == true then "yes"
    else if v == false then "no"
    else throw "unsupported type ${builtins.typeOf v}";
  sshdSettingsText = lib.generators.toKeyValue
    { mkKeyValue = lib.generators.mkKeyValueDefault { mkValueString = sshdValue; } " "; }
    (lib.mapAttrs
      (key: v:
        if lib.isList v then
          (if lib.elem key [ "Ciphers" "KexAlgorithms" "Macs" ] then lib.concatStringsSep "," v
          else lib.concatStringsSep " " v)
        else v)
      (lib.filterAttrs (_: v: v != null) sshd.settings));
  # pkgs/pkgs-lib/formats.nix: keyValue's type, an attribute set of atoms.
  sshdAtom = types.nullOr (types.oneOf [ types.bool types.int types.float types.str ]);
  nullOrBool = default: mkOption { type = types.nullOr types.bool; inherit default; };

  # nixos/modules/security/sudo.nix: how extraRules become sudoers lines.
  sudoUser = u: if lib.isInt u then "#${toString u}" else u;
  sudoGroup = g: if lib.isInt g then "%#${toString g}" else "%${g}";
  sudoCommands = commands: lib.concatStringsSep ", " (map
    (c:
      if lib.isString c then c
      else "${lib.concatStringsSep ":" c.options}${lib.optionalString (c.options != [ ]) ":"} ${c.command}")
    commands);
  sudoRuleLines = rule:
    map (u: "${sudoUser u}     ${rule.host}=(${rule.runAs})    ${sudoCommands rule.commands}") rule.users
    ++ map (g: "${sudoGroup g}  ${rule.host}=(${rule.runAs})    ${sudoCommands rule.commands}") rule.groups;

  failedAssertions = map (x: x.message) (lib.filter (x: !x.assertion) config.assertions);
in
{
  # sshd.nix declares users.users once more, with its own user options: the module system
  # merges the two submodules, as on NixOS.
  imports = [
    { options.users.users = mkOption { type = types.attrsOf (types.submodule sshUserOptions); }; }
  ];

  options = {
    # nixos/modules/misc/assertions.nix
    assertions = mkOption { type = types.listOf types.unspecified; internal = true; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; internal = true; default = [ ]; };

    # nixos/modules/system/activation/top-level.nix
    system.checks = mkOption { type = types.listOf types.package; default = [ ]; };
    system.build.toplevel = mkOption { type = types.package; readOnly = true; };

    # nixos/modules/config/users-groups.nix
    users.mutableUsers = mkOption { type = types.bool; default = true; };
    users.defaultUserHome = mkOption { type = types.str; default = "/home"; };
    users.users = mkOption { type = types.attrsOf (types.submodule userOpts); default = { }; };
    users.groups = mkOption { type = types.attrsOf (types.submodule groupOpts); default = { }; };

    # nixos/modules/config/shells-environment.nix
    users.defaultUserShell = mkOption {
      type = types.either types.path types.shellPackage;
      default = pkgs.bashInteractive;
    };
    environment.shells = mkOption {
      type = types.listOf (types.either types.shellPackage types.path);
      default = [ ];
    };

    # nixos/modules/config/system-path.nix
    environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };

    # nixos/modules/system/etc/etc.nix
    environment.etc = mkOption {
      default = { };
      type = types.attrsOf (types.submodule ({ name, config, options, ... }: {
        options = {
          enable = mkOption { type = types.bool; default = true; };
          target = mkOption { type = types.str; };
          text = mkOption { type = types.nullOr types.lines; default = null; };
          source = mkOption { type = types.path; };
          mode = mkOption { type = types.str; default = "symlink"; };
          uid = mkOption { type = types.int; default = 0; };
          gid = mkOption { type = types.int; default = 0; };
          user = mkOption { type = types.str; default = "+${toString config.uid}"; };
          group = mkOption { type = types.str; default = "+${toString config.gid}"; };
        };
        config = {
          target = mkDefault name;
          source = mkIf (config.text != null)
            (lib.mkDerivedConfig options.text
              (pkgs.writeText ("etc-" + lib.replaceStrings [ "/" ] [ "-" ] name)));
        };
      }));
    };

    # nixos/modules/system/boot/systemd/tmpfiles.nix
    systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };

    # nixos/modules/services/networking/ssh/sshd.nix
    services.openssh = {
      enable = mkOption { type = types.bool; default = false; };
      authorizedKeysFiles = mkOption { type = types.listOf types.str; default = [ ]; };
      authorizedKeysInHomedir = mkOption { type = types.bool; default = true; };
      settings = mkOption {
        default = { };
        type = types.submodule {
          freeformType = types.attrsOf sshdAtom;
          options = {
            UsePAM = nullOrBool true;
            PasswordAuthentication = nullOrBool true;
            KbdInteractiveAuthentication = nullOrBool true;
            X11Forwarding = nullOrBool false;
            PermitRootLogin = mkOption {
              type = types.nullOr (types.enum [ "yes" "without-password" "prohibit-password" "forced-commands-only" "no" ]);
              default = "prohibit-password";
            };
            AllowUsers = mkOption { type = types.nullOr (types.listOf types.str); default = null; };
          };
        };
      };
      extraConfig = mkOption { type = types.lines; default = ""; };
    };
    # nixos/modules/security/sudo.nix
    security.sudo = {
      enable = mkOption { type = types.bool; default = true; };
      wheelNeedsPassword = mkOption { type = types.bool; default = true; };
      defaultOptions = mkOption { type = types.listOf types.str; default = [ "SETENV" ]; };
      configFile = mkOption { type = types.lines; };
      extraRules = mkOption {
        default = [ ];
        type = types.listOf (types.submodule {
          options = {
            users = mkOption { type = types.listOf (types.either types.str types.int); default = [ ]; };
            groups = mkOption { type = types.listOf (types.either types.str types.int); default = [ ]; };
            host = mkOption { type = types.str; default = "ALL"; };
            runAs = mkOption { type = types.str; default = "ALL:ALL"; };
            commands = mkOption {
              type = types.listOf (types.either types.str (types.submodule {
                options = {
                  command = mkOption { type = types.str; };
                  options = mkOption { type = types.listOf types.str; default = [ ]; };
                };
              }));
            };
          };
        });
      };
      extraConfig = mkOption { type = types.lines; default = ""; };
    };

    # nixos/modules/virtualisation/docker.nix
    virtualisation.docker.enable = mkOption { type = types.bool; default = false; };

    # Declared so that nix/examples/host.nix evaluates; nothing here reads them.
    # nixos/modules/system/boot/loader/grub/grub.nix
    boot.loader.grub.enable = mkOption { type = types.bool; default = true; };
    # nixos/modules/tasks/filesystems.nix
    fileSystems = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options.device = mkOption { type = types.nullOr types.str; default = null; };
        options.fsType = mkOption { type = types.str; default = "auto"; };
      });
    };
    # nixos/modules/misc/version.nix
    system.stateVersion = mkOption { type = types.str; };
    # nixos/modules/tasks/network-interfaces.nix
    networking.hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos";
    };
    # nixos/modules/system/boot/systemd/journald.nix
    services.journald.extraConfig = mkOption { type = types.lines; default = ""; };
  };

  config = mkMerge [
    # users-groups.nix: the accounts and groups NixOS always has, and the assertions on each
    # user that an account made by a module must pass.
    {
      users.users.root = { uid = 0; description = "System administrator"; home = "/root"; group = "root"; };
      users.users.nobody = { uid = 65534; isSystemUser = true; group = "nogroup"; };
      users.groups = {
        root.gid = 0;
        wheel.gid = 1;
        nogroup.gid = 65534;
        users.gid = 100;
      };
      environment.systemPackages = lib.filter types.shellPackage.check
        (lib.mapAttrsToList (_: u: u.shell) cfgUsers.users);
      assertions =
        let
          groupNames = lib.mapAttrsToList (_: g: g.name) cfgUsers.groups;
          withoutGroup = lib.filterAttrs (_: u: u.group != "" && !lib.elem u.group groupNames) cfgUsers.users;
        in
        [
          {
            assertion = withoutGroup == { };
            message = "The following users have a primary group that is undefined: ${lib.concatStringsSep " " (lib.attrNames withoutGroup)}";
          }
        ]
        ++ lib.concatLists (lib.mapAttrsToList
          (_: user: [
            {
              assertion = builtins.match "[a-zA-Z0-9_.][a-zA-Z0-9_.-]*" user.name != null;
              message = "The username \"${user.name}\" is not valid.";
            }
            {
              assertion = user.hashedPassword != null -> builtins.match ".*:.*" user.hashedPassword == null;
              message = "The password hash of user \"${user.name}\" contains a \":\" character.";
            }
            {
              assertion =
                let system = user.isSystemUser || (user.uid != null && user.uid < 1000 && !user.isNormalUser);
                in lib.xor system user.isNormalUser;
              message = "Exactly one of users.users.${user.name}.isSystemUser and users.users.${user.name}.isNormalUser must be set.";
            }
            {
              assertion = user.group != "";
              message = "users.users.${user.name}.group is unset.";
            }
          ])
          cfgUsers.users);
    }

    # shells-environment.nix: /etc/shells.
    {
      environment.etc.shells.text = ''
        ${lib.concatStringsSep "\n" (map toShellPath config.environment.shells)}
        /bin/sh
      '';
    }

    # tmpfiles.nix: the rules become one tmpfiles.d file.
    {
      environment.etc."tmpfiles.d/00-nixos.conf".text = ''
        # This file is created automatically and should not be modified.
        # Please change the option ‘systemd.tmpfiles.rules’ instead.

        ${lib.concatStringsSep "\n" config.systemd.tmpfiles.rules}
      '';
    }

    # sshd.nix: the authorized_keys files, and sshd_config as the settings followed by
    # extraConfig (NixOS concatenates them in a runCommand, `cat settings - <<EOL`; the text is
    # the same). Of the base configuration NixOS puts first (mkOrder 0), the lines that bear on
    # the account.
    (mkIf sshd.enable {
      users.users.sshd = { isSystemUser = true; group = "sshd"; description = "SSH privilege separation user"; };
      users.groups.sshd = { };
      services.openssh.authorizedKeysFiles =
        lib.optional sshd.authorizedKeysInHomedir "%h/.ssh/authorized_keys" ++ [ "/etc/ssh/authorized_keys.d/%u" ];
      services.openssh.extraConfig = mkOrder 0 ''
        AuthorizedKeysFile ${toString sshd.authorizedKeysFiles}
      '';
      environment.etc = lib.listToAttrs (map
        (u: lib.nameValuePair "ssh/authorized_keys.d/${u.name}" {
          mode = "0444";
          source = pkgs.writeText "${u.name}-authorized_keys" ''
            ${lib.concatStringsSep "\n" u.openssh.authorizedKeys.keys}
            ${lib.concatMapStrings (f: lib.readFile f + "\n") u.openssh.authorizedKeys.keyFiles}
          '';
        })
        (lib.attrValues (lib.filterAttrs
          (_: u: u.openssh.authorizedKeys.keys != [ ] || u.openssh.authorizedKeys.keyFiles != [ ])
          cfgUsers.users)))
      // {
        "ssh/sshd_config".text = "${sshdSettingsText}${sshd.extraConfig}\n";
      };
    })

    # sudo.nix: root's and wheel's rules, then extraRules, then extraConfig; /etc/sudoers is
    # checked with visudo when it is built.
    (mkIf sudo.enable {
      security.sudo.extraRules =
        let
          rule = { users ? [ ], groups ? [ ], opts ? [ ] }: [{
            inherit users groups;
            commands = [{ command = "ALL"; options = opts ++ sudo.defaultOptions; }];
          }];
        in
        mkMerge [
          (mkOrder 400 (rule { users = [ "root" ]; }))
          (mkOrder 600 (rule { groups = [ "wheel" ]; opts = lib.optional (!sudo.wheelNeedsPassword) "NOPASSWD"; }))
        ];
      security.sudo.configFile = lib.concatStringsSep "\n" (lib.filter (s: s != "") [
        ''
          # Don't edit this file. Set the NixOS options ‘security.sudo.configFile’
          # or ‘security.sudo.extraRules’ instead.
        ''
        (lib.concatStringsSep "\n" (lib.concatMap sudoRuleLines
          (lib.filter (rule: rule.commands != [ ]) sudo.extraRules)))
        "\n"
        (lib.optionalString (sudo.extraConfig != "") ''
          # extraConfig
          ${sudo.extraConfig}
        '')
      ]);
      environment.systemPackages = [ pkgs.sudo ];
      environment.etc.sudoers = {
        source = pkgs.runCommand "sudoers" { src = pkgs.writeText "sudoers-in" sudo.configFile; }
          "visudo -f $src -c && cp $src $out";
        mode = "0440";
      };
    })

    # docker.nix: the docker group (ids.nix: gid 131) and the client.
    (mkIf config.virtualisation.docker.enable {
      users.groups.docker.gid = 131;
      environment.systemPackages = [ pkgs.docker ];
    })

    # top-level.nix: the system is built only if every assertion holds; the failed ones are
    # thrown, as NixOS throws them, and warnings are printed.
    {
      system.build.toplevel =
        let
          system = pkgs.runCommand "nixos-system-${config.networking.hostName}"
            { passedChecks = lib.concatStringsSep " " config.system.checks; } "";
        in
        if failedAssertions != [ ] then
          throw "\nFailed assertions:\n${lib.concatStringsSep "\n" (map (x: "- ${x}") failedAssertions)}"
        else lib.showWarnings config.warnings system;
    }
  ];
}
