# Tests of the pure FLUO Nix library and of the flake wiring, runTests-style: every case is
# { expr; expected; }. Evaluates to the list of failures ([] = all pass), so
#   nix-instantiate --eval --strict nix/lib/tests
# prints [] when everything passes (scripts/test-nix checks that), and checks.nix-lib fails
# the flake check otherwise. No nixpkgs needed: the flake is evaluated with a stub.
{
  root ? ../../..,
}:
let
  fluoLib = import ../.;
  cases = import ./lib.nix { inherit fluoLib root; } // import ./flake.nix { inherit fluoLib root; };
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
builtins.concatMap failure (builtins.attrNames cases)
