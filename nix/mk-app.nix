# Turn app records from nix/lib/apps.nix into flake apps: a writeShellApplication whose text
# nix/lib/scripts.nix generates from the record. `script` is exposed for nix/lib/tests.
{
  pkgs,
  fluoLib,
  packages,
  environments,
  infraStore,
  scriptsStore,
  tag,
  imageTags,
  commit,
  ...
}:
let
  exe = binary: "${packages.${binary}}/bin/${binary}";

  # Tools named in the records are nixpkgs attributes; "cc" is the C toolchain cargo links with.
  tool = toolName: if toolName == "cc" then pkgs.stdenv.cc else pkgs.${toolName};

  publishTools = [
    pkgs.skopeo
    pkgs.gzip
    pkgs.coreutils
  ];

  script =
    name: app:
    pkgs.writeShellApplication {
      name = "fluo-${name}";
      runtimeInputs =
        map tool app.tools
        ++ map (binary: packages.${binary}) app.path
        ++ (if app.images == [ ] then [ ] else publishTools);
      text = fluoLib.appScript {
        inherit
          name
          app
          exe
          commit
          tag
          imageTags
          environments
          ;
        infraDir = "${infraStore}";
        imageSources = builtins.mapAttrs (_: package: "${package}") packages;
        publishLib = "${./apps/publish-images.sh}";
        source = "${scriptsStore}";
        packages = map (packageName: {
          name = packageName;
          path = "${packages.${packageName}}";
        }) (builtins.attrNames packages);
      };
    };
in
{
  inherit script;

  app = name: app: {
    type = "app";
    program = "${script name app}/bin/fluo-${name}";
    meta.description = app.description;
  };
}
