# Pure functions of the NixOS module, written with builtins only so that they evaluate without
# nixpkgs: the project's test suite evaluates them with `nix-instantiate --eval` and compares the
# result with what `agent-gate render` prints for the same input (tests/nix.rs).
let
  inherit (builtins)
    attrNames
    concatStringsSep
    elem
    filter
    isString
    length
    map
    match
    split
    ;

  words = text: filter (w: isString w && w != "") (split "[[:space:]]+" text);

  # A network as the gateway writes it: ADDR/PREFIX, a bare address taken as a host.
  network = net:
    if match ".*/.*" net != null then net
    else if match ".*:.*" net != null then "${net}/128"
    else "${net}/32";

  # `TYPE BLOB COMMENT`; the comment is kept only if it is plain printable words, else it is
  # `agent-gate:LABEL` (a newline in authorized_keys would be another key).
  publicKey = label: text:
    let
      ws = words text;
      comment = builtins.genList (i: builtins.elemAt ws (i + 2)) (length ws - 2);
      plain = comment != [ ] && builtins.all (w: match "[!-~]+" w != null) comment;
      kind = builtins.elemAt ws 0;
      blob = builtins.elemAt ws 1;
    in
    if length ws < 2 then throw "agent-gate: the public key of `${label}` is not `TYPE BLOB [COMMENT]`"
    else if plain then concatStringsSep " " ([ kind blob ] ++ comment)
    else "${kind} ${blob} agent-gate:${label}";
in
rec {
  # The settings of the sshd `Match User` block, in order, as `agent-gate render sshd`.
  sshdSettings = [
    [ "AuthenticationMethods" "publickey" ]
    [ "PubkeyAuthentication" "yes" ]
    [ "PasswordAuthentication" "no" ]
    [ "KbdInteractiveAuthentication" "no" ]
    [ "HostbasedAuthentication" "no" ]
    [ "ExposeAuthInfo" "yes" ]
    [ "PermitTTY" "no" ]
    [ "DisableForwarding" "yes" ]
    [ "AllowAgentForwarding" "no" ]
    [ "AllowTcpForwarding" "no" ]
    [ "AllowStreamLocalForwarding" "no" ]
    [ "X11Forwarding" "no" ]
    [ "PermitTunnel" "no" ]
    [ "PermitListen" "none" ]
    [ "PermitOpen" "none" ]
    [ "GatewayPorts" "no" ]
    [ "PermitUserRC" "no" ]
    # Replaces a global AcceptEnv for the account (a Match block cannot empty the list).
    [ "AcceptEnv" "AGENT_GATE_ACCEPTS_NO_ENVIRONMENT" ]
    [ "ClientAliveInterval" "15" ]
    [ "ClientAliveCountMax" "4" ]
  ];

  # The `Match User` block; with `forceCommand`, a ForceCommand without `--key`.
  sshdMatchBlock = { user, gate, rules, forceCommand ? false }:
    concatStringsSep "\n" (
      [ "Match User ${user}" ]
      ++ map (s: "    ${builtins.elemAt s 0} ${builtins.elemAt s 1}") sshdSettings
      ++ (if forceCommand then [ "    ForceCommand ${gate} --rules ${rules}" ] else [ ])
    ) + "\n";

  # One authorized_keys line per label with a public key, in label order:
  # `restrict[,from="NETS"],command="GATE --rules RULES --key LABEL" KEY`.
  # `keys` is { LABEL = { publicKey = "ssh-ed25519 ..." or null; from = [ CIDR ... ]; }; }.
  authorizedKeys = { gate, rules, keys }:
    let
      labels = filter (label: (keys.${label}.publicKey or null) != null) (attrNames keys);
      line = label:
        let
          key = keys.${label};
          from = key.from or [ ];
          options =
            [ "restrict" ]
            ++ (if from == [ ] then [ ] else [ "from=\"${concatStringsSep "," (map network from)}\"" ])
            ++ [ "command=\"${gate} --rules ${rules} --key ${label}\"" ];
        in
        "${concatStringsSep "," options} ${publicKey label key.publicKey}";
    in
    map line labels;

  # The rule ids a rules attrset defines: what a key may use when it names none.
  ruleIds = settings:
    (if settings ? docker then [ "docker" ] else [ ])
    ++ (if settings ? deploy then [ "deploy" ] else [ ])
    ++ map (p: p.id) (settings.programs or [ ]);

  # Paths and the user name go into command="..." and sudoers: plain characters only.
  plainPath = path: match "/[A-Za-z0-9/._+-]+" path != null && !(elem ".." (split "/" path));
}
