#!/usr/bin/env bash
# `make demo`: a real local cluster (the control plane and one node on this
# machine), the image built here, the chart installed with helm, the examples,
# a real partner upload with OpenSSH sftp through the listener's NodePort, and
# what `kubectl get` and `describe` then show. `make demo-down` stops it all
# and leaves the machine as it was. Needs root (the node runs containers).
set -euo pipefail
cd "$(dirname "$0")/.."
state="$PWD/.demo"
namespace="demo"
release_namespace="connectors-system"
sftp_port=30022

if [ "${1:-}" = "down" ]; then
  python3 -m connectors.devcluster down --dir "$state/cluster"
  rm -rf "$state"
  echo "demo stopped"
  exit 0
fi
mkdir -p "$state"
started=$(date +%s)

echo "== cluster: control plane and one node (log: $state/cluster)"
eval "export $(python3 -m connectors.devcluster up --node --dir "$state/cluster" | tail -n 1)"
kubectl="$(./hack/controlplane/build.sh)/kubectl"
node_ip="$("$kubectl" get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')"

echo "== image localhost/connectors:dev"
archive="$(./hack/image/build.sh | tail -n 1)"
python3 -m connectors.devcluster import-image --dir "$state/cluster" "$archive"

echo "== chart (the operator runs as a pod, under the chart's RBAC)"
helm="$(./hack/helm/build.sh | tail -n 1)"
"$helm" upgrade --install connectors charts/connectors --namespace "$release_namespace" \
  --create-namespace --wait --timeout 240s \
  --set image.repository=localhost/connectors --set image.tag=dev --set image.pullPolicy=Never \
  --set listeners.serviceType=NodePort --set "listeners.externalHost=$node_ip" \
  --set "listeners.ftpMasqueradeAddress=$node_ip" --set "listeners.nodePorts.sftp=$sftp_port" \
  --set listeners.nodePorts.ftp=30021 --set listeners.nodePorts.smtp=30025 \
  --set data.storageClass=local-path >/dev/null
"$kubectl" get pods -n "$release_namespace"

echo "== examples, checked offline first"
connectors validate examples/
"$kubectl" create namespace "$namespace" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" apply -n "$namespace" -f examples/
"$kubectl" wait -n "$namespace" --for=condition=Ready connection/acme-conversions --timeout=180s >/dev/null
"$kubectl" rollout status -n "$namespace" deployment/connectors-sftp --timeout=180s
# kube-proxy programs the node port a moment after the Service appears, apart
# from the pod's readiness: wait until it answers.
for _ in $(seq 60); do
  (exec 3<>"/dev/tcp/$node_ip/$sftp_port") 2>/dev/null && break
  sleep 1
done

echo "== a partner upload: OpenSSH sftp to $node_ip:$sftp_port as acme"
password="$("$kubectl" get secret acme-sftp-credential -n "$namespace" -o jsonpath='{.data.password}' | base64 -d)"
"$kubectl" get secret connectors-sftp-hostkey -n "$namespace" \
  -o jsonpath='{.data.ssh_host_ed25519_key\.pub}' | base64 -d \
  | awk -v host="[$node_ip]:$sftp_port" '{print host, $1, $2}' > "$state/known_hosts"
printf 'order_id,amount\n1001,19.90\n1002,5.00\n' > "$state/conversions_demo.csv"
SSHPASS="$password" sshpass -e sftp -o BatchMode=no -o PubkeyAuthentication=no \
  -o "UserKnownHostsFile=$state/known_hosts" -o StrictHostKeyChecking=yes \
  -P "$sftp_port" -b - "acme@$node_ip" <<<"put $state/conversions_demo.csv"
unset password

volume="$("$kubectl" get pvc connectors-data -n "$namespace" -o jsonpath='{.spec.volumeName}')"
folder="$("$kubectl" get pv "$volume" -o jsonpath='{.spec.hostPath.path}{.spec.local.path}')/acme-conversions"
for _ in $(seq 60); do
  [ -n "$("$kubectl" get connection acme-conversions -n "$namespace" -o jsonpath='{.status.lastTransfer.time}')" ] && break
  sleep 1
done

echo
echo "\$ ls $folder   # the data volume, as the node sees it"
ls -l "$folder"
echo
echo "\$ cat $folder/receipt_conversions_demo.csv.txt"
cat "$folder/receipt_conversions_demo.csv.txt"
echo
echo "\$ kubectl get connectors -n $namespace"
"$kubectl" get connectors -n "$namespace"
echo
echo "\$ kubectl describe connection acme-conversions -n $namespace"
"$kubectl" describe connection acme-conversions -n "$namespace"
echo
echo "\$ kubectl get pods,services,cronjobs -n $namespace"
"$kubectl" get pods,services,cronjobs -n "$namespace"
cat <<MSG

The demo took $(( $(date +%s) - started ))s. The cluster keeps running. Try:
  export KUBECONFIG=$KUBECONFIG
  $kubectl describe credential shandalear-pull -n $namespace      # the public key to hand a partner
  $kubectl get secret acme-sftp-credential -n $namespace -o jsonpath='{.data.password}' | base64 -d
  sftp -P $sftp_port acme@$node_ip                                 # upload as the partner
  $kubectl create job --from=cronjob/transfer-shandalear-audiences try-1 -n $namespace
Stop everything with: make demo-down
MSG
