# OCI images for the five components, built from this flake and nixpkgs so nothing is pulled
# from a registry: layered, running as the non-root user 65532. Names come from component.toml
# ([[images]] nix_package and the repository of default_ref); tags from what the image runs:
# the nixpkgs package's version for upstream software, the build's tag (short commit or
# "dirty") for ours. Returns { packages = { <nix_package> = image; }; tags = { ... = tag; }; }.
{
  pkgs,
  fluoLib,
  components,
  tag,
  binaries,
  stream,
}:
let
  uid = "65532";
  build =
    if stream then pkgs.dockerTools.streamLayeredImage else pkgs.dockerTools.buildLayeredImage;

  # /etc/passwd and /etc/group, so tools that look the user up find it.
  user = pkgs.runCommand "fluo-image-user" { } ''
    mkdir -p $out/etc
    echo "fluo:x:${uid}:${uid}:fluo:/nonexistent:/sbin/nologin" > $out/etc/passwd
    echo "fluo:x:${uid}:" > $out/etc/group
  '';

  # What each image runs; `package` is the nixpkgs package whose version tags the image.
  # Manifests add arguments (config files, data paths) with `args`.
  recipes = {
    image-fluo-bff = {
      entrypoint = [ "${binaries.fluo-bff}/bin/fluo-bff" ];
      ports = [ 8080 ];
    };
    image-fluo-worker = {
      entrypoint = [ "${binaries.fluo-worker}/bin/fluo-worker" ];
      ports = [ 8081 ];
    };
    image-nats = {
      package = pkgs.nats-server;
      entrypoint = [ "${pkgs.nats-server}/bin/nats-server" ];
      # /bin/nats-server for `kubectl exec ... nats-server --signal reload=...` (the reload of
      # `fluo-deploy rotate nats`).
      contents = [ pkgs.nats-server ];
      ports = [
        4222
        6222
        8222
      ];
    };
    image-nats-exporter = {
      package = pkgs.prometheus-nats-exporter;
      entrypoint = [ "${pkgs.prometheus-nats-exporter}/bin/prometheus-nats-exporter" ];
      ports = [ 7777 ];
    };
    image-prometheus = {
      package = pkgs.prometheus;
      entrypoint = [ "${pkgs.prometheus}/bin/prometheus" ];
      ports = [ 9090 ];
    };
    image-grafana = {
      package = pkgs.grafana;
      entrypoint = [
        "${pkgs.grafana}/bin/grafana"
        "server"
        "--homepath"
        "${pkgs.grafana}/share/grafana"
      ];
      ports = [ 3000 ];
      env = [ "GF_PATHS_DATA=/var/lib/grafana" ];
    };
  };

  mkImage =
    image:
    let
      recipe =
        recipes.${image.nixPackage} or (throw (
          "nix/images.nix has no recipe for nix_package '${image.nixPackage}'"
          + " (component ${image.component})"
        ));
    in
    build {
      name = image.repository;
      tag = tags.${image.nixPackage};
      contents = [
        user
        pkgs.cacert
      ]
      ++ recipe.contents or [ ];
      config = {
        User = "${uid}:${uid}";
        Entrypoint = recipe.entrypoint;
        ExposedPorts = builtins.listToAttrs (
          map (port: {
            name = "${toString port}/tcp";
            value = { };
          }) recipe.ports
        );
        Env = [ "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt" ] ++ recipe.env or [ ];
        Labels = {
          "org.opencontainers.image.title" = image.name;
          "org.opencontainers.image.version" = tags.${image.nixPackage};
          # The FLUO build that made the image (upstream images too: their layers are ours).
          "org.opencontainers.image.revision" = tag;
        };
      };
    };

  tags = fluoLib.imageTags {
    images = fluoLib.allImages components;
    versions = builtins.mapAttrs (_: recipe: recipe.package.version or null) recipes;
    inherit tag;
  };
in
{
  inherit tags;
  packages = builtins.listToAttrs (
    map (image: {
      name = image.nixPackage;
      value = mkImage image;
    }) (fluoLib.allImages components)
  );
}
