"""Paths, state files, address ranges and names every part of the dev cluster agrees on."""

from __future__ import annotations

import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "hack" / "controlplane" / "build.sh"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "connectors-controlplane"
STATE_FILE = "state.json"
NODE_STATE = "node.json"
SERVICE_CIDR = "10.0.0.0/24"

# The node (root only).
NODE_BUILD_SCRIPT = REPO / "hack" / "node" / "build.sh"
# The node's address lives on `lo` as a /32 (this kernel has no `dummy` links); a
# private address no route on this machine uses. Override with CONNECTORS_NODE_IP.
DEFAULT_NODE_IP = "10.250.0.1"
POD_CIDR = "10.244.0.0/24"
CLUSTER_DNS_IP = "10.0.0.10"
BRIDGE = "connectors0"
CNI_NETWORK = "connectors"
GUARD_CHAIN = "CONNECTORS-EGRESS"
# Chains the node's components create; teardown removes them from every table.
CHAIN_PREFIXES = ("KUBE-", "CNI-", "CONNECTORS-")
# Kernel settings the kubelet (setupKernelTunables), the CNI bridge (ip_forward)
# and kube-proxy may rewrite; saved before start and restored at teardown.
SAVED_SYSCTLS = (
    "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv6.conf.all.forwarding", "net.netfilter.nf_conntrack_max",
)
# command -> the Debian package that provides it.
NODE_PACKAGES = {
    "containerd": "containerd", "ctr": "containerd", "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/portmap": "containernetworking-plugins",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "iptables": "iptables", "ip6tables": "iptables", "iptables-save": "iptables",
    "conntrack": "conntrack", "ip": "iproute2", "mount": "mount",
    # The helper image of the provisioner and the tests' tools: a static busybox.
    "/bin/busybox": "busybox-static",
}
PAUSE_IMAGE = "localhost/connectors-pause:"
TOOLS_IMAGE = "localhost/connectors-node-tools:"
