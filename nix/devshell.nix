# devShells.default: the Rust toolchain and the tools the tests need.
{ pkgs, ... }:
pkgs.mkShell {
  packages = [
    pkgs.cargo
    pkgs.rustc
    pkgs.clippy
    pkgs.rustfmt
    pkgs.rust-analyzer
    pkgs.cargo-nextest
    pkgs.kubectl
    pkgs.nats-server
    pkgs.prometheus
    # The OCI registry of the digest tests (binary `registry`: export DOCKER_REGISTRY_BIN).
    pkgs.distribution
    pkgs.skopeo
    pkgs.nixfmt
    pkgs.git
  ];
  RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
}
