#!/usr/bin/env bash
# Builds the control plane binaries (etcd, kube-apiserver, kube-controller-manager,
# kubectl) from the Go modules pinned in go.mod, once per version, into
# ~/.cache/connectors/controlplane/<version>/. Prints that folder as its last line.
# A second run finds the binaries and returns in well under a second.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kube_version="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$here/go.mod")"
# The key includes a hash of go.mod and go.sum, so a changed pin builds again.
key="$kube_version-etcd$etcd_version-$(cat "$here/go.mod" "$here/go.sum" "$here"/cmd/etcd/main.go | sha256sum | cut -c1-12)"
out="${CONNECTORS_CACHE:-$HOME/.cache/connectors}/controlplane/$key"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

complete=1
for b in "${binaries[@]}"; do [ -x "$out/$b" ] || complete=0; done
if [ "$complete" = 1 ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: the Go toolchain is needed (go 1.26 or newer)" >&2; exit 1; }
mkdir -p "$out.partial"
cd "$here"
start=$(date +%s)
# -trimpath and no debug info keep the binaries small; CGO off gives static binaries.
export CGO_ENABLED=0
# The version stamps make `kubectl version` and /version report the real release.
minor="$(echo "$kube_version" | cut -d. -f2)"
vpkg=k8s.io/component-base/version
flags=(-trimpath -ldflags "-s -w -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean")
build() {
  local name=$1 pkg=$2
  echo "build.sh: building $name ($pkg) ..." >&2
  local t0; t0=$(date +%s)
  go build "${flags[@]}" -o "$out.partial/$name" "$pkg"
  echo "build.sh: $name built in $(( $(date +%s) - t0 ))s" >&2
}
build etcd ./cmd/etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kubectl k8s.io/kubernetes/cmd/kubectl
rm -rf "$out"
mv "$out.partial" "$out"
echo "build.sh: control plane $kube_version, etcd $etcd_version built in $(( $(date +%s) - start ))s" >&2
echo "$out"
