"""Building blocks shared by every child object: names, labels, owners, hardened pods."""

from __future__ import annotations

import hashlib
from typing import Any

from ..api.common import API_VERSION
from .config import LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY, OperatorConfig

RUN_AS = 10001


def child_name(prefix: str, name: str, limit: int = 63) -> str:
    """`prefix-name`, shortened with a stable hash when it would pass `limit`.

    CronJob names may hold at most 52 characters (the Job controller appends a
    suffix), so a long Connection name needs a short, still-unique child name.
    """
    full = f"{prefix}-{name}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{full[: limit - 9].rstrip('-')}-{digest}"


def owner_reference(kind: str, body: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    """An ownerReference, so the garbage collector removes the child with its owner."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": controller,
    }


def base_labels(component: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: component}


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
    }


def resources(config: OperatorConfig, memory_request: str | None = None,
              memory_limit: str | None = None) -> dict[str, Any]:
    return {
        "requests": {"cpu": config.cpu_request,
                     "memory": memory_request or config.memory_request},
        "limits": {"cpu": config.cpu_limit, "memory": memory_limit or config.memory_limit},
    }


def data_volume(config: OperatorConfig) -> dict[str, Any]:
    return {"name": "data", "persistentVolumeClaim": {"claimName": config.data_claim}}


def tmp_volume() -> dict[str, Any]:
    # The root filesystem is read-only; Python and paramiko still want a /tmp.
    return {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}


def data_claim(namespace: str, config: OperatorConfig) -> dict[str, Any]:
    """The namespace's data volume. Not owned by any Connection: files outlive them."""
    spec: dict[str, Any] = {
        "accessModes": [config.data_access_mode],
        "resources": {"requests": {"storage": config.data_size}},
    }
    if config.data_storage_class:
        spec["storageClassName"] = config.data_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": config.data_claim, "namespace": namespace,
                     "labels": base_labels("data")},
        "spec": spec,
    }


def image_pull_secrets(config: OperatorConfig) -> dict[str, Any]:
    """The pod spec's imagePullSecrets, or nothing: an empty list would differ
    from what the API server returns and look like drift."""
    if not config.image_pull_secrets:
        return {}
    return {"imagePullSecrets": [{"name": name} for name in config.image_pull_secrets]}


def workload_env(config: OperatorConfig, metrics_port: int) -> list[dict[str, Any]]:
    """A listener's or processor's metrics port (0: none) and log format."""
    return [
        {"name": "CONNECTORS_METRICS_PORT",
         "value": str(metrics_port if config.workload_metrics else 0)},
        {"name": "CONNECTORS_LOG_FORMAT", "value": config.log_format},
    ]


def metrics_ports(config: OperatorConfig, metrics_port: int) -> list[dict[str, Any]]:
    """The container port `metrics`, which a PodMonitor names."""
    if not config.workload_metrics:
        return []
    return [{"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"}]


def metrics_annotations(config: OperatorConfig, metrics_port: int) -> dict[str, Any]:
    """Pod template metadata for a Prometheus that discovers pods by annotation."""
    if not config.workload_metrics:
        return {}
    return {"annotations": {"prometheus.io/scrape": "true",
                            "prometheus.io/port": str(metrics_port),
                            "prometheus.io/path": "/metrics"}}
