# checks.<system> (`nix flake check`): tests, lints, formatting, offline manifest and policy
# validation, the pure lib tests and, on x86_64-linux, the k3s VM end-to-end test.
{
  pkgs,
  fluoLib,
  system,
  packages,
  infraStore,
  commit,
  ...
}@ctx:
let
  rust = import ./rust.nix { inherit fluoLib; };
  root = ../.;

  nixFiles = builtins.path {
    name = "fluo-nix-files";
    path = root;
    filter = fluoLib.sourceFilter {
      inherit root;
      keep = fluoLib.isNixSource;
    };
  };

  libTestFailures = (import ./lib/tests { inherit root; }).failures;

  all = {
    # nixpkgs' prometheus here is 3.x, CI's Debian prometheus 2.42: the tests run against both.
    cargo-test = rust.mkWorkspaceCheck pkgs {
      pname = "fluo-cargo-test";
      nativeBuildInputs = [ pkgs.cargo-nextest ];
      nativeCheckInputs = [
        pkgs.nats-server
        pkgs.prometheus
        pkgs.kubectl
        pkgs.git
      ];
      # The digest tests run the CNCF distribution registry (Debian names it docker-registry).
      command = "DOCKER_REGISTRY_BIN=${pkgs.distribution}/bin/registry cargo nextest run --workspace --offline --locked";
    };

    clippy = rust.mkWorkspaceCheck pkgs {
      pname = "fluo-clippy";
      nativeBuildInputs = [ pkgs.clippy ];
      command = "cargo clippy --workspace --all-targets --offline --locked -- -D warnings";
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
