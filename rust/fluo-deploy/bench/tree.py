#!/usr/bin/env python3
"""Trees and Helm charts for scripts/bench-helm (see docs/performance/helm.md).

  tree.py gen OUT --from INFRA --components N --depth D   generated infra/ tree
  tree.py charts INFRA OUT [--env E] [--image NAME=REF]... one Helm chart per component
  tree.py order INFRA                                      components in SOP order
  tree.py summary RESULTS.tsv                              the Markdown tables of a run
  tree.py selftest                                         checks of the functions above

A generated tree keeps the real tree's cluster manifests, checklist and rehearsal environment;
its components are laid out in D levels (component i of level l depends on one component of
level l-1), so the critical path is D components deep and the rest runs side by side. Each
component ships ten objects shaped like the real workers component (hardened Deployment,
Services, NetworkPolicy, PodDisruptionBudget, ServiceAccount, ConfigMaps).

Charts hold the objects fluo-deploy renders (labels, images, replicas, pull policy) as a plain
file that the chart's template includes verbatim (Prometheus rules contain `{{ }}`). In the
cluster chart, cluster-scoped names and the state namespace get the release namespace appended,
so Helm's and fluo-deploy's runs on one emulator never fight over the same cluster objects.
"""

import argparse
import copy
import os
import shutil
import statistics
import sys
import tomllib

import yaml

KIND_ORDER = [
    "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
    "Role", "RoleBinding", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service",
    "NetworkPolicy", "PodDisruptionBudget", "StatefulSet", "Deployment", "DaemonSet", "Job",
    "Ingress",
]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
STATE_NAMESPACE = "fluo-system"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def load_yaml_dir(path):
    docs = []
    for name in sorted(os.listdir(path)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(path, name)) as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def components(infra):
    """(name, sop_order, depends_on, images) per component, in SOP order."""
    out = []
    base = os.path.join(infra, "components")
    for name in os.listdir(base):
        toml_path = os.path.join(base, name, "component.toml")
        if not os.path.exists(toml_path):
            continue
        with open(toml_path, "rb") as f:
            spec = tomllib.load(f)
        c = spec["component"]
        out.append((c["name"], c["sop_order"], c.get("depends_on", []), spec.get("images", [])))
    return sorted(out, key=lambda c: (c[1], c[0]))


# ---------------------------------------------------------------- generated trees

def layout(n, depth):
    """Parent (or None) per component index: levels of ceil(n/depth), each component depending
    on one component of the level above."""
    depth = max(1, min(depth, n))
    width = -(-n // depth)
    parents = []
    for i in range(n):
        level, pos = divmod(i, width)
        if level == 0:
            parents.append(None)
        else:
            above = min(width, n - (level - 1) * width)
            parents.append((level - 1) * width + pos % above)
    return parents


def component_objects(name, image):
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": name,
              "app.kubernetes.io/part-of": "fluo"}
    meta = lambda n: {"name": n, "labels": dict(labels)}  # noqa: E731
    selector = {"app.kubernetes.io/name": name}
    hardened = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    probe = lambda p: {"httpGet": {"path": p, "port": "http"}, "periodSeconds": 5}  # noqa: E731
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name),
        "spec": {
            "replicas": 1, "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": name, "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                        "runAsGroup": 65532, "fsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "livenessProbe": probe("/health"), "readinessProbe": probe("/ready"),
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                                      "limits": {"cpu": "500m", "memory": "128Mi"}},
                        "securityContext": hardened,
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/app",
                                          "readOnly": True},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }
    port = [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name),
         "automountServiceAccountToken": False},
        deployment,
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(name),
         "spec": {"selector": selector, "ports": port}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(f"{name}-headless"),
         "spec": {"clusterIP": "None", "selector": selector, "ports": port}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name),
         "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"ports": [{"port": 8080, "protocol": "TCP"}]}],
                  "egress": [{"ports": [{"port": 4222, "protocol": "TCP"}]}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}},
    ]
    for suffix in ["config", "settings", "features", "routes"]:
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{name}-{suffix}"),
                     "data": {f"{suffix}.yaml": f"component: {name}\nkey: {suffix}\n"}})
    return objs


def generate(out, infra, n, depth):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "components"))
    shutil.copytree(os.path.join(infra, "k8s"), os.path.join(out, "k8s"))
    shutil.copy(os.path.join(infra, "checklist.toml"), out)
    os.makedirs(os.path.join(out, "environments"))
    with open(os.path.join(infra, "environments", "rehearsal.toml")) as f:
        env = f.read()
    # The real tree's replica overrides name components the generated tree does not have.
    env = "\n".join(line for line in env.splitlines()
                    if not (line.startswith("bff =") or line.startswith("workers =")))
    with open(os.path.join(out, "environments", "rehearsal.toml"), "w") as f:
        f.write(env + "\n")
    names = [f"c{i:03d}" for i in range(n)]
    for i, parent in enumerate(layout(n, depth)):
        name = names[i]
        cdir = os.path.join(out, "components", name)
        os.makedirs(os.path.join(cdir, "manifests"))
        deps = f'["{names[parent]}"]' if parent is not None else "[]"
        with open(os.path.join(cdir, "component.toml"), "w") as f:
            f.write(f'[component]\nname = "{name}"\ndescription = "generated"\n'
                    f'sop_order = {i + 1}\ndepends_on = {deps}\n\n[rollout]\ntimeout = "3m"\n\n'
                    f'[[images]]\nname = "{name}-app"\nnix_package = "image-{name}"\n'
                    f'default_ref = "fluo/bench-app:dev"\n')
        for obj in component_objects(name, "fluo/bench-app:dev"):
            fname = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            with open(os.path.join(cdir, "manifests", fname), "w") as f:
                yaml.safe_dump(obj, f, sort_keys=False)


