# Cases for nix/lib over the REAL infra/ (and small fixtures for the error paths).
{ fluoLib, root }:
let
  inherit (fluoLib) escapeShellArg;
  components = fluoLib.readComponents (root + "/infra");
  environments = fluoLib.readEnvironments (root + "/infra");
  fixture = name: fluoLib.readComponents (./fixtures + "/${name}");
  fails = expr: !(builtins.tryEval (builtins.deepSeq expr expr)).success;
  lines = text: builtins.filter builtins.isString (builtins.split "\n" text);
  project = record: keys: builtins.intersectAttrs keys record;

  rootApps = fluoLib.rootApps components;
  imageNamesOf = app: map (image: image.name) app.images;
  allImageNames = [
    "nats"
    "nats-exporter"
    "prometheus"
    "grafana"
    "fluo-bff"
    "fluo-worker"
  ];

  # Every SOP-002 command and what it must run (binary + flags, or script).
  sopApps = {
    test-all = {
      kind = "checkout-script";
      script = "scripts/test-all";
    };
    rehearse = {
      kind = "checkout-script";
      script = "scripts/rehearse";
    };
    build-all.kind = "build-all";
    status-all = {
      binary = "fluo-deploy";
      args = [ "status" ];
    };
    deploy-local = {
      binary = "fluo-deploy";
      args = [
        "deploy"
        "--all"
        "--env"
        "local"
      ];
      environment = "local";
    };
    deploy-staging = {
      binary = "fluo-deploy";
      args = [
        "deploy"
        "--all"
        "--env"
        "staging"
      ];
      environment = "staging";
    };
    deploy-production = {
      binary = "fluo-deploy";
      args = [
        "deploy"
        "--all"
        "--env"
        "production"
      ];
      environment = "production";
    };
    deploy-all = {
      binary = "fluo-deploy";
      args = [
        "deploy"
        "--all"
      ];
      environment = null;
    };
    delete-all = {
      binary = "fluo-deploy";
      args = [
        "delete"
        "--all"
      ];
    };
    rollback-to-previous = {
      binary = "fluo-deploy";
      args = [ "rollback-to-previous" ];
    };
    graceful-shutdown = {
      binary = "fluo-deploy";
      args = [ "shutdown" ];
    };
    logs-all = {
      binary = "fluo-deploy";
      args = [ "logs" ];
    };
    validate = {
      binary = "fluo-validate";
      args = [ ];
    };
    health = {
      kind = "script";
      script = "scripts/verify-deployment-health.sh";
      path = [
        "fluo-health"
        "fluo-smoke"
      ];
    };
    smoke = {
      binary = "fluo-smoke";
      args = [ ];
    };
  };

  fakeScript =
    name: app:
    fluoLib.appScript {
      inherit name app environments;
      exe = binary: "/fake/${binary}/bin/${binary}";
      infraDir = "/fake/infra";
      commit = "0123456789abcdef0123456789abcdef01234567";
      tag = "0123456789abcdef0123456789abcdef01234567";
      imageTags = fluoLib.genAttrs (fluoLib.imagePackageNames components) (
        _: "0123456789abcdef0123456789abcdef01234567"
      );
      imageSources = fluoLib.genAttrs (fluoLib.imagePackageNames components) (
        name: "/fake/${name}"
      );
      publishLib = "/fake/publish-images.sh";
      source = "/fake/src";
      packages = [
        {
          name = "fluo-deploy";
          path = "/fake/fluo-deploy";
        }
      ];
    };
  tag = "0123456789abcdef0123456789abcdef01234567";
