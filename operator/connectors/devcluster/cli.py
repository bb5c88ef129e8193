"""`python -m connectors.devcluster up|down|build|import-image`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .constants import DEFAULT_DIR
from .controlplane import build_binaries, stop, up
from .images import import_image
from .node import NodeUnavailable, build_node_binaries, up_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.devcluster",
                                     description=sys.modules[__package__].__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "build", "import-image"])
    parser.add_argument("archive", nargs="?", type=Path,
                        help="import-image: an OCI or docker image archive for the node")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"where state, certificates and data live (default {DEFAULT_DIR})")
    parser.add_argument("--node", action="store_true",
                        help="also run one real node on this machine (root only)")
    # Intermixed: `import-image --dir DIR ARCHIVE` reads as it is written.
    args = parser.parse_intermixed_args(argv)
    if args.action == "build":
        print(build_binaries())
        if args.node:
            print(build_node_binaries())
    elif args.action == "import-image":
        if args.archive is None:
            parser.error("import-image needs the archive's path")
        started = time.monotonic()
        import_image(args.dir / "containerd" / "containerd.sock", args.archive)
        print(f"imported {args.archive.name} in {time.monotonic() - started:.1f}s",
              file=sys.stderr)
    elif args.action == "up" and args.node:
        started = time.monotonic()
        try:
            cluster = up_node(args.dir)
        except NodeUnavailable as error:
            print(f"devcluster: {error}", file=sys.stderr)
            return 2
        print(f"control plane and node {cluster.node_name} ready at {cluster.server} in "
              f"{time.monotonic() - started:.1f}s; logs in {cluster.workdir}", file=sys.stderr)
        print(f"KUBECONFIG={cluster.kubeconfig}")
    elif args.action == "up":
        started = time.monotonic()
        plane = up(args.dir)
        print(f"control plane ready at {plane.server} in {time.monotonic() - started:.1f}s; "
              f"logs in {plane.workdir}", file=sys.stderr)
        print(f"KUBECONFIG={plane.kubeconfig}")
    else:
        stop(args.dir)
    return 0
