"""Pure planning for transfer jobs: one CronJob per platform-initiated Connection.

The job reads everything from files: the Connection (no secrets), the trusted
host keys and, for spec.pgp.encryptTo, the partner's OpenPGP public key from a
ConfigMap, the Credential from its Secret. Nothing secret ever travels in an
environment variable, where `kubectl describe pod` would show it.
"""

from __future__ import annotations

import json
from typing import Any

from ..api.connection import DEFAULT_SCHEDULE, ConnectionSpec
from ..ports import PARTNER_PORTS
from .config import LABEL_CONNECTION, OperatorConfig
from .objects import (
    base_labels,
    child_name,
    container_security_context,
    data_volume,
    image_pull_secrets,
    pod_security_context,
    resources,
    tmp_volume,
)

CONFIG_DIR = "/etc/connectors/connection"
PGP_PUBLIC_KEY_FILE = "pgp-public-key.asc"
"""The ConfigMap key (and so the file in CONFIG_DIR) with the partner's OpenPGP public
key, for a Connection with spec.pgp.encryptTo."""
CREDENTIAL_DIR = "/etc/connectors/credential"
CRONJOB_NAME_LIMIT = 52


def transfer_name(connection: str) -> str:
    return child_name("transfer", connection, CRONJOB_NAME_LIMIT)


def transfer_labels(connection: str) -> dict[str, str]:
    return {**base_labels("transfer"), LABEL_CONNECTION: connection}


def known_hosts(spec: ConnectionSpec) -> str:
    """remote.hostKeys as known_hosts lines: "[host]:port" unless the port is 22."""
    if spec.remote is None or not spec.remote.host or not spec.remote.host_keys:
        return ""
    port = spec.remote.port or PARTNER_PORTS["SFTP"]
    host = spec.remote.host if port == 22 else f"[{spec.remote.host}]:{port}"
    lines = []
    for key in spec.remote.host_keys:
        key_type, blob = key.split()[:2]
        lines.append(f"{host} {key_type} {blob}")
    return "\n".join(lines) + "\n"


def encrypts(spec: ConnectionSpec) -> bool:
    """Files are encrypted to the partner's OpenPGP key before they are sent."""
    return spec.pgp is not None and spec.pgp.encrypt_to is not None


def transfer_config_map(namespace: str, connection: str, spec: ConnectionSpec,
                        owner: dict[str, Any],
                        pgp_public_key: str | None = None) -> dict[str, Any]:
    """The job's ConfigMap. `pgp_public_key`: the partner's armored OpenPGP public key,
    the spec.publicKey of the PGPKey Credential that spec.pgp.encryptTo names. Without
    it such a job sends nothing: it never sends a file unencrypted."""
    document = {
        "name": connection,
        "namespace": namespace,
        "spec": spec.model_dump(by_alias=True, exclude_none=True),
    }
    data = {
        "connection.json": json.dumps(document, indent=2, sort_keys=True),
        "known_hosts": known_hosts(spec),
    }
    if encrypts(spec) and pgp_public_key:
        data[PGP_PUBLIC_KEY_FILE] = pgp_public_key
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": transfer_name(connection), "namespace": namespace,
                     "labels": transfer_labels(connection), "ownerReferences": [owner]},
        "data": data,
    }


def transfer_env(connection: str, spec: ConnectionSpec, username: str,
                 config: OperatorConfig) -> list[dict[str, Any]]:
    """The transfer job's environment: `connectors transfer` reads its options there."""
    env: list[dict[str, Any]] = [
        {"name": "CONNECTORS_CONNECTION", "value": connection},
        {"name": "CONNECTORS_NAMESPACE",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CONNECTORS_CONFIG", "value": f"{CONFIG_DIR}/connection.json"},
        {"name": "CONNECTORS_KNOWN_HOSTS", "value": f"{CONFIG_DIR}/known_hosts"},
        {"name": "CONNECTORS_CREDENTIAL_DIR", "value": CREDENTIAL_DIR},
        # The login name is not secret, and a Secret a third party issued may not hold it.
        {"name": "CONNECTORS_USERNAME", "value": username},
        {"name": "CONNECTORS_DATA_ROOT", "value": "/data"},
        {"name": "CONNECTORS_LOG_FORMAT", "value": config.log_format},
    ]
    if encrypts(spec):
        env.append({"name": "CONNECTORS_PGP_PUBLIC_KEY",
                    "value": f"{CONFIG_DIR}/{PGP_PUBLIC_KEY_FILE}"})
    if spec.method == "Email" and spec.direction == "Outbound":
        if config.smtp_relay:
            env.append({"name": "CONNECTORS_SMTP_RELAY", "value": config.smtp_relay})
        if config.smtp_from:
            env.append({"name": "CONNECTORS_SMTP_FROM", "value": config.smtp_from})
    return env


def transfer_cronjob(namespace: str, connection: str, spec: ConnectionSpec,
                     credential_secret: str, username: str, config: OperatorConfig,
                     owner: dict[str, Any]) -> dict[str, Any]:
    """The CronJob of a platform-initiated Connection: one manifest, read top to
    bottom as its YAML would be, so kept whole."""
    name = transfer_name(connection)
    labels = transfer_labels(connection)
    env = transfer_env(connection, spec, username, config)
    pod = {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",
            # The job talks to partners, not to the Kubernetes API.
            "automountServiceAccountToken": False,
            **image_pull_secrets(config),
            "securityContext": pod_security_context(),
            "volumes": [
                {"name": "connection", "configMap": {"name": name}},
                {"name": "credential",
                 "secret": {"secretName": credential_secret, "defaultMode": 0o440}},
                data_volume(config),
                tmp_volume(),
            ],
            "containers": [{
                "name": "transfer",
                "image": config.image,
                "imagePullPolicy": config.image_pull_policy,
                "args": ["transfer", "--connection", connection],
                "env": env,
                "volumeMounts": [
                    {"name": "connection", "mountPath": CONFIG_DIR, "readOnly": True},
                    {"name": "credential", "mountPath": CREDENTIAL_DIR, "readOnly": True},
                    {"name": "data", "mountPath": "/data"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
                "securityContext": container_security_context(),
                "resources": resources(config),
                # The run's JSON summary; the operator copies it into status.lastTransfer.
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }],
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "ownerReferences": [owner]},
        "spec": {
            "schedule": spec.schedule or DEFAULT_SCHEDULE,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "suspend": spec.suspend,
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 6 * 3600,
                    "template": pod,
                },
            },
        },
    }
