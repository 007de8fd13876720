# Read infra/ with builtins.fromTOML: the same component.toml and environment files that
# fluo-core reads, so names, dependencies and images have one source of truth.
let
  inherit (import ./strings.nix) hasSuffix removeSuffix;

  # `section.key` of a parsed TOML file, or a clear error naming the file and the key.
  required =
    file: toml: section: key:
    if !(toml ? ${section}) then
      throw "${file}: missing section [${section}]"
    else if !(toml.${section} ? ${key}) then
      throw "${file}: missing key '${key}' in [${section}]"
    else
      toml.${section}.${key};

  readToml = file: builtins.fromTOML (builtins.readFile file);

  subdirectories =
    dir:
    let
      entries = builtins.readDir dir;
    in
    builtins.filter (name: entries.${name} == "directory") (builtins.attrNames entries);
in
rec {
  # One component directory -> a normalised record (camelCase names for Nix code).
  readComponent =
    dir:
    let
      dirName = baseNameOf (toString dir);
      file = "infra/components/${dirName}/component.toml";
      toml = readToml (dir + "/component.toml");
      name = required file toml "component" "name";
      image =
        entry:
        let
          imageKey =
            key: entry.${key} or (throw "${file}: an [[images]] entry has no '${key}'");
        in
        {
          name = imageKey "name";
          nixPackage = imageKey "nix_package";
          defaultRef = imageKey "default_ref";
        };
    in
    if name != dirName then
      throw "${file}: [component] name = \"${name}\" must equal its directory name \"${dirName}\""
    else
      {
        inherit name dir;
        description = required file toml "component" "description";
        sopOrder = required file toml "component" "sop_order";
        dependsOn = required file toml "component" "depends_on";
        timeout = required file toml "rollout" "timeout";
        images = map image (toml.images or [ ]);
        health = toml.health or [ ];
      };

  # infra/components/* -> { <name> = component; } for every directory holding a component.toml.
  readComponents =
    infraDir:
    let
      dir = infraDir + "/components";
      names = builtins.filter (name: builtins.pathExists (dir + "/${name}/component.toml")) (
        subdirectories dir
      );
    in
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = readComponent (dir + "/${name}");
      }) names
    );

  readEnvironment =
    infraDir: envName:
    let
      file = "infra/environments/${envName}.toml";
      toml = readToml (infraDir + "/environments/${envName}.toml");
      name = required file toml "environment" "name";
    in
    if name != envName then
      throw "${file}: [environment] name = \"${name}\" must equal the file name \"${envName}\""
    else
      {
        inherit name;
        context = required file toml "environment" "context";
        namespace = required file toml "environment" "namespace";
        registry = required file toml "images" "registry";
        pullPolicy = toml.images.pull_policy or "IfNotPresent";
        strategy = toml.strategy.order or "parallel";
      };

  # infra/environments/*.toml -> { <name> = environment; }
  readEnvironments =
    infraDir:
    let
      entries = builtins.readDir (infraDir + "/environments");
      names = map (removeSuffix ".toml") (
        builtins.filter (file: entries.${file} == "regular" && hasSuffix ".toml" file) (
          builtins.attrNames entries
        )
      );
    in
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = readEnvironment infraDir name;
      }) names
    );

  # Cargo.lock sources that buildRustPackage cannot vendor without extra hashes.
  unvendorableCrates =
    cargoLock:
    map (p: "${p.name} ${p.version} (${p.source})") (
      builtins.filter (p: p ? source && builtins.match "registry\\+.*" p.source == null) (
        (readToml cargoLock).package or [ ]
      )
    );

  workspaceVersion = cargoToml: (readToml cargoToml).workspace.package.version;
}
