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
    import ./lib.nix { inherit fluoLib root; } // import ./flake.nix { inherit fluoLib root; };
  failure =
    name:
    let
      case = cases.${name};
    in
    if case.expr == case.expected then
      [ ]
    else
      [
        {
          inherit name;
          inherit (case) expected;
          result = case.expr;
        }
      ];
in
{
  cases = builtins.attrNames cases;
  failures = builtins.concatMap failure (builtins.attrNames cases);
}
