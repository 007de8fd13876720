# Dependency order of components (depends_on in component.toml), the same graph fluo-deploy uses:
# waves of components whose dependencies are all in earlier waves; inside a wave, SOP-002 order.
let
  inherit (builtins)
    all
    attrNames
    concatLists
    concatStringsSep
    elem
    filter
    length
    sort
    ;

  bySopOrder =
    components: a: b:
    let
      ca = components.${a};
      cb = components.${b};
    in
    if ca.sopOrder == cb.sopOrder then a < b else ca.sopOrder < cb.sopOrder;

  checkDependencies =
    components:
    let
      unknown = concatLists (
        map (
          name:
          map (dep: "'${name}' depends on unknown component '${dep}'") (
            filter (dep: !(components ? ${dep})) components.${name}.dependsOn
          )
        ) (attrNames components)
      );
    in
    if unknown == [ ] then components else throw (concatStringsSep "; " unknown);

  reverseList =
    list:
    let
      n = length list;
    in
    builtins.genList (i: builtins.elemAt list (n - 1 - i)) n;
in
rec {
  # Names in SOP-002's listed order (sop_order): what `--sequential` follows.
  sopOrder = components: sort (bySopOrder components) (attrNames components);

  deployWaves =
    components:
    let
      checked = checkDependencies components;
      go =
        done: remaining: waves:
        if remaining == [ ] then
          waves
        else
          let
            ready = filter (name: all (dep: elem dep done) checked.${name}.dependsOn) remaining;
          in
          if ready == [ ] then
            throw "dependency cycle among components: ${concatStringsSep ", " remaining}"
          else
            go (done ++ ready) (filter (name: !(elem name ready)) remaining) (waves ++ [ ready ]);
    in
    go [ ] (sopOrder checked) [ ];

  dependencyOrder = components: concatLists (deployWaves components);

  # delete-all and graceful-shutdown go the other way: dependents first.
  teardownOrder = components: reverseList (dependencyOrder components);
}
