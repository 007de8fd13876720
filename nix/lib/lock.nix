# A component sub-flake reaches nixpkgs through its own flake.lock, which keeps a copy of the
# root flake.lock's entries from the day Nix wrote it and never reads the root's again
# (NixOS/nix#12703). Comparing the two lock files (no input is fetched for it) lets a stale
# copy stop evaluation instead of building images from another nixpkgs under the same tags.
let
  nodeOf =
    lock: parent: input:
    let
      ref = lock.nodes.${parent}.inputs.${input} or null;
    in
    # A string names a node; a list is a `follows` path, which FLUO's flakes do not use.
    if builtins.isString ref then ref else null;
in
{
  # null when `componentLock` pins, for `input` of its input `via` (the root flake), what
  # `rootLock` pins for its own `input`; otherwise the difference as a message naming lockFile.
  staleLock =
    {
      rootLock,
      componentLock,
      via,
      input,
      lockFile,
    }:
    let
      rootNode = nodeOf rootLock rootLock.root input;
      viaNode = nodeOf componentLock componentLock.root via;
      componentNode = if viaNode == null then null else nodeOf componentLock viaNode input;
      locked = lock: node: if node == null then { } else lock.nodes.${node}.locked or { };
      pinnedByRoot = locked rootLock rootNode;
      pinnedHere = locked componentLock componentNode;
      describe = attrs: "${attrs.rev or "?"} (${attrs.narHash or "no narHash"})";
    in
    if pinnedHere != { } && (pinnedHere.narHash or null) == (pinnedByRoot.narHash or null) then
      null
    else
      "${lockFile} pins ${via}/${input} ${describe pinnedHere}, but the root flake.lock pins"
      + " ${describe pinnedByRoot}: delete ${lockFile} (Nix writes it again from the root's)";
}