# ---------------------------------------------------------------- charts

def render(obj, component, images, replicas, pull_policy, managed_by):
    """The object as fluo-deploy renders it (labels, image refs, replicas, pull policy)."""
    obj = copy.deepcopy(obj)
    labels = {"app.kubernetes.io/managed-by": managed_by, "app.kubernetes.io/part-of": "fluo",
              "fluo.dev/component": component}
    obj.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    if obj["kind"] in WORKLOADS:
        spec = obj["spec"]
        if replicas is not None and obj["kind"] != "Job":
            spec["replicas"] = replicas
        pod = spec["template"]
        pod.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            c["image"] = images.get(c["image"], c["image"])
            if pull_policy:
                c["imagePullPolicy"] = pull_policy
    return obj


def suffix_cluster_names(obj):
    """Cluster chart: per-release names for cluster-scoped objects and the state namespace."""
    sfx = "-{{ .Release.Namespace }}"
    meta = obj["metadata"]
    if obj["kind"] in CLUSTER_SCOPED:
        meta["name"] += sfx
    if meta.get("namespace") == STATE_NAMESPACE:
        meta["namespace"] += sfx
    ref = obj.get("roleRef")
    if ref and ref.get("kind") == "ClusterRole":
        ref["name"] += sfx
    return obj


