#!/usr/bin/env bash
# Builds weed (SeaweedFS, a real S3-compatible server for the object store sink's
# integration tests) from Go modules once per pinned version into
# ~/.cache/connectors/seaweedfs/<version-key>/weed and prints that path as its
# last line. A second run finds the binary and returns at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/seaweedfs/seaweedfs" {print $3}' "$here/go.mod")"
# The key includes a hash of go.mod and go.sum, so a changed pin builds again.
key="$version-$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
out="${CONNECTORS_CACHE:-$HOME/.cache/connectors}/seaweedfs/$key"
if [ -x "$out/weed" ]; then echo "$out/weed"; exit 0; fi
command -v go >/dev/null || { echo "seaweedfs/build.sh: the Go toolchain is needed (go 1.26 or newer)" >&2; exit 1; }
cd "$here"
echo "seaweedfs/build.sh: building weed $version (first time only, several minutes) ..." >&2
start=$(date +%s)
mkdir -p "$out"
# -trimpath and no debug info keep the binary small; CGO off gives a static binary.
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=$version" \
  -o "$out/weed.partial" github.com/seaweedfs/seaweedfs/weed
mv "$out/weed.partial" "$out/weed"
echo "seaweedfs/build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$out/weed"
