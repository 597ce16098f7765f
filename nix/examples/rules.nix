# The shipped policy (rules.yaml) as Nix attributes, for `services.agent-gate.settings`.
# tests/nix.rs checks that it evaluates to exactly what rules.yaml says. Keys' public keys
# come from `services.agent-gate.keys`, which the module merges in.
{
  version = 1;
  sudo = "/run/wrappers/bin/sudo";
  defaults = {
    timeout = 600;
    path = "/run/wrappers/bin:/run/current-system/sw/bin";
  };
  audit = {
    socket = "/dev/log";
    format = "kv";
  };
  keys = {
    hermes = {
      description = "the Hermes agent container";
      may = [
        "docker"
        "deploy"
        "ollama-run"
        "ollama-list"
        "ollama-ps"
        "ollama-show"
        "iptables-list"
        "fail2ban-status"
        "fail2ban-ping"
        "journalctl"
        "sshd-config"
        "ss-listening"
        "proc-net-tcp"
        "ss-user"
        "proc-net-user"
      ];
    };
  };
  docker = {
    program = "/run/current-system/sw/bin/docker";
    config = "/etc/agent-gate/docker-config";
    timeout = 900;
    subcommands = {
      ps = [ "all" "quiet" "filter" "format" "no-trunc" "last" "latest" "size" ];
      images = [ "all" "digests" "filter" "format" "no-trunc" "quiet" ];
      inspect = [ "format" "size" "type" ];
      logs = [ "details" "since" "tail" "timestamps" "until" ];
      start = [ ];
      stop = [ "time" "signal" ];
      restart = [ "time" "signal" ];
      rm = [ "force" "volumes" ];
      rmi = [ "force" "no-prune" ];
      pull = [ "quiet" "platform" ];
      build = [
        "tag"
        "file"
        "pull"
        "no-cache"
        "quiet"
        "label"
        "build-arg"
        "target"
        "platform"
        "progress"
        "network"
      ];
      run = [
        "rm"
        "detach"
        "name"
        "env"
        "network"
        "volume"
        "mount"
        "tmpfs"
        "publish"
        "entrypoint"
        "pull"
        "platform"
        "restart"
        "label"
        "workdir"
        "user"
        "memory"
        "cpus"
        "init"
        "read-only"
        "hostname"
        "stop-timeout"
        "pids-limit"
        "shm-size"
        "cap-drop"
      ];
      "system df" = [ "format" "verbose" ];
      "system info" = [ "format" ];
      "network ls" = [ "filter" "format" "no-trunc" "quiet" ];
      "volume ls" = [ "filter" "format" "quiet" ];
      "network inspect" = [ "format" "verbose" ];
      "volume inspect" = [ "format" ];
      version = [ "format" ];
      stats = [ "no-stream" "all" "format" "no-trunc" ];
      compose = [ "file" "project-name" "profile" ];
    };
    sudo_subcommands = [ "ps" "inspect" ];
    run = {
      networks = [ "none" "bridge" ];
      publish_addresses = [ "127.0.0.1" ];
      images = [ "library/*" "ollama/ollama" ];
    };
    build = {
      contexts = [ "/srv" ];
    };
    compose = {
      files = [ "/srv/app/compose.yaml" ];
      projects = [ "app" ];
      verbs = {
        ps = [ "all" "quiet" "services" "format" "filter" "status" ];
        ls = [ "all" "quiet" "format" "filter" ];
        up = [
          "detach"
          "wait"
          "no-build"
          "build"
          "pull"
          "remove-orphans"
          "force-recreate"
          "no-deps"
          "quiet-pull"
          "timeout"
          "no-recreate"
          "no-start"
          "wait-timeout"
        ];
        down = [ "remove-orphans" "timeout" ];
        logs = [ "tail" "since" "until" "timestamps" "no-color" "no-log-prefix" ];
        pull = [ "quiet" "ignore-pull-failures" "include-deps" "policy" ];
        stop = [ "timeout" ];
        start = [ ];
        restart = [ "timeout" "no-deps" ];
        config = [
          "services"
          "volumes"
          "images"
          "profiles"
          "quiet"
          "format"
          "hash"
          "no-interpolate"
        ];
        images = [ "quiet" "format" ];
        top = [ ];
        version = [ "format" "short" ];
      };
    };
    examples = {
      allow = [
        "docker ps -a --format '{{.Names}} {{.Status}}'"
        "docker logs --tail 100 ollama"
        "docker run --rm -v cache:/cache alpine:3.20 du -sh /cache"
        "docker run -d -p 127.0.0.1:8080:80 --name web nginx:1.27"
        "docker compose -f /srv/app/compose.yaml up -d"
        "docker info"
        "sudo docker inspect ollama"
      ];
      refuse = [
        "docker exec -it ollama sh"
        "docker run --privileged alpine"
        "docker run -v /:/host alpine"
        "docker run -p 8080:80 nginx"
        "docker run --network host alpine"
        "docker logs -f ollama"
        "docker -H tcp://10.0.0.5:2375 ps"
        "docker container run alpine"
        "sudo docker run alpine"
      ];
    };
  };
  programs = [
    {
      id = "ollama-run";
      command = "ollama";
      container = "ollama";
      description = "run a prompt against a model (benchmarks; add --verbose for timings)";
      words = [ "run" ];
      options = [
        {
          long = "verbose";
        }
        {
          long = "nowordwrap";
        }
        {
          long = "format";
          value = {
            enum = [ "json" ];
          };
        }
        {
          long = "keepalive";
          value = {
            pattern = "[0-9]{1,5}(s|m|h)";
          };
        }
      ];
      args = [
        {
          name = "model";
          value = {
            pattern = "([a-z0-9][a-z0-9_-]{0,63}/)?[a-z0-9][a-z0-9._-]{0,63}(:[A-Za-z0-9._-]{1,64})?";
          };
        }
        {
          name = "prompt";
          value = "text";
          optional = true;
        }
      ];
      timeout = 1800;
      examples = {
        allow = [ "docker exec ollama ollama run llama3.2:3b --verbose 'Why is the sky blue?'" ];
        refuse = [
          "docker exec ollama sh"
          "docker exec -it ollama ollama run llama3.2"
          "docker exec web ollama list"
        ];
      };
    }
    {
      id = "ollama-list";
      command = "ollama";
      container = "ollama";
      description = "models present";
      words = [ "list" ];
      timeout = 60;
      examples = {
        allow = [ "docker exec ollama ollama list" ];
      };
    }
    {
      id = "ollama-ps";
      command = "ollama";
      container = "ollama";
      description = "models loaded in memory";
      words = [ "ps" ];
      timeout = 60;
      examples = {
        allow = [ "docker exec ollama ollama ps" ];
      };
    }
    {
      id = "ollama-show";
      command = "ollama";
      container = "ollama";
      description = "a model's parameters";
      words = [ "show" ];
      options = [
        {
          long = "modelfile";
        }
        {
          long = "parameters";
        }
        {
          long = "license";
        }
      ];
      args = [
        {
          name = "model";
          value = {
            pattern = "([a-z0-9][a-z0-9_-]{0,63}/)?[a-z0-9][a-z0-9._-]{0,63}(:[A-Za-z0-9._-]{1,64})?";
          };
        }
      ];
      timeout = 60;
      examples = {
        allow = [ "docker exec ollama ollama show llama3.2:3b --parameters" ];
        refuse = [
          "docker exec ollama ollama rm llama3.2:3b"
          "docker exec ollama ollama pull evil/model"
        ];
      };
    }
    {
      id = "iptables-list";
      command = "iptables";
      path = "/run/current-system/sw/bin/iptables";
      sudo = true;
      description = "firewall rules, tables filter and nat only (others may autoload modules)";
      options = [
        {
          short = "L";
          long = "list";
        }
        {
          short = "S";
          long = "list-rules";
        }
        {
          short = "n";
          long = "numeric";
        }
        {
          short = "v";
          long = "verbose";
          repeat = true;
        }
        {
          short = "x";
          long = "exact";
        }
        {
          long = "line-numbers";
        }
        {
          short = "t";
          long = "table";
          value = {
            enum = [ "filter" "nat" ];
          };
        }
      ];
      exactly_one_of = [
        [ "list" "list-rules" ]
      ];
      # iptables reads a chain only right after -L/-S
      args_after_choice = true;
      args = [
        {
          name = "chain";
          value = {
            pattern = "[A-Za-z0-9][A-Za-z0-9_.-]{0,27}";
          };
          optional = true;
        }
      ];
      timeout = 30;
      examples = {
        allow = [ "sudo iptables -L -n -v" "sudo iptables -nvL INPUT" "sudo iptables -t nat -S" ];
        refuse = [
          "sudo iptables -F"
          "sudo iptables -L -Z"
          "sudo iptables --fl"
          "sudo iptables -t raw -L"
          "sudo iptables -L -w 5"
        ];
      };
    }
    {
      id = "fail2ban-status";
      command = "fail2ban-client";
      path = "/run/current-system/sw/bin/fail2ban-client";
      sudo = true;
      description = "jails, and a jail's banned addresses";
      words = [ "status" ];
      args = [
        {
          name = "jail";
          value = {
            enum = [ "sshd" "recidive" ];
          };
          optional = true;
        }
      ];
      timeout = 30;
      examples = {
        allow = [ "sudo fail2ban-client status" "sudo fail2ban-client status sshd" ];
        refuse = [
          "sudo fail2ban-client set sshd unbanip 203.0.113.7"
          "sudo fail2ban-client -c /tmp/x status"
        ];
      };
    }
    {
      id = "fail2ban-ping";
      command = "fail2ban-client";
      path = "/run/current-system/sw/bin/fail2ban-client";
      sudo = true;
      description = "is the fail2ban server alive";
      words = [ "ping" ];
      timeout = 30;
      examples = {
        allow = [ "sudo fail2ban-client ping" ];
      };
    }
    {
      id = "journalctl";
      command = "journalctl";
      path = "/run/current-system/sw/bin/journalctl";
      sudo = true;
      description = "kernel log (-k) or fail2ban's log (-u fail2ban); never follows, never pages";
      options = [
        {
          short = "k";
          long = "dmesg";
        }
        {
          short = "u";
          long = "unit";
          value = {
            enum = [ "fail2ban" "fail2ban.service" ];
          };
        }
        {
          short = "n";
          long = "lines";
          value = {
            int = [ 1 10000 ];
          };
        }
        {
          short = "p";
          long = "priority";
          value = {
            enum = [
              "emerg"
              "alert"
              "crit"
              "err"
              "warning"
              "notice"
              "info"
              "debug"
              "0"
              "1"
              "2"
              "3"
              "4"
              "5"
              "6"
              "7"
            ];
          };
        }
        {
          short = "o";
          long = "output";
          value = {
            enum = [
              "short"
              "short-iso"
              "short-iso-precise"
              "short-precise"
              "short-monotonic"
              "short-unix"
              "json"
              "json-pretty"
              "cat"
              "verbose"
            ];
          };
        }
        {
          short = "r";
          long = "reverse";
        }
        {
          short = "q";
          long = "quiet";
        }
        {
          long = "no-pager";
        }
        {
          long = "utc";
        }
        {
          short = "S";
          long = "since";
          value = "systemd_time";
        }
        {
          short = "U";
          long = "until";
          value = "systemd_time";
        }
        {
          short = "b";
          long = "boot";
          value = {
            pattern = "all|[+-]?[0-9]{1,4}|[0-9a-fA-F]{32}([+-][0-9]{1,4})?";
          };
          optional_value = "lookahead";
        }
        {
          short = "g";
          long = "grep";
          value = {
            pattern = "[A-Za-z0-9_.:/,@%]([A-Za-z0-9_.:/,@%-]| [A-Za-z0-9_]){0,63}";
          };
        }
      ];
      exactly_one_of = [
        [ "dmesg" "unit" ]
      ];
      forced_args = [ "--no-pager" ];
      env = {
        SYSTEMD_PAGER = "cat";
        SYSTEMD_PAGERSECURE = "1";
        PAGER = "cat";
      };
      timeout = 60;
      examples = {
        allow = [
          "sudo journalctl -k -n 100"
          "sudo journalctl -u fail2ban --since today -o short-iso"
          "sudo journalctl -k -b -1 --since '1 hour ago'"
          "sudo journalctl -u fail2ban -g Ban --since -2h"
        ];
        refuse = [
          "sudo journalctl"
          "sudo journalctl -k -f"
          "sudo journalctl -k -e"
          "sudo journalctl --vacuum-time=1s"
          "sudo journalctl -u sshd"
          "sudo journalctl -k -b -f"
          "sudo journalctl -k --since '-1h -f'"
          "sudo journalctl -k --grep '(a+)+$'"
        ];
      };
    }
    {
      id = "sshd-config";
      command = "sshd";
      path = "/run/current-system/sw/bin/sshd";
      sudo = true;
      description = "the effective sshd configuration";
      options = [
        {
          short = "T";
        }
        {
          short = "C";
          value = {
            key_values = {
              addr = {
                pattern = "([0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}";
              };
              host = {
                pattern = "[A-Za-z0-9:][A-Za-z0-9.:-]{0,63}";
              };
              laddr = {
                pattern = "([0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}";
              };
              lport = {
                int = [ 1 65535 ];
              };
              rdomain = {
                pattern = "[A-Za-z0-9_.-]{1,15}";
              };
              user = {
                pattern = "[A-Za-z_][A-Za-z0-9_.-]{0,31}";
              };
            };
          };
        }
      ];
      exactly_one_of = [
        [ "T" ]
      ];
      timeout = 30;
      examples = {
        allow = [
          "sudo sshd -T"
          "sudo sshd -T -C user=ai-worker,host=agent.example,addr=10.88.0.5"
        ];
        refuse = [
          "sudo sshd"
          "sudo sshd -T -f /root/.ssh/id_ed25519"
          "sudo sshd -T -C 'user=root;id'"
          "sudo sshd -C user=root"
          "sudo sshd -T -C user=root,group=wheel"
        ];
      };
    }
    {
      id = "ss-listening";
      command = "ss";
      path = "/run/current-system/sw/bin/ss";
      sudo = true;
      description = "sockets and the processes behind them";
      options = [
        {
          short = "t";
          long = "tcp";
        }
        {
          short = "u";
          long = "udp";
        }
        {
          short = "l";
          long = "listening";
        }
        {
          short = "a";
          long = "all";
        }
        {
          short = "n";
          long = "numeric";
        }
        {
          short = "p";
          long = "processes";
        }
        {
          short = "4";
          long = "ipv4";
        }
        {
          short = "6";
          long = "ipv6";
        }
      ];
      timeout = 30;
      examples = {
        allow = [ "sudo ss -tlnp" ];
        refuse = [ "sudo ss -tlnpK" "sudo ss -E" ];
      };
    }
    {
      id = "proc-net-tcp";
      command = "cat";
      path = "/run/current-system/sw/bin/cat";
      sudo = true;
      description = "the kernel's TCP and UDP socket tables";
      args = [
        {
          name = "file";
          value = {
            enum = [ "/proc/net/tcp" "/proc/net/tcp6" "/proc/net/udp" "/proc/net/udp6" ];
          };
        }
      ];
      timeout = 30;
      examples = {
        allow = [ "sudo cat /proc/net/tcp" ];
        refuse = [ "sudo cat /etc/shadow" "sudo cat /proc/net/tcp /etc/shadow" ];
      };
    }
    # The same diagnostics without sudo: an unprivileged account reads them too (ss -p then
    # shows only this account's own processes). Agents type them both ways.
    {
      id = "ss-user";
      command = "ss";
      path = "/run/current-system/sw/bin/ss";
      description = "sockets, as this account (-p names only its own processes; sudo ss for all)";
      options = [
        {
          short = "t";
          long = "tcp";
        }
        {
          short = "u";
          long = "udp";
        }
        {
          short = "l";
          long = "listening";
        }
        {
          short = "a";
          long = "all";
        }
        {
          short = "n";
          long = "numeric";
        }
        {
          short = "p";
          long = "processes";
        }
        {
          short = "4";
          long = "ipv4";
        }
        {
          short = "6";
          long = "ipv6";
        }
      ];
      timeout = 30;
      examples = {
        allow = [ "ss -tlnp" "ss -tulpn" ];
        refuse = [ "ss -tlnpK" "ss -E" "ss -D /tmp/dump" ];
      };
    }
    {
      id = "proc-net-user";
      command = "cat";
      path = "/run/current-system/sw/bin/cat";
      description = "the kernel's TCP and UDP socket tables, as this account";
      args = [
        {
          name = "file";
          value = {
            enum = [ "/proc/net/tcp" "/proc/net/tcp6" "/proc/net/udp" "/proc/net/udp6" ];
          };
        }
      ];
      timeout = 30;
      examples = {
        allow = [ "cat /proc/net/tcp" "cat /proc/net/udp6" ];
        refuse = [ "cat /etc/shadow" "cat /proc/net/tcp /etc/passwd" "cat /proc/self/environ" ];
      };
    }
  ];
  deploy = {
    flake = "/etc/nixos";
    nh = "/run/current-system/sw/bin/nh";
    nixos_rebuild = "/run/current-system/sw/bin/nixos-rebuild";
    timeout = 3600;
    approval = {
      store = "/var/lib/agent-gate/approvals";
      expire_seconds = 1800;
      wait_seconds = 600;
    };
    examples = {
      allow = [
        "nh os switch"
        "nh os switch /etc/nixos"
        "sudo nixos-rebuild switch --flake /etc/nixos"
      ];
      refuse = [
        "nh os switch --impure"
        "nh os boot"
        "nixos-rebuild switch --flake /home/agent/flake"
      ];
    };
  };
}
