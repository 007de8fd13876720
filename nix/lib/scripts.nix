# The shell text of each flake app, generated from the app records in apps.nix. Pure (store
# paths come in as strings), so tests can assert the exact binary and flags every app runs.
let
  inherit (import ./strings.nix) concatMapStrings escapeShellArg escapeShellArgs;
  images = import ./images.nix;

  exports =
    { infraDir, commit }:
    "export FLUO_INFRA_DIR=\${FLUO_INFRA_DIR:-${escapeShellArg infraDir}}\n"
    + (if commit == null then "" else "export FLUO_COMMIT=\${FLUO_COMMIT:-${escapeShellArg commit}}\n");

  # One `case` branch per environment: registry, kube context, --image flags, images to publish.
  environmentBranch =
    {
      app,
      tag,
      imageSources,
    }:
    envName: env:
    let
      refOf =
        image:
        images.imageRef {
          inherit (image) repository;
          inherit tag;
          inherit (env) registry;
        };
    in
    "  ${escapeShellArg envName})\n"
    + "    registry=${escapeShellArg env.registry}\n"
    + "    context=\${context:-${escapeShellArg env.context}}\n"
    + "    image_args=(${
      escapeShellArgs (
        images.imageArgs {
          inherit (app) images;
          inherit tag;
          inherit (env) registry;
        }
      )
    })\n"
    + "    sources=(${
      escapeShellArgs (map (image: "${refOf image}=${imageSources.${image.nixPackage}}") app.images)
    })\n"
    + "    ;;\n";

  publishingPreamble =
    {
      name,
      app,
      tag,
      environments,
      imageSources,
      publishLib,
    }:
    let
      selected =
        if app.environment == null then
          environments
        else
          { ${app.environment} = environments.${app.environment}; };
      known = builtins.concatStringsSep ", " (builtins.attrNames environments);
    in
    "# shellcheck source=/dev/null\n"
    + "source ${escapeShellArg publishLib}\n"
    + (
      if app.environment == null then
        "env_name=$(fluo_arg_value --env \"\${FLUO_ENV:-local}\" \"$@\")\n"
      else
        "env_name=${escapeShellArg app.environment}\n"
    )
    + "context=$(fluo_arg_value --context '' \"$@\")\n"
    + "case $env_name in\n"
    + concatMapStrings (envName: environmentBranch { inherit app tag imageSources; } envName selected.${envName}) (
      builtins.attrNames selected
    )
    + "  *)\n"
    + "    echo \"${name}: unknown environment '$env_name' (this build knows: ${known})\" >&2\n"
    + "    exit 2\n"
    + "    ;;\n"
    + "esac\n"
    + "fluo_publish_images ${escapeShellArg tag} \"$registry\" \"$context\" \"\${sources[@]}\"\n";
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
      environments,
      imageSources,
      publishLib,
      source,
      packages,
    }:
    if app.kind == "binary" then
      exports { inherit infraDir commit; }
      + (
        if app.images == [ ] then
          "exec ${escapeShellArgs ([ (exe app.binary) ] ++ app.args)} \"$@\"\n"
        else
          publishingPreamble {
            inherit
              name
              app
              tag
              environments
              imageSources
              publishLib
              ;
          }
          + "exec ${escapeShellArgs ([ (exe app.binary) ] ++ app.args)} \"\${image_args[@]}\" \"$@\"\n"
      )
    else if app.kind == "script" then
      exports { inherit infraDir commit; } + "exec bash ${escapeShellArg "${source}/${app.script}"} \"$@\"\n"
    else if app.kind == "checkout-script" then
      "if ! root=$(git rev-parse --show-toplevel 2>/dev/null); then\n"
      + "  echo ${escapeShellArg "${name}: run this inside a FLUO git checkout (it tests the working tree)"} >&2\n"
      + "  exit 2\n"
      + "fi\n"
      + "if [ ! -x \"$root/${app.script}\" ]; then\n"
      + "  echo \"${name}: $root/${app.script} is missing or not executable: is this a FLUO checkout?\" >&2\n"
      + "  exit 2\n"
      + "fi\n"
      + "cd \"$root\"\n"
      + "exec \"$root/${app.script}\" \"$@\"\n"
    else if app.kind == "build-all" then
      concatMapStrings (p: "printf '%s\\t%s\\n' ${escapeShellArg p.name} ${escapeShellArg p.path}\n") packages
    else
      throw "app ${name}: unknown kind '${app.kind}'";
}
