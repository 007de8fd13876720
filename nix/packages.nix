# packages.<system>: one package per Rust binary (pname = binary name) and one per image named
# in a component.toml [[images]] entry (nix_package).
{
  pkgs,
  pkgsLinux,
  fluoLib,
  components,
  self,
  system,
  tag,
  ...
}:
let
  rust = import ./rust.nix { inherit self fluoLib; };
  binariesFor = packageSet: fluoLib.genAttrs fluoLib.binaries (rust.mkBinary packageSet);
  binaries = binariesFor pkgs;
  images = import ./images.nix {
    pkgs = pkgsLinux;
    inherit fluoLib components tag;
    # Images hold Linux binaries; darwin hosts build them with a Linux builder.
    binaries = if fluoLib.isLinux system then binaries else binariesFor pkgsLinux;
    # A darwin host cannot run the Linux stream script, so it gets a plain tarball instead.
    stream = fluoLib.isLinux system;
  };
in
binaries // images
