#!/usr/bin/env bash
# `make demo`: a local control plane (or the cluster in $DEMO_KUBECONFIG), the
# CRDs, the operator, the examples; then what `kubectl get` and `describe` show.
# `make demo-down` stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
state=".demo"
namespace="demo"
mkdir -p "$state"

if [ "${1:-}" = "down" ]; then
  [ -f "$state/operator.pid" ] && kill "$(cat "$state/operator.pid")" 2>/dev/null || true
  python3 -m connectors.devcluster down --dir "$PWD/$state/controlplane"
  rm -rf "$state"
  echo "demo stopped"
  exit 0
fi

bin="$(./hack/controlplane/build.sh)"
kubectl=("$bin/kubectl")
if [ -n "${DEMO_KUBECONFIG:-}" ]; then
  export KUBECONFIG="$DEMO_KUBECONFIG"
else
  [ -f "$state/operator.pid" ] && kill "$(cat "$state/operator.pid")" 2>/dev/null || true
  eval "export $(python3 -m connectors.devcluster up --dir "$PWD/$state/controlplane" | tail -n 1)"
fi

echo "== CRDs"
"${kubectl[@]}" apply --server-side --force-conflicts -f crds/
"${kubectl[@]}" wait --for=condition=Established crd/connections.connectors.dev crd/credentials.connectors.dev --timeout=60s >/dev/null

echo "== operator (log: $state/operator.log)"
connectors run --standalone --namespace "$namespace" > "$state/operator.log" 2>&1 &
echo $! > "$state/operator.pid"

echo "== examples, checked offline first"
connectors validate examples/
"${kubectl[@]}" create namespace "$namespace" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
"${kubectl[@]}" apply -n "$namespace" -f examples/
"${kubectl[@]}" wait -n "$namespace" --for=condition=Ready connections --all --timeout=90s >/dev/null

echo
echo "\$ kubectl get connectors -n $namespace"
"${kubectl[@]}" get connectors -n "$namespace"
echo
echo "\$ kubectl describe connection acme-conversions -n $namespace"
"${kubectl[@]}" describe connection acme-conversions -n "$namespace"
echo
echo "\$ kubectl get deployments,services,cronjobs -n $namespace"
"${kubectl[@]}" get deployments,services,cronjobs -n "$namespace"
cat <<MSG

The control plane and the operator keep running. Try:
  export KUBECONFIG=$KUBECONFIG
  $bin/kubectl get connectors -n $namespace -o wide
  $bin/kubectl describe credential shandalear-pull -n $namespace
Listener pods stay Pending here: this control plane has no kubelet.
Stop everything with: make demo-down
MSG
