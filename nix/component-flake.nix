# lib.mkComponentFlake: the outputs of infra/components/<c>/flake.nix. Apps deploy (default),
# rollback, status and logs, wired from nix/lib's componentApps, built with the root's nixpkgs.
{ self, nixpkgs }:
{
  # `self` of the sub-flake: its revision tags the images and becomes FLUO_COMMIT.
  componentSelf,
  # The component's name (its directory under infra/components).
  name,
}:
let
  fluoLib = import ./lib;
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
    if ctx.components ? ${name} then
      builtins.mapAttrs (import ./mk-app.nix ctx).app (fluoLib.componentApps ctx.components name)
    else
      throw "mkComponentFlake: no component '${name}' in infra/components (known: ${known})"
  );
}
