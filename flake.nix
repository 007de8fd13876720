{
  description = "FLUO deployment suite: SOP-002 as flake apps over small Rust binaries";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      fluoLib = import ./nix/lib;
      perSystem =
        f:
        fluoLib.genAttrs fluoLib.systems (
          system: f (import ./nix/context.nix { inherit self nixpkgs system; })
        );
    in
    {
      # Pure functions (components, order, app records) plus mkComponentFlake for the sub-flakes.
      lib = fluoLib // {
        mkComponentFlake = import ./nix/component-flake.nix { inherit self nixpkgs; };
      };
      packages = perSystem (ctx: ctx.packages);
      apps = perSystem (import ./nix/apps.nix);
      checks = perSystem (import ./nix/checks.nix);
      devShells = perSystem (ctx: { default = import ./nix/devshell.nix ctx; });
      formatter = perSystem (ctx: ctx.pkgs.nixfmt-tree);
    };
}
