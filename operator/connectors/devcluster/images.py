"""The node's own images (pause, tools) as OCI archives, and importing archives into containerd."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from .constants import PAUSE_IMAGE, TOOLS_IMAGE
from .processes import _run


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *,
             mode: int = 0o755, link: str | None = None, directory: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0  # fixed, so an unchanged input gives the same digest
    info.mode = mode
    if directory:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tar.addfile(info)
    else:
        assert data is not None
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _oci_archive(path: Path, name: str, layer: bytes, config: dict[str, object]) -> None:
    """Writes a one-layer OCI image archive that `ctr images import` accepts."""
    def blob(data: bytes) -> tuple[str, bytes]:
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    layer_digest, _ = blob(layer)
    image_config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }).encode()
    config_digest, _ = blob(image_config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(image_config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }).encode()
    manifest_digest, _ = blob(manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": len(manifest),
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
        }],
    }).encode()
    partial = path.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        _tar_add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}', mode=0o644)
        _tar_add(tar, "index.json", index, mode=0o644)
        for data in (layer, image_config, manifest):
            _tar_add(tar, f"blobs/sha256/{hashlib.sha256(data).hexdigest()}", data, mode=0o644)
    partial.rename(path)


def _layer(files: dict[str, bytes], links: dict[str, str], dirs: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for d in dirs:
            _tar_add(tar, d, directory=True, mode=0o1777 if d == "tmp" else 0o755)
        for name, data in files.items():
            _tar_add(tar, name, data)
        for name, target in sorted(links.items()):
            _tar_add(tar, name, link=target)
    return buffer.getvalue()


def build_node_images(binaries: Path) -> dict[str, tuple[str, Path]]:
    """The pause and tools images as OCI archives, cached by content under ~/.cache.

    Nothing can be pulled here: the pause image holds the static `pause` built
    from hack/node/pause, the tools image Debian's static busybox (a shell for the
    provisioner's helper pods, and nc/wget/nslookup for tests).
    """
    cache = Path(os.environ.get("CONNECTORS_CACHE", Path.home() / ".cache" / "connectors"))
    folder = cache / "node-images"
    folder.mkdir(parents=True, exist_ok=True)
    pause = (binaries / "pause").read_bytes()
    busybox = Path("/bin/busybox").read_bytes()
    images: dict[str, tuple[str, Path]] = {}
    for kind, prefix, binary in (("pause", PAUSE_IMAGE, pause), ("tools", TOOLS_IMAGE, busybox)):
        tag = hashlib.sha256(binary).hexdigest()[:12]
        archive = folder / f"{kind}-{tag}.tar"
        name = prefix + tag
        if not archive.exists():
            if kind == "pause":
                layer = _layer({"pause": pause}, {}, [])
                config: dict[str, object] = {"Entrypoint": ["/pause"], "User": "65535:65535"}
            else:
                applets = _run("/bin/busybox", "--list").stdout.split()
                links = {f"bin/{a}": "busybox" for a in applets if a != "busybox"}
                layer = _layer({"bin/busybox": busybox}, links, ["bin", "tmp", "etc"])
                config = {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}
            _oci_archive(archive, name, layer, config)
        images[kind] = (name, archive)
    return images


def import_image(socket_path: Path, archive: Path) -> None:
    """`ctr -n k8s.io images import`: the namespace the kubelet's CRI reads."""
    _run("ctr", f"--address={socket_path}", "-n", "k8s.io", "images", "import",
         "--no-unpack=false", str(archive), timeout=300)
