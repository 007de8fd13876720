# Cases for source selection (with the non-canonical root a component sub-flake sees), the
# image tags and the sub-flake lock comparison.
{ fluoLib, root }:
let
  fixtureRoot = ./fixtures/source;
  # What the root flake's outPath looks like from infra/components/c/flake.nix.
  nonCanonicalRoot = toString fixtureRoot + "/infra/components/c/../../..";
  selected =
    keep:
    let
      copy = builtins.path {
        name = "fluo-source-test";
        path = fixtureRoot;
        filter = fluoLib.sourceFilter {
          root = nonCanonicalRoot;
          inherit keep;
        };
      };
      walk =
        dir: prefix:
        builtins.concatLists (
          builtins.attrValues (
            builtins.mapAttrs (
              name: type:
              if type == "directory" then
                walk "${dir}/${name}" "${prefix}${name}/"
              else
                [ "${prefix}${name}" ]
            ) (builtins.readDir dir)
          )
        );
    in
    walk copy "";

  nixpkgsNode = {
    locked = {
      type = "github";
      owner = "NixOS";
      repo = "nixpkgs";
      rev = "1111111111111111111111111111111111111111";
      narHash = "sha256-one";
      lastModified = 1;
    };
    original = {
      type = "github";
      owner = "NixOS";
      repo = "nixpkgs";
      ref = "nixos-26.05";
    };
  };
  rootLock = {
    version = 7;
    root = "root";
    nodes = {
      root.inputs.nixpkgs = "nixpkgs";
      nixpkgs = nixpkgsNode;
    };
  };
  # A sub-flake lock as Nix 2.26 writes it for `inputs.fluo.url = "path:../../.."`.
  componentLock = nixpkgs: {
    version = 7;
    root = "root";
    nodes = {
      root.inputs.fluo = "fluo";
      fluo = {
        inputs.nixpkgs = "nixpkgs";
        locked = {
          path = "../../..";
          type = "path";
        };
        original = {
          path = "../../..";
          type = "path";
        };
        parent = [ ];
      };
      inherit nixpkgs;
    };
  };
  staleWith =
    lock:
    fluoLib.staleLock {
      inherit rootLock;
      componentLock = lock;
      via = "fluo";
      input = "nixpkgs";
      lockFile = "infra/components/c/flake.lock";
    };
in
{
  testCanonicalPath = {
    expr = map fluoLib.canonicalPath [
      "/nix/store/x-source/infra/components/nats/../../.."
      "/a/./b//c/"
      "/a/b/../../.."
      /tmp/x
    ];
    expected = [
      "/nix/store/x-source"
      "/a/b/c"
      "/"
      "/tmp/x"
    ];
  };

  testRelativeTo = {
    expr = map (fluoLib.relativeTo "/s/infra/components/c/../../..") [
      "/s/Cargo.toml"
      "/s"
      "/s/rust/a/../b"
      "/sx/Cargo.toml"
      "/t"
    ];
    expected = [
      "Cargo.toml"
      ""
      "rust/b"
      null
      null
    ];
  };

  # builtins.path hands the filter canonical paths; the root is the sub-flake's view of it.
  testBuildSourceWithNonCanonicalRoot = {
    expr = builtins.sort builtins.lessThan (selected fluoLib.isBuildSource);
    expected = [
      "Cargo.lock"
      "Cargo.toml"
      "rust/fluo-x/README"
    ];
  };

  testTestSourceWithNonCanonicalRoot = {
    expr = builtins.sort builtins.lessThan (selected fluoLib.isTestSource);
    expected = [
      "Cargo.lock"
      "Cargo.toml"
      "docs/guide.md"
      "infra/components/c/README"
      "rust/fluo-x/README"
    ];
  };

  # Upstream images are tagged with their nixpkgs package's version, ours with the build's tag.
  testImageTags = {
    expr = fluoLib.imageTags {
      images = fluoLib.allImages (fluoLib.readComponents (root + "/infra"));
      versions = {
        image-nats = "2.11.4";
        image-nats-exporter = "0.20.1";
        image-prometheus = "3.5.0";
        image-grafana = "13.0.1";
        image-fluo-bff = null;
      };
      tag = "abcdef0";
    };
    expected = {
      image-nats = "2.11.4";
      image-nats-exporter = "0.20.1";
      image-prometheus = "3.5.0";
      image-grafana = "13.0.1";
      image-fluo-bff = "abcdef0";
      image-fluo-worker = "abcdef0";
    };
  };

  testSubFlakeLockInStepWithTheRoot = {
    expr = staleWith (componentLock nixpkgsNode);
    expected = null;
  };

  testStaleSubFlakeLockIsReported = {
    expr = staleWith (
      componentLock (
        nixpkgsNode
        // {
          locked = nixpkgsNode.locked // {
            rev = "2222222222222222222222222222222222222222";
            narHash = "sha256-two";
          };
        }
      )
    );
    expected =
      "infra/components/c/flake.lock pins fluo/nixpkgs 2222222222222222222222222222222222222222"
      + " (sha256-two), but the root flake.lock pins 1111111111111111111111111111111111111111"
      + " (sha256-one): delete infra/components/c/flake.lock (Nix writes it again from the root's)";
  };

  testSubFlakeLockWithoutTheRootInputIsReported = {
    expr = builtins.isString (staleWith (rootLock // { nodes.root.inputs = { }; }));
    expected = true;
  };
}
