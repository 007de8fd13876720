# String helpers the FLUO lib needs, written over builtins so nothing here requires nixpkgs.
rec {
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;

  hasSuffix =
    suffix: s:
    let
      ls = builtins.stringLength s;
      lx = builtins.stringLength suffix;
    in
    lx <= ls && builtins.substring (ls - lx) lx s == suffix;

  removePrefix =
    prefix: s:
    if hasPrefix prefix s then
      builtins.substring (builtins.stringLength prefix) (builtins.stringLength s) s
    else
      s;

  removeSuffix =
    suffix: s:
    if hasSuffix suffix s then
      builtins.substring 0 (builtins.stringLength s - builtins.stringLength suffix) s
    else
      s;

  concatMapStrings = f: list: builtins.concatStringsSep "" (map f list);

  # Quote for POSIX shells; words that need no quoting stay readable in the generated scripts.
  escapeShellArg =
    arg:
    let
      s = toString arg;
    in
    if builtins.match "[A-Za-z0-9_./:=@,+%-]+" s != null then
      s
    else
      "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] s}'";

  escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);

  # The part of a path-like string after the last "/".
  baseName =
    s:
    let
      parts = builtins.filter builtins.isString (builtins.split "/" s);
    in
    builtins.elemAt parts (builtins.length parts - 1);
}
