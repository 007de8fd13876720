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
    description: args: extra:
    app (
      {
        kind = "binary";
        binary = "fluo-deploy";
        inherit description args;
      }
      // extra
    );

  deployTo =
    components: environment:
    fluoDeploy "Publish the built images and deploy all components to ${environment}" [
      "deploy"
      "--all"
      "--env"
      environment
    ] { images = images.allImages components; inherit environment; };
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
    build-all = app {
      kind = "build-all";
      description = "Build every package and image and print their store paths";
    };
    status-all = fluoDeploy "Show every component's release, readiness and images" [ "status" ] { };
    deploy-local = deployTo components "local";
    deploy-staging = deployTo components "staging";
    deploy-production = deployTo components "production";
    deploy-all =
      fluoDeploy "Publish the built images and deploy all components (--env, FLUO_ENV or local)"
        [
          "deploy"
          "--all"
        ]
        { images = images.allImages components; };
    delete-all = fluoDeploy "Delete every component in reverse dependency order (history kept)" [
      "delete"
      "--all"
    ] { };
    rollback-to-previous =
      fluoDeploy "Roll every component back to the state before the latest deploy (needs --reason)"
        [ "rollback-to-previous" ]
        { };
    graceful-shutdown = fluoDeploy "Scale every component to zero in reverse dependency order" [
      "shutdown"
    ] { };
    logs-all = fluoDeploy "Show the logs of every component" [ "logs" ] { };
    history = fluoDeploy "Show the release history (audit trail); --verify checks the hash chain" [
      "history"
    ] { };
    monitor = fluoDeploy "Watch error rates, restarts and backlog after a deploy" [ "monitor" ] { };
    validate = app {
      kind = "binary";
      description = "Run the pre-deployment gate (checklist, manifests, policy, environment rules)";
      binary = "fluo-validate";
    };
    health = app {
      kind = "script";
      description = "Verify deployment health: health checks, then smoke tests";
      script = "scripts/verify-deployment-health.sh";
      path = [
        "fluo-health"
        "fluo-smoke"
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
      deploy = fluoDeploy "Publish the built images of ${name} and deploy it" [ "deploy" name ] {
        images = images.imagesOf components [ name ];
      };
    in
    {
      default = deploy;
      inherit deploy;
      rollback = fluoDeploy "Roll ${name} back to its previous revision (needs --reason; --to N)" [
        "rollback"
        name
      ] { };
      status = fluoDeploy "Show ${name}'s release, readiness and images" [ "status" name ] { };
      logs = fluoDeploy "Show ${name}'s logs" [ "logs" name ] { };
    };
}
