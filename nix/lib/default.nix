# Pure FLUO Nix library (builtins only, no nixpkgs): reads infra/ and describes components,
# dependency order, images and the SOP-002 apps as data. The root flake, the component
# sub-flakes and nix/lib/tests all take their wiring from here.
let
  strings = import ./strings.nix;
  infra = import ./infra.nix;
  order = import ./order.nix;
  images = import ./images.nix;
  apps = import ./apps.nix;
  scripts = import ./scripts.nix;
  source = import ./source.nix;
  lock = import ./lock.nix;
in
strings
// infra
// order
// images
// apps
// scripts
// source
// lock
// rec {
  # Images are always Linux; darwin hosts build them for the Linux of the same CPU.
  systems = [
    "x86_64-linux"
    "aarch64-linux"
    "x86_64-darwin"
    "aarch64-darwin"
  ];

  linuxSystemFor = system: builtins.replaceStrings [ "-darwin" ] [ "-linux" ] system;

  isLinux = system: strings.hasSuffix "-linux" system;

  genAttrs =
    names: f:
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = f name;
      }) names
    );

  # Flake package names: one per binary, one per image named in a component.toml.
  imagePackageNames = components: map (image: image.nixPackage) (images.allImages components);

  packageNames = components: apps.binaries ++ imagePackageNames components;

  # `nix flake check` derivations; the k3s VM test needs KVM on x86_64-linux.
  checkNames =
    system:
    [
      "cargo-test"
      "clippy"
      "rustfmt"
      "nixfmt"
      "manifests-policy"
      "nix-lib"
    ]
    ++ (if system == "x86_64-linux" then [ "vm-k3s" ] else [ ]);
}
