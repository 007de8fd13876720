# Image names and references: what each component runs, how the flake tags what it builds and
# which `--image name=ref` flags the deploy apps pass to fluo-deploy.
let
  inherit (import ./strings.nix) baseName;
  order = import ./order.nix;
in
rec {
  # "registry:5000/fluo/nats:2.10" -> "registry:5000/fluo/nats" (a port is not a tag).
  repositoryOf =
    ref:
    let
      withoutDigest = builtins.head (builtins.split "@" ref);
      match = builtins.match "(.*/)?([^/:]+)(:[^/]*)?" withoutDigest;
      prefix = builtins.elemAt match 0;
    in
    (if prefix == null then "" else prefix) + builtins.elemAt match 1;

  # Every image of the given components, in dependency order.
  imagesOf =
    components: names:
    let
      withOrigin =
        component: image:
        image
        // {
          inherit component;
          repository = repositoryOf image.defaultRef;
        };
      selected = builtins.filter (name: builtins.elem name names) (
        order.dependencyOrder components
      );
    in
    builtins.concatLists (map (name: map (withOrigin name) components.${name}.images) selected);

  allImages = components: imagesOf components (builtins.attrNames components);

  # The tag of our own images: the flake's short revision; a dirty tree has none.
  imageTag = self: self.shortRev or "dirty";

  # The tag of every built image (nix_package -> tag): the version of the nixpkgs package it
  # runs (`versions`: nix_package -> version, null for our own binaries), else `tag`. Never
  # hand-written, so a nixpkgs bump that changes what an image runs changes its tag.
  imageTags =
    {
      images,
      versions,
      tag,
    }:
    builtins.listToAttrs (
      map (image: {
        name = image.nixPackage;
        value =
          let
            version = versions.${image.nixPackage} or null;
          in
          if version == null then tag else version;
      }) images
    );

  # What FLUO_COMMIT the binaries get: "<sha>" or "<sha>-dirty"; null lets them ask git.
  commitOf = self: self.rev or self.dirtyRev or null;

  # Local clusters load the image under its own repository; a registry gets "<registry>/<name>".
  imageRef =
    {
      repository,
      tag,
      registry,
    }:
    if registry == "" then "${repository}:${tag}" else "${registry}/${baseName repository}:${tag}";

  # `--image name=ref` for each image; `tags` maps nix_package -> tag.
  imageArgs =
    {
      images,
      tags,
      registry,
    }:
    builtins.concatLists (
      map (image: [
        "--image"
        "${image.name}=${
          imageRef {
            inherit (image) repository;
            inherit registry;
            tag = tags.${image.nixPackage};
          }
        }"
      ]) images
    );
}
