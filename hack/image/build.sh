#!/usr/bin/env bash
# Builds the product's image from the root Dockerfile on this kind of machine, with
# no registry and no network inside any build stage:
#   1. a Debian base with python3, made by mmdebstrap from the host's own apt
#      sources and imported into podman (cached by what it is made from);
#   2. wheels of the project and its dependencies, built on the host (PyPI is
#      reachable from the host; pip inside a container does not trust this
#      machine's TLS interception);
#   3. `podman build --network none` of the root Dockerfile with
#      --build-arg BASE=<that base> --build-arg WHEELS=prebuilt, tagged
#      localhost/connectors:dev, saved as an OCI archive for
#      `ctr -n k8s.io images import`.
# Nothing is rebuilt when nothing it depends on changed. The last line of output
# is the path of the archive; everything else goes to stderr.
#
# Environment: CONNECTORS_CACHE (default ~/.cache/connectors), CONNECTORS_PYTHON
# (a host Python 3.11 with pip), CONNECTORS_APT_SOURCES (the apt sources file the
# base is made from; default: the host's Debian sources).
set -euo pipefail

die() { echo "image: error: $*" >&2; exit 1; }
log() { echo "image: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, podman's root store, apt-get); run: sudo $0"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/hack/image"
CACHE="${CONNECTORS_CACHE:-$HOME/.cache/connectors}/image"
TAG=localhost/connectors:dev
SUITE=bookworm
mkdir -p "$CACHE"

# Settings podman needs on this kind of machine (measured; see containers.conf): runc, the
# cgroupfs manager, ulimits at or below 16384, overlay storage on ext4.
export CONTAINERS_CONF="$HERE/containers.conf"
export CONTAINERS_STORAGE_CONF="$HERE/storage.conf"

# --- tools -------------------------------------------------------------------
# command -> Debian package; installed with apt-get when missing. runc is
# required explicitly: podman would take crun, which fails on hybrid cgroups.
# podman builds with its own copy of buildah (no buildah command needed); as root
# it uses the kernel's overlay (no fuse-overlayfs) and no user namespaces (no
# uidmap); builds and checks run with --network none (no slirp4netns).
declare -A tools=([mmdebstrap]=mmdebstrap [podman]=podman [runc]=runc)
missing=()
for cmd in "${!tools[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${tools[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2 \
    || die "apt-get could not install ${missing[*]}; fix: apt-get update, then rerun"
fi
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null \
  || die "the kernel has no overlay filesystem; fix: a kernel with CONFIG_OVERLAY_FS"

# A host Python 3.11 with pip, to build cp311 wheels for the base's python3 3.11.
PY=""
for candidate in ${CONNECTORS_PYTHON:-} python3 /usr/bin/python3; do
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
     && "$candidate" -m pip --version >/dev/null 2>&1; then
    PY=$candidate; break
  fi
done
[ -n "$PY" ] || die "no Python 3.11 with pip on the host; fix: apt-get install python3-pip (bookworm's python3 is 3.11) or set CONNECTORS_PYTHON"

hash_files() { sha256sum "$@" | sha256sum | cut -c1-16; }

# --- 1. base -------------------------------------------------------------------
# The host's own Debian sources, so the base comes from the mirrors apt already
# uses and nothing else is contacted.
SOURCES=${CONNECTORS_APT_SOURCES:-}
if [ -z "$SOURCES" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ]; then SOURCES=$f; break; fi
  done
fi
[ -n "$SOURCES" ] && [ -s "$SOURCES" ] \
  || die "no apt sources file found; fix: set CONNECTORS_APT_SOURCES to a sources.list or .sources file"

# minbase + python3 (ca-certificates: partners' TLS servers are verified against
# the system store, as in python:3.11-slim; gnupg: gpg and gpg-agent for OpenPGP,
# operator/connectors/pgp.py). No compilers and no pip: the wheels
# come prebuilt and pip runs from its own wheel. The merged-usr hook sets up
# merged /usr itself, instead of installing usrmerge and with it the whole of perl
# (about 65 MB). Documentation, man pages and translations are not unpacked
# (copyright files are kept); apt's lists and caches are removed.
BASE_PACKAGES=python3,ca-certificates,gnupg
mmdebstrap_opts=(
  --variant=minbase
  --include="$BASE_PACKAGES"
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='APT::Install-Recommends "false"'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/ldconfig/* "$1"/var/log/*'
)
BASE_KEY=$( { echo "$SUITE"; printf '%s\n' "${mmdebstrap_opts[@]}"; cat "$SOURCES"; } \
  | sha256sum | cut -c1-16)
BASE_IMAGE="localhost/connectors-base:$SUITE-$BASE_KEY"
BASE_TAR="$CACHE/base-$SUITE-$BASE_KEY.tar"

# --- key of the image ------------------------------------------------------------
# What the image is made of: the Dockerfile, the project's metadata, the package's
# sources (names and contents, without bytecode or build leftovers) and the base.
# README.md only feeds the wheel's long description and is left out, so that
# editing the docs does not rebuild the image.
cd "$ROOT"
mapfile -t sources < <(find operator -type f \
  -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -not -name '*.pyc' | LC_ALL=C sort)
[ ${#sources[@]} -gt 0 ] || die "no package sources under $ROOT/operator"
KEY=$( { echo "base=$BASE_KEY"; sha256sum Dockerfile pyproject.toml "${sources[@]}"; } \
  | sha256sum | cut -c1-16)
ARCHIVE="$CACHE/connectors-dev-$KEY.tar"
LABEL=dev.connectors.image-key

if [ -s "$ARCHIVE" ]; then
  if [ "$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$TAG" 2>/dev/null)" != "$KEY" ]; then
    # The archive is current but podman's store lost the tag (or holds another
    # build): restore it from the archive instead of building again.
    log "restoring $TAG from $ARCHIVE"
    loaded=$(podman load -q -i "$ARCHIVE" | sed -n 's/^Loaded image[^:]*: *//p' | tail -n 1)
    [ -n "$loaded" ] || die "podman could not load $ARCHIVE; fix: delete it and rerun"
    [ "$loaded" = "$TAG" ] || podman tag "$loaded" "$TAG"
  fi
  log "up to date ($KEY), nothing to build"
  echo "$ARCHIVE"
  exit 0
fi

work=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

if podman image exists "$BASE_IMAGE"; then
  log "base $BASE_IMAGE is present"
else
  if [ ! -s "$BASE_TAR" ]; then
    log "making the base with mmdebstrap from $SOURCES (about 1-2 min)"
    start=$SECONDS
    mmdebstrap --quiet "${mmdebstrap_opts[@]}" "$SUITE" "$work/base.tar" "$SOURCES" >&2 \
      || die "mmdebstrap failed (see above); fix: check that apt-get update works on the host"
    mv "$work/base.tar" "$BASE_TAR"
    log "base made in $((SECONDS - start)) s"
  fi
  podman import -q "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE"
fi

# --- 2. wheels, on the host ------------------------------------------------------
# Built from a copy of exactly the inputs hashed above, so that pip's build/ and
# egg-info never land in the working tree other people edit.
log "building wheels on the host with $PY"
start=$SECONDS
mkdir -p "$work/src" "$work/context/wheels"
cp pyproject.toml README.md "$work/src/"
for f in "${sources[@]}"; do
  mkdir -p "$work/src/$(dirname "$f")"
  cp -p "$f" "$work/src/$f"
done
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-cache-dir \
  --wheel-dir "$work/context/wheels" "$work/src" pip >&2 \
  || die "pip wheel failed on the host (see above); fix: check that PyPI is reachable from the host"
log "wheels built in $((SECONDS - start)) s: $(ls "$work/context/wheels" | wc -l) files"

# --- 3. image ------------------------------------------------------------------
# The context is the wheel folder only: the prebuilt stage reads nothing else.
log "building $TAG on $BASE_IMAGE"
start=$SECONDS
# --layers=false: one layer for the final stage and no per-step cache images
# (the build only runs when its inputs changed, so a step cache would not hit).
previous=$(podman image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
podman build --quiet --network none --pull=never --layers=false \
  -f "$ROOT/Dockerfile" \
  --build-arg BASE="$BASE_IMAGE" --build-arg WHEELS=prebuilt \
  --label "$LABEL=$KEY" \
  -t "$TAG" "$work/context" >&2 \
  || die "podman build failed (see above)"
log "image built in $((SECONDS - start)) s"
# The image this tag named before is now untagged: remove it (only it, and only
# if nothing else still uses it).
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$TAG")" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi

# Check it the way the cluster runs it: as 10001, read-only root, /tmp a tmpfs.
for args in "--help" "listen sftp --help"; do
  # shellcheck disable=SC2086  # args is a word list on purpose
  podman run --rm --network none --read-only --tmpfs /tmp --user 10001:10001 \
    "$TAG" $args >/dev/null \
    || die "the image does not run \`connectors $args\` as uid 10001 on a read-only root"
done
# OpenPGP as the pods run it: gpg and its gpg-agent as uid 10001, homes under /tmp.
podman run --rm --network none --read-only --tmpfs /tmp --user 10001:10001 \
  --entrypoint /opt/connectors/bin/python "$TAG" \
  -c 'from connectors import pgp; pgp.fingerprint_of(pgp.generate_key_pair("connectors <image@check>")[1])' \
  >/dev/null || die "the image cannot make an OpenPGP key pair with gpg as uid 10001"

podman save -q --format oci-archive -o "$work/image.tar" "$TAG" >&2
mv "$work/image.tar" "$ARCHIVE"
# Older archives of this tag are superseded; the base tarballs stay (keyed).
find "$CACHE" -maxdepth 1 -name 'connectors-dev-*.tar' ! -name "$(basename "$ARCHIVE")" -delete
size=$(podman image inspect --format '{{.Size}}' "$TAG")
log "image $TAG: $((size / 1000000)) MB; archive $(( $(stat -c %s "$ARCHIVE") / 1000000 )) MB"
echo "$ARCHIVE"
