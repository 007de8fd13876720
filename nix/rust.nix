# Rust builds of the workspace with nixpkgs' rustPlatform and Cargo.lock (crates.io sources
# only, so no output hashes are needed; nix/lib/tests checks that). Dependencies compile once
# per profile: one release build makes every binary (the per-binary packages link into it),
# and one dev-profile build makes the target directory the cargo checks start from.
{ fluoLib }:
let
  # A path literal, so the source is canonical even where the flake's outPath is not (a
  # component sub-flake sees "/nix/store/…-source/infra/components/<c>/../../..").
  root = ../.;
  sourceOf =
    name: keep:
    builtins.path {
      inherit name;
      path = root;
      filter = fluoLib.sourceFilter { inherit root keep; };
    };
in
rec {
  version = fluoLib.workspaceVersion (root + "/Cargo.toml");
  cargoLock.lockFile = root + "/Cargo.lock";

  # What cargo reads to build the binaries: docs or infra/ edits do not rebuild them.
  buildSrc = sourceOf "fluo-source" fluoLib.isBuildSource;
  # Tests also read docs/, infra/, scripts/ fixtures. The same name as buildSrc unpacks it into
  # the same directory, so the paths in cargo's fingerprints match between derivations.
  testSrc = sourceOf "fluo-source" fluoLib.isTestSource;

  # Every binary of the workspace from one `cargo build --workspace` (release). Tests run in
  # checks.cargo-test, which has nats-server, prometheus and kubectl, so this build skips them.
  workspace =
    pkgs:
    pkgs.rustPlatform.buildRustPackage {
      pname = "fluo-workspace";
      inherit version cargoLock;
      src = buildSrc;
      cargoBuildFlags = [ "--workspace" ];
      doCheck = false;
      meta.description = "FLUO: every binary of the Rust workspace";
    };

  # One package per binary (pname = binary name) over the shared workspace build.
  binaries =
    pkgs:
    let
      built = workspace pkgs;
    in
    fluoLib.genAttrs fluoLib.binaries (
      name:
      pkgs.runCommand "${name}-${version}"
        {
          pname = name;
          inherit version;
          meta = {
            description = "FLUO ${name}";
            mainProgram = name;
          };
        }
        ''
          mkdir -p $out/bin
          ln -s ${built}/bin/${name} $out/bin/${name}
        ''
    );

  # The dev-profile target directory of the whole workspace (dependencies, workspace crates,
  # test binaries and clippy's metadata), compressed; the cargo checks unpack it and only run.
  devTarget =
    pkgs:
    pkgs.rustPlatform.buildRustPackage {
      pname = "fluo-cargo-target";
      inherit version cargoLock;
      src = testSrc;
      nativeBuildInputs = [
        pkgs.clippy
        pkgs.zstd
      ];
      CARGO_INCREMENTAL = "0";
      doCheck = false;
      buildPhase = ''
        runHook preBuild
        cargo build --workspace --all-targets --offline --locked
        cargo clippy --workspace --all-targets --offline --locked
        runHook postBuild
      '';
      installPhase = ''
        runHook preInstall
        mkdir -p $out
        tar -cf - target | zstd -T0 -q >$out/target.tar.zst
        runHook postInstall
      '';
    };

  # A check that runs cargo over the whole workspace, starting from devTarget's artefacts, and
  # records success. `command` is the shell that does the work.
  mkWorkspaceCheck =
    pkgs:
    {
      pname,
      command,
      nativeBuildInputs ? [ ],
      nativeCheckInputs ? [ ],
    }:
    pkgs.rustPlatform.buildRustPackage {
      inherit pname version cargoLock;
      src = testSrc;
      nativeBuildInputs = nativeBuildInputs ++ nativeCheckInputs ++ [ pkgs.zstd ];
      CARGO_INCREMENTAL = "0";
      # Tests bind loopback ports; darwin's sandbox needs this to allow it.
      __darwinAllowLocalNetworking = true;
      doCheck = false;
      postUnpack = ''
        zstd -d -q -c ${devTarget pkgs}/target.tar.zst | tar -xf - -C "$sourceRoot"
      '';
      buildPhase = ''
        runHook preBuild
        export HOME=$TMPDIR
        ${command}
        runHook postBuild
      '';
      installPhase = ''
        runHook preInstall
        touch $out
        runHook postInstall
      '';
    };
}
