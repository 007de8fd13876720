# lib.mkComponentFlake: the outputs of infra/components/<c>/flake.nix. Apps deploy (default),
# rollback, status and logs, wired from nix/lib's componentApps and built exactly as the root
# flake builds them: the root's nixpkgs (checked against the root flake.lock, see
# nix/lib/lock.nix) and sources from path literals, so the same derivations as `.#packages`.
{ self, nixpkgs }:
{
  # `self` of the sub-flake: its revision tags our images and becomes FLUO_COMMIT.
  componentSelf,
  # The component's name (its directory under infra/components).
  name,
}:
let
  fluoLib = import ./lib;
  lockFile = "infra/components/${name}/flake.lock";
  # Nix writes the sub-flake's lock file into the checkout the first time it is used; from
  # then on it is what Nix resolves nixpkgs with.
  componentLockPath = ../infra + "/components/${name}/flake.lock";
  stale =
    if builtins.pathExists componentLockPath then
      fluoLib.staleLock {
        rootLock = builtins.fromJSON (builtins.readFile ../flake.lock);
        componentLock = builtins.fromJSON (builtins.readFile componentLockPath);
        via = "fluo";
        input = "nixpkgs";
        inherit lockFile;
      }
    else
      null;
  perSystem =
    f:
    fluoLib.genAttrs fluoLib.systems (
      system:
      f (
        import ./context.nix {
          inherit self nixpkgs system;
          revSource = componentSelf;
        }
      )
    );
in
{
  apps = perSystem (
    ctx:
    let
      known = builtins.concatStringsSep ", " (builtins.attrNames ctx.components);
    in
    if stale != null then
      throw "mkComponentFlake ${name}: ${stale}"
    else if ctx.components ? ${name} then
      builtins.mapAttrs (import ./mk-app.nix ctx).app (fluoLib.componentApps ctx.components name)
    else
      throw "mkComponentFlake: no component '${name}' in infra/components (known: ${known})"
  );
}