in
# One case per SOP-002 app: it exists and runs the intended binary (or script) with its flags.
builtins.listToAttrs (
  map (name: {
    name = "testSopApp-${name}";
    value = {
      expr = if rootApps ? ${name} then project rootApps.${name} sopApps.${name} else "missing";
      expected = sopApps.${name};
    };
  }) (builtins.attrNames sopApps)
)
// {
  testComponentNames = {
    expr = builtins.attrNames components;
    expected = [
      "bff"
      "grafana"
      "nats"
      "prometheus"
      "workers"
    ];
  };

  testDependencies = {
    expr = builtins.mapAttrs (_: c: c.dependsOn) components;
    expected = {
      nats = [ ];
      prometheus = [ ];
      grafana = [ "prometheus" ];
      bff = [ "nats" ];
      workers = [ "bff" ];
    };
  };

  testDependencyOrder = {
    expr = fluoLib.dependencyOrder components;
    expected = [
      "nats"
      "prometheus"
      "grafana"
      "bff"
      "workers"
    ];
  };

  testDeployWaves = {
    expr = fluoLib.deployWaves components;
    expected = [
      [
        "nats"
        "prometheus"
      ]
      [
        "grafana"
        "bff"
      ]
      [ "workers" ]
    ];
  };

  testSopOrder = {
    expr = fluoLib.sopOrder components;
    expected = [
      "nats"
      "prometheus"
      "grafana"
      "bff"
      "workers"
    ];
  };

  testTeardownOrder = {
    expr = fluoLib.teardownOrder components;
    expected = [
      "workers"
      "bff"
      "grafana"
      "prometheus"
      "nats"
    ];
  };

  # Each wave only depends on earlier waves (holds for any infra/, checked on the real one).
  testWavesRespectDependencies = {
    expr =
      let
        waves = fluoLib.deployWaves components;
        waveNumbers = builtins.genList (i: i) (builtins.length waves);
        indexOf =
          name:
          builtins.head (
            builtins.filter (i: builtins.elem name (builtins.elemAt waves i)) waveNumbers
          );
      in
      builtins.all (
        name: builtins.all (dep: indexOf dep < indexOf name) components.${name}.dependsOn
      ) (builtins.attrNames components);
    expected = true;
  };

  testCycleIsRejected = {
    expr = fails (fluoLib.dependencyOrder (fixture "cycle"));
    expected = true;
  };

  testUnknownDependencyIsRejected = {
    expr = fails (fluoLib.dependencyOrder (fixture "unknown-dependency"));
    expected = true;
  };

  testNameMustMatchDirectory = {
    expr = fails (fixture "name-mismatch");
    expected = true;
  };

  testMissingKeyIsRejected = {
    expr = fails (fixture "missing-key");
    expected = true;
  };

  testFixtureWithoutErrorsStillParses = {
    expr = fluoLib.dependencyOrder (
      builtins.removeAttrs (fixture "cycle") [ "b" ]
      // {
        b = (fixture "cycle").b // {
          dependsOn = [ ];
        };
      }
    );
    expected = [
      "b"
      "a"
    ];
  };

  testImagePackages = {
    expr = fluoLib.imagePackageNames components;
    expected = [
      "image-nats"
      "image-nats-exporter"
      "image-prometheus"
      "image-grafana"
      "image-fluo-bff"
      "image-fluo-worker"
    ];
  };

  testPackageNames = {
    expr = fluoLib.packageNames components;
    expected = fluoLib.binaries ++ fluoLib.imagePackageNames components;
  };

  testBinaries = {
    expr = fluoLib.binaries;
    expected = [
      "fluo-deploy"
      "fluo-validate"
      "fluo-health"
      "fluo-smoke"
      "fluo-bff"
      "fluo-worker"
      "kube-emulator"
    ];
  };

  testRepositoryOf = {
    expr = map fluoLib.repositoryOf [
      "fluo/nats:2.10"
      "nats"
      "registry:5000/fluo/nats:2.10"
      "registry:5000/fluo/nats"
      "ghcr.io/fluo/nats@sha256:abc"
    ];
    expected = [
      "fluo/nats"
      "nats"
      "registry:5000/fluo/nats"
      "registry:5000/fluo/nats"
      "ghcr.io/fluo/nats"
    ];
  };

  testImageRefLocalAndRegistry = {
    expr = [
      (fluoLib.imageRef {
        repository = "fluo/fluo-bff";
        tag = "abc";
        registry = "";
      })
      (fluoLib.imageRef {
        repository = "fluo/fluo-bff";
        tag = "abc";
        registry = "registry.fluo.example/fluo";
      })
    ];
    expected = [
      "fluo/fluo-bff:abc"
      "registry.fluo.example/fluo/fluo-bff:abc"
    ];
  };

  testImageArgsForBff = {
    expr = fluoLib.imageArgs {
      images = fluoLib.imagesOf components [ "bff" ];
      tags.image-fluo-bff = "abc";
      registry = environments.staging.registry;
    };
    expected = [
      "--image"
      "fluo-bff=registry.fluo.example/fluo/fluo-bff:abc"
    ];
  };

  testImageTagAndCommit = {
    expr = [
      (fluoLib.imageTag {
        rev = "abcdef0123";
        shortRev = "abcdef0";
      })
      (fluoLib.imageTag { dirtyRev = "abc-dirty"; })
      (fluoLib.commitOf { rev = "abc"; })
      (fluoLib.commitOf { dirtyRev = "abc-dirty"; })
      (fluoLib.commitOf { })
    ];
    expected = [
      "abcdef0"
      "dirty"
      "abc"
      "abc-dirty"
      null
    ];
  };

  testEnvironments = {
    expr = builtins.mapAttrs (_: env: {
      inherit (env) context registry namespace;
    }) environments;
    expected = {
      local = {
        context = "docker-desktop";
        registry = "";
        namespace = "fluo";
      };
      rehearsal = {
        context = "kube-emulator";
        registry = "";
        namespace = "fluo";
      };
      staging = {
        context = "fluo-staging";
        registry = "registry.fluo.example/fluo";
        namespace = "fluo";
      };
      production = {
        context = "fluo-production";
        registry = "registry.fluo.example/fluo";
        namespace = "fluo";
      };
    };
  };

  # buildRustPackage with cargoLock.lockFile needs no hashes only for crates.io sources.
  testCargoLockIsVendorable = {
    expr = fluoLib.unvendorableCrates (root + "/Cargo.lock");
    expected = [ ];
  };

  testRootAppNames = {
    expr = builtins.attrNames rootApps;
    expected = builtins.sort builtins.lessThan (
      builtins.attrNames sopApps
      ++ [
        "history"
        "monitor"
      ]
    );
  };


  testDeployAppsPublishEveryImage = {
    expr = map (name: imageNamesOf rootApps.${name}) [
      "deploy-all"
      "deploy-local"
      "deploy-staging"
      "deploy-production"
    ];
    expected = [
      allImageNames
      allImageNames
      allImageNames
      allImageNames
    ];
  };

  testOnlyDeployAppsPublishImages = {
    expr = builtins.filter (name: rootApps.${name}.images != [ ]) (builtins.attrNames rootApps);
    expected = [
      "deploy-all"
      "deploy-local"
      "deploy-production"
      "deploy-staging"
    ];
  };

  # The gate runs `fluo-bff`/`fluo-worker --check-config` (rule service.config): every app that
  # runs the gate has both on PATH, and no other app pulls them in.
  testGatingAppsHaveTheServiceBinaries = {
    expr = {
      root = builtins.filter (name: rootApps.${name}.path == [
        "fluo-bff"
        "fluo-worker"
      ]) (builtins.attrNames rootApps);
      component = builtins.mapAttrs (
        name: _: builtins.mapAttrs (_: app: app.path) (fluoLib.componentApps components name)
      ) { inherit (components) nats; };
    };
    expected = {
      root = [
        "deploy-all"
        "deploy-local"
        "deploy-production"
        "deploy-staging"
        "validate"
      ];
      component.nats = {
        default = [
          "fluo-bff"
          "fluo-worker"
        ];
        deploy = [
          "fluo-bff"
          "fluo-worker"
        ];
        logs = [ ];
        rollback = [ ];
        status = [ ];
      };
    };
  };

  testTestAllTools = {
    expr = builtins.all (tool: builtins.elem tool rootApps.test-all.tools) [
      "cargo"
      "cargo-nextest"
      "nats-server"
      "prometheus"
      "kubectl"
    ];
    expected = true;
  };

  testComponentApps = {
    expr = builtins.mapAttrs (
      name: _:
      builtins.mapAttrs (_: app: {
        inherit (app) binary args;
        images = imageNamesOf app;
      }) (fluoLib.componentApps components name)
    ) components;
    expected =
      let
        appsFor = name: images: {
          default = {
            binary = "fluo-deploy";
            args = [
              "deploy"
              name
            ];
            inherit images;
          };
          deploy = {
            binary = "fluo-deploy";
            args = [
              "deploy"
              name
            ];
            inherit images;
          };
          rollback = {
            binary = "fluo-deploy";
            args = [
              "rollback"
              name
            ];
            images = [ ];
          };
          status = {
            binary = "fluo-deploy";
            args = [
              "status"
              name
            ];
            images = [ ];
          };
          logs = {
            binary = "fluo-deploy";
            args = [
              "logs"
              name
            ];
            images = [ ];
          };
        };
      in
      {
        nats = appsFor "nats" [
          "nats"
          "nats-exporter"
        ];
        prometheus = appsFor "prometheus" [ "prometheus" ];
        grafana = appsFor "grafana" [ "grafana" ];
        bff = appsFor "bff" [ "fluo-bff" ];
        workers = appsFor "workers" [ "fluo-worker" ];
      };
  };

  testEscapeShellArg = {
    expr = map escapeShellArg [
      "plain-word_1.2/x:y=z@a,b+c"
      "two words"
      "it's"
      ""
    ];
    expected = [
      "plain-word_1.2/x:y=z@a,b+c"
      "'two words'"
      "'it'\\''s'"
      "''"
    ];
  };

  testStatusAllScript = {
    expr = fakeScript "status-all" rootApps.status-all;
    expected = ''
      export FLUO_INFRA_DIR=''${FLUO_INFRA_DIR:-/fake/infra}
      export FLUO_COMMIT=''${FLUO_COMMIT:-${tag}}
      exec /fake/fluo-deploy/bin/fluo-deploy status "$@"
    '';
  };

  testRollbackToPreviousScript = {
    expr = builtins.elem ''exec /fake/fluo-deploy/bin/fluo-deploy rollback-to-previous "$@"'' (
      lines (fakeScript "rollback-to-previous" rootApps.rollback-to-previous)
    );
    expected = true;
  };

  testValidateScript = {
    expr = builtins.elem ''exec /fake/fluo-validate/bin/fluo-validate "$@"'' (
      lines (fakeScript "validate" rootApps.validate)
    );
    expected = true;
  };

  testHealthScript = {
    expr = builtins.elem ''exec bash /fake/src/scripts/verify-deployment-health.sh "$@"'' (
      lines (fakeScript "health" rootApps.health)
    );
    expected = true;
  };

  testDeployStagingScript = {
    expr =
      let
        text = lines (fakeScript "deploy-staging" rootApps.deploy-staging);
      in
      map (line: builtins.elem line text) [
        "env_name=staging"
        "staging)"
        "  registry=registry.fluo.example/fluo"
        "  image_args=(--image nats=registry.fluo.example/fluo/nats:${tag} --image nats-exporter=registry.fluo.example/fluo/prometheus-nats-exporter:${tag} --image prometheus=registry.fluo.example/fluo/prometheus:${tag} --image grafana=registry.fluo.example/fluo/grafana:${tag} --image fluo-bff=registry.fluo.example/fluo/fluo-bff:${tag} --image fluo-worker=registry.fluo.example/fluo/fluo-worker:${tag})"
        ''fluo_publish_images ${tag} "$registry" "$context" "''${sources[@]}"''
        ''exec /fake/fluo-deploy/bin/fluo-deploy deploy --all --env staging "''${image_args[@]}" "$@"''
        # a fixed environment has exactly one branch
        "local)"
      ];
    expected = [
      true
      true
      true
      true
      true
      true
      false
    ];
  };

  testDeployAllScriptKnowsEveryEnvironment = {
    expr =
      let
        text = lines (fakeScript "deploy-all" rootApps.deploy-all);
      in
      map (line: builtins.elem line text) [
        ''env_name=$(fluo_arg_value --env "''${FLUO_ENV:-local}" "$@")''
        "local)"
        "staging)"
        "production)"
        "  sources=(${
          builtins.concatStringsSep " " (
            map (image: "${image.repository}:${tag}=/fake/${image.nixPackage}") (
              fluoLib.allImages components
            )
          )
        })"
        ''fluo_publish_images ${tag} "$registry" "$context" "''${sources[@]}"''
        ''exec /fake/fluo-deploy/bin/fluo-deploy deploy --all "''${image_args[@]}" "$@"''
      ];
    expected = [
      true
      true
      true
      true
      true
      true
      true
    ];
  };

  testRehearseTools = {
    expr = builtins.all (tool: builtins.elem tool rootApps.rehearse.tools) [
      "cargo"
      "nats-server"
      "prometheus"
      "kubectl"
      "iproute2"
      "util-linux"
      "python3"
    ];
    expected = true;
  };

  testRehearseScriptRunsInCheckout = {
    expr = builtins.elem ''exec "$root/scripts/rehearse" "$@"'' (
      lines (fakeScript "rehearse" rootApps.rehearse)
    );
    expected = true;
  };

  testTestAllScriptRunsInCheckout = {
    expr = builtins.elem ''exec "$root/scripts/test-all" "$@"'' (
      lines (fakeScript "test-all" rootApps.test-all)
    );
    expected = true;
  };

  testBuildAllScript = {
    expr = fakeScript "build-all" rootApps.build-all;
    expected = ''
      printf '%s\t%s\n' fluo-deploy /fake/fluo-deploy
    '';
  };

  testCheckNames = {
    expr = [
      (builtins.elem "vm-k3s" (fluoLib.checkNames "x86_64-linux"))
      (builtins.elem "vm-k3s" (fluoLib.checkNames "aarch64-darwin"))
    ];
    expected = [
      true
      false
    ];
  };
}
