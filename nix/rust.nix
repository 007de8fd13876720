# Rust builds of the workspace with nixpkgs' rustPlatform and Cargo.lock (crates.io sources
# only, so no output hashes are needed; nix/lib/tests checks that).
{ self, fluoLib }:
let
  root = toString self.outPath;
  relative = path: fluoLib.removePrefix "${root}/" (toString path);
  sourceOf =
    name: keep:
    builtins.path {
      inherit name;
      path = self.outPath;
      filter = path: type: keep (relative path) type;
    };
in
rec {
  version = fluoLib.workspaceVersion (self.outPath + "/Cargo.toml");
  cargoLock.lockFile = self.outPath + "/Cargo.lock";

  # What cargo reads to build: documentation or infra/ edits do not rebuild the binaries.
  buildSrc = sourceOf "fluo-rust-src" (
    rel: _:
    builtins.elem rel [
      "Cargo.toml"
      "Cargo.lock"
      "rust"
    ]
    || fluoLib.hasPrefix "rust/" rel
  );

  # Tests also read infra/, scripts/ and tests/ fixtures: everything but build outputs.
  testSrc = sourceOf "fluo-src" (
    rel: _:
    !(builtins.elem rel [
      "target"
      ".git"
      ".fluo"
    ])
    && !(fluoLib.hasPrefix "result" rel)
  );

  # One package per binary; its tests run in checks.cargo-test, which has nats-server,
  # prometheus and kubectl, so the package build skips them.
  mkBinary =
    pkgs: name:
    pkgs.rustPlatform.buildRustPackage {
      pname = name;
      inherit version cargoLock;
      src = buildSrc;
      cargoBuildFlags = [
        "--package"
        name
        "--bin"
        name
      ];
      doCheck = false;
      meta = {
        description = "FLUO ${name}";
        mainProgram = name;
      };
    };

  # A derivation that only runs cargo on the whole workspace (clippy, tests) and records success.
  mkWorkspaceCheck =
    pkgs: args:
    pkgs.rustPlatform.buildRustPackage (
      {
        inherit version cargoLock;
        src = testSrc;
        # Tests bind loopback ports; darwin's sandbox needs this to allow it.
        __darwinAllowLocalNetworking = true;
        installPhase = ''
          runHook preInstall
          touch $out
          runHook postInstall
        '';
      }
      // args
    );
}
