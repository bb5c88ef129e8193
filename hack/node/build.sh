#!/usr/bin/env bash
# Builds the local node's binaries from Go modules, once per version, into
# ~/.cache/connectors/node/<key>/ and prints that folder as its last line:
#   kubelet, kube-scheduler, kube-proxy  (kube/: the same k8s.io/kubernetes release
#                                         and replace pins as ../controlplane)
#   coredns                              (coredns/: CoreDNS with the kubernetes plugin only)
#   local-path-provisioner               (local-path/: rancher/local-path-provisioner)
#   pause                                (pause/: the pod sandbox program)
# A second run finds the binaries and returns at once. Per-binary build times go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The version a go.mod requires of module $2, in a require block or a one-line require.
mod_version() { awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$1"; }
kube_version="$(mod_version "$here/kube/go.mod" k8s.io/kubernetes)"
plane_version="$(mod_version "$here/../controlplane/go.mod" k8s.io/kubernetes)"
if [ "$kube_version" != "$plane_version" ]; then
  # A kubelet newer than its API server is unsupported (version skew policy).
  echo "build.sh: hack/node/kube pins k8s.io/kubernetes $kube_version but hack/controlplane pins $plane_version; pin both to the same release" >&2
  exit 1
fi
coredns_version="$(mod_version "$here/coredns/go.mod" github.com/coredns/coredns)"
lpp_version="$(mod_version "$here/local-path/go.mod" github.com/rancher/local-path-provisioner)"
# The key holds every version and a hash of every module file and source, so a
# changed pin or program builds into a new folder and old ones stay usable.
sources_hash="$(cd "$here" && cat kube/go.mod kube/go.sum coredns/go.mod coredns/go.sum coredns/main.go \
  local-path/go.mod local-path/go.sum pause/go.mod pause/main.go | sha256sum | cut -c1-12)"
key="$kube_version-coredns$coredns_version-lpp$lpp_version-$sources_hash"
out="${CONNECTORS_CACHE:-$HOME/.cache/connectors}/node/$key"
binaries=(kubelet kube-scheduler kube-proxy coredns local-path-provisioner pause)

complete=1
for b in "${binaries[@]}"; do [ -x "$out/$b" ] || complete=0; done
if [ "$complete" = 1 ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: the Go toolchain is needed (go 1.26 or newer): install it from https://go.dev/dl/" >&2; exit 1; }
mkdir -p "$out.partial"
start=$(date +%s)
# Static binaries (CGO off) run on any machine of this kind; -trimpath and no
# debug info keep them small.
export CGO_ENABLED=0
minor="$(echo "$kube_version" | cut -d. -f2)"
vpkg=k8s.io/component-base/version
kube_flags=(-trimpath -ldflags "-s -w -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean")
build() {
  local name=$1 dir=$2 pkg=$3; shift 3
  [ -x "$out.partial/$name" ] && return 0  # left by an interrupted run
  echo "build.sh: building $name ($pkg) ..." >&2
  local t0; t0=$(date +%s)
  (cd "$here/$dir" && go build "$@" -o "$out.partial/$name" "$pkg")
  echo "build.sh: $name built in $(( $(date +%s) - t0 ))s" >&2
}
build kubelet kube k8s.io/kubernetes/cmd/kubelet "${kube_flags[@]}"
build kube-scheduler kube k8s.io/kubernetes/cmd/kube-scheduler "${kube_flags[@]}"
build kube-proxy kube k8s.io/kubernetes/cmd/kube-proxy "${kube_flags[@]}"
build coredns coredns . -trimpath -ldflags "-s -w"
build local-path-provisioner local-path github.com/rancher/local-path-provisioner -trimpath -ldflags "-s -w"
build pause pause . -trimpath -ldflags "-s -w"
rm -rf "$out"
mv "$out.partial" "$out"
echo "build.sh: node binaries ($kube_version, CoreDNS $coredns_version, local-path-provisioner $lpp_version) built in $(( $(date +%s) - start ))s" >&2
echo "$out"
