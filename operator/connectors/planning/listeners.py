"""Pure planning for listeners: one Deployment and Service per namespace and protocol.

The accounts they serve are planned in accounts.py.

Every partner-initiated Connection of a namespace becomes one account in the
listener of its protocol. The listener's objects are owned by a sample of the
Connections that have an account in it (owners.py), so the garbage collector
removes the listener with the last one, even while the operator is down.
"""

from __future__ import annotations

from typing import Any

from ..api.accounts import SECRET_KEY, SHARDS, AccountTable, shard_file, shard_secret_name
from ..api.connection import ConnectionSpec
from ..ports import LISTENER_METRICS_PORT
from .accounts import AccountPlan
from .config import LABEL_LISTENER, OperatorConfig
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
from .readiness import STATE_CONFIGMAP

PROTOCOL_OF_METHOD = {"SFTP": "sftp", "FTP": "ftp", "Email": "smtp"}
HOST_KEY_SECRET = "connectors-sftp-hostkey"
HOST_KEY_FILE = "ssh_host_ed25519_key"
ACCOUNTS_DIR = "/etc/connectors/accounts"
HOST_KEY_DIR = "/etc/connectors/hostkey"
# FTP and SMTP listeners always have a certificate: a password never crosses the
# network in clear text (FTP without TLS, or SMTP AUTH before STARTTLS, is refused).
TLS_PROTOCOLS = ("ftp", "smtp")
TLS_SECRET = "connectors-listener-tls"
TLS_DIR = "/etc/connectors/tls"


def tls_secret_name(config: OperatorConfig) -> str:
    return config.listener_tls_secret or TLS_SECRET


def tls_names(namespace: str) -> list[str]:
    """The names a self-signed listener certificate covers: its Services'."""
    return [f"{listener_name(p)}.{namespace}.svc" for p in TLS_PROTOCOLS] + [
        f"{listener_name(p)}.{namespace}.svc.cluster.local" for p in TLS_PROTOCOLS]


def tls_secret(namespace: str, cert_pem: str, key_pem: str) -> dict[str, Any]:
    """The namespace's listener certificate, made once; never owned by a
    Connection, so that partners who pinned it keep it across listeners."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": namespace,
                     "labels": {**base_labels("listener"), LABEL_LISTENER: "tls"}},
        "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
    }


def protocol_of(spec: ConnectionSpec) -> str:
    return PROTOCOL_OF_METHOD[spec.method]


def listener_name(protocol: str) -> str:
    return f"connectors-{protocol}"


def listener_labels(protocol: str) -> dict[str, str]:
    return {**base_labels("listener"), LABEL_LISTENER: protocol}


# On each shard Secret of an account table: which protocol's table it is part of.
LABEL_ACCOUNTS = "connectors.dev/accounts"
# On each listener pod: the account table the operator last wrote for it; a change
# makes the kubelet refresh the pod's Secret volumes at once.
ANNOTATION_ACCOUNTS = "connectors.dev/account-table"


def account_secrets(namespace: str, protocol: str, plan: AccountPlan
                    ) -> dict[int, tuple[dict[str, Any], str, AccountTable]]:
    """Per shard that holds an account: its Secret, its rendered text, its table."""
    owners = plan.owner_references
    planned = {}
    for shard, table in plan.table.shards().items():
        secret = account_secret(namespace, protocol, shard, table, owners)
        planned[shard] = (secret, secret["stringData"][SECRET_KEY], table)
    return planned


def account_secret(namespace: str, protocol: str, shard: int, table: AccountTable,
                   owners: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": shard_secret_name(protocol, shard),
            "namespace": namespace,
            "labels": {**listener_labels(protocol), LABEL_ACCOUNTS: protocol},
            "ownerReferences": owners,
        },
        "stringData": {SECRET_KEY: table.render()},
    }


def accounts_volume(protocol: str) -> dict[str, Any]:
    """Every shard the table may have, each optional: a shard Secret made later
    appears in the folder at the kubelet's next refresh, so the pod template never
    changes with the number of partners."""
    return {"name": "accounts", "projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": shard_secret_name(protocol, shard), "optional": True,
                    "items": [{"key": SECRET_KEY, "path": shard_file(shard)}]}}
        for shard in range(SHARDS)]}}


def host_key_secret(namespace: str, private_pem: str, public_line: str) -> dict[str, Any]:
    """The SFTP host key, generated once per namespace and never owned by a Connection:
    partners pin it, so it must outlive every Connection and every listener restart."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": HOST_KEY_SECRET,
            "namespace": namespace,
            "labels": listener_labels("sftp"),
        },
        "stringData": {HOST_KEY_FILE: private_pem, f"{HOST_KEY_FILE}.pub": public_line},
    }


