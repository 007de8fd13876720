{
  description = "FLUO component grafana: deploy, rollback, status and logs apps";

  # Relative path inputs need Nix 2.26 or newer.
  inputs.fluo.url = "path:../../..";

  outputs =
    { self, fluo }:
    fluo.lib.mkComponentFlake {
      componentSelf = self;
      name = "grafana";
    };
}
