#!/usr/bin/env bash
# Embedded demo: VirtualClusters end to end on one machine, no real cluster needed.
#
#   cargo build --release && bash deploy/demo/embedded.sh
#
# Starts a simulated super cluster (`apisim serve`, 2 simulated nodes), vc-manager with the embedded
# provisioner (each tenant API server is a simulated one inside vc-manager, HTTPS with the tenant's PKI) and
# the syncer with its gRPC API (mutual TLS, PKI generated in its data directory). Then: applies a
# ClusterVersion, creates two VirtualClusters with `kubectl vc create -f ... -o ...`, creates a pod in each
# tenant through the written kubeconfigs, shows the pods in the super cluster in their translated
# namespaces, lists the VirtualClusters with the syncer's objects and lag, deletes one VirtualCluster and
# shows that its super namespaces are gone. Everything listens on 127.0.0.1 only, all state is under one
# temporary directory, every wait is bounded, and everything started here is stopped on exit.
#
# Needs: kubectl on PATH (Debian: `apt-get install kubernetes-client`), and the release binaries apisim,
# syncer, vc-manager and kubectl-vc (`cargo build --release`). Environment:
#   DEMO_BIN_DIR   where the binaries are (default: $CARGO_TARGET_DIR/release or <repo>/target/release)
#   DEMO_KEEP=1    keep the temporary directory (logs, kubeconfigs) after the demo
#   DEMO_TIMEOUT   seconds each wait may take (default 120)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=${DEMO_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
TIMEOUT=${DEMO_TIMEOUT:-120}

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'demo failed: %s\n' "$*" >&2; exit 1; }

if ! command -v kubectl >/dev/null 2>&1; then
  fail "kubectl is needed (it talks to the simulated clusters). Install it, e.g. on Debian/Ubuntu:
  apt-get install kubernetes-client"
fi
for bin in apisim syncer vc-manager kubectl-vc; do
  [ -x "$BIN_DIR/$bin" ] || fail "$BIN_DIR/$bin not found: run 'cargo build --release' first (or set DEMO_BIN_DIR)"
