"""Pure planning for the namespace's processor: the processing table's shard
ConfigMaps and the Deployment that runs `connectors process` on the data volume.

Every valid Inbound Connection of a namespace is in the table, whoever starts
its transfers: listeners and transfer jobs land files alike. The objects are
owned by a sample of those Connections (owners.py), so they go with the last one.
"""

from __future__ import annotations

from typing import Any

from ..api.processing import KEY, Processed, ProcessingTable, configmap_name, shard_file
from ..api.shards import SHARDS
from ..ports import PROCESSOR_METRICS_PORT
from .config import OperatorConfig
from .objects import (
    base_labels,
    container_security_context,
    data_volume,
    image_pull_secrets,
    metrics_annotations,
    metrics_ports,
    pod_security_context,
    resources,
    tmp_volume,
    workload_env,
)
from .owners import shared_owners

NAME = "connectors-processor"
TABLE_DIR = "/etc/connectors/processing"
SINKS_DIR = "/etc/connectors/sinks"


def processor_labels() -> dict[str, str]:
    return base_labels("processor")


def processing_configmaps(namespace: str, table: ProcessingTable,
                          owned_by: list[tuple[str, str]]) -> dict[int, dict[str, Any]]:
    """Per shard that holds a Connection: its ConfigMap."""
    owners = shared_owners(owned_by)
    return {shard: {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": configmap_name(shard), "namespace": namespace,
                     "labels": processor_labels(), "ownerReferences": owners},
        "data": {KEY: part.render()},
    } for shard, part in table.shards().items()}


def table_volume() -> dict[str, Any]:
    """Every shard the table may have, each optional: one made later appears in
    the folder at the kubelet's next refresh of the pod."""
    return {"name": "table", "projected": {"defaultMode": 0o444, "sources": [
        {"configMap": {"name": configmap_name(shard), "optional": True,
                       "items": [{"key": KEY, "path": shard_file(shard)}]}}
        for shard in range(SHARDS)]}}


def processor_deployment(namespace: str, config: OperatorConfig,
                         owned_by: list[tuple[str, str]],
                         sink_secrets: list[str] | None = None) -> dict[str, Any]:
    """`sink_secrets`: the Secrets the sinks of spec.submissions.deliverTo name,
    each mounted at SINKS_DIR/<name>/. Optional: a Secret that does not exist
    yet holds up its deliveries (retried), never the pod."""
    labels = processor_labels()
    secrets = sorted(set(sink_secrets or ()))
    secret_volumes = [{"name": f"sink-{index}", "secret": {"secretName": name, "optional": True,
                                                            "defaultMode": 0o440}}
                      for index, name in enumerate(secrets)]
    secret_mounts = [{"name": f"sink-{index}", "mountPath": f"{SINKS_DIR}/{name}",
                      "readOnly": True} for index, name in enumerate(secrets)]
    env = [
        {"name": "CONNECTORS_NAMESPACE",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CONNECTORS_DATA_ROOT", "value": "/data"},
        {"name": "CONNECTORS_PROCESSING_FILE", "value": TABLE_DIR},
        {"name": "CONNECTORS_RETENTION_DAYS", "value": str(config.submission_retention_days)},
        *workload_env(config, PROCESSOR_METRICS_PORT),
    ]
    # Replies with results to Email partners go through the platform's relay.
    if config.smtp_relay:
        env.append({"name": "CONNECTORS_SMTP_RELAY", "value": config.smtp_relay})
    if config.smtp_from:
        env.append({"name": "CONNECTORS_SMTP_FROM", "value": config.smtp_from})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels,
                     "ownerReferences": shared_owners(owned_by)},
        "spec": {
            # One is enough to keep up with the listeners (README, Benchmarks);
            # claims in the store would let more share the work.
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels,
                             **metrics_annotations(config, PROCESSOR_METRICS_PORT)},
                "spec": {
                    # The listeners' identity: patch connections/status, post events.
                    "serviceAccountName": config.listener_service_account,
                    **image_pull_secrets(config),
                    "securityContext": pod_security_context(),
                    "volumes": [
                        table_volume(),
                        data_volume(config),
                        tmp_volume(),
                        *secret_volumes,
                    ],
                    "containers": [{
                        "name": "processor",
                        "image": config.image,
                        "imagePullPolicy": config.image_pull_policy,
                        "args": ["process"],
                        "env": env,
                        **_ports(config),
                        "volumeMounts": [
                            {"name": "table", "mountPath": TABLE_DIR, "readOnly": True},
                            {"name": "data", "mountPath": "/data"},
                            {"name": "tmp", "mountPath": "/tmp"},
                            *secret_mounts,
                        ],
                        "securityContext": container_security_context(),
                        "resources": resources(config),
                    }],
                },
            },
        },
    }


def _ports(config: OperatorConfig) -> dict[str, Any]:
    ports = metrics_ports(config, PROCESSOR_METRICS_PORT)
    return {"ports": ports} if ports else {}


def processing_table(connections: list[Processed]) -> ProcessingTable:
    return ProcessingTable(connections=connections)
