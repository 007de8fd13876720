# Tests of the pure FLUO Nix library and of the flake wiring, runTests-style: every case is
# { expr; expected; }. Evaluates to { cases = [names]; failures = [...]; } (failures [] = all
# pass): scripts/test-nix runs it with `nix-instantiate --eval --strict`, checks.nix-lib fails
# the flake check on any failure. No nixpkgs needed: the flake is evaluated with a stub.
{
  root ? ../../..,
}:
let
  fluoLib = import ../.;
  cases =
    import ./lib.nix { inherit fluoLib root; }
    // import ./wiring.nix { inherit fluoLib root; }
    // import ./source.nix { inherit fluoLib root; };
  failure =
    name:
    let
      case = cases.${name};
      # A case that throws fails alone instead of hiding every other result.
      evaluated = builtins.tryEval (builtins.deepSeq case.expr case.expr);
    in
    if evaluated.success && evaluated.value == case.expected then
      [ ]
    else
      [
        {
          inherit name;
          inherit (case) expected;
          result =
            if evaluated.success then
              evaluated.value
            else
              "<throws: evaluate it with --show-trace>";
        }
      ];
in
{
  cases = builtins.attrNames cases;
  failures = builtins.concatMap failure (builtins.attrNames cases);
}