done
# `kubectl vc ...` finds the plugin on PATH.
export PATH="$BIN_DIR:$PATH"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vc-demo.XXXXXX")
PIDS=()
cleanup() {
  local code=$?
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    kill "${PIDS[$i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: a process that ignores SIGTERM for 10 s is killed.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$code" != 0 ]; then
    echo "--- last log lines (all logs in $WORK) ---" >&2
    for log in "$WORK"/*.log; do [ -f "$log" ] && { echo "# $log" >&2; tail -n 15 "$log" >&2; }; done
  fi
  if [ "${DEMO_KEEP:-0}" = 1 ] || [ "$code" != 0 ]; then
    echo "state kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until DESCRIPTION COMMAND...: runs COMMAND every 0.5 s until it succeeds, at most $TIMEOUT s.
wait_until() {
  local what=$1; shift
  local deadline=$(( $(date +%s) + TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}

# A free TCP port on 127.0.0.1 (nothing accepts on it now).
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  fail "no free port found"
}

SUPER="$WORK/super.kubeconfig"
GRPC_ADDR="127.0.0.1:$(free_port)"
METRICS_ADDR="127.0.0.1:$(free_port)"
SYNCER_TLS="$WORK/syncer/grpc"
export KUBECTL_VC_SYNCER_ADDR="$GRPC_ADDR" KUBECTL_VC_SYNCER_TLS_DIR="$SYNCER_TLS"
echo "demo directory: $WORK"

say "1. simulated super cluster (apisim, 2 nodes)"
apisim serve --nodes 2 --kubeconfig "$SUPER" --context super >"$WORK/apisim.log" 2>&1 &
PIDS+=($!)
wait_until "the simulated super cluster" kubectl --kubeconfig "$SUPER" get namespaces
kubectl --kubeconfig "$SUPER" get nodes

say "2. vc-manager (embedded provisioner; waits for the syncer's TLS files) and the syncer (gRPC on $GRPC_ADDR)"
RUST_LOG=info vc-manager --kubeconfig "$SUPER" --install-crds --provisioner embedded \
  --data-dir "$WORK/vc-manager" --syncer-addr "$GRPC_ADDR" --syncer-tls-dir "$SYNCER_TLS" \
  >"$WORK/vc-manager.log" 2>&1 &
PIDS+=($!)
RUST_LOG=info syncer --super-kubeconfig "$SUPER" --data-dir "$WORK/syncer" --grpc-addr "$GRPC_ADDR" \
  --metrics-addr "$METRICS_ADDR" --shards 2 >"$WORK/syncer.log" 2>&1 &
PIDS+=($!)
wait_until "the VirtualCluster CRD" kubectl --kubeconfig "$SUPER" get virtualclusters -A
wait_until "the syncer's gRPC API" grep -q "gRPC API listening" "$WORK/syncer.log"
wait_until "vc-manager to load the syncer's TLS files" grep -q "registering tenants with the syncer" "$WORK/vc-manager.log"
grep -h "waiting for the syncer's TLS files\|TLS files appeared\|registering tenants with the syncer" \
  "$WORK/vc-manager.log" | sed 's/^/  vc-manager: /' | head -n 3

say "3. a ClusterVersion and two VirtualClusters (kubectl vc create -f ... -o ...)"
kubectl --kubeconfig "$SUPER" create -f "$ROOT/deploy/vc-manager/samples/clusterversion.yaml"
for vc in vc-a vc-b; do
  cat >"$WORK/$vc.yaml" <<EOF
apiVersion: tenancy.x-k8s.io/v1alpha1
kind: VirtualCluster
metadata:
  name: $vc
  namespace: default
spec:
  clusterVersionName: cv-k8s-1-33
EOF
  kubectl vc --kubeconfig "$SUPER" create -f "$WORK/$vc.yaml" -o "$WORK/$vc.kubeconfig" --timeout "${TIMEOUT}s"
done

say "4. a pod in each tenant, created through its kubeconfig (TLS verified against the tenant CA)"
for vc in vc-a vc-b; do
  kubectl --kubeconfig "$WORK/$vc.kubeconfig" create namespace web
  kubectl --kubeconfig "$WORK/$vc.kubeconfig" -n web run "nginx-$vc" --image=nginx --restart=Never
done
kubectl --kubeconfig "$WORK/vc-a.kubeconfig" get pods -A

say "5. the pods in the super cluster, each in its tenant's translated namespace"
super_pod() {
  local pods
  pods=$(kubectl --kubeconfig "$SUPER" get pods -A -l "tenancy.x-k8s.io/vcname=$1" -o name)
  [[ "$pods" == *"nginx-$1"* ]]
}
wait_until "vc-a's pod in the super cluster" super_pod vc-a
wait_until "vc-b's pod in the super cluster" super_pod vc-b
kubectl --kubeconfig "$SUPER" get pods -A -l tenancy.x-k8s.io/controlled=true \
  -L tenancy.x-k8s.io/vcname -o wide

say "6. kubectl vc list (phase and age from the super cluster; objects, backlog and lag from the syncer)"
kubectl vc --kubeconfig "$SUPER" list

say "7. delete vc-a; its super namespaces go, vc-b's stay"
KEY_A=$(kubectl --kubeconfig "$SUPER" get virtualcluster vc-a -o jsonpath='{.status.clusterNamespace}')
kubectl vc --kubeconfig "$SUPER" delete vc-a --timeout "${TIMEOUT}s"
a_namespaces_gone() {
  local namespaces
  namespaces=$(kubectl --kubeconfig "$SUPER" get namespaces -o name)
  [[ "$namespaces" != *"namespace/$KEY_A"* ]]
}
wait_until "vc-a's super namespaces to go" a_namespaces_gone
echo "super namespaces now (none starts with $KEY_A):"
kubectl --kubeconfig "$SUPER" get namespaces
kubectl vc --kubeconfig "$SUPER" list

say "done: everything started here is being stopped"
