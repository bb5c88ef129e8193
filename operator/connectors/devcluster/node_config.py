"""Configuration files and manifests of the node's components: containerd, CNI, kubelet,
kube-proxy, CoreDNS, the volume provisioner."""

from __future__ import annotations

import json
from pathlib import Path

from .constants import BRIDGE, CLUSTER_DNS_IP, CNI_NETWORK, POD_CIDR


def _containerd_config(workdir: Path, pause_image: str) -> str:
    root = workdir / "containerd"
    return f"""version = 2
root = "{root / 'root'}"
state = "{root / 'state'}"
# Plugins this node never uses; disabled so they neither probe nor log.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{root / 'containerd.sock'}"

[ttrpc]
  address = "{root / 'containerd-ttrpc.sock'}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # CAP_SYS_RESOURCE is not in this machine's bounding set: containers may only
  # raise their OOM score, never lower it below containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # crun fails on this hybrid cgroup layout; the kubelet uses cgroupfs too.
        BinaryName = "runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{workdir / 'cni' / 'net.d'}"
"""


def _cni_config(workdir: Path) -> dict[str, object]:
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    # Under the node's folder, not /var/lib/cni, so teardown removes it.
                    "dataDir": str(workdir / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def _kubelet_config(workdir: Path, node_ip: str, pki: Path, socket_path: Path,
                    port: int, healthz_port: int) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket_path}",
        # This machine mounts cgroup v1 hierarchies; kubelet 1.35+ refuses them unless told.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # Pods' cgroups under /connectors, so teardown knows exactly which to remove.
        "cgroupRoot": "/connectors",
        "podLogsDir": str(workdir / "pod-logs"),
        "volumePluginDir": str(workdir / "kubelet" / "volume-plugins"),
        # No KUBE-MARK-* chains from the kubelet: kube-proxy owns iptables.
        "makeIPTablesUtilChains": False,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": "cluster.local",
        # An empty host resolv.conf: pods never learn the machine's upstream resolvers.
        "resolvConf": str(workdir / "resolv.conf"),
        "failSwapOn": False,
        # Low thresholds: a nearly full test disk must not evict the product's pods,
        # and images imported by hand (they cannot be pulled again) must not be collected.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%",
                         "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
    }


def _proxy_config(workdir: Path, node_ip: str, healthz_port: int,
                  metrics_port: int) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(workdir / "kube-proxy.kubeconfig")},
        "hostnameOverride": node_ip,
        "clusterCIDR": POD_CIDR,
        # Real ports: kube-proxy refuses port 0 for these.
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # NodePorts on the node's address only: never on the outward interface.
        "nodePortAddresses": [f"{node_ip}/32"],
        # Zeros leave the host's conntrack sysctls as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s", "udpTimeout": "0s",
                      "udpStreamTimeout": "0s"},
        # true would set route_localnet on the whole machine.
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
    }


def _corefile(node_ip: str, health_port: int, ready_port: int, kubeconfig: Path) -> str:
    # Only cluster.local and the reverse zones: any other name has no server
    # block and is refused; this build of CoreDNS has no forward plugin at all.
    return f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {node_ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
    }}
    cache 5
}}
"""


def _node_manifests(node_ip: str, helper_image: str, volumes: Path) -> list[dict[str, object]]:
    """RBAC for the host-process components, the DNS Service and the storage classes.

    Longer than most functions here: it is one list of manifests, read as a
    manifest file is, top to bottom."""
    def binding(name: str, role: str, user: str) -> dict[str, object]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                              "name": user}]}

    def role(name: str, rules: list[dict[str, list[str]]]) -> dict[str, object]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name}, "rules": rules}

    lpp_ns = "local-path-storage"
    return [
        # The API server's client identity towards the kubelet (logs, exec, port-forward).
        binding("connectors:apiserver-kubelet", "system:kubelet-api-admin",
                "kube-apiserver-kubelet-client"),
        role("connectors:coredns", [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["list", "watch"]},
        ]),
        binding("connectors:coredns", "connectors:coredns", "connectors:coredns"),
        # As in local-path-provisioner's deploy/local-path-storage.yaml.
        role("connectors:local-path-provisioner", [
            {"apiGroups": [""], "resources": ["nodes", "persistentvolumeclaims", "configmaps",
                                              "pods", "pods/log"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "patch"]},
            {"apiGroups": [""], "resources": ["persistentvolumes"],
             "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["endpoints"],
             "verbs": ["get", "list", "watch", "create", "update", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["get", "list", "watch", "create", "update", "patch"]},
        ]),
        binding("connectors:local-path-provisioner", "connectors:local-path-provisioner",
                "connectors:local-path-provisioner"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": lpp_ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "local-path-provisioner", "namespace": lpp_ns}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "local-path-config", "namespace": lpp_ns},
         "data": {
             # The helper pod makes and removes a volume's folder on the host.
             "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
             "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system",
                      "labels": {"k8s-app": "kube-dns"}},
         # No selector: CoreDNS runs as a host process, its EndpointSlice is below.
         "spec": {"clusterIP": CLUSTER_DNS_IP,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "kube-dns-host", "namespace": "kube-system",
                      "labels": {"kubernetes.io/service-name": "kube-dns",
                                 "endpointslice.kubernetes.io/managed-by": "connectors"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [node_ip], "conditions": {"ready": True}}],
         "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "local-path",
                      "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
         "volumeBindingMode": "Immediate"},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "local-path-node"},
         "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
         "volumeBindingMode": "WaitForFirstConsumer"},
    ]


def _provisioner_files(workdir: Path, helper_image: str) -> tuple[Path, Path]:
    volumes = workdir / "volumes"
    config = {
        "storageClassConfigs": {
            # One machine, one disk: every pod of the cluster sees the same folder, so
            # the provisioner's shared-filesystem mode is true here and serves every
            # access mode, ReadWriteMany included, with no node affinity.
            "local-path": {"sharedFileSystemPath": str(volumes / "shared")},
            # The upstream default: ReadWriteOnce/ReadWriteOncePod, bound to the node.
            "local-path-node": {"nodePathMap": [
                {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes / "node")]}
            ]},
        },
    }
    config_file = workdir / "local-path-config.json"
    config_file.write_text(json.dumps(config, indent=2))
    helper = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "containers": [{"name": "helper-pod", "image": helper_image,
                            "imagePullPolicy": "Never"}],
        },
    }
    helper_file = workdir / "local-path-helper-pod.yaml"
    helper_file.write_text(json.dumps(helper))
    return config_file, helper_file
