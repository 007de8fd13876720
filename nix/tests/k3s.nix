# NixOS VM end-to-end test (x86_64-linux, needs KVM): one k3s node, the images of this build,
# and the SOP-002 flow through the real flake apps: deploy-all, verify-deployment-health, smoke,
# a second deploy, rollback-to-previous, with the cluster state asserted after each step.
{
  pkgs,
  fluoLib,
  components,
  environments,
  infraStore,
  packages,
  imageTags,
  commit,
  ...
}@ctx:
let
  namespace = "fluo";
  kubeconfig = "/etc/rancher/k3s/k3s.yaml";

  # The VM cluster as an environment: local.toml with k3s's context name ("default") and
  # port-forward access, since the VM runs no ingress controller.
  local = builtins.fromTOML (builtins.readFile (infraStore + "/environments/local.toml"));
  vmToml = (pkgs.formats.toml { }).generate "vm.toml" (
    local
    // {
      environment = local.environment // {
        name = "vm";
        context = "default";
      };
      access =
        builtins.removeAttrs local.access [
          "ingress_url"
          "ingress_host"
        ]
        // {
          mode = "port-forward";
        };
    }
  );
  vmInfra = pkgs.runCommand "fluo-infra-vm" { } ''
    cp -r ${infraStore} $out
    chmod -R u+w $out
    cp ${vmToml} $out/environments/vm.toml
  '';
  # The same record nix/lib would read from vm.toml (read here without building vmInfra).
  vmEnvironment = environments.local // {
    name = "vm";
    context = "default";
  };

  # The root apps, pointed at the VM's infra/ (so they know the "vm" environment).
  vmCtx = ctx // {
    infraStore = vmInfra;
    environments = environments // {
      vm = vmEnvironment;
    };
  };
  apps = builtins.mapAttrs (import ../mk-app.nix vmCtx).app (fluoLib.rootApps components);
  run = name: apps.${name}.program;

  # Checklist steps that run the flake itself (this test is part of `nix flake check`); the
  # deploy's --reason is recorded as the reason for skipping them.
  skips = "--skip tests --skip flake-check --skip build";
  testCommit = if commit == null then "unknown-dirty" else commit;
  # For the apps and for fluo-deploy called directly (the second deploy and history).
  fluoEnv = "export KUBECONFIG=${kubeconfig} FLUO_INFRA_DIR=${vmInfra} FLUO_COMMIT=${testCommit};";
  order = fluoLib.dependencyOrder components;
  builtRef =
    image:
    fluoLib.imageRef {
      inherit (image) repository;
      tag = imageTags.${image.nixPackage};
      registry = "";
    };
  bff = builtins.head (fluoLib.imagesOf components [ "bff" ]);
  secondBffRef = "${bff.repository}:second";
  refForSecondDeploy =
    image: if image.nixPackage == bff.nixPackage then secondBffRef else builtRef image;
  secondDeployImages = fluoLib.escapeShellArgs (
    builtins.concatLists (
      map (image: [
        "--image"
        "${image.name}=${refForSecondDeploy image}"
      ]) (fluoLib.allImages components)
    )
  );
in
pkgs.testers.runNixOSTest {
  name = "fluo-k3s";

  nodes.machine =
    { pkgs, ... }:
    {
      virtualisation = {
        memorySize = 4096;
        diskSize = 8192;
        cores = 2;
      };
      services.k3s = {
        enable = true;
        role = "server";
        extraFlags = [
          "--disable metrics-server"
          "--disable servicelb"
          "--disable traefik"
        ];
        # pause, coredns and local-path images: the VM has no network.
        images = [ pkgs.k3s.airgap-images ];
      };
      environment.systemPackages = [ pkgs.k3s ];
    };

  testScript = ''
    import json

    components = ${builtins.toJSON order}

    def kubectl(args):
        return machine.succeed("${fluoEnv} kubectl " + args)

    def release_revisions(component):
        out = kubectl("-n fluo-system get secrets --field-selector type=fluo.dev/release.v1 -o json")
        names = [item["metadata"]["name"] for item in json.loads(out)["items"]]
        prefix = f"fluo.release.{component}.v"
        return sorted(int(n[len(prefix):]) for n in names if n.startswith(prefix))

    def assert_revisions(expected):
        for component in components:
            revisions = release_revisions(component)
            assert revisions == expected, f"{component}: release revisions {revisions}, expected {expected}"

    def assert_workloads_ready():
        for kind in ["deployment", "statefulset"]:
            names = kubectl(f"-n ${namespace} get {kind} -o name").split()
            for name in names:
                kubectl(f"-n ${namespace} rollout status {name} --timeout 180s")

    def bff_images():
        out = kubectl("-n ${namespace} get deployments -l fluo.dev/component=bff -o json")
        return {c["image"] for d in json.loads(out)["items"] for c in d["spec"]["template"]["spec"]["containers"]}

    start_all()
    machine.wait_for_unit("k3s")
    machine.wait_until_succeeds("${fluoEnv} kubectl get node machine | grep -w Ready", timeout=300)
    machine.wait_until_succeeds("${fluoEnv} kubectl -n kube-system get serviceaccount default")

    with subtest("deploy-all loads the images into k3s and deploys every component"):
        machine.succeed("${fluoEnv} ${run "deploy-all"} --env vm --reason 'VM e2e: first deploy' ${skips} >&2")
        assert_workloads_ready()
        assert_revisions([1])
        assert bff_images() == {"${builtRef bff}"}, bff_images()
        machine.succeed("k3s crictl images | grep -F ${bff.repository}")

    with subtest("verify-deployment-health passes"):
        machine.succeed("${fluoEnv} ${run "health"} vm >&2")

    with subtest("smoke tests pass"):
        machine.succeed("${fluoEnv} ${run "smoke"} --env vm >&2")

    with subtest("a second deploy records revision 2 with the new bff image"):
        machine.succeed("k3s ctr images tag docker.io/${builtRef bff} docker.io/${secondBffRef}")
        machine.succeed(
            "${fluoEnv} ${packages.fluo-deploy}/bin/fluo-deploy deploy --all --env vm"
            " --reason 'VM e2e: second deploy' ${secondDeployImages} ${skips} >&2"
        )
        assert_workloads_ready()
        assert_revisions([1, 2])
        assert bff_images() == {"${secondBffRef}"}, bff_images()

    with subtest("rollback-to-previous restores the first deploy"):
        # Without --reason it is refused and changes nothing.
        machine.fail("${fluoEnv} ${run "rollback-to-previous"} --env vm >&2")
        assert_revisions([1, 2])
        machine.succeed("${fluoEnv} ${run "rollback-to-previous"} --env vm --reason 'VM e2e: rollback' >&2")
        assert_workloads_ready()
        assert_revisions([1, 2, 3])
        assert bff_images() == {"${builtRef bff}"}, bff_images()
        machine.succeed("${fluoEnv} ${run "health"} vm >&2")
        machine.succeed("${fluoEnv} ${packages.fluo-deploy}/bin/fluo-deploy history --verify --env vm >&2")
  '';
}
