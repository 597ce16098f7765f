# agent-gate, built from Cargo.lock with its test suite run. Tests that need root, a Docker
# engine or a real sshd report themselves skipped in the build sandbox; the rest (unit, CLI,
# corpus, property, render) run. The man page and shell completions come from the binary's
# own command-line definition (`agent-gate generate`).
{ lib, stdenv, rustPlatform, installShellFiles, sudo }:

let
  cargo = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = cargo.package.name;
  inherit (cargo.package) version;

  src = lib.fileset.toSource {
    root = ./..;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      ../benches
      ../rules.yaml
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ installShellFiles ];
  # `visudo -c` checks the rendered sudoers in the render tests.
  nativeCheckInputs = [ sudo ];

  postInstall = lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    $out/bin/agent-gate generate man > agent-gate.1
    installManPage agent-gate.1
    installShellCompletion --cmd agent-gate \
      --bash <($out/bin/agent-gate generate bash) \
      --fish <($out/bin/agent-gate generate fish) \
      --zsh <($out/bin/agent-gate generate zsh)
  '';

  meta = {
    description = "Restricted SSH forced-command gateway for AI agents";
    longDescription = ''
      sshd runs agent-gate as the forced command of an AI agent's key. It splits the command
      without a shell, allows it only if a typed rule accepts every word (docker, sudo
      diagnostics, deploys a human approves), audits every decision to syslog and runs exactly
      the argv it approved.
    '';
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "agent-gate";
    platforms = lib.platforms.linux;
  };
}