def _listener_args(protocol: str, config: OperatorConfig) -> tuple[list[str], list[dict[str, Any]]]:
    port = config.ports[protocol].container
    env: list[dict[str, Any]] = [
        {"name": "CONNECTORS_NAMESPACE",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CONNECTORS_LISTEN_PORT", "value": str(port)},
        {"name": "CONNECTORS_ACCOUNTS_FILE", "value": ACCOUNTS_DIR},
        {"name": "CONNECTORS_DATA_ROOT", "value": "/data"},
        # Where the pod reports the account table it serves (readiness.py).
        {"name": "CONNECTORS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CONNECTORS_STATE_CONFIGMAP", "value": STATE_CONFIGMAP},
        # The connection cap (listeners/core/capacity.py).
        {"name": "CONNECTORS_MAX_CONNECTIONS", "value": str(config.listener_max_connections)},
        {"name": "CONNECTORS_MAX_UNAUTHENTICATED",
         "value": str(config.listener_max_unauthenticated)},
        {"name": "CONNECTORS_LOGIN_GRACE_SECONDS",
         "value": f"{config.listener_login_grace_seconds:g}"},
        # glibc gives each thread that allocates a malloc arena of its own, up to
        # 8 per core of the node (not of the pod's limit): measured on 2 cores,
        # about 100 MiB more at 10 SFTP sessions than with two arenas.
        {"name": "MALLOC_ARENA_MAX", "value": "2"},
        *workload_env(config, LISTENER_METRICS_PORT),
    ]
    if protocol == "sftp":
        env.append({"name": "CONNECTORS_HOST_KEY_FILE", "value": f"{HOST_KEY_DIR}/{HOST_KEY_FILE}"})
    if protocol == "ftp":
        low, high = config.ftp_passive_ports
        env.append({"name": "CONNECTORS_PASSIVE_PORTS", "value": f"{low}-{high}"})
        if config.ftp_masquerade_address:
            env.append({"name": "CONNECTORS_MASQUERADE_ADDRESS",
                        "value": config.ftp_masquerade_address})
    if protocol == "smtp":
        env.append({"name": "CONNECTORS_EMAIL_DOMAIN", "value": config.email_domain})
        submission = config.ports["submission"].container if config.smtp_submission else 0
        env += [
            {"name": "CONNECTORS_SUBMISSION_PORT", "value": str(submission)},
            {"name": "CONNECTORS_MAX_MESSAGE_BYTES", "value": str(config.smtp_max_message_bytes)},
            {"name": "CONNECTORS_MAX_MESSAGES_PER_SENDER",
             "value": str(config.smtp_max_messages_per_sender)},
            {"name": "CONNECTORS_MAX_MESSAGES_PER_CLIENT",
             "value": str(config.smtp_max_messages_per_client)},
        ]
    if protocol in TLS_PROTOCOLS:
        env += [{"name": "CONNECTORS_TLS_CERT_FILE", "value": f"{TLS_DIR}/tls.crt"},
                {"name": "CONNECTORS_TLS_KEY_FILE", "value": f"{TLS_DIR}/tls.key"},
                {"name": "CONNECTORS_REQUIRE_TLS", "value": "true"}]
    return ["listen", protocol], env


def _container_ports(protocol: str, config: OperatorConfig) -> list[dict[str, Any]]:
    ports = [{"name": protocol, "containerPort": config.ports[protocol].container,
              "protocol": "TCP"}]
    if protocol == "ftp":
        low, high = config.ftp_passive_ports
        ports += [{"name": f"pasv-{p}", "containerPort": p, "protocol": "TCP"}
                  for p in range(low, high + 1)]
    if protocol == "smtp" and config.smtp_submission:
        ports.append({"name": "submission", "containerPort": config.ports["submission"].container,
                      "protocol": "TCP"})
    return ports + metrics_ports(config, LISTENER_METRICS_PORT)


def _service_port(name: str, config: OperatorConfig) -> dict[str, Any]:
    """One well-known port of the Service, onto the listener's high port in the pod."""
    port: dict[str, Any] = {"name": name, "port": config.ports[name].service,
                            "targetPort": config.ports[name].container, "protocol": "TCP"}
    if config.service_type(_protocol_of_port(name)) == "NodePort" \
            and name in config.listener_node_ports:
        port["nodePort"] = config.listener_node_ports[name]
    return port


def _protocol_of_port(name: str) -> str:
    """The listener a named port belongs to: the submission port is SMTP's."""
    return "smtp" if name == "submission" else name


def listener_deployment(namespace: str, protocol: str, config: OperatorConfig,
                        plan: AccountPlan) -> dict[str, Any]:
    name = listener_name(protocol)
    labels = listener_labels(protocol)
    args, env = _listener_args(protocol, config)
    port = config.ports[protocol].container
    volumes: list[dict[str, Any]] = [
        accounts_volume(protocol),
        data_volume(config),
        tmp_volume(),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "accounts", "mountPath": ACCOUNTS_DIR, "readOnly": True},
        {"name": "data", "mountPath": "/data"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if protocol == "sftp":
        volumes.append({"name": "hostkey",
                        "secret": {"secretName": HOST_KEY_SECRET, "defaultMode": 0o440}})
        mounts.append({"name": "hostkey", "mountPath": HOST_KEY_DIR, "readOnly": True})
    if protocol in TLS_PROTOCOLS:
        volumes.append({"name": "tls", "secret": {"secretName": tls_secret_name(config),
                                                  "defaultMode": 0o440}})
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    probe = {"tcpSocket": {"port": port}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "ownerReferences": plan.owner_references},
        "spec": {
            "replicas": config.listener_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels,
                             **metrics_annotations(config, LISTENER_METRICS_PORT)},
                "spec": {
                    "serviceAccountName": config.listener_service_account,
                    **image_pull_secrets(config),
                    "securityContext": pod_security_context(),
                    "volumes": volumes,
                    "containers": [{
                        "name": "listener",
                        "image": config.image,
                        "imagePullPolicy": config.image_pull_policy,
                        "args": args,
                        "env": env,
                        "ports": _container_ports(protocol, config),
                        "volumeMounts": mounts,
                        "securityContext": container_security_context(),
                        "resources": resources(config, config.listener_memory_request,
                                               config.listener_memory_limit),
                        "readinessProbe": {**probe, "periodSeconds": 10},
                        "livenessProbe": {**probe, "initialDelaySeconds": 10,
                                          "periodSeconds": 20, "failureThreshold": 3},
                    }],
                },
            },
        },
    }


