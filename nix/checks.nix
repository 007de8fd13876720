# checks.<system> (`nix flake check`): tests, lints, formatting, offline manifest and policy
# validation, the pure lib tests and, on x86_64-linux, the k3s VM end-to-end test.
{
  pkgs,
  fluoLib,
  self,
  system,
  packages,
  infraStore,
  commit,
  ...
}@ctx:
let
  rust = import ./rust.nix { inherit self fluoLib; };

  nixFiles = builtins.path {
    name = "fluo-nix-files";
    path = self.outPath;
    filter = path: type: type == "directory" || fluoLib.hasSuffix ".nix" path;
  };

  libTestFailures = (import ./lib/tests { root = self.outPath; }).failures;

  all = {
    cargo-test = rust.mkWorkspaceCheck pkgs {
      pname = "fluo-cargo-test";
      # Only the tests are needed: no release build first, tests in the dev profile.
      dontCargoBuild = true;
      checkType = "debug";
      useNextest = true;
      cargoTestFlags = [ "--workspace" ];
      nativeCheckInputs = [
        pkgs.nats-server
        pkgs.prometheus
        pkgs.kubectl
        pkgs.git
      ];
      preCheck = ''
        export HOME=$TMPDIR
      '';
    };

    clippy = rust.mkWorkspaceCheck pkgs {
      pname = "fluo-clippy";
      nativeBuildInputs = [ pkgs.clippy ];
      doCheck = false;
      buildPhase = ''
        runHook preBuild
        cargo clippy --workspace --all-targets --offline -- -D warnings
        runHook postBuild
      '';
    };

    rustfmt = pkgs.runCommand "fluo-rustfmt" { nativeBuildInputs = [ pkgs.rustfmt ]; } ''
      cd ${rust.buildSrc}
      find rust -name '*.rs' -print0 | xargs -0 rustfmt --check --edition 2024
      touch $out
    '';

    nixfmt = pkgs.runCommand "fluo-nixfmt" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
      cd ${nixFiles}
      find . -name '*.nix' -print0 | xargs -0 nixfmt --check
      touch $out
    '';

    manifests-policy =
      pkgs.runCommand "fluo-manifests-policy" { nativeBuildInputs = [ packages.fluo-validate ]; }
        ''
          export HOME=$TMPDIR
          ${if commit == null then "" else "export FLUO_COMMIT=${commit}"}
          fluo-validate --offline --only manifests,policy --infra ${infraStore} --env local
          touch $out
        '';

    nix-lib = pkgs.runCommand "fluo-nix-lib-tests" { } (
      if libTestFailures == [ ] then
        "touch $out"
      else
        ''
          cat >&2 <<'EOF'
          ${builtins.toJSON libTestFailures}
          EOF
          exit 1
        ''
    );

    vm-k3s = import ./tests/k3s.nix ctx;
  };
in
fluoLib.genAttrs (fluoLib.checkNames system) (name: all.${name})