def write_chart(path, name, objects, templated):
    os.makedirs(os.path.join(path, "templates"), exist_ok=True)
    with open(os.path.join(path, "Chart.yaml"), "w") as f:
        f.write(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\ntype: application\n")
    text = yaml.safe_dump_all(objects, sort_keys=False)
    if templated:
        with open(os.path.join(path, "templates", "objects.yaml"), "w") as f:
            f.write(text)
        return
    os.makedirs(os.path.join(path, "files"), exist_ok=True)
    with open(os.path.join(path, "files", "objects.yaml"), "w") as f:
        f.write(text)
    with open(os.path.join(path, "templates", "objects.yaml"), "w") as f:
        f.write('{{ .Files.Get "files/objects.yaml" }}\n')


def charts(infra, out, env_name, overrides):
    with open(os.path.join(infra, "environments", f"{env_name}.toml"), "rb") as f:
        env = tomllib.load(f)
    replicas = env.get("replicas", {})
    pull = env.get("images", {}).get("pull_policy")
    registry = env.get("images", {}).get("registry", "")
    if os.path.exists(out):
        shutil.rmtree(out)
    cluster = [suffix_cluster_names(render(o, "cluster", {}, None, None, "Helm"))
               for o in load_yaml_dir(os.path.join(infra, "k8s", "manifests"))]
    write_chart(os.path.join(out, "cluster"), "cluster", sort_kinds(cluster), templated=True)
    for name, _, _, images in components(infra):
        refs = {}
        for img in images:
            ref = img["default_ref"]
            if registry:
                ref = f"{registry.rstrip('/')}/{ref.rsplit('/', 1)[-1]}"
            refs[img["default_ref"]] = overrides.get(img["name"], ref)
        objs = [render(o, name, refs, replicas.get(name), pull, "Helm")
                for o in load_yaml_dir(os.path.join(infra, "components", name, "manifests"))]
        write_chart(os.path.join(out, name), name, sort_kinds(objs), templated=False)


def sort_kinds(objs):
    rank = lambda o: KIND_ORDER.index(o["kind"]) if o["kind"] in KIND_ORDER else len(KIND_ORDER)  # noqa: E731
    return sorted(objs, key=rank)


# ---------------------------------------------------------------- summary

def summary(path):
    """RESULTS.tsv rows: tree, scenario, tool, seconds, requests, peak_kib, outcome, cpu_s,
    emulator_cpu_s."""
    rows = {}
    with open(path) as f:
        for line in f:
            tree, scenario, tool, secs, reqs, kib, ok, cpu, emu = line.rstrip("\n").split("\t")
            rows.setdefault((tree, scenario), {}).setdefault(tool, []).append(
                (float(secs), int(reqs), int(kib), ok, float(cpu), float(emu)))
    print("| tree | scenario | fluo-deploy (s) | Helm 4 (s) | ratio | requests fluo / Helm "
          "| peak RSS fluo / Helm (MiB) | CPU s fluo / Helm | emulator CPU s in fluo / Helm runs "
          "| outcome fluo / Helm |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (tree, scenario), tools in rows.items():
        fluo, helm = tools.get("fluo-deploy", []), tools.get("helm", [])
        cell = lambda runs: fmt_runs([r[0] for r in runs])  # noqa: E731
        ratio = (f"**{statistics.mean(r[0] for r in fluo) / statistics.mean(r[0] for r in helm):.2f}x**"
                 if fluo and helm else "-")
        reqs = " / ".join(str(round(statistics.mean(r[1] for r in t))) if t else "-"
                          for t in (fluo, helm))
        mem = " / ".join(f"{max(r[2] for r in t) / 1024:.0f}" if t else "-" for t in (fluo, helm))
        cpu = " / ".join(f"{statistics.mean(r[4] for r in t):.2f}" if t else "-" for t in (fluo, helm))
        emu = " / ".join(f"{statistics.mean(r[5] for r in t):.2f}" if t else "-" for t in (fluo, helm))
        outcome = " / ".join(",".join(sorted({r[3] for r in t})) if t else "-" for t in (fluo, helm))
        print(f"| {tree} | {scenario} | {cell(fluo)} | {cell(helm)} | {ratio} | {reqs} | {mem} "
              f"| {cpu} | {emu} | {outcome} |")


def fmt_runs(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f}, n={len(values)})"


# ---------------------------------------------------------------- self test

def selftest():
    import tempfile
    assert layout(1, 6) == [None]
    assert layout(5, 1) == [None] * 5
    parents = layout(200, 6)
    depth = lambda i: 0 if parents[i] is None else 1 + depth(parents[i])  # noqa: E731
    assert max(depth(i) for i in range(200)) == 5, "200 components: 6 levels"
    assert all(p is None or p < i for i, p in enumerate(parents)), "parents come first"
    assert len(component_objects("c000", "x:1")) == 10
    dep = next(o for o in component_objects("c000", "fluo/bench-app:dev") if o["kind"] == "Deployment")
    r = render(dep, "c000", {"fluo/bench-app:dev": "fluo/bench-app:b"}, 3, "Always", "Helm")
    c = r["spec"]["template"]["spec"]["containers"][0]
    assert (r["spec"]["replicas"], c["image"], c["imagePullPolicy"]) == (3, "fluo/bench-app:b", "Always")
    assert r["spec"]["template"]["metadata"]["labels"]["fluo.dev/component"] == "c000"
    assert dep["spec"]["replicas"] == 1, "render copies"
    rb = suffix_cluster_names({"kind": "RoleBinding", "metadata": {"name": "x", "namespace": STATE_NAMESPACE},
                               "roleRef": {"kind": "ClusterRole", "name": "r"}})
    assert rb["metadata"] == {"name": "x", "namespace": "fluo-system-{{ .Release.Namespace }}"}
    assert rb["roleRef"]["name"] == "r-{{ .Release.Namespace }}"
    here = os.path.dirname(os.path.abspath(__file__))
    infra = os.path.join(here, "..", "..", "..", "infra")
    with tempfile.TemporaryDirectory() as tmp:
        generate(os.path.join(tmp, "t"), infra, 12, 4)
        comps = components(os.path.join(tmp, "t"))
        assert [c[0] for c in comps][:2] == ["c000", "c001"] and len(comps) == 12
        assert sum(1 for c in comps if not c[2]) == 3, "12 in 4 levels: 3 roots"
        charts(infra, os.path.join(tmp, "ch"), "rehearsal", {"fluo-bff": "fluo/fluo-bff:b"})
        with open(os.path.join(tmp, "ch", "bff", "files", "objects.yaml")) as f:
            bff = list(yaml.safe_load_all(f))
        dep = next(o for o in bff if o["kind"] == "Deployment")
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "fluo/fluo-bff:b"
        assert dep["spec"]["replicas"] == 2, "rehearsal.toml: bff = 2"
        assert sorted(os.listdir(os.path.join(tmp, "ch"))) == sorted(
            ["cluster"] + [c[0] for c in components(infra)])
    print("tree.py selftest: ok")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("out")
    g.add_argument("--from", dest="infra", required=True)
    g.add_argument("--components", type=int, required=True)
    g.add_argument("--depth", type=int, default=6)
    c = sub.add_parser("charts")
    c.add_argument("infra")
    c.add_argument("out")
    c.add_argument("--env", default="rehearsal")
    c.add_argument("--image", action="append", default=[])
    o = sub.add_parser("order")
    o.add_argument("infra")
    s = sub.add_parser("summary")
    s.add_argument("results")
    sub.add_parser("selftest")
    a = p.parse_args()
    if a.cmd == "gen":
        generate(a.out, a.infra, a.components, a.depth)
    elif a.cmd == "charts":
        overrides = {}
        for flag in a.image:
            name, sep, ref = flag.partition("=")
            if not sep:
                sys.exit(f"--image {flag!r}: expected NAME=REF")
            overrides[name] = ref
        charts(a.infra, a.out, a.env, overrides)
    elif a.cmd == "order":
        print("\n".join(c[0] for c in components(a.infra)))
    elif a.cmd == "summary":
        summary(a.results)
    else:
        selftest()


if __name__ == "__main__":
    main()
