# syntax=docker/dockerfile:1
#
# The one image of the product: the operator (`connectors run`), the listeners
# (`connectors listen sftp|ftp|smtp`) and the transfer jobs (`connectors transfer`).
#
# On a normal machine:
#     docker build -t connectors .
#     podman build -t connectors .
# builds the wheels of the project and its dependencies inside the `wheels` stage
# (pip there needs PyPI), then installs them into the final stage.
#
# Without network in any stage (hack/image/build.sh, `make image`): the wheels are
# built beforehand on the host, the build context is a folder holding them in
# `wheels/`, `--build-arg WHEELS=prebuilt` makes the `wheels` stage just take that
# folder, and `--build-arg BASE=...` names a locally made Debian base with python3
# (and no pip). One stage with a switch rather than two stages picked by
# `FROM wheels-${WHEELS}`: buildah 1.28 (Debian bookworm's podman 4.3) failed on
# that with `short-name "wheels-build" did not resolve`, and the legacy Docker
# builder would build both stages.
#
# The final image runs as uid/gid 10001, writes nothing outside mounted volumes
# (pods mount an emptyDir at /tmp and the data volume) and holds no pip, no wheel
# cache and no build tools.

# Any Debian-like image whose `python3` is CPython 3.11 (the wheels are cp311).
ARG BASE=python:3.11-slim-bookworm
# build: build the wheels in this file; prebuilt: take them from the context's wheels/.
ARG WHEELS=build

FROM ${BASE} AS wheels
ARG WHEELS
# The context: pyproject.toml, README.md and operator/ (see .dockerignore), or
# for WHEELS=prebuilt a folder with wheels/ in it.
COPY . /src
# pip itself is built as a wheel too: the final stage runs pip from that wheel
# and so never installs pip into the image.
RUN set -eu; \
    case "$WHEELS" in \
      build) python3 -m pip wheel --no-cache-dir --wheel-dir /wheels /src pip ;; \
      prebuilt) mv /src/wheels /wheels ;; \
      *) echo "WHEELS must be build or prebuilt, not '$WHEELS'" >&2; exit 1 ;; \
    esac; \
    ls /wheels/connectors_operator-*.whl /wheels/pip-*.whl >/dev/null

FROM ${BASE}
# No .pyc writes at run time (the root filesystem is read-only: the installed
# packages are compiled at install time instead); logs straight to the pod's log;
# HOME on the /tmp emptyDir for anything that wants a home (paramiko, ~/.kube).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PATH=/opt/connectors/bin:$PATH
# The wheels are bind-mounted, never copied, so they add nothing to a layer. A venv
# without pip keeps the install apart from the base's Python; pip runs from its
# own wheel (as ensurepip does), so the image holds no pip. pip compiles every
# installed module to .pyc here, so imports never try to write on a read-only root.
#
# GnuPG (gpg and gpg-agent) for OpenPGP (operator/connectors/pgp.py): a base without it
# (python:3.11-slim) gets Debian's gnupg here; hack/image/build.sh, which builds with no
# network, makes its base with gnupg already in it, so this apt-get is skipped there.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    set -eu; \
    if ! command -v gpg >/dev/null || ! command -v gpg-agent >/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnupg; \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*; \
    fi; \
    gpg --version >/dev/null; \
    python3 -m venv --without-pip /opt/connectors; \
    pip_wheel=$(ls /wheels/pip-*.whl | head -n 1); \
    PYTHONPATH="$pip_wheel" /opt/connectors/bin/python -m pip install \
        --no-index --find-links /wheels --no-cache-dir \
        --disable-pip-version-check --no-warn-script-location \
        --root-user-action=ignore \
        connectors-operator; \
    # kubernetes (the client) ships a second, asyncio copy of itself in
    # kubernetes/aio: about 68 MB of the image, imported by nothing here (kopf
    # talks to the API through aiohttp, the code through kubernetes.client).
    rm -rf /opt/connectors/lib/python3.11/site-packages/kubernetes/aio; \
    /opt/connectors/bin/python -c 'import kopf, kubernetes.client, connectors.cli'; \
    /opt/connectors/bin/connectors --help >/dev/null; \
    groupadd --gid 10001 connectors; \
    useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --no-log-init --shell /usr/sbin/nologin connectors
# Numeric, so that the kubelet can verify runAsNonRoot.
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["/opt/connectors/bin/connectors"]
CMD ["--help"]