def listener_service(namespace: str, protocol: str, config: OperatorConfig,
                     plan: AccountPlan) -> dict[str, Any]:
    service_type = config.service_type(protocol)
    node_port = service_type == "NodePort"
    ports = [_service_port(protocol, config)]
    if protocol == "smtp" and config.smtp_submission:
        ports.append(_service_port("submission", config))
    if protocol == "ftp":
        # Each passive port by itself: a Service has no port ranges, and a data
        # connection to a port it does not expose would hang. On a NodePort
        # Service the node port is the same number the listener announces.
        low, high = config.ftp_passive_ports
        ports += [{"name": f"pasv-{p}", "port": p, "targetPort": p, "protocol": "TCP",
                   **({"nodePort": p} if node_port else {})}
                  for p in range(low, high + 1)]
    spec: dict[str, Any] = {"type": service_type, "selector": listener_labels(protocol),
                            "ports": ports}
    if service_type == "LoadBalancer" and config.listener_source_ranges:
        spec["loadBalancerSourceRanges"] = list(config.listener_source_ranges)
    if service_type in ("NodePort", "LoadBalancer") and config.listener_external_traffic_policy:
        spec["externalTrafficPolicy"] = config.listener_external_traffic_policy
    metadata: dict[str, Any] = {"name": listener_name(protocol), "namespace": namespace,
                                "labels": listener_labels(protocol),
                                "ownerReferences": plan.owner_references}
    if config.listener_service_annotations:
        metadata["annotations"] = dict(config.listener_service_annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _public_port(name: str, config: OperatorConfig) -> int:
    """The port partners dial: the node port when they come through a node."""
    port = config.ports[name].service
    if config.listener_external_host and config.service_type(_protocol_of_port(name)) == "NodePort":
        return config.listener_node_ports.get(name, port)
    return port


def endpoint(namespace: str, connection: str, spec: ConnectionSpec, username: str,
             config: OperatorConfig, host_key_fingerprint: str | None,
             tls_fingerprint: str | None = None) -> dict[str, Any]:
    """Where the partner connects and as whom. For Email: the address to send to,
    the host and port where mail servers deliver (the MX), and the submission port
    for partners who log in with the Credential."""
    protocol = protocol_of(spec)
    host = config.listener_external_host or f"{listener_name(protocol)}.{namespace}.svc"
    result: dict[str, Any] = {"protocol": protocol, "host": host,
                              "port": _public_port(protocol, config), "username": username}
    if protocol == "smtp":
        result["address"] = f"{connection}@{config.email_domain}"
        if config.smtp_submission:
            result["submissionPort"] = _public_port("submission", config)
    else:
        result["folder"] = f"/{spec.folder}/" if spec.folder else "/"
    if protocol == "sftp" and host_key_fingerprint:
        result["hostKeyFingerprint"] = host_key_fingerprint
    if protocol in TLS_PROTOCOLS and tls_fingerprint:
        result["tlsCertificateFingerprint"] = tls_fingerprint
    return result


def listener_identity(namespace: str, config: OperatorConfig) -> list[dict[str, Any]]:
    """The listener's ServiceAccount, bound to the chart's ClusterRole of the same name,
    which lets it report transfers (patch connections/status, create events) and no more."""
    name = config.listener_service_account
    labels = base_labels("listener")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": name, "namespace": namespace, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, "namespace": namespace, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]


def state_configmap(namespace: str) -> dict[str, Any]:
    """Where each listener pod says which account table it serves (readiness.py).
    Made once and never overwritten by the operator: the pods write its data."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": STATE_CONFIGMAP, "namespace": namespace,
                     "labels": {**base_labels("listener"), LABEL_LISTENER: "state"}},
        "data": {},
    }
