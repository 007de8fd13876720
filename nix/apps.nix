# apps.<system>: every SOP-002 command (records in nix/lib/apps.nix).
ctx: builtins.mapAttrs (import ./mk-app.nix ctx).app (ctx.fluoLib.rootApps ctx.components)
