# A stand-in for the few nixpkgs attributes that nix/module.nix and the mirrored NixOS options
# (nix/tests/nixos-options.nix) use, so that the module evaluates without nixpkgs
# (tests/nix.rs). Nothing is built. Each "derivation" is an attribute set with
# `type = "derivation"` and an `outPath` under `storeDir` named by a hash of its inputs, which
# is what NixOS's option types and string interpolation look at; what it would contain is kept
# beside it (`text`, `buildCommand` and the build attributes, `bins`), so that a test can write
# the files and run a build script itself with the host's tools.
{ lib, storeDir ? "/nix/store" }:

let
  # `kind` says what a test does with it: "text" (write `text` at outPath), "bin" (write `text`
  # at outPath/bin/NAME), "package" (link the host's `bins` into outPath/bin), "runCommand"
  # (run `buildCommand` with the other attributes as its environment).
  derivation = kind: name: attrs:
    let
      inputs = builtins.toJSON ({ inherit kind name; } // attrs);
      hash = builtins.substring 0 32 (builtins.hashString "sha256" inputs);
      outPath = "${storeDir}/${hash}-${name}";
    in
    attrs // {
      type = "derivation";
      standIn = kind;
      inherit name outPath;
      drvPath = "${outPath}.drv";
      outputs = [ "out" ];
      outputName = "out";
    };

  package = pname: version: extra:
    derivation "package" "${pname}-${version}" ({ inherit pname version; bins = [ ]; } // extra);

  cargo = lib.importTOML ../../Cargo.toml;

  writeText = name: text: derivation "text" name { inherit text; };
in
{
  inherit writeText;

  # trivial-builders: the script is `#!SHELL` and the text (nixpkgs also checks its syntax).
  writeShellScriptBin = name: text:
    derivation "bin" name {
      bin = name;
      text = "#!/bin/sh\n${text}";
    };

  runCommand = name: env: buildCommand: derivation "runCommand" name (env // { inherit buildCommand; });

  # pkgs/pkgs-lib/formats.nix: `formats.json { }`, the type of RFC 42 `settings` options: any
  # JSON value; attribute sets merge attribute by attribute, lists concatenate.
  formats.json = { }: {
    type =
      let
        valueType = lib.types.nullOr (lib.types.oneOf [
          lib.types.bool
          lib.types.int
          lib.types.float
          lib.types.str
          lib.types.path
          (lib.types.attrsOf valueType)
          (lib.types.listOf valueType)
        ]) // { description = "JSON value"; };
      in
      valueType;
    generate = name: value: writeText name (builtins.toJSON value);
  };

  # The packages the module and the mirrored options name. `bins`: the host tools a test links
  # in when it runs a build script that has the package in nativeBuildInputs.
  agent-gate = package cargo.package.name cargo.package.version {
    bins = [ "agent-gate" ];
    meta.mainProgram = "agent-gate";
  };
  sudo = package "sudo" "1.9" { bins = [ "visudo" ]; };
  diffutils = package "diffutils" "3.10" { bins = [ "diff" ]; };
  nh = package "nh" "4.0" { };
  docker = package "docker" "27.0" { };
  openssh = package "openssh" "9.9" { };
  # Shell packages carry `shellPath` (types.shellPackage).
  shadow = package "shadow" "4.16" { shellPath = "/bin/nologin"; };
  bashInteractive = package "bash-interactive" "5.2" { shellPath = "/bin/bash"; };
}
