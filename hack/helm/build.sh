#!/usr/bin/env bash
# Builds helm from Go modules once per pinned version into
# ~/.cache/connectors/helm/<version>/helm and prints that path as its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$here/go.mod")"
key="$version-$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
out="${CONNECTORS_CACHE:-$HOME/.cache/connectors}/helm/$key"
if [ -x "$out/helm" ]; then echo "$out/helm"; exit 0; fi
cd "$here"
echo "helm/build.sh: building helm $version (first time only) ..." >&2
start=$(date +%s)
mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
  -o "$out/helm.partial" helm.sh/helm/v3/cmd/helm
mv "$out/helm.partial" "$out/helm"
echo "helm/build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$out/helm"
