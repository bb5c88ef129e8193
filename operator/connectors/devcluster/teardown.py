"""Undoing what `up_node` did, from what node.json recorded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from .constants import CNI_NETWORK, NODE_STATE
from .host import (
    _cgroup_pids,
    _mounts_under,
    _netns_names,
    _remove_cgroups,
    _sysctl_path,
    remove_chains,
)
from .processes import _alive, _kill_all, _run


def stop_node(workdir: Path) -> None:
    """Undoes what node.json says `up_node` did; safe to run twice or on a half start."""
    path = workdir / NODE_STATE
    if not path.exists():
        return
    state = json.loads(path.read_text())
    socket_path = workdir / "containerd" / "containerd.sock"
    _stop_node_processes(state.get("pids", {}), socket_path)
    _remove_namespaces_and_mounts(workdir, set(state.get("netns_before", [])))
    _restore_host(state)
    path.unlink()


def _stop_node_processes(pids: dict[str, int], socket_path: Path) -> None:
    """The kubelet and its peers, the containers, containerd and its shims."""
    # The kubelet first, so it does not restart the containers stopped below.
    node_side = {k: v for k, v in pids.items() if k != "containerd"}
    _kill_all(node_side)
    # Every process in the pods' cgroups (containers and their children).
    for _ in range(3):
        victims = _cgroup_pids()
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    if "containerd" in pids:
        if socket_path.exists() and _alive(pids["containerd"]):
            # Lets containerd remove the tasks and unmount their root filesystems.
            listed = _run("ctr", f"--address={socket_path}", "-n", "k8s.io", "tasks", "ls", "-q",
                          check=False, timeout=20)
            for task in listed.stdout.split():
                _run("ctr", f"--address={socket_path}", "-n", "k8s.io", "tasks", "rm", "-f",
                     task, check=False, timeout=20)
        _kill_all({"containerd": pids["containerd"]})
    # Shims outlive containerd (they daemonize); ours name our socket on their command line.
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and \
                    str(socket_path).encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)


def _remove_namespaces_and_mounts(workdir: Path, netns_before: set[str]) -> None:
    # Network namespaces the CRI made (under /var/run/netns: containerd 1.6 has no
    # option to put them elsewhere): new cni-* names since `up`.
    for name in sorted(_netns_names() - netns_before):
        if name.startswith("cni-"):
            target = Path("/var/run/netns") / name
            _run("umount", str(target), check=False)
            with contextlib.suppress(OSError):
                target.unlink()
    for point in sorted(_mounts_under(workdir), key=len, reverse=True):
        if _run("umount", point, check=False).returncode != 0:
            _run("umount", "-l", point, check=False)
    _remove_cgroups()


def _restore_host(state: dict[str, Any]) -> None:
    """Chains, links, addresses, caches and kernel settings as they were before `up`."""
    for binary in ("iptables", "ip6tables"):
        remove_chains(binary, state.get("chains_before", {}).get(binary, {}))
    if state.get("bridge"):
        _run("ip", "link", "del", state["bridge"], check=False)
    if state.get("lo_address"):
        _run("ip", "addr", "del", state["lo_address"], "dev", "lo", check=False)
    # libcni's cache of our network's results (its folder is fixed in containerd 1.6).
    for cached in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
        with contextlib.suppress(OSError):
            cached.unlink()
    for name, value in state.get("sysctls", {}).items():
        with contextlib.suppress(OSError):
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
