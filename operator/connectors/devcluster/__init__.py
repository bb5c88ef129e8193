"""A local Kubernetes control plane for tests and the demo.

etcd, kube-apiserver and kube-controller-manager run as plain processes on free
loopback ports, built once from Go modules by hack/controlplane/build.sh. The
API server has real authentication (client certificates), RBAC authorization
and a service-account issuer, so `kubectl create token` works and RBAC is
enforced. There is no kubelet and no scheduler: pods stay Pending.

With --node (root only) it also runs one real node on this machine: containerd +
runc, the CNI bridge, kubelet, kube-scheduler, kube-proxy, a cluster DNS and a
volume provisioner, all built from Go modules by hack/node/build.sh. See
`up_node` for what it changes on the machine and `stop` for how it is undone.

    python -m connectors.devcluster up [--node] [--dir DIR]   prints KUBECONFIG=<path> last
    python -m connectors.devcluster down [--dir DIR]
"""

from .cli import main
from .constants import (
    BRIDGE,
    BUILD_SCRIPT,
    CHAIN_PREFIXES,
    CLUSTER_DNS_IP,
    CNI_NETWORK,
    DEFAULT_DIR,
    DEFAULT_NODE_IP,
    GUARD_CHAIN,
    NODE_BUILD_SCRIPT,
    NODE_PACKAGES,
    NODE_STATE,
    PAUSE_IMAGE,
    POD_CIDR,
    REPO,
    SAVED_SYSCTLS,
    SERVICE_CIDR,
    STATE_FILE,
    TOOLS_IMAGE,
)
from .controlplane import ControlPlane, build_binaries, stop, up
from .host import (
    ensure_guard_first,
    install_egress_guard,
    iptables_chains,
    outward_interfaces,
    remove_chains,
)
from .images import build_node_images, import_image
from .net import free_port
from .node import (
    NodeCluster,
    NodeUnavailable,
    build_node_binaries,
    node_cluster,
    preflight,
    up_node,
)
from .pki import make_pki, write_kubeconfig
from .teardown import stop_node

__all__ = [
    "BRIDGE",
    "BUILD_SCRIPT",
    "CHAIN_PREFIXES",
    "CLUSTER_DNS_IP",
    "CNI_NETWORK",
    "DEFAULT_DIR",
    "DEFAULT_NODE_IP",
    "GUARD_CHAIN",
    "NODE_BUILD_SCRIPT",
    "NODE_PACKAGES",
    "NODE_STATE",
    "PAUSE_IMAGE",
    "POD_CIDR",
    "REPO",
    "SAVED_SYSCTLS",
    "SERVICE_CIDR",
    "STATE_FILE",
    "TOOLS_IMAGE",
    "ControlPlane",
    "NodeCluster",
    "NodeUnavailable",
    "build_binaries",
    "build_node_binaries",
    "build_node_images",
    "ensure_guard_first",
    "free_port",
    "import_image",
    "install_egress_guard",
    "iptables_chains",
    "main",
    "make_pki",
    "node_cluster",
    "outward_interfaces",
    "preflight",
    "remove_chains",
    "stop",
    "stop_node",
    "up",
    "up_node",
    "write_kubeconfig",
]
