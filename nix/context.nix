# Everything the per-system output files (packages, apps, checks, dev shell) share.
# `revSource` is the flake whose revision tags the images and becomes FLUO_COMMIT: the root
# flake itself, or a component sub-flake calling lib.mkComponentFlake.
{
  self,
  nixpkgs,
  system,
  revSource ? self,
}:
let
  fluoLib = import ./lib;
  ctx = rec {
    inherit self system fluoLib;
    pkgs = nixpkgs.legacyPackages.${system};
    # Images are Linux even when the host is darwin (needs a Linux builder there).
    pkgsLinux = nixpkgs.legacyPackages.${fluoLib.linuxSystemFor system};
    infraDir = self.outPath + "/infra";
    # infra/ alone in the store: apps keep their store path when other files change.
    infraStore = builtins.path {
      path = infraDir;
      name = "fluo-infra";
    };
    components = fluoLib.readComponents infraDir;
    environments = fluoLib.readEnvironments infraDir;
    tag = fluoLib.imageTag revSource;
    commit = fluoLib.commitOf revSource;
    packages = import ./packages.nix ctx;
  };
in
ctx
