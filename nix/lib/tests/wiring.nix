# Cases for the flake wiring: the root flake and the five component sub-flakes, evaluated with a
# stub nixpkgs. Output names and app records must not need nixpkgs (a throwing stub proves it);
# programs, scripts and images are checked with fake derivations.
{ fluoLib, root }:
let
  rev = "0123456789abcdef0123456789abcdef01234567";
  componentRev = "89abcdef0123456789abcdef0123456789abcdef";
  componentShortRev = builtins.substring 0 7 componentRev;
  components = fluoLib.readComponents (root + "/infra");
  componentNames = builtins.attrNames components;
  sorted = builtins.sort builtins.lessThan;
  lines = text: builtins.filter builtins.isString (builtins.split "\n" text);

  fakeDrv = name: {
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  # The versions nixpkgs would give the upstream images their tags from.
  versions = {
    nats-server = "2.11.4";
    prometheus-nats-exporter = "0.20.1";
    prometheus = "3.5.0";
    grafana = "13.0.1";
  };
  fakePkgs =
    fluoLib.genAttrs [
      "cacert"
      "skopeo"
      "gzip"
      "coreutils"
      "cargo"
      "rustc"
      "clippy"
      "rustfmt"
      "cargo-nextest"
      "git"
      "kubectl"
      "shellcheck"
      "bash"
      "gnused"
      "zstd"
      "nixfmt"
      "iproute2"
      "util-linux"
      "python3"
    ] fakeDrv
    // builtins.mapAttrs (name: version: fakeDrv name // { inherit version; }) versions
    // {
      stdenv.cc = fakeDrv "cc";
      rustPlatform.buildRustPackage =
        args: fakeDrv args.pname // builtins.intersectAttrs { cargoBuildFlags = null; } args;
      dockerTools = {
        streamLayeredImage =
          args:
          fakeDrv "stream-${baseNameOf args.name}"
          // {
            inherit (args) name tag config;
          };
        buildLayeredImage =
          args:
          fakeDrv "${baseNameOf args.name}.tar.gz"
          // {
            inherit (args) name tag;
          };
      };
      runCommand = name: env: script: fakeDrv (env.pname or name) // { inherit script; };
      writeShellApplication = args: fakeDrv args.name // { inherit (args) text runtimeInputs; };
    };

  throwingNixpkgs.legacyPackages = throw "nixpkgs was evaluated";
  shortRev = builtins.substring 0 7 rev;
  fakeNixpkgs.legacyPackages = fluoLib.genAttrs fluoLib.systems (_: fakePkgs);

  rootFlakeFile = import (root + "/flake.nix");
  rootFlakeWith =
    nixpkgs:
    let
      self =
        rootFlakeFile.outputs { inherit self nixpkgs; }
        // {
          # As a component sub-flake sees the root: sources must not be taken from it.
          outPath = toString root + "/infra/components/nats/../../..";
          inherit rev shortRev;
        };
    in
    self;

  subFlakeFile = name: import (root + "/infra/components/${name}/flake.nix");
  subFlakeWith =
    nixpkgs: name:
    let
      self =
        (subFlakeFile name).outputs {
          inherit self;
          fluo = rootFlakeWith nixpkgs;
        }
        // {
          outPath = root + "/infra/components/${name}";
          rev = componentRev;
          shortRev = componentShortRev;
        };
    in
    self;

  pure = rootFlakeWith throwingNixpkgs;
  faked = rootFlakeWith fakeNixpkgs;

  contextWith =
    revSource:
    import (root + "/nix/context.nix") {
      self = faked;
      nixpkgs = fakeNixpkgs;
      system = "x86_64-linux";
      inherit revSource;
    };
  scriptOf = ctx: name: app: (import (root + "/nix/mk-app.nix") ctx).script name app;
  rootApps = fluoLib.rootApps components;
  rootCtx = contextWith faked;
  store = name: "/nix/store/00000000000000000000000000000000-${name}";
  # Upstream software carries its nixpkgs version, our binaries the short commit.
  expectedTags = {
    image-nats = versions.nats-server;
    image-nats-exporter = versions.prometheus-nats-exporter;
    image-prometheus = versions.prometheus;
    image-grafana = versions.grafana;
    image-fluo-bff = shortRev;
    image-fluo-worker = shortRev;
  };
