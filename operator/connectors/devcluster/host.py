"""What the node changes on the host: kernel settings, the egress guard, iptables chains, network
namespaces, mounts and cgroups."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .constants import BRIDGE, CHAIN_PREFIXES, GUARD_CHAIN, POD_CIDR, SAVED_SYSCTLS, SERVICE_CIDR
from .processes import _run


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _read_sysctls() -> dict[str, str]:
    values = {}
    for name in SAVED_SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def outward_interfaces() -> list[str]:
    """The interfaces of the default routes: where a packet would leave the machine."""
    names: list[str] = []
    for family in ("-4", "-6"):
        routes = json.loads(_run("ip", "-j", family, "route", "show", "default").stdout or "[]")
        names += [r["dev"] for r in routes if r.get("dev") and r["dev"] not in names]
    return names


def _guard_rules(outward: list[str]) -> list[list[str]]:
    """The egress guard: nothing from the pod bridge, pod or Service range leaves.

    TCP gets a reset and the rest an ICMP error, so a pod's connection to an
    outside address fails at once instead of timing out.
    """
    rules: list[list[str]] = []
    for dev in outward:
        for match in (["-i", BRIDGE], ["-s", POD_CIDR], ["-d", POD_CIDR], ["-d", SERVICE_CIDR]):
            rules.append([*match, "-o", dev, "-p", "tcp", "-j", "REJECT",
                          "--reject-with", "tcp-reset"])
            rules.append([*match, "-o", dev, "-j", "REJECT"])
    # Pods talk to each other on the bridge and to the node's own addresses
    # (INPUT, not FORWARD); forwarding them anywhere else is never needed.
    rules.append(["-i", BRIDGE, "!", "-o", BRIDGE, "-p", "tcp", "-j", "REJECT",
                  "--reject-with", "tcp-reset"])
    rules.append(["-i", BRIDGE, "!", "-o", BRIDGE, "-j", "REJECT"])
    return rules


def install_egress_guard(outward: list[str]) -> None:
    _run("iptables", "-w", "-N", GUARD_CHAIN, check=False)
    _run("iptables", "-w", "-F", GUARD_CHAIN)
    for rule in _guard_rules(outward):
        _run("iptables", "-w", "-A", GUARD_CHAIN, *rule)
    ensure_guard_first()


def ensure_guard_first() -> None:
    """Puts the jumps to the guard first in FORWARD and OUTPUT.

    kube-proxy prepends its own jumps when it starts; its KUBE-FORWARD accepts
    marked and established traffic, so the guard must come before it.
    """
    for chain in ("FORWARD", "OUTPUT"):
        while _run("iptables", "-w", "-D", chain, "-j", GUARD_CHAIN, check=False).returncode == 0:
            pass
        _run("iptables", "-w", "-I", chain, "1", "-j", GUARD_CHAIN)


def iptables_chains(binary: str = "iptables") -> dict[str, list[str]]:
    """Every chain of every table, as iptables-save lists them."""
    chains: dict[str, list[str]] = {}
    for table in ("filter", "nat", "mangle", "raw"):
        saved = _run(f"{binary}-save", "-t", table, check=False).stdout
        chains[table] = sorted(line[1:].split()[0] for line in saved.splitlines()
                               if line.startswith(":"))
    return chains


def remove_chains(binary: str, existing: dict[str, list[str]]) -> None:
    """Removes the KUBE-*, CNI-* and CONNECTORS-* chains `up` made, and rules using them.

    Chains that existed before `up` stay (podman's CNI, say, uses CNI-FORWARD and
    CNI-HOSTPORT-* too). Each table is rewritten from its own iptables-save output
    minus those lines, in one iptables-restore, so everything else stays as it is.
    """
    for table in ("filter", "nat", "mangle", "raw"):
        saved = _run(f"{binary}-save", "-t", table, check=False)
        before = set(existing.get(table, []))

        def ours(chain: str, before: set[str] = before) -> bool:
            return chain.startswith(CHAIN_PREFIXES) and chain not in before

        if saved.returncode != 0 or not any(
                line.startswith(":") and ours(line[1:].split()[0])
                for line in saved.stdout.splitlines()):
            continue
        kept: list[str] = []
        for line in saved.stdout.splitlines():
            words = line.split()
            if line.startswith(":") and ours(words[0][1:]):
                continue
            if line.startswith("-A") and (
                    ours(words[1]) or any(
                        w in ("-j", "-g") and i + 1 < len(words) and ours(words[i + 1])
                        for i, w in enumerate(words))):
                continue
            kept.append(line)
        _run(f"{binary}-restore", "-w", input="\n".join(kept) + "\n")


def _mounts_under(root: Path) -> list[str]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(f"{root}/"):
            mounts.append(point)
    return mounts


def _netns_names() -> set[str]:
    folder = Path("/var/run/netns")
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _cgroup_roots() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base / "connectors"]
    return [d / "connectors" for d in base.iterdir() if d.is_dir()]


def _cgroup_folders(root: Path) -> list[Path]:
    """Every cgroup under root, root first. os.walk, unlike Path.rglob, goes on
    when a cgroup goes away under it: the kubelet removes a stopped pod's
    cgroup at any moment, and rglob failed a teardown that way once."""
    return [Path(folder) for folder, _, _ in os.walk(root)]


def _cgroup_pids() -> list[int]:
    pids: set[int] = set()
    for root in _cgroup_roots():
        for folder in _cgroup_folders(root):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
    return sorted(pids)


def _remove_cgroups() -> None:
    for root in _cgroup_roots():
        if not root.is_dir():
            continue
        # Children before parents; a cgroup directory is removed with rmdir only.
        for folder in sorted(_cgroup_folders(root)[1:],
                             key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
