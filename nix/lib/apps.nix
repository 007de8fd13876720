# The SOP-002 commands as data: which binary or script each flake app runs, with which flags,
# which images it publishes first and which tools it needs. nix/apps.nix turns the records into
# flake apps; nix/lib/tests checks them without nixpkgs.
let
  images = import ./images.nix;

  app =
    fields:
    {
      binary = null;
      args = [ ];
      script = null;
      path = [ ];
      tools = [ ];
      images = [ ];
      environment = null;
    }
    // fields;

  fluoDeploy =
    fields:
    app (
      {
        kind = "binary";
        binary = "fluo-deploy";
      }
      // fields
    );

  # The services whose own `--check-config` the gate runs on the rendered containers (rule
  # `service.config`): every app that runs the gate has them on PATH.
  serviceBinaries = [
    "fluo-bff"
    "fluo-worker"
  ];

  deployTo =
    components: environment:
    fluoDeploy {
      description = "Publish the built images and deploy all components to ${environment}";
      args = [
        "deploy"
        "--all"
        "--env"
        environment
      ];
      images = images.allImages components;
      path = serviceBinaries;
      inherit environment;
    };

  # What `nix run .#test-all` puts on PATH: the tools scripts/test-all needs (names in nixpkgs;
  # "cc" is the C toolchain cargo links with; nix itself is the caller's).
  testTools = [
    "cargo"
    "rustc"
    "clippy"
    "rustfmt"
    "cargo-nextest"
    "cc"
    "git"
    "nats-server"
    "prometheus"
    "kubectl"
    "shellcheck"
  ];

  # What `nix run .#rehearse` puts on PATH: cargo to build the binaries, and what the process
  # runtime runs (scripts/setup's `rehearse` list, by their nixpkgs names).
  rehearseTools = [
    "cargo"
    "rustc"
    "cc"
    "git"
    "nats-server"
    "prometheus"
    "kubectl"
    "iproute2"
    "util-linux"
    "python3"
  ];
in
{
  # One package per binary; pname = binary name = crate name.
  binaries = [
    "fluo-deploy"
    "fluo-validate"
    "fluo-health"
    "fluo-smoke"
    "fluo-bff"
    "fluo-worker"
    "kube-emulator"
  ];

  rootApps = components: {
    test-all = app {
      kind = "checkout-script";
      description = "Run the whole test suite (scripts/test-all) in this checkout";
      script = "scripts/test-all";
      tools = testTools;
    };
    rehearse = app {
      kind = "checkout-script";
      description = "Rehearse SOP-002 on real processes in this checkout (scripts/rehearse; needs root): every step's verdict and time";
      script = "scripts/rehearse";
      tools = rehearseTools;
    };
    build-all = app {
      kind = "build-all";
      description = "Build every package and image and print their store paths";
    };
    status-all = fluoDeploy {
      description = "Show every component's release, readiness and images";
      args = [ "status" ];
    };
    deploy-local = deployTo components "local";
    deploy-staging = deployTo components "staging";
    deploy-production = deployTo components "production";
    deploy-all = fluoDeploy {
      description = "Publish the built images and deploy all components (--env, FLUO_ENV or local)";
      args = [
        "deploy"
        "--all"
      ];
      images = images.allImages components;
      path = serviceBinaries;
    };
    delete-all = fluoDeploy {
      description = "Delete every component in reverse dependency order, history kept (needs --reason; --yes off a terminal)";
      args = [
        "delete"
        "--all"
      ];
    };
    rollback-to-previous = fluoDeploy {
      description = "Roll every component back to the state before the latest deploy (needs --reason)";
      args = [ "rollback-to-previous" ];
    };
    graceful-shutdown = fluoDeploy {
      description = "Scale every component to zero in reverse dependency order (needs --reason; --yes off a terminal)";
      args = [ "shutdown" ];
    };
    logs-all = fluoDeploy {
      description = "Show the logs of every component";
      args = [ "logs" ];
    };
    history = fluoDeploy {
      description = "Show the release history (audit trail); --verify checks digests, signatures, the chain and its anchored tip";
      args = [ "history" ];
    };
    monitor = fluoDeploy {
      description = "Watch error rates, restarts and backlog after a deploy";
      args = [ "monitor" ];
    };
    validate = app {
      kind = "binary";
      description = "Run the pre-deployment gate (checklist, manifests, policy, environment rules)";
      binary = "fluo-validate";
      path = serviceBinaries;
    };
    health = app {
      kind = "script";
      description = "Verify deployment health: health checks, then smoke tests";
      script = "scripts/verify-deployment-health.sh";
      path = [
        "fluo-health"
        "fluo-smoke"
      ];
      # What the script itself runs: bash, sed, dirname.
      tools = [
        "bash"
        "gnused"
        "coreutils"
      ];
    };
    smoke = app {
      kind = "binary";
      description = "Run the SOP-002 smoke tests";
      binary = "fluo-smoke";
    };
  };

  # The apps of infra/components/<name>/flake.nix.
  componentApps =
    components: name:
    let
      deploy = fluoDeploy {
        description = "Publish the built images of ${name} and deploy it";
        args = [
          "deploy"
          name
        ];
        images = images.imagesOf components [ name ];
        path = serviceBinaries;
      };
    in
    {
      default = deploy;
      inherit deploy;
      rollback = fluoDeploy {
        description = "Roll ${name} back to its previous revision (needs --reason; --to N)";
        args = [
          "rollback"
          name
        ];
      };
      status = fluoDeploy {
        description = "Show ${name}'s release, readiness and images";
        args = [
          "status"
          name
        ];
      };
      logs = fluoDeploy {
        description = "Show ${name}'s logs";
        args = [
          "logs"
          name
        ];
      };
    };
}
