# packages.<system>: one package per Rust binary (pname = binary name, all from one workspace
# build) and one per image named in a component.toml [[images]] entry (nix_package). Also the
# tag of every image (nix_package -> tag), which the deploy apps pass to fluo-deploy.
{
  pkgs,
  pkgsLinux,
  fluoLib,
  components,
  system,
  tag,
  ...
}:
let
  rust = import ./rust.nix { inherit fluoLib; };
  binaries = rust.binaries pkgs;
  images = import ./images.nix {
    pkgs = pkgsLinux;
    inherit fluoLib components tag;
    # Images hold Linux binaries; darwin hosts build them with a Linux builder.
    binaries = if fluoLib.isLinux system then binaries else rust.binaries pkgsLinux;
    # A darwin host cannot run the Linux stream script, so it gets a plain tarball instead.
    stream = fluoLib.isLinux system;
  };
in
{
  packages = binaries // images.packages;
  imageTags = images.tags;
}
