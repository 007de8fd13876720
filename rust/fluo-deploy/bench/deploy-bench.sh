#!/usr/bin/env bash
# Benchmarks fluo-deploy against kube-emulator (see docs/performance/deploy.md).
#   cargo build -p kube-emulator -p fluo-deploy [--release]
#   rust/fluo-deploy/bench/deploy-bench.sh [BIN_DIR]       (default BIN_DIR: target/debug)
# Needs kubectl and hyperfine. Every deploy goes to a fresh namespace, so each run is an install.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
bin=${1:-$root/target/debug}
command -v kubectl >/dev/null || { echo "kubectl missing (install kubectl 1.32)"; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing (apt-get install hyperfine)"; exit 1; }
work=$(mktemp -d)
# The rehearsal environment (kube-emulator context) with the Nix-only gate steps skipped, as
# scripts/rehearse does; the manifest, policy and cluster-status gate steps still run and count.
gate=(--env rehearsal --skip tests --skip flake-check --skip build)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_emulator() { # name ready_after
  "$bin/kube-emulator" serve --kubeconfig-out "$work/$1.kubeconfig" --ready-after "$2" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/$1.kubeconfig" ] && return; sleep 0.1; done
  echo "emulator $1 did not start"; cat "$work/$1.log"; exit 1
}

# The real infra tree plus the operator-created grafana secret in every namespace we use.
# (kubectl apply, not `kubectl create namespace`/`create secret`: the emulator rejects those.)
prepare_ns() { # kubeconfig ns
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: grafana-admin, namespace: %s}\nstringData: {admin-user: admin, admin-password: bench}\n' "$2" "$2" \
    | kubectl --kubeconfig "$1" apply -f - >/dev/null
}

cat >"$work/kubectl-deploy.sh" <<'SCRIPT'
#!/usr/bin/env bash
# The hand-written equivalent: SOP order, kubectl apply + rollout status per component.
set -euo pipefail
kc=$1; ns=$2; infra=$3
kubectl --kubeconfig "$kc" apply -f "$infra/k8s/manifests" >/dev/null  # objects name their namespaces
for c in nats prometheus grafana bff workers; do
  kubectl --kubeconfig "$kc" apply -n "$ns" -f "$infra/components/$c/manifests" >/dev/null
  for w in $(kubectl --kubeconfig "$kc" get -n "$ns" -f "$infra/components/$c/manifests" -o name | grep -E '^(deployment|statefulset)'); do
    kubectl --kubeconfig "$kc" rollout status -n "$ns" "$w" --timeout=120s >/dev/null
  done
done
SCRIPT
chmod +x "$work/kubectl-deploy.sh"

cat >"$work/fluo-deploy.sh" <<SCRIPT
#!/usr/bin/env bash
set -euo pipefail
kc=\$1; ns=\$2
"$bin/fluo-deploy" --kubeconfig "\$kc" --infra "$root/infra" --context kube-emulator -n "\$ns" -q deploy --all ${gate[*]} --no-post-checks --reason bench >/dev/null
SCRIPT
chmod +x "$work/fluo-deploy.sh"

# Each run: a fresh namespace (counter file), prepared outside the timed command.
cat >"$work/next-ns.sh" <<'SCRIPT'
#!/usr/bin/env bash
set -euo pipefail
kc=$1; prefix=$2; counter=$3
n=$(( $(cat "$counter" 2>/dev/null || echo 0) + 1 )); echo $n >"$counter"
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: grafana-admin, namespace: %s}\nstringData: {admin-user: admin, admin-password: bench}\n' "$prefix$n" "$prefix$n" \
  | kubectl --kubeconfig "$kc" apply -f - >/dev/null
SCRIPT
chmod +x "$work/next-ns.sh"
ns_of() { echo "$1\$(cat $work/$1.count)"; }

echo "== 1. deploy-all, ready delay 0: fluo-deploy vs kubectl apply + rollout status"
start_emulator zero 0s
kc="$work/zero.kubeconfig"
hyperfine --runs "${RUNS:-5}" --export-markdown "$work/zero.md" \
  --prepare "$work/next-ns.sh $kc fa $work/fa.count" -n fluo-deploy "$work/fluo-deploy.sh $kc $(ns_of fa)" \
  --prepare "$work/next-ns.sh $kc kb $work/kb.count" -n kubectl-script "$work/kubectl-deploy.sh $kc $(ns_of kb) $root/infra"
cat "$work/zero.md"

echo "== 2. reaction time: from a dependency's last object ready to the dependent's start"
prepare_ns "$kc" react
"$bin/fluo-deploy" --kubeconfig "$kc" --infra "$root/infra" --context kube-emulator -n react -o json \
  deploy --all "${gate[@]}" --no-post-checks --reason bench 2>"$work/react.jsonl" >/dev/null
python3 - "$work/react.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def t(comp, text):
    return next(e["elapsed_s"] for e in ev if e["component"] == comp and text in e["message"])
for dep, nxt in [("nats", "bff"), ("bff", "workers"), ("prometheus", "grafana")]:
    last_ready = max(e["elapsed_s"] for e in ev if e["component"] == dep and e["message"].endswith(" ready"))
    start = t(nxt, "deploying revision")
    print(f"{dep} -> {nxt}: {1000*(start-last_ready):.0f} ms (last object ready at {last_ready:.3f}s, {nxt} started at {start:.3f}s)")
PY

echo "== 3. critical path: ready delay 1s per pod (chain nats -> bff -> workers = 3 s)"
start_emulator slow 1s
kcs="$work/slow.kubeconfig"
hyperfine --runs "${RUNS:-5}" --export-markdown "$work/slow.md" \
  --prepare "$work/next-ns.sh $kcs fs $work/fs.count" -n fluo-deploy-1s "$work/fluo-deploy.sh $kcs $(ns_of fs)"
cat "$work/slow.md"

echo "== 4. rollback-to-previous of all five (ready delay 0)"
prepare_ns "$kc" rb
for tag in a b; do
  "$bin/fluo-deploy" --kubeconfig "$kc" --infra "$root/infra" --context kube-emulator -n rb -q deploy --all "${gate[@]}" --no-post-checks --reason bench \
    --image nats=fluo/nats:$tag --image fluo-bff=fluo/fluo-bff:$tag --image fluo-worker=fluo/fluo-worker:$tag \
    --image prometheus=fluo/prometheus:$tag --image grafana=fluo/grafana:$tag >/dev/null
done
hyperfine --runs 1 --export-markdown "$work/rb.md" -n rollback-to-previous \
  "$bin/fluo-deploy --kubeconfig $kc --infra $root/infra --context kube-emulator -n rb -q --env rehearsal rollback-to-previous --reason bench"
cat "$work/rb.md"
