# Which files of the repository a derivation's source holds, as builtins.path filters. The root
# may be a non-canonical string: seen from a component sub-flake, the root flake's outPath is
# "/nix/store/…-source/infra/components/nats/../../.." (Nix's call-flake joins the relative
# input's path), while the filter receives canonical paths; both sides are canonicalised here.
let
  inherit (import ./strings.nix) hasPrefix hasSuffix removePrefix;

  dropLast = list: builtins.genList (builtins.elemAt list) (builtins.length list - 1);
in
rec {
  # "/a/b/../c/./d/" -> "/a/c/d" for absolute paths (".." above "/" stays at "/").
  canonicalPath =
    path:
    let
      parts = builtins.filter (part: builtins.isString part && part != "" && part != ".") (
        builtins.split "/" (toString path)
      );
      step =
        kept: part:
        if part != ".." then
          kept ++ [ part ]
        else if kept == [ ] then
          [ ]
        else
          dropLast kept;
    in
    "/" + builtins.concatStringsSep "/" (builtins.foldl' step [ ] parts);

  # PATH relative to ROOT: "" for ROOT itself, "a/b" below it, null outside it.
  relativeTo =
    root: path:
    let
      r = canonicalPath root;
      p = canonicalPath path;
      prefix = if r == "/" then "/" else "${r}/";
    in
    if p == r then
      ""
    else if hasPrefix prefix p then
      removePrefix prefix p
    else
      null;

  # A builtins.path filter: keep RELATIVE-PATH TYPE decides for everything below root.
  sourceFilter =
    { root, keep }:
    path: type:
    let
      rel = relativeTo root path;
    in
    rel != null && keep rel type;

  # What cargo reads to build the binaries: edits to docs or infra/ do not rebuild them.
  isBuildSource =
    rel: _type:
    builtins.elem rel [
      "Cargo.toml"
      "Cargo.lock"
      "rust"
    ]
    || hasPrefix "rust/" rel;

  # What the tests read: everything but build outputs and local state.
  isTestSource =
    rel: _type:
    !(builtins.elem rel [
      "target"
      ".git"
      ".fluo"
      "result"
    ])
    && !(hasPrefix "result-" rel);

  # The scripts the apps run (verify-deployment-health.sh).
  isScriptSource = rel: _type: rel == "scripts" || hasPrefix "scripts/" rel;

  # The Nix files nixfmt checks.
  isNixSource = rel: type: isTestSource rel type && (type == "directory" || hasSuffix ".nix" rel);
}
