# Everything the per-system output files (packages, apps, checks, dev shell) share.
# `revSource` is the flake whose revision tags our images and becomes FLUO_COMMIT: the root
# flake itself, or a component sub-flake calling lib.mkComponentFlake. Sources are taken from
# path literals (canonical), never from a flake's outPath.
{
  self,
  nixpkgs,
  system,
  revSource ? self,
}:
let
  fluoLib = import ./lib;
  root = ../.;
  ctx = rec {
    inherit self system fluoLib;
    pkgs = nixpkgs.legacyPackages.${system};
    # Images are Linux even when the host is darwin (needs a Linux builder there).
    pkgsLinux = nixpkgs.legacyPackages.${fluoLib.linuxSystemFor system};
    infraDir = ../infra;
    # infra/ alone in the store: apps keep their store path when other files change.
    infraStore = builtins.path {
      path = infraDir;
      name = "fluo-infra";
    };
    # scripts/ alone in the store, for the apps that run a script (health).
    scriptsStore = builtins.path {
      path = root;
      name = "fluo-scripts";
      filter = fluoLib.sourceFilter {
        inherit root;
        keep = fluoLib.isScriptSource;
      };
    };
    components = fluoLib.readComponents infraDir;
    environments = fluoLib.readEnvironments infraDir;
    # Our images' tag: the short commit, or "dirty"; upstream images carry their version.
    tag = fluoLib.imageTag revSource;
    commit = fluoLib.commitOf revSource;
    built = import ./packages.nix ctx;
    inherit (built) packages imageTags;
  };
in
ctx
