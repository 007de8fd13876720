# The shell text of each flake app, generated from the app records in apps.nix. Pure (store
# paths come in as strings), so tests can assert the exact binary and flags every app runs.
let
  inherit (import ./strings.nix) concatMapStrings escapeShellArg escapeShellArgs;
  images = import ./images.nix;

  optionalString = condition: s: if condition then s else "";

  exports =
    { infraDir, commit }:
    ''
      export FLUO_INFRA_DIR=''${FLUO_INFRA_DIR:-${escapeShellArg infraDir}}
    ''
    + optionalString (commit != null) ''
      export FLUO_COMMIT=''${FLUO_COMMIT:-${escapeShellArg commit}}
    '';

  # One `case` branch per environment: registry, kube context, --image flags, images to publish.
  environmentBranch =
    {
      app,
      imageTags,
      imageSources,
    }:
    envName: env:
    let
      imageArgs = images.imageArgs {
        inherit (app) images;
        inherit (env) registry;
        tags = imageTags;
      };
      source =
        image:
        "${
          images.imageRef {
            inherit (image) repository;
            inherit (env) registry;
            tag = imageTags.${image.nixPackage};
          }
        }=${imageSources.${image.nixPackage}}";
    in
    ''
      ${escapeShellArg envName})
        registry=${escapeShellArg env.registry}
        context=''${context:-${escapeShellArg env.context}}
        image_args=(${escapeShellArgs imageArgs})
        sources=(${escapeShellArgs (map source app.images)})
        ;;
    '';

  # Deploy apps: resolve the environment, publish the images, then pass their refs.
  publishingPreamble =
    {
      name,
      app,
      tag,
      imageTags,
      environments,
      imageSources,
    }:
    let
      selected =
        if app.environment == null then
          environments
        else
          { ${app.environment} = environments.${app.environment}; };
      known = builtins.concatStringsSep ", " (builtins.attrNames environments);
      branches = concatMapStrings (
        envName:
        environmentBranch { inherit app imageTags imageSources; } envName selected.${envName}
      ) (builtins.attrNames selected);
      envLine =
        if app.environment == null then
          ''env_name=$(fluo_arg_value --env "''${FLUO_ENV:-local}" "$@")''
        else
          "env_name=${escapeShellArg app.environment}";
    in
    ''
      ${envLine}
      context=$(fluo_arg_value --context "" "$@")
      case $env_name in
      ${branches}*)
        echo "${name}: unknown environment '$env_name' (this build knows: ${known})" >&2
        exit 2
        ;;
      esac
      fluo_publish_images ${escapeShellArg tag} "$registry" "$context" "''${sources[@]}"
    '';

in
{
  appScript =
    {
      name,
      app,
      exe,
      infraDir,
      commit,
      tag,
      imageTags,
      environments,
      imageSources,
      publishLib,
      source,
      packages,
    }:
    let
      binaryCommand = escapeShellArgs ([ (exe app.binary) ] ++ app.args);
    in
    if app.kind == "binary" && app.images == [ ] then
      exports { inherit infraDir commit; }
      + ''
        exec ${binaryCommand} "$@"
      ''
    else if app.kind == "binary" then
      exports { inherit infraDir commit; }
      + ''
        # shellcheck source=/dev/null
        source ${escapeShellArg publishLib}
        if fluo_wants_help "$@"; then
          exec ${binaryCommand} "$@"
        fi
      ''
      + publishingPreamble {
        inherit
          name
          app
          tag
          imageTags
          environments
          imageSources
          ;
      }
      + ''
        exec ${binaryCommand} "''${image_args[@]}" "$@"
      ''
    else if app.kind == "script" then
      exports { inherit infraDir commit; }
      + ''
        exec bash ${escapeShellArg "${source}/${app.script}"} "$@"
      ''
    else if app.kind == "checkout-script" then
      ''
        if ! root=$(git rev-parse --show-toplevel 2>/dev/null); then
          echo "${name}: run this inside a FLUO git checkout (it tests the working tree)" >&2
          exit 2
        fi
        if [ ! -x "$root/${app.script}" ]; then
          echo "${name}: $root/${app.script} is missing or not executable: is this a FLUO checkout?" >&2
          exit 2
        fi
        cd "$root"
        exec "$root/${app.script}" "$@"
      ''
    else if app.kind == "build-all" then
      concatMapStrings (package: ''
        printf '%s\t%s\n' ${escapeShellArg package.name} ${escapeShellArg package.path}
      '') packages
    else
      throw "app ${name}: unknown kind '${app.kind}'";
}