in
{
  # The nixpkgs pin every machine agrees on (shared/nix-pin.md); `nix flake lock` cannot run here.
  testFlakeLockPin = {
    expr =
      let
        lock = builtins.fromJSON (builtins.readFile (root + "/flake.lock"));
      in
      {
        inherit (lock) version root;
        rootInputs = lock.nodes.${lock.root}.inputs;
        inherit (lock.nodes.nixpkgs) locked original;
      };
    expected = {
      version = 7;
      root = "root";
      rootInputs.nixpkgs = "nixpkgs";
      locked = {
        type = "github";
        owner = "NixOS";
        repo = "nixpkgs";
        rev = "5880666fd9eb563038431edb35c2d0aa595884e6";
        narHash = "sha256-OURZPknrTjQrlNyxPdqzyqmU/81Wes1CUP/Ft1Rv/YI=";
        lastModified = 1787204541;
      };
      original = {
        type = "github";
        owner = "NixOS";
        repo = "nixpkgs";
        ref = "nixos-26.05";
      };
    };
  };

  testFlakeInputs = {
    expr = {
      root = rootFlakeFile.inputs.nixpkgs.url;
      components = map (name: (subFlakeFile name).inputs.fluo.url) componentNames;
    };
    expected = {
      root = "github:NixOS/nixpkgs/nixos-26.05";
      components = map (_: "path:../../..") componentNames;
    };
  };

  testRootOutputNamesNeedNoNixpkgs = {
    expr = {
      top = builtins.attrNames pure;
      packages = builtins.mapAttrs (_: builtins.attrNames) pure.packages;
      apps = builtins.mapAttrs (_: builtins.attrNames) pure.apps;
      checks = builtins.mapAttrs (_: builtins.attrNames) pure.checks;
      devShells = builtins.mapAttrs (_: builtins.attrNames) pure.devShells;
    };
    expected = {
      top = [
        "apps"
        "checks"
        "devShells"
        "formatter"
        "lib"
        "outPath"
        "packages"
        "rev"
        "shortRev"
      ];
      packages = fluoLib.genAttrs fluoLib.systems (_: sorted (fluoLib.packageNames components));
      apps = fluoLib.genAttrs fluoLib.systems (_: builtins.attrNames rootApps);
      checks = fluoLib.genAttrs fluoLib.systems (system: sorted (fluoLib.checkNames system));
      devShells = fluoLib.genAttrs fluoLib.systems (_: [ "default" ]);
    };
  };

  testRootAppsNeedNoNixpkgs = {
    expr = builtins.mapAttrs (_: app: {
      inherit (app) type;
      inherit (app.meta) description;
    }) pure.apps.x86_64-linux;
    expected = builtins.mapAttrs (_: app: {
      type = "app";
      inherit (app) description;
    }) rootApps;
  };

  testRootLibIsPure = {
    expr = {
      order = pure.lib.dependencyOrder (pure.lib.readComponents (root + "/infra"));
      hasMkComponentFlake = pure.lib ? mkComponentFlake;
    };
    expected = {
      order = fluoLib.dependencyOrder components;
      hasMkComponentFlake = true;
    };
  };

  testSubFlakeAppsNeedNoNixpkgs = {
    expr = fluoLib.genAttrs componentNames (
      name:
      builtins.mapAttrs (
        _: apps: builtins.mapAttrs (_: app: app.meta.description) apps
      ) (subFlakeWith throwingNixpkgs name).apps
    );
    expected = fluoLib.genAttrs componentNames (
      name:
      fluoLib.genAttrs fluoLib.systems (
        _: builtins.mapAttrs (_: app: app.description) (fluoLib.componentApps components name)
      )
    );
  };

  testPrograms = {
    expr = [
      faked.apps.x86_64-linux.deploy-all.program
      (subFlakeWith fakeNixpkgs "nats").apps.aarch64-darwin.rollback.program
    ];
    expected = [
      "${store "fluo-deploy-all"}/bin/fluo-deploy-all"
      "${store "fluo-rollback"}/bin/fluo-rollback"
    ];
  };

  # One cargo build makes every binary; each binary package only links its program from it.
  testBinaryPackagesShareOneWorkspaceBuild = {
    expr = fluoLib.genAttrs fluoLib.binaries (
      name:
      builtins.elem "ln -s ${store "fluo-workspace"}/bin/${name} $out/bin/${name}" (
        lines faked.packages.x86_64-linux.${name}.script
      )
    );
    expected = fluoLib.genAttrs fluoLib.binaries (_: true);
  };

  # The checks' wiring (the VM test needs real nixpkgs; nix-lib runs these very tests).
  testChecksEvaluateWithFakeNixpkgs = {
    expr = map (name: faked.checks.x86_64-linux.${name}.name) [
      "cargo-test"
      "clippy"
      "rustfmt"
      "nixfmt"
      "manifests-policy"
    ];
    expected = [
      "fluo-cargo-test"
      "fluo-clippy"
      "fluo-rustfmt"
      "fluo-nixfmt"
      "fluo-manifests-policy"
    ];
  };

  testWorkspaceBuildBuildsEveryBinary = {
    expr =
      let
        rust = import (root + "/nix/rust.nix") { inherit fluoLib; };
      in
      (rust.workspace fakePkgs).cargoBuildFlags;
    expected = [ "--workspace" ];
  };

  testImagesAreTaggedNonRootAndNamedFromComponentToml = {
    expr = map (image: {
      inherit (faked.packages.x86_64-linux.${image.nixPackage}) name tag;
      user = faked.packages.x86_64-linux.${image.nixPackage}.config.User;
    }) (fluoLib.allImages components);
    expected = map (image: {
      name = image.repository;
      tag = expectedTags.${image.nixPackage};
      user = "65532:65532";
    }) (fluoLib.allImages components);
  };

  testBffImageRunsTheBffBinary = {
    expr = faked.packages.x86_64-linux.image-fluo-bff.config.Entrypoint;
    expected = [ "${store "fluo-bff"}/bin/fluo-bff" ];
  };

  # A darwin host cannot run the Linux stream script: it gets a tarball built for Linux.
  testDarwinImagesAreTarballs = {
    expr = {
      inherit (faked.packages.aarch64-darwin.image-nats) outPath name;
    };
    expected = {
      outPath = store "nats.tar.gz";
      name = "fluo/nats";
    };
  };

  testDirtyTreeTagsOurImagesDirty = {
    expr =
      let
        dirty = (contextWith { dirtyRev = "abc-dirty"; }).packages;
      in
      [
        dirty.image-fluo-bff.tag
        dirty.image-nats.tag
      ];
    expected = [
      "dirty"
      versions.nats-server
    ];
  };

  testStatusAllScriptThroughTheFlake = {
    expr = builtins.elem ''exec ${store "fluo-deploy"}/bin/fluo-deploy status "$@"'' (
      lines (scriptOf rootCtx "status-all" rootApps.status-all).text
    );
    expected = true;
  };

  testDeployAllPublishesTheBuiltImages = {
    expr = builtins.elem "  sources=(${
      builtins.concatStringsSep " " (
        map (
          image:
          "${image.repository}:${expectedTags.${image.nixPackage}}=${store "stream-${baseNameOf image.repository}"}"
        ) (fluoLib.allImages components)
      )
    })" (lines (scriptOf rootCtx "deploy-all" rootApps.deploy-all).text);
    expected = true;
  };

  testHealthHasItsBinariesOnPath = {
    expr = map (p: p.name) (scriptOf rootCtx "health" rootApps.health).runtimeInputs;
    expected = [
      "bash"
      "gnused"
      "coreutils"
      "fluo-health"
      "fluo-smoke"
    ];
  };

  testTestAllHasTheTestToolsOnPath = {
    expr = map (p: p.name) (scriptOf rootCtx "test-all" rootApps.test-all).runtimeInputs;
    expected = rootApps.test-all.tools;
  };

  testRehearseHasItsToolsOnPath = {
    expr = map (p: p.name) (scriptOf rootCtx "rehearse" rootApps.rehearse).runtimeInputs;
    expected = rootApps.rehearse.tools;
  };

  testComponentDeployUsesTheComponentRevision = {
    expr =
      let
        ctx = contextWith {
          rev = componentRev;
          shortRev = componentShortRev;
        };
        text = (scriptOf ctx "deploy" (fluoLib.componentApps components "bff").deploy).text;
      in
      map (line: builtins.elem line (lines text)) [
        "export FLUO_COMMIT=\${FLUO_COMMIT:-${componentRev}}"
        "  image_args=(--image fluo-bff=fluo/fluo-bff:${componentShortRev})"
        ''exec ${store "fluo-deploy"}/bin/fluo-deploy deploy bff "''${image_args[@]}" "$@"''
      ];
    expected = [
      true
      true
      true
    ];
  };
}
